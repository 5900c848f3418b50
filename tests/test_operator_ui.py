"""The operators' web UI: tokens, login and logout (audited), sessions, CSRF, the preview in HTML
and JSON, the reservations pages, escaping, and its separate listener."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import asyncpg
import attrs
import pytest
import yarl

from tests.kss import merchant_with_catalog, options_request, shipment_request
from tests.server_process import free_port
from tms_server import catalog_store, operators
from tms_server.admin.cli import main as admin_main
from tms_server.catalog import example_catalog_text
from tms_server.config import Config


@attrs.frozen
class UI:
    url: str
    kss: Any  # the KSS test client
    token: str


@pytest.fixture
async def ui(aiohttp_client: Any, config: Config, conn: asyncpg.Connection) -> AsyncIterator[UI]:
    from tms_server.app import create_app

    await merchant_with_catalog(conn, "shop-a")
    token = await operators.add(conn, "alice")
    port = free_port()
    app = create_app(attrs.evolve(config, admin_port=port), sweeper=False)
    kss = await aiohttp_client(app)
    yield UI(f"http://127.0.0.1:{port}", kss, token)


async def _login_csrf(http: aiohttp.ClientSession, ui: UI) -> str:
    async with http.get(f"{ui.url}/admin/login") as resp:
        found = re.search(r'name="login_csrf" value="([^"]+)"', await resp.text())
    assert found
    return found.group(1)


async def _login(http: aiohttp.ClientSession, ui: UI) -> str:
    """Log in; returns the page's CSRF token."""
    form = {"token": ui.token, "next": "/admin/preview", "login_csrf": await _login_csrf(http, ui)}
    async with http.post(f"{ui.url}/admin/login", data=form) as resp:
        assert resp.status == 200 and str(resp.url).endswith("/admin/preview")
        page = await resp.text()
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found
    return found.group(1)


async def test_without_a_session_html_goes_to_login_and_json_gets_401(ui: UI) -> None:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.get(f"{ui.url}/admin/preview", allow_redirects=False) as resp:
            assert resp.status == 303 and resp.headers["Location"] == "/admin/login?next=/admin/preview"
        async with http.get(f"{ui.url}/admin/reservations", headers={"Accept": "application/json"}) as resp:
            assert resp.status == 401 and "failure_reason" in await resp.json()
        async with http.get(f"{ui.url}/admin/preview", headers={"Authorization": "Bearer op_wrong"}) as resp:
            assert resp.status == 401
        async with http.get(f"{ui.url}/admin/login") as resp:
            assert resp.status == 200 and 'type="password"' in await resp.text()
            assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]


async def test_login_sets_a_strict_cookie_and_both_are_audited(ui: UI, conn: asyncpg.Connection) -> None:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        for _ in range(3):  # refused logins: one audit row a minute per client, with the count
            form = {"token": "op_not-it", "login_csrf": await _login_csrf(http, ui)}
            async with http.post(f"{ui.url}/admin/login", data=form) as resp:
                assert resp.status == 401 and "not valid" in await resp.text()
        form = {"token": ui.token, "next": "https://evil.example/", "login_csrf": await _login_csrf(http, ui)}
        async with http.post(f"{ui.url}/admin/login", data=form, allow_redirects=False) as resp:
            assert resp.status == 303 and resp.headers["Location"] == "/admin/preview"  # never elsewhere
            cookie = next(c for c in resp.headers.getall("Set-Cookie") if c.startswith("tms_session="))
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/admin" in cookie
        async with http.get(f"{ui.url}/admin/preview") as resp:
            page = await resp.text()
            assert resp.status == 200 and "alice" in page
        csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
        async with http.post(f"{ui.url}/admin/logout", data={"csrf": csrf}, allow_redirects=False) as resp:
            assert resp.status == 303
        async with http.get(f"{ui.url}/admin/preview", allow_redirects=False) as resp:
            assert resp.status == 303  # the session is gone
    actions = [
        (r["actor"], r["action"]) for r in await conn.fetch("SELECT actor, action FROM audit_log ORDER BY id")
    ]
    assert ("web", "login_refused") in actions
    assert ("operator:alice", "login") in actions and ("operator:alice", "logout") in actions
    stored = await conn.fetchval(
        "SELECT count(*) FROM operators WHERE token_hash = $1::text::bytea", ui.token
    )
    assert stored == 0  # the token itself is nowhere in the database


