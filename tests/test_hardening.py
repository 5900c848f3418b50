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

from tests.server_process import LOOPBACK, ServerProcess, free_port


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
def server(dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, int]]:
    """One server with a separate metrics port, shared by this module's read-only probes."""
    metrics_port = free_port()
    log = tmp_path_factory.mktemp("hardening") / "server.log"
    with ServerProcess(dsn, log, TMS_METRICS_PORT=str(metrics_port), TMS_LOG_FORMAT="text") as proc:
        yield proc, metrics_port


def test_metrics_stay_off_the_kss_port(server: tuple[ServerProcess, int]) -> None:
    """With TMS_METRICS_PORT set, /metrics is a 404 on the KSS port and served on the metrics port."""
    proc, metrics_port = server
    assert fetch(f"{proc.url}/metrics")[0] == 404
    status, _, body = fetch(f"http://{LOOPBACK}:{metrics_port}/metrics")
    assert status == 200 and b"tms_http_requests_total" in body


def test_readyz_says_ready_without_counts(server: tuple[ServerProcess, int]) -> None:
    """/readyz says ready and why, and gives away no counts."""
    status, _, body = fetch(f"{server[0].url}/readyz")
    assert status == 200 and json.loads(body) == {"status": "ok", "database": "ok"}


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/nope", "/shipment/x"])
def test_no_versions_in_headers(server: tuple[ServerProcess, int], path: str) -> None:
    """No answer names Python or aiohttp versions; the Server header names the product only."""
    _, headers, _ = fetch(f"{server[0].url}{path}")
    assert headers["Server"] == "tms_server"
    assert "python" not in str(headers).lower() and "aiohttp" not in str(headers).lower()
    _, mheaders, _ = fetch(f"http://{LOOPBACK}:{server[1]}/healthz")
    assert mheaders["Server"] == "tms_server"


def test_server_log_of_this_module_has_no_traceback(server: tuple[ServerProcess, int]) -> None:
    """Nothing above made the server log a traceback."""
    assert "Traceback" not in server[0].log_text()


def _garbage_with(coding: str) -> bytes:
    body = b"\x00\xffgarbage, not compressed"
    if coding == "deflate-truncated":  # a real zlib stream cut short
        import zlib

        coding, body = "deflate", zlib.compress(b'{"identifier": "x", "secret": {}}' * 50)[:40]
    return (
        f"POST /auth HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Encoding: {coding}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body


def _answer(data: bytes) -> tuple[int, dict[str, str], Any]:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, json.loads(body)


@pytest.mark.parametrize(
    ("coding", "status", "reason"),
    [
        ("deflate", 400, "request body could not be decoded as Content-Encoding deflate"),
        ("gzip", 400, "request body could not be decoded as Content-Encoding gzip"),
        ("deflate-truncated", 400, "request body could not be decoded in its Content-Encoding"),
        ("br", 415, "Content-Encoding not supported here; send identity, gzip or deflate"),
        ("zstd", 415, "Content-Encoding not supported here; send identity, gzip or deflate"),
        ("foo", 415, "Content-Encoding 'foo' is not supported; send identity, gzip or deflate"),
        (
            "gzip, deflate",
            415,
            "Content-Encoding 'gzip, deflate' is not supported; send identity, gzip or deflate",
        ),
    ],
)
def test_a_body_in_a_coding_we_cannot_decode_is_a_json_4xx(
    server: tuple[ServerProcess, int], coding: str, status: int, reason: str
) -> None:
    """Garbage sent as gzip/deflate, or a coding we do not decode, is a JSON 4xx with failure_reason
    (was: an unauthenticated 500 with a traceback, or a plain-text 400)."""
    got_status, headers, body = _answer(raw(server[0].port, _garbage_with(coding)))
    assert (got_status, body) == (status, {"failure_reason": reason})
    assert headers["content-type"].startswith("application/json")


def test_gzip_bodies_still_work(server: tuple[ServerProcess, int]) -> None:
    """A real gzip body decodes (and gets the ordinary 401 for an unknown merchant)."""
    import gzip

    body = gzip.compress(
        json.dumps({"identifier": "nobody", "secret": {"nonce": "n", "digest": "d"}}).encode()
    )
    status, _, answer = fetch(
        f"{server[0].url}/auth", body, {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    )
    assert status == 401, answer


@pytest.mark.parametrize(
    ("payload", "status", "reason"),
    [
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Secret: " + b"S3CR3T" * 2000 + b"\r\n\r\n", 431,
         "request line or header too long"),
        (b"FOO{} /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 400, "malformed HTTP request: unknown method"),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 50, 400, "malformed HTTP request: unknown method"),
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 431, "request line or header too long"),
    ],
)  # fmt: skip
def test_malformed_requests_get_json_that_echoes_nothing(
    server: tuple[ServerProcess, int], payload: bytes, status: int, reason: str
) -> None:
    """Oversized headers, bad methods and TLS sent to the HTTP port get a JSON error that echoes none of
    the input (was: plain text echoing the header's start)."""
    data = raw(server[0].port, payload)
    got_status, headers, body = _answer(data)
    assert (got_status, body) == (status, {"failure_reason": reason})
    assert b"S3CR3T" not in data and headers["server"] == "tms_server"


def test_malformed_requests_are_logged_once_per_kind_without_traceback(
    server: tuple[ServerProcess, int],
) -> None:
    """500 bad requests write one INFO line (then a count per minute), never an ERROR or a traceback."""
    for _ in range(500):
        raw(server[0].port, b"FOO{} / HTTP/1.1\r\n\r\n")
    log = server[0].log_text()
    assert log.count("malformed HTTP request refused: BadHttpMethod") == 1
    assert "Traceback" not in log and "Error handling request" not in log


def test_text_logs_escape_control_characters(server: tuple[ServerProcess, int]) -> None:
    """An /auth identifier or a path holding a newline and a fake record (or an ESC sequence) is
    written escaped in the text log format: every record is one line, none forged."""
    proc = server[0]
    forged = "x\n05:00:00 ERROR   tms_server.kss FORGED RECORD\x1b[2J"
    body = json.dumps({"identifier": forged, "secret": {"nonce": "n1", "digest": "d"}}).encode()
    assert fetch(f"{proc.url}/auth", body, {"Content-Type": "application/json"})[0] == 401
    assert fetch(f"{proc.url}/shipment/%0a05:00:00%20ERROR%20FORGED%20PATH")[0] in (401, 404)
    lines = proc.log_text().splitlines()
    assert not any(line.startswith("05:00:00") for line in lines)
    assert "\x1b" not in proc.log_text()
    assert any("\\n05:00:00 ERROR   tms_server.kss FORGED RECORD\\x1b[2J" in line for line in lines)
