"""``tms-admin postal-areas ...`` and ``tms-admin pickup-points ...``: the shared geographic data.

Imports are validated whole before anything is written (every mistake with its line), then replace
the old data in one transaction; running servers pick the change up within ``TMS_REFRESH_INTERVAL``.
"""

from __future__ import annotations

import argparse
import io
import re
import sys
import zipfile
from pathlib import Path
from typing import Any

import asyncpg

from tms_server import postal
from tms_server.admin.common import AdminError, actor, positive_int, table, with_db
from tms_server.geo import PointIndex, PostalPositions
from tms_server.geodata import build_network
from tms_server.geodata import store as geo_store
from tms_server.geodata.files import ImportFileError, read_geonames, read_points

NETWORK_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


def add_parsers(sub: Any) -> None:
    """Register ``postal-areas`` and ``pickup-points``."""
    pa = sub.add_parser(
        "postal-areas", help="positions of postal codes (GeoNames files), shared by all merchants"
    )
    a = pa.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = a.add_parser(
        "import", help="import a GeoNames postal-code file (.txt or .zip); replaces its countries"
    )
    p.add_argument("file", help="the file, or - for standard input")
    p.set_defaults(func=cmd_postal_import)
    p = a.add_parser("list", help="imported countries with their code counts")
    p.set_defaults(func=cmd_postal_list)

    pp = sub.add_parser("pickup-points", help="carriers' pickup-point networks, shared by all merchants")
    a = pp.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = a.add_parser("import", help="import (or replace) network NAME from a CSV or GeoJSON file")
    p.add_argument("name", help='the network\'s name, as catalogs write it: pickup_points = "NAME"')
    p.add_argument("file", help="the file, or - for standard input")
    p.set_defaults(func=cmd_points_import)
    p = a.add_parser("list", help="imported networks")
    p.set_defaults(func=cmd_points_list)
    p = a.add_parser("show", help="one network's points, or those nearest a postal code")
    p.add_argument("name")
    p.add_argument("--near", metavar="POSTAL_CODE", help="list the points nearest this postal code")
    p.add_argument("--country", default="SE", help="the --near postal code's country (default SE)")
    p.add_argument("--limit", type=positive_int, default=20, help="how many points to print (default 20)")
    p.set_defaults(func=cmd_points_show)
    p = a.add_parser("remove", help="delete a network (catalogs naming it then offer no points from it)")
    p.add_argument("name")
    p.add_argument("--yes", action="store_true", help="really delete (without it: say what would go)")
    p.set_defaults(func=cmd_points_remove)


def _read_bytes(path: str) -> bytes:
    try:
        return sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as exc:
        raise AdminError(f"{path}: cannot read: {exc.strerror or exc}") from None