async def test_a_form_without_its_csrf_token_is_refused(ui: UI) -> None:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        # A login posted from elsewhere carries neither the login page's cookie nor its token.
        async with http.post(f"{ui.url}/admin/login", data={"token": ui.token}) as resp:
            assert resp.status == 403
        form = {"token": ui.token, "login_csrf": await _login_csrf(http, ui)}
        async with http.post(
            f"{ui.url}/admin/login", data=form, headers={"Sec-Fetch-Site": "cross-site"}
        ) as resp:
            assert resp.status == 403
        csrf = await _login(http, ui)
        form = {"merchant": "shop-a", "sample": "kiruna", "action": "sample"}
        async with http.post(f"{ui.url}/admin/preview", data=form) as resp:
            assert resp.status == 403 and "CSRF" in await resp.text()
        async with http.post(f"{ui.url}/admin/preview", data={**form, "csrf": "forged"}) as resp:
            assert resp.status == 403
        async with http.post(f"{ui.url}/admin/logout", data={"csrf": "forged"}) as resp:
            assert resp.status == 403
        async with http.post(f"{ui.url}/admin/preview", data={**form, "csrf": csrf}) as resp:
            assert resp.status == 200 and "Kiruna" in await resp.text()


async def test_the_preview_answers_json_with_options_and_the_trace(ui: UI, conn: asyncpg.Connection) -> None:
    bearer = {"Authorization": f"Bearer {ui.token}", "Accept": "application/json"}
    async with aiohttp.ClientSession(headers=bearer) as http:
        body = {"merchant": "shop-a", "sample": "stockholm", "locale": "sv-SE"}
        async with http.post(f"{ui.url}/admin/preview", json=body) as resp:
            assert resp.status == 200, await resp.text()
            data = await resp.json()
        ids = [o["id"] for o in data["shipping_options"]]
        assert ids[0] == "postnord-service-point" and "instabox-locker" in ids
        hidden = {t["option_id"]: t["decided_by"] for t in data["trace"] if not t["offered"]}
        assert "customer type person is not one of organization" in hidden["dhl-business"]
        offered = next(t for t in data["trace"] if t["option_id"] == "postnord-home")
        assert offered["price_lines"][0].startswith("base 6900 SEK")
        # A stored version that is not served: tried before it is rolled out.
        await catalog_store.load(conn, "shop-a", example_catalog_text().replace("base = 6900", "base = 7900", 1),
                                 loaded_by="test")  # fmt: skip
        await catalog_store.rollback(conn, "shop-a", 1)
        async with http.post(f"{ui.url}/admin/preview", json={**body, "version": "2"}) as resp:
            trying = await resp.json()
        price = next(t for t in trying["trace"] if t["option_id"] == "postnord-home")["price_lines"][0]
        assert price.startswith("base 7900 SEK") and trying["catalog"].startswith("version 2")
        request = {**data["request"], "recipient": {"country": "SE", "postal_code": 11134}}
        async with http.post(
            f"{ui.url}/admin/preview", json={"merchant": "shop-a", "request": request}
        ) as resp:
            assert resp.status == 400
            assert "recipient.postal_code" in (await resp.json())["failure_reason"]
        async with http.post(f"{ui.url}/admin/preview", json={"merchant": "nobody"}) as resp:
            assert resp.status == 400 and "nobody" in (await resp.json())["failure_reason"]


async def test_nothing_reaches_the_page_unescaped(ui: UI) -> None:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        csrf = await _login(http, ui)
        evil = "<script>alert(1)</script>"
        form = {"csrf": csrf, "merchant": "shop-a", "sample": "stockholm", "country": "SE", "postal_code": evil,
                "line-0-quantity": "1", "line-0-weight": "100", "line-0-tags": evil}  # fmt: skip
        async with http.post(f"{ui.url}/admin/preview", data=form) as resp:
            page = await resp.text()
        assert evil not in page and "&lt;script&gt;" in page


