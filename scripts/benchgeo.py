"""A realistic, seeded Swedish pickup-point network and postal-code table for scripts/bench.

Points and codes cluster around 40 towns in proportion to their population (Stockholm holds about a
fifth of them), spread over a few kilometres in cities and tens in the countryside, so nearest-N
queries meet both dense city grids and empty forest, as a real 20,000-point network does.
"""

from __future__ import annotations

import datetime
import math
import random
import time
from typing import Any

from benchlib import percentile

# (town, postal prefix, lat, lng, population in thousands)
TOWNS = [
    ("Stockholm", "11", 59.3326, 18.0649, 1000), ("Solna", "17", 59.3600, 18.0000, 80),
    ("Nacka", "13", 59.3100, 18.1640, 100), ("Huddinge", "14", 59.2370, 17.9810, 110),
    ("Södertälje", "15", 59.1955, 17.6253, 100), ("Uppsala", "75", 59.8586, 17.6389, 230),
    ("Västerås", "72", 59.6110, 16.5450, 150), ("Örebro", "70", 59.2740, 15.2130, 155),
    ("Linköping", "58", 58.4110, 15.6220, 165), ("Norrköping", "60", 58.5877, 16.1924, 145),
    ("Jönköping", "55", 57.7826, 14.1618, 140), ("Göteborg", "41", 57.7089, 11.9746, 600),
    ("Borås", "50", 57.7210, 12.9401, 115), ("Halmstad", "30", 56.6745, 12.8578, 100),
    ("Malmö", "21", 55.6050, 13.0038, 350), ("Lund", "22", 55.7047, 13.1910, 125),
    ("Helsingborg", "25", 56.0465, 12.6945, 150), ("Kristianstad", "29", 56.0294, 14.1567, 85),
    ("Växjö", "35", 56.8777, 14.8091, 95), ("Kalmar", "39", 56.6634, 16.3568, 70),
    ("Karlskrona", "37", 56.1612, 15.5869, 65), ("Visby", "62", 57.6348, 18.2948, 60),
    ("Karlstad", "65", 59.3793, 13.5036, 95), ("Falun", "79", 60.6065, 15.6355, 60),
    ("Gävle", "80", 60.6749, 17.1413, 105), ("Sundsvall", "85", 62.3908, 17.3069, 100),
    ("Östersund", "83", 63.1792, 14.6357, 65), ("Umeå", "90", 63.8258, 20.2630, 130),
    ("Skellefteå", "93", 64.7507, 20.9528, 75), ("Luleå", "97", 65.5848, 22.1547, 80),
    ("Kiruna", "98", 67.8558, 20.2253, 23), ("Eskilstuna", "63", 59.3666, 16.5077, 105),
    ("Trollhättan", "46", 58.2837, 12.2886, 60), ("Skövde", "54", 58.3912, 13.8451, 56),
    ("Uddevalla", "45", 58.3498, 11.9382, 57), ("Nyköping", "61", 58.7530, 17.0079, 57),
    ("Varberg", "43", 57.1056, 12.2508, 65), ("Mora", "79", 61.0070, 14.5430, 20),
    ("Hudiksvall", "82", 61.7290, 17.1036, 38), ("Örnsköldsvik", "89", 63.2909, 18.7153, 56),
]  # fmt: skip


def _spread(rng: random.Random, lat: float, lng: float, km: float) -> tuple[float, float]:
    dlat = rng.gauss(0, km) / 111.2
    dlng = rng.gauss(0, km) / (111.2 * math.cos(math.radians(lat)))
    return round(lat + dlat, 5), round(lng + dlng, 5)


def _pick(rng: random.Random) -> tuple[str, str, float, float, int]:
    return rng.choices(TOWNS, weights=[t[4] for t in TOWNS])[0]


def network_csv(points: int = 20000, seed: int = 20261130) -> bytes:
    """A pickup-point network in the import CSV format."""
    rng = random.Random(seed)
    lines = ["id,name,street_address,postal_code,city,country,lat,lng,hours_default,hours_sun"]
    for i in range(points):
        town, prefix, lat, lng, pop = _pick(rng)
        plat, plng = _spread(rng, lat, lng, 4 if pop > 300 else 12)
        code = f"{prefix}{rng.randint(0, 9)} {rng.randint(0, 99):02d}"
        lines.append(
            f"bp-{i:05d},Ombud {i},Storgatan {i % 90 + 1},{code},{town},SE,{plat},{plng},07:00-22:00,10:00-18:00"
        )
    return ("\n".join(lines) + "\n").encode()


def postal_rows(codes: int = 10000, seed: int = 7) -> list[tuple[str, str, float, float]]:
    """(country, compact code, lat, lng) rows like an imported GeoNames table, unique codes."""
    rng = random.Random(seed)
    out: dict[str, tuple[float, float]] = {}
    while len(out) < codes:
        _, prefix, lat, lng, pop = _pick(rng)
        code = f"{prefix}{rng.randint(0, 9)}{rng.randint(0, 99):02d}"
        out.setdefault(code, _spread(rng, lat, lng, 5 if pop > 300 else 15))
    return [("SE", code, lat, lng) for code, (lat, lng) in out.items()]


def unseen_codes(known: set[str], count: int, seed: int = 99) -> list[str]:
    """Distinct postal codes in the towns' areas that are not in ``known`` (display form)."""
    rng = random.Random(seed)
    found: list[str] = []
    while len(found) < count:
        _, prefix, *_ = _pick(rng)
        code = f"{prefix}{rng.randint(0, 9)}{rng.randint(0, 99):02d}"
        if code not in known and code not in found:
            found.append(code)
    return [f"{c[:3]} {c[3:]}" for c in found]


def nearest_timing(catalog: Any, option_id: str, codes: list[str]) -> dict[str, float]:
    """Time ``pickup_points`` (position lookup + nearest-N search) for each unseen code; µs."""
    from tms_server.catalog.conditions import Facts
    from tms_server.catalog.logistics import pickup_points

    option = catalog.option(option_id)
    samples, found = [], 0
    for code in codes:
        facts = Facts(currency="SEK", order_total=0, total_weight=None, line_weights=(), units=(),
                      order_tags=frozenset(), line_tags=frozenset(), weekday=0, clock=datetime.time(12, 0),
                      country="SE", postal_code=code)  # fmt: skip
        t = time.perf_counter()
        near = pickup_points(catalog, option, facts)
        samples.append((time.perf_counter() - t) * 1e6)
        found += bool(near.points)
    samples.sort()
    return {
        "p50": percentile(samples, 0.50),
        "p99": percentile(samples, 0.99),
        "max": samples[-1],
        "with_points": found / len(codes),
    }


def network_catalog_text() -> str:
    """The example catalog with its service-point option on the imported network ``bench-se``
    (its own point list, Kiruna's surcharge and its postal areas left out: positions come from
    ``postal_rows``)."""
    from tms_server.catalog import example_catalog_text

    text = (
        example_catalog_text()
        .replace('pickup_points = "postnord-se"', 'pickup_points = "bench-se"')
        .replace("locations = { pn-kiruna = 2000 }\n", "")
    )
    start = text.index("[postal_areas.SE]")
    return text[:start] + text[text.index("# ----", start) :]
