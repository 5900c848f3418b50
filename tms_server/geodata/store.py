"""Postal-code positions and pickup-point networks in PostgreSQL: import, list, show, and load.

Imports replace a country's codes, or a network's points, inside one transaction: a server reading
at the same moment sees the old data or the new, never a mix, and a failed import changes nothing.
Each import records a digest; servers poll the digests (``digests``) and reload what changed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime

import asyncpg
import orjson
from attrs import frozen

from tms_server.geodata.files import PointRow, PostalRow

__all__ = [
    "NetworkInfo",
    "PostalImport",
    "digests",
    "import_network",
    "import_postal_areas",
    "load_network",
    "load_positions",
    "network_ids",
    "networks",
    "postal_imports",
    "remove_network",
]

# Serialises imports, so two operators importing at once apply one after the other.
IMPORT_LOCK = "SELECT pg_advisory_xact_lock(746122)"
DELETE_AREAS = "DELETE FROM postal_areas WHERE country = ANY($1::text[])"
UPSERT_AREA_IMPORT = """
INSERT INTO postal_area_imports (country, codes, digest, source, imported_by)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (country) DO UPDATE SET codes = EXCLUDED.codes, digest = EXCLUDED.digest,
    source = EXCLUDED.source, imported_by = EXCLUDED.imported_by, imported_at = now()
"""
POSTAL_IMPORTS = "SELECT country, codes, digest, source, imported_by, imported_at FROM postal_area_imports ORDER BY country"
POSITIONS = "SELECT country, postal_code, lat, lng FROM postal_areas WHERE country = ANY($1::text[])"
UPSERT_NETWORK = """
INSERT INTO pickup_networks (name, points, digest, source, imported_by) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (name) DO UPDATE SET points = EXCLUDED.points, digest = EXCLUDED.digest,
    source = EXCLUDED.source, imported_by = EXCLUDED.imported_by, imported_at = now()
"""
DELETE_POINTS = "DELETE FROM pickup_points WHERE network = $1"
NETWORKS = "SELECT name, points, digest, source, imported_by, imported_at FROM pickup_networks ORDER BY name"
NETWORK_POINTS = """
SELECT id, name, street_address, postal_code, city, country, lat, lng, hours, lead_days_min, lead_days_max, line
  FROM pickup_points WHERE network = $1 ORDER BY line
"""
NETWORK_IDS = "SELECT network, array_agg(id) AS ids FROM pickup_points GROUP BY network"
DELETE_NETWORK = "DELETE FROM pickup_networks WHERE name = $1"
DIGESTS = """
SELECT 'postal:' || country AS key, digest FROM postal_area_imports
UNION ALL SELECT 'network:' || name, digest FROM pickup_networks
"""
_POINT_COLUMNS = (
    "network", "id", "name", "street_address", "postal_code", "city", "country", "lat", "lng", "hours",
    "lead_days_min", "lead_days_max", "line",
)  # fmt: skip


@frozen
class PostalImport:
    """One country's imported postal codes."""

    country: str
    codes: int
    digest: str
    source: str
    imported_by: str
    imported_at: datetime


@frozen
class NetworkInfo:
    """One imported pickup-point network."""

    name: str
    points: int
    digest: str
    source: str
    imported_by: str
    imported_at: datetime


def _digest(parts: Sequence[str]) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode())
        h.update(b"\n")
    return h.hexdigest()


async def import_postal_areas(
    conn: asyncpg.Connection, rows: Sequence[PostalRow], *, source: str, imported_by: str
) -> dict[str, int]:
    """Replace the codes of every country in ``rows`` in one transaction; codes per country."""
    by_country: dict[str, list[PostalRow]] = {}
    for row in rows:
        by_country.setdefault(row.country, []).append(row)
    async with conn.transaction():
        await conn.execute(IMPORT_LOCK)
        await conn.execute(DELETE_AREAS, sorted(by_country))
        await conn.copy_records_to_table(
            "postal_areas",
            records=[(r.country, r.postal_code, r.place, r.lat, r.lng, r.accuracy) for r in rows],
            columns=["country", "postal_code", "place", "lat", "lng", "accuracy"],
        )
        for country, items in sorted(by_country.items()):
            digest = _digest(sorted(f"{r.postal_code}\t{r.lat:.6f}\t{r.lng:.6f}" for r in items))
            await conn.execute(UPSERT_AREA_IMPORT, country, len(items), digest, source, imported_by)
    return {country: len(items) for country, items in sorted(by_country.items())}


