"""``tms-admin catalog ...``: the commands that read or write stored catalogs.

The pure parts (example, check, explain formatting) live in ``catalog_cmd``; this module adds the
database: load (validated first, every version kept), history, rollback, show, explain against
the catalog a merchant is served now.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from tms_server import catalog_store
from tms_server.admin import catalog_cmd
from tms_server.admin.common import AdminError, actor, table, with_db
from tms_server.catalog import Catalog, CatalogError, explain_text, parse_catalog
from tms_server.geodata import bind_from_database


def add_parsers(sub: Any) -> None:
    """Register ``catalog`` and its actions."""
    c = sub.add_parser("catalog", help="write, check, load, explain and roll back shipping catalogs")
    a = c.add_subparsers(dest="action", required=True, metavar="ACTION")
    catalog_cmd.add_parsers(a)
    p = a.add_parser("load", help="validate and load a catalog file as the merchant's next version")
    p.add_argument("identifier")
    p.add_argument("file")
    p.add_argument("--check", action="store_true", help="only validate; load nothing")
    p.set_defaults(func=cmd_load)
    p = a.add_parser("explain", help="show why each option is offered or hidden for a request, and its price")
    p.add_argument("identifier")
    p.add_argument("request", metavar="REQUEST.json")
    p.add_argument("--now", help="evaluate at this ISO time (default: now)")
    p.set_defaults(func=cmd_explain)
    p = a.add_parser("history", help="list every loaded version")
    p.add_argument("identifier")
    p.set_defaults(func=cmd_history)
    p = a.add_parser("rollback", help="serve an earlier version again")
    p.add_argument("identifier")
    p.add_argument("version", type=int)
    p.set_defaults(func=cmd_rollback)
    p = a.add_parser("show", help="print the served (or a given) version's text")
    p.add_argument("identifier")
    p.add_argument("--version", type=int)
    p.set_defaults(func=cmd_show)


def parse_now(text: str | None) -> datetime:
    """``--now`` as an aware datetime (naive input is taken as UTC)."""
    if not text:
        return datetime.now(UTC)
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise AdminError(
            f"--now: expected an ISO 8601 time such as 2026-11-24T10:00:00+01:00, got {text!r}"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _read(path: str) -> str:
    try:
        return sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise AdminError(f"{path}: cannot read: {exc}") from None


def cmd_load(args: argparse.Namespace) -> int:
    text = _read(args.file)
    try:
        catalog = parse_catalog(text, source=args.file)
        if catalog.networks_needed:
            catalog_cmd.with_networks(catalog, text, args.file)
    except CatalogError as exc:
        print(f"{args.file}: invalid catalog:", file=sys.stderr)
        for line in exc.errors:
            print(f"  {line}", file=sys.stderr)
        return 1
    if args.check:
        print(f"{args.file}: valid")
        return 0

    async def go(conn: asyncpg.Connection) -> tuple[int, str]:
        return await catalog_store.load(conn, args.identifier, text, loaded_by=actor())

    version, summary = with_db(args, go)
    print(f"loaded {args.file} as version {version} of {args.identifier}'s catalog ({summary})")
    print("running servers pick it up within seconds")
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    try:
        request = orjson.loads(_read(args.request))
    except orjson.JSONDecodeError as exc:
        raise AdminError(f"{args.request}: not valid JSON: {exc}") from None
    now = parse_now(args.now)

    async def go(conn: asyncpg.Connection) -> str | None:
        return await catalog_store.served_source(conn, args.identifier)

    source = with_db(args, go)
    if source is None:
        raise AdminError(f"merchant {args.identifier!r} has no catalog loaded")
    catalog = parse_catalog(source, source=f"catalog of {args.identifier}")

    async def bind(conn: asyncpg.Connection) -> Catalog:
        return await bind_from_database(conn, catalog)

    print(explain_text(with_db(args, bind), request, now=now))
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    async def go(conn: asyncpg.Connection) -> list[catalog_store.CatalogVersion]:
        return await catalog_store.history(conn, args.identifier)

    rows = [
        {"version": v.version, "served": "*" if v.served else "", "loaded_at": v.loaded_at.strftime("%Y-%m-%d %H:%M:%S"),
         "loaded_by": v.loaded_by, "changes": v.summary, "digest": v.digest[:12]}
        for v in with_db(args, go)
    ]  # fmt: skip
    print(table(rows, ["version", "served", "loaded_at", "loaded_by", "changes", "digest"]))
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    async def go(conn: asyncpg.Connection) -> None:
        await catalog_store.rollback(conn, args.identifier, args.version)

    with_db(args, go)
    print(f"{args.identifier} is now served catalog version {args.version}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    async def go(conn: asyncpg.Connection) -> str | None:
        return await catalog_store.served_source(conn, args.identifier, args.version)

    text = with_db(args, go)
    if text is None:
        raise AdminError(f"merchant {args.identifier!r} has no catalog loaded")
    sys.stdout.write(text)
    return 0
