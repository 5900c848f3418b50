"""Real carts: Klarna's order line types, physical goods only in the parcel, the amount rules compare,
and shipment capacity (one parcel: the whole cart's weight and volume)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import load_fixture, token_for
from tests.kss import new_session, shipment_request
from tms_server import wire
from tms_server.catalog import (
    SelectionError,
    check_selection,
    example_catalog_text,
    explain,
    parse_catalog,
    shipping_options,
)

# Tuesday 24 November 2026, 10:30 in Stockholm: a working day before the cutoffs.
NOW = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)
EXAMPLE = parse_catalog(example_catalog_text())
COUPON = {
    "reference": "coupon",
    "type": "discount",
    "quantity": 1,
    "unit_price": -5000,
    "total_price_including_tax": -5000,
    "total_tax_amount": -1000,
    "tax_rate": 2500,
}


def reference() -> dict[str, Any]:
    """The reference's /shippingoptions example request."""
    body: dict[str, Any] = load_fixture("kss_shippingoptions_request.json")
    return body


def with_coupon() -> dict[str, Any]:
    """The issue's input: the reference request plus a 50 SEK discount line, total lowered to match."""
    body = reference()
    body["order"]["lines"].append(copy.deepcopy(COUPON))
    body["order"]["total_amount"] -= 5000
    return body


def options_for(body: dict[str, Any], now: datetime = NOW) -> list[dict[str, Any]]:
    return shipping_options(EXAMPLE, wire.parse(body, wire.ShippingOptionsRequest), now=now)


def line(kind: str | None, **fields: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"reference": f"sku-{kind}", "quantity": 1, **fields}
    if kind is not None:
        out["type"] = kind
    return out


# --- A. order line types ----------------------------------------------------------------------------


def test_discount_line_from_the_issue_gets_the_same_options() -> None:
    """The reference request plus a discount line gets options (it was a 400), the same as without it."""
    plain = [o["id"] for o in options_for(reference())]
    assert [o["id"] for o in options_for(with_coupon())] == plain
    assert plain[0] == "postnord-service-point"


async def test_discount_line_over_http_options_and_reservation(client: Any, make_merchant: Any) -> None:
    """Over HTTP: /shippingoptions answers 200 and POST /shipment 201 for the cart with a coupon."""
    m = await make_merchant()
    headers = {"Authorization": f"Bearer {await token_for(client, m)}"}
    body = with_coupon()
    body["session_id"] = new_session()
    resp = await client.post("/shippingoptions", json=body, headers=headers)
    assert resp.status == 200, await resp.text()
    options = (await resp.json())["shipping_options"]
    first = next(o for o in options if not o.get("timeslots"))
    reserved = await client.post("/shipment", json=shipment_request(body, first), headers=headers)
    assert reserved.status == 201, await reserved.text()


@pytest.mark.parametrize("kind", ["discount", "gift_card", "store_credit", "surcharge", "a_future_type"])
def test_negative_amounts_are_accepted_on_lines_that_reduce_the_order(kind: str) -> None:
    """Discount, gift card, store credit and surcharge lines (checkout plugins send rounding corrections
    and negative fees as surcharges), and types Klarna may add, may carry negative money."""
    body = reference()
    body["order"]["lines"].append(
        line(kind, unit_price=-2000, total_price_including_tax=-2000, total_tax_amount=-400)
    )
    assert options_for(body)


@pytest.mark.parametrize("kind", [None, "physical", "digital", "shipping_fee", "sales_tax"])
@pytest.mark.parametrize(
    "field", ["unit_price", "total_price_including_tax", "total_tax_amount", "total_discount_amount"]
)
def test_negative_amounts_are_refused_on_other_lines(kind: str | None, field: str) -> None:
    """Goods, fees and taxes cannot be negative: a 400 naming the line's field and its type."""
    body = reference()
    body["order"]["lines"].append(line(kind, **{field: -1}))
    with pytest.raises(wire.WireError) as err:
        wire.parse(body, wire.ShippingOptionsRequest)
    assert (
        str(err.value)
        == f"order.lines[1].{field}: must not be negative on a {kind or 'physical'} line, got -1"
    )