async def postal_imports(conn: asyncpg.Connection) -> list[PostalImport]:
    """What has been imported, per country."""
    return [PostalImport(**dict(r)) for r in await conn.fetch(POSTAL_IMPORTS)]


async def load_positions(
    conn: asyncpg.Connection, countries: Sequence[str]
) -> list[tuple[str, str, float, float]]:
    """(country, compact code, lat, lng) of every code of ``countries``."""
    return [(r[0], r[1], r[2], r[3]) for r in await conn.fetch(POSITIONS, list(countries))]


async def import_network(
    conn: asyncpg.Connection, name: str, points: Sequence[PointRow], *, source: str, imported_by: str
) -> str:
    """Replace network ``name``'s points in one transaction; returns the new digest."""
    digest = _digest(
        [orjson.dumps([p.id, p.name, p.street_address, p.postal_code, p.city, p.country, p.lat, p.lng,
                       p.hours, p.lead_days], option=orjson.OPT_SORT_KEYS).decode() for p in points]
    )  # fmt: skip
    records = [
        (name, p.id, p.name, p.street_address, p.postal_code, p.city, p.country, p.lat, p.lng,
         orjson.dumps(p.hours).decode(), *(p.lead_days or (None, None)), p.line)
        for p in points
    ]  # fmt: skip
    async with conn.transaction():
        await conn.execute(IMPORT_LOCK)
        await conn.execute(UPSERT_NETWORK, name, len(points), digest, source, imported_by)
        await conn.execute(DELETE_POINTS, name)
        await conn.copy_records_to_table("pickup_points", records=records, columns=list(_POINT_COLUMNS))
    return digest


async def networks(conn: asyncpg.Connection) -> list[NetworkInfo]:
    """Every imported network."""
    return [NetworkInfo(**dict(r)) for r in await conn.fetch(NETWORKS)]


async def network_ids(conn: asyncpg.Connection) -> dict[str, frozenset[str]]:
    """Each network's point ids, for checking a catalog that names networks."""
    names = {n.name: frozenset[str]() for n in await networks(conn)}
    for row in await conn.fetch(NETWORK_IDS):
        names[row["network"]] = frozenset(row["ids"])
    return names


async def load_network(conn: asyncpg.Connection, name: str) -> list[PointRow]:
    """The points of network ``name`` in file order (empty when there is no such network)."""
    return [_point_row(r) for r in await conn.fetch(NETWORK_POINTS, name)]


def _point_row(r: asyncpg.Record) -> PointRow:
    lead = None if r["lead_days_min"] is None else (r["lead_days_min"], r["lead_days_max"])
    return PointRow(
        line=r["line"], id=r["id"], name=r["name"], street_address=r["street_address"],
        postal_code=r["postal_code"], city=r["city"], country=r["country"], lat=r["lat"], lng=r["lng"],
        hours=_hours(r["hours"]), lead_days=lead,
    )  # fmt: skip


def _hours(value: object) -> dict[str, str]:
    """The hours column (JSON text)."""
    decoded = orjson.loads(value) if isinstance(value, str) else value
    return {str(k): str(v) for k, v in decoded.items()} if isinstance(decoded, dict) else {}


async def remove_network(conn: asyncpg.Connection, name: str) -> bool:
    """Delete network ``name`` and its points; False when there was none."""
    return str(await conn.execute(DELETE_NETWORK, name)) != "DELETE 0"


async def digests(conn: asyncpg.Connection) -> dict[str, str]:
    """``postal:SE`` / ``network:NAME`` -> digest: what servers compare to see what changed."""
    return {r["key"]: r["digest"] for r in await conn.fetch(DIGESTS)}
