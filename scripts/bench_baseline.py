"""Baselines for scripts/bench, each run in its own process so it can get the server's core.

``bench_baseline.py http PORT ANSWERS_DIR [WORKERS]``: a bare aiohttp server answering
POST /shippingoptions/NAME with the fixed bytes of ANSWERS_DIR/NAME.json, and POST /shippingoptions
with fixed.json (the ceiling for the options workloads: one request, one body read, one answer).

``bench_baseline.py upserts DSN SECONDS CONNECTIONS POOL``: raw asyncpg upserts of a row the server
stored, with fresh session ids, into a copy of the shipments table; prints the result as JSON.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import socket
import sys
import time
import uuid
from pathlib import Path

import asyncpg
from aiohttp import web

COLUMNS = ("merchant_id", "session_id", "option_id", "carrier", "carrier_product", "selection", "request",
           "recipient", "price", "currency")  # fmt: skip


def serve(sock: socket.socket, answers: dict[str, bytes]) -> None:
    """One process of the bare aiohttp baseline."""

    async def handler(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(
            body=answers[request.match_info.get("name", "fixed")], content_type="application/json"
        )

    app = web.Application()
    app.router.add_post("/shippingoptions", handler)
    app.router.add_post("/shippingoptions/{name}", handler)
    app.router.add_get("/healthz", lambda r: web.Response(text="ok"))
    web.run_app(app, sock=sock, print=None, access_log=None)


def http(port: int, answers_dir: str, workers: int) -> None:
    answers = {f.stem: f.read_bytes() for f in Path(answers_dir).glob("*.json")}
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(1024)
    procs = [
        multiprocessing.Process(target=serve, args=(sock, answers), daemon=True) for _ in range(workers - 1)
    ]
    for p in procs:
        p.start()
    serve(sock, answers)


async def upserts(dsn: str, seconds: float, connections: int, pool_size: int) -> dict[str, float]:
    conn = await asyncpg.connect(dsn)
    await conn.execute("DROP TABLE IF EXISTS bench_upserts")
    await conn.execute(
        "CREATE TABLE bench_upserts (LIKE shipments INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES)"
    )
    # The row as the server stored it (jsonb as text: the same bytes on the wire as the server sends).
    row = await conn.fetchrow(f"SELECT {', '.join(c + '::text' for c in COLUMNS)} FROM shipments LIMIT 1")  # noqa: S608
    await conn.close()
    casts = ("bigint", "text", "text", "text", "jsonb", "jsonb", "jsonb", "jsonb", "bigint", "text")
    values = [row[i] for i in range(len(COLUMNS))]
    values[0], values[8] = int(values[0]), int(values[8])
    params = ", ".join(f"${i + 1}::{t}" for i, t in enumerate(casts))
    sql = (
        f"INSERT INTO bench_upserts ({', '.join(COLUMNS)}) VALUES ({params}) "  # noqa: S608  # constants only
        "ON CONFLICT (merchant_id, session_id) DO UPDATE SET updated_at = now() RETURNING id"
    )
    pool = await asyncpg.create_pool(dsn, min_size=pool_size, max_size=pool_size)
    latencies: list[float] = []
    start = time.perf_counter()
    stop_at = start + seconds

    async def worker() -> None:
        vals = list(values)
        while time.perf_counter() < stop_at:
            t = time.perf_counter()
            vals[1] = str(uuid.uuid4())
            await pool.fetchval(sql, *vals)
            latencies.append(time.perf_counter() - t)

    await asyncio.gather(*(worker() for _ in range(connections)))
    elapsed = time.perf_counter() - start
    await pool.close()
    conn = await asyncpg.connect(dsn)
    rows = await conn.fetchval("SELECT count(*) FROM bench_upserts")
    await conn.execute("DROP TABLE bench_upserts")
    await conn.close()
    latencies.sort()
    n = len(latencies)
    return {"requests": n, "seconds": elapsed, "rows": rows, "p50_ms": latencies[n // 2] * 1000,
            "p99_ms": latencies[min(n - 1, int(n * 0.99))] * 1000}  # fmt: skip


def main() -> None:
    """Dispatch on the first argument; see the module docstring."""
    if sys.argv[1] == "http":
        http(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]) if len(sys.argv) > 4 else 1)
    else:
        dsn, seconds, conns, pool = sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
        print(json.dumps(asyncio.run(upserts(dsn, seconds, conns, pool))))


if __name__ == "__main__":
    main()