@pytest.mark.parametrize("kind", ["discount", "gift_card", "digital", "a_future_type", None])
@pytest.mark.parametrize(
    ("path", "value", "reason"),
    [
        (("quantity",), -1, "order.lines[1].quantity: must not be negative, got -1"),
        (("attributes", "weight"), -5, "order.lines[1].attributes.weight: must not be negative, got -5"),
        (
            ("attributes", "dimensions", "width"),
            -3,
            "order.lines[1].attributes.dimensions.width: must not be negative, got -3",
        ),
        (("tax_rate",), -2500, "order.lines[1].tax_rate: must not be negative, got -2500"),
    ],
)
def test_quantity_weight_dimensions_never_negative(
    kind: str | None, path: tuple[str, ...], value: int, reason: str
) -> None:
    """Whatever the line type, quantity, weight, dimensions and tax rate are never negative."""
    body = reference()
    extra = line(kind, attributes={"weight": 10, "dimensions": {"height": 1, "width": 1, "length": 1}})
    target = extra
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    body["order"]["lines"].append(extra)
    with pytest.raises(wire.WireError) as err:
        wire.parse(body, wire.ShippingOptionsRequest)
    assert str(err.value) == reason


def test_only_physical_lines_weigh() -> None:
    """A 50 kg digital line (a shop's data error) and a discount line do not make the parcel heavy."""
    body = reference()
    body["order"].pop("total_weight")
    body["order"]["lines"].append(line("digital", attributes={"weight": 50000}))
    body["order"]["lines"].append(line("discount", unit_price=-100, attributes={"weight": 50000}))
    ids = [o["id"] for o in options_for(body)]
    assert "postnord-service-point" in ids  # total_weight_max 20000 holds: the parcel weighs 2 kg
    assert "dhl-freight-bulky" not in ids  # total_weight_min 35001 does not


def test_unknown_line_type_counts_as_physical() -> None:
    """A type Klarna adds later is weighed, so a capacity limit never errs on the unsafe side."""
    body = reference()
    body["order"].pop("total_weight")
    body["order"]["lines"].append(line("a_future_type", attributes={"weight": 40000}))
    ids = [o["id"] for o in options_for(body)]
    assert "postnord-service-point" not in ids and "dhl-freight-bulky" in ids


def test_nothing_physical_to_ship_gets_the_digital_option_only() -> None:
    """A cart of an e-book and a gift card code: the example catalog offers only digital delivery."""
    body = reference()
    body["order"]["lines"] = [
        line("digital", unit_price=9900, total_price_including_tax=9900),
        line(
            "digital", unit_price=50000, total_price_including_tax=50000, attributes={"tags": ["gift-card"]}
        ),
    ]
    body["order"].pop("total_weight")
    options = options_for(body)
    assert [o["id"] for o in options] == ["digital-delivery"]
    assert options[0]["price"] == 0


def test_explain_names_the_physical_goods_fact() -> None:
    """The trace says a parcel option was hidden because the cart has nothing physical to ship."""
    body = reference()
    body["order"]["lines"] = [line("digital", unit_price=100)]
    req = wire.parse(body, wire.ShippingOptionsRequest)
    trace = {t.option_id: t for t in explain(EXAMPLE, req, now=NOW).options}
    assert trace["postnord-home"].decided_by == "when.physical_goods: cart has nothing physical to ship"


def _free_above_case(extra: dict[str, Any], total: int) -> int:
    body = reference()
    body["order"]["lines"].append(extra)
    body["order"]["total_amount"] = total
    return next(o for o in options_for(body) if o["id"] == "postnord-service-point")["price"]


def test_gift_card_purchase_does_not_buy_free_shipping() -> None:
    """40,000 of goods plus a 20,000 gift card bought (tagged gift-card) stays under free_above 50,000."""
    card = line(
        "digital", unit_price=20000, total_price_including_tax=20000, attributes={"tags": ["gift-card"]}
    )
    assert _free_above_case(card, 60000) == 2900  # the order-total bracket from 30,000, not free
    untagged = line("digital", unit_price=20000, total_price_including_tax=20000)
    assert _free_above_case(untagged, 60000) == 0  # the same line untagged counts


