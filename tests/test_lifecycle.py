"""The reservation lifecycle on a real database: each transition, late confirms, retention, parallel sweeps."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import pytest

from tms_server import reservations, wire
from tms_server.reservations import operator, sweep
from tms_server.reservations.record import CarrierProduct, Selection, StoredRequest, from_json, to_json

TTL = 3600
HOUR = 3600
DAY = 86400

RECIPIENT = {
    "given_name": "Klara", "family_name": "Joyce", "street_address": "Sveavägen 46", "postal_code": "111 34",
    "city": "Stockholm", "country": "SE", "email": "klara@example.com", "phone": "+46812012010",
}  # fmt: skip
SELECTION = {
    "option": {"id": "pickup-standard", "name": "Pickup point", "carrier": "postnord"},
    "location": {
        "id": "SE-1234", "name": "ICA Nära Sveavägen",
        "address": {"street_address": "Sveavägen 50", "postal_code": "111 34", "city": "Stockholm", "country": "SE"},
    },
    "timeslot": None,
    "addons": [{"id": "sms", "type": "notification", "code": "SMS", "price": 0}],
}  # fmt: skip
REQUEST = {
    "currency": "SEK", "locale": "sv-SE",
    "order": {"id": "ord-1", "total_amount": 10000, "total_weight": 2000},
    "sender": {"sender_id": "warehouse-13",
               "address": {"street_address": "Lagergatan 1", "postal_code": "602 23", "city": "Norrköping",
                           "country": "SE"}},
}  # fmt: skip
PRODUCT = {"identifier": "P19", "name": "PostNord MyPack Collect", "addon_identifiers": ["SMS"]}

# Test-only bulk insert: many due reservations in one statement (reserve() would take a round trip each).
BULK = """
INSERT INTO shipments (merchant_id, session_id, option_id, carrier, carrier_product, selection, request,
                       recipient, price, currency, updated_at)
SELECT $1, 'bulk-' || g, 'pickup-standard', 'postnord', '{"identifier": "P19"}', '{}', '{}',
       '{"given_name": "Klara"}', 4900, 'SEK', now() - interval '2 hours'
  FROM generate_series(1, $2) AS g
"""


def reservation(session_id: str | None = None, **changes: Any) -> reservations.Reservation:
    """A reservation as the KSS layer would store it (a PostNord pickup-point parcel in Stockholm)."""
    values: dict[str, Any] = {
        "session_id": session_id or str(uuid.uuid4()), "option_id": "pickup-standard", "carrier": "postnord",
        "carrier_product": from_json(PRODUCT, CarrierProduct), "selection": from_json(SELECTION, Selection),
        "request": from_json(REQUEST, StoredRequest), "recipient": from_json(RECIPIENT, wire.Recipient),
        "price": 4900, "currency": "SEK",
    }  # fmt: skip
    return reservations.Reservation(**(values | changes))


async def merchant(conn: asyncpg.Connection, make_merchant: Any, identifier: str = "shop-a") -> int:
    """Create a merchant without a catalog; returns its numeric id."""
    await make_merchant(identifier, catalog=None)
    return int(await conn.fetchval("SELECT id FROM merchants WHERE identifier = $1", identifier))


async def reserve(conn: asyncpg.Connection, merchant_id: int, session_id: str | None = None) -> uuid.UUID:
    """Reserve as KSS would (POST /shipment); returns the shipment id."""
    view, _ = await reservations.reserve(conn, merchant_id, reservation(session_id))
    return view.shipment_id


async def age(conn: asyncpg.Connection, shipment_id: uuid.UUID, column: str, seconds: int) -> None:
    """Move one of the row's timestamps ``seconds`` into the past (the column name is ours, not input)."""
    assert column in ("updated_at", "confirmed_at", "expired_at")
    await conn.execute(
        f"UPDATE shipments SET {column} = now() - make_interval(secs => $2) WHERE id = $1",  # noqa: S608
        shipment_id,
        float(seconds),
    )


