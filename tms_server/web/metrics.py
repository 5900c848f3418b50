"""Prometheus metrics: one registry per application, or one view over every worker.

A single process keeps its metrics in its own registry (so tests never share state). Under
``tms-server --workers N`` the supervisor gives the workers a shared directory
(``PROMETHEUS_MULTIPROC_DIR``, prometheus_client's multiprocess mode): each worker writes its counts
there, and whichever worker answers a scrape reports the sum over all of them, so successive scrapes
never see a counter go down. Gauges say how they combine across workers (``multiprocess_mode``).
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"


def shared() -> bool:
    """Whether this process is one of several workers sharing their metrics."""
    return bool(os.environ.get(MULTIPROC_DIR))


class Metrics:
    """The counters, histograms and gauges the server updates."""

    def __init__(self) -> None:
        self.shared = shared()
        self.registry = CollectorRegistry()
        r = self.registry

        def gauge(name: str, doc: str, labels: tuple[str, ...] = (), mode: str = "livesum") -> Any:
            return Gauge(name, doc, list(labels), registry=r, multiprocess_mode=mode)  # type: ignore[arg-type]

        self.requests = Counter(
            "tms_http_requests",
            "HTTP requests by endpoint and status",
            ["method", "endpoint", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "tms_http_request_seconds",
            "HTTP request latency",
            ["method", "endpoint"],
            buckets=_BUCKETS,
            registry=r,
        )
        self.auth_failures = Counter(
            "tms_auth_failures", "Refused /auth requests and tokens", ["kind"], registry=r
        )
        # The same database count whichever worker swept last.
        self.reservations = gauge(
            "tms_reservations", "Reservations by state (last sweep)", ("status",), "mostrecent"
        )
        self.options_cache = Counter(
            "tms_options_cache_lookups", "/shippingoptions answer cache look-ups", ["result"], registry=r
        )
        self.options_cache_hit = self.options_cache.labels("hit")
        self.options_cache_miss = self.options_cache.labels("miss")
        self.sweeps = Counter("tms_sweep_runs", "Expiry/retention sweeps run", ["result"], registry=r)
        self.sweep_seconds = Histogram("tms_sweep_seconds", "Sweep duration", buckets=_BUCKETS, registry=r)
        self.swept = Counter(
            "tms_swept_reservations", "Reservations changed by sweeps", ["action"], registry=r
        )
        self.pool = gauge("tms_db_pool_connections", "Database pool connections (all workers)", ("state",))
        self.db_up = gauge(
            "tms_db_up", "1 when the last database call succeeded (in every worker)", mode="livemin"
        )
        self.catalogs = gauge("tms_catalogs_loaded", "Merchants with a compiled catalog", mode="livemax")
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        # Requests being handled now (bodies still arriving included); shutdown drains it to zero.
        self.in_progress = 0
        self._in_progress = gauge(
            "tms_http_requests_in_progress", "HTTP requests being handled (all workers)"
        )
        if not self.shared:
            self._in_progress.set_function(lambda: self.in_progress)

    def started(self) -> None:
        """A request began."""
        self.in_progress += 1
        if self.shared:
            self._in_progress.inc()

    def finished(self) -> None:
        """A request ended."""
        self.in_progress -= 1
        if self.shared:
            self._in_progress.dec()

    def observe(self, method: str, endpoint: str, status: int, seconds: float) -> None:
        """Record one request (the labelled children are looked up once per combination)."""
        children = self._children.get((method, endpoint, status))
        if children is None:
            if len(self._children) > 4096:
                self._children.clear()  # methods are free text from clients; stay bounded
            children = (
                self.requests.labels(method, endpoint, str(status)),
                self.latency.labels(method, endpoint),
            )
            self._children[method, endpoint, status] = children
        children[0].inc()
        children[1].observe(seconds)

    def render(self) -> bytes:
        """The text exposition format: this process's, or every worker's together."""
        if not self.shared:
            return generate_latest(self.registry)
        combined = CollectorRegistry()
        multiprocess.MultiProcessCollector(combined)  # type: ignore[no-untyped-call]  # the library leaves it untyped
        return generate_latest(combined)


def worker_gone(pid: int, directory: str) -> None:
    """Drop a dead worker's live gauges from the shared ``directory`` (its counters stay counted);
    called by the supervisor, which holds the directory but shares no metrics itself."""
    with contextlib.suppress(OSError):
        multiprocess.mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]  # untyped upstream
