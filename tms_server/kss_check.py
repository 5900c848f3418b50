"""``tms-admin kss-check``: a black-box conformance tester for the KSS callback API.

It drives a TMS the way the Klarna/Kustom Shipping Service does, over the network only (nothing of
tms_server's own code decides a check), so it serves any vendor's server as well as ours. Every
answer is held to the wire contract (``PROTOCOL.md`` beside the reference): status, headers, body
shape, ``failure_reason`` on errors, ``delivery_time`` rules, integer minor-unit prices.

Groups, in the order they run (a check whose prerequisite failed is skipped, saying which):

- ``auth``: the digest in upper- and lower-case hex, vendor media types, a replayed nonce, a wrong
  key, an unknown identifier, malformed bodies, a token that expires;
- ``tokens``: ``/shippingoptions`` without a token, with garbage, ``alg: none``, a tampered payload,
  an expired token, another scheme;
- ``options``: the request file (or the reference's example), a preview without a postal code,
  unknown fields, wrong types, missing fields, text that is not JSON, a vendor media type;
- ``reserve``: ``POST /shipment`` (201 and ``Location``), the same session again (same id), 12
  concurrent POSTs for one session (one id);
- ``update``: ``PUT`` (200 and ``Location``), an unknown id (404, so KSS falls back to POST), another
  session's body (400);
- ``read``: ``GET`` of the reservation, of an unknown id (404);
- ``confirm``: confirm, and confirm again (idempotent);
- ``refusals``: an option, a pickup point that is not offered, an invalid address, each refused with
  the reason the contract names.

``--no-reserve`` skips every group that could create a reservation (reserve, update, the reading of
one, confirm, refusals): safe against a production server.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import hashlib
import json
import math
import re
import time
import uuid
import warnings
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit
from xml.etree import ElementTree

import aiohttp
import attrs
import jwt
from attrs import frozen

__all__ = ["GROUPS", "RESERVING", "CheckResult", "example_request", "format_junit", "format_text", "run"]

GROUPS = ("auth", "tokens", "options", "reserve", "update", "read", "confirm", "refusals")
# Groups that create (or, on a faulty server, could create) reservations.
RESERVING = frozenset({"reserve", "update", "confirm", "refusals"})
CONCURRENT_POSTS = 12
MAX_TOKEN_LIFETIME = 24 * 3600  # seconds; KSS re-authenticates on any 401, a longer life only helps a thief
MAX_EXPIRY_WAIT = 30  # seconds the expired-token check waits for a token to expire, at most
EXPIRY_LEEWAY = 2.0  # seconds past exp: PROTOCOL.md allows the server 1 s of clock-skew leeway

_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:\d{2})\Z")
MAX_ANSWER = 1024 * 1024 + 1  # bytes read of an answer: KSS bodies are small, a flood is a finding
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_TOKEN_VALUE = re.compile(r'("token"\s*:\s*")[^"]*(")')


def clean(text: str) -> str:
    """Evidence as one printable line: control characters, line breaks and lone surrogates from
    the server under test are shown escaped, so they can neither forge report lines nor break XML."""
    return _UNPRINTABLE.sub(
        lambda m: m.group().encode("unicode_escape", "backslashreplace").decode("ascii"), text
    )


def example_request() -> dict[str, Any]:
    """The reference's ``/shippingoptions`` example (a Stockholm address, one order line)."""
    return {
        "currency": "SEK",
        "geoblocking": True,
        "locale": "sv-SE",
        "order": {
            "tags": ["member"],
            "id": "string",
            "lines": [{
                "attributes": {"tags": ["member"], "dimensions": {"height": 5000, "length": 5000, "width": 5000},
                               "weight": 1000},
                "quantity": 2, "reference": "sku-1234", "tax_rate": 2500, "total_discount_amount": 1000,
                "total_price_including_tax": 4000, "total_tax_amount": 1250, "type": "physical", "unit_price": 2500,
            }],
            "total_amount": 10000, "total_tax": 2500, "total_weight": 2000,
        },
        "recipient": {
            "care_of": "string", "city": "Stockholm", "company_name": "Klarna AB", "country": "SE",
            "customer_type": "person", "email": "info@klarna.com", "family_name": "Joyce", "given_name": "Klara",
            "phone": "+46812012010", "postal_code": "111 34", "region": "CA", "street_address": "Sveavägen 46",
            "street_address2": "string",
        },
        "selected_shipping_option_id": "tms-specific-shipping-option-id",
        "sender": {
            "address": {"city": "Stockholm", "country": "SE", "postal_code": "111 34", "region": "CA",
                        "street_address": "Sveavägen 46", "street_address2": "string"},
            "sender_id": "warehouse-13",
        },
        "session_id": "201cda14-975f-4c4d-9c2f-12f3896b5156",
    }  # fmt: skip


@frozen
class CheckResult:
    """One check's outcome: ``status`` PASS, FAIL or SKIP; ``detail`` the evidence (empty on PASS);
    ``ms`` its wall time in milliseconds."""

    group: str
    name: str
    status: str
    detail: str = ""
    ms: float = 0.0

    def as_json(self) -> dict[str, Any]:
        """``{group, name, status, detail, ms}`` as ``--format json`` prints it."""
        return attrs.asdict(self)


class Failed(Exception):
    """A check's expectation did not hold; the message is the evidence."""


class Skipped(Exception):
    """A check cannot run (its prerequisite failed); the message says why."""