async def run_sweep(conn: asyncpg.Connection, **kw: float) -> sweep.SweepResult:
    """The sweep with default settings unless overridden."""
    settings = {"reservation_ttl": TTL, "retention_expired": 7 * DAY, "retention_confirmed": 90 * DAY,
                "nonce_retention": HOUR} | kw  # fmt: skip
    return await sweep.run(conn, **settings)


async def row(conn: asyncpg.Connection, shipment_id: uuid.UUID) -> asyncpg.Record:
    """The stored row."""
    found = await conn.fetchrow("SELECT * FROM shipments WHERE id = $1", shipment_id)
    assert found is not None
    return found


async def trail(conn: asyncpg.Connection, shipment_id: uuid.UUID) -> list[tuple[str, str, dict[str, Any]]]:
    """(actor, action, detail) of each audit line, oldest first."""
    rows = await conn.fetch(
        "SELECT actor, action, detail FROM audit_log WHERE shipment_id = $1 ORDER BY id", shipment_id
    )
    return [(r["actor"], r["action"], r["detail"]) for r in rows]


async def test_reserve_starts_reserved_and_is_audited(conn: asyncpg.Connection, make_merchant: Any) -> None:
    """A POST stores a reserved row with its timestamps and a `kss reserved` audit line."""
    sid = await reserve(conn, await merchant(conn, make_merchant))
    r = await row(conn, sid)
    assert (r["status"], r["confirmed_at"], r["expired_at"]) == ("reserved", None, None)
    assert r["created_at"] == r["updated_at"]
    assert [(a, b) for a, b, _ in await trail(conn, sid)] == [("kss", "reserved")]


async def test_confirm_moves_reserved_to_confirmed(conn: asyncpg.Connection, make_merchant: Any) -> None:
    """reserved -> confirmed stamps confirmed_at and logs an on-time (not late) confirm by kss."""
    mid = await merchant(conn, make_merchant)
    sid = await reserve(conn, mid)
    assert await reservations.confirm(conn, mid, sid) == "reserved"
    r = await row(conn, sid)
    assert r["status"] == "confirmed" and r["confirmed_at"] is not None
    assert (await trail(conn, sid))[-1] == ("kss", "confirmed", {"late": False, "previous": "reserved"})


async def test_sweep_expires_only_reservations_past_ttl(conn: asyncpg.Connection, make_merchant: Any) -> None:
    """reserved -> expired after TTL since the last POST/PUT; the row is kept, a fresh one is untouched."""
    mid = await merchant(conn, make_merchant)
    stale, fresh = await reserve(conn, mid), await reserve(conn, mid)
    await age(conn, stale, "updated_at", TTL + 5)
    result = await run_sweep(conn)
    assert result.expired == [stale]
    r = await row(conn, stale)
    assert r["status"] == "expired" and r["expired_at"] is not None and r["recipient"] == RECIPIENT
    assert (await row(conn, fresh))["status"] == "reserved"
    assert (await trail(conn, stale))[-1] == ("sweep", "expired", {"ttl_seconds": TTL})


async def test_update_restarts_the_expiry_clock(conn: asyncpg.Connection, make_merchant: Any) -> None:
    """A PUT resets updated_at, so a reservation updated recently is not expired."""
    mid = await merchant(conn, make_merchant)
    sid = await reserve(conn, mid, "s-1")
    await age(conn, sid, "updated_at", TTL + 5)
    await reservations.update(conn, mid, sid, reservation("s-1"))
    assert (await run_sweep(conn)).expired == []


async def test_sweep_never_expires_confirmed(conn: asyncpg.Connection, make_merchant: Any) -> None:
    """A confirmed reservation stays confirmed however old its last POST/PUT."""
    mid = await merchant(conn, make_merchant)
    sid = await reserve(conn, mid)
    await reservations.confirm(conn, mid, sid)
    await age(conn, sid, "updated_at", 30 * DAY)
    assert (await run_sweep(conn)).expired == []
    assert (await row(conn, sid))["status"] == "confirmed"


