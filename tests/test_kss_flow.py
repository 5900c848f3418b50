"""The whole KSS checkout flow over HTTP, and every error path of /shippingoptions and /shipment."""

from __future__ import annotations

import asyncio
import io
import uuid
from typing import Any

import orjson
import pytest

from tests.conftest import token_for
from tests.kss import new_session, options_request, shipment_request


async def _authed(client: Any, make_merchant: Any, identifier: str = "shop-a") -> dict[str, str]:
    m = await make_merchant(identifier)
    return {"Authorization": f"Bearer {await token_for(client, m)}"}


async def _options(client: Any, headers: dict[str, str], body: dict[str, Any]) -> list[dict[str, Any]]:
    resp = await client.post("/shippingoptions", json=body, headers=headers)
    assert resp.status == 200, await resp.text()
    options: list[dict[str, Any]] = (await resp.json())["shipping_options"]
    return options


async def test_full_checkout_flow(client: Any, conn: Any, make_merchant: Any) -> None:
    """auth -> options -> reserve -> repeat reserve (same id) -> get -> update -> confirm (twice)."""
    headers = await _authed(client, make_merchant)
    body = options_request(new_session())
    options = await _options(client, headers, body)
    assert options, "the example request must get options"

    first = await client.post("/shipment", json=shipment_request(body, options[0]), headers=headers)
    assert first.status == 201, await first.text()
    created = await first.json()
    sid = created["shipment_id"]
    assert first.headers["Location"] == f"/shipment/{sid}"
    assert created["selected_shipping_option"]["carrier"] == options[0]["carrier"]
    assert set(created["selected_shipping_option"]["carrier_product"]) >= {
        "identifier",
        "name",
        "addon_identifiers",
    }

    again = await client.post("/shipment", json=shipment_request(body, options[-1]), headers=headers)
    assert again.status == 201
    assert (await again.json())["shipment_id"] == sid

    got = await client.get(f"/shipment/{sid}", headers=headers)
    assert got.status == 200
    assert (await got.json())["selected_shipping_option"]["carrier"] == options[-1]["carrier"]

    put = await client.put(f"/shipment/{sid}", json=shipment_request(body, options[0]), headers=headers)
    assert put.status == 200, await put.text()
    assert put.headers["Location"] == f"/shipment/{sid}"
    assert (await put.json())["shipment_id"] == sid

    for _ in range(2):
        confirm = await client.post(f"/shipment/{sid}/confirm", headers=headers)
        assert confirm.status == 200
    row = await conn.fetchrow(
        "SELECT status, confirmed_at, recipient FROM shipments WHERE id = $1", uuid.UUID(sid)
    )
    assert row["status"] == "confirmed" and row["confirmed_at"] is not None
    assert row["recipient"]["postal_code"] == "111 34"
    assert await conn.fetchval("SELECT count(*) FROM shipments") == 1
    actions = [r["action"] for r in await conn.fetch("SELECT action FROM audit_log ORDER BY id")]
    assert actions == ["reserved", "updated", "updated", "confirmed"]


async def test_example_request_returns_options_with_required_fields(client: Any, make_merchant: Any) -> None:
    """The reference's Stockholm request against the example catalog returns complete options."""
    headers = await _authed(client, make_merchant)
    options = await _options(client, headers, options_request())
    assert len(options) >= 3
    for opt in options:
        assert {"id", "name", "carrier", "class", "type", "price", "tax_rate"} <= set(opt)
        assert isinstance(opt["price"], int) and opt["price"] >= 0
    assert any(o.get("locations") for o in options), "pickup points expected in Stockholm"


async def test_other_merchant_cannot_read_or_change(client: Any, make_merchant: Any) -> None:
    """Another merchant's shipment id is a 404 on GET, PUT and confirm, never a 403."""
    a = await _authed(client, make_merchant, "shop-a")
    b = await _authed(client, make_merchant, "shop-b")
    body = options_request(new_session())
    options = await _options(client, a, body)
    sid = (await (await client.post("/shipment", json=shipment_request(body, options[0]), headers=a)).json())[
        "shipment_id"
    ]
    assert (await client.get(f"/shipment/{sid}", headers=b)).status == 404
    assert (
        await client.put(f"/shipment/{sid}", json=shipment_request(body, options[0]), headers=b)
    ).status == 404
    assert (await client.post(f"/shipment/{sid}/confirm", headers=b)).status == 404
    # The same session id used by merchant B is B's own, separate reservation.
    other = await client.post("/shipment", json=shipment_request(body, options[0]), headers=b)
    assert other.status == 201
    assert (await other.json())["shipment_id"] != sid
    assert (await client.get(f"/shipment/{sid}", headers=a)).status == 200


