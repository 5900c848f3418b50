"""What operators see and do to reservations: list, show, export, track, confirm/expire by hand, reconcile.

The KSS side (reserve, update, confirm) lives in ``reservations.kss`` and the timed sweep in
``reservations.sweep``; this module owns the operator's view of the same rows. Every change runs in
one transaction that locks the row first and appends to the audit trail with the operator as actor.
Export streams through a server-side cursor, so its memory does not grow with the number of rows.

"Since" always means since the reservation entered its current status: ``confirmed_at`` for confirmed,
``expired_at`` for expired, the last POST/PUT (``updated_at``) for reserved.
"""

from __future__ import annotations

import json
import urllib.parse
import uuid
from collections.abc import AsyncGenerator, Mapping, Sequence
from datetime import datetime
from typing import Any

import asyncpg
import attrs
from attrs import frozen

from tms_server import wire
from tms_server.reservations import kss
from tms_server.reservations.record import (
    CarrierProduct,
    Reservation,
    Selection,
    Status,
    StoredRequest,
    from_json,
)

MERCHANT_ID = "SELECT id FROM merchants WHERE identifier = $1"
LIST = """
SELECT s.id, m.identifier AS merchant, s.session_id, s.status, s.carrier,
       s.carrier_product->>'identifier' AS product, s.price, s.currency, s.erased_at,
       s.status_at
  FROM shipments s JOIN merchants m ON m.id = s.merchant_id
 WHERE ($1::bigint IS NULL OR s.merchant_id = $1) AND ($2::text IS NULL OR s.status = $2)
   AND s.status_at >= coalesce($3::timestamptz, '-infinity')
 ORDER BY status_at DESC, s.id LIMIT $4
"""
DETAIL = """
SELECT s.id, m.identifier AS merchant, s.session_id, s.status, s.option_id, s.carrier, s.carrier_product,
       s.selection, s.request, s.recipient, s.price, s.currency, s.additional_info, s.created_at,
       s.updated_at, s.confirmed_at, s.expired_at, s.erased_at
  FROM shipments s JOIN merchants m ON m.id = s.merchant_id
"""
DETAIL_BY_ID = DETAIL + " WHERE s.id = $1"
DETAIL_BY_SESSION = DETAIL + " WHERE s.session_id = $1 AND ($2::bigint IS NULL OR s.merchant_id = $2)"
TRACKING = (
    "SELECT carrier, tracking_id, tracking_url, created_at FROM tracking WHERE shipment_id = $1 ORDER BY id"
)
AUDIT_TRAIL = "SELECT at, actor, action, detail FROM audit_log WHERE shipment_id = $1 ORDER BY at, id"
# Export order follows the index on status_at (sql/007), so the first row streams before the last one is read.
EXPORT = """
SELECT s.id, m.identifier AS merchant, s.session_id, s.status, s.option_id, s.carrier, s.carrier_product,
       s.selection, s.request, s.recipient, s.price, s.currency,
       s.status_at
  FROM shipments s JOIN merchants m ON m.id = s.merchant_id
 WHERE s.merchant_id = $1 AND s.status = $2
   AND s.status_at >= coalesce($3::timestamptz, '-infinity')
 ORDER BY s.status_at, s.id
"""
EXPORT_COUNT = """
SELECT count(*) FROM shipments s
 WHERE s.merchant_id = $1 AND s.status = $2
   AND s.status_at >= coalesce($3::timestamptz, '-infinity')
"""
LOCK = "SELECT merchant_id, status FROM shipments WHERE id = $1 FOR UPDATE"
EXPIRE_ONE = "UPDATE shipments SET status = 'expired', expired_at = now() WHERE id = $1"
ADD_TRACKING = """
INSERT INTO tracking AS t (shipment_id, carrier, tracking_id, tracking_url) VALUES ($1, $2, $3, $4)
ON CONFLICT (shipment_id, carrier, tracking_id)
DO UPDATE SET tracking_url = coalesce(EXCLUDED.tracking_url, t.tracking_url)
RETURNING (xmax = 0) AS created
"""
# The same conditions as sweep.EXPIRE and sweep.ERASE, counted instead of applied.
SWEEP_DUE = """
SELECT count(*) FILTER (WHERE status = 'reserved' AND updated_at < now() - make_interval(secs => $1)) AS expire,
       count(*) FILTER (WHERE recipient IS NOT NULL AND (
             (status = 'expired' AND expired_at < now() - make_interval(secs => $2))
          OR (status = 'confirmed' AND confirmed_at < now() - make_interval(secs => $3)))) AS erase
  FROM shipments
"""
KNOWN = """
SELECT id, status FROM shipments WHERE id = ANY($1::uuid[]) AND ($2::bigint IS NULL OR merchant_id = $2)
"""

