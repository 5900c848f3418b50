"""Operations: health and readiness, Prometheus metrics, request ids, JSON logs without secrets or
personal data, ``--workers`` on one port with a graceful drain, and the Docker files."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import attrs
import psutil
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Merchant, create_and_migrate, token_for
from tests.kss import create_merchant, new_session, options_request, shipment_request
from tests.server_process import LOOPBACK, ServerProcess, free_port, http_status
from tms_server.app import create_app
from tms_server.config import Config
from tms_server.db.embedded import EmbeddedPostgres

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"


def families(text: str) -> dict[str, Any]:
    """Parsed Prometheus exposition, by family name."""
    return {f.name: f for f in text_string_to_metric_families(text)}


def sample(fams: dict[str, Any], name: str, **labels: str) -> float | None:
    """The value of the sample ``name`` whose labels include ``labels``."""
    family = fams.get(name.removesuffix("_total").removesuffix("_count").removesuffix("_sum"))
    for s in family.samples if family else ():
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
            return float(s.value)
    return None


async def scrape(client: Any) -> dict[str, Any]:
    """GET /metrics and parse it."""
    resp = await client.get("/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain")
    return families(await resp.text())


def sibling_dsn(dsn: str, name: str) -> str:
    """``dsn`` with another database name on the same server."""
    parts = urllib.parse.urlsplit(dsn)
    return urllib.parse.urlunsplit(parts._replace(path=f"/{name}"))


# -- health and readiness ----------------------------------------------------------------------------


async def test_healthz_and_readyz_answer_without_auth(client: Any, dsn: str) -> None:
    """/healthz (GET, HEAD) and /readyz answer 200 without credentials and say nothing secret."""
    resp = await client.get("/healthz")
    assert resp.status == 200 and await resp.json() == {"status": "ok"}
    assert (await client.head("/healthz")).status == 200
    resp = await client.get("/readyz")
    body = await resp.json()
    assert resp.status == 200 and body["status"] == "ok" and body["database"] == "ok"
    text = json.dumps(body)
    for secret in (dsn, "postgres", "host=", "password", "/tmp"):
        assert secret not in text


async def test_readyz_is_503_while_the_database_is_stopped(
    own_cluster: EmbeddedPostgres, aiohttp_client: Any, config: Config
) -> None:
    """With PostgreSQL stopped /readyz is 503 (no DSN or path in the body), /healthz and /metrics stay
    200; after a restart /readyz is 200 again without restarting the app."""
    own_dsn = own_cluster.dsn()
    client = await aiohttp_client(create_app(attrs.evolve(config, db_timeout=1.0), own_dsn, sweeper=False))
    assert (await client.get("/readyz")).status == 200
    own_cluster._pg_ctl("stop", "-m", "fast", "-w")
    resp = await client.get("/readyz")
    text = await resp.text()
    assert resp.status == 503 and json.loads(text)["status"] == "unavailable"
    for secret in (own_dsn, str(own_cluster.pgdata), "postgres", "Traceback"):
        assert secret not in text
    assert (await client.get("/healthz")).status == 200  # liveness: do not restart us for the database
    assert (await client.get("/metrics")).status == 200
    own_cluster.acquire()
    status, deadline = 0, time.monotonic() + 20
    while status != 200 and time.monotonic() < deadline:
        status = (await client.get("/readyz")).status
        await asyncio.sleep(0.1)
    assert status == 200


@pytest.fixture
async def sibling(dsn: str) -> AsyncIterator[str]:
    """A migrated database of this test's own next to the test database."""
    name = f"tms_ops_{uuid.uuid4().hex[:8]}"
    admin = sibling_dsn(dsn, "postgres")
    url = sibling_dsn(dsn, name)
    await create_and_migrate(admin, url, name)
    yield url
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def test_dropped_database_is_503_not_500(sibling: str, aiohttp_client: Any, config: Config) -> None:
    """A database that disappears (dropped, being restored) makes /readyz, /auth and /shipment 503 with a
    failure_reason, never a 500, and /shippingoptions keeps answering from memory."""
    m = await create_merchant(sibling)
    client = await aiohttp_client(create_app(config, sibling, sweeper=False))
    headers = {"Authorization": f"Bearer {await token_for(client, m)}"}
    body = options_request(new_session())
    resp = await client.post("/shippingoptions", json=body, headers=headers)
    option = (await resp.json())["shipping_options"][0]
    admin = await asyncpg.connect(sibling_dsn(sibling, "postgres"))
    try:
        name = urllib.parse.urlsplit(sibling).path.lstrip("/")
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()
    resp = await client.get("/readyz")
    assert resp.status == 503 and (await resp.json())["status"] == "unavailable"
    resp = await client.post("/auth", json=m.auth_body())
    assert resp.status == 503 and "database" in (await resp.json())["failure_reason"]
    resp = await client.post("/shipment", json=shipment_request(body, option), headers=headers)
    assert resp.status == 503 and "database" in (await resp.json())["failure_reason"]
    resp = await client.post("/shippingoptions", json=body, headers=headers)
    assert resp.status == 200


