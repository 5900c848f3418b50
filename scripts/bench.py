"""scripts/bench: measure tms_server against baselines measured in the same run, and print ratios.

Scenarios, each against its own baseline in interleaved rounds (the median ratio is reported):

- ``/shippingoptions`` with a realistic request (10 order lines; the example catalog's 30 pickup
  points), saturated, vs. a bare aiohttp handler returning the same response bytes; then paced at a
  quarter of the baseline's rate for latency (target p99 < 10 ms at 50 connections).
- ``POST /shipment``, a new session per request, vs. raw asyncpg upserts of the same row; the rows
  are counted afterwards (every 201 must have its row).
- ``POST /auth`` throughput (a fresh nonce per request).

Requests rotate through 1000 variants (session id, order id and total differ), so a cache keyed on
the body would not make the figures. The server and the baselines get core 0, the load generator
(wrk when installed, else the bundled asyncio client) core 1; paced runs always use the bundled
client, which measures from the scheduled send time. Exit status 1 only when something broke
(errors, lost reservations); missed targets are reported, not failed.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import hashlib
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchgeo
from benchlib import SEQ, Result, median, request_bytes, run_load, run_wrk, wrk_available

from tms_server import catalog_store, merchants
from tms_server.catalog import example_catalog_text, parse_catalog
from tms_server.db.embedded import EmbeddedPostgres
from tms_server.geo import PostalPositions
from tms_server.geodata import build_network
from tms_server.geodata import store as geo_store
from tms_server.geodata.files import PostalRow, read_points

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
VARIANTS = 1000
SERVER_CPU, LOAD_CPU = 0, 1


class Process:
    """A child process with its output in a file, stopped with SIGTERM (then SIGKILL)."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        with log.open("wb") as fh:
            self.proc = subprocess.Popen(args, env=env, stdout=fh, stderr=fh)
        self.log = log

    def wait_http(self, url: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"bench: process exited early:\n{self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(url, timeout=1):  # noqa: S310  # our own loopback URL
                    return
            except OSError:
                time.sleep(0.1)
        raise SystemExit(f"bench: {url} did not answer within {timeout:.0f} s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pin(pid: int, cpu: int | None) -> None:
    """Give the server its core and the load generator the other (where the OS allows it)."""
    if cpu is not None and hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        try:
            os.sched_setaffinity(pid, {cpu})
        except OSError:
            pass


def post(url: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> bytes:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",  # noqa: S310
                                 headers={"Content-Type": "application/json", **(headers or {})})  # fmt: skip
    with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310  # our own loopback URL
        return bytes(resp.read())


def realistic_request(variant: int = 0) -> dict[str, Any]:
    """The reference request with 10 order lines of plausible sizes; variants differ in session,
    order id and order total (within one price bracket, so every variant gets the same options)."""
    body: dict[str, Any] = json.loads((ROOT / "tests/fixtures/kss_shippingoptions_request.json").read_text())
    template = body["order"]["lines"][0]
    lines = []
    for i in range(10):
        line = copy.deepcopy(template)
        line["reference"] = f"sku-{1000 + i}"
        line["quantity"] = 1 + i % 3
        line["attributes"] = {"weight": 150 + 90 * i, "dimensions": {"height": 100, "width": 200, "length": 300},
                              "tags": ["member"] if i % 4 == 0 else []}  # fmt: skip
        lines.append(line)
    body["order"]["lines"] = lines
    body["order"]["id"] = f"order-{variant}"
    body["order"]["total_weight"] = sum(ln["attributes"]["weight"] * ln["quantity"] for ln in lines)
    body["order"]["total_amount"] = 45900 + variant % 500
    body["session_id"] = str(uuid.UUID(int=variant + 1))
    return body


def auth_body(key: str, nonce: str) -> dict[str, Any]:
    digest = hashlib.sha256((nonce + key).encode()).hexdigest()
    return {"identifier": "demo-merchant", "secret": {"nonce": nonce, "digest": digest}}


def shipment_body(options_body: dict[str, Any], option: dict[str, Any]) -> bytes:
    """A reservation of ``option``, its session id left as ``@SEQ@`` for the load generator to fill."""
    body = copy.deepcopy(options_body)
    body.pop("geoblocking", None)
    body.pop("selected_shipping_option_id", None)
    body["session_id"] = SEQ.decode()
    body["selected_shipping_option"] = {
        k: option[k] for k in ("id", "carrier", "class", "type", "price", "tax_rate")
    }
    if option.get("locations"):
        loc = option["locations"][0]
        body["selected_shipping_option"]["location"] = {"id": loc["id"], "name": loc["name"]}
    return json.dumps(body).encode()


def show(res: Result, baseline: Result | None = None, extra: str = "") -> None:
    ratio = f"{res.rps / baseline.rps:5.2f}" if baseline and baseline.rps else "    -"
    p50 = f"{res.p50_ms:7.2f}" if res.p50_ms is not None else "      -"
    p99 = f"{res.p99_ms:7.2f}" if res.p99_ms is not None else "      -"
    if res.missed:
        extra += f"  never sent (overload): {res.missed}"
    print(f"  {res.name:<40} {res.rps:8.0f} req/s  p50 {p50} ms  p99 {p99} ms  errors {res.errors:<3} "
          f"ratio {ratio}  [{res.tool}]{extra}", flush=True)  # fmt: skip


class Bench:
    """One run: the server, the baselines, and the scenarios."""

    def __init__(self, args: argparse.Namespace, tmp: Path) -> None:
        self.args, self.tmp = args, tmp
        self.pinned = args.workers == 1
        self.use_wrk = wrk_available() and not args.no_wrk
        self.port, self.base_port = free_port(), free_port()
        self.children: list[Process] = []
        self.key = self.token = self.dsn = ""

    def start(self) -> None:
        env = {**os.environ, "TMS_DATA_DIR": str(self.tmp / "data"), "TMS_PORT": str(self.port),
               "TMS_LOG_LEVEL": "WARNING", "TMS_LOG_FORMAT": "json", "TMS_SWEEP_INTERVAL": "3600",
               "TMS_WORKERS": str(self.args.workers)}  # fmt: skip
        server = Process([str(VENV_BIN / "tms-server"), "--migrate", "--demo"], env, self.tmp / "server.log")
        self.children.append(server)
        server.wait_http(f"http://127.0.0.1:{self.port}/healthz")
        self.key = next(ln.split()[-1] for ln in server.log.read_text().splitlines() if "key:" in ln)
        self.dsn = EmbeddedPostgres(self.tmp / "data").dsn()
        pin(server.proc.pid, SERVER_CPU if self.pinned else None)
        answer = post(f"http://127.0.0.1:{self.port}/auth", auth_body(self.key, uuid.uuid4().hex))
        self.token = json.loads(answer)["token"]

    def start_baseline(self, answer: bytes) -> None:
        (self.tmp / "answer.json").write_bytes(answer)
        args = [sys.executable, str(ROOT / "scripts/bench_baseline.py"), "http", str(self.base_port),
                str(self.tmp / "answer.json"), str(self.args.workers)]  # fmt: skip
        base = Process(args, dict(os.environ), self.tmp / "baseline.log")
        self.children.append(base)
        base.wait_http(f"http://127.0.0.1:{self.base_port}/healthz")
        pin(base.proc.pid, SERVER_CPU if self.pinned else None)

    def stop(self) -> None:
        for child in reversed(self.children):
            child.stop()

    @property
    def bearer(self) -> dict[str, str]:
        return {"Content-Type": "application/json", "Authorization": f"Bearer {self.token}"}

    async def load(self, name: str, port: int, path: str, headers: dict[str, str], bodies: list[bytes], *,
                   expect: int = 200, tag: str = "", rate: float | None = None) -> Result:  # fmt: skip
        """One run: wrk when installed (saturated runs), else (and when paced) the bundled client."""
        a = self.args
        if self.use_wrk and rate is None:
            url = f"http://127.0.0.1:{port}{path}"
            return run_wrk(
                name, url, headers, bodies, connections=a.connections, duration=a.duration, tag=tag
            )
        prefix, suffix = zip(*(b.split(SEQ, 1) if SEQ in b else (b, b"") for b in bodies), strict=True)
        if tag:
            make: Callable[[int], bytes] = lambda i: request_bytes(  # noqa: E731
                "POST",
                path,
                prefix[i % len(bodies)] + f"{tag}{i}".encode() + suffix[i % len(bodies)],
                headers,
            )
        else:
            raw = [request_bytes("POST", path, b, headers) for b in bodies]
            make = lambda i: raw[i % len(raw)]  # noqa: E731
        duration = a.duration * 2 if rate else a.duration
        return await run_load(
            name, port, make, connections=a.connections, duration=duration, rate=rate, expect=expect
        )

    async def options(self, bodies: list[bytes]) -> dict[str, Any]:
        base_runs, server_runs = [], []
        for r in range(self.args.rounds):
            base = await self.load(f"bare aiohttp, same bytes (round {r + 1})", self.base_port,
                                   "/shippingoptions", self.bearer, bodies)  # fmt: skip
            show(base)
            res = await self.load(f"/shippingoptions (round {r + 1})", self.port, "/shippingoptions",
                                  self.bearer, bodies)  # fmt: skip
            show(res, base)
            base_runs.append(base)
            server_runs.append(res)
        rate = median([b.rps for b in base_runs]) / 4
        paced = await self.load(f"/shippingoptions paced {rate:.0f}/s", self.port, "/shippingoptions",
                                self.bearer, bodies, rate=rate)  # fmt: skip
        show(paced)
        # The target's rate may exceed what the server sustains; at half its own throughput the
        # latency says what a shopper sees on a busy but not overloaded server.
        own_rate = median([s.rps for s in server_runs]) / 2
        own = await self.load(f"/shippingoptions paced {own_rate:.0f}/s", self.port, "/shippingoptions",
                              self.bearer, bodies, rate=own_rate)  # fmt: skip
        show(own)
        return {
            "ratio": median([s.rps / b.rps for s, b in zip(server_runs, base_runs, strict=True)]),
            "server": median([s.rps for s in server_runs]), "baseline": median([b.rps for b in base_runs]),
            "paced": paced, "own": own, "rate": rate, "own_rate": own_rate,
            "errors": sum(x.errors for x in (*base_runs, *server_runs, paced, own)),
        }  # fmt: skip

    def upsert_baseline(self, name: str) -> Result:
        pool = os.environ.get("TMS_POOL_MAX", "10")
        cmd = [sys.executable, str(ROOT / "scripts/bench_baseline.py"), "upserts", self.dsn,
               str(self.args.duration), str(self.args.connections), pool]  # fmt: skip
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        pin(proc.pid, SERVER_CPU if self.pinned else None)
        out, _ = proc.communicate(timeout=self.args.duration + 60)
        if proc.returncode:
            raise SystemExit("bench: the asyncpg baseline failed")
        data = json.loads(out)
        res = Result(name, requests=data["requests"], seconds=data["seconds"], p50_ms=data["p50_ms"],
                     p99_ms=data["p99_ms"], tool="asyncpg")  # fmt: skip
        res.errors = data["requests"] - data["rows"]
        return res

    async def shipments(self, body: bytes) -> dict[str, Any]:
        conn = await asyncpg.connect(self.dsn)
        ratios, lost_total, errors = [], 0, 0
        try:
            for r in range(self.args.rounds):
                tag = f"bench-{uuid.uuid4().hex[:8]}-"
                res = await self.load(f"POST /shipment (round {r + 1})", self.port, "/shipment", self.bearer,
                                      [body], expect=201, tag=tag)  # fmt: skip
                rows = await conn.fetchval(
                    "SELECT count(*) FROM shipments WHERE session_id LIKE $1", tag + "%"
                )
                acked = res.requests - res.errors
                lost = max(0, acked - rows)
                base = self.upsert_baseline(f"raw asyncpg upserts (round {r + 1})")
                show(base)
                show(res, base, f"  acked {acked}, rows {rows}, lost {lost}")
                ratios.append(res.rps / base.rps)
                lost_total += lost
                errors += res.errors + base.errors
        finally:
            await conn.close()
        return {"ratio": median(ratios), "lost": lost_total, "errors": errors}

    async def pickup_network(self, requests: list[dict[str, Any]]) -> dict[str, Any]:
        """A 20,000-point imported network: nearest-N for unseen postal codes (in process), and
        /shippingoptions with it against the example catalog's 30 inline points (same requests)."""
        network = benchgeo.network_csv(20000)
        rows = benchgeo.postal_rows(10000)
        text = (
            example_catalog_text()
            .replace('pickup_points = "postnord-se"', 'pickup_points = "bench-se"')
            .replace("locations = { pn-kiruna = 2000 }\n", "")
        )
        text = (
            text[: text.index("[postal_areas.SE]")]
            + text[text.index("# ----", text.index("[postal_areas.SE]")) :]
        )
        points = read_points(network)
        conn = await asyncpg.connect(self.dsn)
        try:
            await geo_store.import_network(conn, "bench-se", points, source="bench", imported_by="bench")
            postal = [PostalRow(c, code, "", lat, lng, None) for c, code, lat, lng in rows]
            await geo_store.import_postal_areas(conn, postal, source="bench", imported_by="bench")
            key = merchants.generate_key()
            await merchants.add(conn, "bench-network", key)
            await catalog_store.load(conn, "bench-network", text, loaded_by="bench")
        finally:
            await conn.close()
        built = build_network("bench-se", "", points)
        catalog = parse_catalog(text).bound(
            {"bench-se": (built.locations, built.index)}, PostalPositions(rows, "bench postal areas")
        )
        timing = benchgeo.nearest_timing(
            catalog, "postnord-service-point", benchgeo.unseen_codes({r[1] for r in rows}, 2000)
        )
        print(f"  nearest 5 of 20,000 points within 50 km, 2,000 unseen postal codes: p50 {timing['p50']:.0f} us, "
              f"p99 {timing['p99']:.0f} us, max {timing['max']:.0f} us ({timing['with_points']:.0%} found points)")  # fmt: skip
        answer = post(f"http://127.0.0.1:{self.port}/auth", {"identifier": "bench-network", "secret": {
            "nonce": (nonce := uuid.uuid4().hex), "digest": hashlib.sha256((nonce + key).encode()).hexdigest()}})  # fmt: skip
        other = {**self.bearer, "Authorization": f"Bearer {json.loads(answer)['token']}"}
        codes = [f"{code[:3]} {code[3:]}" for _, code, _, _ in rows if code.startswith("1")]
        bodies = []
        for i, req in enumerate(requests):
            varied = copy.deepcopy(req)
            varied["recipient"]["postal_code"] = codes[i % len(codes)]
            bodies.append(json.dumps(varied).encode())
        for _ in range(150):  # the server picks the import up at its next refresh (2 s by default)
            sample = json.loads(post(f"http://127.0.0.1:{self.port}/shippingoptions", requests[0], other))
            if any(
                loc["id"].startswith("bp-")
                for o in sample["shipping_options"]
                for loc in o.get("locations", [])
            ):
                break
            await asyncio.sleep(0.2)
        else:
            raise SystemExit("bench: the server did not pick up the imported network within 30 s")
        ratios, errors = [], 0
        for r in range(self.args.rounds):
            small = await self.load(f"options, 30 inline points (round {r + 1})", self.port, "/shippingoptions",
                                    self.bearer, bodies)  # fmt: skip
            show(small)
            big = await self.load(f"options, 20,000-point network (round {r + 1})", self.port, "/shippingoptions",
                                  other, bodies)  # fmt: skip
            show(big, small)
            ratios.append(big.rps / small.rps if small.rps else 0.0)
            errors += small.errors + big.errors
        return {"timing": timing, "ratio": median(ratios), "errors": errors}

    async def auth(self) -> Result:
        prefix = uuid.uuid4().hex[:8]
        count = int(self.args.duration * 20000) if self.use_wrk else 0
        bodies = [json.dumps(auth_body(self.key, f"{prefix}-{i}")).encode() for i in range(count)]
        if not bodies:  # bundled client: a fresh nonce per request, made when it is sent
            hdrs = {"Content-Type": "application/json"}
            res = await run_load("POST /auth", self.port,
                                 lambda i: request_bytes("POST", "/auth", json.dumps(auth_body(self.key, f"{prefix}-{i}")).encode(), hdrs),
                                 connections=self.args.connections, duration=self.args.duration, expect=201)  # fmt: skip
        else:
            res = await self.load("POST /auth", self.port, "/auth", {"Content-Type": "application/json"}, bodies,
                                  expect=201)  # fmt: skip
        show(res)
        return res


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{platform.node()}, {os.cpu_count()} cores, {model}, Python {platform.python_version()}"


async def run(args: argparse.Namespace, tmp: Path) -> int:
    b = Bench(args, tmp)
    try:
        b.start()
        requests = [realistic_request(v) for v in range(VARIANTS)]
        answers = {
            post(f"http://127.0.0.1:{b.port}/shippingoptions", requests[v], b.bearer) for v in (0, 1, 499)
        }
        answer = post(f"http://127.0.0.1:{b.port}/shippingoptions", requests[0], b.bearer)
        options = json.loads(answer)["shipping_options"]
        b.start_baseline(answer)
        pin(os.getpid(), LOAD_CPU if b.pinned else None)  # wrk and the bundled client inherit it
        points = sum(len(o.get("locations", [])) for o in options)
        print(f"tms_server benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {machine()}")
        print(f"server: {args.workers} worker(s){', pinned to core 0, load generator on core 1' if b.pinned else ''}; "
              f"load: {'wrk (saturated) + ' if b.use_wrk else ''}bundled asyncio client (paced); "
              f"{args.connections} connections, {args.duration:g} s runs, {args.rounds} rounds")  # fmt: skip
        if not b.use_wrk:
            print(
                "note: without wrk the bundled client bounds the bare aiohttp baseline, so ratios read high"
            )
        print(f"request: {len(requests[0]['order']['lines'])} order lines, {VARIANTS} variants "
              f"({len(answers)} distinct answer(s) among 3 sampled); catalog: 30 pickup points; "
              f"answer: {len(options)} options, {points} pickup points listed, {len(answer)} bytes")  # fmt: skip
        bodies = [json.dumps(r).encode() for r in requests]
        opts = await b.options(bodies)
        option = next(o for o in options if not o.get("timeslots"))
        ship = await b.shipments(shipment_body(requests[0], option))
        auth = await b.auth()
        geo = await b.pickup_network(requests)
    finally:
        b.stop()
    paced_p99 = opts["paced"].p99_ms if opts["paced"].p99_ms is not None else float("inf")
    paced_ok = paced_p99 < 10 and not opts["paced"].missed and not opts["paced"].errors

    def verdict(ok: bool) -> str:
        return "PASS" if ok else "MISS"

    print("\nsummary")
    print(f"  /shippingoptions vs bare aiohttp: {opts['server']:.0f} vs {opts['baseline']:.0f} req/s, "
          f"median ratio {opts['ratio']:.2f} (target >= 0.50) {verdict(opts['ratio'] >= 0.5)}")  # fmt: skip
    print(f"  /shippingoptions paced at {opts['rate']:.0f}/s (a quarter of the baseline): "
          f"p99 {paced_p99:.2f} ms (target < 10 ms) {verdict(paced_ok)}")  # fmt: skip
    print(f"  /shippingoptions paced at {opts['own_rate']:.0f}/s (half the server's throughput): "
          f"p50 {opts['own'].p50_ms or 0:.2f} ms, p99 {opts['own'].p99_ms or 0:.2f} ms")  # fmt: skip
    print(f"  POST /shipment vs raw asyncpg upserts: median ratio {ship['ratio']:.2f} (target >= 0.60) "
          f"{verdict(ship['ratio'] >= 0.6)}; lost reservations {ship['lost']}")  # fmt: skip
    print(f"  POST /auth: {auth.rps:.0f} req/s, p50 {auth.p50_ms or 0:.2f} ms, p99 {auth.p99_ms or 0:.2f} ms")
    print(f"  nearest pickup points, unseen postal code, 20,000-point network: p99 {geo['timing']['p99'] / 1000:.2f} ms "
          f"(target <= 2 ms) {verdict(geo['timing']['p99'] <= 2000)}")  # fmt: skip
    print(f"  /shippingoptions with the 20,000-point network vs the 30-point example: median ratio {geo['ratio']:.2f} "
          f"(target >= 0.90) {verdict(geo['ratio'] >= 0.9)}")  # fmt: skip
    errors = opts["errors"] + ship["errors"] + auth.errors + geo["errors"]
    print(f"  errors (socket errors and unexpected statuses included): {errors}")
    return 1 if errors or ship["lost"] else 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--duration", type=float, default=5.0, help="seconds per run (default 5; paced runs twice that)"
    )
    p.add_argument("--connections", type=int, default=50, help="concurrent connections (default 50)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds per scenario (default 3)")
    p.add_argument("--workers", type=int, default=1,
                   help="server worker processes (default 1, pinned to one core; with more, nothing is pinned "
                        "and the bare aiohttp baseline runs as many processes)")  # fmt: skip
    p.add_argument("--quick", action="store_true", help="a smoke run: 1 round of 1 s runs")
    p.add_argument("--no-wrk", action="store_true", help="use the bundled client even when wrk is installed")
    args = p.parse_args()
    if args.quick:
        args.duration, args.rounds = 1.0, 1

    def interrupted(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt  # unwinds through the finally blocks that stop our processes

    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, interrupted)  # also when started with SIGINT ignored (as a background job)
    with tempfile.TemporaryDirectory(prefix="tms-bench-") as tmp:
        try:
            return asyncio.run(run(args, Path(tmp)))
        except KeyboardInterrupt:
            print("bench: interrupted", file=sys.stderr)
            return 130


if __name__ == "__main__":
    sys.exit(main())
