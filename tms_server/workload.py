"""Seeded generators of realistic KSS ``/shippingoptions`` bodies, for ``scripts/bench`` and the golden test.

Realistic means what KSS sends for Nordic shops: recipients in SE, NO, DK and FI (a Swedish postal
code with and without its space, some unknown to any map), persons and organizations, 1–30 order
lines of every Klarna line type (physical goods with weights in grams and sizes in millimetres, some
without; discounts, gift cards, shipping fees), order and line tags, totals in minor units, a
sender id some of the time, and preview requests (no postal code yet, as before the shopper types
one). The same seed always gives the same bodies, byte for byte, on every machine.

``varied`` gives every body a new cart and address. ``sessions`` gives checkout sessions of 3–6
calls, most repeating the previous body byte for byte, as KSS does while a shopper moves through
checkout, and the rest changing one thing (the postal code typed, a line added). ``malformed``
gives bodies with one typical integration mistake each (a string for a number, a negative amount,
a missing field), for the answers' error messages.
"""

from __future__ import annotations

import copy
import random
import uuid
from collections.abc import Iterator
from typing import Any

import orjson

__all__ = ["malformed", "sessions", "shipping_options_body", "varied"]

# Postal codes by country: real-looking ranges (first digits) and the cities behind a few of them.
_SE_PREFIXES = ("111", "113", "114", "118", "123", "164", "172", "211", "214", "252", "302", "413",
                "417", "431", "582", "621", "722", "831", "903", "961", "981", "999")  # fmt: skip
_CITIES = {"SE": "Stockholm", "NO": "Oslo", "DK": "København", "FI": "Helsinki"}
_COUNTRY_WEIGHTS = (("SE", 70), ("NO", 12), ("DK", 10), ("FI", 8))
_ORDER_TAGS = ("member", "campaign", "b2b", "first-order", "vip")
_LINE_TAGS = ("member", "member", "fragile", "outlet", "outlet", "bulky", "dangerous_goods", "gift-card")
_LINE_TYPES = ("physical",) * 14 + (None, "discount", "shipping_fee", "gift_card", "digital", "surcharge")


def _postal_code(rng: random.Random, country: str) -> str:
    if country == "SE":
        code = f"{rng.choice(_SE_PREFIXES)}{rng.randrange(100):02d}"
        return code if rng.random() < 0.35 else f"{code[:3]} {code[3:]}"
    if country == "FI":
        return f"{rng.randrange(100, 99999):05d}"
    return f"{rng.randrange(1000, 9999):04d}"  # NO and DK: four digits


