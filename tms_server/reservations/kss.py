"""Reservations (KSS "shipments"): reserve, update, read and confirm, one per merchant and session.

Every function here runs inside the caller's transaction (``reserve`` is a single statement and
needs none), so a 2xx is only answered after the commit. Races between concurrent POSTs for one session are settled by the database's unique
constraint (``INSERT ... ON CONFLICT``), never by Python locks.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import asyncpg
import attrs
from attrs import frozen

from tms_server.reservations.record import Reservation, Status, to_json

# One statement, so one round trip and atomic even outside a transaction: the upsert, its audit
# line, and the shipment as KSS reads it (tracking rows are older than this statement).
UPSERT = """
WITH up AS (
INSERT INTO shipments AS s (id, merchant_id, session_id, option_id, carrier, carrier_product, selection,
                            request, recipient, price, currency)
VALUES (coalesce($12::uuid, gen_random_uuid()), $1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
ON CONFLICT (merchant_id, session_id) DO UPDATE SET
    option_id = EXCLUDED.option_id, carrier = EXCLUDED.carrier,
    carrier_product = EXCLUDED.carrier_product, selection = EXCLUDED.selection,
    request = EXCLUDED.request, recipient = EXCLUDED.recipient, price = EXCLUDED.price,
    currency = EXCLUDED.currency, status = 'reserved', expired_at = NULL, erased_at = NULL,
    updated_at = now()
 WHERE s.status <> 'confirmed'
RETURNING id, merchant_id, status, carrier, carrier_product, additional_info, (xmax = 0) AS created
), audit AS (
INSERT INTO audit_log (actor, action, merchant_id, shipment_id, detail)
SELECT 'kss', CASE WHEN created THEN 'reserved' ELSE 'updated' END, merchant_id, id, $11 FROM up
)
SELECT up.*, coalesce((SELECT jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
                    'carrier', t.carrier, 'tracking_id', t.tracking_id,
                    'tracking_url', CASE WHEN t.tracking_url ~* '^https?://[^[:space:][:cntrl:]]+$' THEN t.tracking_url END))
                  ORDER BY t.id)
                   FROM tracking t WHERE t.shipment_id = up.id), '[]'::jsonb) AS tracking
  FROM up
"""
ID_BY_SESSION = "SELECT id FROM shipments WHERE merchant_id = $1 AND session_id = $2"
LOCK_BY_ID = "SELECT session_id, status FROM shipments WHERE id = $1 AND merchant_id = $2 FOR UPDATE"
UPDATE = """
UPDATE shipments SET option_id = $3, carrier = $4, carrier_product = $5, selection = $6, request = $7,
       recipient = $8, price = $9, currency = $10, status = 'reserved', expired_at = NULL,
       erased_at = NULL, updated_at = now()
 WHERE id = $1 AND merchant_id = $2
"""
CONFIRM = "UPDATE shipments SET status = 'confirmed', confirmed_at = now() WHERE id = $1"
VIEW = """
SELECT s.id, s.status, s.carrier, s.carrier_product, s.additional_info,
       coalesce((SELECT jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
                    'carrier', t.carrier, 'tracking_id', t.tracking_id,
                    'tracking_url', CASE WHEN t.tracking_url ~* '^https?://[^[:space:][:cntrl:]]+$' THEN t.tracking_url END))
                  ORDER BY t.id)
                   FROM tracking t WHERE t.shipment_id = s.id), '[]'::jsonb) AS tracking
  FROM shipments s WHERE s.id = $1 AND s.merchant_id = $2
