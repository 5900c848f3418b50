"""Prometheus metrics, one registry per application (so tests and workers never share state)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    """The counters and histograms the server updates."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
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
        self.reservations = Gauge(
            "tms_reservations", "Reservations by state (last sweep)", ["status"], registry=r
        )
        self.sweeps = Counter("tms_sweep_runs", "Expiry/retention sweeps run", ["result"], registry=r)
        self.sweep_seconds = Histogram("tms_sweep_seconds", "Sweep duration", buckets=_BUCKETS, registry=r)
        self.swept = Counter(
            "tms_swept_reservations", "Reservations changed by sweeps", ["action"], registry=r
        )
        self.pool = Gauge("tms_db_pool_connections", "Database pool connections", ["state"], registry=r)
        self.db_up = Gauge("tms_db_up", "1 when the last database call succeeded", registry=r)
        self.catalogs = Gauge("tms_catalogs_loaded", "Merchants with a compiled catalog", registry=r)
        # Requests being handled now (bodies still arriving included); shutdown drains it to zero.
        self.in_progress = 0
        Gauge("tms_http_requests_in_progress", "HTTP requests being handled", registry=r).set_function(
            lambda: self.in_progress
        )

    def observe(self, method: str, endpoint: str, status: int, seconds: float) -> None:
        """Record one request."""
        self.requests.labels(method, endpoint, str(status)).inc()
        self.latency.labels(method, endpoint).observe(seconds)

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