async def test_late_confirm_confirms_an_expired_reservation(
    conn: asyncpg.Connection, make_merchant: Any
) -> None:
    """expired -> confirmed by a late KSS confirm, logged with late=true."""
    mid = await merchant(conn, make_merchant)
    sid = await reserve(conn, mid)
    await age(conn, sid, "updated_at", TTL + 5)
    await run_sweep(conn)
    assert await reservations.confirm(conn, mid, sid) == "expired"
    r = await row(conn, sid)
    assert r["status"] == "confirmed" and r["expired_at"] is not None
    assert (await trail(conn, sid))[-1] == ("kss", "confirmed", {"late": True, "previous": "expired"})
    assert (await reservations.view(conn, mid, sid)).status == "confirmed"


async def test_new_post_revives_an_expired_reservation(conn: asyncpg.Connection, make_merchant: Any) -> None:
    """expired -> reserved when KSS POSTs the same session again (same shipment id, clock restarted)."""
    mid = await merchant(conn, make_merchant)
    sid = await reserve(conn, mid, "s-1")
    await age(conn, sid, "updated_at", TTL + 5)
    await run_sweep(conn)
    assert await reserve(conn, mid, "s-1") == sid
    r = await row(conn, sid)
    assert (r["status"], r["expired_at"]) == ("reserved", None)


async def test_retention_erases_personal_data_only(conn: asyncpg.Connection, make_merchant: Any) -> None:
    """Past retention the recipient is erased; id, session, carrier codes and selection stay for statistics."""
    mid = await merchant(conn, make_merchant)
    old_expired, new_expired, old_confirmed, new_confirmed = [await reserve(conn, mid) for _ in range(4)]
    for sid in (old_expired, new_expired):
        await operator.expire(conn, sid, "test", "operator:test")
    for sid in (old_confirmed, new_confirmed):
        await reservations.confirm(conn, mid, sid)
    await age(conn, old_expired, "expired_at", 7 * DAY + 5)
    await age(conn, old_confirmed, "confirmed_at", 30 * DAY + 5)
    result = await run_sweep(conn, retention_confirmed=30 * DAY)
    assert sorted(result.erased) == sorted([old_expired, old_confirmed])
    for sid, status in ((old_expired, "expired"), (old_confirmed, "confirmed")):
        r = await row(conn, sid)
        assert r["recipient"] is None and r["erased_at"] is not None and r["status"] == status
        stored = to_json(from_json(SELECTION, Selection))  # as the record stores it (no null keys)
        assert (r["carrier"], r["carrier_product"], r["selection"]) == ("postnord", PRODUCT, stored)
        assert (await trail(conn, sid))[-1] == ("sweep", "erased", {"status": status})
    assert (await row(conn, new_expired))["recipient"] == RECIPIENT
    assert (await row(conn, new_confirmed))["recipient"] == RECIPIENT
    assert (await run_sweep(conn, retention_confirmed=30 * DAY)).erased == []


async def test_tracking_on_confirmed_shows_in_get_shipment(
    conn: asyncpg.Connection, make_merchant: Any
) -> None:
    """Tracking added to a confirmed reservation appears in the KSS view; re-adding only updates the URL."""
    mid = await merchant(conn, make_merchant)
    sid = await reserve(conn, mid)
    with pytest.raises(operator.ReservationError, match="only confirmed reservations get tracking"):
        await operator.add_tracking(conn, sid, "postnord", "00370712345", None, "operator:test")
    await reservations.confirm(conn, mid, sid)
    assert await operator.add_tracking(conn, sid, "postnord", "00370712345", None, "operator:test")
    url = "https://tracking.postnord.com/se/?id=00370712345"
    assert not await operator.add_tracking(conn, sid, "postnord", "00370712345", url, "operator:test")
    view = await reservations.view(conn, mid, sid)
    assert view.body()["shipments"] == [
        {"carrier": "postnord", "tracking_id": "00370712345", "tracking_url": url}
    ]
    assert [(a, b) for a, b, _ in await trail(conn, sid)][-2:] == [
        ("operator:test", "tracking_added"),
        ("operator:test", "tracking_updated"),
    ]


