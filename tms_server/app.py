"""Application assembly: ``create_app(config)``, its typed keys, resources and the URL map.

Resources are ``cleanup_ctx`` generators (open, store, yield, close): the database pool, the
in-memory state refresher, and the lifecycle sweeper. Nothing here does I/O at import time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from aiohttp import web

from tms_server import auth
from tms_server.config import Config
from tms_server.db import DatabaseUnavailable, open_database
from tms_server.db.migrate import check_current, migrate
from tms_server.reservations import sweep
from tms_server.runtime import Runtime
from tms_server.web import kco, keys, kss, ops
from tms_server.web.errors import SERVER, make_middleware
from tms_server.web.metrics import Metrics
from tms_server.web.options import AnswerCache
from tms_server.web.protocol import use_json_errors

log = logging.getLogger("tms_server.app")


def add_routes(app: web.Application) -> None:
    """The whole URL map."""
    app.router.add_post("/auth", kss.post_auth)
    app.router.add_post("/shippingoptions", kss.post_shipping_options)
    app.router.add_post("/shipment", kss.post_shipment)
    app.router.add_get("/shipment/{shipment_id}", kss.get_shipment, allow_head=False)
    app.router.add_put("/shipment/{shipment_id}", kss.put_shipment)
    app.router.add_post("/shipment/{shipment_id}/confirm", kss.post_confirm)
    app.router.add_post("/kco/{secret}/{callback}", kco.callback)  # Kustom/Klarna Checkout callbacks
    app.router.add_get("/healthz", ops.healthz, allow_head=True)
    app.router.add_get("/readyz", ops.readyz, allow_head=True)
    if app[keys.CONFIG].metrics_port is None:  # with a metrics port, traffic figures stay off the KSS port
        app.router.add_get("/metrics", ops.metrics)


def create_app(
    config: Config, dsn: str | None = None, *, sweeper: bool = True, reuse_port: bool = False
) -> web.Application:
    """The web.Application for ``config``; ``dsn`` overrides ``config.database_url``; ``reuse_port``
    when it is one of several workers sharing the ports."""
    metrics = Metrics()
    app = web.Application(client_max_size=config.max_body, middlewares=[make_middleware(metrics)])
    app[keys.CONFIG] = config
    app[keys.METRICS] = metrics
    app[keys.RUNTIME] = Runtime.create(config)
    app[keys.ANSWERS] = AnswerCache(config.options_cache_mb * 1024 * 1024)
    app[keys.REUSE_PORT] = reuse_port
    target = dsn or config.database_url
    if not target:
        raise ValueError("create_app needs a database: pass dsn or set TMS_DATABASE_URL")
    app[keys.DSN] = target
    app.cleanup_ctx.append(database_ctx)
    app.cleanup_ctx.append(refresher_ctx)
    if sweeper:
        app.cleanup_ctx.append(sweeper_ctx)
    if config.metrics_port is not None:
        app.cleanup_ctx.append(metrics_port_ctx)
    if config.admin_port is not None:
        app.cleanup_ctx.append(admin_port_ctx)
    add_routes(app)  # the middleware sets the Server header on every answer of this app
    return app


async def _server_header(_request: web.Request, response: web.StreamResponse) -> None:
    """Name the product, not the Python and aiohttp versions an attacker would look up."""
    response.headers["Server"] = SERVER


async def _connect(app: web.Application, wait: float = 30.0) -> None:
    config = app[keys.CONFIG]
    deadline = time.monotonic() + wait
    while True:
        try:
            app[keys.DB] = await open_database(app[keys.DSN], config)
            return
        except Exception as exc:
            if time.monotonic() > deadline:
                raise DatabaseUnavailable(f"cannot reach the database: {type(exc).__name__}: {exc}") from exc
            log.warning("database not reachable yet (%s); retrying", type(exc).__name__)
            await asyncio.sleep(1.0)


async def database_ctx(app: web.Application) -> AsyncIterator[None]:
    """The pool; migrations when asked (TMS_AUTO_MIGRATE), else refuse a schema that is behind."""
    await _connect(app)
    db = app[keys.DB]
    async with db.connection() as conn:
        if app[keys.CONFIG].auto_migrate:
            for m in await migrate(conn):
                log.info("applied migration %s", m.name)
        await check_current(conn)
        await auth.ensure_signing_key(conn)
    yield
    await db.close()


async def refresher_ctx(app: web.Application) -> AsyncIterator[None]:
    """Load state once (must succeed), then keep it fresh; outages keep the last good state."""
    runtime, db = app[keys.RUNTIME], app[keys.DB]
    await runtime.refresh(db)

    async def loop() -> None:
        failing = False
        while True:
            await asyncio.sleep(runtime.config.refresh_interval)
            try:
                await runtime.refresh(db)
                app[keys.METRICS].db_up.set(1)
                ops.update_gauges(app)
                if failing:
                    log.info("state refresh recovered")
                failing = False
            except Exception as exc:
                app[keys.METRICS].db_up.set(0)
                if not failing:
                    log.warning("state refresh failed, serving last known state: %s", type(exc).__name__)
                failing = True

    task = asyncio.create_task(loop(), name="tms-refresher")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def sweeper_ctx(app: web.Application) -> AsyncIterator[None]:
    """Expire unconfirmed reservations and erase personal data past retention, periodically."""
    config, db, metrics = app[keys.CONFIG], app[keys.DB], app[keys.METRICS]

    async def once() -> None:
        start = time.perf_counter()
        async with db.connection() as conn:
            result = await sweep.run(
                conn, reservation_ttl=config.reservation_ttl, retention_expired=config.retention_expired,
                retention_confirmed=config.retention_confirmed, nonce_retention=config.nonce_retention,
            )  # fmt: skip
            for status, n in (await sweep.counts(conn)).items():
                metrics.reservations.labels(status).set(n)
        metrics.sweep_seconds.observe(time.perf_counter() - start)
        metrics.swept.labels("expired").inc(len(result.expired))
        metrics.swept.labels("erased").inc(len(result.erased))
        if result.expired or result.erased:
            log.info("sweep: %d expired, %d erased", len(result.expired), len(result.erased))

    async def loop() -> None:
        while True:
            try:
                await once()
                metrics.sweeps.labels("ok").inc()
            except Exception as exc:
                metrics.sweeps.labels("error").inc()
                log.warning("sweep failed (will retry): %s", type(exc).__name__)
            await asyncio.sleep(config.sweep_interval)

    task = asyncio.create_task(loop(), name="tms-sweeper")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def metrics_port_ctx(app: web.Application) -> AsyncIterator[None]:
    """``/metrics`` (and health) also on ``TMS_METRICS_PORT``, for scrapers kept off the KSS port."""
    side = web.Application()
    side[keys.CONFIG] = app[keys.CONFIG]
    side[keys.METRICS] = app[keys.METRICS]
    side[keys.RUNTIME] = app[keys.RUNTIME]
    side[keys.DB] = app[keys.DB]
    side.router.add_get("/metrics", ops.metrics)
    side.router.add_get("/healthz", ops.healthz)
    side.router.add_get("/readyz", ops.readyz)
    side.on_response_prepare.append(_server_header)
    runner = web.AppRunner(side, access_log=None, keepalive_timeout=app[keys.CONFIG].idle_timeout)
    await runner.setup()
    use_json_errors(runner.server, connection_cap=64)
    config = app[keys.CONFIG]
    # Workers of one supervisor all bind it (SO_REUSEPORT); any of them reports every worker's figures.
    site = web.TCPSite(runner, config.host, config.metrics_port, reuse_port=app[keys.REUSE_PORT] or None)
    await site.start()
    yield
    await runner.cleanup()


async def admin_port_ctx(app: web.Application) -> AsyncIterator[None]:
    """The operators' web UI on ``TMS_ADMIN_HOST:TMS_ADMIN_PORT`` (never on the KSS port)."""
    from tms_server.web.admin_ui import create_admin_app

    config = app[keys.CONFIG]
    runner = web.AppRunner(create_admin_app(app), access_log=None, keepalive_timeout=config.idle_timeout)
    await runner.setup()
    use_json_errors(runner.server, connection_cap=256)
    site = web.TCPSite(runner, config.admin_host, config.admin_port, reuse_port=app[keys.REUSE_PORT] or None)
    await site.start()
    log.info("operator UI on http://%s:%d/admin/", config.admin_host, config.admin_port)
    yield
    await runner.cleanup()
