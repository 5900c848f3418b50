"""The operators' web UI on its own listener (``TMS_ADMIN_PORT``): what the shopper will see, and why.

Pages (server-rendered with aiohttp-jinja2, autoescaping on):

- ``/admin/login``: the token from ``tms-admin operator add`` buys a session cookie (HttpOnly,
  SameSite=Strict, path ``/admin``); ``/admin/logout`` ends it. Both are audited.
- ``/admin/preview``: choose a merchant, a catalog version (served or any stored one), a locale and
  a clock; edit the cart and address (form fields over the raw KSS JSON, samples to start from); see
  the options as the Shipping Assistant shows them, each hidden option with the condition that hid
  it, and each price's build-up. ``Accept: application/json`` gets the options and the trace.
- ``/admin/reservations`` and ``/admin/reservations/{id}``: the list (no personal data) and one
  reservation with its audit trail, read-only: what ``tms-admin reservations list/show`` print.

Scripts may send ``Authorization: Bearer TOKEN`` instead of the cookie. Without a valid session an
HTML request is sent to the login page (303) and a JSON request gets 401. Every form carries a CSRF
token; a cookie-authenticated POST without the session's token is refused (403).
"""

from __future__ import annotations

import copy
import json
import re
import secrets
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import quote
from zoneinfo import ZoneInfo

import aiohttp_jinja2
import jinja2
from aiohttp import web
from babel import Locale, UnknownLocaleError
from babel.numbers import format_currency, get_currency_precision

from tms_server import catalog_store, operators, wire
from tms_server.catalog import Catalog, CatalogError, parse_catalog
from tms_server.catalog.engine import evaluate_options, offered_dicts
from tms_server.catalog.explain import explanation_of
from tms_server.catalog.logistics import recipient_tz
from tms_server.db import DatabaseUnavailable
from tms_server.delivery_time import render
from tms_server.reservations import ShipmentNotFound
from tms_server.reservations import operator as reservation_ops
from tms_server.reservations.record import to_json
from tms_server.web import keys

__all__ = ["SAMPLES", "create_admin_app"]

COOKIE: Final = "tms_session"
OPERATOR_KEY: Final = web.RequestKey("operator", str)  # who is asking
CSRF_KEY: Final = web.RequestKey("csrf", str)  # their session's CSRF token ("" with a Bearer token)
LOCALES: Final = ("en", "sv-SE", "nb-NO", "da-DK", "fi-FI", "de-DE")
_COMPILED = web.AppKey("compiled", dict)  # catalog id -> compiled catalog (stored versions tried out)
_SECURITY_HEADERS: Final = {
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Server": "tms_server",
}


def _line(reference: str, quantity: int, price: int, weight: int | None, size: tuple[int, int, int] | None,
          tags: list[str] | None = None, kind: str = "physical") -> dict[str, Any]:  # fmt: skip
    attributes: dict[str, Any] = {}
    if weight is not None:
        attributes["weight"] = weight
    if size is not None:
        attributes["dimensions"] = dict(zip(("length", "width", "height"), size, strict=True))
    if tags:
        attributes["tags"] = tags
    line: dict[str, Any] = {"reference": reference, "type": kind, "quantity": quantity, "unit_price": price,
                            "total_price_including_tax": price * quantity, "tax_rate": 2500}  # fmt: skip
    if attributes:
        line["attributes"] = attributes
    return line


def _sample(country: str, postal_code: str | None, lines: list[dict[str, Any]], *, currency: str = "SEK",
            customer_type: str = "person", city: str = "") -> dict[str, Any]:  # fmt: skip
    recipient: dict[str, Any] = {"country": country, "customer_type": customer_type}
    if postal_code is not None:
        recipient.update(postal_code=postal_code, city=city, street_address="Storgatan 1", email="klara@example.com",
                         phone="+46701234567", given_name="Klara", family_name="Joyce")  # fmt: skip
    return {
        "session_id": "preview",
        "currency": currency,
        "locale": "sv-SE" if country == "SE" else "en",
        "order": {
            "id": "preview",
            "lines": lines,
            "total_amount": sum(ln["total_price_including_tax"] for ln in lines),
            "tags": [],
        },
        "recipient": recipient,
    }


