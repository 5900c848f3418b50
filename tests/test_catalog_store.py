"""Catalog versions in the database: load, history, rollback, and servers picking changes up live."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from tests.conftest import token_for
from tests.kss import options_request
from tms_server import catalog_store
from tms_server.catalog import example_catalog_text
from tms_server.merchants import MerchantError


async def test_every_version_is_kept_and_rollback_serves_an_old_one(conn: Any, make_merchant: Any) -> None:
    """Each load is a new version with who/when/summary; rollback switches the served one."""
    await make_merchant("shop-a")
    changed = example_catalog_text().replace("base = 4900", "base = 5900", 1)
    version, summary = await catalog_store.load(conn, "shop-a", changed, loaded_by="operator:alice")
    assert (version, summary) == (2, "+1 -1 lines")
    history = await catalog_store.history(conn, "shop-a")
    assert [(v.version, v.served, v.loaded_by) for v in history] == [
        (2, True, "operator:alice"),
        (1, False, "test"),
    ]
    assert history[1].summary == "first version"
    await catalog_store.rollback(conn, "shop-a", 1)
    assert [v.served for v in await catalog_store.history(conn, "shop-a")] == [False, True]
    assert await catalog_store.served_source(conn, "shop-a") == example_catalog_text()
    with pytest.raises(MerchantError, match="no catalog version 7"):
        await catalog_store.rollback(conn, "shop-a", 7)


async def test_unknown_merchant_is_a_clear_error(conn: Any) -> None:
    """Loading for a merchant that does not exist names it."""
    with pytest.raises(MerchantError, match="no merchant with identifier 'ghost'"):
        await catalog_store.load(conn, "ghost", example_catalog_text(), loaded_by="x")


async def test_running_server_picks_up_a_new_catalog(client: Any, conn: Any, make_merchant: Any) -> None:
    """A catalog loaded while the server runs is served within seconds, without a restart."""
    m = await make_merchant("shop-a")
    headers = {"Authorization": f"Bearer {await token_for(client, m)}"}

    async def price_of(option_id: str) -> int | None:
        resp = await client.post("/shippingoptions", json=options_request(), headers=headers)
        assert resp.status == 200
        return next(
            (o["price"] for o in (await resp.json())["shipping_options"] if o["id"] == option_id), None
        )

    assert await price_of("postnord-service-point") == 4900
    changed = example_catalog_text().replace("base = 4900", "base = 5900", 1)
    await catalog_store.load(conn, "shop-a", changed, loaded_by="test")
    for _ in range(50):  # the test config refreshes every 0.2 s; allow 10 s
        if await price_of("postnord-service-point") == 5900:
            break
        await asyncio.sleep(0.2)
    assert await price_of("postnord-service-point") == 5900


async def test_debug_log_carries_the_explain_trace(
    client: Any, make_merchant: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """At DEBUG level, /shippingoptions logs why each option was offered or hidden."""
    m = await make_merchant("shop-a")
    headers = {"Authorization": f"Bearer {await token_for(client, m)}"}
    with caplog.at_level(logging.DEBUG, logger="tms_server.kss"):
        resp = await client.post("/shippingoptions", json=options_request(), headers=headers)
    assert resp.status == 200
    traces = [r.explain for r in caplog.records if hasattr(r, "explain")]
    assert traces and "HIDDEN" in traces[0] and "OFFERED" in traces[0]
    assert "111 34" not in traces[0] and "postal code withheld" in traces[0]
