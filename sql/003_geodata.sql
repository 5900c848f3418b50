-- Geographic data shared by every merchant: positions of postal codes (GeoNames postal-code files,
-- `tms-admin postal-areas import`) and carriers' pickup-point networks (`tms-admin pickup-points
-- import`). Each import replaces one country's codes, or one network's points, in one transaction,
-- and leaves a digest that running servers poll to reload what changed.

CREATE TABLE postal_areas (
    country     text             NOT NULL CHECK (country ~ '^[A-Z]{2}$'),
    postal_code text             NOT NULL CHECK (postal_code ~ '^[A-Z0-9]{1,16}$'),  -- compact form
    place       text             NOT NULL DEFAULT '' CHECK (length(place) <= 200),
    lat         double precision NOT NULL CHECK (lat BETWEEN -90 AND 90),
    lng         double precision NOT NULL CHECK (lng BETWEEN -180 AND 180),
    accuracy    smallint,        -- GeoNames: 1 estimated .. 6 centroid of addresses
    PRIMARY KEY (country, postal_code)
);

CREATE TABLE postal_area_imports (
    country     text        PRIMARY KEY CHECK (country ~ '^[A-Z]{2}$'),
    codes       integer     NOT NULL CHECK (codes >= 0),
    digest      text        NOT NULL,
    source      text        NOT NULL DEFAULT '',
    imported_by text        NOT NULL,
    imported_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE pickup_networks (
    name        text        PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'),
    points      integer     NOT NULL CHECK (points >= 0),
    digest      text        NOT NULL,
    source      text        NOT NULL DEFAULT '',
    imported_by text        NOT NULL,
    imported_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE pickup_points (
    network        text             NOT NULL REFERENCES pickup_networks (name) ON DELETE CASCADE,
    id             text             NOT NULL CHECK (length(id) BETWEEN 1 AND 200),
    name           text             NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    street_address text             NOT NULL CHECK (length(street_address) <= 500),
    postal_code    text             NOT NULL CHECK (length(postal_code) BETWEEN 1 AND 64),
    city           text             NOT NULL CHECK (length(city) <= 200),
    country        text             NOT NULL CHECK (country ~ '^[A-Z]{2}$'),
    lat            double precision CHECK (lat BETWEEN -90 AND 90),
    lng            double precision CHECK (lng BETWEEN -180 AND 180),
    hours          text             NOT NULL DEFAULT '{}',   -- JSON: {"default": "07:00-22:00", "sun": "closed"}
    lead_days_min  smallint         CHECK (lead_days_min BETWEEN 0 AND 60),
    lead_days_max  smallint         CHECK (lead_days_max BETWEEN 0 AND 60),
    line           integer          NOT NULL,               -- the line of the imported file, for messages
    PRIMARY KEY (network, id),
    CHECK ((lat IS NULL) = (lng IS NULL)),
    CHECK ((lead_days_min IS NULL) = (lead_days_max IS NULL) AND lead_days_min <= lead_days_max)
);
