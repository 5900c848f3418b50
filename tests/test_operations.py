"""Operability: health and readiness, Prometheus metrics, request ids, structured logs without
secrets or personal data, several workers on one port, and the Docker files."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests import kss
from tests.conftest import token_for
from tests.kss import new_session, options_request, shipment_request
from tests.server_process import ServerProcess, free_port

ROOT = Path(__file__).resolve().parent.parent


async def test_health_and_readiness(client: Any) -> None:
    """/healthz and /readyz answer 200 without authentication and reveal nothing secret."""
    resp = await client.get("/healthz")
    assert resp.status == 200 and await resp.json() == {"status": "ok"}
    resp = await client.get("/readyz")
    assert resp.status == 200
    body = await resp.json()
    assert body["status"] == "ok" and body["database"] == "ok"
    assert "postgres" not in json.dumps(body)


async def test_metrics_count_requests_and_auth_failures(client: Any, make_merchant: Any) -> None:
    """/metrics is Prometheus text with requests by endpoint and status, latency and auth failures."""
    m = await make_merchant("shop-a")
    headers = {"Authorization": f"Bearer {await token_for(client, m)}"}
    await client.post("/shippingoptions", json=options_request(), headers=headers)
    await client.post("/auth", json={"identifier": "nobody", "secret": {"nonce": "n", "digest": "d"}})
    resp = await client.get("/metrics")
    assert resp.status == 200
    families = {f.name: f for f in text_string_to_metric_families(await resp.text())}
    samples = [
        (s.labels, s.value) for s in families["tms_http_requests"].samples if s.name.endswith("_total")
    ]
    assert ({"method": "POST", "endpoint": "/shippingoptions", "status": "200"}, 1.0) in samples
    assert ({"method": "POST", "endpoint": "/auth", "status": "401"}, 1.0) in samples
    assert any(
        s.value >= 1 for s in families["tms_auth_failures"].samples if s.labels.get("kind") == "credentials"
    )
    assert "tms_http_request_seconds" in families and "tms_db_pool_connections" in families


async def test_request_id_is_echoed_or_made(client: Any) -> None:
    """A sane X-Request-ID is echoed; a missing or unsafe one is replaced by a fresh id."""
    resp = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert resp.headers["X-Request-ID"] == "abc-123"
    resp = await client.get("/healthz", headers={"X-Request-ID": "bad id\twith spaces"})
    assert re.fullmatch(r"[0-9a-f]{32}", resp.headers["X-Request-ID"])
    resp = await client.get("/healthz")
    assert re.fullmatch(r"[0-9a-f]{32}", resp.headers["X-Request-ID"])


async def test_json_logs_carry_context_and_no_secrets(dsn: str, conn: Any, tmp_path: Path) -> None:
    """A whole KSS flow logs JSON lines with request id, merchant and session, and none of the key,
    token, digest, nonce or the recipient's personal data."""
    m = await kss.merchant_with_catalog(conn)
    log = tmp_path / "server.log"
    server = ServerProcess(dsn, log, TMS_LOG_LEVEL="INFO").start()
    nonce = "nonce-" + new_session()
    try:
        async with aiohttp.ClientSession() as session:
            auth = m.auth_body(nonce)
            async with session.post(
                f"{server.url}/auth", json=auth, headers={"X-Request-ID": "req-1"}
            ) as resp:
                token = (await resp.json())["token"]
            headers = {"Authorization": f"Bearer {token}"}
            body = options_request(new_session())
            async with session.post(f"{server.url}/shippingoptions", json=body, headers=headers) as resp:
                option = (await resp.json())["shipping_options"][0]
            req = shipment_request(body, option)
            async with session.post(f"{server.url}/shipment", json=req, headers=headers) as resp:
                sid = (await resp.json())["shipment_id"]
            async with session.post(f"{server.url}/shipment/{sid}/confirm", headers=headers) as resp:
                assert resp.status == 200
            bad = dict(req, recipient={**req["recipient"], "postal_code": "XX"})
            async with session.post(f"{server.url}/shipment", json=bad, headers=headers) as resp:
                assert resp.status == 400
    finally:
        assert server.stop() == 0
    text = log.read_text()
    recipient = body["recipient"]
    for secret in (m.key, token, auth["secret"]["digest"], nonce, recipient["given_name"], recipient["family_name"],
                   recipient["street_address"], recipient["email"], recipient["phone"], "111 34"):  # fmt: skip
        assert secret not in text, f"{secret!r} leaked into the log"
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    requests = [line for line in lines if line["logger"] == "tms_server.http"]
    assert len(requests) >= 5
    assert all(line.get("request_id") for line in requests)
    assert any(line["request_id"] == "req-1" for line in requests)
    options_line = next(line for line in requests if "/shippingoptions" in line["msg"])
    assert options_line["merchant"] == "shop-a" and options_line["session"] == body["session_id"]


