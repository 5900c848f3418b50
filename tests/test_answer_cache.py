"""The /shippingoptions answer cache: keyed by catalog, minute and body; bounded; never stale."""

from __future__ import annotations

import re
from typing import Any

import orjson

from tests.conftest import token_for
from tests.kss import options_request
from tms_server.catalog import example_catalog_text, parse_catalog
from tms_server.web.options import AnswerCache


def test_keys_on_catalog_minute_and_body() -> None:
    a, b = parse_catalog(example_catalog_text()), parse_catalog(example_catalog_text())
    cache = AnswerCache(1 << 20)
    assert cache.get(a, 100, b"{1}") is None
    cache.put(a, 100, b"{1}", "s1", b"answer-1")
    assert cache.get(a, 100, b"{1}") == ("s1", b"answer-1")
    assert cache.get(b, 100, b"{1}") is None  # another catalog (a reload), same body
    assert cache.get(a, 100, b"{1} ") is None  # another body
    assert cache.get(a, 101, b"{1}") is None  # the next minute drops the previous one's answers
    assert len(cache) == 0
    cache.put(a, 100, b"{1}", "s1", b"late")  # an answer computed in a minute now past: not kept
    assert len(cache) == 0


def test_stays_within_its_memory_bound_oldest_out_first() -> None:
    catalog = parse_catalog(example_catalog_text())
    cache = AnswerCache(50_000)
    cache.get(catalog, 1, b"")
    for i in range(1000):
        cache.put(catalog, 1, b"body-%d" % i, "s", b"x" * 500)
        assert cache.size <= cache.max_bytes
    assert 0 < len(cache) < 1000
    assert cache.get(catalog, 1, b"body-999") is not None
    assert cache.get(catalog, 1, b"body-0") is None
    cache.put(catalog, 1, b"huge", "s", b"x" * (AnswerCache.LARGEST + 1))
    assert cache.get(catalog, 1, b"huge") is None


def _hits(metrics: str, result: str) -> float:
    found = re.search(rf'tms_options_cache_lookups_total\{{result="{result}"\}} (\S+)', metrics)
    return float(found.group(1)) if found else 0.0


async def test_a_repeated_body_is_answered_from_the_cache_with_the_same_bytes(
    client: Any, make_merchant: Any
) -> None:
    m = await make_merchant("shop-a")
    headers = {"Authorization": f"Bearer {await token_for(client, m)}", "Content-Type": "application/json"}
    body = orjson.dumps(options_request())
    first = await client.post("/shippingoptions", data=body, headers=headers)
    again = await client.post("/shippingoptions", data=body, headers=headers)
    assert first.status == again.status == 200
    assert await first.read() == await again.read()
    assert again.headers["Content-Type"].startswith("application/json")
    metrics = await (await client.get("/metrics")).text()
    assert _hits(metrics, "hit") >= 1 and _hits(metrics, "miss") >= 1
    # Another body (one byte more) is computed, not served from the cache.
    other = await client.post("/shippingoptions", data=body + b" ", headers=headers)
    assert await other.read() == await first.read()
    metrics = await (await client.get("/metrics")).text()
    assert _hits(metrics, "miss") >= 2