@frozen
class Answer:
    """One HTTP answer: status, headers (case-insensitive), raw body, JSON (None when not JSON)."""

    status: int
    headers: Any
    body: bytes
    data: Any

    def brief(self) -> str:
        """The status and the start of the body, as evidence (a token the server issued is withheld)."""
        text = _TOKEN_VALUE.sub(r"\1(withheld)\2", self.body[:200].decode("utf-8", "replace"))
        return f"status {self.status}, body {text!r}"


class Tester:
    """The state shared by the checks of one run: the server, credentials, the token, what was offered."""

    def __init__(
        self, session: aiohttp.ClientSession, url: str, identifier: str, key: str, request: dict[str, Any]
    ) -> None:
        self.http = session
        self.url = url.rstrip("/")
        self.identifier = identifier
        self.key = key
        self.request = request
        self.token: str | None = None
        self.auth_body: dict[str, Any] | None = None
        self.options: list[dict[str, Any]] | None = None
        self.session_id = str(uuid.uuid4())
        self.shipment_id: str | None = None
        self.reserved_body: dict[str, Any] | None = None
        self.wrong_key_reason: str | None = None

    # -- HTTP -----------------------------------------------------------------------------------
    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        token: str | bool | None = True,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> Answer:
        """One request; ``token`` True sends the run's token, a string sends that, False none."""
        sent = dict(headers or {})
        if raw is None and body is not None:
            raw = json.dumps(body).encode()
        if raw is not None:
            sent["Content-Type"] = content_type
        if token is True:
            token = self.token
        if isinstance(token, str):
            sent.setdefault("Authorization", f"Bearer {token}")
        async with self.http.request(
            method, self.url + path, data=raw, headers=sent, allow_redirects=False
        ) as resp:
            data = await resp.content.read(MAX_ANSWER)
            if len(data) >= MAX_ANSWER:
                raise Failed(f"{method} {path}: the answer is larger than {MAX_ANSWER - 1} bytes")
            try:
                parsed = json.loads(data) if data else None
            except (ValueError, RecursionError):
                parsed = None
            answer = Answer(resp.status, resp.headers, data, parsed)
        if answer.status == 401 and token == self.token and self._expired() and await self._reauthenticate():
            # What KSS does on any 401: authenticate again and retry (the run's token expired).
            return await self.call(
                method, path, body, raw=raw, token=True, content_type=content_type, headers=headers
            )
        return answer

    def _expired(self) -> bool:
        parts = jwt_parts(self.token or "")
        exp = _number(parts[1].get("exp")) if parts else None
        return exp is not None and exp <= time.time()

    async def _reauthenticate(self) -> bool:
        a = await self.call("POST", "/auth", self.auth_payload(), token=False)
        token = a.data.get("token") if a.status == 201 and isinstance(a.data, dict) else None
        if not isinstance(token, str) or not token:
            return False
        self.token = token
        return True

    def need_token(self) -> str:
        if self.token is None:
            raise Skipped("needs a token (auth/digest-upper-hex failed)")
        return self.token

    def need_options(self) -> list[dict[str, Any]]:
        if self.options is None:
            raise Skipped("needs the shipping options (options/request failed)")
        return self.options

    def need_shipment(self) -> str:
        if self.shipment_id is None:
            raise Skipped("needs a reservation (reserve/post-201-location failed)")
        return self.shipment_id

    def auth_payload(
        self, nonce: str | None = None, *, upper: bool = True, key: str | None = None
    ) -> dict[str, Any]:
        nonce = nonce or uuid.uuid4().hex
        digest = hashlib.sha256((nonce + (self.key if key is None else key)).encode()).hexdigest()
        return {
            "identifier": self.identifier,
            "secret": {"nonce": nonce, "digest": digest.upper() if upper else digest},
        }

    def options_body(self, **changes: Any) -> dict[str, Any]:
        body = copy.deepcopy(self.request)
        body["session_id"] = self.session_id
        body.update(changes)
        return body

    def shipment_body(self, option: dict[str, Any], session_id: str | None = None) -> dict[str, Any]:
        """A ``/shipment`` body choosing ``option`` (its first pickup point and timeslot, its
        required add-ons)."""
        body = copy.deepcopy(self.request)
        body.pop("geoblocking", None)
        body.pop("selected_shipping_option_id", None)
        body["session_id"] = session_id or self.session_id
        selected: dict[str, Any] = {
            k: option[k] for k in ("id", "carrier", "class", "type", "price", "tax_rate") if k in option
        }
        locations, slots = _objects(option.get("locations")), _objects(option.get("timeslots"))
        if locations:
            selected["location"] = {
                k: locations[0][k] for k in ("id", "name", "address", "coordinates") if k in locations[0]
            }
        if slots:
            selected["timeslot"] = {k: slots[0][k] for k in ("id", "start", "end") if k in slots[0]}
        addons = [
            a for a in _objects(option.get("addons")) if a.get("required") and isinstance(a.get("id"), str)
        ]
        selected["addons"] = [{"id": a["id"], "type": a.get("type"), "price": a.get("price", 0),
                               "data": {"selected": True}} for a in addons]  # fmt: skip
        body["selected_shipping_option"] = selected
        return body

    def chosen_option(self) -> dict[str, Any]:
        options = [o for o in self.need_options() if not o.get("preview")]
        if not options:
            raise Skipped("the server offered no option for the request, so nothing can be reserved")
        return options[0]


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _objects(value: Any) -> list[dict[str, Any]]:
    """The objects of a JSON array (a server may send null, an object or a number instead)."""
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


