"""Kustom/Klarna Checkout callbacks: the order-line conversion and fee arithmetic (tables), and the
four callbacks over HTTP on the real app and database, validation reserving (and refusing), the
secret URLs, and reconcile confirming a reservation made by validation."""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.kss import run_admin
from tms_server import kco, wire
from tms_server.catalog import example_catalog_text, parse_catalog
from tms_server.catalog.engine import request_facts
from tms_server.catalog.logistics import timeslots


@pytest.mark.parametrize(
    ("amount", "rate", "tax"),
    [(4900, 2500, 980), (0, 2500, 0), (1, 2500, 0), (3, 2500, 1), (100, 1200, 11), (-500, 2500, -100),
     (12345, 600, 699), (19900, 0, 0), (50000, 1000, 4545)],
)  # fmt: skip
def test_tax_inside_a_gross_amount(amount: int, rate: int, tax: int) -> None:
    assert kco.tax_of(amount, rate) == tax


def _line(kind: str, qty: int, unit: int, rate: int, *, discount: int = 0, **extra: Any) -> dict[str, Any]:
    total = unit * qty - discount
    return {"type": kind, "reference": f"r-{kind}-{unit}", "name": kind, "quantity": qty, "quantity_unit": "pcs",
            "unit_price": unit, "tax_rate": rate, "total_amount": total, "total_discount_amount": discount,
            "total_tax_amount": kco.tax_of(total, rate), **extra}  # fmt: skip


def _order(lines: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"order_amount": sum(ln["total_amount"] for ln in lines),
            "order_tax_amount": sum(ln["total_tax_amount"] for ln in lines), "order_lines": lines,
            "purchase_currency": "SEK", "locale": "sv-SE",
            "shipping_address": {"given_name": "Klara", "family_name": "Joyce", "email": "klara@example.com",
                                 "street_address": "Sveavägen 46", "postal_code": "111 34", "city": "Stockholm",
                                 "country": "se", "phone": "+46701234567"},
            "customer": {"type": "person"}, **extra}  # fmt: skip


def test_order_lines_become_the_engines_cart() -> None:
    shirt = _line("physical", 2, 24900, 2500, discount=1000,
                  shipping_attributes={"weight": 300, "dimensions": {"height": 50, "width": 200, "length": 300},
                                       "tags": ["member"]})  # fmt: skip
    coupon = _line("discount", 1, -5000, 2500)
    book = _line("physical", 1, 19900, 600, quantity_unit="kg")  # a label only: still one unit
    fee = _line("shipping_fee", 1, 4900, 2500)
    body = kco.kss_body(kco.read_order(_order([shirt, coupon, book, fee])), "order-1")
    lines = body["order"]["lines"]
    assert [ln["type"] for ln in lines] == [
        "physical",
        "discount",
        "physical",
    ]  # the old fee is ours: left out
    assert lines[0]["total_price_including_tax"] == 48800 and lines[0]["total_discount_amount"] == 1000
    assert lines[0]["attributes"] == {"weight": 300, "dimensions": {"height": 50, "width": 200, "length": 300},
                                      "tags": ["member"]}  # fmt: skip
    assert lines[1]["unit_price"] == -5000 and lines[2]["quantity"] == 1
    assert body["order"]["total_amount"] == 48800 - 5000 + 19900  # without the shipping fee
    assert body["recipient"]["country"] == "SE" and body["recipient"]["customer_type"] == "person"
    assert body["session_id"] == "kco:order-1" and body["currency"] == "SEK"
    wire.parse(body, wire.ShippingOptionsRequest)  # a valid KSS body
    billing_only = _order([shirt])
    billing_only["billing_address"] = billing_only.pop("shipping_address")
    assert kco.kss_body(billing_only, None)["recipient"]["postal_code"] == "111 34"


