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
from tms_server.db.pool import use_json_codec
from tms_server.terminal import escape

T = TypeVar("T")


class AdminError(Exception):
    """A command failed for a reason the operator can act on; printed without a traceback."""


def config_of(args: argparse.Namespace) -> Config:
    """The Config from the environment (admin commands take no server flags)."""
    return from_env()


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1 (0 and negatives are mistakes, not "all")."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1, got {value}")
    return value


def actor() -> str:
    """Who is acting, for the audit trail: ``operator:<login>``."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = str(os.getuid())
    return f"operator:{os.environ.get('TMS_OPERATOR', name)}"


def with_db(
    args: argparse.Namespace, fn: Callable[[asyncpg.Connection], Awaitable[T]], *, creates: bool = False
) -> T:
    """Run ``fn`` with one connection to the configured (or embedded) database.

    Without ``creates``, an embedded database that does not exist yet is an AdminError naming the
    directory looked in: a command run from the wrong folder must not make an empty cluster there."""
    config = config_of(args)

    async def go(dsn: str) -> T:
        try:
            conn = await asyncpg.connect(dsn, timeout=config.db_timeout, server_settings={"timezone": "UTC"})
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise AdminError(
                f"cannot reach {config.where()}: {exc} (set TMS_DATABASE_URL or TMS_DATA_DIR)"
            ) from None
        try:
            await use_json_codec(conn)
            return await fn(conn)
        finally:
            await conn.close()

    if not config.database_url and not creates and not (config.data_dir / "pgdata" / "PG_VERSION").exists():
        raise AdminError(
            f"no database here: {config.where()} does not exist. Run tms-admin from the folder the server "
            "runs in, or point TMS_DATA_DIR at the server's data directory (or TMS_DATABASE_URL at its "
            "database); `tms-admin migrate` creates a new one in this folder"
        )
    with database_url(config) as dsn:
        return asyncio.run(go(dsn))


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
