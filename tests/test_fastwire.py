"""The fast decoder never accepts what the strict parser refuses, and reads the same values.

``tms_server.fastwire`` is a shortcut in front of ``wire.parse``: when it accepts a body, the
answer is computed from its structs without the strict parser ever seeing the body. So every body
it accepts must be one the strict parser accepts, with equal values. Checked on the workload
generator's bodies, on hand-picked edge cases, and on random mutations of real bodies.
"""

from __future__ import annotations

import json
import random
from typing import Any

import attrs
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tms_server import fastwire, wire, workload
from tms_server.reservations.record import StoredRequest, to_json
from tms_server.web.options import decode_json


def _strict(raw: bytes) -> wire.ShippingOptionsRequest | None:
    try:
        return wire.parse(decode_json(raw), wire.ShippingOptionsRequest)
    except wire.WireError:
        return None


def _same(fast: Any, slow: Any, path: str = "") -> None:
    if attrs.has(type(slow)):
        for field in attrs.fields(type(slow)):
            _same(getattr(fast, field.name), getattr(slow, field.name), f"{path}.{field.name}")
    elif isinstance(slow, tuple):
        assert isinstance(fast, tuple) and len(fast) == len(slow), path
        for i, (f, s) in enumerate(zip(fast, slow, strict=True)):
            _same(f, s, f"{path}[{i}]")
    else:
        assert type(fast) is type(slow) and fast == slow, f"{path}: {fast!r} != {slow!r}"


def _check(raw: bytes) -> bool:
    """Whether the fast decoder accepted ``raw`` (after checking that it was right to; the same
    bytes go through the /shipment decoder too)."""
    _check_shipment(raw)
    fast = fastwire.decode(raw)
    if fast is None:
        return False
    slow = _strict(raw)
    assert slow is not None, f"fast decoder accepted a body the strict parser refuses: {raw[:300]!r}"
    _same(fast, slow)
    return True


def test_generated_bodies_agree_and_valid_ones_take_the_fast_path() -> None:
    for raw in [*workload.varied(31, 1500), *workload.sessions(32, 500)]:
        assert _check(raw), f"a valid body missed the fast path: {raw[:300]!r}"
    for raw in workload.malformed(33, 1500):
        _check(raw)


def _dumps(body: Any) -> bytes:
    """JSON text; the standard library's, which writes integers of any size (orjson refuses)."""
    return json.dumps(body, ensure_ascii=False).encode()


def _body(**changes: Any) -> dict[str, Any]:
    body = workload.shipping_options_body(random.Random(5))
    body["recipient"] = {"country": "SE", "postal_code": "111 34"}
    body["order"]["lines"] = [
        {"quantity": 1, "type": "physical", "unit_price": 100, "attributes": {"weight": 5}}
    ]
    for path, value in changes.items():
        target = body
        *parents, last = path.split("__")
        for key in parents:
            target = target[int(key)] if key.isdigit() else target[key]
        target[last] = value
    return body


EDGE_CASES = [
    _body(session_id=" "),
    _body(session_id="\u00a0\u2003"),
    _body(session_id="x" * 200),
    _body(session_id="x" * 201),
    _body(session_id="😀" * 200),
    _body(session_id="😀" * 201),
    _body(currency="SEK\n"),
    _body(currency="sek"),
    _body(currency="SEKK"),
    _body(recipient__country="se"),
    _body(recipient__country="S1"),
    _body(recipient__country="SE\n"),
    _body(recipient__customer_type="Person"),
    _body(recipient__customer_type=None),
    _body(recipient__email="a" * 321),
    _body(recipient__postal_code="1" * 65),
    _body(order__total_amount=2**63 - 1),
    _body(order__total_amount=2**63),
    _body(order__total_amount=2**64 - 1),
    _body(order__total_amount=2**64),
    _body(order__total_amount=-1),
    _body(order__total_amount=1.0),
    _body(order__total_amount=True),
    _body(order__lines__0__quantity=-1),
    _body(order__lines__0__unit_price=-1),
    _body(order__lines__0__type="discount", order__lines__0__unit_price=-100),
    _body(order__lines__0__type="discount", order__lines__0__tax_rate=-100),
    _body(order__lines__0__type="x" * 64),
    _body(order__lines__0__type="x" * 65),
    _body(order__lines__0__type="mystery", order__lines__0__unit_price=-5),
    _body(order__lines__0__attributes={"weight": -1}),
    _body(order__lines__0__attributes={"tags": ["a", 1]}),
    _body(order__lines__0__attributes={"dimensions": {"height": 1, "width": -1}}),
    _body(order__lines__0__attributes=None),
    _body(order__tags=["a", None]),
    _body(geoblocking=1),
    _body(sender={"sender_id": 5}),
    _body(sender={"address": {"country": "Sverige"}}),
]
RAW_CASES = [
    b"\xef\xbb\xbf" + orjson.dumps(_body()),
    orjson.dumps(_body()) + b"\n",
    orjson.dumps(_body()).replace(b'"session_id"', b'"session_id":"a","session_id"', 1),
    orjson.dumps(_body()).replace(b"}", b',"deep":' + b"[" * 1100 + b"]" * 1100 + b"}", 1),
    orjson.dumps(_body()).replace(b'"111 34"', b'"111\\u0000 34"'),
    orjson.dumps(_body()).replace(b'"111 34"', b'"111\\ud800 34"'),
    b"[]",
    b"null",
    # msgspec skips undeclared fields without orjson's checks: not UTF-8, numbers past a double.
    b'{"note":"\xff",' + orjson.dumps(_body())[1:],
    b'{"note":"\xed\xa0\x80",' + orjson.dumps(_body())[1:],
    b'{"note":1e400,' + orjson.dumps(_body())[1:],
    b'{"note":-1.8e308,' + orjson.dumps(_body())[1:],
    b'{"note":' + b"9" * 310 + b"," + orjson.dumps(_body())[1:],
    orjson.dumps(_body()).replace(b'"order":{', b'"order":{"zz":1e400,', 1),
]