@pytest.mark.parametrize(
    ("existing", "new_price", "new_rate"),
    [([], 4900, 2500), ([_line("shipping_fee", 1, 4900, 2500)], 6900, 2500),
     ([_line("shipping_fee", 1, 4900, 2500)], 0, 2500), ([_line("shipping_fee", 1, 3333, 1200)], 4999, 600),
     ([_line("shipping_fee", 1, 4900, 2500), _line("shipping_fee", 1, 100, 2500)], 1, 2500),
     ([_line("shipping_fee", 1, 4900, 2500)], None, 0)],
)  # fmt: skip
def test_exactly_one_fee_line_and_totals_that_never_drift(
    existing: list[dict[str, Any]], new_price: int | None, new_rate: int
) -> None:
    cart = [
        _line("physical", 3, 3333, 2500),
        _line("physical", 1, 1999, 1200),
        _line("discount", 1, -777, 2500),
    ]
    order = _order(cart + existing)
    fee = (
        None
        if new_price is None
        else kco.fee_line({"id": "x", "name": "X", "price": new_price, "tax_rate": new_rate})
    )
    out = kco.set_fee(order, fee)
    fees = [ln for ln in out["order_lines"] if ln["type"] == "shipping_fee"]
    assert len(fees) == (0 if fee is None else 1)
    cart_amount = sum(ln["total_amount"] for ln in cart)
    cart_tax = sum(ln["total_tax_amount"] for ln in cart)
    assert out["order_amount"] == cart_amount + (new_price or 0)
    assert out["order_tax_amount"] == cart_tax + (kco.tax_of(new_price, new_rate) if new_price else 0)
    assert all(type(v) is int for v in (out["order_amount"], out["order_tax_amount"]))
    again = kco.set_fee({**order, **out}, fee)  # applying it twice changes nothing
    assert (again["order_amount"], again["order_tax_amount"]) == (
        out["order_amount"],
        out["order_tax_amount"],
    )


def test_bad_orders_name_the_field() -> None:
    good = _order([_line("physical", 1, 100, 2500)])
    for path, value, message in (("order_amount", "10", "order_amount"), ("order_lines", {}, "order_lines"),
                                 ("purchase_currency", "kronor", "purchase_currency"),
                                 ("shipping_address", "x", "shipping_address")):  # fmt: skip
        with pytest.raises(kco.KcoError, match=message):
            kco.read_order({**good, path: value})
    bad_line = copy.deepcopy(good)
    bad_line["order_lines"][0]["quantity"] = -1
    with pytest.raises(kco.KcoError, match=r"order_lines\[0\]\.quantity"):
        kco.read_order(bad_line)


