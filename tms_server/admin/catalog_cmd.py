"""The pure parts of ``tms-admin catalog``: ``example``, ``check`` (with replay) and explain from files.

This module owns commands that need no database: print the example catalog, validate a catalog file
and replay recorded requests through it (and through an older catalog, to show which answers would
change), and explain a request against a catalog text. The database-backed ``catalog load`` and
``catalog explain IDENTIFIER`` live with the storage code and call ``explain_text``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from tms_server import wire
from tms_server.admin.common import with_db
from tms_server.catalog import (
    Catalog,
    CatalogError,
    example_catalog_text,
    explain_text,
    parse_catalog,
    shipping_options,
)
from tms_server.db import DatabaseUnavailable
from tms_server.db.embedded import EmbeddedError
from tms_server.geodata import bind_from_database
from tms_server.geodata import store as geo_store

__all__ = ["add_parsers", "cmd_check", "cmd_example", "cmd_explain_file", "explain_text", "replay"]


def _moment(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected an ISO 8601 date-time, got {value!r}") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def add_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``example`` and ``check`` on the ``catalog`` sub-command table."""
    example = commands.add_parser("example", help="print the example catalog (a Swedish web shop)")
    example.set_defaults(func=cmd_example)
    check = commands.add_parser("check", help="validate a catalog file without loading it")
    check.add_argument("file", type=Path, help="the catalog TOML file")
    check.add_argument("--replay", type=Path, help="a folder of recorded /shippingoptions request JSON files")
    check.add_argument(
        "--against", type=Path, help="an older catalog file to compare the replayed answers with"
    )
    check.add_argument(
        "--now", type=_moment, default=None, help="the moment to evaluate at (ISO 8601; default: now)"
    )
    check.set_defaults(func=cmd_check)


def cmd_example(args: argparse.Namespace) -> int:
    """Print the example catalog."""
    sys.stdout.write(example_catalog_text())
    return 0


def _load(path: Path) -> Catalog | None:
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
        catalog = parse_catalog(text, source=str(path))
        return with_networks(catalog, text, str(path)) if catalog.networks_needed else catalog
    except OSError as exc:
        print(f"{path}: cannot read: {exc.strerror}", file=sys.stderr)
    except UnicodeDecodeError as exc:
        print(f"{path}: not UTF-8 text (byte {exc.start}): expected a TOML catalog", file=sys.stderr)
    except CatalogError as exc:
        for error in exc.errors:
            print(f"{path}: {error}", file=sys.stderr)
    return None


def with_networks(catalog: Catalog, text: str, source: str) -> Catalog:
    """Check the imported networks a catalog names against the database, and bind them.

    Only catalogs that name a network not in the file reach the database; CatalogError when a
    named network is missing (or a per-point price names an id it does not have)."""

    async def go(conn: asyncpg.Connection) -> Catalog:
        parse_catalog(text, source=source, networks=await geo_store.network_ids(conn))
        return await bind_from_database(conn, catalog)

    names = ", ".join(sorted(catalog.networks_needed))
    try:
        return with_db(argparse.Namespace(), go)
    except (DatabaseUnavailable, EmbeddedError, OSError, asyncpg.PostgresError) as exc:
        raise CatalogError(
            [
                f"pickup_points: {names} is not a list in this catalog, and the imported networks could not be read: {exc}"
            ]
        ) from None


def cmd_check(args: argparse.Namespace) -> int:
    """Validate FILE; with --replay, show each recorded request's answer or how it changes."""
    catalog = _load(args.file)
    if catalog is None:
        return 1
    count = len(catalog.options)
    print(f"{args.file}: OK, {catalog.version_label!r}, {count} options, sha256 {catalog.digest[:12]}")
    if args.replay is not None and not args.replay.is_dir():
        print(f"{args.replay}: --replay expects a folder of recorded request .json files", file=sys.stderr)
        return 1
    if args.replay is None:
        return 0
    old = _load(args.against) if args.against else None
    if args.against and old is None:
        return 1
    now = args.now or datetime.now(UTC)
    for line in replay(catalog, args.replay, now=now, old=old):
        print(line)
    return 0


def _summary(options: list[dict[str, Any]]) -> dict[str, str]:
    """What a shopper would notice per option: price, preview, pickup points, slot count."""
    out = {}
    for rank, o in enumerate(options, start=1):
        places = ",".join(loc["id"] for loc in o.get("locations", []))
        slots = len(o.get("timeslots", []))
        out[o["id"]] = (
            f"#{rank} {o['price']}"
            + (f" [{places}]" if places else "")
            + (f" {slots} slots" if slots else "")
        )
    return out


def _diff(old: dict[str, str], new: dict[str, str]) -> list[str]:
    changes = [f"+{k} {v}" for k, v in new.items() if k not in old]
    changes += [f"-{k}" for k in old if k not in new]
    changes += [f"~{k} {old[k]} -> {new[k]}" for k in new if k in old and old[k] != new[k]]
    return changes


def replay(catalog: Catalog, folder: Path, *, now: datetime, old: Catalog | None = None) -> list[str]:
    """One line per recorded request: its answer, or with ``old`` what changed (or "unchanged")."""
    lines = []
    for path in sorted(folder.glob("*.json")):
        try:
            req = wire.parse(json.loads(path.read_text(encoding="utf-8")), wire.ShippingOptionsRequest)
        except (ValueError, OSError) as exc:
            lines.append(f"{path.name}: skipped: {exc}")
            continue
        except RecursionError:
            lines.append(f"{path.name}: skipped: nested too deeply to be a request")
            continue
        new = _summary(shipping_options(catalog, req, now=now))
        if old is None:
            lines.append(f"{path.name}: " + "; ".join(f"{k} {v}" for k, v in new.items()))
            continue
        changes = _diff(_summary(shipping_options(old, req, now=now)), new)
        lines.append(f"{path.name}: " + ("; ".join(changes) if changes else "unchanged"))
    return lines


def cmd_explain_file(catalog_text: str, request_json: str, now: datetime) -> str:
    """Explain a request (JSON text) against a catalog (TOML text); raises CatalogError/WireError."""
    catalog = parse_catalog(catalog_text)
    payload = json.loads(request_json)
    if not isinstance(payload, dict):
        raise wire.WireError("request must be a JSON object")
    return explain_text(catalog, payload, now=now)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the pure catalog commands on their own (``python -m tms_server.admin.catalog_cmd``)."""
    parser = argparse.ArgumentParser(prog="tms-admin catalog")
    add_parsers(parser.add_subparsers(dest="catalog_command", required=True))
    args = parser.parse_args(argv)
    handler: Any = args.func
    return int(handler(args))


if __name__ == "__main__":
    raise SystemExit(main())
