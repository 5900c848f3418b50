"""``tms-admin``: the operator's commands, one entry point with subcommands.

Each command reaches the same database as ``tms-server`` (``TMS_DATABASE_URL``, or the embedded
cluster in ``TMS_DATA_DIR``, whether or not a server is running).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

import asyncpg

from tms_server import logs
from tms_server.admin import (
    catalog_db,
    delivery_time_cmd,
    geodata_cmd,
    kss_check_cmd,
    merchant_cmd,
    operator_cmd,
    reservations_cmd,
)
from tms_server.admin.common import AdminError, config_of, err, with_db
from tms_server.catalog import CatalogError
from tms_server.config import ConfigError, variables
from tms_server.db import DatabaseUnavailable
from tms_server.db.embedded import EmbeddedError
from tms_server.db.migrate import applied, migrate, migrations
from tms_server.merchants import MerchantError
from tms_server.terminal import SafeStream
from tms_server.wire import WireError


def build_parser() -> argparse.ArgumentParser:
    """The whole command tree."""
    p = argparse.ArgumentParser(prog="tms-admin", description="Operate a tms_server installation.")
    # Not required=True: argparse would then answer "--bogus" with "a COMMAND is required".
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    m = sub.add_parser("migrate", help="apply pending database migrations")
    m.add_argument("--status", action="store_true", help="only show which migrations are applied")
    m.set_defaults(func=cmd_migrate)
    c = sub.add_parser("config", help="print the effective configuration (secrets hidden)")
    c.set_defaults(func=cmd_config)
    merchant_cmd.add_parsers(sub)
    catalog_db.add_parsers(sub)
    delivery_time_cmd.add_parser(sub)
    reservations_cmd.add_parsers(sub)
    geodata_cmd.add_parsers(sub)
    kss_check_cmd.add_parser(sub)
    operator_cmd.add_parsers(sub)
    return p


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse, naming an unknown option as such: with required sub-commands argparse would report a
    missing COMMAND or ACTION for ``tms-admin --bogus`` instead."""
    levels = _optional_subcommands(parser)
    args, extra = parser.parse_known_args(argv)
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    current = parser
    while levels.get(id(current)):
        action = levels[id(current)][0]
        chosen = getattr(args, action.dest, None)
        if chosen is None:
            current.error(f"{action.metavar or action.dest} is required (add --help to list them)")
        current = action.choices[chosen]  # type: ignore[index]  # a sub-parsers action maps names to parsers
    return args


def _optional_subcommands(parser: argparse.ArgumentParser) -> dict[int, list[argparse.Action]]:
    """Make every sub-command level optional (so parse_known_args can finish); returns the levels."""
    levels: dict[int, list[argparse.Action]] = {}
    for action in parser._actions:  # argparse exposes no public walk of its tree
        if isinstance(action, argparse._SubParsersAction):
            action.required = False
            levels.setdefault(id(parser), []).append(action)
            for sub in action.choices.values():
                levels.update(_optional_subcommands(sub))
    return levels


def cmd_migrate(args: argparse.Namespace) -> int:
    async def go(conn: asyncpg.Connection) -> list[str]:
        if args.status:
            done = await applied(conn)
            return [f"{'applied' if m.version in done else 'pending'}  {m.name}" for m in migrations()]
        ran = await migrate(conn)
        return [f"applied  {m.name}" for m in ran] or ["schema is up to date"]

    for line in with_db(args, go, creates=True):
        print(line)
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    cfg = config_of(args)
    for key, value in cfg.safe_dict().items():
        print(f"{key:20} {value}")
    print(f"\nvariables read: {', '.join(variables())}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``tms-admin``."""
    args = parse_args(build_parser(), argv)
    logs.setup("text", "WARNING")
    # Whatever a command prints, stored values never drive the operator's terminal.
    streams = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = (
        SafeStream(sys.stdout),
        SafeStream(sys.stderr, keep="\n\t\r"),
    )  # progress bars redraw with \r
    try:
        return _run(args)
    except BrokenPipeError:
        # `tms-admin reservations list | head -2`: the reader has all it wanted. Point stdout at
        # /dev/null so the interpreter's final flush does not complain either.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, streams[0].fileno())
        return 0
    finally:
        sys.stdout, sys.stderr = streams


def _run(args: argparse.Namespace) -> int:
    try:
        return int(args.func(args))
    except BrokenPipeError:
        raise
    except (AdminError, MerchantError, ConfigError, EmbeddedError, DatabaseUnavailable, WireError) as exc:
        err(str(exc))
        return 1
    except CatalogError as exc:
        err("invalid catalog:\n  " + "\n  ".join(exc.errors))
        return 1
    except (OSError, asyncpg.PostgresError) as exc:
        err(f"database error: {exc}")
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