async def test_concurrent_posts_for_one_session_make_one_row(
    client: Any, conn: Any, make_merchant: Any
) -> None:
    """Ten simultaneous POSTs for one session all succeed with the same shipment_id and one row."""
    headers = await _authed(client, make_merchant)
    body = options_request(new_session())
    options = await _options(client, headers, body)
    req = shipment_request(body, options[0])
    responses = await asyncio.gather(
        *(client.post("/shipment", json=req, headers=headers) for _ in range(10))
    )
    assert [r.status for r in responses] == [201] * 10
    ids = {(await r.json())["shipment_id"] for r in responses}
    assert len(ids) == 1
    assert await conn.fetchval("SELECT count(*) FROM shipments") == 1


async def test_put_unknown_or_malformed_id_is_404(client: Any, make_merchant: Any) -> None:
    """PUT/GET/confirm on an id we never issued (or not a UUID) is a 404 so KSS falls back to POST."""
    headers = await _authed(client, make_merchant)
    body = options_request(new_session())
    options = await _options(client, headers, body)
    for sid in (str(uuid.uuid4()), "not-a-uuid"):
        resp = await client.put(f"/shipment/{sid}", json=shipment_request(body, options[0]), headers=headers)
        assert resp.status == 404
        assert "failure_reason" in await resp.json()
        assert (await client.get(f"/shipment/{sid}", headers=headers)).status == 404


async def test_put_with_another_session_is_400(client: Any, make_merchant: Any) -> None:
    """A PUT whose session_id differs from the reservation's is a 400 naming session_id."""
    headers = await _authed(client, make_merchant)
    body = options_request(new_session())
    options = await _options(client, headers, body)
    sid = (
        await (
            await client.post("/shipment", json=shipment_request(body, options[0]), headers=headers)
        ).json()
    )["shipment_id"]
    other = shipment_request(options_request(new_session()), options[0])
    resp = await client.put(f"/shipment/{sid}", json=other, headers=headers)
    assert resp.status == 400
    assert (await resp.json())["failure_reason"].startswith("session_id")


async def test_unknown_option_is_not_available(client: Any, conn: Any, make_merchant: Any) -> None:
    """Reserving an option id the catalog does not offer is shipping_option_not_available, nothing stored."""
    headers = await _authed(client, make_merchant)
    body = options_request(new_session())
    options = await _options(client, headers, body)
    req = shipment_request(body, options[0])
    req["selected_shipping_option"]["id"] = "no-such-option"
    resp = await client.post("/shipment", json=req, headers=headers)
    assert resp.status == 400
    assert await resp.json() == {"failure_reason": "shipping_option_not_available"}
    assert await conn.fetchval("SELECT count(*) FROM shipments") == 0


@pytest.mark.parametrize(
    ("path", "value", "reason"),
    [
        (("recipient", "postal_code"), 11134, "recipient.postal_code: expected string, got integer"),
        (("order", "total_amount"), -1, "order.total_amount: must not be negative"),
        (("order", "total_amount"), "100", "order.total_amount: expected integer, got string"),
        (("order", "lines"), "x", "order.lines: expected array, got string"),
        (("currency",), 752, "currency: expected string, got integer"),
        (("session_id",), None, "session_id: expected string, got null"),
    ],
)
async def test_wrong_types_are_400_with_field_path(
    client: Any, make_merchant: Any, path: tuple[str, ...], value: Any, reason: str
) -> None:
    """Wrong types and negative amounts on /shippingoptions are a 400 whose failure_reason names the field."""
    headers = await _authed(client, make_merchant)
    body = options_request()
    target = body
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    resp = await client.post("/shippingoptions", json=body, headers=headers)
    assert resp.status == 400
    assert (await resp.json())["failure_reason"].startswith(reason)


