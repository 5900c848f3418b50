"""The reservation lifecycle sweep: expire unconfirmed reservations, erase personal data.

Runs in every server process every ``TMS_SWEEP_INTERVAL`` seconds and from ``tms-admin reservations
sweep``. Each batch is one short transaction that claims rows with ``FOR UPDATE SKIP LOCKED``, so
several sweepers on one database never process a row twice, and a crash mid-sweep rolls back only
the batch in flight (the next sweep picks it up). Expired rows are kept, not deleted: a late
confirm still works and the row remains for statistics.
"""

from __future__ import annotations

import uuid

import asyncpg
from attrs import frozen

from tms_server import auth
from tms_server.reservations.record import STATUSES

BATCH = 500

EXPIRE = """
WITH due AS (
    SELECT id FROM shipments
     WHERE status = 'reserved' AND updated_at < now() - make_interval(secs => $1)
     ORDER BY updated_at LIMIT $2 FOR UPDATE SKIP LOCKED
), done AS (
    UPDATE shipments s SET status = 'expired', expired_at = now() FROM due WHERE s.id = due.id
    RETURNING s.id, s.merchant_id
)
INSERT INTO audit_log (actor, action, merchant_id, shipment_id, detail)
SELECT $3, 'expired', merchant_id, id, jsonb_build_object('ttl_seconds', $1::float8) FROM done
RETURNING shipment_id
"""
ERASE = """
WITH due AS (
    SELECT id FROM shipments
     WHERE recipient IS NOT NULL AND (
           (status = 'expired' AND expired_at < now() - make_interval(secs => $1))
        OR (status = 'confirmed' AND confirmed_at < now() - make_interval(secs => $2)))
     LIMIT $3 FOR UPDATE SKIP LOCKED
), done AS (
    -- Everything a person typed goes: the recipient, add-on texts (a door code), anything a shop sent
    -- besides the order, sender, currency and locale; and what would place the recipient: the
    -- offered pickup points nearest them and the slots offered with the option (the chosen point
    -- and slot stay, they are the carrier's). additional_info goes too.
    UPDATE shipments s SET recipient = NULL, erased_at = now(), additional_info = NULL,
           selection = jsonb_set(
               CASE WHEN jsonb_typeof(s.selection->'addons') = 'array'
                    THEN jsonb_set(s.selection, '{addons}', (SELECT coalesce(jsonb_agg(a - 'text'), '[]'::jsonb)
                                                                FROM jsonb_array_elements(s.selection->'addons') a))
                    ELSE s.selection END,
               '{option}', coalesce(s.selection->'option', '{}'::jsonb) - 'locations' - 'timeslots'),
           request = (SELECT coalesce(jsonb_object_agg(key, value), '{}'::jsonb) FROM jsonb_each(s.request)
                       WHERE key IN ('currency', 'locale', 'order', 'sender'))
      FROM due WHERE s.id = due.id
    RETURNING s.id, s.merchant_id, s.status
)
-- Operators' free-text reasons may name the shopper: they go with the rest.
, reasons AS (
    UPDATE audit_log a SET detail = a.detail - 'reason' FROM done WHERE a.shipment_id = done.id AND a.detail ? 'reason'
)
INSERT INTO audit_log (actor, action, merchant_id, shipment_id, detail)
SELECT $4, 'erased', merchant_id, id, jsonb_build_object('status', status) FROM done
RETURNING shipment_id
"""
COUNT_BY_STATUS = "SELECT status, count(*) AS n FROM shipments GROUP BY status"


@frozen
class SweepResult:
    """What one sweep changed."""

    expired: list[uuid.UUID]
    erased: list[uuid.UUID]
    nonces_pruned: int


async def _batches(conn: asyncpg.Connection, sql: str, *args: object) -> list[uuid.UUID]:
    out: list[uuid.UUID] = []
    while True:
        async with conn.transaction():
            rows = await conn.fetch(sql, *args)
        out.extend(r["shipment_id"] for r in rows)
        if len(rows) < BATCH:
            return out


async def run(
    conn: asyncpg.Connection, *, reservation_ttl: float, retention_expired: float,
    retention_confirmed: float, nonce_retention: float, actor: str = "sweep",
) -> SweepResult:  # fmt: skip
    """Expire what is due, erase personal data past retention, forget /auth nonces older than
    ``nonce_retention`` seconds (a replayed /auth body older than that is not recognised)."""
    expired = await _batches(conn, EXPIRE, float(reservation_ttl), BATCH, actor)
    erased = await _batches(conn, ERASE, float(retention_expired), float(retention_confirmed), BATCH, actor)
    pruned = await auth.prune_nonces(conn, nonce_retention)
    return SweepResult(expired, erased, pruned)


async def counts(conn: asyncpg.Connection) -> dict[str, int]:
    """Reservations per status (every status present, zero included)."""
    found = {r["status"]: int(r["n"]) for r in await conn.fetch(COUNT_BY_STATUS)}
    return {s: found.get(s, 0) for s in STATUSES}
