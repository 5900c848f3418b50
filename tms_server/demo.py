"""The ready-to-try example merchant that ``scripts/run`` (``tms-server --demo``) sets up."""

from __future__ import annotations

import sys

import asyncpg

from tms_server import catalog_store, merchants
from tms_server.catalog import example_catalog_text
from tms_server.config import Config

DEMO_IDENTIFIER = "demo-merchant"
DEMO_OPERATOR = "demo"

ACTIVE_KEY = """
SELECT k.key FROM merchant_keys k JOIN merchants m ON m.id = k.merchant_id
 WHERE m.identifier = $1 AND k.retired_at IS NULL ORDER BY k.created_at DESC LIMIT 1
"""


async def ensure_demo(conn: asyncpg.Connection) -> tuple[str, str]:
    """Create the demo merchant (and load the example catalog) unless it exists; return its credentials."""
    key = await conn.fetchval(ACTIVE_KEY, DEMO_IDENTIFIER)
    if key is None:
        key = merchants.generate_key()
        try:
            await merchants.add(conn, DEMO_IDENTIFIER, key, name="Example web shop")
        except merchants.MerchantError:
            key = await conn.fetchval(ACTIVE_KEY, DEMO_IDENTIFIER)  # created concurrently
    merchant = await merchants.get(conn, DEMO_IDENTIFIER)
    if merchant.catalog_id is None:
        await catalog_store.load(conn, DEMO_IDENTIFIER, example_catalog_text(), loaded_by="tms-server --demo")
    return DEMO_IDENTIFIER, str(key)


def announce(creds: tuple[str, str], config: Config, operator_token: str | None = None) -> None:
    """Print how to try the server with the demo merchant (and, with the operator UI on, a login
    link for the demo operator: the token rides in the link's fragment, which browsers never send
    to a server; it is printed here, on the console of whoever started the server)."""
    identifier, key = creds
    host = "127.0.0.1" if config.host in ("0.0.0.0", "::", "") else config.host  # noqa: S104
    url = f"http://{host}:{config.port}"
    if operator_token and config.admin_port:
        ui_host = "127.0.0.1" if config.admin_host in ("0.0.0.0", "::", "") else config.admin_host  # noqa: S104
        print(
            f"\n  operator UI  http://{ui_host}:{config.admin_port}/admin/login#token={operator_token}\n"
            f"               (operator {DEMO_OPERATOR!r}; a new token at every start)",
            file=sys.stderr,
            flush=True,
        )
    print(
        f"\n  tms_server is starting at {url}\n"
        f"  example merchant  identifier: {identifier}\n"
        f"                    key:        {key}\n"
        f"  try:  curl -s {url}/healthz\n"
        f"        nonce=$(date +%s%N); digest=$(printf '%s' \"${{nonce}}{key}\" | sha256sum | cut -d' ' -f1)\n"
        f"        curl -s -X POST {url}/auth -H 'Content-Type: application/json' \\\n"
        f'          -d "{{\\"identifier\\":\\"{identifier}\\",\\"secret\\":{{\\"nonce\\":\\"$nonce\\",'
        f'\\"digest\\":\\"$digest\\"}}}}"\n',
        file=sys.stderr,
        flush=True,
    )