# Checkout order statuses that mean the purchase went through. A Checkout API order is
# "checkout_incomplete" until the customer is authorised, then "checkout_complete" (older
# integrations: "created"); an Order Management order is AUTHORIZED once placed and CAPTURED after.
COMPLETED = frozenset({"checkout_complete", "created", "authorized", "part_captured", "captured"})


class ReservationError(ValueError):
    """An operator asked for something that cannot be done to a reservation; the message says why."""


def check_trackable(status: str) -> None:
    """Only confirmed reservations get tracking (ReservationError otherwise)."""
    if status != Status.CONFIRMED:
        raise ReservationError(f"the reservation is {status}; only confirmed reservations get tracking")


def effect(status: str, target: str) -> str:
    """What moving a reservation from ``status`` to ``target`` by hand does, in words; a confirmed
    reservation cannot expire (ReservationError)."""
    if status == target:
        return "already done, nothing to change"
    if target == Status.EXPIRED and status == Status.CONFIRMED:
        raise ReservationError("a confirmed reservation cannot expire")
    return "logged as a late confirm" if status == Status.EXPIRED else f"becomes {target}"


def check_tracking_url(url: str) -> None:
    """Accept only an absolute http(s) URL with a host, printable, at most 2,000 characters."""
    try:
        parts = urllib.parse.urlsplit(url)
        scheme, host = parts.scheme.lower(), parts.hostname
    except ValueError:  # "https://[::1" and other netlocs urllib cannot parse
        scheme, host = "", None
    printable = url.isprintable() and not any(ch.isspace() for ch in url)
    if scheme not in ("https", "http") or not host or not printable or len(url) > 2000:
        raise ReservationError(
            f"tracking URL {url!r}: expected an absolute https:// (or http://) URL with a host, without spaces"
        )


@frozen
class Summary:
    """One line of ``reservations list``: no personal data."""

    shipment_id: uuid.UUID
    merchant: str
    session_id: str
    status: Status = attrs.field(converter=Status)
    status_at: datetime = attrs.field()
    carrier: str = attrs.field()
    product: str | None
    price: int
    currency: str
    erased: bool


@frozen
class Tracking:
    """One parcel's carrier tracking."""

    carrier: str
    tracking_id: str
    tracking_url: str | None
    created_at: datetime


@frozen
class AuditEntry:
    """One line of the audit trail."""

    at: datetime
    actor: str
    action: str
    detail: Mapping[str, Any]


@frozen
class Detail:
    """Everything stored about one reservation, with its tracking and audit trail."""

    shipment_id: uuid.UUID
    merchant: str
    status: Status = attrs.field(converter=Status)
    reservation: Reservation = attrs.field()
    additional_info: str | None = attrs.field()
    created_at: datetime
    updated_at: datetime
    confirmed_at: datetime | None
    expired_at: datetime | None
    erased_at: datetime | None
    tracking: list[Tracking]
    audit: list[AuditEntry]


@frozen
class ExportRow:
    """What a label-printing step needs about one reservation."""

    shipment_id: uuid.UUID
    merchant: str
    status: Status = attrs.field(converter=Status)
    status_at: datetime = attrs.field()
    reservation: Reservation = attrs.field()


