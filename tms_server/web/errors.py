"""The one middleware that turns domain exceptions into KSS-shaped error responses.

Every error body is exactly ``{"failure_reason": "..."}``. No stack trace, SQL or secret reaches
a client; every 5xx is logged once with the request id. The middleware also stamps the request
id (taken from ``X-Request-ID`` or made up) on the response and the request's log lines.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import secrets
import time
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web
from aiohttp.typedefs import Middleware

from tms_server import logs
from tms_server.auth import InvalidToken
from tms_server.catalog import SelectionError
from tms_server.db import DatabaseUnavailable
from tms_server.reservations import ShipmentNotFound, ShipmentRefused
from tms_server.web import keys
from tms_server.web.metrics import Metrics
from tms_server.wire import WireError

log = logging.getLogger("tms_server.http")

SERVER = "tms_server"  # the Server header: the product, not the Python and aiohttp versions
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class HttpError(Exception):
    """An error with its status and failure_reason, raised by handlers."""

    def __init__(self, status: int, reason: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = headers or {}


def unauthorized(reason: str = "invalid or expired token") -> HttpError:
    """401 with the RFC 6750 challenge; the reason never says which check failed."""
    return HttpError(401, reason, {"WWW-Authenticate": 'Bearer realm="tms_server"'})


def json_response(body: object, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON response serialised with orjson."""
    return web.Response(
        body=orjson.dumps(body), status=status, content_type="application/json", headers=headers
    )


def failure(status: int, reason: str, headers: dict[str, str] | None = None) -> web.Response:
    """The KSS error body."""
    return json_response({"failure_reason": reason}, status, headers)


def _from_exception(exc: Exception, request: web.Request, rid: str) -> web.Response:
    if isinstance(exc, HttpError):
        return failure(exc.status, exc.reason, exc.headers)
    if isinstance(exc, WireError):
        return failure(400, str(exc))
    if isinstance(exc, SelectionError):
        log.info("reservation refused: %s", exc.reason, extra={"detail": exc.detail})
        return failure(400, exc.reason)
    if isinstance(exc, ShipmentRefused):
        return failure(400, str(exc))
    if isinstance(exc, ShipmentNotFound):
        return failure(404, "shipment not found")
    if isinstance(exc, InvalidToken):
        return failure(401, "invalid or expired token", {"WWW-Authenticate": 'Bearer realm="tms_server"'})
    if isinstance(exc, DatabaseUnavailable):
        log.warning("database unavailable: %s", exc)
        return failure(503, "service temporarily unavailable: database unreachable", {"Retry-After": "1"})
    if isinstance(exc, ConnectionError):
        # The client went away mid-request (e.g. while sending its body): nobody reads this answer.
        log.info("client connection lost: %s", type(exc).__name__)
        return failure(400, "connection lost while reading the request")
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return failure(413, f"request body too large (limit {request.app[keys.CONFIG].max_body} bytes)")
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(exc.allowed_methods))
        return failure(
            405, f"method {request.method} not allowed here (allowed: {allowed})", {"Allow": allowed}
        )
    if isinstance(exc, web.HTTPNotFound):
        return failure(404, "not found")
    if isinstance(exc, web.HTTPException):
        return failure(exc.status, exc.reason or "error")
    log.exception("unhandled error on %s %s", request.method, _logged_path(request))
    return failure(500, f"internal error (request id {rid})")


_process_prefix = secrets.token_hex(8)
_sequence = itertools.count(1)


def _logged_path(request: web.Request) -> str:
    """The path for logs: a checkout callback's secret is shown as ``{secret}``
    (``/kco/{secret}/validation``), whether the path matched a route or not."""
    path = request.path
    if path.startswith("/kco/"):  # matched or not (405, 404): the secret is the path's second part
        parts = path.split("/")
        parts[2] = "{secret}"
        return "/".join(parts)
    return path


def _new_process() -> None:
    global _process_prefix, _sequence  # per-process state, renewed in a forked child
    _process_prefix, _sequence = secrets.token_hex(8), itertools.count(1)


os.register_at_fork(after_in_child=_new_process)


def _new_request_id() -> str:
    """32 hex characters, unique across processes: a random per-process half (renewed in forked
    workers) and a counter (a uuid4 per request cost more than the rest of the middleware)."""
    return f"{_process_prefix}{next(_sequence):016x}"


def make_middleware(metrics: Metrics) -> Middleware:
    """The request middleware: request id, error mapping, metrics, one log line per request."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        given = request.headers.get("X-Request-ID", "")
        rid = given if given and _REQUEST_ID.match(given) else _new_request_id()
        tokens = (logs.request_id.set(rid), logs.merchant.set(None), logs.session.set(None))
        start = time.perf_counter()
        metrics.started()
        try:
            try:
                response = await handler(request)
            except Exception as exc:
                response = _from_exception(exc, request, rid)
            headers = response.headers
            headers["X-Request-ID"] = rid
            headers["Server"] = SERVER  # here rather than in a prepare signal: one fewer await per request
            elapsed = time.perf_counter() - start
            route = request.match_info.route.resource
            endpoint = route.canonical if route is not None else "unmatched"
            metrics.observe(request.method, endpoint, response.status, elapsed)
            level = logging.WARNING if response.status >= 500 else logging.INFO
            if log.isEnabledFor(level) and (
                endpoint not in ("/healthz", "/readyz", "/metrics") or response.status >= 400
            ):
                log.log(level, "%s %s %s", request.method, _logged_path(request), response.status,
                        extra={"ms": round(elapsed * 1000, 2)})  # fmt: skip
            return response
        finally:
            metrics.finished()
            for var, token in zip((logs.request_id, logs.merchant, logs.session), tokens, strict=True):
                var.reset(token)

    return middleware
