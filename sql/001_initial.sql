-- The schema the KSS protocol needs: merchants and their keys, JWT signing keys, /auth nonces
-- (replay protection), versioned catalogs, reservations (one per merchant and KSS session),
-- carrier tracking, and an append-only audit trail. Invariants live here, not in Python.

CREATE TABLE merchants (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    identifier  text        NOT NULL UNIQUE CHECK (length(identifier) BETWEEN 1 AND 256),
    name        text,
    active      boolean     NOT NULL DEFAULT true,
    catalog_id  bigint,     -- the catalog version served now; FK added below
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- KSS proves knowledge of the key with SHA-256(nonce + key), so the key itself must be stored.
-- A merchant may hold two active keys at once, for rotation without downtime.
CREATE TABLE merchant_keys (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    merchant_id bigint      NOT NULL REFERENCES merchants (id) ON DELETE CASCADE,
    key         text        NOT NULL CHECK (length(key) BETWEEN 1 AND 512),
    created_at  timestamptz NOT NULL DEFAULT now(),
    retired_at  timestamptz
);
CREATE INDEX merchant_keys_active ON merchant_keys (merchant_id) WHERE retired_at IS NULL;

-- HMAC keys for the JWTs we issue, shared by every server process on this database.
CREATE TABLE signing_keys (
    kid         text        PRIMARY KEY,
    secret      bytea       NOT NULL CHECK (length(secret) >= 32),
    created_at  timestamptz NOT NULL DEFAULT now(),
    retired_at  timestamptz
);

-- Nonces seen on successful /auth calls; a second use within the token lifetime is a replay.
CREATE TABLE auth_nonces (
    merchant_id bigint      NOT NULL REFERENCES merchants (id) ON DELETE CASCADE,
    nonce       text        NOT NULL,
    seen_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, nonce)
);
CREATE INDEX auth_nonces_seen_at ON auth_nonces (seen_at);

-- Every catalog version ever loaded is kept; merchants.catalog_id says which one is served.
CREATE TABLE catalogs (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    merchant_id bigint      NOT NULL REFERENCES merchants (id) ON DELETE CASCADE,
    version     integer     NOT NULL CHECK (version >= 1),
    source      text        NOT NULL,
    digest      text        NOT NULL,
    summary     text        NOT NULL DEFAULT '',
    loaded_by   text        NOT NULL,
    loaded_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (merchant_id, version)
);
ALTER TABLE merchants
    ADD CONSTRAINT merchants_catalog_fk FOREIGN KEY (catalog_id) REFERENCES catalogs (id);

CREATE TABLE shipments (
    id              uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    merchant_id     bigint      NOT NULL REFERENCES merchants (id) ON DELETE CASCADE,
    session_id      text        NOT NULL CHECK (length(session_id) BETWEEN 1 AND 200),
    status          text        NOT NULL DEFAULT 'reserved'
                                CHECK (status IN ('reserved', 'confirmed', 'expired')),
    option_id       text        NOT NULL,
    carrier         text        NOT NULL,
    carrier_product jsonb       NOT NULL,   -- {identifier, name, addon_identifiers[]}
    selection       jsonb       NOT NULL,   -- option as offered, location, timeslot, addons
    request         jsonb       NOT NULL,   -- order, sender, currency, locale: no personal data
    recipient       jsonb,                  -- personal data; NULL once erased
    price           bigint      NOT NULL CHECK (price >= 0),
    currency        text        NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    additional_info text        CHECK (length(additional_info) <= 256),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),  -- last POST/PUT: the expiry clock
    confirmed_at    timestamptz,
    expired_at      timestamptz,
    erased_at       timestamptz,
    UNIQUE (merchant_id, session_id),
    CHECK ((status = 'confirmed') = (confirmed_at IS NOT NULL)),
    CHECK (status <> 'expired' OR expired_at IS NOT NULL),
    CHECK ((erased_at IS NULL) OR (recipient IS NULL))
);
CREATE INDEX shipments_reserved_updated ON shipments (updated_at) WHERE status = 'reserved';
CREATE INDEX shipments_merchant_status ON shipments (merchant_id, status, updated_at);

CREATE TABLE tracking (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    shipment_id  uuid        NOT NULL REFERENCES shipments (id) ON DELETE CASCADE,
    carrier      text        NOT NULL CHECK (length(carrier) BETWEEN 1 AND 100),
    tracking_id  text        NOT NULL CHECK (length(tracking_id) BETWEEN 1 AND 200),
    tracking_url text        CHECK (length(tracking_url) <= 2000),
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (shipment_id, carrier, tracking_id)
);

-- Append-only: who (kss, sweep, operator:NAME) did what to which reservation, and when.
CREATE TABLE audit_log (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    actor       text        NOT NULL,
    action      text        NOT NULL,
    merchant_id bigint      REFERENCES merchants (id) ON DELETE CASCADE,
    shipment_id uuid        REFERENCES shipments (id) ON DELETE CASCADE,
    detail      jsonb       NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_shipment ON audit_log (shipment_id, at);