# -- expectations ----------------------------------------------------------------------------------
def _json_type(a: Answer) -> str | None:
    ctype = a.headers.get("Content-Type", "")
    mime = ctype.split(";")[0].strip().lower()
    if mime == "application/json" or (mime.startswith("application/") and mime.endswith("+json")):
        return None
    return f"Content-Type {ctype!r} is not JSON"


def expect(a: Answer, status: int | tuple[int, ...], what: str) -> None:
    """``a`` has one of the statuses; an error answer carries a non-empty ``failure_reason``."""
    wanted = (status,) if isinstance(status, int) else status
    if a.status not in wanted:
        raise Failed(f"{what}: expected {' or '.join(map(str, wanted))}, got {a.brief()}")
    if a.body:
        problem = _json_type(a)
        if problem:
            raise Failed(f"{what}: {problem}")
    if a.status >= 400 and a.status != 401:
        reason = a.data.get("failure_reason") if isinstance(a.data, dict) else None
        if not isinstance(reason, str) or not reason.strip():
            raise Failed(f"{what}: error answer without a failure_reason: {a.brief()}")


def expect_error(
    a: Answer, status: int, what: str, *, names: str | None = None, reason: str | None = None
) -> str:
    """An error answer; ``names``: the failure_reason must mention this field; ``reason``: it must be it."""
    expect(a, status, what)
    text = a.data.get("failure_reason", "") if isinstance(a.data, dict) else ""
    if status == 401 and isinstance(a.data, dict) and "token" in a.data:
        raise Failed(f"{what}: a refused request was given a token")
    if names and names not in text:
        raise Failed(f"{what}: failure_reason does not name {names!r}: {text!r}")
    if reason is not None and text != reason:
        raise Failed(f"{what}: failure_reason should be {reason!r}, got {text!r}")
    return str(text)


def _b64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt_parts(token: str) -> tuple[dict[str, Any], dict[str, Any], str] | None:
    """(header, payload, signature) of a JWT, unverified; None for an opaque token."""
    pieces = token.split(".")
    if len(pieces) != 3:
        return None
    try:
        header, payload = json.loads(_b64(pieces[0])), json.loads(_b64(pieces[1]))
    except ValueError:
        return None
    if not isinstance(header, dict) or not isinstance(payload, dict):
        return None
    return header, payload, pieces[2]


def _instant(value: Any, where: str, problems: list[str]) -> datetime | None:
    if not isinstance(value, str) or not _RFC3339.match(value):
        problems.append(f"{where}: {value!r} is not an RFC 3339 date-time")
        return None
    text = value.upper().replace("Z", "+00:00")
    if text[17:19] == "60":  # a leap second: RFC 3339 allows it, Python's datetime does not
        text = text[:17] + "59" + text[19:]
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        problems.append(f"{where}: {value!r} is not a valid date-time")
        return None


def delivery_time_problems(dt: Any, where: str, now: datetime) -> list[str]:
    """What breaks the ``delivery_time`` rules: the interval and date families mixed, interval values
    that are not whole numbers, date-times that are not RFC 3339 or lie in the past."""
    if dt is None:
        return []
    if not isinstance(dt, dict):
        return [f"{where}: not an object"]
    problems: list[str] = []
    interval, dates = dt.get("interval"), [k for k in ("earliest", "latest") if dt.get(k) is not None]
    if interval is not None and dates:
        problems.append(
            f"{where}: mixes interval with {' and '.join(dates)} (two families that must not be mixed)"
        )
    if interval is not None:
        if not isinstance(interval, dict):
            problems.append(f"{where}.interval: not an object")
        else:
            days = {}
            for k in ("earliest", "latest"):
                v = interval.get(k)
                if v is not None and not (type(v) is int or (isinstance(v, str) and v.isdigit())):
                    problems.append(f"{where}.interval.{k}: {v!r} is not a whole number of business days")
                elif v is not None:
                    days[k] = int(v)
                    if days[k] < 0:
                        problems.append(f"{where}.interval.{k}: {v!r} business days is negative")
            if len(days) == 2 and days["earliest"] > days["latest"]:
                problems.append(
                    f"{where}.interval: earliest {days['earliest']} is after latest {days['latest']}"
                )
    past = now - timedelta(seconds=60)
    seen: dict[str, datetime] = {}
    for k in ("earliest", "latest", "cutoff"):
        if dt.get(k) is not None:
            at = _instant(dt[k], f"{where}.{k}", problems)
            if at is not None:
                seen[k] = at
                if at < past:
                    problems.append(f"{where}.{k}: {dt[k]} is in the past")
    if "earliest" in seen and "latest" in seen and seen["earliest"] > seen["latest"]:
        problems.append(f"{where}: earliest {dt['earliest']} is after latest {dt['latest']}")
    tod = dt.get("time_of_day")
    if tod is not None and not isinstance(tod, dict):
        problems.append(f"{where}.time_of_day: not an object")
    return problems


