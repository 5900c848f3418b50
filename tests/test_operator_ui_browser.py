"""The operator UI in a real browser: Debian's headless Chromium driven by Playwright.

Log in with the token, open the preview, change the postal code and a line's weight, and see the
options, the delivery sentence and the hidden options' reasons change. Screenshots (desktop and 360 px
wide) are saved in ``.artifacts/``. In CI a missing browser is a failure, not a skip (``.ci/run``
runs ``scripts/test``, which installs Debian's ``chromium`` when it is missing and it may).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.kss import create_merchant
from tests.server_process import ServerProcess, free_port
from tms_server import operators

ARTIFACTS = Path(__file__).resolve().parent.parent / ".artifacts"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("Debian's chromium is not installed; scripts/test installs it when run as root")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    return found


async def _operator(dsn: str, name: str) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        from tms_server.db.pool import use_json_codec

        await use_json_codec(conn)
        return await operators.add(conn, name)
    finally:
        await conn.close()


@pytest.fixture
def ui_server(dsn: str, tmp_path: Path) -> Iterator[tuple[str, str, str]]:
    suffix = uuid.uuid4().hex[:8]
    merchant = asyncio.run(create_merchant(dsn, f"ui-shop-{suffix}"))
    token = asyncio.run(_operator(dsn, f"ui-{suffix}"))
    port = free_port()
    with ServerProcess(dsn, tmp_path / "server.log", TMS_ADMIN_PORT=str(port)).start():
        yield f"http://127.0.0.1:{port}", token, merchant.identifier


def _options(page: Any) -> list[str]:
    return [li.get_attribute("data-option-id") for li in page.locator("#options li.option").all()]


def _hidden(page: Any) -> dict[str, str]:
    return {li.get_attribute("data-option-id"): li.locator(".reason").inner_text()
            for li in page.locator("#why li[data-option-id]").all()}  # fmt: skip


def test_preview_in_a_browser(ui_server: tuple[str, str, str]) -> None:
    from playwright.sync_api import sync_playwright

    url, token, merchant = ui_server
    executable = _chromium()
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(f"{url}/admin/preview")
            page.wait_for_url("**/admin/login?next=/admin/preview")
            page.fill("#token", token)
            page.click("#login button[type=submit]")
            page.wait_for_url("**/admin/preview")
            page.select_option("select[name=merchant]", merchant)
            page.select_option("select[name=sample]", "stockholm")
            with page.expect_navigation():
                page.click("button[value=sample]")
            with page.expect_navigation():
                page.click("#run")
            before, hidden_before = _options(page), _hidden(page)
            sentence_before = page.locator("#options li.option .delivery").first.inner_text()
            assert "instabox-locker" in before and "instabox-locker" not in hidden_before
            assert sentence_before.startswith("Delivered")

            page.fill("#postal_code", "981 31")  # Kiruna: beyond the lockers and the same-day courier
            page.fill("#line-0-weight", "11000")  # 22 kg of shirts: too heavy for a service point
            with page.expect_navigation():
                page.click("#run")
            after, hidden_after = _options(page), _hidden(page)
            sentence_after = page.locator("#options li.option .delivery").first.inner_text()
            page.screenshot(path=str(ARTIFACTS / "operator-preview.png"), full_page=True)

            assert after and after != before
            assert "postal code matches none of" in hidden_after["instabox-locker"]
            assert "shipment weight (g) 22450" in hidden_after["postnord-service-point"]
            assert sentence_after.startswith("Delivered") and sentence_after != sentence_before
            assert page.input_value("#postal_code") == "981 31"

            narrow = browser.new_page(viewport={"width": 360, "height": 800})
            narrow.context.add_cookies(page.context.cookies())
            narrow.goto(f"{url}/admin/preview")
            assert narrow.evaluate("document.documentElement.scrollWidth") <= 360 + 1  # no sideways page
            narrow.screenshot(path=str(ARTIFACTS / "operator-preview-360.png"))
        finally:
            browser.close()