SAMPLES: Final[dict[str, tuple[str, dict[str, Any]]]] = {
    "stockholm": ("Stockholm, two small parcels", _sample("SE", "111 34", [
        _line("sku-shirt", 2, 24900, 300, (300, 200, 50)), _line("sku-mug", 1, 14900, 450, (120, 100, 100))],
        city="Stockholm")),
    "kiruna": ("Kiruna, far north", _sample("SE", "981 31", [_line("sku-boots", 1, 129900, 1800, (350, 250, 150))],
                                           city="Kiruna")),
    "visby": ("Visby, Gotland", _sample("SE", "621 41", [_line("sku-lamp", 1, 49900, 2500, (400, 300, 300))],
                                       city="Visby")),
    "preview": ("No postal code yet (preview)", _sample("SE", None, [_line("sku-shirt", 1, 24900, 300, None)])),
    "heavy": ("Heavy cart, 30 kg", _sample("SE", "411 01", [_line("sku-weights", 2, 79900, 15000, (400, 300, 300))],
                                          city="Göteborg")),
    "bulky": ("Bulky sofa", _sample("SE", "111 34", [
        _line("sku-sofa", 1, 899900, 45000, (2100, 900, 800), ["bulky"])], city="Stockholm")),
    "digital": ("Gift card only (nothing to ship)", _sample("SE", "111 34", [
        _line("sku-giftcard", 1, 50000, None, None, kind="gift_card")], city="Stockholm")),
    "norway": ("Oslo, organization, EUR", _sample("NO", "0150", [_line("sku-tools", 3, 4900, 800, (300, 200, 100))],
                                                 currency="EUR", customer_type="organization", city="Oslo")),
}  # fmt: skip


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _wants_json(request: web.Request) -> bool:
    accept = request.headers.get("Accept", "")
    if "text/html" in accept:
        return False
    return "application/json" in accept or request.content_type == "application/json"


def _refuse(request: web.Request, status: int, reason: str) -> web.StreamResponse:
    if _wants_json(request) or request.headers.get("Authorization"):
        headers = {"WWW-Authenticate": 'Bearer realm="tms_server operators"'} if status == 401 else None
        return web.json_response({"failure_reason": reason}, status=status, headers=headers)
    if status == 401:
        raise web.HTTPSeeOther(f"/admin/login?next={quote(str(request.rel_url), safe='/')}")
    return aiohttp_jinja2.render_template(
        "error.html", request, {"status": status, "reason": reason}, status=status
    )