@pytest.mark.parametrize("raw", [_dumps(b) for b in EDGE_CASES] + RAW_CASES)
def test_edge_cases_agree(raw: bytes) -> None:
    _check(raw)


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
    | st.sampled_from(["SE", "SEK", " ", "person", "physical", "discount", "111 34", "x" * 250]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path] if path else []
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*path, i))
    return out


def _mutated(body: dict[str, Any], pick: int, value: Any, delete: bool) -> dict[str, Any]:
    """``body`` with one value, chosen by ``pick`` among all of them, replaced by ``value`` (or its
    key deleted)."""
    paths = _paths(body)
    path = paths[pick % len(paths)]
    target = body
    for key in path[:-1]:
        target = target[key]
    if delete and isinstance(target, dict):
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return body


@settings(max_examples=1500, deadline=None)
@given(seed=st.integers(0, 10**6), pick=st.integers(0, 10**6), value=_JSON, delete=st.booleans())
def test_random_mutations_agree(seed: int, pick: int, value: Any, delete: bool) -> None:
    _check(_dumps(_mutated(workload.shipping_options_body(random.Random(seed)), pick, value, delete)))


def _shipment(raw_options: bytes, rng: random.Random) -> dict[str, Any]:
    """A /shipment body for the options body: a selection with add-ons, a pickup point, a timeslot."""
    body = json.loads(raw_options)
    body.pop("selected_shipping_option_id", None)
    body["selected_shipping_option"] = {
        "id": rng.choice(["postnord-home", "postnord-service-point", "budbee-evening"]),
        "carrier": "postnord", "class": rng.choice(["standard", "express"]), "type": "delivery-address",
        "price": rng.choice([0, 4900, 9900]), "tax_rate": 2500,
        "addons": [{"id": "sms", "type": "notification", "price": 0, "data": {"selected": True, "text": "1234"}}],
        "location": {"id": "pn-1", "name": "Ombud", "coordinates": {"lat": 59, "lng": 18.07}},
        "timeslot": {"id": "evening-2026-12-04-1700", "start": "2026-12-04T16:00:00Z"},
    }  # fmt: skip
    return body


def _strict_shipment(raw: bytes) -> wire.ShipmentRequest | None:
    try:
        return wire.parse(decode_json(raw), wire.ShipmentRequest)
    except wire.WireError:
        return None


def _check_shipment(raw: bytes) -> bool:
    fast = fastwire.decode_shipment(raw)
    if fast is None:
        return False
    slow = _strict_shipment(raw)
    assert slow is not None, (
        f"fast decoder accepted a /shipment body the strict parser refuses: {raw[:300]!r}"
    )
    _same(fast, slow)
    # Stored as the same JSON, whichever decoder read it.
    stored = orjson.dumps(to_json(fastwire.StoredRequest.of(fast)))
    assert stored == orjson.dumps(to_json(StoredRequest.of(slow)))
    assert orjson.dumps(to_json(fast.recipient)) == orjson.dumps(to_json(slow.recipient))
    return True


def test_shipment_bodies_agree_and_store_the_same_json() -> None:
    rng = random.Random(9)
    for raw in workload.varied(34, 800):
        assert _check_shipment(_dumps(_shipment(raw, rng)))
    for raw in workload.malformed(35, 400):
        _check_shipment(_dumps(_shipment(raw, rng)))


@settings(max_examples=800, deadline=None)
@given(seed=st.integers(0, 10**6), pick=st.integers(0, 10**6), value=_JSON, delete=st.booleans())
def test_random_shipment_mutations_agree(seed: int, pick: int, value: Any, delete: bool) -> None:
    body = _shipment(orjson.dumps(workload.shipping_options_body(random.Random(seed))), random.Random(seed))
    _check_shipment(_dumps(_mutated(body, pick, value, delete)))
