"""Nothing personal is left after erasure, and nothing unknown is stored at all: a reservation keeps
the parsed order, sender, currency and locale, the recipient's known fields and the add-on texts
only until the retention erase, which clears every one of them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import token_for
from tests.kss import new_session, options_request, run_admin
from tms_server.reservations import sweep

PERSONAL = {
    "given_name": "Klara",
    "family_name": "Joyce-Privat",
    "company_name": "Hemlig AB",
    "care_of": "c/o Mormor Svensson",
    "street_address": "Hemligvägen 7",
    "street_address2": "Lägenhet 1102",
    "email": "klara.privat@example.se",
    "phone": "+46701234567",
}
NOTE = "Ring Kalle Karlsson på 0709998877 innan leverans"
DOOR_CODE = "KOD 4321"
SQL = Path(__file__).resolve().parent.parent / "sql" / "006_reservation_privacy.sql"


async def _reserve_with_everything(client: Any, make_merchant: Any) -> str:
    m = await make_merchant()
    headers = {"Authorization": f"Bearer {await token_for(client, m)}"}
    body = options_request(new_session())
    body["recipient"].update(PERSONAL)
    resp = await client.post("/shippingoptions", json=body, headers=headers)
    home = next(o for o in (await resp.json())["shipping_options"] if o["id"] == "postnord-home")
    body.pop("geoblocking")
    body.pop("selected_shipping_option_id")
    body["selected_shipping_option"] = {
        "id": home["id"],
        "addons": [{"id": "entry-code", "data": {"selected": True, "text": DOOR_CODE}}],
    }
    body["customer_note"] = NOTE
    body["order"]["lines"][0]["shopper_message"] = NOTE
    body["padding_from_a_hostile_shop"] = "x" * 1_000_000
    resp = await client.post("/shipment", json=body, headers=headers)
    assert resp.status == 201, await resp.text()
    return str((await resp.json())["shipment_id"])


async def test_unknown_request_fields_are_not_stored(client: Any, conn: Any, make_merchant: Any) -> None:
    """A shopper's note (top level or in an order line) and a 1,000,000-character unknown field are not
    stored; the order, sender, recipient and add-on text that labels need are."""
    await _reserve_with_everything(client, make_merchant)
    row = await conn.fetchrow(
        "SELECT request, recipient, selection, length(request::text) AS size FROM shipments"
    )
    text = json.dumps(dict(row), default=str)
    assert NOTE not in text and "padding_from_a_hostile_shop" not in text
    assert row["size"] < 5000
    assert set(row["request"]) == {"currency", "locale", "order", "sender"}
    assert row["recipient"]["family_name"] == "Joyce-Privat" and row["recipient"]["postal_code"] == "111 34"
    assert [a["text"] for a in row["selection"]["addons"]] == [DOOR_CODE]


async def test_erasure_leaves_nothing_personal(
    client: Any, conn: Any, make_merchant: Any, dsn: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """After the retention erase: the row, `reservations show` and `reservations export` hold none of
    the recipient's fields, the door code or the note; ids, carrier codes, option, price and times stay."""
    sid = await _reserve_with_everything(client, make_merchant)
    await conn.execute(
        "UPDATE shipments SET status = 'confirmed', confirmed_at = now() - interval '100 days'"
    )
    result = await sweep.run(
        conn, reservation_ttl=3600, retention_expired=86400, retention_confirmed=86400, nonce_retention=86400
    )
    assert len(result.erased) == 1
    row = dict(await conn.fetchrow("SELECT * FROM shipments"))
    trail = [dict(r) for r in await conn.fetch("SELECT * FROM audit_log")]
    secrets = [*PERSONAL.values(), DOOR_CODE, NOTE]
    assert not any(s in json.dumps([row, trail], default=str) for s in secrets)
    assert "locations" not in row["selection"]["option"]  # the points nearest the recipient
    assert row["recipient"] is None and row["erased_at"] is not None
    assert row["option_id"] == "postnord-home" and row["carrier_product"]["identifier"] == "17"
    assert row["price"] > 0 and row["selection"]["addons"][0]["code"] == "A12"

    monkeypatch.setenv("TMS_DATABASE_URL", dsn)
    assert await run_admin("reservations", "show", sid) == 0
    for fmt in ("json", "csv"):
        assert (
            await run_admin(
                "reservations", "export", "--merchant", "shop-a", "--status", "confirmed", "--format", fmt
            )
            == 0
        )
    out = capsys.readouterr().out
    assert sid in out and "A12" in out
    assert not any(s in out for s in secrets), [s for s in secrets if s in out]


async def test_rows_stored_in_the_old_shape_are_cleaned_and_still_read(
    conn: Any,
    make_merchant: Any,
    dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A row as the previous release stored it (the raw request with a customer_note, an erased row
    still holding a door code) loses those parts in the migration, and the commands still read it."""
    await make_merchant()
    mid = await conn.fetchval("SELECT id FROM merchants")
    old_request = options_request() | {"customer_note": NOTE}
    old_request.pop("recipient")
    old_request["order"]["lines"][0]["shopper_message"] = NOTE  # unknown fields nested in the order too
    old_request["order"]["tags"] = None  # the KSS parser read null arrays as empty
    old_request["sender"]["address"]["door"] = NOTE
    selection = {"option": {"id": "postnord-home"}, "location": None, "timeslot": None,
                 "addons": [{"id": "entry-code", "type": "entry-code", "code": "A12", "price": 0, "text": DOOR_CODE}]}  # fmt: skip
    sid = await conn.fetchval(
        """INSERT INTO shipments (merchant_id, session_id, status, option_id, carrier, carrier_product, selection,
                                  request, recipient, price, currency, confirmed_at, erased_at)
           VALUES ($1, 'old-session', 'confirmed', 'postnord-home', 'postnord', $2, $3, $4, NULL, 6900, 'SEK',
                   now() - interval '100 days', now()) RETURNING id""",
        mid, {"identifier": "17", "name": "MyPack Home", "addon_identifiers": ["A12"]}, selection, old_request,
    )  # fmt: skip
    await conn.execute(SQL.read_text())
    row = await conn.fetchrow("SELECT request, selection FROM shipments")
    assert NOTE not in json.dumps(dict(row)) and DOOR_CODE not in json.dumps(dict(row))
    assert row["request"]["order"]["total_amount"] == 10000
    monkeypatch.setenv("TMS_DATABASE_URL", dsn)
    assert await run_admin("reservations", "show", str(sid)) == 0
    assert (
        await run_admin(
            "reservations", "export", "--merchant", "shop-a", "--status", "confirmed", "--format", "csv"
        )
        == 0
    )
    out = capsys.readouterr().out
    assert str(sid) in out and NOTE not in out and DOOR_CODE not in out
