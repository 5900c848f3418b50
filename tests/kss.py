"""Helpers for tests that talk KSS to the server: request bodies and selections; tms-admin from an
async test."""

from __future__ import annotations

import asyncio
import copy
import uuid
from typing import Any

import aiohttp
import asyncpg

from tests.conftest import Merchant, load_fixture
from tms_server import catalog_store, merchants
from tms_server.catalog import example_catalog_text


def options_request(session_id: str | None = None) -> dict[str, Any]:
    """The reference's /shippingoptions example (Stockholm, SEK), optionally for another session."""
    body: dict[str, Any] = load_fixture("kss_shippingoptions_request.json")
    if session_id:
        body["session_id"] = session_id
    return body


def selection(option: dict[str, Any], *, location: int = 0, timeslot: int = 0) -> dict[str, Any]:
    """What KSS sends back as selected_shipping_option when the shopper picks ``option``."""
    sel = {k: option[k] for k in ("id", "carrier", "class", "type", "price", "tax_rate") if k in option}
    if option.get("locations"):
        loc = option["locations"][location]
        sel["location"] = {k: loc[k] for k in ("id", "name", "address", "coordinates") if k in loc}
    if option.get("timeslots"):
        slot = option["timeslots"][timeslot]
        sel["timeslot"] = {k: slot[k] for k in ("id", "start", "end") if k in slot}
    sel["addons"] = [
        {
            **{k: v for k, v in a.items() if k != "label"},
            "data": {"selected": True, "text": "1234"[: a.get("max_length") or 4]},
        }
        for a in option.get("addons", [])
        if a.get("required") or a.get("preselected")
    ]
    return sel


def shipment_request(options_body: dict[str, Any], option: dict[str, Any], **kw: Any) -> dict[str, Any]:
    """A POST/PUT /shipment body: the options request without its two extra fields, plus the selection."""
    body = copy.deepcopy(options_body)
    body.pop("geoblocking", None)
    body.pop("selected_shipping_option_id", None)
    body["selected_shipping_option"] = selection(option, **kw)
    return body


def new_session() -> str:
    """A fresh KSS session id."""
    return str(uuid.uuid4())


async def token(session: aiohttp.ClientSession, url: str, m: Merchant) -> dict[str, str]:
    """Authorization headers for ``m`` from a running server at ``url``."""
    async with session.post(f"{url}/auth", json=m.auth_body()) as resp:
        assert resp.status == 201, await resp.text()
        return {"Authorization": f"Bearer {(await resp.json())['token']}"}


async def first_option(session: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> dict[str, Any]:
    """The first offered option without timeslots for the reference request."""
    async with session.post(f"{url}/shippingoptions", json=options_request(), headers=headers) as resp:
        assert resp.status == 200
        options: list[dict[str, Any]] = (await resp.json())["shipping_options"]
        return next(o for o in options if not o.get("timeslots"))


async def merchant_with_catalog(conn: asyncpg.Connection, identifier: str = "shop-a") -> Merchant:
    """A merchant with the example catalog, created directly in the database."""
    key = merchants.generate_key()
    await merchants.add(conn, identifier, key)
    await catalog_store.load(conn, identifier, example_catalog_text(), loaded_by="test")
    return Merchant(identifier, key)


async def create_merchant(dsn: str, identifier: str = "shop-a") -> Merchant:
    """``merchant_with_catalog`` on a connection of its own to ``dsn``."""
    conn = await asyncpg.connect(dsn)
    try:
        return await merchant_with_catalog(conn, identifier)
    finally:
        await conn.close()


async def run_admin(*argv: str) -> int:
    """``tms-admin argv`` in a thread (it runs its own event loop); its exit status. The database
    is the one ``TMS_DATABASE_URL`` names."""
    from tms_server.admin.cli import main

    return await asyncio.to_thread(main, list(argv))
