"""Operational endpoints: liveness, readiness and Prometheus metrics (no auth, no secrets)."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from tms_server.db import DatabaseUnavailable
from tms_server.db.migrate import pending
from tms_server.web import keys
from tms_server.web.errors import json_response

log = logging.getLogger("tms_server.ops")


async def healthz(request: web.Request) -> web.Response:
    """The process is alive and serving."""
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """The database answers and its schema is current: ready for KSS traffic."""
    db = request.app[keys.DB]
    try:
        async with asyncio.timeout(db.timeout), db.connection() as conn:
            todo = await pending(conn)
    except (DatabaseUnavailable, TimeoutError):
        return json_response({"status": "unavailable", "database": "unreachable"}, status=503)
    except Exception as exc:  # a probe answers "not ready" for any database failure, never a 500
        log.warning("readiness check failed: %s", type(exc).__name__)
        return json_response({"status": "unavailable", "database": "error"}, status=503)
    if todo:
        return json_response({"status": "unavailable", "database": "schema behind"}, status=503)
    # Ready or not, and why; no counts (merchants, traffic): this answers anyone on the KSS port.
    return json_response({"status": "ok", "database": "ok"})


def update_gauges(app: web.Application) -> None:
    """This process's pool and catalog gauges; at each scrape, and at each state refresh so that a
    scrape answered by any of several workers sees every worker's current figures."""
    m, stats = app[keys.METRICS], app[keys.DB].stats()
    m.pool.labels("open").set(stats["size"])
    m.pool.labels("idle").set(stats["idle"])
    m.pool.labels("max").set(stats["max"])
    m.catalogs.set(sum(1 for s in app[keys.RUNTIME].merchants.values() if s.catalog is not None))


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text exposition."""
    update_gauges(request.app)
    m = request.app[keys.METRICS]
    return web.Response(body=m.render(), content_type="text/plain", charset="utf-8",
                        headers={"X-Content-Type-Options": "nosniff"})  # fmt: skip