def _geonames_text(path: str, data: bytes) -> str:
    """The text of a GeoNames file, unpacked from its .zip (GeoNames ships ``SE.zip`` with ``SE.txt``)."""
    if data[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                names = [n for n in archive.namelist() if n.endswith(".txt") and "readme" not in n.lower()]
                if len(names) != 1:
                    raise AdminError(
                        f"{path}: expected one data .txt file in the zip, found {names or 'none'}"
                    )
                data = archive.read(names[0])
        except zipfile.BadZipFile as exc:
            raise AdminError(f"{path}: not a readable zip file: {exc}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise AdminError(
            f"{path}: not UTF-8 text (byte {exc.start}): expected a GeoNames postal-code file"
        ) from None


def _invalid(path: str, exc: ImportFileError) -> int:
    print(f"{path}: invalid, nothing imported:", file=sys.stderr)
    for line in exc.errors:
        print(f"  {line}", file=sys.stderr)
    return 1


def cmd_postal_import(args: argparse.Namespace) -> int:
    text = _geonames_text(args.file, _read_bytes(args.file))
    try:
        rows = read_geonames(text.split("\n"))  # not splitlines(): U+2028 would shift line numbers
    except ImportFileError as exc:
        return _invalid(args.file, exc)

    async def go(conn: asyncpg.Connection) -> dict[str, int]:
        return await geo_store.import_postal_areas(
            conn, rows, source=Path(args.file).name, imported_by=actor()
        )

    counts = with_db(args, go)
    for country, count in counts.items():
        print(f"imported {count} postal codes of {country} from {args.file}")
    print("running servers pick them up within seconds")
    return 0


def _imports_table(items: list[Any], key: str, count: str, none: str) -> int:
    """``postal-areas list`` and ``pickup-points list``: one row per import."""
    if not items:
        print(none)
        return 0
    rows = [
        {key: getattr(i, key), count: getattr(i, count), "source": i.source, "imported_by": i.imported_by,
         "imported_at": f"{i.imported_at:%Y-%m-%d %H:%M:%S}", "digest": i.digest[:12]}
        for i in items
    ]  # fmt: skip
    print(table(rows, [key, count, "source", "imported_by", "imported_at", "digest"]))
    return 0


def cmd_postal_list(args: argparse.Namespace) -> int:
    imports = with_db(args, geo_store.postal_imports)
    return _imports_table(
        imports, "country", "codes", "no postal areas imported (tms-admin postal-areas import FILE)"
    )


def cmd_points_import(args: argparse.Namespace) -> int:
    if not re.fullmatch(NETWORK_NAME, args.name):
        raise AdminError(f"network name {args.name!r}: expected letters, digits, '_', '-' and '.', up to 64")
    try:
        points = read_points(_read_bytes(args.file))
    except ImportFileError as exc:
        return _invalid(args.file, exc)

    async def go(conn: asyncpg.Connection) -> str:
        return await geo_store.import_network(
            conn, args.name, points, source=Path(args.file).name, imported_by=actor()
        )

    digest = with_db(args, go)
    placed = sum(1 for p in points if p.lat is not None)
    countries = ", ".join(sorted({p.country for p in points}))
    print(f"imported network {args.name}: {len(points)} points ({placed} with a position) in {countries}, sha256 {digest[:12]}")  # fmt: skip
    print("running servers pick it up within seconds")
    return 0


def cmd_points_list(args: argparse.Namespace) -> int:
    networks = with_db(args, geo_store.networks)
    none = "no pickup-point networks imported (tms-admin pickup-points import NAME FILE)"
    return _imports_table(networks, "name", "points", none)


def cmd_points_show(args: argparse.Namespace) -> int:
    country = args.country.upper()

    async def go(conn: asyncpg.Connection) -> tuple[Any, Any, Any]:
        info = next((n for n in await geo_store.networks(conn) if n.name == args.name), None)
        if info is None:
            raise AdminError(f"no pickup-point network {args.name!r} (tms-admin pickup-points list)")
        positions = await geo_store.load_positions(conn, [country]) if args.near else []
        return info, await geo_store.load_network(conn, args.name), positions

    info, rows, positions = with_db(args, go)
    print(f"network {info.name}: {info.points} points, imported {info.imported_at:%Y-%m-%d %H:%M:%S} by {info.imported_by} from {info.source or '?'}")  # fmt: skip
    if args.near:
        return _show_near(args, country, rows, positions)
    shown = [
        {"id": r.id, "name": r.name, "postal_code": r.postal_code, "city": r.city, "country": r.country,
         "lat": "" if r.lat is None else f"{r.lat:.5f}", "lng": "" if r.lng is None else f"{r.lng:.5f}"}
        for r in rows[: args.limit]
    ]  # fmt: skip
    print(table(shown, ["id", "name", "postal_code", "city", "country", "lat", "lng"]))
    if len(rows) > args.limit:
        print(f"... and {len(rows) - args.limit} more (--limit N)")
    return 0


def _show_near(args: argparse.Namespace, country: str, rows: Any, positions: Any) -> int:
    if postal.normalise(country, args.near) is None:
        raise AdminError(f"--near: {args.near!r} is not a valid {country} postal code")
    where = PostalPositions(positions).position(country, postal.compact(args.near))
    if where is None:
        print(f"no position known for {args.near} in {country} (tms-admin postal-areas import FILE)")
        return 1
    network = build_network(args.name, "", rows)
    index: PointIndex[Any] = network.index
    near = index.nearest(where.lat, where.lng, country=country, limit=args.limit, max_km=2500)
    print(f"nearest to {args.near} {country} ({where.lat:.4f}, {where.lng:.4f}; {where.source}):")
    shown = [
        {"km": f"{km:.1f}", "id": p.id, "name": p.name, "postal_code": p.postal_code, "city": p.city}
        for p, km in near
    ]
    print(table(shown, ["km", "id", "name", "postal_code", "city"]))
    return 0


def cmd_points_remove(args: argparse.Namespace) -> int:
    async def go(conn: asyncpg.Connection) -> bool:
        known = {n.name for n in await geo_store.networks(conn)}
        if args.name not in known:
            raise AdminError(f"no pickup-point network {args.name!r} (tms-admin pickup-points list)")
        return await geo_store.remove_network(conn, args.name) if args.yes else False

    removed = with_db(args, go)
    print(f"removed network {args.name}" if removed else f"would remove network {args.name} (add --yes)")
    return 0
