"""A small, deliberately breakable KSS callback server ("another vendor's TMS") for kss-check's tests.

Without flaws it keeps the contract on everything ``tms-admin kss-check`` looks at; each flaw
breaks one thing the way real integrations do:

- ``no_location``: ``POST /shipment`` answers 201 without a ``Location`` header;
- ``put_unknown_400``: ``PUT`` of an unknown id answers 400 (KSS needs 404 to fall back to POST);
- ``token_never_expires``: tokens carry no ``exp``;
- ``no_failure_reason``: error answers say ``{"error": ...}`` instead of ``failure_reason``;
- ``mixed_delivery_time``: ``delivery_time`` mixes business days with a date;
- ``racy_reserve``: looks the session up, then stores it after an await, so concurrent POSTs for
  one session get two ids (sequential ones still get one);
- ``ignores_expiry``: signs tokens with the merchant key and never checks ``exp``;
- ``location_elsewhere``: ``Location`` names another host;
- ``hostile_ids``: shipment ids with line breaks and control characters, options with
  ``"addons": null``.

``FakeTMS`` runs it on a loopback port in a thread of its own.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
import uuid
import warnings
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from aiohttp import web

IDENTIFIER, KEY = "vendor-x", "k3y-of-vendor-x"
_SECRET = "fake-tms-signing-secret-of-32-bytes-or-more"
FLAWS = ("no_location", "put_unknown_400", "token_never_expires", "no_failure_reason", "mixed_delivery_time",
         "racy_reserve", "ignores_expiry", "location_elsewhere", "hostile_ids")  # fmt: skip


def make_app(flaws: frozenset[str]) -> web.Application:
    """The fake TMS with ``flaws`` (names from ``FLAWS``)."""
    nonces: set[str] = set()
    by_session: dict[str, str] = {}
    shipments: dict[str, dict[str, Any]] = {}

    def fail(status: int, reason: str) -> web.Response:
        body = {"error": reason} if "no_failure_reason" in flaws else {"failure_reason": reason}
        return web.json_response(body, status=status)

    async def body_of(request: web.Request) -> Any:
        try:
            return json.loads(await request.read())
        except ValueError:
            return None

    def authorized(request: web.Request) -> bool:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme != "Bearer":
            return False
        secret, verify = (KEY, False) if "ignores_expiry" in flaws else (_SECRET, True)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the merchant key is short for HS256
                jwt.decode(token, secret, algorithms=["HS256"], options={"verify_exp": verify})
        except jwt.PyJWTError:
            return False
        return True

    async def auth(request: web.Request) -> web.Response:
        body = await body_of(request)
        if not isinstance(body, dict) or not isinstance(body.get("identifier"), str):
            return fail(400, "identifier: expected a string")
        secret = body.get("secret")
        if not isinstance(secret, dict) or not all(
            isinstance(secret.get(k), str) for k in ("nonce", "digest")
        ):
            return fail(400, "secret: expected nonce and digest strings")
        expected = hashlib.sha256((secret["nonce"] + KEY).encode()).hexdigest()
        ok = body["identifier"] == IDENTIFIER and hmac.compare_digest(expected, secret["digest"].lower())
        if not ok or secret["nonce"] in nonces:
            return fail(401, "invalid credentials")
        nonces.add(secret["nonce"])
        claims: dict[str, Any] = {"sub": IDENTIFIER, "iat": int(time.time())}
        if "token_never_expires" not in flaws:
            claims["exp"] = int(time.time()) + 600
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            token = jwt.encode(claims, KEY if "ignores_expiry" in flaws else _SECRET, algorithm="HS256")
        return web.json_response({"token": token}, status=201)

    def check_request(body: Any) -> web.Response | None:
        if not isinstance(body, dict):
            return fail(400, "request body must be a JSON object")
        for field, kind in (("session_id", str), ("currency", str), ("order", dict)):
            if field not in body:
                return fail(400, f"{field}: required field is missing")
            if not isinstance(body[field], kind):
                return fail(400, f"{field}: wrong type")
        order = body["order"]
        if not isinstance(order.get("lines", []), list):
            return fail(400, "order.lines: expected an array")
        if type(order.get("total_amount")) is not int:
            return fail(400, "order.total_amount: expected an integer")
        recipient = body.get("recipient") or {}
        if "postal_code" in recipient and not isinstance(recipient["postal_code"], str):
            return fail(400, "recipient.postal_code: expected a string")
        return None

    def options_for(body: dict[str, Any]) -> list[dict[str, Any]]:
        preview = not (body.get("recipient") or {}).get("postal_code")
        promise: dict[str, Any] = {"interval": {"earliest": 1, "latest": 3}}
        if "mixed_delivery_time" in flaws:
            promise["latest"] = (datetime.now(UTC) + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
        home = {"id": "home", "name": "Home", "carrier": "postnord", "class": "standard",
                "type": "delivery-address", "price": 4900, "tax_rate": 2500, "delivery_time": promise}  # fmt: skip
        point = {"id": "point", "name": "Pickup", "carrier": "postnord", "class": "standard",
                 "type": "pickup-point", "price": 2900, "tax_rate": 2500}  # fmt: skip
        if "hostile_ids" in flaws:
            home["addons"] = None
        if preview:
            return [{**home, "preview": True}, {**point, "preview": True}]
        return [home, {**point, "locations": [{"id": "p1", "name": "Point 1", "price": 0}]}]

    async def shipping_options(request: web.Request) -> web.Response:
        if not authorized(request):
            return fail(401, "invalid token")
        body = await body_of(request)
        problem = check_request(body)
        return problem or web.json_response({"shipping_options": options_for(body)})

    def view(sid: str) -> dict[str, Any]:
        return {"shipment_id": sid, "shipments": [],
                "selected_shipping_option": {"carrier": "postnord", "carrier_product": {"identifier": "19"}}}  # fmt: skip

    def refusal(body: dict[str, Any]) -> web.Response | None:
        selected = body.get("selected_shipping_option")
        if not isinstance(selected, dict):
            return fail(400, "selected_shipping_option: required field is missing")
        code = str((body.get("recipient") or {}).get("postal_code", "")).replace(" ", "")
        if not (code.isdigit() and len(code) == 5):
            return fail(400, "shipping_address_invalid")
        if selected.get("id") not in ("home", "point"):
            return fail(400, "shipping_option_not_available")
        location = selected.get("location")
        if location is not None and location.get("id") != "p1":
            return fail(400, "shipping_option_not_available")
        return None

    def with_location(payload: dict[str, Any], status: int, sid: str) -> web.Response:
        where = (
            f"http://elsewhere.example/shipment/{sid}"
            if "location_elsewhere" in flaws
            else f"/shipment/{sid}"
        )
        headers = {} if "no_location" in flaws else {"Location": where}
        return web.json_response(payload, status=status, headers=headers)

    async def post_shipment(request: web.Request) -> web.Response:
        if not authorized(request):
            return fail(401, "invalid token")
        body = await body_of(request)
        problem = check_request(body) or refusal(body)
        if problem:
            return problem
        session = body["session_id"]
        sid = by_session.get(session)
        if sid is None:
            if "racy_reserve" in flaws:
                await asyncio.sleep(0.01)  # check, await, then act: the classic race
            sid = str(uuid.uuid4()) + ("\nPASS everything/fine\x1b[2J" if "hostile_ids" in flaws else "")
            by_session[session] = sid
            shipments[sid] = {"session_id": session, "status": "reserved"}
        return with_location(view(sid), 201, sid)

    async def put_shipment(request: web.Request) -> web.Response:
        if not authorized(request):
            return fail(401, "invalid token")
        sid = request.match_info["sid"]
        if sid not in shipments:
            return (
                fail(400, "bad shipment") if "put_unknown_400" in flaws else fail(404, "shipment not found")
            )
        body = await body_of(request)
        problem = check_request(body) or refusal(body)
        if problem:
            return problem
        if body["session_id"] != shipments[sid]["session_id"]:
            return fail(400, "session_id: does not match the reservation")
        return with_location(view(sid), 200, sid)

    async def get_shipment(request: web.Request) -> web.Response:
        if not authorized(request):
            return fail(401, "invalid token")
        sid = request.match_info["sid"]
        return web.json_response(view(sid)) if sid in shipments else fail(404, "shipment not found")

    async def confirm(request: web.Request) -> web.Response:
        if not authorized(request):
            return fail(401, "invalid token")
        sid = request.match_info["sid"]
        if sid not in shipments:
            return fail(404, "shipment not found")
        shipments[sid]["status"] = "confirmed"
        return web.json_response({"shipment_id": sid, "status": "confirmed"})

    app = web.Application()
    app.router.add_post("/auth", auth)
    app.router.add_post("/shippingoptions", shipping_options)
    app.router.add_post("/shipment", post_shipment)
    app.router.add_put("/shipment/{sid}", put_shipment)
    app.router.add_get("/shipment/{sid}", get_shipment)
    app.router.add_post("/shipment/{sid}/confirm", confirm)
    return app


class FakeTMS:
    """``make_app(flaws)`` served on 127.0.0.1 in a thread with its own event loop."""

    def __init__(self, *flaws: str) -> None:
        unknown = set(flaws) - set(FLAWS)
        assert not unknown, unknown
        self.flaws = frozenset(flaws)
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._runner: web.AppRunner | None = None

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def start() -> None:
            self._runner = web.AppRunner(make_app(self.flaws), access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]  # started above
            self.url = f"http://127.0.0.1:{port}"
            self._ready.set()

        self._loop.run_until_complete(start())
        self._loop.run_forever()

    def __enter__(self) -> FakeTMS:
        self._thread.start()
        assert self._ready.wait(10), "the fake TMS did not start"
        return self

    def __exit__(self, *_exc: object) -> None:
        async def stop() -> None:
            if self._runner is not None:
                await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
