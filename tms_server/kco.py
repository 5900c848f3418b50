"""Kustom/Klarna Checkout callbacks in the engine's terms: reading a checkout order, the KCO shipping
options, and the shipping fee line. Pure: no I/O (``tms_server.web.kco`` serves it).

Without the Shipping Assistant, the checkout calls the merchant's ``address_update``,
``country_change``, ``shipping_option_update`` and ``validation`` URLs with the order
(``reference/checkout-callbacks.txt``). Here an order becomes a KSS ``/shippingoptions`` body:

- the recipient is the ``shipping_address`` (the ``billing_address`` when there is none), with
  ``customer.type`` as the customer type and ``organization_name`` as the company;
- every order line but ``shipping_fee`` lines becomes a KSS line: ``type``, ``quantity`` (a count
  of units whatever ``quantity_unit`` says), ``unit_price``, ``total_amount`` as the line total,
  ``total_discount_amount``, ``total_tax_amount``, ``tax_rate``, and ``shipping_attributes``
  (weight in grams, dimensions in millimetres, tags) as the line's attributes;
- the order value the rules compare is ``order_amount`` less the shipping fee lines (the shipping
  a previous callback added is not part of the cart).

All money is integers in minor units; a tax amount inside a gross amount is
``round(amount × tax_rate / (10000 + tax_rate))``, half away from zero, as Klarna computes it.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, Final

__all__ = [
    "CALLBACKS",
    "KcoError",
    "fee_line",
    "kss_body",
    "option_for_kco",
    "read_order",
    "set_fee",
    "shipment_id",
    "tax_of",
]

CALLBACKS: Final = ("address_update", "country_change", "shipping_option_update", "validation")
# KCO's shipping_method for our option types (Klarna's list; anything else is the merchant's own).
METHODS: Final = {"pickup-point": "PickUpPoint", "pickup-box": "BoxReg", "pickup-store": "PickUpStore",
                  "delivery-address": "Home", "postal": "Postal", "digital": "Digital"}  # fmt: skip
_NAMESPACE: Final = uuid.UUID("6f9e2b64-3c0a-4a4e-9d1d-6a1b5c2b7e21")


class KcoError(ValueError):
    """A checkout order we cannot read; the message names the field (HTTP 400)."""


def tax_of(amount: int, tax_rate: int) -> int:
    """The tax inside gross ``amount`` (minor units) at ``tax_rate`` (two implied decimals), rounded
    half away from zero: ``tax_of(4900, 2500) == 980``."""
    if tax_rate <= 0 or amount == 0:
        return 0
    gross = 10000 + tax_rate
    whole = (abs(amount) * tax_rate * 2 + gross) // (2 * gross)
    return whole if amount > 0 else -whole


def shipment_id(merchant_id: int, order_id: str) -> uuid.UUID:
    """The reservation id of a checkout order: known before ``validation`` reserves it, so the
    shipping options can carry it as ``tms_reference`` and reconcile finds the order's reservation."""
    return uuid.uuid5(_NAMESPACE, f"{merchant_id}/{order_id}")


MAX_AMOUNT: Final = 10**15  # minor units: far above any order, far below 64 bits


def _int(value: Any, path: str, *, minimum: int | None = None) -> int:
    if type(value) is not int:
        raise KcoError(f"{path}: expected an integer, got {type(value).__name__}")
    if minimum is not None and value < minimum:
        raise KcoError(f"{path}: must be at least {minimum}, got {value}")
    if abs(value) > MAX_AMOUNT:
        raise KcoError(f"{path}: {value} is out of range")
    return value


def _depth(value: Any, limit: int) -> bool:
    """Whether ``value`` nests deeper than ``limit`` (the answer echoes order lines)."""
    stack = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if level > limit:
            return True
        if isinstance(item, dict):
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, level + 1) for v in item)
    return False


def _opt_int(line: Mapping[str, Any], key: str, path: str) -> int | None:
    return None if line.get(key) is None else _int(line[key], f"{path}.{key}")