def option_problems(options: Any, now: datetime) -> list[str]:
    """What breaks the contract of a ``shipping_options`` list (``PROTOCOL.md``, "A shipping option")."""
    if not isinstance(options, list):
        return ["shipping_options: not an array"]
    problems: list[str] = []
    seen: set[str] = set()
    for i, o in enumerate(options):
        at = f"shipping_options[{i}]"
        if not isinstance(o, dict):
            problems.append(f"{at}: not an object")
            continue
        for k in ("id", "name", "carrier", "class", "type"):
            if not isinstance(o.get(k), str) or not o.get(k):
                problems.append(f"{at}.{k}: missing or not a string")
        key = repr(o.get("id"))
        if key in seen:
            problems.append(f"{at}.id: {o.get('id')!r} is not unique")
        seen.add(key)
        for k in ("locations", "timeslots", "addons", "features"):
            if o.get(k) is not None and not isinstance(o[k], list):
                problems.append(f"{at}.{k}: not an array")
        for k in ("price", "tax_rate"):
            if type(o.get(k)) is not int or o[k] < 0:
                problems.append(f"{at}.{k}: {o.get(k)!r} is not a non-negative integer (minor units)")
        if "free_above" in o and o["free_above"] is not None and type(o["free_above"]) is not int:
            problems.append(f"{at}.free_above: {o['free_above']!r} is not an integer (minor units)")
        if "preview" in o and not isinstance(o["preview"], bool):
            problems.append(f"{at}.preview: not a boolean")
        problems += delivery_time_problems(o.get("delivery_time"), f"{at}.delivery_time", now)
        for j, loc in enumerate(_list(o.get("locations"))):
            where = f"{at}.locations[{j}]"
            if not isinstance(loc, dict) or not isinstance(loc.get("id"), str):
                problems.append(f"{where}: no id")
                continue
            if "price" in loc and type(loc["price"]) is not int:
                problems.append(f"{where}.price: {loc['price']!r} is not an integer (minor units)")
            problems += delivery_time_problems(loc.get("delivery_time"), f"{where}.delivery_time", now)
        for j, slot in enumerate(_list(o.get("timeslots"))):
            where = f"{at}.timeslots[{j}]"
            if not isinstance(slot, dict) or not isinstance(slot.get("id"), str):
                problems.append(f"{where}: no id")
                continue
            end = [_instant(slot.get(k), f"{where}.{k}", problems) for k in ("start", "end")][1]
            if end is not None and end < now:
                problems.append(f"{where}: ends {slot.get('end')}, in the past")
            if "price" in slot and type(slot["price"]) is not int:
                problems.append(f"{where}.price: {slot['price']!r} is not an integer (minor units)")
        for j, addon in enumerate(_list(o.get("addons"))):
            if not isinstance(addon, dict) or not isinstance(addon.get("id"), str):
                problems.append(f"{at}.addons[{j}]: no id")
            elif "price" in addon and type(addon["price"]) is not int:
                problems.append(f"{at}.addons[{j}].price: {addon['price']!r} is not an integer (minor units)")
    return problems


def shipment_problems(a: Answer, shipment_id: str | None = None) -> list[str]:
    """What breaks the shipment body: ``shipment_id``, ``selected_shipping_option{carrier,
    carrier_product{identifier}}``, ``shipments[]``."""
    d = a.data
    if not isinstance(d, dict):
        return [f"body is not a JSON object: {a.brief()}"]
    problems = []
    sid = d.get("shipment_id")
    if not isinstance(sid, str) or not sid:
        problems.append("shipment_id: missing or not a string")
    elif shipment_id is not None and sid != shipment_id:
        problems.append(f"shipment_id: {sid!r}, expected {shipment_id!r}")
    sel = d.get("selected_shipping_option")
    if not isinstance(sel, dict) or not isinstance(sel.get("carrier"), str):
        problems.append("selected_shipping_option.carrier: missing")
    elif not isinstance(sel.get("carrier_product"), dict) or not isinstance(
        sel["carrier_product"].get("identifier"), str
    ):
        problems.append("selected_shipping_option.carrier_product.identifier: missing")
    if "shipments" in d and not isinstance(d["shipments"], list):
        problems.append("shipments: not an array")
    return problems


def expect_shipment(a: Answer, base_url: str, shipment_id: str | None, what: str) -> None:
    """A shipment body (``shipment_problems``) and its ``Location`` (``expect_location``)."""
    problems = shipment_problems(a, shipment_id)
    if problems:
        raise Failed(f"{what}: " + "; ".join(problems))
    expect_location(a, base_url, shipment_id or str(a.data["shipment_id"]), what)


def expect_location(a: Answer, base_url: str, shipment_id: str, what: str) -> None:
    """``Location: /shipment/{id}`` (below the server's base path), or that URL on the same server."""
    location = a.headers.get("Location")
    if not location:
        raise Failed(f"{what}: no Location header ({a.brief()})")
    base = urlsplit(base_url)
    target = urlsplit(location)
    wanted = f"{base.path.rstrip('/')}/shipment/{shipment_id}"
    if (
        target.netloc and (target.scheme, target.netloc) != (base.scheme, base.netloc)
    ) or target.path != wanted:
        raise Failed(f"{what}: Location {location!r} is not {wanted!r} on this server")


# -- the checks ------------------------------------------------------------------------------------
Check = Callable[[Tester], Awaitable[str | None]]
CHECKS: list[tuple[str, str, Check]] = []


def check(group: str, name: str) -> Callable[[Check], Check]:
    def register(fn: Check) -> Check:
        CHECKS.append((group, name, fn))
        return fn

    return register


@check("auth", "digest-upper-hex")
async def _auth_upper(t: Tester) -> str | None:
    body = t.auth_payload(upper=True)
    t.token = _expect_token(await t.call("POST", "/auth", body, token=False), "POST /auth")
    t.auth_body = body
    return None


