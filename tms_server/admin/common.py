"""What every ``tms-admin`` command shares: config, reaching the database, and output helpers."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg

from tms_server.config import Config, from_env
from tms_server.db import database_url
from tms_server.terminal import escape

T = TypeVar("T")


class AdminError(Exception):
    """A command failed for a reason the operator can act on; printed without a traceback."""


def config_of(args: argparse.Namespace) -> Config:
    """The Config from the environment (admin commands take no server flags)."""
    return from_env()


def actor() -> str:
    """Who is acting, for the audit trail: ``operator:<login>``."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = str(os.getuid())
    return f"operator:{os.environ.get('TMS_OPERATOR', name)}"


def with_db(args: argparse.Namespace, fn: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    """Run ``fn`` with one connection to the configured (or embedded) database."""
    config = config_of(args)

    async def go(dsn: str) -> T:
        conn = await asyncpg.connect(dsn, timeout=config.db_timeout, server_settings={"timezone": "UTC"})
        try:
            for typ in ("jsonb", "json"):
                await conn.set_type_codec(typ, encoder=_dumps, decoder=_loads, schema="pg_catalog")
            return await fn(conn)
        finally:
            await conn.close()

    with database_url(config) as dsn:
        return asyncio.run(go(dsn))


def _dumps(v: Any) -> str:
    import orjson

    return orjson.dumps(v).decode()


def _loads(v: str) -> Any:
    import orjson

    return orjson.loads(v)


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """A plain text table with a header line."""
    cells = [[("" if r.get(c) is None else escape(str(r.get(c)))) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines)


def err(message: str) -> None:
    """Print an error line for the operator."""
    print(f"tms-admin: {message}", file=sys.stderr)