async def test_reservations_list_without_personal_data_and_detail_with_audit(
    ui: UI, conn: asyncpg.Connection
) -> None:
    merchant = await merchant_with_catalog(conn, "shop-b")
    headers = {
        "Authorization": f"Bearer {(await (await ui.kss.post('/auth', json=merchant.auth_body())).json())['token']}"
    }
    body = options_request("ui-session-1")
    options = (await (await ui.kss.post("/shippingoptions", json=body, headers=headers)).json())[
        "shipping_options"
    ]
    option = next(o for o in options if not o.get("timeslots"))
    resp = await ui.kss.post("/shipment", json=shipment_request(body, option), headers=headers)
    assert resp.status == 201
    shipment_id = (await resp.json())["shipment_id"]
    email = body["recipient"]["email"]
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        await _login(http, ui)
        async with http.get(f"{ui.url}/admin/reservations?merchant=shop-b") as resp:
            listing = await resp.text()
        assert (
            shipment_id in listing
            and email not in listing
            and body["recipient"]["family_name"] not in listing
        )
        async with http.get(f"{ui.url}/admin/reservations/{shipment_id}") as resp:
            detail = await resp.text()
        assert resp.status == 200 and "reserved" in detail and "kss" in detail  # the audit trail's actor
        async with http.get(
            f"{ui.url}/admin/reservations/{shipment_id}", headers={"Accept": "application/json"}
        ) as resp:
            data = await resp.json()
        assert data["status"] == "reserved" and [a["action"] for a in data["audit"]] == ["reserved"]
        async with http.get(f"{ui.url}/admin/reservations/not-a-uuid") as resp:
            assert resp.status == 404
        async with http.get(f"{ui.url}/admin/reservations?merchant=nobody") as resp:
            assert resp.status == 404


async def test_the_ui_is_never_on_the_kss_port(ui: UI) -> None:
    for path in ("/admin/login", "/admin/preview"):
        assert (await ui.kss.get(path)).status == 404


def test_operator_commands(dsn: str, tmp_path: Any, capsys: pytest.CaptureFixture[str],
                           monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv("TMS_DATABASE_URL", dsn)
    name = f"op-{tmp_path.name[-8:]}".replace("_", "-")
    assert admin_main(["operator", "add", name]) == 0
    token = capsys.readouterr().out.strip().splitlines()[-1]
    assert token.startswith("op_") and len(token) > 40
    assert admin_main(["operator", "add", name]) == 1
    assert "exists" in capsys.readouterr().err
    assert admin_main(["operator", "add", "bad name!"]) == 1
    assert "letters, digits" in capsys.readouterr().err
    assert admin_main(["operator", "list"]) == 0
    listed = capsys.readouterr().out
    assert name in listed and token not in listed
    assert admin_main(["operator", "remove", name]) == 0
    assert admin_main(["operator", "remove", name]) == 1
    assert "no operator" in capsys.readouterr().err


async def test_hostile_input_gets_4xx_never_5xx(ui: UI) -> None:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.get(
            f"{ui.url}/admin/preview", headers={"Authorization": "Bearer \udcff\udcfe"}
        ) as resp:
            assert resp.status == 401 and resp.headers["WWW-Authenticate"].startswith("Bearer")
        async with http.post(f"{ui.url}/admin/preview", json={"merchant": "shop-a"}) as resp:
            assert resp.status == 401  # a JSON client without credentials: 401, not a redirect
        async with http.get(
            f"{ui.url}/admin/reservations?merchant=x&status=reserved", allow_redirects=False
        ) as resp:
            back = yarl.URL(resp.headers["Location"]).query["next"]
            assert back == "/admin/reservations?merchant=x&status=reserved"  # the filter survives the login
        csrf = await _login(http, ui)
        bearer = {"Authorization": f"Bearer {ui.token}", "Accept": "application/json"}
        deep = "[" * 100_000 + "]" * 100_000
        async with http.post(
            f"{ui.url}/admin/preview", data=deep, headers={**bearer, "Content-Type": "application/json"}
        ) as resp:
            assert resp.status == 400
        cases = [
            {"raw": deep}, {"raw": '{"recipient": [1]}', "country": "SE"},
            {"raw": '{"order": "ab"}', "country": "SE", "line-0-quantity": "1"},
            {"version": "2147483648"}, {"clock_mode": "at", "clock": "0001-01-01T00:00"},
            {"clock_mode": "at", "clock": "9999-12-30T00:00"}, {"raw": '{"session_id": "\\ud800"}'},
            {"country": "SE", "postal_code": "11134", "line-0-quantity": "9" * 4000, "line-0-price": "9" * 4000},
            {"raw": '{"session_id": "x", "currency": "SEK", "order": {"total_amount": 1, "lines": "abc"}}'},
        ]  # fmt: skip
        for form in cases:
            async with http.post(
                f"{ui.url}/admin/preview", data={"csrf": csrf, "merchant": "shop-a", **form}
            ) as resp:
                assert resp.status == 200, (form, resp.status)  # the page, with the problem on it
        async with http.get(f"{ui.url}/admin/reservations?merchant=a%00b") as resp:
            assert resp.status == 404
