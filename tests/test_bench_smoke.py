"""scripts/bench runs every scenario end to end (a short run; its figures are not judged here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_bench_quick_runs_every_scenario_without_errors() -> None:
    """`bench --quick` measures options (saturated and paced), reservations and auth, with no errors
    and no lost reservations, and prints the ratios against its baselines."""
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench.py"), "--quick", "--connections", "20"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    text = out.stdout
    for line in ("/shippingoptions vs bare aiohttp: median ratio", "paced at", "POST /shipment vs raw asyncpg",
                 "lost reservations 0", "POST /auth:", "errors: 0"):  # fmt: skip
        assert line in text, f"missing {line!r} in:\n{text}"
