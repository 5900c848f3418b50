"""Positions on the earth: postal codes to positions, pickup points near a position, polygons.

This module owns the geometry of delivery: where a recipient is (the position of their postal code,
or of its longest known prefix), which pickup points are within reach (a grid index, exact
great-circle distances), and whether a position lies inside an area polygon. Pure and in memory;
the data comes from catalogs and from the shared tables ``tms-admin postal-areas import`` and
``tms-admin pickup-points import`` fill.

Decisions:

- Distances are great-circle (haversine) on a sphere of radius 6,371.0088 km (the IUGG mean
  radius); the error against the WGS 84 ellipsoid is below 0.5 %, far below a postal area's size.
- A postal code's position is its exact entry, else the centroid of the codes sharing its longest
  known prefix, but never a prefix shorter than the code less two characters (nor below two
  characters): "621 41" may use "621" (Visby), never "6" (a third of Sweden). Past that the
  position is unknown.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from typing import Final, Generic, Protocol, TypeVar

from attrs import frozen

from tms_server.postal import compact

__all__ = [
    "EARTH_RADIUS_KM",
    "PointIndex",
    "Position",
    "PostalPositions",
    "distance_km",
    "inside",
    "min_prefix_length",
    "plausible",
]

EARTH_RADIUS_KM: Final = 6371.0088
_KM_PER_DEGREE: Final = math.pi * EARTH_RADIUS_KM / 180.0  # along a meridian


@frozen
class Position:
    """A WGS 84 position in degrees; ``source`` says where it came from, for the explain trace."""

    lat: float
    lng: float
    source: str = ""


def distance_km(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """Great-circle distance in kilometres (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lng2 - lng1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


# Generous (lat_min, lat_max, lng_min, lng_max) boxes around countries' territory with postal codes
# (Svalbard in NO, Åland in FI, Bornholm in DK, the Canaries in ES), to catch swapped coordinates.
COUNTRY_BOXES: Final = {
    "SE": (55.0, 69.2, 10.5, 24.3), "NO": (57.8, 81.0, 4.0, 35.0), "DK": (54.5, 57.9, 8.0, 15.3),
    "FI": (59.7, 70.1, 19.0, 31.6), "DE": (47.2, 55.1, 5.8, 15.1), "AT": (46.3, 49.1, 9.5, 17.2),
    "CH": (45.8, 47.9, 5.9, 10.5), "NL": (50.7, 53.6, 3.3, 7.3), "BE": (49.4, 51.6, 2.5, 6.5),
    "PL": (49.0, 54.9, 14.1, 24.2), "FR": (41.3, 51.2, -5.2, 9.6), "ES": (27.6, 43.9, -18.2, 4.4),
    "IT": (35.4, 47.1, 6.6, 18.6), "GB": (49.8, 60.9, -8.7, 1.8),
}  # fmt: skip


def plausible(country: str, lat: float, lng: float) -> bool:
    """Whether (lat, lng) can lie in ``country`` (True for countries without a box here)."""
    box = COUNTRY_BOXES.get(country)
    return box is None or (box[0] <= lat <= box[1] and box[2] <= lng <= box[3])


def min_prefix_length(code: str, country: str | None = None) -> int:
    """The shortest prefix of a compact postal code that may stand for it (see the module
    docstring). In GB that is the outward code (the code less its three-character inward part),
    which is what GeoNames lists for GB."""
    if country == "GB" and len(code) >= 5:
        return len(code) - 3
    return max(2, len(code) - 2)


class PostalPositions:
    """Positions of postal codes per country, with prefix centroids for codes not listed.

    Built from exact codes (compact form: upper case, no spaces or hyphens); every prefix down to
    ``min_prefix_length`` gets the mean position of the codes under it."""

    def __init__(self, rows: Iterable[tuple[str, str, float, float]], source: str = "postal areas") -> None:
        self.source = source
        self._exact: dict[str, dict[str, tuple[float, float]]] = defaultdict(dict)
        sums: dict[str, dict[str, list[float]]] = defaultdict(dict)
        for country, code, lat, lng in rows:
            self._exact[country][code] = (lat, lng)
            for cut in range(min_prefix_length(code, country), len(code)):
                acc = sums[country].setdefault(code[:cut], [0.0, 0.0, 0.0])
                acc[0] += lat
                acc[1] += lng
                acc[2] += 1
        self._prefixes = {
            country: {p: (a[0] / a[2], a[1] / a[2]) for p, a in table.items()}
            for country, table in sums.items()
        }
        self.codes = sum(len(t) for t in self._exact.values())

    def position(self, country: str, code: str) -> Position | None:
        """The position of compact ``code`` in ``country``: the exact code, else the longest known
        prefix (an imported code, or the centre of the codes under it) down to
        ``min_prefix_length``. A US ZIP+4 is looked up by its ZIP."""
        found = self.match(country, code)
        return None if found is None else found[1]

    def match(self, country: str, code: str) -> tuple[int, Position] | None:
        """(matched length, position) for compact ``code``; see ``position``."""
        exact = self._exact.get(country)
        if exact is None:
            return None
        if country == "US" and len(code) == 9 and code.isdigit():
            code = code[:5]
        prefixes = self._prefixes.get(country, {})
        for cut in range(len(code), min_prefix_length(code, country) - 1, -1):
            head = code[:cut]
            hit = exact.get(head)
            how = "exact code" if cut == len(code) else f"the code {cut} characters long under which it falls"
            if hit is None:
                hit = prefixes.get(head)
                how = f"centre of the codes sharing its first {cut} characters"
            if hit is not None:
                return cut, Position(hit[0], hit[1], f"{self.source}: {how}")
        return None


class Located(Protocol):
    """Anything with an optional position and a country: a pickup point."""

    @property
    def lat(self) -> float | None: ...

    @property
    def lng(self) -> float | None: ...

    @property
    def country(self) -> str: ...

    @property
    def id(self) -> str: ...

    @property
    def postal_code(self) -> str: ...


L = TypeVar("L", bound=Located)

# (lat, lng) cell sizes in degrees: about 2.2 km square at 60°N for searches up to 100 km, and a
# coarse grid (about 55 km) for the rare far search (how far the nearest point is, for the trace).
_FINE: Final = (0.02, 0.04)
_COARSE: Final = (0.5, 1.0)
_FINE_UP_TO_KM: Final = 100.0
# Answers of ``PointIndex.nearest`` kept per index; positions come from postal areas, so they repeat.
NEAREST_CACHE_SIZE: Final = 8192
# Up to this many candidates within reach, measuring each beats walking the fine grid's cells.
FEW_POINTS: Final = 64


class _Grid(Generic[L]):
    """Placed points bucketed by cell; each entry is (lat, lng, point)."""

    def __init__(self, points: Sequence[L], size: tuple[float, float]) -> None:
        self.dlat, self.dlng = size
        self.cells: dict[tuple[int, int], list[tuple[float, float, L]]] = defaultdict(list)
        for p in points:
            assert p.lat is not None and p.lng is not None
            self.cells[self.cell(p.lat, p.lng)].append((p.lat, p.lng, p))

    def cell(self, lat: float, lng: float) -> tuple[int, int]:
        return math.floor(lat / self.dlat), math.floor(lng / self.dlng)

    def min_km(self, lat: float, lng: float, ci: int, cj: int) -> float:
        """A lower bound of the distance from (lat, lng) to any point of cell (ci, cj)."""
        lo, hi = ci * self.dlat, (ci + 1) * self.dlat
        west, east = cj * self.dlng, (cj + 1) * self.dlng
        dy = max(0.0, lo - lat, lat - hi) * _KM_PER_DEGREE
        dx_deg = max(0.0, west - lng, lng - east)
        if dx_deg == 0.0:
            return dy * 0.99
        # East-west degrees are shortest at the cell edge farthest from the equator.
        widest = min(89.99, max(abs(lo), abs(hi), abs(lat)))
        dx = dx_deg * _KM_PER_DEGREE * math.cos(math.radians(widest))
        return math.hypot(dx, dy) * 0.99  # 1 % slack: flat geometry against the sphere


class PointIndex(Generic[L]):
    """Points of one network in a grid, for "the nearest N within R km" queries.

    The search walks rings of cells outwards from the query's cell, skips every cell whose nearest
    edge is farther than R or than the N-th best distance so far, and stops once a whole ring is,
    so a dense city and an empty countryside both cost a few hundred distance computations at most;
    empty cells cost a dictionary look-up. The last ``NEAREST_CACHE_SIZE`` answers are kept: the
    index is immutable (a new import builds a new one), so an answer depends only on the query.
    Points without a position are kept apart (``unplaced``): no distance can be promised for them."""

    def __init__(self, points: Sequence[L]) -> None:
        placed = [p for p in points if p.lat is not None and p.lng is not None]
        self.unplaced: tuple[L, ...] = tuple(p for p in points if p.lat is None or p.lng is None)
        self.countries = frozenset(p.country for p in placed)
        self._fine = _Grid(placed, _FINE)
        self._coarse = _Grid(placed, _COARSE)
        self._districts: dict[tuple[str, str], list[L]] = defaultdict(list)
        for p in points:
            code = compact(p.postal_code)
            self._districts[p.country, code[: min_prefix_length(code, p.country)]].append(p)
        for members in self._districts.values():
            members.sort(key=lambda p: p.id)
        self._recent: dict[tuple[float, float, str, int, float], tuple[tuple[L, float], ...]] = {}

    def in_district(self, country: str, code: str) -> list[L]:
        """The points whose postal code shares compact ``code``'s district (its first
        ``min_prefix_length`` characters), in id order."""
        return list(self._districts.get((country, code[: min_prefix_length(code, country)]), ()))

    def nearest(
        self, lat: float, lng: float, *, country: str, limit: int, max_km: float
    ) -> list[tuple[L, float]]:
        """Up to ``limit`` points of ``country`` within ``max_km`` of (lat, lng), nearest first,
        each with its distance in km; ties by id, so equal inputs give equal answers."""
        if country not in self.countries:
            return []  # nothing to find: do not walk the grid
        key = (lat, lng, country, limit, max_km)
        hit = self._recent.get(key)
        if hit is not None:
            return list(hit)
        found = self._search(lat, lng, country, limit, max_km)
        if len(self._recent) >= NEAREST_CACHE_SIZE:
            self._recent.clear()  # recipients' positions are few (postal areas); stay bounded
        self._recent[key] = tuple(found)
        return found

    def _few_within(self, lat: float, lng: float, max_km: float) -> list[tuple[float, float, L]] | None:
        """Every point in the coarse cells that reach within ``max_km`` of (lat, lng), when they
        hold at most ``FEW_POINTS``; else None (the fine grid's ring walk is cheaper then)."""
        grid = self._coarse
        ci, cj = grid.cell(lat, lng)
        rows = math.ceil(max_km / _KM_PER_DEGREE / grid.dlat) + 1
        cos_far = max(math.cos(math.radians(min(89.99, abs(lat) + max_km / _KM_PER_DEGREE))), 1e-6)
        cols = min(math.ceil(max_km / (_KM_PER_DEGREE * cos_far) / grid.dlng) + 1, math.ceil(360 / grid.dlng))
        out: list[tuple[float, float, L]] = []
        for di in range(-rows, rows + 1):
            for dj in range(-cols, cols + 1):
                members = grid.cells.get((ci + di, cj + dj))
                if members and grid.min_km(lat, lng, ci + di, cj + dj) <= max_km:
                    out.extend(members)
                    if len(out) > FEW_POINTS:
                        return None
        return out

    def _search(
        self, lat: float, lng: float, country: str, limit: int, max_km: float
    ) -> list[tuple[L, float]]:
        few = self._few_within(lat, lng, max_km)
        if few is not None:  # the countryside: measure the handful of candidates, walk no empty cells
            found = sorted(
                (km, p.id, p)
                for plat, plng, p in few
                if p.country == country and (km := distance_km(lat, lng, plat, plng)) <= max_km
            )
            return [(p, km) for km, _, p in found[:limit]]
        grid = self._fine if max_km <= _FINE_UP_TO_KM else self._coarse
        cells = grid.cells
        best: list[tuple[float, str, L]] = []  # kept sorted, at most ``limit`` long
        worst = max_km
        ci, cj = grid.cell(lat, lng)
        reach_rows = math.ceil(max_km / _KM_PER_DEGREE / grid.dlat) + 1
        cos_far = max(math.cos(math.radians(min(89.99, abs(lat) + max_km / _KM_PER_DEGREE))), 1e-6)
        reach_cols = min(
            math.ceil(max_km / (_KM_PER_DEGREE * cos_far) / grid.dlng) + 1, math.ceil(360 / grid.dlng)
        )
        # Every cell of ring r is at least r - 1 whole cells away along one axis.
        cell_km = min(grid.dlat, grid.dlng * cos_far) * _KM_PER_DEGREE * 0.99
        for ring in range(max(reach_rows, reach_cols) + 1):
            if ring > 1 and (ring - 1) * cell_km > worst:
                break  # every cell of this ring is out of reach, so every farther ring is too
            for di, dj in _ring(ring, reach_rows, reach_cols):
                members = cells.get((ci + di, cj + dj))
                if not members or grid.min_km(lat, lng, ci + di, cj + dj) > worst:
                    continue
                for plat, plng, p in members:
                    if p.country != country:
                        continue
                    km = distance_km(lat, lng, plat, plng)
                    if km <= worst:
                        best.append((km, p.id, p))
                        best.sort(key=lambda item: (item[0], item[1]))
                        del best[limit:]
                        if len(best) == limit:
                            worst = best[-1][0]
        return [(p, km) for km, _, p in best]


def _ring(ring: int, rows: int, cols: int) -> Iterator[tuple[int, int]]:
    """Offsets of the cells at Chebyshev distance ``ring``, clipped to the search box."""
    if ring == 0:
        yield 0, 0
        return
    for di in range(-min(ring, rows), min(ring, rows) + 1):
        if abs(di) == ring:
            for dj in range(-min(ring, cols), min(ring, cols) + 1):
                yield di, dj
        elif ring <= cols:
            yield di, -ring
            yield di, ring


def inside(lat: float, lng: float, polygon: Sequence[tuple[float, float]]) -> bool:
    """Whether (lat, lng) lies inside ``polygon`` (vertices as (lat, lng), closed implicitly).

    Even-odd ray casting in plain degrees: exact for the small areas (islands, city zones) a
    catalog draws, not for polygons spanning the antimeridian or a pole."""
    result = False
    n = len(polygon)
    for i in range(n):
        (y1, x1), (y2, x2) = polygon[i], polygon[(i + 1) % n]
        if (y1 > lat) != (y2 > lat) and lng < (x2 - x1) * (lat - y1) / (y2 - y1) + x1:
            result = not result
    return result
