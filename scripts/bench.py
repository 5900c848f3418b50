"""scripts/bench: measure tms_server against baselines measured in the same run, and print ratios.

Workloads, each against its own baseline in interleaved rounds (the median ratio is reported):

- ``/shippingoptions``, three workloads against a bare aiohttp handler answering the same number of
  bytes (the answer nearest the workload's mean size):
  - **fixed**: the reference request with 10 order lines, 1,000 variants (session, order id, total);
  - **varied**: every request a different cart and address (``tms_server.workload.varied``), target
    >= 0.30 of the bare handler;
  - **sessions**: checkout sessions of 3-6 calls, most repeating the previous body byte for byte as
    KSS does (``tms_server.workload.sessions``), target >= 0.50; then paced at a quarter of the bare
    handler's rate for latency (target p99 < 10 ms at 50 connections).
  A body list is sent in passes, and the pass number is written into every session id, so a body
  repeats within a pass exactly as generated and never across passes: the answer cache gets the
  repeats the workload has, no more.
- **reservations**: ``POST /shipment``, a new session per request, vs. raw asyncpg upserts of the
  same row (``synchronous_commit`` on in both); the rows are counted afterwards (every 201 must have
  its row). Target >= 0.50.
- **growth**: in process, the cost of one answer against 5/20/100 options, 30/3,000/20,000 pickup
  points and 1/100/1,000 order lines; decode <= 2 us per extra line (``benchgrowth``).
- ``POST /auth`` throughput, and the 20,000-point pickup network (nearest points; the ratio of
  ``/shippingoptions`` with it to the 30-point example).

The server and the baselines get core 0, the load generator (wrk when installed, else the bundled
asyncio client) core 1; paced runs always use the bundled client, which measures from the scheduled
send time. Exit status 1 only when something broke (errors, lost reservations); missed targets are
reported as MISS, not failed.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import hashlib
import json
import os
import platform
import re
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

from tms_server import catalog_store, merchants, workload
from tms_server.catalog import example_catalog_text, parse_catalog
from tms_server.db.embedded import EmbeddedPostgres
from tms_server.geo import PostalPositions
from tms_server.geodata import build_network
from tms_server.geodata import store as geo_store
from tms_server.geodata.files import PostalRow, read_points
from tms_server.web.options import options_answer

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
VARIANTS = 1000
SEED = 20261130
WORKLOAD_SIZE = {"varied": 4000, "sessions": 8000}
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


def tagged(bodies: list[bytes]) -> list[bytes]:
    """The bodies with ``@SEQ@`` at the end of the session id, where the load generator writes the
    pass number (``per_pass``): repeats stay within a pass."""
    out = [re.sub(rb'("session_id":\s*"[^"]*)"', rb"\1-" + SEQ + b'"', b, count=1) for b in bodies]
    if not all(SEQ in b for b in out):
        raise SystemExit("bench: a body without a session id cannot be tagged per pass")
    return out


def typical_answer(bodies: list[bytes]) -> bytes:
    """The example catalog's answer nearest in size to the mean answer of ``bodies`` (for the bare
    handler, which must write as many bytes as the server does)."""
    catalog = parse_catalog(example_catalog_text())
    now = datetime.now(UTC)
    answers = [options_answer(catalog, b.replace(SEQ, b"0"), now)[1] for b in bodies[:1000]]
    mean = sum(map(len, answers)) / len(answers)
    return min(answers, key=lambda a: abs(len(a) - mean))


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

    def start_baseline(self, answers: dict[str, bytes]) -> None:
        folder = self.tmp / "answers"
        folder.mkdir()
        for name, answer in answers.items():
            (folder / f"{name}.json").write_bytes(answer)
        args = [sys.executable, str(ROOT / "scripts/bench_baseline.py"), "http", str(self.base_port),
                str(folder), str(self.args.workers)]  # fmt: skip
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
                   expect: int = 200, tag: str = "", rate: float | None = None,
                   per_pass: bool = False) -> Result:  # fmt: skip
        """One run: wrk when installed (saturated runs), else (and when paced) the bundled client."""
        a = self.args
        if self.use_wrk and rate is None:
            url = f"http://127.0.0.1:{port}{path}"
            return run_wrk(name, url, headers, bodies, connections=a.connections, duration=a.duration, tag=tag,
                           per_pass=per_pass)  # fmt: skip
        prefix, suffix = zip(*(b.split(SEQ, 1) if SEQ in b else (b, b"") for b in bodies), strict=True)
        n = len(bodies)
        if tag:
            make: Callable[[int], bytes] = lambda i: request_bytes(  # noqa: E731
                "POST",
                path,
                prefix[i % n] + f"{tag}{i // n if per_pass else i}".encode() + suffix[i % n],
                headers,
            )
        else:
            raw = [request_bytes("POST", path, b, headers) for b in bodies]
            make = lambda i: raw[i % len(raw)]  # noqa: E731
        duration = a.duration * 2 if rate else a.duration
        return await run_load(
            name, port, make, connections=a.connections, duration=duration, rate=rate, expect=expect
        )

    def cache_lookups(self) -> tuple[float, float]:
        """(hits, misses) of the server's answer cache so far, from /metrics."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=10) as resp:
            text = resp.read().decode()
        found = dict(re.findall(r'tms_options_cache_lookups_total\{result="(\w+)"\} (\S+)', text))
        return float(found.get("hit", 0)), float(found.get("miss", 0))

    async def options(self, name: str, bodies: list[bytes], *, paced: bool = False) -> dict[str, Any]:
        """Interleaved rounds of the bare handler and the server on one workload (tagged bodies)."""
        base_runs, server_runs = [], []
        hits0, misses0 = self.cache_lookups()
        for r in range(self.args.rounds):
            base = await self.load(f"bare aiohttp, {name} (round {r + 1})", self.base_port,
                                   f"/shippingoptions/{name}", self.bearer, bodies, tag="p", per_pass=True)  # fmt: skip
            show(base)
            res = await self.load(f"/shippingoptions {name} (round {r + 1})", self.port, "/shippingoptions",
                                  self.bearer, bodies, tag=f"r{r}p", per_pass=True)  # fmt: skip
            show(res, base)
            base_runs.append(base)
            server_runs.append(res)
        hits, misses = self.cache_lookups()
        looked = (hits - hits0) + (misses - misses0)
        out: dict[str, Any] = {
            "ratio": median([s.rps / b.rps for s, b in zip(server_runs, base_runs, strict=True)]),
            "server": median([s.rps for s in server_runs]), "baseline": median([b.rps for b in base_runs]),
            "hit_rate": (hits - hits0) / looked if looked else 0.0,
            "errors": sum(x.errors for x in (*base_runs, *server_runs)), "paced": None,
        }  # fmt: skip
        if paced:
            rate = out["baseline"] / 4
            if not self.args.quick:
                # Straddle a minute boundary: answers and promises are computed per minute, so the
                # first requests of a minute are the dearest, and a shopper meets them every minute.
                await asyncio.sleep((55 - time.time() % 60) % 60)
            run = await self.load(f"/shippingoptions {name} paced {rate:.0f}/s", self.port, "/shippingoptions",
                                  self.bearer, bodies, rate=rate, tag="paced", per_pass=True)  # fmt: skip
            show(run)
            out.update(paced=run, rate=rate, errors=out["errors"] + run.errors)
        return out

    def growth(self) -> dict[str, float]:
        """``benchgrowth``'s table, measured in a fresh process pinned like the server."""
        cmd = [sys.executable, str(ROOT / "scripts/benchgrowth.py"), "--json"]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT / "scripts")
        pin(proc.pid, SERVER_CPU if self.pinned else None)
        out, _ = proc.communicate(timeout=600)
        if proc.returncode:
            raise SystemExit("bench: the growth measurement failed")
        *lines, last = out.rstrip().splitlines()
        print("\n".join(lines), flush=True)
        rows: dict[str, float] = json.loads(last)
        return rows

    async def synchronous_commit(self) -> str:
        """The database's synchronous_commit, as the server's sessions see it."""
        conn = await asyncpg.connect(self.dsn)
        try:
            return str(await conn.fetchval("SHOW synchronous_commit"))
        finally:
            await conn.close()

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
        text = benchgeo.network_catalog_text()
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
        bodies = tagged(bodies)
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
                                    self.bearer, bodies, tag=f"s{r}p", per_pass=True)  # fmt: skip
            show(small)
            big = await self.load(f"options, 20,000-point network (round {r + 1})", self.port, "/shippingoptions",
                                  other, bodies, tag=f"b{r}p", per_pass=True)  # fmt: skip
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
        answer = post(f"http://127.0.0.1:{b.port}/shippingoptions", requests[0], b.bearer)
        options = json.loads(answer)["shipping_options"]
        bodies = {
            "fixed": tagged([json.dumps(r).encode() for r in requests]),
            "varied": tagged(list(workload.varied(SEED, WORKLOAD_SIZE["varied"]))),
            "sessions": tagged(list(workload.sessions(SEED + 1, WORKLOAD_SIZE["sessions"]))),
        }
        answers = {name: typical_answer(list_) for name, list_ in bodies.items()}
        b.start_baseline(answers)
        pin(os.getpid(), LOAD_CPU if b.pinned else None)  # wrk and the bundled client inherit it
        points = sum(len(o.get("locations", [])) for o in options)
        distinct = {name: len({x.split(SEQ)[0] for x in list_}) for name, list_ in bodies.items()}
        print(f"tms_server benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {machine()}")
        print(f"server: {args.workers} worker(s){', pinned to core 0, load generator on core 1' if b.pinned else ''}; "
              f"load: {'wrk (saturated) + ' if b.use_wrk else ''}bundled asyncio client (paced); "
              f"{args.connections} connections, {args.duration:g} s runs, {args.rounds} rounds")  # fmt: skip
        if not b.use_wrk:
            print(
                "note: without wrk the bundled client bounds the bare aiohttp baseline, so ratios read high"
            )
        print(f"fixed: {len(requests[0]['order']['lines'])} order lines, {VARIANTS} variants; answer: {len(options)} "
              f"options, {points} pickup points listed, {len(answer)} bytes")  # fmt: skip
        for name in ("varied", "sessions"):
            print(f"{name}: {len(bodies[name])} bodies ({distinct[name]} distinct), seed {SEED}; "
                  f"bare handler answers {len(answers[name])} bytes (the mean answer's size)")  # fmt: skip
        synchronous = await b.synchronous_commit()
        print(f"database: embedded PostgreSQL, synchronous_commit = {synchronous}")
        results = {
            "fixed": await b.options("fixed", bodies["fixed"]),
            "varied": await b.options("varied", bodies["varied"]),
            "sessions": await b.options("sessions", bodies["sessions"], paced=True),
        }
        option = next(o for o in options if not o.get("timeslots"))
        ship = await b.shipments(shipment_body(requests[0], option))
        auth = await b.auth()
        geo = await b.pickup_network(requests)
        print("growth (in a fresh process on the server's core, no HTTP, no answer cache)", flush=True)
        growth = b.growth()
    finally:
        b.stop()

    def verdict(ok: bool) -> str:
        return "PASS" if ok else "MISS"

    print("\nsummary")
    for name, target in (("fixed", 0.5), ("varied", 0.3), ("sessions", 0.5)):
        r = results[name]
        cache = f", answer cache hit rate {r['hit_rate']:.0%}" if name == "sessions" else ""
        print(f"  {name:<8} /shippingoptions vs bare aiohttp: {r['server']:.0f} vs {r['baseline']:.0f} req/s, "
              f"median ratio {r['ratio']:.2f} (target >= {target:.2f}) {verdict(r['ratio'] >= target)}{cache}")  # fmt: skip
    paced = results["sessions"]["paced"]
    paced_p99 = paced.p99_ms if paced.p99_ms is not None else float("inf")
    paced_ok = paced_p99 < 10 and not paced.missed and not paced.errors
    print(f"  sessions paced at {results['sessions']['rate']:.0f}/s (a quarter of the bare handler), "
          f"{args.connections} connections: p50 {paced.p50_ms or 0:.2f} ms, p99 {paced_p99:.2f} ms "
          f"(target < 10 ms) {verdict(paced_ok)}")  # fmt: skip
    print(f"  reservations POST /shipment vs raw asyncpg upserts: median ratio {ship['ratio']:.2f} (target >= 0.50) "
          f"{verdict(ship['ratio'] >= 0.5)}; lost reservations {ship['lost']}; synchronous_commit = {synchronous}")  # fmt: skip
    print(f"  growth: decode per extra order line {growth['decode per extra line']:.2f} us (target <= 2 us) "
          f"{verdict(growth['decode per extra line'] <= 2)}; us per request: "
          + ", ".join(f"{k} {v:.0f}" for k, v in growth.items() if k != "decode per extra line"))  # fmt: skip
    print(f"  POST /auth: {auth.rps:.0f} req/s, p50 {auth.p50_ms or 0:.2f} ms, p99 {auth.p99_ms or 0:.2f} ms")
    print(f"  nearest pickup points, unseen postal code, 20,000-point network: p99 {geo['timing']['p99'] / 1000:.2f} ms "
          f"(target <= 2 ms) {verdict(geo['timing']['p99'] <= 2000)}")  # fmt: skip
    print(f"  /shippingoptions with the 20,000-point network vs the 30-point example: median ratio {geo['ratio']:.2f} "
          f"(target >= 0.90) {verdict(geo['ratio'] >= 0.9)}")  # fmt: skip
    errors = sum(r["errors"] for r in results.values()) + ship["errors"] + auth.errors + geo["errors"]
    print(f"  errors (socket errors and unexpected statuses included): {errors}")
    return 1 if errors or ship["lost"] or synchronous != "on" else 0


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