@web.middleware
async def _guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Who is asking (Bearer token or session cookie), CSRF on cookie-authenticated POSTs, the
    security headers, and 503 when the database is away."""
    try:
        response = await _authorised(request, handler)
    except DatabaseUnavailable:
        response = web.json_response({"failure_reason": "database unreachable; try again"}, status=503)
    except web.HTTPException as exc:  # redirects (login, logout, no session) keep the headers too
        _secure(request, exc)
        raise
    _secure(request, response)
    return response


def _secure(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in _SECURITY_HEADERS.items():
        response.headers[name] = value
    if request.path != "/admin/style.css":
        response.headers["Cache-Control"] = "no-store"


async def _authorised(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path in ("/admin/login", "/admin/style.css", "/admin/ui.js", "/favicon.ico"):
        return await handler(request)
    db = request.app[keys.DB]
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        async with db.connection() as conn:
            name = await operators.by_token(conn, token.strip())
        if name is None:
            return _refuse(request, 401, "invalid operator token")
        request[OPERATOR_KEY] = name
        request[CSRF_KEY] = ""
        return await handler(request)
    sid = request.cookies.get(COOKIE, "")
    async with db.connection() as conn:
        found = await operators.session(conn, sid) if sid else None
    if found is None:
        return _refuse(request, 401, "log in first (or send Authorization: Bearer TOKEN)")
    request[OPERATOR_KEY], request[CSRF_KEY] = found.operator, found.csrf
    if request.method == "POST":
        given = request.headers.get("X-CSRF-Token")
        if given is None and request.content_type in (
            "application/x-www-form-urlencoded",
            "multipart/form-data",
        ):
            given = str((await request.post()).get("csrf", ""))
        if not operators.csrf_matches(found.csrf, given):
            return _refuse(request, 403, "the form's CSRF token is missing or stale; reload the page")
    return await handler(request)


def _client(request: web.Request) -> str:
    return request.remote or "unknown"


LOGIN_COOKIE: Final = "tms_login"


def _login_form(request: web.Request, target: str, error: str | None, status: int = 200) -> web.Response:
    """The login page with a fresh double-submit CSRF token (a SameSite=Strict cookie and the same
    value in the form): a login posted from another site carries no cookie and is refused."""
    # Kept while it lasts: a browser's side requests (a favicon) must not change it under the form.
    value = request.cookies.get(LOGIN_COOKIE, "")
    if not re.fullmatch(r"[A-Za-z0-9_-]{32}", value):
        value = secrets.token_urlsafe(24)
    page = aiohttp_jinja2.render_template(
        "login.html", request, {"next": target, "error": error, "login_csrf": value}, status=status
    )
    page.set_cookie(LOGIN_COOKIE, value, max_age=3600, path="/admin/login", httponly=True, samesite="Strict",
                    secure=request.secure)  # fmt: skip
    return page


async def login_page(request: web.Request) -> web.StreamResponse:
    """GET /admin/login."""
    return _login_form(request, _safe_next(request.query.get("next")), None)


def _safe_next(target: str | None) -> str:
    """Only our own pages: an attacker's link must not bounce a fresh login elsewhere."""
    if target and target.startswith("/admin/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/admin/preview"


async def login(request: web.Request) -> web.StreamResponse:
    """POST /admin/login: the token for a session cookie."""
    form = await request.post()
    token, target = str(form.get("token", "")).strip(), _safe_next(str(form.get("next", "")))
    cross_site = request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none")
    if cross_site or not operators.csrf_matches(
        request.cookies.get(LOGIN_COOKIE, ""), str(form.get("login_csrf", ""))
    ):
        return _login_form(
            request, target, "The login form expired or came from another site; log in again.", 403
        )
    async with request.app[keys.DB].connection() as conn:
        made = await operators.login(conn, token, _client(request))
    if made is None:
        return _login_form(request, target, "That token is not valid.", 401)
    sid, _session = made
    response = web.HTTPSeeOther(target)
    response.del_cookie(LOGIN_COOKIE, path="/admin/login")
    response.set_cookie(COOKIE, sid, max_age=operators.SESSION_SECONDS, path="/admin", httponly=True,
                        samesite="Strict", secure=request.secure)  # fmt: skip
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    """POST /admin/logout (CSRF checked by the guard)."""
    async with request.app[keys.DB].connection() as conn:
        await operators.logout(conn, request.cookies.get(COOKIE, ""), _client(request))
    response = web.HTTPSeeOther("/admin/login")
    response.del_cookie(COOKIE, path="/admin")
    raise response


async def home(_request: web.Request) -> web.StreamResponse:
    raise web.HTTPSeeOther("/admin/preview")


# -- the preview ---------------------------------------------------------------------------------------
def _money(amount: int, currency: str, locale: str) -> str:
    """Minor units as the shopper reads them, e.g. ``49,00 kr`` in sv-SE."""
    try:
        babel_locale = Locale.parse(locale.replace("-", "_"))
    except (UnknownLocaleError, ValueError):
        babel_locale = Locale.parse("en")
    return format_currency(amount / 10 ** get_currency_precision(currency), currency, locale=babel_locale)


def _hours(hours: Mapping[str, Any] | None) -> str:
    if not hours:
        return ""
    windows = hours.get("default") or []
    text = ", ".join("closed" if w.get("closed") else f"{w['open']}-{w['close']}" for w in windows)
    weekdays = (hours.get("overrides") or {}).get("weekday") or {}
    extra = "; ".join(
        f"{day} " + ", ".join("closed" if w.get("closed") else f"{w['open']}-{w['close']}" for w in ws)
        for day, ws in weekdays.items()
    )
    return f"{text}; {extra}" if extra else text


def _local(iso: str, zone: ZoneInfo) -> str:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(zone).strftime("%a %d %b %H:%M")


async def _catalog(request: web.Request, identifier: str, version: str) -> tuple[Catalog, str]:
    """(compiled catalog, its label) for the merchant's served or stored ``version``."""
    runtime = request.app[keys.RUNTIME]
    state = next((m for m in runtime.merchants.values() if m.identifier == identifier), None)
    if state is None:
        raise ValueError(f"no merchant {identifier!r}")
    if version in ("", "served"):
        if state.catalog is None:
            raise ValueError(f"merchant {identifier!r} has no catalog loaded")
        return state.catalog, f"served ({state.catalog.version_label})"
    if not version.isdigit() or len(version) > 9:
        raise ValueError(f"catalog version {version[:20]!r}: expected a number or 'served'")
    async with request.app[keys.DB].connection() as conn:
        text = await catalog_store.served_source(conn, identifier, int(version))
    if text is None:
        raise ValueError(f"merchant {identifier!r} has no catalog version {version}")
    cache: dict[tuple[str, str], Catalog] = request.app[_COMPILED]
    key = (identifier, catalog_store.digest(text))
    if key not in cache:
        try:
            parsed = parse_catalog(text, source=f"{identifier} version {version}")
        except CatalogError as exc:
            raise ValueError("; ".join(exc.errors[:3])) from None
        if len(cache) > 16:
            cache.clear()
        cache[key] = parsed.bound(runtime.geo.bindable(), runtime.geo.positions)
    return cache[key], f"version {version} ({cache[key].version_label})"


def _form_request(form: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The KSS body the form describes: the raw JSON (or the chosen sample) with the form's fields
    over it; and what could not be read."""
    problems: list[str] = []
    sample = str(form.get("sample") or "stockholm")
    base = copy.deepcopy(SAMPLES.get(sample, SAMPLES["stockholm"])[1])
    raw = str(form.get("raw") or "").strip()
    if raw and form.get("action") != "sample":
        try:
            parsed = _clean(json.loads(raw))
        except (ValueError, RecursionError) as exc:
            problems.append(f"raw JSON: {'nested too deeply' if isinstance(exc, RecursionError) else exc}")
        else:
            if isinstance(parsed, dict):
                base = parsed
            else:
                problems.append("raw JSON: expected an object")
    if form.get("action") == "sample" or "country" not in form:
        return base, problems
    recipient = dict(base["recipient"]) if isinstance(base.get("recipient"), dict) else {}
    for field in ("country", "postal_code", "customer_type"):
        value = str(form.get(field, "")).strip()
        if value:
            recipient[field] = value
        else:
            recipient.pop(field, None)
    base["recipient"] = recipient
    lines = _form_lines(form, problems)
    if lines is not None:
        order = dict(base["order"]) if isinstance(base.get("order"), dict) else {}
        order["lines"] = lines
        order["total_amount"] = sum(int(ln.get("total_price_including_tax") or 0) for ln in lines)
        order.pop("total_weight", None)
        base["order"] = order
    return base, problems


def _clean(value: Any) -> Any:
    """JSON with lone surrogates (undecodable input) replaced, so every page can be encoded."""
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items()}
    return value


def _shown(body: Any) -> str:
    try:
        return json.dumps(body, indent=2, ensure_ascii=False)
    except ValueError:  # integers past Python's printing limit
        return "(the request holds a number too long to show)"


def _view_lines(body: Any) -> list[dict[str, Any]]:
    """The order lines as the form shows them, whatever shape the raw JSON had."""
    order = body.get("order") if isinstance(body, dict) else None
    lines = order.get("lines") if isinstance(order, dict) else None
    out = []
    for ln in lines if isinstance(lines, list) else []:
        if not isinstance(ln, dict):
            continue
        a: dict[str, Any] = ln["attributes"] if isinstance(ln.get("attributes"), dict) else {}
        d: dict[str, Any] = a["dimensions"] if isinstance(a.get("dimensions"), dict) else {}
        tags: list[Any] = a["tags"] if isinstance(a.get("tags"), list) else []
        out.append({"quantity": ln.get("quantity"), "type": ln.get("type") or "physical",
                    "reference": ln.get("reference") or "", "weight": a.get("weight"), "length": d.get("length"),
                    "width": d.get("width"), "height": d.get("height"), "price": ln.get("unit_price"),
                    "tags": ", ".join(str(t) for t in tags)})  # fmt: skip
    return out


def _int(form: Mapping[str, Any], name: str, problems: list[str]) -> int | None:
    text = str(form.get(name, "")).strip()
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        problems.append(f"{name}: {text!r} is not a whole number")
        return None
    if not 0 <= value <= 10**12:
        problems.append(f"{name}: must be between 0 and 10^12")
        return None
    return value


def _form_lines(form: Mapping[str, Any], problems: list[str]) -> list[dict[str, Any]] | None:
    if "line-0-quantity" not in form:
        return None
    lines = []
    for i in range(50):
        if f"line-{i}-quantity" not in form:
            break
        quantity = _int(form, f"line-{i}-quantity", problems)
        if not quantity:
            continue  # an empty row (the one left for adding a line) or a removed one
        sides = [_int(form, f"line-{i}-{s}", problems) for s in ("length", "width", "height")]
        tags = [t.strip() for t in str(form.get(f"line-{i}-tags", "")).split(",") if t.strip()]
        size = (sides[0], sides[1], sides[2]) if all(s is not None for s in sides) else None
        lines.append(_line(str(form.get(f"line-{i}-reference") or f"line-{i + 1}"), quantity,
                           _int(form, f"line-{i}-price", problems) or 0, _int(form, f"line-{i}-weight", problems),
                           size, tags, str(form.get(f"line-{i}-type") or "physical")))  # type: ignore[arg-type]  # fmt: skip
    return lines


def _clock(form: Mapping[str, Any], catalog: Catalog, problems: list[str]) -> datetime:
    if str(form.get("clock_mode", "now")) != "at" or not form.get("clock"):
        return datetime.now(UTC)
    try:
        local = datetime.fromisoformat(str(form["clock"]))
    except ValueError:
        problems.append(f"clock: {form['clock']!r} is not a date and time")
        return datetime.now(UTC)
    if not 2000 <= local.year <= 2100:
        problems.append(f"clock: {form['clock']!r} is outside 2000-2100")
        return datetime.now(UTC)
    return local.replace(tzinfo=ZoneInfo(catalog.timezone)).astimezone(UTC)


async def _evaluate(request: web.Request, form: Mapping[str, Any]) -> dict[str, Any]:
    """Everything the preview page and its JSON form show."""
    runtime = request.app[keys.RUNTIME]
    merchants = sorted(m.identifier for m in runtime.merchants.values() if m.catalog is not None)
    identifier = str(form.get("merchant") or (merchants[0] if merchants else ""))
    version = str(form.get("version") or "served")
    locale = str(form.get("locale") or "en")
    body, problems = _form_request(form)
    body["locale"] = locale
    out: dict[str, Any] = {
        "merchants": merchants, "merchant": identifier, "version": version, "locale": locale, "locales": LOCALES,
        "samples": {k: v[0] for k, v in SAMPLES.items()}, "sample": str(form.get("sample") or "stockholm"),
        "clock_mode": str(form.get("clock_mode") or "now"), "clock": str(form.get("clock") or ""),
        "body": body, "raw": _shown(body), "lines": _view_lines(body), "problems": problems,
        "versions": [], "options": [], "hidden": [], "header": [], "error": None,
    }  # fmt: skip
    if not identifier:
        out["error"] = "no merchant has a catalog yet (tms-admin merchant add, tms-admin catalog load)"
        return out
    async with request.app[keys.DB].connection() as conn:
        try:
            out["versions"] = [(v.version, v.served) for v in await catalog_store.history(conn, identifier)]
        except Exception:  # an unknown merchant: reported by _catalog below
            out["versions"] = []
    try:
        catalog, label = await _catalog(request, identifier, version)
    except ValueError as exc:
        out["error"] = str(exc)
        return out
    now = _clock(form, catalog, problems)
    out["catalog_label"], out["now"] = label, now
    try:
        req = wire.parse(body, wire.ShippingOptionsRequest)
    except wire.WireError as exc:
        out["error"] = f"the request is not a valid KSS body: {exc}"
        return out
    try:
        facts, outcomes = evaluate_options(catalog, req, now)
        trace = explanation_of(catalog, facts, outcomes, now=now, locale=req.locale or "en")
    except (OverflowError, ValueError) as exc:  # a clock or a number past what the calendar handles
        out["error"] = f"cannot evaluate this request: {exc}"
        return out
    offered = [o for o in outcomes if o.offered]
    zone = ZoneInfo(recipient_tz(catalog, facts.country))
    currency = facts.currency
    for outcome, option in zip(offered, offered_dicts(outcomes, facts), strict=True):
        km = outcome.nearby.km if outcome.nearby else {}
        out["options"].append({
            "kss": option, "price": _money(option["price"], currency, locale),
            "free_above": _money(option["free_above"], currency, locale) if option.get("free_above") else None,
            "delivery": _sentence(option.get("delivery_time"), now, zone, locale),
            "locations": [{
                "name": loc["name"], "address": ", ".join(v for v in loc["address"].values() if v),
                "km": km.get(loc["id"]), "hours": _hours(loc.get("operational_hours")),
                "price": _money(loc.get("price", 0), currency, locale),
                "delivery": _sentence(loc.get("delivery_time"), now, zone, locale),
            } for loc in option.get("locations", [])],
            "timeslots": [{"when": f"{_local(s['start'], zone)}-{_local(s['end'], zone)[-5:]}",
                           "cutoff": _local(s["cutoff"], zone), "price": _money(s.get("price", 0), currency, locale)}
                          for s in option.get("timeslots", [])],
            "addons": [{"label": a.get("label") or a["id"], "price": _money(a.get("price", 0), currency, locale),
                        "required": a.get("required"), "preselected": a.get("preselected")}
                       for a in option.get("addons", [])],
            "lines": outcome.price.lines if outcome.price else (),
        })  # fmt: skip
    out["hidden"] = [{"id": t.option_id, "name": t.name, "reason": t.decided_by, "notes": t.notes}
                     for t in trace.options if not t.offered]  # fmt: skip
    out["header"] = list(trace.header)
    out["trace"] = [to_json_trace(t) for t in trace.options]
    out["kss_options"] = [o["kss"] for o in out["options"]]
    return out


def to_json_trace(t: Any) -> dict[str, Any]:
    """One option's trace as JSON."""
    return {"option_id": t.option_id, "name": t.name, "offered": t.offered, "decided_by": t.decided_by,
            "price": t.price, "price_lines": list(t.price_lines), "notes": list(t.notes)}  # fmt: skip


def _sentence(dt: Any, now: datetime, zone: ZoneInfo, locale: str) -> str | None:
    if not dt:
        return None
    try:
        return render(dt, now=now, tz=zone, locale=locale)
    except ValueError as exc:
        return f"(cannot render: {exc})"


async def preview(request: web.Request) -> web.StreamResponse:
    """GET and POST /admin/preview."""
    if request.method == "POST":
        if request.content_type == "application/json":
            try:
                given = _clean(json.loads(await request.read()))
            except (ValueError, RecursionError):
                return web.json_response(
                    {"failure_reason": "body is not JSON (or nested too deeply)"}, status=400
                )
            if not isinstance(given, dict):
                return web.json_response({"failure_reason": "body must be a JSON object"}, status=400)
            form: dict[str, Any] = {k: v for k, v in given.items() if k != "request"}
            if isinstance(given.get("request"), dict):
                form["raw"] = json.dumps(given["request"])
        else:
            form = dict(await request.post())
    else:
        form = dict(request.query)
    result = await _evaluate(
        request, _clean({k: v if isinstance(v, str) else str(v) for k, v in form.items()})
    )
    if _wants_json(request):
        if result["error"]:
            return web.json_response(
                {"failure_reason": result["error"], "problems": result["problems"]}, status=400
            )
        return web.json_response({
            "merchant": result["merchant"], "catalog": result["catalog_label"], "now": result["now"].isoformat(),
            "request": result["body"], "shipping_options": result["kss_options"], "trace": result["trace"],
            "header": result["header"], "problems": result["problems"],
        })  # fmt: skip
    result["csrf"], result["operator"] = request[CSRF_KEY], request[OPERATOR_KEY]
    return aiohttp_jinja2.render_template("preview.html", request, result)


# -- reservations ------------------------------------------------------------------------------------
async def reservations(request: web.Request) -> web.StreamResponse:
    """GET /admin/reservations: newest status change first, no personal data."""
    merchant, status = request.query.get("merchant", ""), request.query.get("status", "")
    if "\x00" in merchant or len(merchant) > 256:
        return _refuse(request, 404, "no such merchant")
    async with request.app[keys.DB].connection() as conn:
        mid = None
        if merchant:
            try:
                mid = await reservation_ops.merchant_id(conn, merchant)
            except reservation_ops.ReservationError as exc:
                return _refuse(request, 404, str(exc))
        rows = await reservation_ops.list_reservations(
            conn,
            merchant=mid,
            status=status if status in ("reserved", "confirmed", "expired") else None,
            limit=200,
        )
    if _wants_json(request):
        return web.json_response([{**to_json(r), "shipment_id": str(r.shipment_id), "status_at": r.status_at.isoformat()}
                                  for r in rows])  # fmt: skip
    return aiohttp_jinja2.render_template("reservations.html", request, {
        "rows": rows, "merchant": merchant, "status": status, "csrf": request[CSRF_KEY],
        "operator": request[OPERATOR_KEY], "money": _money,
    })  # fmt: skip


async def reservation(request: web.Request) -> web.StreamResponse:
    """GET /admin/reservations/{id}: one reservation with its tracking and audit trail."""
    try:
        shipment_id = uuid.UUID(request.match_info["shipment_id"])
    except ValueError:
        return _refuse(request, 404, "no such reservation")
    async with request.app[keys.DB].connection() as conn:
        try:
            detail = await reservation_ops.get(conn, shipment_id)
        except ShipmentNotFound:
            return _refuse(request, 404, "no such reservation")
    record = to_json(detail.reservation)
    if _wants_json(request):
        return web.json_response({"shipment_id": str(detail.shipment_id), "merchant": detail.merchant,
                                  "status": str(detail.status), "reservation": record,
                                  "audit": [{"at": a.at.isoformat(), "actor": a.actor, "action": a.action,
                                             "detail": dict(a.detail)} for a in detail.audit]})  # fmt: skip
    return aiohttp_jinja2.render_template("reservation.html", request, {
        "d": detail, "record": json.dumps(record, indent=2, ensure_ascii=False), "csrf": request[CSRF_KEY],
        "operator": request[OPERATOR_KEY],
    })  # fmt: skip


async def static(request: web.Request) -> web.StreamResponse:
    name = request.path.rsplit("/", 1)[-1]
    kind = "text/css" if name.endswith(".css") else "text/javascript"
    text = _STATIC.get(name)
    if text is None:
        raise web.HTTPNotFound()
    return web.Response(text=text, content_type=kind, headers={"Cache-Control": "max-age=300"})


_STATIC: dict[str, str] = {}


async def _no_icon(_request: web.Request) -> web.StreamResponse:
    return web.Response(status=204)


def create_admin_app(main: web.Application) -> web.Application:
    """The UI application, sharing the main application's database, runtime and configuration."""
    from importlib import resources

    ui = web.Application(middlewares=[_guard])
    ui[keys.CONFIG], ui[keys.DB], ui[keys.RUNTIME] = main[keys.CONFIG], main[keys.DB], main[keys.RUNTIME]
    ui[_COMPILED] = {}
    aiohttp_jinja2.setup(ui, loader=jinja2.PackageLoader("tms_server.web", "templates"),
                         autoescape=jinja2.select_autoescape(default=True, default_for_string=True))  # fmt: skip
    folder = resources.files("tms_server.web").joinpath("templates")
    for name in ("style.css", "ui.js"):
        _STATIC[name] = folder.joinpath(name).read_text(encoding="utf-8")
    r = ui.router
    r.add_get("/admin/login", login_page)
    r.add_post("/admin/login", login)
    r.add_post("/admin/logout", logout)
    r.add_get("/admin", home)
    r.add_get("/admin/", home)
    r.add_get("/admin/preview", preview)
    r.add_post("/admin/preview", preview)
    r.add_get("/admin/reservations", reservations)
    r.add_get("/admin/reservations/{shipment_id}", reservation)
    r.add_get("/favicon.ico", _no_icon)
    r.add_get("/admin/style.css", static)
    r.add_get("/admin/ui.js", static)
    return ui