def test_paying_with_a_gift_card_keeps_the_order_value() -> None:
    """Goods worth 55,000 paid 20,000 by gift card (total_amount 35,000) still ship free above 50,000."""
    paid = line("gift_card", unit_price=-20000, total_price_including_tax=-20000)
    assert _free_above_case(paid, 35000) == 0


def test_order_total_excludes_is_validated() -> None:
    """Physical lines cannot be left out; unknown keys are typos."""
    text = example_catalog_text().replace(
        'line_tags = ["gift-card"]', 'line_tags = ["gift-card"]\nline_type = ["x"]'
    )
    with pytest.raises(Exception, match=r"order_total_excludes.line_type: unknown key"):
        parse_catalog(text)
    text = example_catalog_text().replace(
        'line_types = ["gift_card"', 'line_types = ["physical", "gift_card"'
    )
    with pytest.raises(Exception, match=r"physical lines are the goods"):
        parse_catalog(text)


# --- B. shipment capacity ---------------------------------------------------------------------------


def thirty_kilos() -> dict[str, Any]:
    """The issue's input: one line of 3 units of 10 kg, 250x200x300 mm, to SE 111 34."""
    body = reference()
    body["order"]["lines"] = [
        {
            "reference": "sku-1",
            "type": "physical",
            "quantity": 3,
            "unit_price": 10000,
            "total_price_including_tax": 30000,
            "attributes": {"weight": 10000, "dimensions": {"height": 250, "width": 200, "length": 300}},
        }
    ]
    body["order"]["total_amount"] = 30000
    body["order"].pop("total_weight")
    return body


def test_thirty_kilo_shipment_is_not_offered_the_locker() -> None:
    """Three 10 kg units weigh 30 kg in one parcel: Instabox (20 kg) is hidden and says why."""
    req = wire.parse(thirty_kilos(), wire.ShippingOptionsRequest)
    assert "instabox-locker" not in [o["id"] for o in shipping_options(EXAMPLE, req, now=NOW)]
    trace = {t.option_id: t for t in explain(EXAMPLE, req, now=NOW).options}
    assert trace["instabox-locker"].decided_by == (
        "when.parcel_weight_max: shipment weight 30000 g exceeds parcel_weight_max 20000 g"
    )


def test_thirty_kilo_locker_reservation_is_refused() -> None:
    """POST /shipment of the locker for the 30 kg cart is refused (it was committed with 201)."""
    body = thirty_kilos()
    body.pop("geoblocking")
    body.pop("selected_shipping_option_id")
    body["selected_shipping_option"] = {"id": "instabox-locker", "location": {"id": "ib-sthlm-central"}}
    with pytest.raises(SelectionError) as err:
        check_selection(EXAMPLE, wire.parse(body, wire.ShipmentRequest), now=NOW)
    assert err.value.reason == "shipping_option_not_available"
    assert "parcel_weight_max" in err.value.detail


def test_units_that_fit_one_by_one_but_not_together_are_refused() -> None:
    """Four 300x390x390 mm boxes each fit 600x400x400 mm, but 182.5 l do not fit in 96 l."""
    body = reference()
    body["order"]["lines"][0]["quantity"] = 4
    body["order"]["lines"][0]["attributes"]["dimensions"] = {"height": 300, "width": 390, "length": 390}
    req = wire.parse(body, wire.ShippingOptionsRequest)
    trace = {t.option_id: t for t in explain(EXAMPLE, req, now=NOW).options}
    assert trace["instabox-locker"].decided_by == (
        "when.parcel_dimensions_max: shipment volume 182.5 l (4 units) exceeds the box's 96.0 l (600x400x400 mm)"
    )
    body["order"]["lines"][0]["quantity"] = 2  # 91.3 l: fits
    req = wire.parse(body, wire.ShippingOptionsRequest)
    assert "instabox-locker" in [o["id"] for o in shipping_options(EXAMPLE, req, now=NOW)]


def test_a_unit_fits_in_any_orientation() -> None:
    """A 390x590x100 mm unit lies in a 600x400x400 mm box turned; a 610 mm one does not."""
    body = reference()
    body["order"]["lines"][0]["quantity"] = 1
    body["order"]["lines"][0]["attributes"]["dimensions"] = {"height": 390, "width": 100, "length": 590}
    assert "instabox-locker" in [o["id"] for o in options_for(body)]
    body["order"]["lines"][0]["attributes"]["dimensions"]["length"] = 610
    assert "instabox-locker" not in [o["id"] for o in options_for(body)]


