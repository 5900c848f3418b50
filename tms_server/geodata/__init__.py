"""Shared geographic data: postal-code positions and carriers' pickup-point networks.

This package owns the data every merchant shares: the files it is imported from (``files``), its
tables (``store``), and the in-memory form servers evaluate against (``Network``, ``GeoData``).
Catalogs name a network with ``pickup_points = "NAME"`` and are bound to the loaded data with
``Catalog.bound``; the shared positions place a recipient when the catalog's own
``[postal_areas.XX]`` do not.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import asyncpg
from attrs import field, frozen

from tms_server.catalog.model import Catalog, Location
from tms_server.geo import PointIndex, PostalPositions
from tms_server.geodata import store
from tms_server.geodata.files import PointRow

__all__ = ["GeoData", "Network", "bind_from_database", "build_network", "to_location"]


def to_location(row: PointRow) -> Location:
    """A pickup point as the engine sees it."""
    return Location(
        id=row.id,
        name=row.name,
        street_address=row.street_address,
        postal_code=row.postal_code,
        city=row.city,
        country=row.country,
        lat=row.lat,
        lng=row.lng,
        hours=row.opening_hours(),
        lead_days=row.lead_days,
    )


@frozen(eq=False)
class Network:
    """An imported network: its points in file order and their spatial index."""

    name: str
    digest: str
    locations: tuple[Location, ...]
    index: PointIndex[Location]


def build_network(name: str, digest: str, rows: Iterable[PointRow]) -> Network:
    """Compile imported rows (CPU-bound: about 1 s per 100,000 points; run it off the event loop)."""
    locations = tuple(to_location(r) for r in rows)
    return Network(name, digest, locations, PointIndex(locations))


@frozen(eq=False)
class GeoData:
    """What one server process holds: the networks by name and the shared postal positions."""

    networks: Mapping[str, Network] = field(factory=dict)
    positions: PostalPositions | None = None
    digests: Mapping[str, str] = field(factory=dict)

    def bindable(self) -> dict[str, tuple[tuple[Location, ...], PointIndex[Location]]]:
        """The networks in the form ``Catalog.bound`` takes."""
        return {name: (n.locations, n.index) for name, n in self.networks.items()}


async def bind_from_database(conn: asyncpg.Connection, catalog: Catalog) -> Catalog:
    """``catalog`` bound as a server would bind it: the networks it names and the imported
    positions (for ``tms-admin catalog explain`` and ``check --replay``)."""
    networks = {}
    for name in sorted(catalog.networks_needed):
        rows = await store.load_network(conn, name)
        if rows:
            network = build_network(name, "", rows)
            networks[name] = (network.locations, network.index)
    countries = [i.country for i in await store.postal_imports(conn)]
    rows_ = await store.load_positions(conn, countries) if countries else []
    return catalog.bound(networks, PostalPositions(rows_, "imported postal areas") if rows_ else None)
