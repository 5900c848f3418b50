"""Golden answers: 10,500 generated requests at fixed clocks, answers and explain traces pinned.

Every ``/shippingoptions`` body from ``tms_server.workload`` (varied carts and addresses, checkout
sessions, malformed bodies) goes through ``options_answer`` (what the server serves) and
``explain`` (what ``tms-admin catalog explain`` prints) at one of eight fixed clocks; a digest of
each answer's bytes and trace is compared with ``fixtures/golden/shippingoptions.txt``. A speed-up
must not change one byte. When semantics change on purpose, re-record in a commit of its own:
``TMS_GOLDEN_RECORD=1 scripts/test tests/test_golden.py``.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from tms_server import wire, workload
from tms_server.catalog import example_catalog_text, explain, format_explanation, parse_catalog
from tms_server.catalog.engine import evaluate_option, evaluate_options
from tms_server.web.options import options_answer

GOLDEN = Path(__file__).parent / "fixtures" / "golden" / "shippingoptions.txt"

# Stockholm local: a Monday morning, just before and after the 14:00 cutoff, a Friday evening, a
# Saturday, a Sunday night, Christmas Eve, New Year's Eve night, and midsummer (summer time).
CLOCKS = (
    datetime(2026, 11, 30, 7, 0, tzinfo=UTC),
    datetime(2026, 12, 1, 12, 59, 30, tzinfo=UTC),
    datetime(2026, 12, 1, 13, 0, 5, tzinfo=UTC),
    datetime(2026, 12, 4, 17, 45, tzinfo=UTC),
    datetime(2026, 12, 5, 10, 0, tzinfo=UTC),
    datetime(2026, 12, 6, 21, 30, tzinfo=UTC),
    datetime(2026, 12, 24, 8, 0, tzinfo=UTC),
    datetime(2027, 6, 18, 11, 15, tzinfo=UTC),
)


def _bodies() -> list[bytes]:
    return [
        *workload.varied(seed=11, count=7000),
        *workload.sessions(seed=12, count=2500),
        *workload.malformed(seed=13, count=1000),
    ]


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=10).hexdigest()


def _record(raw: bytes, now: datetime, catalog: object) -> str:
    try:
        req, answer = options_answer(catalog, raw, now)  # type: ignore[arg-type]
    except wire.WireError as exc:
        return f"400 {_digest(str(exc).encode())} -"
    trace = format_explanation(explain(catalog, req, now=now))  # type: ignore[arg-type]
    return f"200 {_digest(answer)} {_digest(trace.encode())}"


def test_answers_and_traces_match_the_recorded_ones() -> None:
    catalog = parse_catalog(example_catalog_text())
    bodies = _bodies()
    assert len(bodies) >= 10_000
    got = [
        f"{i} {_record(raw, now, catalog)}"
        for i, (raw, now) in enumerate(zip(bodies, itertools.cycle(CLOCKS), strict=False))
    ]
    if os.environ.get("TMS_GOLDEN_RECORD") == "1":
        GOLDEN.write_text("\n".join(got) + "\n")
    want = GOLDEN.read_text().splitlines()
    assert len(want) == len(got)
    differ = [i for i, (a, b) in enumerate(zip(got, want, strict=True)) if a != b]
    if differ:
        i = differ[0]
        now = CLOCKS[i % len(CLOCKS)]
        req = orjson.loads(bodies[i]) if bodies[i].startswith(b"{") else bodies[i]
        try:
            answer = options_answer(catalog, bodies[i], now)[1].decode()
        except wire.WireError as exc:
            answer = f"WireError: {exc}"
        raise AssertionError(
            f"{len(differ)} of {len(got)} answers changed; first: #{i} at {now:%Y-%m-%d %H:%M:%S} UTC\n"
            f"recorded {want[i]}\nnow      {got[i]}\nrequest {orjson.dumps(req).decode()}\nanswer  {answer}"
        )
    kinds = {line.split()[1] for line in want}
    assert kinds == {"200", "400"}


def test_an_answer_holds_for_its_whole_minute() -> None:
    """What ``AnswerCache`` keys on: the first and the last microsecond of a UTC minute give the
    same answer (every clock in a catalog is a whole local minute), across a week of minutes with
    the cutoff minutes over-represented."""
    catalog = parse_catalog(example_catalog_text())
    rng = random.Random(7)
    start = datetime(2026, 11, 30, 0, 0, tzinfo=UTC)
    bodies = list(workload.varied(seed=21, count=3000))
    for i, raw in enumerate(bodies):
        if i % 3 == 0:  # around the local cutoffs (13:00-15:00 UTC is 14:00-16:00 in Stockholm)
            minute = start + timedelta(days=rng.randrange(7), hours=12, minutes=rng.randrange(180))
        else:
            minute = start + timedelta(minutes=rng.randrange(7 * 24 * 60))
        first = options_answer(catalog, raw, minute)[1]
        last = options_answer(catalog, raw, minute + timedelta(seconds=59, microseconds=999_999))[1]
        assert first == last, f"#{i} at {minute:%Y-%m-%d %H:%M} UTC"


def test_one_option_is_judged_as_among_all() -> None:
    """``evaluate_option`` (reservations check one option) decides as ``evaluate_options`` does for
    every option of the catalog, the fallback's hiding included."""
    catalog = parse_catalog(example_catalog_text())
    for i, raw in enumerate(workload.varied(seed=22, count=1500)):
        now = CLOCKS[i % len(CLOCKS)]
        req = wire.parse(orjson.loads(raw), wire.ShippingOptionsRequest)
        _facts, outcomes = evaluate_options(catalog, req, now)
        for expected in outcomes:
            got = evaluate_option(catalog, req, expected.option.id, now)[1]
            assert got == expected, f"#{i} {expected.option.id}"
    assert evaluate_option(catalog, req, "no-such-option", now)[1] is None