@frozen
class Change:
    """What an operator action did: the status before and after (equal when nothing changed)."""

    shipment_id: uuid.UUID
    before: Status = attrs.field(converter=Status)
    after: Status = attrs.field(converter=Status)

    @property
    def changed(self) -> bool:
        """False for a repeat (already in the target status)."""
        return self.before != self.after


@frozen
class SweepDue:
    """How many rows a sweep would touch now."""

    expire: int
    erase: int


async def merchant_id(conn: asyncpg.Connection, identifier: str) -> int:
    """The numeric id of a merchant identifier, or ReservationError."""
    found = await conn.fetchval(MERCHANT_ID, identifier)
    if found is None:
        raise ReservationError(f"no merchant {identifier!r}")
    return int(found)


async def list_reservations(
    conn: asyncpg.Connection, *, merchant: int | None = None, status: str | None = None,
    since: datetime | None = None, limit: int | None = None,
) -> list[Summary]:  # fmt: skip
    """Reservations matching the filters, newest status change first."""
    return [_summary(r) for r in await conn.fetch(LIST, merchant, status, since, limit)]


def _summary(r: asyncpg.Record) -> Summary:
    return Summary(
        shipment_id=r["id"], merchant=r["merchant"], session_id=r["session_id"], status=r["status"],
        status_at=r["status_at"], carrier=r["carrier"], product=r["product"], price=r["price"],
        currency=r["currency"], erased=r["erased_at"] is not None,
    )  # fmt: skip


async def get(conn: asyncpg.Connection, shipment_id: uuid.UUID) -> Detail:
    """One reservation with its tracking and audit trail, or ShipmentNotFound."""
    row = await conn.fetchrow(DETAIL_BY_ID, shipment_id)
    if row is None:
        raise kss.ShipmentNotFound(str(shipment_id))
    return await _detail(conn, row)


async def get_by_session(conn: asyncpg.Connection, session_id: str, merchant: int | None = None) -> Detail:
    """The reservation of a KSS session; ReservationError when several merchants share the session id."""
    rows = await conn.fetch(DETAIL_BY_SESSION, session_id, merchant)
    if not rows:
        raise kss.ShipmentNotFound(f"session {session_id}")
    if len(rows) > 1:
        names = ", ".join(sorted(r["merchant"] for r in rows))
        raise ReservationError(f"session {session_id} has reservations at {names}; add --merchant")
    return await _detail(conn, rows[0])


async def _detail(conn: asyncpg.Connection, row: asyncpg.Record) -> Detail:
    tracking = [Tracking(**dict(r)) for r in await conn.fetch(TRACKING, row["id"])]
    audit = [AuditEntry(**dict(r)) for r in await conn.fetch(AUDIT_TRAIL, row["id"])]
    fields = dict(row)
    reservation = read_reservation(fields)
    return Detail(
        shipment_id=fields.pop("id"), reservation=reservation, tracking=tracking, audit=audit, **fields
    )


def read_reservation(fields: dict[str, Any]) -> Reservation:
    """Take a row's reservation columns out of ``fields`` (a row as a dict) as the typed record;
    rows of earlier releases read the same (unknown keys in the jsonb columns are ignored)."""
    recipient = fields.pop("recipient")
    return Reservation(
        session_id=fields.pop("session_id"),
        option_id=fields.pop("option_id"),
        carrier=fields.pop("carrier"),
        carrier_product=from_json(fields.pop("carrier_product"), CarrierProduct),
        selection=from_json(fields.pop("selection"), Selection),
        request=from_json(fields.pop("request"), StoredRequest),
        recipient=None if recipient is None else from_json(recipient, wire.Recipient),
        price=fields.pop("price"),
        currency=fields.pop("currency"),
    )


async def count_export(conn: asyncpg.Connection, merchant: int, status: str, since: datetime | None) -> int:
    """How many rows ``export_rows`` will yield (for a progress bar)."""
    return int(await conn.fetchval(EXPORT_COUNT, merchant, status, since))