async def test_operator_expire_and_confirm(conn: asyncpg.Connection, make_merchant: Any) -> None:
    """By hand: reserved -> expired and expired -> confirmed (late), each with the reason; repeats are no-ops."""
    mid = await merchant(conn, make_merchant)
    sid = await reserve(conn, mid)
    assert (await operator.expire(conn, sid, "customer cancelled", "operator:ann")).changed
    assert not (await operator.expire(conn, sid, "again", "operator:ann")).changed
    change = await operator.confirm(conn, sid, "paid by invoice", "operator:ann")
    assert (change.before, change.after) == ("expired", "confirmed")
    assert not (await operator.confirm(conn, sid, "again", "operator:ann")).changed
    assert (await trail(conn, sid))[1:] == [
        ("operator:ann", "expired", {"previous": "reserved", "reason": "customer cancelled"}),
        ("operator:ann", "confirmed", {"late": True, "previous": "expired", "reason": "paid by invoice"}),
    ]
    with pytest.raises(operator.ReservationError, match="cannot expire"):
        await operator.expire(conn, sid, "too late", "operator:ann")


async def _connect(dsn: str) -> asyncpg.Connection:
    return await asyncpg.connect(dsn)


async def _gone(conn: asyncpg.Connection, pid: int) -> None:
    for _ in range(100):
        if not await conn.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"backend {pid} still alive")


async def test_two_concurrent_sweepers_expire_each_row_once(
    conn: asyncpg.Connection, make_merchant: Any, dsn: str
) -> None:
    """Two sweepers on one database in parallel: every due row expired exactly once, one audit line each."""
    mid = await merchant(conn, make_merchant)
    n = sweep.BATCH * 3 + 17
    await conn.execute(BULK, mid, n)
    a, b = await _connect(dsn), await _connect(dsn)
    try:
        first, second = await asyncio.gather(run_sweep(a), run_sweep(b))
    finally:
        await a.close()
        await b.close()
    assert len(first.expired) + len(second.expired) == n
    assert not set(first.expired) & set(second.expired)
    assert await conn.fetchval("SELECT count(*) FROM shipments WHERE status = 'expired'") == n
    per_row = await conn.fetch(
        "SELECT shipment_id, count(*) AS n FROM audit_log WHERE action = 'expired' GROUP BY shipment_id"
    )
    assert len(per_row) == n and {r["n"] for r in per_row} == {1}


async def test_crash_mid_sweep_loses_nothing(conn: asyncpg.Connection, make_merchant: Any, dsn: str) -> None:
    """Rows claimed by a sweeper that dies before commit are skipped by others, then expired by the next sweep."""
    mid = await merchant(conn, make_merchant)
    await conn.execute(BULK, mid, 20)
    dying = await _connect(dsn)
    tx = dying.transaction()
    await tx.start()
    claimed = await dying.fetch(sweep.EXPIRE, float(TTL), 8, "sweep")  # one batch of 8, not committed
    assert len(claimed) == 8
    other = await run_sweep(conn)  # runs while the batch is locked: skips it instead of waiting
    assert len(other.expired) == 12 and not {r["shipment_id"] for r in claimed} & set(other.expired)
    pid = dying.get_server_pid()
    dying.terminate()  # the process dies: PostgreSQL rolls its transaction back
    await _gone(conn, pid)
    later = await run_sweep(conn)
    assert sorted(later.expired) == sorted(r["shipment_id"] for r in claimed)
    assert await conn.fetchval("SELECT count(*) FROM audit_log WHERE action = 'expired'") == 20