async def test_readyz_is_503_when_the_schema_is_behind(client: Any, conn: Any) -> None:
    """A database missing a migration this code needs makes /readyz 503 'schema behind'."""
    row = await conn.fetchrow("SELECT version, name FROM schema_migrations ORDER BY version DESC LIMIT 1")
    await conn.execute("DELETE FROM schema_migrations WHERE version = $1", row["version"])
    try:
        resp = await client.get("/readyz")
        assert resp.status == 503
        assert await resp.json() == {"status": "unavailable", "database": "schema behind"}
    finally:
        await conn.execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", row["version"], row["name"]
        )
    assert (await client.get("/readyz")).status == 200


# -- metrics -----------------------------------------------------------------------------------------


async def test_metrics_count_requests_latency_auth_failures_pool_and_sweeps(
    aiohttp_client: Any, config: Config, make_merchant: Any, conn: Any
) -> None:
    """/metrics has requests by endpoint and status (route templates, never raw paths), a latency
    histogram, auth failures by kind, pool usage, reservations by state and sweep runs."""
    m = await make_merchant("shop-a")
    client = await aiohttp_client(create_app(attrs.evolve(config, sweep_interval=0.1)))
    headers = {"Authorization": f"Bearer {await token_for(client, m)}"}
    body = options_request(new_session())
    option = (await (await client.post("/shippingoptions", json=body, headers=headers)).json())[
        "shipping_options"
    ][0]
    ids = []
    for session in (new_session(), new_session()):
        resp = await client.post(
            "/shipment", json=shipment_request(options_request(session), option), headers=headers
        )
        assert resp.status == 201
        ids.append((await resp.json())["shipment_id"])
    assert (await client.post(f"/shipment/{ids[0]}/confirm", headers=headers)).status == 200
    assert (await client.get(f"/shipment/{ids[1]}", headers=headers)).status == 200
    bad = {"identifier": "shop-a", "secret": {"nonce": "n1", "digest": "00" * 32}}
    assert (await client.post("/auth", json=bad)).status == 401
    forged = {"Authorization": "Bearer " + headers["Authorization"].split()[1][:-4] + "AAAA"}
    assert (await client.post("/shippingoptions", json=body, headers=forged)).status == 401
    assert (await client.get("/no-such-path-x9z")).status == 404

    deadline = time.monotonic() + 10
    while True:  # the sweeper publishes reservations by state
        fams = await scrape(client)
        if sample(fams, "tms_reservations", status="confirmed") == 1 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    assert sample(fams, "tms_reservations", status="confirmed") == 1
    assert sample(fams, "tms_reservations", status="reserved") == 1
    assert sample(fams, "tms_reservations", status="expired") == 0
    assert (sample(fams, "tms_sweep_runs_total", result="ok") or 0) >= 1
    assert (sample(fams, "tms_sweep_seconds_count") or 0) >= 1

    def requests(method: str, endpoint: str, status: str) -> float | None:
        return sample(fams, "tms_http_requests_total", method=method, endpoint=endpoint, status=status)

    assert requests("POST", "/shipment", "201") == 2
    assert requests("POST", "/auth", "201") == 1 and requests("POST", "/auth", "401") == 1
    assert requests("POST", "/shippingoptions", "401") == 1
    assert requests("GET", "/shipment/{shipment_id}", "200") == 1
    assert requests("POST", "/shipment/{shipment_id}/confirm", "200") == 1
    assert requests("GET", "unmatched", "404") == 1
    text = await (await client.get("/metrics")).text()
    assert ids[0] not in text and "no-such-path" not in text, "raw paths must not become label values"

    count = sample(fams, "tms_http_request_seconds_count", method="POST", endpoint="/shipment")
    assert count == 2
    buckets = [
        (float(s.labels["le"]), s.value)
        for s in fams["tms_http_request_seconds"].samples
        if s.name.endswith("_bucket") and s.labels["endpoint"] == "/shipment"
    ]
    assert [v for _, v in sorted(buckets)] == sorted(v for _, v in buckets)  # cumulative
    assert max(buckets)[1] == count  # +Inf holds every request
    assert sample(fams, "tms_auth_failures_total", kind="credentials") == 1
    assert sample(fams, "tms_auth_failures_total", kind="token") == 1
    assert sample(fams, "tms_db_pool_connections", state="max") == config.pool_max
    assert (sample(fams, "tms_db_pool_connections", state="open") or 0) >= 1