async def export_rows(
    conn: asyncpg.Connection, merchant: int, status: str, since: datetime | None, prefetch: int = 500
) -> AsyncGenerator[ExportRow, None]:
    """Stream the export rows through a server-side cursor, oldest status change first."""
    async with conn.transaction(readonly=True):
        async for r in conn.cursor(EXPORT, merchant, status, since, prefetch=prefetch):
            fields = dict(r)
            reservation = read_reservation(fields)
            yield ExportRow(shipment_id=fields.pop("id"), reservation=reservation, **fields)


async def _lock(conn: asyncpg.Connection, shipment_id: uuid.UUID) -> tuple[int, str]:
    row = await conn.fetchrow(LOCK, shipment_id)
    if row is None:
        raise kss.ShipmentNotFound(str(shipment_id))
    return int(row["merchant_id"]), str(row["status"])


async def confirm(conn: asyncpg.Connection, shipment_id: uuid.UUID, reason: str, actor: str) -> Change:
    """Confirm by hand (idempotent); confirming an expired reservation is logged as late."""
    async with conn.transaction():
        merchant, _ = await _lock(conn, shipment_id)
        before = await kss.confirm(conn, merchant, shipment_id, actor, reason=reason)
    return Change(shipment_id, before, Status.CONFIRMED)


async def expire(conn: asyncpg.Connection, shipment_id: uuid.UUID, reason: str, actor: str) -> Change:
    """Expire a reserved reservation by hand (idempotent); a confirmed one cannot expire."""
    async with conn.transaction():
        merchant, before = await _lock(conn, shipment_id)
        if before == Status.CONFIRMED:
            raise ReservationError(
                f"shipment {shipment_id} is confirmed; a confirmed reservation cannot expire"
            )
        if before == Status.RESERVED:
            await conn.execute(EXPIRE_ONE, shipment_id)
            await kss.audit(
                conn, actor, Status.EXPIRED, merchant, shipment_id, previous=before, reason=reason
            )
    return Change(shipment_id, before, Status.EXPIRED)


async def add_tracking(
    conn: asyncpg.Connection, shipment_id: uuid.UUID, carrier: str, tracking_id: str,
    tracking_url: str | None, actor: str,
) -> bool:  # fmt: skip
    """Attach a parcel's tracking to a confirmed reservation. Returns False when it was already there.

    ``tracking_url`` must be an absolute ``https``/``http`` URL: it reaches KSS and the shopper's
    browser, so ``javascript:`` and the like are refused (ReservationError)."""
    if tracking_url is not None:
        check_tracking_url(tracking_url)
    async with conn.transaction():
        merchant, status = await _lock(conn, shipment_id)
        if status != Status.CONFIRMED:
            raise ReservationError(
                f"shipment {shipment_id} is {status}; only confirmed reservations get tracking"
            )
        created = bool(await conn.fetchval(ADD_TRACKING, shipment_id, carrier, tracking_id, tracking_url))
        await kss.audit(
            conn, actor, "tracking_added" if created else "tracking_updated", merchant, shipment_id,
            carrier=carrier, tracking_id=tracking_id, tracking_url=tracking_url,
        )  # fmt: skip
    return created


async def sweep_due(
    conn: asyncpg.Connection, reservation_ttl: float, retention_expired: float, retention_confirmed: float
) -> SweepDue:
    """What ``sweep.run`` would expire and erase right now."""
    row = await conn.fetchrow(
        SWEEP_DUE, float(reservation_ttl), float(retention_expired), float(retention_confirmed)
    )
    assert row is not None  # an aggregate always returns one row
    return SweepDue(int(row["expire"]), int(row["erase"]))


# --- reconcile: checkout orders whose confirm never arrived ---------------------------------------


@frozen
class OrderRef:
    """What reconcile needs from one checkout order."""

    position: int  # 1-based, in the file
    order_id: str | None
    status: str | None
    reference: str | None
    completed: bool