async def test_negative_line_amounts_are_refused_on_shipment(client: Any, make_merchant: Any) -> None:
    """A negative unit price or weight in a reservation is a 400 naming the line field."""
    headers = await _authed(client, make_merchant)
    body = options_request(new_session())
    options = await _options(client, headers, body)
    req = shipment_request(body, options[0])
    req["order"]["lines"][0]["attributes"]["weight"] = -5
    resp = await client.post("/shipment", json=req, headers=headers)
    assert resp.status == 400
    assert (await resp.json())[
        "failure_reason"
    ] == "order.lines[0].attributes.weight: must not be negative, got -5"


async def test_unknown_fields_are_tolerated(client: Any, make_merchant: Any) -> None:
    """Fields KSS may add later are ignored, at the top level and nested."""
    headers = await _authed(client, make_merchant)
    body = options_request()
    body["new_kss_field"] = {"x": 1}
    body["recipient"]["new_field"] = [1, 2]
    await _options(client, headers, body)


async def test_oversized_body_is_413(client: Any, make_merchant: Any) -> None:
    """A body over 1 MiB is refused with 413 and a failure_reason."""
    headers = await _authed(client, make_merchant)
    body = options_request()
    body["padding"] = "x" * (1024 * 1024 + 10)
    data = io.BytesIO(orjson.dumps(body))
    resp = await client.post(
        "/shippingoptions", data=data, headers={**headers, "Content-Type": "application/json"}
    )
    assert resp.status == 413
    assert "too large" in (await resp.json())["failure_reason"]


async def test_preview_without_postal_code(client: Any, make_merchant: Any) -> None:
    """Without a postal code the answer is preview options without pickup locations, never an error."""
    headers = await _authed(client, make_merchant)
    body = options_request()
    body["recipient"] = {"country": "SE"}
    options = await _options(client, headers, body)
    assert options
    assert all(o["preview"] is True and not o.get("locations") for o in options)
    del body["recipient"]
    assert await _options(client, headers, body)


async def test_unknown_route_and_method_answer_json(client: Any) -> None:
    """Unknown paths are 404 and wrong methods 405, both with a failure_reason body."""
    resp = await client.get("/nope")
    assert resp.status == 404 and "failure_reason" in await resp.json()
    resp = await client.delete("/shipment/abc")
    assert resp.status == 405 and "failure_reason" in await resp.json()


async def test_invalid_address_wins_over_unavailable_option(client: Any, make_merchant: Any) -> None:
    """A postal code that is not Swedish fails as shipping_address_invalid, even with an unknown option."""
    headers = await _authed(client, make_merchant)
    body = options_request(new_session())
    options = await _options(client, headers, body)
    req = shipment_request(body, options[0])
    req["recipient"]["postal_code"] = "ABC-12"
    resp = await client.post("/shipment", json=req, headers=headers)
    assert await resp.json() == {"failure_reason": "shipping_address_invalid"}
    req["selected_shipping_option"]["id"] = "no-such-option"
    resp = await client.post("/shipment", json=req, headers=headers)
    assert resp.status == 400
    assert await resp.json() == {"failure_reason": "shipping_address_invalid"}


async def test_reservation_stores_label_data(client: Any, conn: Any, make_merchant: Any) -> None:
    """The stored reservation has recipient, sender, lines, option, location and carrier codes."""
    headers = await _authed(client, make_merchant)
    body = options_request(new_session())
    options = await _options(client, headers, body)
    pickup = next(o for o in options if o.get("locations"))
    resp = await client.post("/shipment", json=shipment_request(body, pickup), headers=headers)
    assert resp.status == 201
    row = await conn.fetchrow("SELECT * FROM shipments")
    assert row["recipient"]["given_name"] == "Klara"
    assert row["request"]["sender"]["sender_id"] == "warehouse-13"
    assert row["request"]["order"]["lines"][0]["reference"] == "sku-1234"
    assert row["selection"]["location"]["id"] == pickup["locations"][0]["id"]
    assert row["carrier_product"]["identifier"]
    assert row["option_id"] == pickup["id"] and row["currency"] == "SEK"
