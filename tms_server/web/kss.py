"""The KSS callback endpoints: parse, call one domain function, serialise.

``/shippingoptions`` never touches the database (catalogs and signing keys are in memory);
``/auth`` and the ``/shipment`` calls do, each in one transaction that commits before we answer.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from aiohttp import http_exceptions, web
from aiohttp.web_protocol import RequestPayloadError

from tms_server import auth, fastwire, logs, reservations, wire
from tms_server.catalog import Selection as CheckedSelection
from tms_server.catalog import SelectionError, check_selection, explain, format_explanation
from tms_server.reservations.record import CarrierProduct, ReservedAddon, Selection, StoredRequest, from_json
from tms_server.runtime import MerchantState
from tms_server.web import keys, options
from tms_server.web.errors import HttpError, json_response, unauthorized
from tms_server.web.options import decode_json

log = logging.getLogger("tms_server.kss")

_VENDOR_PREFIXES = ("application/vdn.klarna.shipping.", "application/vnd.klarna.shipping.")


def _acceptable(mime: str) -> bool:
    if mime in ("application/json", "application/octet-stream"):  # octet-stream: clients' "unspecified"
        return True
    return mime.startswith(_VENDOR_PREFIXES) and mime.endswith("+json")


# Codings aiohttp decodes with the standard library; br and zstd need optional packages we do not ship.
_CODINGS = frozenset({"identity", "gzip", "x-gzip", "deflate"})


async def read_body(request: web.Request) -> bytes:
    """The raw body; 415 for a foreign media type or coding, 408 when it is too slow, 400 when empty."""
    ctype = request.headers.get("Content-Type")
    if ctype:
        mime = ctype.split(";", 1)[0].strip().lower()
        if not _acceptable(mime):
            raise HttpError(415, f"Content-Type {mime!r} is not supported; send application/json")
    coding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if coding not in _CODINGS:
        raise HttpError(
            415, f"Content-Encoding {coding[:40]!r} is not supported; send identity, gzip or deflate"
        )
    try:
        if request.content.is_eof():  # the whole body came with the headers: nothing to wait for
            raw = await request.read()
        else:
            async with asyncio.timeout(request.app[keys.CONFIG].idle_timeout):
                raw = await request.read()
    except TimeoutError:
        raise HttpError(408, "request body not received in time") from None
    except (RequestPayloadError, http_exceptions.HttpProcessingError):
        # The body is not in the coding it claims (garbage "gzip"), or its framing is broken.
        raise HttpError(400, f"request body could not be decoded as Content-Encoding {coding}") from None
    if not raw.strip():
        raise HttpError(400, "request body is empty; expected a JSON object")
    return raw


async def read_json(request: web.Request) -> Any:
    """The decoded body; 415 for a foreign media type, 400 for anything that is not JSON."""
    return options.decode_json(await read_body(request))


async def authorize(request: web.Request) -> MerchantState:
    """The merchant the bearer token speaks for, or 401."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise unauthorized()
    runtime, db = request.app[keys.RUNTIME], request.app[keys.DB]
    metrics = request.app[keys.METRICS]
    try:
        try:
            claims = runtime.keyring.verify(token)
        except auth.InvalidToken:
            if runtime.keyring.knows(runtime.keyring.kid_of(token)):
                raise
            # Signed with a key another process created moments ago: reload keys, try once more.
            await runtime.refresh_soon(db)
            claims = runtime.keyring.verify(token)
    except auth.InvalidToken:
        metrics.auth_failures.labels("token").inc()
        raise unauthorized() from None
    merchant = runtime.merchants.get(claims.merchant_id)
    if merchant is None and await runtime.refresh_soon(db):
        merchant = runtime.merchants.get(claims.merchant_id)
    if merchant is None or not merchant.active or merchant.identifier != claims.identifier:
        metrics.auth_failures.labels("merchant").inc()
        raise unauthorized()
    if claims.key_id not in merchant.active_keys and await runtime.refresh_soon(db):
        # A key added (and used) moments ago through another process: know it before refusing.
        merchant = runtime.merchants.get(claims.merchant_id) or merchant
    if not merchant.accepts(claims):
        metrics.auth_failures.labels("revoked").inc()
        raise unauthorized()
    logs.merchant.set(merchant.identifier)
    return merchant


async def post_auth(request: web.Request) -> web.Response:
    """POST /auth: verify SHA-256(nonce + key), answer a merchant-scoped JWT."""
    req = wire.parse(await read_json(request), wire.AuthRequest)
    runtime, db, config = request.app[keys.RUNTIME], request.app[keys.DB], request.app[keys.CONFIG]
    async with db.transaction() as conn:
        found = await auth.authenticate(
            conn, req.identifier, req.secret.nonce, req.secret.digest, replay_window=config.nonce_retention
        )
    if found is None:
        request.app[keys.METRICS].auth_failures.labels("credentials").inc()
        log.info("auth refused", extra={"identifier": req.identifier})
        raise HttpError(401, "invalid credentials")
    merchant_id, key_id, db_now = found
    known = runtime.merchants.get(merchant_id)
    if not runtime.keyring.ready or known is None or key_id not in known.active_keys:
        await runtime.refresh(db)  # a merchant or key added moments ago: know it before its first call
    logs.merchant.set(req.identifier)
    token = runtime.keyring.issue(merchant_id, req.identifier, key_id, now=db_now)
    return json_response({"token": token}, status=201)