@check("auth", "digest-lower-hex")
async def _auth_lower(t: Tester) -> str | None:
    _expect_token(
        await t.call("POST", "/auth", t.auth_payload(upper=False), token=False), "lower-case digest"
    )
    return None


def _expect_token(a: Answer, what: str) -> str:
    expect(a, 201, what)
    token = a.data.get("token") if isinstance(a.data, dict) else None
    if not isinstance(token, str) or not token:
        raise Failed(f"{what}: 201 without a token: {a.brief()}")
    return token


@check("auth", "vendor-media-types")
async def _auth_vendor(t: Tester) -> str | None:
    for ctype in (
        "application/vnd.klarna.shipping.auth-v1+json",
        "application/vdn.klarna.shipping.auth-v1+json",
    ):
        a = await t.call("POST", "/auth", t.auth_payload(), token=False, content_type=ctype)
        _expect_token(a, f"Content-Type {ctype}")
    return None


@check("auth", "replayed-nonce")
async def _auth_replay(t: Tester) -> str | None:
    if t.auth_body is None:
        raise Skipped("needs an accepted /auth body (auth/digest-upper-hex failed)")
    expect_error(await t.call("POST", "/auth", t.auth_body, token=False), 401, "the same /auth body again")
    return None


@check("auth", "wrong-key")
async def _auth_wrong_key(t: Tester) -> str | None:
    a = await t.call("POST", "/auth", t.auth_payload(key=t.key + "x"), token=False)
    t.wrong_key_reason = expect_error(a, 401, "a digest made with another key")
    return None


@check("auth", "unknown-identifier")
async def _auth_unknown(t: Tester) -> str | None:
    body = t.auth_payload()
    body["identifier"] = f"kss-check-unknown-{uuid.uuid4().hex[:8]}"
    reason = expect_error(await t.call("POST", "/auth", body, token=False), 401, "an unknown identifier")
    if t.wrong_key_reason is not None and reason != t.wrong_key_reason:
        raise Failed(
            f"an unknown identifier and a wrong key are told apart: {reason!r} vs {t.wrong_key_reason!r}"
        )
    return None


@check("auth", "malformed-bodies")
async def _auth_malformed(t: Tester) -> str | None:
    cases: list[tuple[str, bytes]] = [
        ("text that is not JSON", b"identifier=x"),
        ("a JSON array", b"[]"),
        ("no secret", json.dumps({"identifier": t.identifier}).encode()),
        ("identifier a number", json.dumps({**t.auth_payload(), "identifier": 5}).encode()),
        (
            "digest a number",
            json.dumps({"identifier": t.identifier, "secret": {"nonce": "n", "digest": 12}}).encode(),
        ),
    ]
    for what, raw in cases:
        expect(await t.call("POST", "/auth", raw=raw, token=False), 400, what)
    return None


@check("auth", "token-expires")
async def _token_expires(t: Tester) -> str | None:
    token = t.need_token()
    parts = jwt_parts(token)
    if parts is None:
        raise Skipped("the token is not a JWT: its expiry cannot be read")
    exp = _number(parts[1].get("exp"))
    if exp is None:
        raise Failed(f"the token has no usable exp claim ({parts[1].get('exp')!r}): it never expires")
    left = exp - time.time()
    if left <= 0:
        raise Failed(f"the token expired {-left:.0f} s before it was used")
    if left > MAX_TOKEN_LIFETIME:
        raise Failed(f"the token lives {left / 3600:.1f} h (more than {MAX_TOKEN_LIFETIME // 3600} h)")
    return f"expires in {left:.0f} s"


async def _refused_token(t: Tester, token: str | None, what: str, scheme: str = "Bearer") -> None:
    headers = {"Authorization": f"{scheme} {token}"} if token is not None else {}
    a = await t.call("POST", "/shippingoptions", t.options_body(), token=False, headers=headers)
    if a.status != 401:
        raise Failed(f"{what}: expected 401, got {a.brief()}")


@check("tokens", "missing-token")
async def _no_token(t: Tester) -> str | None:
    await _refused_token(t, None, "no Authorization header")
    return None


@check("tokens", "garbage-token")
async def _garbage_token(t: Tester) -> str | None:
    await _refused_token(t, "not-a-token", "Bearer not-a-token")
    return None


def _forged(t: Tester) -> tuple[dict[str, Any], dict[str, Any], str]:
    parts = jwt_parts(t.need_token())
    if parts is None:
        raise Skipped("the token is not a JWT")
    return parts


@check("tokens", "alg-none")
async def _alg_none(t: Tester) -> str | None:
    header, payload, _ = _forged(t)
    forged = f"{_b64e(json.dumps({**header, 'alg': 'none'}).encode())}.{_b64e(json.dumps(payload).encode())}."
    await _refused_token(t, forged, "an unsigned token (alg none)")
    return None


@check("tokens", "tampered-payload")
async def _tampered(t: Tester) -> str | None:
    header, payload, signature = _forged(t)
    changed = {**payload, "exp": int(time.time()) + 10 * 365 * 86400, "kss_check": True}
    forged = f"{_b64e(json.dumps(header).encode())}.{_b64e(json.dumps(changed).encode())}.{signature}"
    await _refused_token(t, forged, "a token whose payload was changed")
    return None


