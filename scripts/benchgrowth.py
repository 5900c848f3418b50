"""Growth of the cost of one /shippingoptions answer with the catalog, the network and the cart.

In process, one core, no HTTP and no answer cache: ``options_answer`` (decode, rules, encode) per
request, averaged over many requests. Three axes, each from a realistic base:

- options: the example catalog's 10 options cut to 5, or repeated (with new ids) to 20 and 100;
- pickup points: an imported network of 30, 3,000 or 20,000 points (``benchgeo``), every request
  from a postal code not asked before, so the nearest-point answers kept per index never help;
- order lines: 1, 100 or 1,000 physical lines.

And the decoder's cost per extra order line (target <= 2 us).
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime

import benchgeo
import orjson

from tms_server import fastwire, workload
from tms_server.catalog import Catalog, example_catalog_text, parse_catalog
from tms_server.geo import PostalPositions
from tms_server.geodata import build_network
from tms_server.geodata.files import read_points
from tms_server.web.options import options_answer

NOW = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)  # a Tuesday morning in Stockholm
_OPTION = re.compile(r"^\[\[options\]\]$", re.MULTILINE)


def catalog_with_options(count: int) -> str:
    """The example catalog with ``count`` options: its own, cut or repeated under new ids."""
    text = example_catalog_text()
    starts = [m.start() for m in _OPTION.finditer(text)]
    tail = text.index("# ----", starts[-1])
    blocks = [text[a:b] for a, b in zip(starts, [*starts[1:], tail], strict=True)]
    chosen = []
    for i in range(count):
        block = blocks[i % len(blocks)]
        if i >= len(blocks):
            block = re.sub(r'^id = "([^"]+)"', rf'id = "\1-{i}"', block, count=1, flags=re.MULTILINE)
            block = re.sub(r"^preselected = true\n", "", block, count=1, flags=re.MULTILINE)
        chosen.append(block)
    return text[: starts[0]] + "".join(chosen) + text[tail:]


def _per_request_us(catalog: Catalog, bodies: list[bytes], repeat: int = 1) -> float:
    for raw in bodies[:20]:
        options_answer(catalog, raw, NOW)
    start = time.perf_counter()
    for _ in range(repeat):
        for raw in bodies:
            options_answer(catalog, raw, NOW)
    return (time.perf_counter() - start) / (len(bodies) * repeat) * 1e6


def _se_bodies(count: int, seed: int, codes: list[str] | None = None) -> list[bytes]:
    rng = random.Random(seed)
    out: list[bytes] = []
    while len(out) < count:
        body = workload.shipping_options_body(rng)
        if body["recipient"]["country"] != "SE" or "postal_code" not in body["recipient"]:
            continue
        body["currency"] = "SEK"
        if codes is not None:
            body["recipient"]["postal_code"] = codes[len(out) % len(codes)]
        out.append(orjson.dumps(body))
    return out


def _with_lines(count: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    out = []
    for _ in range(20 if count >= 1000 else 200):
        body = workload.shipping_options_body(rng)
        body["currency"], body["recipient"] = "SEK", {"country": "SE", "postal_code": "111 34"}
        line = {"reference": "sku", "quantity": 1, "type": "physical", "unit_price": 9900, "tax_rate": 2500,
                "total_price_including_tax": 9900, "total_tax_amount": 1980,
                "attributes": {"weight": 40, "dimensions": {"height": 30, "width": 40, "length": 50}}}  # fmt: skip
        body["order"]["lines"] = [{**line, "reference": f"sku-{i}"} for i in range(count)]
        body["order"]["total_amount"] = 9900 * count
        body["order"].pop("total_weight", None)
        out.append(orjson.dumps(body))
    return out


def _network_catalog(points: int) -> tuple[Catalog, list[str]]:
    rows = benchgeo.postal_rows(10000)
    text = benchgeo.network_catalog_text()
    built = build_network("bench-se", "", read_points(benchgeo.network_csv(points)))
    catalog = parse_catalog(text).bound(
        {"bench-se": (built.locations, built.index)}, PostalPositions(rows, "bench postal areas")
    )
    codes = [f"{code[:3]} {code[3:]}" for _, code, _, _ in rows]
    random.Random(points).shuffle(codes)
    return catalog, codes


def decode_per_line_us() -> float:
    """fastwire's cost of one more order line: (1,000 lines - 1 line) / 999."""
    one, many = _with_lines(1, 1)[0], _with_lines(1000, 1)[0]

    def best(raw: bytes, reps: int) -> float:
        runs = []
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(reps):
                fastwire.decode(raw)
            runs.append((time.perf_counter() - start) / reps * 1e6)
        return min(runs)

    return (best(many, 20) - best(one, 2000)) / 999


def table(log: Callable[[str], None] = print) -> dict[str, float]:
    """Every row of the growth table, in us per request; prints each as it is measured."""
    rows: dict[str, float] = {}

    def row(name: str, value: float) -> None:
        rows[name] = value
        log(f"  {name:<44} {value:8.1f} us per request")

    varied = _se_bodies(600, 41)
    for n in (5, 20, 100):
        row(
            f"{n} options (varied Swedish carts)",
            _per_request_us(parse_catalog(catalog_with_options(n)), varied),
        )
    for n in (30, 3000, 20000):
        catalog, codes = _network_catalog(n)
        row(
            f"{n:,} pickup points (each postal code new)",
            _per_request_us(catalog, _se_bodies(2000, 42, codes)),
        )
    example = parse_catalog(example_catalog_text())
    for n in (1, 100, 1000):
        row(f"{n:,} order line(s)", _per_request_us(example, _with_lines(n, 43)))
    per_line = decode_per_line_us()
    rows["decode per extra line"] = per_line
    log(f"  {'decode, per extra order line':<44} {per_line:8.2f} us (target <= 2 us)")
    return rows


if __name__ == "__main__":
    import json
    import sys

    # ``--json``: the rows as JSON on the last line (scripts/bench runs this in a fresh process, so
    # the load runs' allocations do not make the garbage collector slower here).
    rows = table()
    if "--json" in sys.argv:
        print(json.dumps(rows))