@pytest.mark.parametrize(
    "dimensions",
    [{"width": 5000, "length": 5000}, {"height": 0, "width": 5000, "length": 5000}, {"length": 610}],
)
def test_a_partly_known_size_that_cannot_fit_is_refused(dimensions: dict[str, int]) -> None:
    """The known sides are a lower bound: two 5 m sides (or one 610 mm side) never fit 600x400x400 mm."""
    body = reference()
    body["order"]["lines"][0]["quantity"] = 1
    body["order"]["lines"][0]["attributes"]["dimensions"] = dimensions
    assert "instabox-locker" not in [o["id"] for o in options_for(body)]


def test_zero_quantity_goods_are_nothing_to_ship() -> None:
    """A physical line of quantity 0 next to a digital one: nothing physical to ship."""
    body = reference()
    body["order"]["lines"][0]["quantity"] = 0
    body["order"]["lines"].append(line("digital", unit_price=100))
    body["order"].pop("total_weight")
    assert [o["id"] for o in options_for(body)] == ["digital-delivery"]


def test_unknown_dimensions_are_allowed_unless_the_catalog_refuses_them() -> None:
    """A line without dimensions (or with a zero side) passes a size limit, unless unknown_dimensions = refuse."""
    body = reference()
    body["order"]["lines"][0]["attributes"]["dimensions"] = {"height": 0, "width": 100, "length": 100}
    assert "instabox-locker" in [o["id"] for o in options_for(body)]
    strict = parse_catalog(
        example_catalog_text().replace(
            "parcel_dimensions_max = [600, 400, 400]",
            'parcel_dimensions_max = [600, 400, 400]\nunknown_dimensions = "refuse"',
        )
    )
    req = wire.parse(body, wire.ShippingOptionsRequest)
    trace = {t.option_id: t for t in explain(strict, req, now=NOW).options}
    assert trace["instabox-locker"].decided_by == (
        "when.unknown_dimensions: size of 1 physical line(s) unknown (unknown_dimensions = refuse)"
    )


UNIT = st.fixed_dictionaries(
    {
        "quantity": st.integers(0, 6),
        "weight": st.one_of(st.none(), st.integers(0, 25000)),
        "dims": st.one_of(st.none(), st.tuples(*[st.integers(1, 800)] * 3)),
        "type": st.sampled_from([None, "physical", "digital", "discount", "gift_card"]),
    }
)


@settings(max_examples=300, deadline=None)
@given(st.lists(UNIT, min_size=1, max_size=6))
def test_the_locker_is_offered_only_for_a_parcel_that_can_fit(units: list[dict[str, Any]]) -> None:
    """Whatever the cart: when the locker is offered, the physical units weigh at most 20 kg, each fits
    600x400x400 mm in some orientation and their volume fits the box's."""
    body = reference()
    body["order"].pop("total_weight")
    body["order"]["lines"] = []
    for i, u in enumerate(units):
        attributes: dict[str, Any] = {}
        if u["weight"] is not None:
            attributes["weight"] = u["weight"]
        if u["dims"] is not None:
            attributes["dimensions"] = dict(zip(("height", "width", "length"), u["dims"], strict=True))
        entry = line(u["type"], quantity=u["quantity"], attributes=attributes, reference=f"l{i}")
        body["order"]["lines"].append(entry)
    offered = "instabox-locker" in [o["id"] for o in options_for(body)]
    goods = [u for u in units if u["type"] in (None, "physical")]
    weight = sum((u["weight"] or 0) * u["quantity"] for u in goods)
    sized = [u for u in goods if u["dims"] is not None and u["quantity"]]
    each_fits = all(
        all(a <= b for a, b in zip(sorted(u["dims"], reverse=True), (600, 400, 400), strict=True))
        for u in sized
    )
    volume = sum(u["dims"][0] * u["dims"][1] * u["dims"][2] * u["quantity"] for u in sized)
    can_fit = (
        any(u["quantity"] for u in goods) and weight <= 20000 and each_fits and volume <= 600 * 400 * 400
    )
    assert offered == can_fit
