"""The Kustom/Klarna Checkout callbacks: ``POST /kco/{secret}/{callback}`` on the KSS port.

The secret in the path is the only credential these callbacks carry (``tms-admin merchant
kco-urls``): it is looked up by its digest, compared in constant time, never logged (the access log
shows the route, ``/kco/{secret}/...``); an unknown secret is a 404. The order id comes from the
``order_id`` query parameter (the printed URLs carry Klarna's ``{checkout.order.id}`` placeholder) or
the order itself (``validation`` has it).

- ``address_update``, ``country_change``: the options for the order's address in KCO's shape, the
  shopper's chosen one kept when it is still offered (else the catalog's first), and the order with
  exactly one shipping fee line for it;
- ``shipping_option_update``: the order with the fee line of the chosen option (none without one);
- ``validation``: the chosen option, pickup point, timeslot and add-ons checked again now, as for
  ``POST /shipment``; valid: the reservation is stored (or refreshed) under the order and 200;
  not valid: 400 with ``error_type`` and ``error_text`` for the checkout to show.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
from aiohttp import web

from tms_server import kco, logs, reservations, wire
from tms_server.catalog import SelectionError, check_selection, shipping_options
from tms_server.catalog.logistics import recipient_tz
from tms_server.delivery_time import render
from tms_server.runtime import MerchantState
from tms_server.web import keys
from tms_server.web.errors import HttpError, json_response
from tms_server.web.kss import read_json, reservation_of

log = logging.getLogger("tms_server.kco")

SECRET_LOOKUP = "SELECT id, kco_secret FROM merchants WHERE kco_secret_hash = $1"  # noqa: S105  # a query
_DENIALS = {
    "shipping_option_not_available": "The delivery option you chose is no longer available; please choose another.",
    "cutoff_time_expired": "The delivery time you chose has passed; please choose another.",
    "shipping_address_invalid": "We cannot deliver the chosen option to this address; please check it.",
    "shipping_price_changed": "The delivery price changed; please review your delivery choice.",
}  # fmt: skip


async def _merchant(request: web.Request) -> MerchantState:
    secret = request.match_info["secret"]
    if not 32 <= len(secret) <= 100:
        raise HttpError(404, "not found")
    digest = hashlib.sha256(secret.encode("utf-8", "surrogateescape")).digest()
    async with request.app[keys.DB].connection() as conn:
        row = await conn.fetchrow(SECRET_LOOKUP, digest)
    if row is None or not hmac.compare_digest(
        str(row["kco_secret"]).encode(), secret.encode("utf-8", "surrogateescape")
    ):
        raise HttpError(404, "not found")
    runtime = request.app[keys.RUNTIME]
    merchant = runtime.merchants.get(row["id"])
    if merchant is None:  # added moments ago (the secret proved it exists): know it before answering
        await runtime.refresh(request.app[keys.DB])
        merchant = runtime.merchants.get(row["id"])
    if merchant is None or not merchant.active:
        raise HttpError(404, "not found")
    logs.merchant.set(merchant.identifier)
    return merchant


async def _order(request: web.Request) -> dict[str, Any]:
    try:
        return kco.read_order(await read_json(request))
    except kco.KcoError as exc:
        raise HttpError(400, str(exc)) from None


def _order_id(request: web.Request, order: dict[str, Any]) -> str | None:
    value = order.get("order_id") or request.query.get("order_id")
    if isinstance(value, str) and value and not value.startswith("{") and len(value) <= 100:
        return value
    return None


def _offer(merchant: MerchantState, order: dict[str, Any], order_id: str | None, now: datetime) -> tuple[
        dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:  # fmt: skip
    """(the KSS body, the KSS options, the same in KCO's shape with the preselection)."""
    catalog = merchant.catalog
    if catalog is None:
        raise HttpError(400, "the merchant has no catalog loaded")
    try:
        body = kco.kss_body(order, order_id)
        req = wire.parse(body, wire.ShippingOptionsRequest)
    except kco.KcoError as exc:
        raise HttpError(400, str(exc)) from None
    except wire.WireError as exc:
        raise HttpError(400, f"the order as a shipping request: {exc}") from None
    options = shipping_options(catalog, req, now=now)
    chosen = (order.get("selected_shipping_option") or {}).get("id")
    pick = chosen if any(o["id"] == chosen for o in options) else (options[0]["id"] if options else None)
    zone = recipient_tz(catalog, req.recipient.country if req.recipient else None)
    reference = str(kco.shipment_id(merchant.merchant_id, order_id)) if order_id else None
    out = []
    for o in options:
        option = catalog.option(o["id"])
        product = (option.product.name, option.product.identifier) if option and option.product else ("", "")
        sentence = (
            render(o["delivery_time"], now=now, tz=zone, locale=body["locale"])
            if o.get("delivery_time")
            else None
        )
        out.append(kco.option_for_kco(o, product, preselected=o["id"] == pick, description=sentence or "",
                                      tms_reference=reference))  # fmt: skip
    return body, options, out


def _answer(
    order: dict[str, Any], kco_options: list[dict[str, Any]] | None, fee: dict[str, Any] | None
) -> web.Response:
    try:
        out = kco.set_fee(order, fee)
    except kco.KcoError as exc:
        raise HttpError(400, str(exc)) from None
    out["purchase_currency"] = order["purchase_currency"]
    if kco_options is not None:
        out["shipping_options"] = kco_options
    return json_response(out)


async def address_update(request: web.Request) -> web.Response:
    """``address_update`` and ``country_change``: the options for this address, the fee for the preselected one."""
    merchant = await _merchant(request)
    order = await _order(request)
    _body, _options, kco_options = _offer(merchant, order, _order_id(request, order), datetime.now(UTC))
    chosen = next((o for o in kco_options if o["preselected"]), None)
    return _answer(order, kco_options, kco.fee_line(chosen) if chosen else None)


async def shipping_option_update(request: web.Request) -> web.Response:
    """``shipping_option_update``: exactly one shipping fee line, for the chosen option."""
    merchant = await _merchant(request)
    order = await _order(request)
    chosen_id = (order.get("selected_shipping_option") or {}).get("id")
    if chosen_id is None:
        return _answer(order, None, None)
    _body, _options, kco_options = _offer(merchant, order, _order_id(request, order), datetime.now(UTC))
    chosen = next((o for o in kco_options if o["id"] == chosen_id), None)
    if chosen is None:
        raise HttpError(
            400, f"selected_shipping_option.id: {str(chosen_id)[:60]!r} is not offered for this order now"
        )
    return _answer(order, None, kco.fee_line(chosen))


def _deny(reason: str, detail: str) -> web.Response:
    error_type = "address_error" if reason == "shipping_address_invalid" else "approval_failed"
    text = _DENIALS.get(reason, "The order cannot be delivered as chosen; please review the delivery.")
    log.info("checkout validation denied: %s", reason, extra={"detail": detail})
    return json_response({"error_type": error_type, "error_text": text, "reason": reason}, status=400)


async def validation(request: web.Request) -> web.Response:
    """``validation``: check the selection again now; store the reservation, or deny the purchase."""
    merchant = await _merchant(request)
    order = await _order(request)
    order_id = _order_id(request, order)
    if order_id is None:
        raise HttpError(400, "order_id: required for validation (in the order or the URL)")
    selected = order.get("selected_shipping_option")
    if not isinstance(selected, dict) or not isinstance(selected.get("id"), str):
        return _deny("shipping_option_not_available", "no selected_shipping_option")
    if merchant.catalog is None:
        return _deny("shipping_option_not_available", "the merchant has no catalog loaded")
    body = kco.kss_body(order, order_id)
    details: dict[str, Any] = (
        selected["delivery_details"] if isinstance(selected.get("delivery_details"), dict) else {}
    )
    choice: dict[str, Any] = {"id": selected["id"]}
    for key, field in (("location", "pickup_location"), ("timeslot", "timeslot")):
        value = details.get(field)
        if isinstance(value, dict) and isinstance(value.get("id"), str):
            choice[key] = {"id": value["id"]}
    choice["addons"] = [{"id": a["external_id"], "data": {"selected": True, "text": a.get("user_input")}}
                        for a in selected.get("selected_addons") or []
                        if isinstance(a, dict) and isinstance(a.get("external_id"), str)]  # fmt: skip
    shipment = {k: v for k, v in body.items() if k != "selected_shipping_option_id"}
    shipment["selected_shipping_option"] = choice
    try:
        req = wire.parse(shipment, wire.ShipmentRequest)
    except wire.WireError as exc:
        if str(exc).startswith("recipient"):
            return _deny("shipping_address_invalid", str(exc))
        raise HttpError(400, f"the order as a shipment request: {exc}") from None
    logs.session.set(req.session_id)
    try:
        sel = check_selection(merchant.catalog, req, now=datetime.now(UTC))
    except SelectionError as exc:
        return _deny(exc.reason, exc.detail)
    fees = [ln for ln in order["order_lines"] if ln.get("type") == "shipping_fee"]
    charged = sum(int(ln.get("total_amount") or 0) for ln in fees)
    if charged != sel.price or any(ln.get("reference") not in (None, sel.option_id) for ln in fees):
        # The order pays for something else than what would be reserved (another option, an add-on
        # not priced in, a catalog changed since shipping_option_update): the shopper must see it.
        return _deny("shipping_price_changed", f"order charges {charged}, the choice costs {sel.price}")
    res = reservation_of(req, sel)
    shipment_id = kco.shipment_id(merchant.merchant_id, order_id)
    async with request.app[keys.DB].connection() as conn:
        try:
            view, created = await reservations.reserve(
                conn, merchant.merchant_id, res, shipment_id=shipment_id, via="kco"
            )
        except asyncpg.UniqueViolationError:  # a simultaneous validation of this order inserted it first
            view, created = await reservations.reserve(
                conn, merchant.merchant_id, res, shipment_id=shipment_id, via="kco"
            )
    log.info(
        "checkout reservation %s",
        "created" if created else "updated",
        extra={"shipment_id": str(view.shipment_id)},
    )
    return web.Response(status=200, body=orjson.dumps({"tms_reference": str(view.shipment_id)}),
                        content_type="application/json")  # fmt: skip


async def callback(request: web.Request) -> web.Response:
    """``POST /kco/{secret}/{callback}``."""
    name = request.match_info["callback"]
    if name in ("address_update", "country_change"):
        return await address_update(request)
    if name == "shipping_option_update":
        return await shipping_option_update(request)
    if name == "validation":
        return await validation(request)
    raise HttpError(404, "not found")