def _str(value: Any, path: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise KcoError(f"{path}: expected a string, got {type(value).__name__}")
    return value


def _lines(order: Mapping[str, Any]) -> list[dict[str, Any]]:
    lines = order.get("order_lines")
    if not isinstance(lines, list):
        raise KcoError("order_lines: required, an array")
    if len(lines) > 1000:
        raise KcoError("order_lines: at most 1000")
    for i, line in enumerate(lines):
        if not isinstance(line, dict):
            raise KcoError(f"order_lines[{i}]: expected an object")
    return lines


def read_order(order: Any) -> dict[str, Any]:
    """Check what the callbacks read of a checkout order; raises KcoError naming the field."""
    if not isinstance(order, dict):
        raise KcoError("request body must be a JSON object (the checkout order)")
    _int(order.get("order_amount"), "order_amount", minimum=0)
    _int(order.get("order_tax_amount"), "order_tax_amount", minimum=0)
    currency = order.get("purchase_currency")
    if not isinstance(currency, str) or len(currency) != 3 or not currency.isalpha():
        raise KcoError("purchase_currency: expected an ISO 4217 code such as 'SEK'")
    for i, line in enumerate(_lines(order)):
        path = f"order_lines[{i}]"
        _str(line.get("type"), f"{path}.type")
        _int(line.get("quantity"), f"{path}.quantity", minimum=0)
        for key in ("unit_price", "total_amount", "total_tax_amount", "total_discount_amount"):
            _opt_int(line, key, path)
        if line.get("tax_rate") is not None:
            _int(line["tax_rate"], f"{path}.tax_rate", minimum=0)
        attrs = line.get("shipping_attributes")
        if attrs is not None and not isinstance(attrs, dict):
            raise KcoError(f"{path}.shipping_attributes: expected an object")
        if _depth(line, 32):
            raise KcoError(f"{path}: nested too deeply")
    for key in ("shipping_address", "billing_address", "customer", "selected_shipping_option"):
        if order.get(key) is not None and not isinstance(order[key], dict):
            raise KcoError(f"{key}: expected an object")
    for key in ("shipping_address", "billing_address"):
        for field, value in (order.get(key) or {}).items():
            if field in _ADDRESS_FIELDS and value is not None and not isinstance(value, str):
                raise KcoError(f"{key}.{field}: expected a string, got {type(value).__name__}")
    tags = order.get("tags")
    if tags is not None and (not isinstance(tags, list) or not all(isinstance(t, str) for t in tags)):
        raise KcoError("tags: expected an array of strings")
    selected = order.get("selected_shipping_option") or {}
    for key, kind in (("selected_addons", list), ("delivery_details", dict)):
        if selected.get(key) is not None and not isinstance(selected[key], kind):
            raise KcoError(
                f"selected_shipping_option.{key}: expected an {'array' if kind is list else 'object'}"
            )
    return order


_ADDRESS_FIELDS: Final = frozenset({"given_name", "family_name", "email", "phone", "street_address", "street_address2",
                                    "postal_code", "city", "region", "care_of", "country", "organization_name"})  # fmt: skip


def _recipient(order: Mapping[str, Any]) -> dict[str, Any]:
    address = order.get("shipping_address") or order.get("billing_address") or {}
    out: dict[str, Any] = {}
    for key in ("given_name", "family_name", "email", "phone", "street_address", "street_address2",
                "postal_code", "city", "region", "care_of"):  # fmt: skip
        value = _str(address.get(key), f"shipping_address.{key}")
        if value:
            out[key] = value
    country = _str(address.get("country"), "shipping_address.country")
    if country:
        out["country"] = country.upper()
    company = _str(address.get("organization_name"), "shipping_address.organization_name")
    if company:
        out["company_name"] = company
    customer_type = (order.get("customer") or {}).get("type")
    if customer_type in ("person", "organization"):
        out["customer_type"] = customer_type
    return out


def kss_body(order: Mapping[str, Any], order_id: str | None) -> dict[str, Any]:
    """The KSS ``/shippingoptions`` body for a checked checkout order (see the module docstring)."""
    lines, fees = [], 0
    for line in _lines(order):
        if line.get("type") == "shipping_fee":
            fees += int(line.get("total_amount") or 0)
            continue
        kss: dict[str, Any] = {"quantity": line["quantity"]}
        for ours, theirs in (("reference", "reference"), ("name", "name"), ("type", "type"),
                             ("unit_price", "unit_price"), ("total_price_including_tax", "total_amount"),
                             ("total_discount_amount", "total_discount_amount"),
                             ("total_tax_amount", "total_tax_amount"), ("tax_rate", "tax_rate")):  # fmt: skip
            if line.get(theirs) is not None:
                kss[ours] = line[theirs]
        attrs = line.get("shipping_attributes")
        if isinstance(attrs, dict):
            kss["attributes"] = {
                k: attrs[k] for k in ("weight", "dimensions", "tags") if attrs.get(k) is not None
            }
        lines.append(kss)
    body: dict[str, Any] = {
        "session_id": f"kco:{order_id}" if order_id else "kco",
        "currency": str(order["purchase_currency"]).upper(),
        "locale": _locale(order),
        "order": {
            "id": order_id or "kco",
            "lines": lines,
            "total_amount": max(0, order["order_amount"] - fees),
            "tags": [t for t in order.get("tags") or [] if isinstance(t, str)],
        },
        "recipient": _recipient(order),
    }
    return body


_LOCALES: Final = {"SE": "sv-SE", "NO": "nb-NO", "DK": "da-DK", "FI": "fi-FI", "DE": "de-DE", "AT": "de-AT",
                   "NL": "nl-NL"}  # fmt: skip


def _locale(order: Mapping[str, Any]) -> str:
    """The order's locale; the checkout sends none with most callbacks: the shipping country's."""
    given = order.get("locale")
    if isinstance(given, str) and 2 <= len(given) <= 35:
        return given
    country = _recipient(order).get("country", "")
    return _LOCALES.get(country, "en")


def fee_of(option: Mapping[str, Any]) -> int:
    """What the shopper pays for ``option`` (a KSS option) as offered: its price, the nearest pickup
    point's and the first timeslot's (the ones the KCO option names), and its required add-ons:
    what ``check_selection`` reserves for that choice."""
    locations, slots = option.get("locations") or [], option.get("timeslots") or []
    return (
        int(option["price"])
        + (int(locations[0].get("price", 0)) if locations else 0)
        + (int(slots[0].get("price", 0)) if slots else 0)
        + sum(int(a.get("price", 0)) for a in option.get("addons", []) if a.get("required"))
    )


def option_for_kco(
    option: Mapping[str, Any], product: tuple[str, str], *, preselected: bool, description: str,
    tms_reference: str | None,
) -> dict[str, Any]:  # fmt: skip
    """A KSS option (``shipping_options`` item) in KCO's ``shipping_option`` shape; ``product`` is
    the carrier product (name, identifier)."""
    fee, rate = fee_of(option), int(option.get("tax_rate", 0))
    details: dict[str, Any] = {"carrier": option["carrier"], "class": option["class"],
                               "product": {"name": product[0], "identifier": product[1]}}  # fmt: skip
    if option.get("timeslots"):
        slot = option["timeslots"][0]
        details["timeslot"] = {"id": slot["id"], "start": slot["start"], "end": slot["end"]}
    if option.get("locations"):
        loc = option["locations"][0]  # the nearest
        address = {k: v for k, v in loc.get("address", {}).items() if v}
        details["pickup_location"] = {"id": loc["id"], "name": loc["name"], "address": address}
    out: dict[str, Any] = {
        "id": option["id"], "name": option["name"], "description": description, "price": fee,
        "tax_amount": tax_of(fee, rate), "tax_rate": rate, "preselected": preselected,
        "shipping_method": METHODS.get(option["type"], "Own"), "delivery_details": details,
        "selected_addons": [{"type": a.get("type"), "price": a.get("price", 0), "external_id": a["id"]}
                            for a in option.get("addons", []) if a.get("required")],
    }  # fmt: skip
    if option.get("free_above") and fee == 0:
        out["promo"] = "Free shipping"
    if tms_reference:
        out["tms_reference"] = tms_reference
    return out


def fee_line(option: Mapping[str, Any]) -> dict[str, Any]:
    """The order line for a chosen KCO shipping option: one unit at its price, its tax inside."""
    price, rate = int(option["price"]), int(option.get("tax_rate", 0))
    return {"type": "shipping_fee", "reference": option["id"], "name": option["name"], "quantity": 1,
            "quantity_unit": "pcs", "unit_price": price, "tax_rate": rate, "total_amount": price,
            "total_discount_amount": 0, "total_tax_amount": tax_of(price, rate)}  # fmt: skip


def set_fee(order: Mapping[str, Any], fee: dict[str, Any] | None) -> dict[str, Any]:
    """``order_amount``, ``order_tax_amount`` and ``order_lines`` with exactly ``fee`` as the shipping
    fee line (or none): existing fee lines are taken out at the amounts they carried and the new one
    is added at its own, so the totals never drift, whatever rounding made them."""
    kept, amount, tax = [], int(order["order_amount"]), int(order["order_tax_amount"])
    for line in _lines(order):
        if line.get("type") == "shipping_fee":
            amount -= int(line.get("total_amount") or 0)
            tax -= int(line.get("total_tax_amount") or 0)
        else:
            kept.append(line)
    if fee is not None:
        kept.append(fee)
        amount += fee["total_amount"]
        tax += fee["total_tax_amount"]
    if amount < 0 or tax < 0:
        raise KcoError("order_amount/order_tax_amount: less than the shipping fee lines they include")
    return {"order_amount": amount, "order_tax_amount": tax, "order_lines": kept}