"""
AUDIT = """
INSERT INTO audit_log (actor, action, merchant_id, shipment_id, detail) VALUES ($1, $2, $3, $4, $5)
"""


class ShipmentNotFound(LookupError):
    """No such shipment for this merchant (HTTP 404; another merchant's id looks the same)."""


class ShipmentRefused(ValueError):
    """The request is well-formed but cannot apply to this shipment; the message is the failure_reason."""


def _params(res: Reservation) -> tuple[Any, ...]:
    """The column values, in the order UPSERT and UPDATE list them."""
    return (
        res.option_id, res.carrier, to_json(res.carrier_product), to_json(res.selection),
        to_json(res.request), None if res.recipient is None else to_json(res.recipient),
        res.price, res.currency,
    )  # fmt: skip


@frozen
class ShipmentView:
    """A shipment as KSS reads it."""

    shipment_id: uuid.UUID
    status: Status = attrs.field(converter=Status)
    carrier: str
    carrier_product: Mapping[str, Any]
    tracking: list[Mapping[str, Any]]
    additional_info: str | None

    def body(self) -> dict[str, Any]:
        """The KSS shipment response body."""
        out: dict[str, Any] = {
            "shipment_id": str(self.shipment_id),
            "selected_shipping_option": {
                "carrier": self.carrier,
                "carrier_product": dict(self.carrier_product),
            },
            "shipments": [dict(t) for t in self.tracking],
        }
        if self.additional_info:
            out["additional_info"] = self.additional_info
        return out


def parse_id(text: str) -> uuid.UUID:
    """A shipment id from a URL; anything that is not a UUID is simply not found."""
    try:
        return uuid.UUID(text)
    except ValueError:
        raise ShipmentNotFound(text) from None


async def audit(
    conn: asyncpg.Connection, actor: str, action: str, merchant_id: int | None,
    shipment_id: uuid.UUID | None, **detail: Any,
) -> None:  # fmt: skip
    """Append one line to the audit trail."""
    await conn.execute(AUDIT, actor, action, merchant_id, shipment_id, detail)


async def reserve(
    conn: asyncpg.Connection, merchant_id: int, res: Reservation, *, shipment_id: uuid.UUID | None = None,
    via: str = "POST",
) -> tuple[ShipmentView, bool]:  # fmt: skip
    """POST: create or update the session's reservation. Returns (view, created). ``shipment_id``
    gives a new reservation that id (a checkout order's, known before it is reserved)."""
    detail = {"option_id": res.option_id, "via": via}
    row = await conn.fetchrow(UPSERT, merchant_id, res.session_id, *_params(res), detail, shipment_id)
    if row is None:
        sid = await conn.fetchval(ID_BY_SESSION, merchant_id, res.session_id)
        raise ShipmentRefused(f"shipment {sid} for this session_id is already confirmed and cannot change")
    return _view(row), bool(row["created"])


async def update(
    conn: asyncpg.Connection, merchant_id: int, shipment_id: uuid.UUID, res: Reservation
) -> ShipmentView:
    """PUT: update an existing reservation of this merchant."""
    current = await conn.fetchrow(LOCK_BY_ID, shipment_id, merchant_id)
    if current is None:
        raise ShipmentNotFound(str(shipment_id))
    if current["session_id"] != res.session_id:
        raise ShipmentRefused("session_id: does not match the session this shipment was reserved for")
    if current["status"] == Status.CONFIRMED:
        raise ShipmentRefused(f"shipment {shipment_id} is already confirmed and cannot change")
    await conn.execute(UPDATE, shipment_id, merchant_id, *_params(res))
    await audit(conn, "kss", "updated", merchant_id, shipment_id, option_id=res.option_id, via="PUT")
    return await view(conn, merchant_id, shipment_id)


async def view(conn: asyncpg.Connection, merchant_id: int, shipment_id: uuid.UUID) -> ShipmentView:
    """The shipment as KSS reads it, or ShipmentNotFound."""
    row = await conn.fetchrow(VIEW, shipment_id, merchant_id)
    if row is None:
        raise ShipmentNotFound(str(shipment_id))
    return _view(row)


def _view(row: asyncpg.Record) -> ShipmentView:
    return ShipmentView(
        shipment_id=row["id"], status=row["status"], carrier=row["carrier"],
        carrier_product=row["carrier_product"], tracking=row["tracking"], additional_info=row["additional_info"],
    )  # fmt: skip


async def confirm(
    conn: asyncpg.Connection, merchant_id: int, shipment_id: uuid.UUID, actor: str = "kss", **detail: Any
) -> str:
    """Mark confirmed (idempotent). Returns the status it had before ('confirmed' for a repeat)."""
    current = await conn.fetchrow(LOCK_BY_ID, shipment_id, merchant_id)
    if current is None:
        raise ShipmentNotFound(str(shipment_id))
    before: str = current["status"]
    if before != Status.CONFIRMED:
        await conn.execute(CONFIRM, shipment_id)
        await audit(
            conn,
            actor,
            "confirmed",
            merchant_id,
            shipment_id,
            late=before == Status.EXPIRED,
            previous=before,
            **detail,
        )
    return before
