"""scripts/bench runs every scenario end to end (a short run; its figures are not judged here)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_bench_quick_runs_every_scenario_without_errors() -> None:
    """`bench --quick` runs every scenario and baseline with zero errors and prints every ratio."""
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench.py"), "--quick", "--connections", "20"],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    text = out.stdout
    assert out.returncode == 0, text + out.stderr
    runs = ("bare aiohttp, same bytes (round 1)", "/shippingoptions (round 1)", "/shippingoptions paced",
            "raw asyncpg upserts (round 1)", "POST /shipment (round 1)", "POST /auth")  # fmt: skip
    for name in runs:
        line = next((ln for ln in text.splitlines() if ln.strip().startswith(name)), None)
        assert line is not None, f"no {name!r} run in:\n{text}"
        assert re.search(r"errors 0 ", line), line
    for summary in (r"/shippingoptions vs bare aiohttp: .* median ratio \d+\.\d\d", r"paced at \d+/s .* p99",
                    r"POST /shipment vs raw asyncpg upserts: median ratio \d+\.\d\d", r"lost reservations 0\b",
                    r"POST /auth: \d+ req/s", r"errors \(socket errors and unexpected statuses included\): 0\b"):  # fmt: skip
        assert re.search(summary, text), f"missing {summary!r} in:\n{text}"