@frozen
class Match:
    """The verdict on one order: ``confirm``, ``confirmed`` (nothing to do) or a reason it cannot match."""

    order: OrderRef
    verdict: str  # confirm | confirmed | missing_reference | unknown_reference | not_completed | duplicate
    shipment_id: uuid.UUID | None = None
    status: Status | None = attrs.field(default=None, converter=attrs.converters.optional(Status))


def parse_orders(text: str) -> list[Any]:
    """Orders from a file holding one order object, a JSON array of orders, or JSON lines."""
    try:
        whole = json.loads(text)
    except RecursionError:
        raise ReservationError("the orders are nested too deeply to be Klarna orders") from None
    except json.JSONDecodeError:
        whole = None
        out = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise ReservationError(f"line {n}: not JSON ({exc.msg})") from None
                except RecursionError:
                    raise ReservationError(f"line {n}: nested too deeply to be a Klarna order") from None
        return out
    return whole if isinstance(whole, list) else [whole]


def order_ref(order: Any, position: int) -> OrderRef:
    """The order id, status and ``selected_shipping_option.tms_reference`` of one order."""
    if not isinstance(order, dict):
        return OrderRef(position, None, None, None, False)
    option = order.get("selected_shipping_option")
    ref = option.get("tms_reference") if isinstance(option, dict) else None
    status = order.get("status")
    status = status if isinstance(status, str) else None
    completed = status.lower() in COMPLETED if status else bool(order.get("completed_at"))
    order_id = order.get("order_id")
    return OrderRef(
        position, str(order_id) if order_id else None, status, ref if isinstance(ref, str) and ref else None,
        completed,
    )  # fmt: skip


def as_uuid(text: str) -> uuid.UUID | None:
    """A UUID, or None for anything else."""
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


def classify(refs: Sequence[OrderRef], known: Mapping[uuid.UUID, str]) -> list[Match]:
    """Decide each order against the reservations' statuses (``known``: shipment id -> status)."""
    seen: set[uuid.UUID] = set()
    out = []
    for ref in refs:
        sid = as_uuid(ref.reference) if ref.reference else None
        if ref.reference is None:
            out.append(Match(ref, "missing_reference"))
        elif not ref.completed:
            out.append(Match(ref, "not_completed", sid))
        elif sid is None or sid not in known:
            out.append(Match(ref, "unknown_reference"))
        elif sid in seen:
            out.append(Match(ref, "duplicate", sid, known[sid]))
        else:
            seen.add(sid)
            verdict = "confirmed" if known[sid] == Status.CONFIRMED else "confirm"
            out.append(Match(ref, verdict, sid, known[sid]))
    return out


async def known_statuses(
    conn: asyncpg.Connection, refs: Sequence[OrderRef], merchant: int | None
) -> dict[uuid.UUID, str]:
    """The statuses of the reservations the orders name (only this merchant's, when given)."""
    ids = [u for u in (as_uuid(r.reference) for r in refs if r.reference) if u is not None]
    return {r["id"]: r["status"] for r in await conn.fetch(KNOWN, ids, merchant)}


async def reconcile(
    conn: asyncpg.Connection, orders: Sequence[Any], merchant: int | None = None
) -> list[Match]:
    """Match checkout orders to reservations (read only)."""
    refs = [order_ref(o, n) for n, o in enumerate(orders, 1)]
    return classify(refs, await known_statuses(conn, refs, merchant))


async def apply_reconcile(conn: asyncpg.Connection, matches: Sequence[Match], actor: str) -> list[Change]:
    """Confirm every ``confirm`` match, each in its own transaction (a repeat run changes nothing)."""
    out = []
    for m in matches:
        if m.verdict == "confirm" and m.shipment_id is not None:
            reason = f"reconcile: checkout order {m.order.order_id or '#' + str(m.order.position)}"
            out.append(await confirm(conn, m.shipment_id, reason, actor))
    return out
