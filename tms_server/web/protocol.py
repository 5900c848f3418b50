"""Answers to requests that never reach the application: malformed HTTP, oversized headers, a body
coding the server cannot decode.

aiohttp answers these from its protocol layer in plain text, echoing part of the offending input,
and logs each at ERROR with a traceback (a flood of garbage writes tens of thousands of lines).
Here they get the KSS error shape, ``{"failure_reason": "..."}``, naming the kind of fault and
echoing nothing, and the log gets one INFO line for the first of each kind, then a count per minute.

``use_json_errors(server)`` switches an ``aiohttp.web_server.Server`` (``AppRunner.server``) to a
request handler that does this; aiohttp offers no hook for it, so the handler class is swapped.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import orjson
from aiohttp import http_exceptions, web, web_server
from aiohttp.web_protocol import RequestHandler, RequestPayloadError
from aiohttp.web_request import BaseRequest

from tms_server.terminal import escape

__all__ = ["ClientErrorLog", "describe", "use_json_errors"]

log = logging.getLogger("tms_server.protocol")


def describe(status: int, exc: BaseException | None, coding: str = "") -> tuple[int, str]:
    """(status, failure_reason) for a request the protocol layer refused; never the input itself
    (``coding`` is the request's Content-Encoding, when aiohttp still has its headers)."""
    if isinstance(exc, http_exceptions.ContentEncodingError):
        if "install" in str(exc):  # aiohttp lacks the decoder (br, zstd): the coding is unsupported
            return 415, "Content-Encoding not supported here; send identity, gzip or deflate"
        where = f"as Content-Encoding {coding}" if coding else "in its Content-Encoding"
        return 400, f"request body could not be decoded {where}"
    if isinstance(exc, http_exceptions.LineTooLong):
        return 431 if status in (400, 431) else status, "request line or header too long"
    if isinstance(exc, http_exceptions.BadHttpMethod):
        return status, "malformed HTTP request: unknown method"
    if isinstance(exc, http_exceptions.PayloadEncodingError):
        return status, "malformed request body framing (Content-Length or Transfer-Encoding)"
    if isinstance(exc, http_exceptions.InvalidURLError):
        return status, "malformed HTTP request: invalid URL"
    if status == 504:
        return 504, "request timed out"
    if status >= 500:
        return status, "internal error"
    return status, "malformed HTTP request"


class ClientErrorLog:
    """Logs the first refused request of each kind at INFO, then one count per ``interval`` s."""

    def __init__(self, interval: float = 60.0) -> None:
        self.interval = interval
        self._lock = threading.Lock()
        self._seen: set[str] = set()
        self._count = 0
        self._since = time.monotonic()

    def note(self, kind: str, what: str = "malformed HTTP request refused") -> None:
        report = 0
        with self._lock:
            first = kind not in self._seen
            self._seen.add(kind)
            self._count += 1
            now = time.monotonic()
            if now - self._since >= self.interval:
                report, self._count, self._since = self._count, 0, now
        if first:
            log.info("%s: %s", what, kind)
        elif report:
            log.info("refused or closed connections in the last %.0f s: %d", self.interval, report)


_CLIENT_ERRORS = ClientErrorLog()


class JsonErrorRequestHandler(RequestHandler):
    """aiohttp's request handler with KSS-shaped error answers (see the module docstring)."""

    def connection_made(self, transport: Any) -> None:
        """Over the cap, the connection idle the longest makes room (so a flood of silent
        connections cannot lock out a health probe or KSS); with every connection busy, this one
        is closed."""
        super().connection_made(transport)
        manager = self._manager
        cap = getattr(manager, "connection_cap", 0)
        if not cap or manager is None or len(manager.connections) <= cap:
            return
        _CLIENT_ERRORS.note(
            f"over the cap of {cap} open connections (TMS_MAX_CONNECTIONS)", "connection closed"
        )
        # Skip connections already closing: they stay listed until aiohttp has wound them down.
        victim = next(
            (
                c
                for c in manager.connections
                if c is not self and c.transport is not None and c._current_request is None
            ),
            self,
        )
        victim.force_close()
        if victim.transport is not None:
            victim.transport.close()

    def log_exception(self, *args: Any, **kw: Any) -> None:
        """A client's broken body (bad gzip, short chunk) found while draining it after our answer
        is the client's fault: counted like other malformed requests, no traceback."""
        exc = kw.get("exc_info")
        if isinstance(exc, RequestPayloadError | http_exceptions.HttpProcessingError):
            _CLIENT_ERRORS.note(type(exc).__name__)
            return
        super().log_exception(*args, **kw)

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status >= 500 and not isinstance(exc, http_exceptions.HttpProcessingError):
            self.log_exception("error handling request", exc_info=exc)
        else:
            _CLIENT_ERRORS.note(type(exc).__name__ if exc else f"status {status}")
        if request.writer.output_size > 0:
            raise ConnectionError("the answer had started; the connection is closed instead")
        # The request aiohttp hands over for a broken body may carry no headers: then say less.
        coding = (request.headers.get("Content-Encoding", "") if request.headers else "")[:40]
        code, reason = describe(status, exc, escape(coding.strip().lower()))
        resp = web.Response(
            status=code, body=orjson.dumps({"failure_reason": reason}), content_type="application/json"
        )
        resp.headers["Server"] = "tms_server"
        resp.force_close()
        return resp


class _JsonErrorServer(web_server.Server):
    connection_cap: int = 0

    def __call__(self) -> RequestHandler:
        return JsonErrorRequestHandler(self, loop=self._loop, **self._kwargs)


def use_json_errors(server: Any, *, connection_cap: int = 0) -> None:
    """Make ``server`` (an ``AppRunner.server``) answer protocol-level errors as JSON, and close
    connections beyond ``connection_cap`` (0: no cap) at once, before they use up descriptors."""
    if isinstance(server, web_server.Server) and type(server) is web_server.Server:
        server.__class__ = _JsonErrorServer
    if isinstance(server, _JsonErrorServer):
        server.connection_cap = connection_cap
