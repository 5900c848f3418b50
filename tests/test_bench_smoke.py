"""scripts/bench runs every workload end to end (a short run; its figures are not judged here)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_bench_quick_runs_every_workload_without_errors() -> None:
    """`bench --quick` runs every workload and baseline with zero errors and prints every verdict."""
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench.py"), "--quick", "--connections", "20"],
        capture_output=True, text=True, timeout=240, cwd=ROOT,
    )  # fmt: skip
    text = out.stdout
    assert out.returncode == 0, text + out.stderr
    runs = ("bare aiohttp, fixed (round 1)", "/shippingoptions fixed (round 1)",
            "bare aiohttp, varied (round 1)", "/shippingoptions varied (round 1)",
            "bare aiohttp, sessions (round 1)", "/shippingoptions sessions (round 1)",
            "/shippingoptions sessions paced", "raw asyncpg upserts (round 1)", "POST /shipment (round 1)",
            "POST /auth", "options, 20,000-point network (round 1)")  # fmt: skip
    for name in runs:
        line = next((ln for ln in text.splitlines() if ln.strip().startswith(name)), None)
        assert line is not None, f"no {name!r} run in:\n{text}"
        assert re.search(r"errors 0 ", line), line
    verdict = r"(PASS|MISS)"
    for summary in (
        rf"fixed +/shippingoptions vs bare aiohttp: .* median ratio \d+\.\d\d \(target >= 0\.50\) {verdict}",
        rf"varied +/shippingoptions vs bare aiohttp: .* median ratio \d+\.\d\d \(target >= 0\.30\) {verdict}",
        rf"sessions /shippingoptions vs bare aiohttp: .* \(target >= 0\.50\) {verdict}, answer cache hit rate \d+%",
        rf"sessions paced at \d+/s .* p99 \d+\.\d\d ms \(target < 10 ms\) {verdict}",
        rf"reservations POST /shipment vs raw asyncpg upserts: median ratio \d+\.\d\d \(target >= 0\.50\) {verdict}",
        r"lost reservations 0; synchronous_commit = on",
        rf"growth: decode per extra order line \d+\.\d\d us \(target <= 2 us\) {verdict}",
        r"1,000 order line\(s\) \d+",
        r"20,000 pickup points \(each postal code new\) \d+",
        r"100 options \(varied Swedish carts\) \d+",
        r"POST /auth: \d+ req/s",
        r"errors \(socket errors and unexpected statuses included\): 0\b",
    ):
        assert re.search(summary, text), f"missing {summary!r} in:\n{text}"
