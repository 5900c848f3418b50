"""Structured logging: one JSON object per line in production, readable lines on a terminal.

Each request's id, merchant and session are kept in context variables and stamped onto every
record logged while the request runs. Nothing here ever logs keys, tokens, digests or the
recipient's personal data: callers log identifiers only.
"""

from __future__ import annotations

import contextvars
import logging
import sys
import time
from typing import Any

import orjson
from aiohttp.http_exceptions import HttpProcessingError

from tms_server.terminal import escape

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
merchant: contextvars.ContextVar[str | None] = contextvars.ContextVar("merchant", default=None)
session: contextvars.ContextVar[str | None] = contextvars.ContextVar("session", default=None)

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class ContextFilter(logging.Filter):
    """Copies the request context onto each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        record.merchant = merchant.get()
        record.session = session.get()
        return True


class MalformedRequestFilter(logging.Filter):
    """aiohttp logs a request it cannot parse at ERROR, with a traceback and the offending bytes,
    which can be a whole ``Authorization`` header. A client's malformed request is not our error:
    keep the fact and the error type, drop the bytes."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            record.msg = "malformed HTTP request refused: %s (status %s)"
            record.args = (type(exc).__name__, exc.code)
            record.exc_info = record.exc_text = None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


class PoolOutageFilter(logging.Filter):
    """asyncpg's pool logs every failed reconnect during a database outage with a traceback; the
    outage is expected and visible (503s, tms_db_up): keep one line with the error, no traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and record.levelno <= logging.WARNING:
            record.msg = f"{record.getMessage()}: {type(exc).__name__}: {exc}"
            record.args = ()
            record.exc_info = record.exc_text = None
        return True


class ResourceExhaustionFilter(logging.Filter):
    """asyncio logs every failed accept() when descriptors run out ("socket.accept() out of system
    resource"), tens of thousands of lines a second: keep the first, then one line with a count
    per ``interval`` seconds."""

    def __init__(self, interval: float = 60.0) -> None:
        super().__init__()
        self.interval = interval
        self._last = -interval
        self._suppressed = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if "out of system resource" not in str(record.msg):
            return True
        now = time.monotonic()
        if now - self._last < self.interval:
            self._suppressed += 1
            return False
        again = (
            f" ({self._suppressed} more times in the last {self.interval:.0f} s)" if self._suppressed else ""
        )
        record.msg = (
            f"accept() ran out of open files{again}: raise the open-files limit or lower TMS_MAX_CONNECTIONS"
        )
        record.args = ()
        record.exc_info = record.exc_text = None
        self._last, self._suppressed = now, 0
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": escape(record.getMessage(), keep="\n\t"),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and value is not None:
                # JSON escapes C0 controls itself; C1 controls and line separators it leaves raw.
                out[key] = escape(value, keep="\n\t") if isinstance(value, str) else value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


class TextFormatter(logging.Formatter):
    """``time level logger [request merchant session] message key=value``, for a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%H:%M:%S", time.localtime(record.created))
        ctx = " ".join(
            f"{k}={v}"
            for k, v in vars(record).items()
            if k not in _STANDARD and v is not None and k not in ("request_id",)
        )
        rid = getattr(record, "request_id", None)
        head = f"{ts} {record.levelname:<7} {record.name}" + (f" [{escape(str(rid))}]" if rid else "")
        # One record, one line: a newline or ESC in a client's value is shown escaped, never obeyed.
        line = f"{head} {escape(record.getMessage())}" + (f"  {escape(ctx)}" if ctx else "")
        if record.exc_info:
            # Indented, so no line of a traceback (whose messages may quote input) reads as a record.
            trace = self.formatException(record.exc_info)
            line += "\n" + "\n".join("    | " + escape(part) for part in trace.splitlines())
        return line


def setup(log_format: str = "auto", level: str = "INFO") -> None:
    """Install the handler on the root logger (idempotent)."""
    use_json = log_format == "json" or (log_format == "auto" and not sys.stderr.isatty())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if use_json else TextFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_tms", False):
            root.removeHandler(old)
    handler._tms = True  # type: ignore[attr-defined]  # marks our own handler for idempotence
    root.addHandler(handler)
    root.setLevel(level)
    # aiohttp's access log duplicates our request log line.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    server_log = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, MalformedRequestFilter) for f in server_log.filters):
        server_log.addFilter(MalformedRequestFilter())
    loop_log = logging.getLogger("asyncio")
    if not any(isinstance(f, ResourceExhaustionFilter) for f in loop_log.filters):
        loop_log.addFilter(ResourceExhaustionFilter())
    pool_log = logging.getLogger("asyncpg.pool")
    if not any(isinstance(f, PoolOutageFilter) for f in pool_log.filters):
        pool_log.addFilter(PoolOutageFilter())