def _line(rng: random.Random, index: int) -> dict[str, Any]:
    kind = rng.choice(_LINE_TYPES)
    quantity = rng.choice((1, 1, 1, 1, 1, 2, 2, 3)) if kind in ("physical", None) else 1
    unit = rng.choice((4900, 9900, 14900, 19900, 29900, 49900, 89900, 159900))
    discount = rng.choice((0, 0, 0, 500, 1000)) if kind in ("physical", None) else 0
    total = unit * quantity - discount
    if kind == "discount":
        unit = total = -rng.choice((1000, 5000, 10000))
    line: dict[str, Any] = {
        "reference": f"sku-{rng.randrange(10000, 99999)}-{index}",
        "quantity": quantity,
        "tax_rate": rng.choice((2500, 2500, 2500, 1200, 600, 0)),
        "unit_price": unit,
        "total_price_including_tax": total,
        "total_discount_amount": discount,
        "total_tax_amount": max(0, total // 5),
    }
    if kind is not None:
        line["type"] = kind
    if kind in ("physical", None) and rng.random() < 0.92:
        attributes: dict[str, Any] = {}
        if rng.random() < 0.9:
            attributes["weight"] = rng.choice(
                (50, 120, 120, 250, 250, 400, 400, 800, 1500, 2500, 4000, 9000, 26000)
            )
        if rng.random() < 0.75:
            sides = [rng.choice((20, 50, 50, 100, 100, 150, 200, 250, 300, 450, 600, 1400)) for _ in range(3)]
            attributes["dimensions"] = dict(zip(("height", "width", "length"), sides, strict=True))
        if rng.random() < 0.2:
            attributes["tags"] = rng.sample(_LINE_TAGS, rng.choice((1, 1, 2)))  # mostly harmless tags
        line["attributes"] = attributes
    elif kind == "gift_card" and rng.random() < 0.5:
        line["attributes"] = {"tags": ["gift-card"]}
    return line


def shipping_options_body(rng: random.Random) -> dict[str, Any]:
    """One realistic ``/shippingoptions`` body (a dict; ``orjson.dumps`` it to send)."""
    country = rng.choices([c for c, _ in _COUNTRY_WEIGHTS], weights=[w for _, w in _COUNTRY_WEIGHTS])[0]
    lines = [_line(rng, i) for i in range(rng.choice((1, 1, 1, 2, 2, 2, 3, 3, 4, 5, 7, 10, 15, 30)))]
    weight = sum(
        (ln.get("attributes") or {}).get("weight", 0) * ln["quantity"]
        for ln in lines
        if ln.get("type", "physical") == "physical"
    )
    recipient: dict[str, Any] = {"country": country}
    preview = rng.random() < 0.15
    if not preview:
        recipient["postal_code"] = _postal_code(rng, country)
        recipient["city"] = _CITIES[country]
        recipient["street_address"] = f"Gatan {rng.randrange(1, 120)}"
        recipient["given_name"], recipient["family_name"] = "Klara", "Joyce"
        recipient["email"] = "klara@example.com"
    if rng.random() < 0.8:
        recipient["customer_type"] = "person" if rng.random() < 0.85 else "organization"
    order: dict[str, Any] = {
        "id": f"order-{rng.randrange(10**9)}",
        "lines": lines,
        "total_amount": max(0, sum(ln["total_price_including_tax"] for ln in lines)),
        "total_tax": sum(ln["total_tax_amount"] for ln in lines),
        "tags": rng.sample(_ORDER_TAGS, rng.choice((0, 0, 0, 1, 2))),
    }
    if rng.random() < 0.6:
        order["total_weight"] = weight + rng.choice((0, 0, 100, 250))
    body: dict[str, Any] = {
        "session_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "currency": "SEK" if country == "SE" or rng.random() < 0.5 else "EUR",
        "locale": {"SE": "sv-SE", "NO": "nb-NO", "DK": "da-DK", "FI": "fi-FI"}[country],
        "order": order,
        "recipient": recipient,
    }
    if rng.random() < 0.3:
        body["sender"] = {"sender_id": rng.choice(("warehouse-13", "warehouse-1", "store-7"))}
    if rng.random() < 0.2:
        body["selected_shipping_option_id"] = rng.choice(
            ("postnord-home", "budbee-evening", "unknown-option")
        )
    return body


def varied(seed: int, count: int) -> Iterator[bytes]:
    """``count`` bodies, each a different cart and address."""
    rng = random.Random(seed)
    for _ in range(count):
        yield orjson.dumps(shipping_options_body(rng))


def sessions(seed: int, count: int) -> Iterator[bytes]:
    """``count`` bodies in checkout sessions of 3–6 calls: about three in four repeat the previous
    body byte for byte; the rest type or change the postal code, or add a line."""
    rng = random.Random(seed)
    sent = 0
    while sent < count:
        body = shipping_options_body(rng)
        for call in range(rng.randint(3, 6)):
            if call and rng.random() >= 0.75:
                body = copy.deepcopy(body)
                if rng.random() < 0.6:
                    country = body["recipient"]["country"]
                    body["recipient"]["postal_code"] = _postal_code(rng, country)
                else:
                    body["order"]["lines"].append(_line(rng, len(body["order"]["lines"])))
            yield orjson.dumps(body)
            sent += 1
            if sent == count:
                return


_MISTAKES: tuple[tuple[str, str, object], ...] = (
    ("order", "total_amount", "10000"),
    ("order", "total_amount", -1),
    ("order", "total_amount", 12.5),
    ("recipient", "country", "Sweden"),
    ("recipient", "postal_code", 11134),
    ("recipient", "customer_type", True),
    ("", "currency", "sek"),
    ("", "currency", None),
    ("", "session_id", 42),
    ("order", "lines", {}),
    ("order", "tags", "member"),
)


_LINE_MISTAKES: tuple[tuple[str, object], ...] = (
    ("quantity", "2"), ("quantity", -1), ("unit_price", 1.5), ("tax_rate", -2500),
    ("attributes", {"weight": "heavy"}), ("attributes", {"dimensions": {"height": -5}}),
    ("attributes", {"tags": "bulky"}), ("type", 7), ("total_price_including_tax", None),
)  # fmt: skip


def malformed(seed: int, count: int) -> Iterator[bytes]:
    """``count`` bodies with one typical mistake each, in a field or an order line."""
    rng = random.Random(seed)
    for _ in range(count):
        body = shipping_options_body(rng)
        if rng.random() < 0.5:
            line = rng.choice(body["order"]["lines"])
            key, value = rng.choice(_LINE_MISTAKES)
            line[key] = value
        else:
            where, key, value = rng.choice(_MISTAKES)
            target = body[where] if where else body
            if value is None:
                target.pop(key, None)
            else:
                target[key] = value
        yield orjson.dumps(body)