# -- over HTTP ---------------------------------------------------------------------------------------
@pytest.fixture
def admin_database(dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """tms-admin (``run_admin``) reaches the test database."""
    monkeypatch.setenv("TMS_DATABASE_URL", dsn)


async def _urls(identifier: str, capsys: pytest.CaptureFixture[str], *extra: str) -> dict[str, str]:
    assert await run_admin("merchant", "kco-urls", identifier, "--base-url", "http://shop.test", *extra) == 0
    lines = capsys.readouterr().out.strip().splitlines()[1:]
    return {ln.split()[0]: ln.split()[1] for ln in lines}


def _path(url: str, order_id: str | None = "order-42") -> str:
    path = url.removeprefix("http://shop.test")
    return path.replace("{checkout.order.id}", order_id) if order_id else path.split("?")[0]


@pytest.fixture
async def kco_client(
    client: Any, make_merchant: Any, dsn: str, admin_database: None, capsys: pytest.CaptureFixture[str]
) -> Any:
    await make_merchant("shop-a")
    urls = await _urls("shop-a", capsys)
    return client, urls


def _checkout_order() -> dict[str, Any]:
    """The reference's address_update example, made self-consistent for a Swedish shop."""
    return _order([_line("physical", 5, 10000, 2500, shipping_attributes={
        "weight": 300, "dimensions": {"height": 100, "width": 100, "length": 100}, "tags": []})])  # fmt: skip


async def test_urls_are_made_once_and_rotate(
    dsn: str, admin_database: None, make_merchant: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    await make_merchant("shop-a")
    first = await _urls("shop-a", capsys)
    assert set(first) == set(kco.CALLBACKS)
    assert all(re.fullmatch(r"http://shop\.test/kco/[A-Za-z0-9_-]{43}/\w+\?order_id=\{checkout\.order\.id\}", u)
               for u in first.values())  # fmt: skip
    assert await _urls("shop-a", capsys) == first
    assert await _urls("shop-a", capsys, "--rotate") != first


async def test_address_update_offers_kco_options_and_one_fee_line(
    kco_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    client, urls = kco_client
    order = _checkout_order()
    with caplog.at_level(logging.INFO):
        resp = await client.post(_path(urls["address_update"]), json=order)
    assert resp.status == 200, await resp.text()
    data = await resp.json()
    options = data["shipping_options"]
    assert [o for o in options if o["preselected"]] == [options[0]]
    first = options[0]
    assert set(first) >= {"id", "name", "description", "price", "tax_amount", "tax_rate", "preselected",
                          "shipping_method", "delivery_details", "tms_reference", "selected_addons"}  # fmt: skip
    assert first["delivery_details"]["product"]["identifier"] and first["description"].startswith("Levereras")
    assert first["tax_amount"] == kco.tax_of(first["price"], first["tax_rate"])
    pickup = next(o for o in options if o["shipping_method"] == "PickUpPoint")
    assert pickup["delivery_details"]["pickup_location"]["id"]
    fees = [ln for ln in data["order_lines"] if ln["type"] == "shipping_fee"]
    assert (
        len(fees) == 1 and fees[0]["reference"] == first["id"] and fees[0]["total_amount"] == first["price"]
    )
    assert data["order_amount"] == order["order_amount"] + first["price"]
    assert data["order_tax_amount"] == order["order_tax_amount"] + fees[0]["total_tax_amount"]
    secret = urls["address_update"].split("/")[4]
    assert all(secret not in r.getMessage() and secret not in str(r.__dict__) for r in caplog.records)
    # The shopper's choice is kept while it is still offered.
    second = options[1]
    again = await client.post(
        _path(urls["country_change"]), json={**order, "selected_shipping_option": second}
    )
    kept = await again.json()
    assert next(o for o in kept["shipping_options"] if o["preselected"])["id"] == second["id"]


async def test_shipping_option_update_replaces_the_fee_line(kco_client: Any) -> None:
    client, urls = kco_client
    order = _checkout_order()
    offered = await (await client.post(_path(urls["address_update"]), json=order)).json()
    with_fee = {**order, "order_amount": offered["order_amount"], "order_tax_amount": offered["order_tax_amount"],
                "order_lines": offered["order_lines"]}  # fmt: skip
    other = next(
        o for o in offered["shipping_options"] if o["price"] != offered["shipping_options"][0]["price"]
    )
    resp = await client.post(
        _path(urls["shipping_option_update"]), json={**with_fee, "selected_shipping_option": other}
    )
    assert resp.status == 200
    data = await resp.json()
    fees = [ln for ln in data["order_lines"] if ln["type"] == "shipping_fee"]
    assert len(fees) == 1 and fees[0]["reference"] == other["id"]
    assert data["order_amount"] == order["order_amount"] + other["price"]
    gone = await client.post(_path(urls["shipping_option_update"]),
                             json={**with_fee, "selected_shipping_option": {**other, "id": "no-such-option"}})  # fmt: skip
    assert gone.status == 400 and "selected_shipping_option.id" in (await gone.json())["failure_reason"]


async def test_validation_reserves_and_reconcile_confirms(
    kco_client: Any, conn: asyncpg.Connection, dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    client, urls = kco_client
    order = _checkout_order()
    offered = await (await client.post(_path(urls["address_update"]), json=order)).json()
    chosen = next(o for o in offered["shipping_options"] if o["shipping_method"] == "PickUpPoint")
    final = {**order, "order_id": "order-42", "selected_shipping_option": chosen}
    resp = await client.post(_path(urls["validation"], None), json=final)
    assert resp.status == 200, await resp.text()
    reference = (await resp.json())["tms_reference"]
    assert reference == chosen["tms_reference"]
    row = await conn.fetchrow(
        "SELECT session_id, status, option_id FROM shipments WHERE id = $1::uuid", reference
    )
    assert dict(row) == {"session_id": "kco:order-42", "status": "reserved", "option_id": chosen["id"]}
    assert (
        await client.post(_path(urls["validation"], None), json=final)
    ).status == 200  # refreshed, not doubled
    assert await conn.fetchval("SELECT count(*) FROM shipments") == 1
    completed = {"order_id": "order-42", "status": "checkout_complete",
                 "selected_shipping_option": {"tms_reference": reference}}  # fmt: skip
    (tmp_path / "orders.json").write_text(json.dumps([completed]))
    assert await run_admin("reservations", "reconcile", str(tmp_path / "orders.json"), "--yes") == 0
    assert "confirmed 1 reservation" in capsys.readouterr().out
    assert await conn.fetchval("SELECT status FROM shipments WHERE id = $1::uuid", reference) == "confirmed"


async def test_validation_denies_a_vanished_option_and_a_passed_cutoff(kco_client: Any) -> None:
    client, urls = kco_client
    order = _checkout_order()
    offered = await (await client.post(_path(urls["address_update"]), json=order)).json()
    vanished = {**offered["shipping_options"][0], "id": "retired-option"}
    resp = await client.post(_path(urls["validation"]), json={**order, "selected_shipping_option": vanished})
    assert resp.status == 400
    denial = await resp.json()
    assert denial["error_type"] == "approval_failed" and denial["reason"] == "shipping_option_not_available"
    assert denial["error_text"]
    # A timeslot whose cutoff passed (within the week the check looks back on).
    catalog = parse_catalog(example_catalog_text())
    option = catalog.option("budbee-evening")
    assert option is not None
    now = datetime.now(UTC)
    req = wire.parse(kco.kss_body(order, "order-43"), wire.ShippingOptionsRequest)
    passed = [s for s in timeslots(catalog, option, request_facts(catalog, req, now), now, horizon_days=7)
              if s.cutoff <= now]  # fmt: skip
    slot = passed[-1]
    evening = next(o for o in offered["shipping_options"] if o["id"] == "budbee-evening")
    late = copy.deepcopy(evening)
    late["delivery_details"]["timeslot"] = {"id": slot.id, "start": "", "end": ""}
    resp = await client.post(_path(urls["validation"]), json={**order, "selected_shipping_option": late})
    assert resp.status == 400 and (await resp.json())["reason"] == "cutoff_time_expired"
    no_address = {**order, "shipping_address": {**order["shipping_address"], "postal_code": "ABC"}}
    resp = await client.post(
        _path(urls["validation"]), json={**no_address, "selected_shipping_option": evening}
    )
    assert resp.status == 400 and (await resp.json())["error_type"] == "address_error"


async def test_unknown_secrets_and_bad_bodies(kco_client: Any) -> None:
    client, urls = kco_client
    assert (await client.post("/kco/" + "x" * 43 + "/address_update", json=_checkout_order())).status == 404
    assert (
        await client.post(_path(urls["address_update"]).replace("address_update", "nope"), json={})
    ).status == 404
    resp = await client.post(_path(urls["address_update"]), json={**_checkout_order(), "order_amount": "10"})
    assert resp.status == 400 and "order_amount" in (await resp.json())["failure_reason"]
    resp = await client.post(
        _path(urls["address_update"]), data=b"not json", headers={"Content-Type": "application/json"}
    )
    assert resp.status == 400


async def test_a_pickup_points_surcharge_is_in_the_fee_and_the_reservation(
    kco_client: Any, conn: asyncpg.Connection
) -> None:
    """Kiruna's point costs 20.00 more (the example's ``locations = { pn-kiruna = 2000 }``): the
    offered price, the fee line and the reservation agree, and validation refuses an order that
    pays less than what it would reserve."""
    client, urls = kco_client
    order = _order([_line("physical", 1, 20000, 2500, shipping_attributes={"weight": 500})])
    order["shipping_address"] = {**order["shipping_address"], "postal_code": "981 31", "city": "Kiruna"}
    del order["locale"]  # the checkout sends none with address_update: the shipping country's language
    offered = await (await client.post(_path(urls["address_update"], "kir-1"), json=order)).json()
    point = next(o for o in offered["shipping_options"] if o["id"] == "postnord-service-point")
    assert point["delivery_details"]["pickup_location"]["id"] == "pn-kiruna"
    assert point["description"].startswith("Levereras")
    fee = next(ln for ln in offered["order_lines"] if ln["type"] == "shipping_fee")
    assert point["preselected"] and fee["total_amount"] == point["price"] == 4900 + 2000
    paid = {**order, "order_id": "kir-1", "order_lines": offered["order_lines"],
            "order_amount": offered["order_amount"], "order_tax_amount": offered["order_tax_amount"],
            "selected_shipping_option": point}  # fmt: skip
    resp = await client.post(_path(urls["validation"], None), json=paid)
    assert resp.status == 200, await resp.text()
    reference = (await resp.json())["tms_reference"]
    assert await conn.fetchval("SELECT price FROM shipments WHERE id = $1::uuid", reference) == point["price"]
    # Paying for one option and validating another (or a stale price) is refused.
    other = next(
        o for o in offered["shipping_options"] if o["id"] != point["id"] and o["price"] != point["price"]
    )
    resp = await client.post(_path(urls["validation"], None),
                             json={**paid, "order_id": "kir-2", "selected_shipping_option": other})  # fmt: skip
    assert resp.status == 400 and (await resp.json())["reason"] == "shipping_price_changed"


async def test_simultaneous_validations_of_one_order_reserve_once(
    kco_client: Any, conn: asyncpg.Connection
) -> None:
    client, urls = kco_client
    order = _checkout_order()
    offered = await (await client.post(_path(urls["address_update"]), json=order)).json()
    free = next(o for o in offered["shipping_options"] if o["price"] == 0)
    final = {**order, "order_id": "order-77", "selected_shipping_option": free}
    answers = await asyncio.gather(
        *(client.post(_path(urls["validation"], None), json=final) for _ in range(16))
    )
    assert {a.status for a in answers} == {200}
    assert await conn.fetchval("SELECT count(*) FROM shipments WHERE session_id = 'kco:order-77'") == 1


async def test_hostile_orders_get_a_400_naming_the_field(
    kco_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    client, urls = kco_client
    order = _checkout_order()
    deep: Any = {}
    for _ in range(300):
        deep = {"a": deep}
    billing = {k: v for k, v in order.items() if k != "shipping_address"}
    cases = [
        ({**order, "tags": 5}, "tags"),
        ({**billing, "billing_address": {**order["shipping_address"], "country": 5}}, "billing_address.country"),
        ({**order, "selected_shipping_option": {"id": "x", "selected_addons": 5}}, "selected_addons"),
        ({**order, "order_amount": 18446744073709551615}, "order_amount"),
        ({**order, "order_tax_amount": -1}, "order_tax_amount"),
        ({**order, "order_lines": [{**order["order_lines"][0], "x": deep}]}, "nested too deeply"),
        ({**order, "order_amount": 0, "order_tax_amount": 0, "order_lines": [_line("shipping_fee", 1, 4900, 2500)]},
         "order_amount"),
    ]  # fmt: skip
    with caplog.at_level(logging.INFO):
        for body, named in cases:
            for name in ("address_update", "shipping_option_update", "validation"):
                resp = await client.post(_path(urls[name], "order-9"), json=body)
                if resp.status == 200:  # a body a callback does not read (removing a fee is fine)
                    continue
                assert resp.status == 400, (named, name, await resp.text())
                data = await resp.json()
                if "error_type" in data:  # validation denying the purchase is an answer too
                    assert name == "validation" and data["error_text"]
                    continue
                assert named in data["failure_reason"] or name == "shipping_option_update", (named, data)
        secret = urls["validation"].split("/")[4]
        for method in ("GET", "PUT"):
            assert (await client.request(method, _path(urls["validation"]))).status == 405
        assert (await client.post(_path(urls["validation"], None) + "/extra", json=order)).status == 404
    assert all(secret not in r.getMessage() and secret not in str(r.__dict__) for r in caplog.records)