def _get(url: str) -> int:
    with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310  # our own http URL
        return int(resp.status)


def test_workers_share_one_port_and_stop_gracefully(dsn: str, tmp_path: Path) -> None:
    """--workers 2 runs two processes on one port; SIGTERM stops them all with exit 0."""
    port = free_port()
    env = {**os.environ, "TMS_DATABASE_URL": dsn, "TMS_PORT": str(port), "TMS_LOG_FORMAT": "json"}
    with (tmp_path / "log").open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "tms_server.server", "--workers", "2"], env=env,
                                stdout=log, stderr=log)  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if _get(f"http://127.0.0.1:{port}/healthz") == 200:
                    break
            except OSError:
                time.sleep(0.1)
        children = subprocess.run(
            ["pgrep", "-P", str(proc.pid)], capture_output=True, text=True
        ).stdout.split()
        assert len(children) == 2
        for _ in range(20):
            assert _get(f"http://127.0.0.1:{port}/healthz") == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(40) == 0
    for child in children:
        assert not Path(f"/proc/{child}").exists() or "zombie" in Path(f"/proc/{child}/status").read_text()


def test_dockerfile_runs_as_non_root_with_healthcheck() -> None:
    """The image runs as an unprivileged user, exposes 8080 and has a health check."""
    text = (ROOT / "docker" / "Dockerfile").read_text()
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1] not in ("root", "0")
    assert re.search(r"^HEALTHCHECK ", text, re.M) and re.search(r"^EXPOSE 8080", text, re.M)


def test_compose_file_has_database_migration_and_server() -> None:
    """docker-compose.yml defines db, migrate and tms-server with health checks and a volume."""
    doc = yaml.safe_load((ROOT / "docker" / "docker-compose.yml").read_text())
    services = doc["services"]
    assert {"db", "migrate", "tms-server"} <= set(services)
    assert services["tms-server"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert "healthcheck" in services["db"] and "healthcheck" in services["tms-server"]
    assert "pgdata" in doc["volumes"]


def test_entrypoint_runs_admin_and_migrate(dsn: str) -> None:
    """docker/entrypoint.sh dispatches `migrate` and `admin ...` to tms-admin."""
    entry = ROOT / "docker" / "entrypoint.sh"
    env = {
        **os.environ,
        "TMS_DATABASE_URL": dsn,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    out = subprocess.run(["sh", str(entry), "migrate"], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "up to date" in out.stdout
    out = subprocess.run(["sh", str(entry), "admin", "merchant", "list"], env=env, capture_output=True, text=True,
                         timeout=60)  # fmt: skip
    assert out.returncode == 0 and "IDENTIFIER" in out.stdout


def test_readme_is_valid_restructuredtext() -> None:
    """README.rst renders without reStructuredText errors (tables, literal blocks)."""
    import docutils.core
    import docutils.nodes
    import docutils.utils

    messages: list[str] = []
    doc = docutils.core.publish_doctree(
        (ROOT / "README.rst").read_text(), settings_overrides={"report_level": 5, "halt_level": 5}
    )
    for node in doc.findall(docutils.nodes.system_message):
        if node["level"] >= docutils.utils.Reporter.WARNING_LEVEL:
            messages.append(node.astext())
    assert messages == []