@check("tokens", "expired-token")
async def _expired(t: Tester) -> str | None:
    header, payload, _ = _forged(t)
    if _signed_with(t.need_token(), t.key):
        now = int(time.time())
        claims = {**payload, "iat": now - 7200, "nbf": now - 7200, "exp": now - 3600}
        # Signed with the merchant key, the one secret the tester knows: a server that signs with it
        # and forgets the expiry would accept this token.
        with warnings.catch_warnings():  # a vendor's merchant key may be short for HS256: no matter here
            warnings.simplefilter("ignore")
            forged = jwt.encode(
                claims, t.key, algorithm="HS256", headers={k: v for k, v in header.items() if k != "alg"}
            )
        await _refused_token(t, forged, "a token that expired an hour ago")
        return "forged with the merchant key, which the server signs with"
    exp, iat = _number(payload.get("exp")), _number(payload.get("iat"))
    lifetime = exp - iat if exp is not None and iat is not None else None
    if lifetime is None or not 0 < lifetime <= MAX_EXPIRY_WAIT:
        raise Skipped(f"tokens are signed with the server's own key and live {lifetime or '?'} s: an expired one "
                      f"can only be waited for (give the server a lifetime of at most {MAX_EXPIRY_WAIT} s)")  # fmt: skip
    fresh = _expect_token(await t.call("POST", "/auth", t.auth_payload(), token=False), "POST /auth")
    fresh_exp = (jwt_parts(fresh) or ({}, {}, ""))[1].get("exp", time.time() + lifetime)
    wait = max(0.0, float(fresh_exp) - time.time()) + EXPIRY_LEEWAY
    await asyncio.sleep(wait)
    await _refused_token(t, fresh, f"a token {EXPIRY_LEEWAY:.0f} s after its exp")
    return f"waited {wait:.0f} s for a token to expire"


def _number(value: Any) -> float | None:
    """A finite JSON number (not a boolean), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _signed_with(token: str, key: str) -> bool:
    """Whether ``token`` is an HS256 JWT signed with ``key`` (some TMSes sign with the merchant key)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            jwt.decode(token, key, algorithms=["HS256"], options={"verify_exp": False, "verify_aud": False,
                                                                  "verify_iss": False, "verify_nbf": False})  # fmt: skip
        except jwt.PyJWTError:
            return False
    return True


@check("tokens", "other-scheme")
async def _other_scheme(t: Tester) -> str | None:
    await _refused_token(t, t.need_token(), "Authorization: Basic <token>", scheme="Basic")
    return None


@check("options", "request")
async def _options(t: Tester) -> str | None:
    t.need_token()
    a = await t.call("POST", "/shippingoptions", t.options_body())
    expect(a, 200, "POST /shippingoptions")
    if not isinstance(a.data, dict) or not isinstance(a.data.get("shipping_options"), list):
        raise Failed(f"no shipping_options array in {a.brief()}")
    options = a.data["shipping_options"]
    # Kept even when the options break a rule, so the reservation checks still run on them.
    t.options = [o for o in options if isinstance(o, dict) and isinstance(o.get("id"), str)]
    problems = option_problems(options, datetime.now(UTC))
    if problems:
        more = f" (and {len(problems) - 8} more)" if len(problems) > 8 else ""
        raise Failed("; ".join(problems[:8]) + more)
    return f"{len(options)} option(s)"


@check("options", "preview-without-postal-code")
async def _preview(t: Tester) -> str | None:
    t.need_token()
    body = t.options_body()
    recipient = {k: v for k, v in (body.get("recipient") or {}).items() if k in ("country", "customer_type")}
    body["recipient"] = recipient
    a = await t.call("POST", "/shippingoptions", body)
    expect(a, 200, "a recipient without postal code")
    options = a.data.get("shipping_options") if isinstance(a.data, dict) else None
    problems = option_problems(options, datetime.now(UTC))
    for i, o in enumerate(_objects(options)):
        if o.get("preview") is not True:
            problems.append(f"shipping_options[{i}]: not marked preview: true")
        if o.get("locations"):
            problems.append(f"shipping_options[{i}]: lists pickup points before the address is known")
    if problems:
        raise Failed("; ".join(problems[:8]))
    return None


@check("options", "unknown-fields")
async def _unknown_fields(t: Tester) -> str | None:
    t.need_token()
    body = t.options_body(kss_check_future_field={"nested": [1, 2]})
    body["order"] = {**(body.get("order") or {}), "kss_check_field": "x"}
    body["order"]["lines"] = [{**line, "kss_check_field": True} if isinstance(line, dict) else line
                              for line in body["order"].get("lines", [])]  # fmt: skip
    if isinstance(body.get("recipient"), dict):
        body["recipient"] = {**body["recipient"], "kss_check_field": None}
    expect(await t.call("POST", "/shippingoptions", body), 200, "fields KSS may add later")
    return None


