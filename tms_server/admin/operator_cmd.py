"""``tms-admin operator add|list|remove``: the people who may use the web UI (``TMS_ADMIN_PORT``)."""

from __future__ import annotations

import argparse
from typing import Any

import asyncpg

from tms_server import operators
from tms_server.admin.common import AdminError, table, with_db


def add_parsers(sub: Any) -> None:
    """Register ``operator``."""
    p = sub.add_parser("operator", help="operators of the web UI (TMS_ADMIN_PORT)")
    acts = p.add_subparsers(dest="action", metavar="ACTION")
    a = acts.add_parser("add", help="create an operator and print their token (shown once)")
    a.add_argument("name", help="1-64 letters, digits, '.', '_', '@' or '-'")
    a.set_defaults(func=cmd_add)
    ls = acts.add_parser("list", help="operators and their open sessions")
    ls.set_defaults(func=cmd_list)
    rm = acts.add_parser("remove", help="delete an operator and end their sessions")
    rm.add_argument("name")
    rm.set_defaults(func=cmd_remove)


def cmd_add(args: argparse.Namespace) -> int:
    async def go(conn: asyncpg.Connection) -> str:
        try:
            return await operators.add(conn, args.name)
        except operators.OperatorError as exc:
            raise AdminError(str(exc)) from None

    token = with_db(args, go)
    print(f"operator {args.name} added; token (shown once, store it now):\n{token}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    rows = with_db(args, operators.listing)
    if not rows:
        print("no operators (add one: tms-admin operator add NAME)")
        return 0
    print(table([{"name": o.name, "created": f"{o.created_at:%Y-%m-%d %H:%M}", "sessions": str(o.sessions)}
                 for o in rows], ["name", "created", "sessions"]))  # fmt: skip
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    async def go(conn: asyncpg.Connection) -> None:
        try:
            await operators.remove(conn, args.name)
        except operators.OperatorError as exc:
            raise AdminError(str(exc)) from None

    with_db(args, go)
    print(f"operator {args.name} removed; their sessions are ended")
    return 0