async def post_shipping_options(request: web.Request) -> web.Response:
    """POST /shippingoptions: the merchant's options for this cart and address, from memory."""
    merchant = await authorize(request)
    raw = await read_body(request)
    now = datetime.now(UTC)
    catalog = merchant.catalog
    answers = request.app[keys.ANSWERS]
    explaining = log.isEnabledFor(logging.DEBUG)
    minute = None
    if catalog is not None and answers.max_bytes > 0 and not explaining:
        minute = int(now.timestamp()) // 60
        hit = answers.get(catalog, minute, raw)
        metrics = request.app[keys.METRICS]
        if hit is not None:
            metrics.options_cache_hit.inc()
            logs.session.set(hit[0])
            return web.Response(body=hit[1], content_type="application/json")
        metrics.options_cache_miss.inc()
    req, answer = options.options_answer(catalog, raw, now)
    logs.session.set(req.session_id)
    if catalog is None:
        log.warning("merchant has no catalog loaded; answering no options")
    elif explaining:
        # The operator's "why": the same trace as `tms-admin catalog explain`, only at DEBUG level.
        log.debug(
            "options explained",
            extra={"explain": format_explanation(explain(catalog, req, now=now, redact=True))},
        )
    if catalog is not None and minute is not None:
        answers.put(catalog, minute, raw, req.session_id, answer)
    return web.Response(body=answer, content_type="application/json")


async def _reservation(request: web.Request, merchant: MerchantState) -> reservations.Reservation:
    raw = await read_body(request)
    fast = fastwire.decode_shipment(raw)
    req = fast if fast is not None else wire.parse(decode_json(raw), wire.ShipmentRequest)
    logs.session.set(req.session_id)
    if merchant.catalog is None:
        raise SelectionError("shipping_option_not_available", "merchant has no catalog loaded")
    return reservation_of(req, check_selection(merchant.catalog, req, now=datetime.now(UTC)))


def reservation_of(
    req: wire.ShipmentRequest | fastwire.ShipmentRequest, sel: CheckedSelection
) -> reservations.Reservation:
    """The reservation of the checked selection ``sel`` for ``req`` (either decoder's). Only the
    parsed request's known fields are kept: whatever else a shop sends (a shopper's note with a name
    and a phone number, or a megabyte of anything) is never stored."""
    stored: StoredRequest | fastwire.StoredRequest
    if isinstance(req, fastwire.ShipmentRequest):
        stored = fastwire.StoredRequest.of(req)
    else:
        stored = StoredRequest.of(req)
    return reservations.Reservation(
        session_id=req.session_id,
        option_id=sel.option_id,
        carrier=sel.carrier,
        carrier_product=from_json(sel.carrier_product, CarrierProduct),
        selection=Selection(
            sel.option, sel.location, sel.timeslot, tuple(from_json(a, ReservedAddon) for a in sel.addons)
        ),
        request=stored,
        recipient=req.recipient,
        price=sel.price,
        currency=req.currency,
    )


def _location(view: reservations.ShipmentView) -> dict[str, str]:
    return {"Location": f"/shipment/{view.shipment_id}"}


async def post_shipment(request: web.Request) -> web.Response:
    """POST /shipment: reserve (or update) the session's reservation; 201 after the commit."""
    merchant = await authorize(request)
    res = await _reservation(request, merchant)
    async with request.app[keys.DB].connection() as conn:  # one statement: committed when it returns
        view, created = await reservations.reserve(conn, merchant.merchant_id, res)
    log.info(
        "reservation %s", "created" if created else "updated", extra={"shipment_id": str(view.shipment_id)}
    )
    return json_response(view.body(), status=201, headers=_location(view))


async def put_shipment(request: web.Request) -> web.Response:
    """PUT /shipment/{id}: update an existing reservation; 404 makes KSS fall back to POST."""
    merchant = await authorize(request)
    shipment_id = reservations.parse_id(request.match_info["shipment_id"])
    res = await _reservation(request, merchant)
    async with request.app[keys.DB].transaction() as conn:
        view = await reservations.update(conn, merchant.merchant_id, shipment_id, res)
    return json_response(view.body(), status=200, headers=_location(view))


async def get_shipment(request: web.Request) -> web.Response:
    """GET /shipment/{id}: carrier product codes and tracking."""
    merchant = await authorize(request)
    shipment_id = reservations.parse_id(request.match_info["shipment_id"])
    async with request.app[keys.DB].connection() as conn:
        view = await reservations.view(conn, merchant.merchant_id, shipment_id)
    return json_response(view.body())


async def post_confirm(request: web.Request) -> web.Response:
    """POST /shipment/{id}/confirm: idempotent; a late confirm of an expired reservation still counts."""
    merchant = await authorize(request)
    shipment_id = reservations.parse_id(request.match_info["shipment_id"])
    async with request.app[keys.DB].transaction() as conn:
        before = await reservations.confirm(conn, merchant.merchant_id, shipment_id)
    if before == reservations.Status.EXPIRED:
        log.warning("late confirm of an expired reservation", extra={"shipment_id": str(shipment_id)})
    return json_response({"shipment_id": str(shipment_id), "status": "confirmed"})