def _set(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    target = body
    *parents, last = path.split(".")
    for p in parents:
        if not isinstance(target.get(p), dict):
            target[p] = {}
        target = target[p]
    if value is _DROP:
        target.pop(last, None)
    else:
        target[last] = value
    return body


_DROP = object()


@check("options", "wrong-types")
async def _wrong_types(t: Tester) -> str | None:
    t.need_token()
    cases: tuple[tuple[str, Any], ...] = (
        ("recipient.postal_code", 11134),
        ("order.total_amount", "10000"),
        ("order.lines", {}),
        ("currency", 752),
    )
    for path, value in cases:
        a = await t.call("POST", "/shippingoptions", _set(t.options_body(), path, value))
        expect_error(a, 400, f"{path} = {json.dumps(value)}", names=path.rsplit(".", 1)[-1])
    return None


@check("options", "missing-fields")
async def _missing(t: Tester) -> str | None:
    t.need_token()
    for path in ("session_id", "currency", "order"):
        a = await t.call("POST", "/shippingoptions", _set(t.options_body(), path, _DROP))
        expect_error(a, 400, f"no {path}", names=path)
    return None


@check("options", "not-json")
async def _not_json(t: Tester) -> str | None:
    t.need_token()
    for what, raw in (("text that is not JSON", b'{"session_id": '), ("a JSON array", b"[]")):
        expect(await t.call("POST", "/shippingoptions", raw=raw), 400, what)
    return None


@check("options", "vendor-media-type")
async def _options_vendor(t: Tester) -> str | None:
    t.need_token()
    ctype = "application/vnd.klarna.shipping.shipping_options-v1+json"
    expect(await t.call("POST", "/shippingoptions", t.options_body(), content_type=ctype), 200, ctype)
    return None


@check("reserve", "post-201-location")
async def _post(t: Tester) -> str | None:
    option = t.chosen_option()
    body = t.shipment_body(option)
    a = await t.call("POST", "/shipment", body)
    expect(a, 201, f"POST /shipment of {option.get('id')!r}")
    problems = shipment_problems(a)
    if problems:
        raise Failed("; ".join(problems))
    sid = a.data["shipment_id"]
    t.shipment_id, t.reserved_body = sid, body  # the later checks can use it, Location or not
    expect_location(a, t.url, sid, "POST /shipment")
    return f"shipment {sid}"


@check("reserve", "post-same-session")
async def _post_again(t: Tester) -> str | None:
    sid = t.need_shipment()
    assert t.reserved_body is not None
    a = await t.call("POST", "/shipment", t.reserved_body)
    expect(a, (200, 201), "POST /shipment again for the same session")
    expect_shipment(a, t.url, sid, "the second POST")
    return None


@check("reserve", "concurrent-posts")
async def _concurrent(t: Tester) -> str | None:
    option = t.chosen_option()
    body = t.shipment_body(option, session_id=str(uuid.uuid4()))
    answers = await asyncio.gather(*(t.call("POST", "/shipment", body) for _ in range(CONCURRENT_POSTS)))
    for a in answers:
        expect(a, (200, 201), f"one of {CONCURRENT_POSTS} concurrent POSTs for one session")
        expect_shipment(a, t.url, None, f"one of {CONCURRENT_POSTS} concurrent POSTs")
    ids = {str(a.data.get("shipment_id")) for a in answers}
    if len(ids) != 1:
        raise Failed(
            f"{CONCURRENT_POSTS} concurrent POSTs for one session gave {len(ids)} shipment ids: {sorted(map(str, ids))}"
        )
    return None


@check("update", "put-200-location")
async def _put(t: Tester) -> str | None:
    sid = t.need_shipment()
    assert t.reserved_body is not None
    a = await t.call("PUT", f"/shipment/{sid}", t.reserved_body)
    expect(a, 200, f"PUT /shipment/{sid}")
    expect_shipment(a, t.url, sid, "PUT")
    return None


@check("update", "put-unknown-id-404")
async def _put_unknown(t: Tester) -> str | None:
    option = t.chosen_option()
    a = await t.call(
        "PUT", f"/shipment/{uuid.uuid4()}", t.shipment_body(option, session_id=str(uuid.uuid4()))
    )
    expect(a, 404, "PUT of an unknown shipment id (KSS then falls back to POST)")
    return None


@check("update", "put-other-session-400")
async def _put_other(t: Tester) -> str | None:
    sid = t.need_shipment()
    assert t.reserved_body is not None
    body = {**t.reserved_body, "session_id": str(uuid.uuid4())}
    expect_error(await t.call("PUT", f"/shipment/{sid}", body), 400, "PUT with another session's id")
    return None


@check("read", "get-200")
async def _get(t: Tester) -> str | None:
    sid = t.need_shipment()
    a = await t.call("GET", f"/shipment/{sid}")
    expect(a, 200, f"GET /shipment/{sid}")
    problems = shipment_problems(a, sid)
    if problems:
        raise Failed("; ".join(problems))
    return None


@check("read", "get-unknown-404")
async def _get_unknown(t: Tester) -> str | None:
    t.need_token()
    expect(await t.call("GET", f"/shipment/{uuid.uuid4()}"), 404, "GET of an unknown shipment id")
    return None


@check("confirm", "confirm-200")
async def _confirm(t: Tester) -> str | None:
    sid = t.need_shipment()
    expect(await t.call("POST", f"/shipment/{sid}/confirm"), 200, f"POST /shipment/{sid}/confirm")
    return None


@check("confirm", "confirm-idempotent")
async def _confirm_again(t: Tester) -> str | None:
    sid = t.need_shipment()
    expect(await t.call("POST", f"/shipment/{sid}/confirm"), 200, "the same confirm again")
    return None


@check("refusals", "option-not-offered")
async def _refuse_option(t: Tester) -> str | None:
    option = {**t.chosen_option(), "id": f"kss-check-no-such-option-{uuid.uuid4().hex[:6]}"}
    body = t.shipment_body(option, session_id=str(uuid.uuid4()))
    expect_error(await t.call("POST", "/shipment", body), 400, "an option that was never offered",
                 reason="shipping_option_not_available")  # fmt: skip
    return None


@check("refusals", "pickup-point-not-offered")
async def _refuse_point(t: Tester) -> str | None:
    option = next((o for o in t.need_options() if o.get("locations") and not o.get("preview")), None)
    if option is None:
        raise Skipped("no option with pickup points was offered for the request")
    body = t.shipment_body(option, session_id=str(uuid.uuid4()))
    body["selected_shipping_option"]["location"] = {
        **body["selected_shipping_option"].get("location", {}),
        "id": f"kss-check-no-such-point-{uuid.uuid4().hex[:6]}",
    }
    expect_error(await t.call("POST", "/shipment", body), 400, "a pickup point that was never offered",
                 reason="shipping_option_not_available")  # fmt: skip
    return None


@check("refusals", "invalid-address")
async def _refuse_address(t: Tester) -> str | None:
    body = t.shipment_body(t.chosen_option(), session_id=str(uuid.uuid4()))
    body["recipient"] = {**(body.get("recipient") or {}), "postal_code": "not a postal code"}
    expect_error(await t.call("POST", "/shipment", body), 400, "a postal code that does not exist",
                 reason="shipping_address_invalid")  # fmt: skip
    return None


# Checks whose result later groups need, with the checks that need them.
_PREREQUISITES: dict[tuple[str, str], frozenset[str]] = {
    ("auth", "digest-upper-hex"): frozenset(GROUPS) - {"auth"},
    ("options", "request"): frozenset({"reserve", "update", "read", "confirm", "refusals"}),
    ("reserve", "post-201-location"): frozenset({"update", "read", "confirm"}),
}


async def run(
    url: str,
    identifier: str,
    key: str,
    *,
    request: dict[str, Any] | None = None,
    only: Iterable[str] = (),
    reserve: bool = True,
    request_timeout: float = 10.0,
) -> list[CheckResult]:
    """Run the checks against ``url`` (the TMS's base URL); ``only`` limits them to those groups,
    ``reserve`` False skips the groups that create reservations. ``request_timeout`` is per request,
    in seconds. Never raises for what the server does: a refused connection, an answer too large
    or of a shape the tester cannot read is a failed check. A prerequisite outside ``only`` (the
    token, the options, a reservation) runs too, and is reported when it did not pass."""
    chosen = set(only) or set(GROUPS)
    results: list[CheckResult] = []
    connector = aiohttp.TCPConnector(limit=CONCURRENT_POSTS + 4)
    timeout = aiohttp.ClientTimeout(total=request_timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        tester = Tester(http, url, identifier, key, request or example_request())
        for group, name, fn in CHECKS:
            reserving = group in RESERVING | {"read"} and (group, name) != ("read", "get-unknown-404")
            prerequisite = bool(_PREREQUISITES.get((group, name), frozenset()) & chosen)
            if group not in chosen and not (prerequisite and (reserve or not reserving)):
                continue
            if not reserve and reserving:
                results.append(CheckResult(group, name, "SKIP", "--no-reserve"))
                continue
            start = time.perf_counter()
            try:
                note = await fn(tester)
                status, detail = "PASS", note or ""
            except Failed as exc:
                status, detail = "FAIL", str(exc)
            except Skipped as exc:
                status, detail = "SKIP", str(exc)
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                status, detail = "FAIL", f"no answer: {type(exc).__name__}: {exc}"
            except Exception as exc:  # an answer of a shape no check foresaw is a finding, not a crash
                status, detail = "FAIL", f"an answer the tester could not read: {type(exc).__name__}: {exc}"
            if group in chosen or status != "PASS":
                ms = round((time.perf_counter() - start) * 1000, 1)
                results.append(CheckResult(group, name, status, clean(detail), ms))
    return results


def summary(results: list[CheckResult]) -> str:
    """``N passed, N failed, N skipped``."""
    count = {s: sum(1 for r in results if r.status == s) for s in ("PASS", "FAIL", "SKIP")}
    return f"{count['PASS']} passed, {count['FAIL']} failed, {count['SKIP']} skipped"


def format_text(results: list[CheckResult]) -> str:
    """One line per check (the evidence after a failure or skip), then the summary line."""
    lines = []
    for r in results:
        line = f"{r.status} {r.group}/{r.name} ({r.ms:.0f} ms)"
        if r.detail:
            line += f": {r.detail}"
        lines.append(line)
    lines.append(summary(results))
    return "\n".join(lines)


def format_junit(results: list[CheckResult], url: str) -> str:
    """JUnit XML: one test suite, one test case per check (class name: its group)."""
    failures = sum(1 for r in results if r.status == "FAIL")
    skipped = sum(1 for r in results if r.status == "SKIP")
    suite = ElementTree.Element(
        "testsuite",
        name="kss-check",
        tests=str(len(results)),
        failures=str(failures),
        errors="0",
        skipped=str(skipped),
        time=f"{sum(r.ms for r in results) / 1000:.3f}",
        hostname=url,
    )
    for r in results:
        case = ElementTree.SubElement(
            suite, "testcase", classname=r.group, name=r.name, time=f"{r.ms / 1000:.3f}"
        )
        if r.status == "FAIL":
            ElementTree.SubElement(case, "failure", message=r.detail[:500]).text = r.detail
        elif r.status == "SKIP":
            ElementTree.SubElement(case, "skipped", message=r.detail)
        elif r.detail:
            ElementTree.SubElement(case, "system-out").text = r.detail
    root = ElementTree.Element("testsuites")
    root.append(suite)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ElementTree.tostring(root, encoding="unicode")