@pytest.mark.xfail(
    strict=True,
    reason="app.refresher_ctx sets tms_db_up only after the first refresh_interval; "
    "it should set it to 1 right after the initial refresh",
)
async def test_db_up_is_1_from_the_first_scrape(aiohttp_client: Any, config: Config, conn: Any) -> None:
    """tms_db_up reports 1 as soon as the server has started on a reachable database."""
    client = await aiohttp_client(create_app(attrs.evolve(config, refresh_interval=60.0), sweeper=False))
    assert sample(await scrape(client), "tms_db_up") == 1


# -- request ids -------------------------------------------------------------------------------------


async def test_request_id_is_echoed_when_sane_and_made_otherwise(client: Any) -> None:
    """A sane X-Request-ID (up to 128 of [A-Za-z0-9._:-]) is echoed, on errors too; anything else is
    replaced by a fresh 32-hex id, different for each request."""
    for method, path, status in (("GET", "/healthz", 200), ("POST", "/shippingoptions", 401),
                                 ("GET", "/no-such", 404), ("POST", "/healthz", 405)):  # fmt: skip
        resp = await client.request(method, path, json={}, headers={"X-Request-ID": "kss-1.a:b_c-2"})
        assert resp.status == status and resp.headers["X-Request-ID"] == "kss-1.a:b_c-2"
    longest = "a" * 128
    assert (await client.get("/healthz", headers={"X-Request-ID": longest})).headers[
        "X-Request-ID"
    ] == longest
    made = set()
    for bad in ("a" * 129, "two words", '"}{"level":"error', "a/b", "", None):
        headers = {} if bad is None else {"X-Request-ID": bad}
        rid = (await client.get("/healthz", headers=headers)).headers["X-Request-ID"]
        assert re.fullmatch(r"[0-9a-f]{32}", rid), rid
        made.add(rid)
    assert len(made) == 6


# -- structured logs ---------------------------------------------------------------------------------

PERSONAL = {
    "given_name": "Quintessa",
    "family_name": "Zebrowski-Ohlsson",
    "street_address": "Ödevägen 977",
    "email": "quintessa.zo@example.org",
    "phone": "+46701234987",
}


def _raw_request(port: int, head: str) -> bytes:
    """Send a hand-written request and read until the server closes or times out."""
    with socket.create_connection((LOOPBACK, port), timeout=5) as s:
        s.sendall(head.encode("latin-1"))
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except (TimeoutError, ConnectionError):
                return out
            if not chunk:
                return out
            out += chunk


