"""Hardening against hostile clients and information leaks, on real server processes: what the KSS
port gives away, encodings, log and terminal injection, malformed requests."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.serverproc import LOOPBACK, ServerProc, free_port


def fetch(
    url: str, data: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, Any, bytes]:
    """(status, headers, body) of one request; HTTP errors are answers too."""
    method = "POST" if data is not None else "GET"
    req = urllib.request.Request(url, data=data, headers=headers or {}, method=method)  # noqa: S310  # loopback
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310  # our own loopback server
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def raw(port: int, payload: bytes) -> bytes:
    """Send raw bytes and read the answer until the server closes or 2 s pass."""
    with socket.create_connection((LOOPBACK, port), timeout=5) as s:
        s.sendall(payload)
        s.settimeout(2)
        chunks = []
        try:
            while chunk := s.recv(65536):
                chunks.append(chunk)
        except TimeoutError:
            pass
    return b"".join(chunks)


@pytest.fixture(scope="module")
def server(dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProc, int]]:
    """One server with a separate metrics port, shared by this module's read-only probes."""
    metrics_port = free_port()
    log = tmp_path_factory.mktemp("hardening") / "server.log"
    with ServerProc(dsn, log, TMS_METRICS_PORT=str(metrics_port), TMS_LOG_FORMAT="text") as proc:
        yield proc, metrics_port


def test_metrics_stay_off_the_kss_port(server: tuple[ServerProc, int]) -> None:
    """With TMS_METRICS_PORT set, /metrics is a 404 on the KSS port and served on the metrics port."""
    proc, metrics_port = server
    assert fetch(f"{proc.url}/metrics")[0] == 404
    status, _, body = fetch(f"http://{LOOPBACK}:{metrics_port}/metrics")
    assert status == 200 and b"tms_http_requests_total" in body


def test_readyz_says_ready_without_counts(server: tuple[ServerProc, int]) -> None:
    """/readyz says ready and why, and gives away no counts."""
    status, _, body = fetch(f"{server[0].url}/readyz")
    assert status == 200 and json.loads(body) == {"status": "ok", "database": "ok"}


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/nope", "/shipment/x"])
def test_no_versions_in_headers(server: tuple[ServerProc, int], path: str) -> None:
    """No answer names Python or aiohttp versions; the Server header names the product only."""
    _, headers, _ = fetch(f"{server[0].url}{path}")
    assert headers["Server"] == "tms_server"
    assert "python" not in str(headers).lower() and "aiohttp" not in str(headers).lower()
    _, mheaders, _ = fetch(f"http://{LOOPBACK}:{server[1]}/healthz")
    assert mheaders["Server"] == "tms_server"


def test_server_log_of_this_module_has_no_traceback(server: tuple[ServerProc, int]) -> None:
    """Nothing above made the server log a traceback."""
    assert "Traceback" not in server[0].log_text()