async def _log_flow(
    srv: ServerProcess, m: Merchant, auth: dict[str, Any], body: dict[str, Any]
) -> dict[str, Any]:
    """The KSS calls whose log the test inspects; returns what must not appear in it."""
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{srv.url}/auth", json=auth, headers={"X-Request-ID": "ops-auth-1"}) as resp:
            assert resp.status == 201 and resp.headers["X-Request-ID"] == "ops-auth-1"
            token = (await resp.json())["token"]
        headers = {"Authorization": f"Bearer {token}"}
        async with http.post(f"{srv.url}/shippingoptions", json=body, headers=headers) as resp:
            option = (await resp.json())["shipping_options"][0]
        req = shipment_request(body, option)
        rid = {"X-Request-ID": "ops-reserve-1"}
        async with http.post(f"{srv.url}/shipment", json=req, headers={**headers, **rid}) as resp:
            assert resp.status == 201
            sid = (await resp.json())["shipment_id"]
        async with http.put(f"{srv.url}/shipment/{sid}", json=req, headers=headers) as resp:
            assert resp.status == 200
        async with http.get(f"{srv.url}/shipment/{sid}", headers=headers) as resp:
            assert resp.status == 200
        async with http.post(f"{srv.url}/shipment/{sid}/confirm", headers=headers) as resp:
            assert resp.status == 200
        refused = shipment_request(options_request(new_session()), option)
        refused["recipient"].update(PERSONAL, postal_code="XX")
        async with http.post(f"{srv.url}/shipment", json=refused, headers=headers) as resp:
            assert resp.status == 400
        wrong = m.auth_body("nonce-" + uuid.uuid4().hex)
        wrong["secret"]["digest"] = wrong["secret"]["digest"][::-1]
        async with http.post(f"{srv.url}/auth", json=wrong) as resp:
            assert resp.status == 401
        reply = _raw_request(
            srv.port, f"GET /healthz HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\x01\r\n\r\n"
        )
        assert reply.startswith(b"HTTP/1.") and b" 400 " in reply.split(b"\r\n", 1)[0]
    return {"token": token, "refused": refused, "wrong": wrong}


async def test_json_logs_carry_context_and_never_secrets_or_personal_data(
    dsn: str, conn: Any, tmp_path: Path
) -> None:
    """A whole KSS flow at DEBUG level logs one JSON object per line, with request_id on request lines
    (the caller's X-Request-ID when given), merchant and session where known, and none of the key,
    token, digest, nonce or the recipient's name, street, email or phone, not even when a request's
    Authorization header is malformed."""
    m = await create_merchant(dsn, "shop-logs")
    log = tmp_path / "server.log"
    nonce = "nonce-" + uuid.uuid4().hex
    auth = m.auth_body(nonce)
    body = options_request(new_session())
    body["recipient"].update(PERSONAL)
    with ServerProcess(dsn, log, TMS_LOG_LEVEL="DEBUG") as srv:
        out = await _log_flow(srv, m, auth, body)
        assert srv.stop() == 0
    token, refused, wrong = out["token"], out["refused"], out["wrong"]
    text = log.read_text()
    secrets = [m.key, token, token.split(".")[2], nonce, auth["secret"]["digest"], *PERSONAL.values()]
    secrets += [auth["secret"]["digest"].upper(), wrong["secret"]["digest"]]
    for secret in secrets:
        assert secret not in text, f"{secret!r} leaked into the log"
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert all(isinstance(line, dict) and {"ts", "level", "logger", "msg"} <= set(line) for line in lines)
    requests = [line for line in lines if line["logger"] == "tms_server.http"]
    assert len(requests) >= 7 and all(re.fullmatch(r"[\w.:-]+", line["request_id"]) for line in requests)
    assert {line["request_id"] for line in lines if line["msg"].startswith("POST /auth 201")} == {
        "ops-auth-1"
    }
    reserve = [line for line in lines if line.get("request_id") == "ops-reserve-1"]
    assert {line["logger"] for line in reserve} >= {"tms_server.http", "tms_server.kss"}
    for line in requests:
        if line["msg"].split()[1] in ("/shippingoptions", "/shipment") or line["msg"].startswith("PUT"):
            assert line.get("merchant") == "shop-logs", line
            assert line.get("session") in (body["session_id"], refused["session_id"]), line
        elif not line["msg"].startswith(("POST /auth 401", "GET /healthz")):
            assert line.get("merchant") == "shop-logs", line


# -- several workers on one port ---------------------------------------------------------------------


def _listening_children(parent: psutil.Process, port: int) -> set[int]:
    found = set()
    for child in parent.children():
        try:
            conns = child.net_connections(kind="tcp")
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
        if any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in conns):
            found.add(child.pid)
    return found


def _wait_for(predicate: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    return predicate()


def _serving_pids(parent: psutil.Process, port: int, connections: int = 16) -> set[int]:
    """Which worker processes answered requests on ``connections`` fresh keep-alive connections."""
    socks = []
    try:
        for _ in range(connections):
            s = socket.create_connection((LOOPBACK, port), timeout=5)
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert s.recv(4096).startswith(b"HTTP/1.1 200")
            socks.append(s)
        ours = {s.getsockname()[1] for s in socks}
        pids = set()
        for child in parent.children():
            for c in child.net_connections(kind="tcp"):
                if c.status == psutil.CONN_ESTABLISHED and c.raddr and c.raddr.port in ours:
                    pids.add(child.pid)
        return pids
    finally:
        for s in socks:
            s.close()


async def test_workers_share_one_port_restart_and_drain_on_sigterm(
    dsn: str, conn: Any, tmp_path: Path
) -> None:
    """--workers 2: two processes listen on one port and both answer; a worker killed with -9 is replaced;
    SIGTERM stops accepting, lets a request that is still uploading its body finish with its answer,
    and every process exits 0."""
    m: Merchant = await create_merchant(dsn, "shop-workers")
    srv = ServerProcess(dsn, tmp_path / "server.log", args=["--workers", "2"])
    with srv:
        parent = psutil.Process(srv.pid)
        workers = _wait_for(lambda: len(_listening_children(parent, srv.port)) == 2, 30)
        assert workers, srv.log_text()[-2000:]
        first = _listening_children(parent, srv.port)
        assert _serving_pids(parent, srv.port) == first

        victim = min(first)
        psutil.Process(victim).kill()
        replaced = _wait_for(
            lambda: (p := _listening_children(parent, srv.port)) and len(p) == 2 and victim not in p, 30
        )
        assert replaced, "the supervisor did not replace the killed worker"
        assert http_status(f"{srv.url}/healthz") == 200
        children = [psutil.Process(p) for p in _listening_children(parent, srv.port)]

        payload = json.dumps(m.auth_body()).encode()
        slow = socket.create_connection((LOOPBACK, srv.port), timeout=15)
        with slow:
            slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert slow.recv(4096).startswith(b"HTTP/1.1 200")  # a worker is serving this connection
            slow.sendall(
                b"POST /auth HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n" % len(payload) + payload[:10]
            )
            await asyncio.sleep(0.3)  # the handler is now waiting for the rest of the body
            srv.signal(signal.SIGTERM)
            refused = _wait_for(lambda: _refused(srv.port), 10)
            assert refused, "the port still accepts connections after SIGTERM"
            slow.sendall(payload[10:])
            reply = _read_response(slow)
        assert reply.startswith(b"HTTP/1.1 201"), reply[:200]
        assert b'"token"' in reply
        assert srv.wait(40) == 0
        gone = _wait_for(lambda: not any(_alive(c) for c in children), 10)
        assert gone, "a worker outlived the supervisor"


def _refused(port: int) -> bool:
    try:
        socket.create_connection((LOOPBACK, port), timeout=1).close()
    except OSError:
        return True
    return False


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _read_response(s: socket.socket) -> bytes:
    out = b""
    while b"\r\n\r\n" not in out or len(out.split(b"\r\n\r\n", 1)[1]) < _content_length(out):
        chunk = s.recv(65536)
        if not chunk:
            break
        out += chunk
    return out


def _content_length(head: bytes) -> int:
    match = re.search(rb"(?i)content-length:\s*(\d+)", head)
    return int(match.group(1)) if match else 0


# -- Docker ------------------------------------------------------------------------------------------


def _dockerfile() -> str:
    return (DOCKER / "Dockerfile").read_text()


def _final_stage(text: str) -> str:
    return re.split(r"(?m)^FROM ", text)[-1]


def test_dockerfile_runs_unprivileged_exposes_the_port_and_checks_health() -> None:
    """The runtime stage runs as a non-root user, exposes the port it serves on, has a HEALTHCHECK and
    uses the entrypoint script."""
    stage = _final_stage(_dockerfile())
    users = re.findall(r"(?m)^USER\s+(\S+)", stage)
    assert users and users[-1] not in ("root", "0", "0:0")
    port = re.search(r"TMS_PORT=(\d+)", stage)
    assert port and re.search(rf"(?m)^EXPOSE\s+{port.group(1)}\b", stage)
    assert re.search(r"(?m)^HEALTHCHECK\s", stage)
    assert re.search(r"TMS_HOST=0\.0\.0\.0", stage), (
        "inside a container the server must listen on all interfaces"
    )
    assert re.search(r'(?m)^ENTRYPOINT \["tms-entrypoint"\]', stage)


def _healthcheck_argv(port: int, argv: list[str]) -> list[str]:
    """A Docker exec-form health check, runnable here: our python, our port."""
    out = [sys.executable if a == "python" else a for a in argv]
    return [a.replace("8080", str(port)) for a in out]


async def _run(argv: list[str], env: dict[str, str]) -> int:
    proc = await asyncio.create_subprocess_exec(*argv, env=env)
    return await asyncio.wait_for(proc.wait(), 30)


async def test_image_and_compose_health_checks_pass_against_a_running_server(client: Any) -> None:
    """The Dockerfile HEALTHCHECK and the compose service's health check succeed against a serving app
    (on its port) and fail when nothing listens there."""
    cmd = re.search(r"(?ms)^HEALTHCHECK .*?CMD (\[.*?\])\s*$", _dockerfile())
    assert cmd, "HEALTHCHECK must use the exec form"
    image_check = json.loads(cmd.group(1))
    compose = yaml.safe_load((DOCKER / "docker-compose.yml").read_text())
    service_check = compose["services"]["tms-server"]["healthcheck"]["test"]
    assert service_check[0] == "CMD"
    port = client.server.port
    env = {**os.environ, "TMS_PORT": str(port)}
    assert await _run(_healthcheck_argv(port, image_check), env) == 0
    assert await _run(_healthcheck_argv(port, service_check[1:]), env) == 0
    dead = {**os.environ, "TMS_PORT": str(free_port())}
    assert await _run(_healthcheck_argv(int(dead["TMS_PORT"]), image_check), dead) != 0


def test_compose_file_wires_database_migration_and_server() -> None:
    """docker-compose.yml is valid YAML with db, a one-shot migrate and the server, which starts only
    after the migration succeeded, talks to the db service, and publishes the image's port."""
    doc = yaml.safe_load((DOCKER / "docker-compose.yml").read_text())
    services = doc["services"]
    assert {"db", "migrate", "tms-server"} <= set(services)
    server, migrate_svc = services["tms-server"], services["migrate"]
    assert migrate_svc["command"] == ["migrate"] and migrate_svc.get("restart") == "no"
    assert server["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert server["depends_on"]["db"]["condition"] == "service_healthy"
    assert "healthcheck" in services["db"]
    for svc in (server, migrate_svc):
        url = urllib.parse.urlsplit(svc["environment"]["TMS_DATABASE_URL"])
        assert url.scheme == "postgresql" and url.hostname == "db"
    exposed = re.search(r"(?m)^EXPOSE\s+(\d+)", _final_stage(_dockerfile()))
    assert exposed and any(str(p).endswith(f":{exposed.group(1)}") for p in server["ports"])
    assert "ports" not in services["db"], "PostgreSQL should not be published on the host"
    volumes = services["db"]["volumes"]
    assert any(str(v).split(":")[0] in doc["volumes"] for v in volumes)


def _entrypoint(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    full_env = {**os.environ, "PATH": path, **(env or {})}
    return subprocess.run(
        [str(DOCKER / "entrypoint.sh"), *args], env=full_env, capture_output=True, text=True, timeout=60
    )


def test_entrypoint_dispatches_admin_server_and_migrate(dsn: str) -> None:
    """docker/entrypoint.sh is executable and runs `admin ...`, `server --help` and `migrate` (against the
    test database)."""
    assert os.access(DOCKER / "entrypoint.sh", os.X_OK)
    out = _entrypoint("admin", "--help")
    assert out.returncode == 0 and "usage: tms-admin" in out.stdout
    out = _entrypoint("server", "--help")
    assert out.returncode == 0 and "usage: tms-server" in out.stdout
    out = _entrypoint("migrate", env={"TMS_DATABASE_URL": dsn})
    assert out.returncode == 0, out.stderr
    assert "up to date" in out.stdout or "applied" in out.stdout


async def test_workers_exit_when_their_supervisor_is_killed(dsn: str, tmp_path: Path) -> None:
    """kill -9 of the supervisor: its workers shut down by themselves (they went on serving with
    parent 1) and the port is free again."""
    srv = ServerProcess(dsn, tmp_path / "server.log", args=["--workers", "2"])
    with srv:
        parent = psutil.Process(srv.pid)
        assert _wait_for(lambda: len(_listening_children(parent, srv.port)) == 2, 30), srv.log_text()[-2000:]
        workers = [psutil.Process(p) for p in _listening_children(parent, srv.port)]
        srv.kill()
        _, alive = psutil.wait_procs(workers, timeout=20)
        assert not alive, f"workers still running after their supervisor died: {[p.pid for p in alive]}"
        with pytest.raises(OSError):
            http_status(f"{srv.url}/healthz")


def test_embedded_cluster_is_not_stopped_under_a_server_that_did_not_register(tmp_path: Path) -> None:
    """A server reaching the embedded PostgreSQL through TMS_DATABASE_URL registers nothing; the last
    tms-admin command to leave must not stop the cluster under it."""
    from tms_server.db.embedded import EmbeddedPostgres

    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TMS_")} | {"TMS_DATA_DIR": str(data)}
    admin = [sys.executable, "-m", "tms_server.admin.cli"]
    assert subprocess.run([*admin, "migrate"], env=env, capture_output=True, timeout=120).returncode == 0
    pg = EmbeddedPostgres(data)
    dsn = pg.acquire()
    srv = ServerProcess(dsn, tmp_path / "server.log")
    with srv:
        pg.release()  # the server (by URL) is now the cluster's only client
        result = subprocess.run(
            [*admin, "merchant", "list"], env=env, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stderr
        assert pg._running(), "tms-admin stopped the embedded PostgreSQL a server was using"
        assert http_status(f"{srv.url}/readyz") == 200
    pg.acquire()
    pg.release()  # the last user out stops it once nobody else is connected
    assert not pg._running()


def _counter(text: str, name: str, **labels: str) -> float:
    """The sum of a counter's samples matching ``labels`` in a scrape."""
    from prometheus_client.parser import text_string_to_metric_families

    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def test_workers_share_one_metrics_port_with_counters_of_all_workers(dsn: str, tmp_path: Path) -> None:
    """--workers 2 with TMS_METRICS_PORT: both workers serve (the second used to crash-loop on
    "address already in use"), and every scrape counts every worker's requests, so the counter
    never goes down between scrapes (it went 2221, 1830, 2221)."""
    metrics_port = free_port()
    srv = ServerProcess(
        dsn, tmp_path / "server.log", args=["--workers", "2"], TMS_METRICS_PORT=str(metrics_port)
    )
    with srv:
        parent = psutil.Process(srv.pid)
        assert _wait_for(lambda: len(_listening_children(parent, srv.port)) == 2, 30), srv.log_text()[-2000:]
        assert len(_serving_pids(parent, srv.port)) == 2
        for _ in range(200):
            assert http_status(f"{srv.url}/healthz") == 200
        seen = []
        for _ in range(12):
            with urllib.request.urlopen(f"http://{LOOPBACK}:{metrics_port}/metrics", timeout=5) as resp:
                seen.append(_counter(resp.read().decode(), "tms_http_requests_total", endpoint="/healthz"))
        assert seen == sorted(seen) and seen[0] >= 200, seen
        assert "address already in use" not in srv.log_text()
        assert len(_listening_children(parent, srv.port)) == 2
