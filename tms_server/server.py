"""``tms-server``: run the HTTP server (one process, or ``--workers N`` sharing one port).

The CLI builds the Config (environment, then flags), finds the database (URL or embedded), and
runs the app until SIGINT/SIGTERM, when in-flight requests are allowed to finish.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import ctypes.util
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence

import asyncpg
from aiohttp import web

from tms_server import demo, logs, operators
from tms_server.app import create_app
from tms_server.config import Config, ConfigError, from_env
from tms_server.db import DatabaseUnavailable, database_url, open_database
from tms_server.db.embedded import EmbeddedError
from tms_server.db.migrate import SchemaBehind, migrate
from tms_server.web import keys
from tms_server.web.metrics import MULTIPROC_DIR, worker_gone
from tms_server.web.protocol import use_json_errors

log = logging.getLogger("tms_server.server")

# On SIGTERM: stop accepting, give requests in flight up to DRAIN_TIMEOUT to finish, then close
# the remaining (idle) connections, waiting at most CLOSE_TIMEOUT. The supervisor waits for both.
DRAIN_TIMEOUT = 15.0
CLOSE_TIMEOUT = 5.0
SHUTDOWN_TIMEOUT = DRAIN_TIMEOUT + CLOSE_TIMEOUT


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="tms-server", description="Run the tms_server KSS callback API server.")
    p.add_argument("--host", help="address to listen on (TMS_HOST, default 127.0.0.1)")
    p.add_argument("--port", help="port to listen on (TMS_PORT, default 8080)")
    p.add_argument("--workers", help="processes sharing the port, 1 to 64 (TMS_WORKERS, default 1)")
    p.add_argument("--migrate", action="store_true", help="apply pending migrations before serving")
    p.add_argument("--demo", action="store_true",
                   help="create an example merchant with the example catalog and print its credentials")  # fmt: skip
    p.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args(argv)


async def _prepare(config: Config, dsn: str, *, run_migrations: bool, with_demo: bool) -> None:
    """Migrations and demo data, before the app (and its schema check) starts."""
    db = await open_database(dsn, config, min_size=1, max_size=2, application_name="tms_server-setup")
    try:
        async with db.connection() as conn:
            if run_migrations:
                for m in await migrate(conn):
                    log.info("applied migration %s", m.name)
            if with_demo:
                creds = await demo.ensure_demo(conn)
                # The demo operator gets a new token at every start: the printed link is the way in.
                token = await operators.renew(conn, demo.DEMO_OPERATOR) if config.admin_port else None
                demo.announce(creds, config, token)
    finally:
        await db.close()


def _serve(config: Config, dsn: str, reuse_port: bool) -> None:
    asyncio.run(_run(create_app(config, dsn, reuse_port=reuse_port), config, reuse_port))


async def _run(app: web.Application, config: Config, reuse_port: bool) -> None:
    """Serve until SIGINT/SIGTERM, then drain.

    Not ``web.run_app``: its shutdown marks every connection closing before waiting for handlers,
    and a closing connection ignores incoming bytes (aio-libs/aiohttp#2298), so a request whose body
    was still arriving at SIGTERM hung until the timeout and lost its answer. Here the listener
    closes first, requests in flight finish with their whole bodies, and only then does aiohttp
    close what is left."""
    # keepalive_timeout closes a connection that has no complete request for that long (aiohttp arms
    # it at connect, so a silent or header-trickling client is dropped too).
    runner = web.AppRunner(
        app, access_log=None, shutdown_timeout=CLOSE_TIMEOUT, keepalive_timeout=config.idle_timeout
    )
    await runner.setup()
    use_json_errors(runner.server, connection_cap=config.connection_cap())
    try:
        site = web.TCPSite(
            runner, config.host, config.port, reuse_port=reuse_port or None, backlog=config.listen_backlog()
        )
        await site.start()
        log.info("serving on http://%s:%d (pid %d)", config.host, config.port, os.getpid())
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        watchdog = asyncio.create_task(_follow_supervisor(stop))
        await stop.wait()
        watchdog.cancel()
        await site.stop()
        metrics = app[keys.METRICS]
        log.info("shutting down: %d request(s) in flight", metrics.in_progress)
        deadline = loop.time() + DRAIN_TIMEOUT
        await asyncio.sleep(0.05)  # requests whose headers arrived with the signal get to start
        # Polling, not an Event: the count lives in the middleware, which should not know about shutdown.
        while metrics.in_progress and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    finally:
        await runner.cleanup()


SUPERVISOR_PID = "TMS_SUPERVISOR_PID"


async def _follow_supervisor(stop: asyncio.Event) -> None:
    """A worker shuts down (draining like on SIGTERM) when its supervisor is gone, even after a
    kill -9 that gave the supervisor no chance to stop it: orphaned workers would go on serving
    unsupervised and hold the embedded database. Linux also sends SIGTERM at once (PDEATHSIG)."""
    text = os.environ.get(SUPERVISOR_PID, "")
    if not text.isdigit():
        return
    supervisor = int(text)
    _term_on_parent_death()
    while os.getppid() == supervisor:  # noqa: ASYNC110  # nothing signals a parent's death but polling
        await asyncio.sleep(1.0)
    log.warning("supervisor %d is gone; shutting down", supervisor)
    stop.set()


def _term_on_parent_death() -> None:
    """prctl(PR_SET_PDEATHSIG, SIGTERM) where the C library offers it."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: the getppid() poll above still notices within a second


def _supervise(config: Config, dsn: str) -> int:
    """Run ``config.workers`` server processes on one port (SO_REUSEPORT); restart any that die."""
    env = dict(os.environ, TMS_DATABASE_URL=dsn, TMS_WORKERS="1", TMS_AUTO_MIGRATE="0")
    env[SUPERVISOR_PID] = str(os.getpid())
    # One metrics directory for this supervisor's workers: any of them reports all of them.
    shared_metrics = tempfile.mkdtemp(prefix="tms-metrics-")
    env[MULTIPROC_DIR] = shared_metrics
    try:
        return _supervise_workers(config, env)
    finally:
        shutil.rmtree(shared_metrics, ignore_errors=True)


def _supervise_workers(config: Config, env: dict[str, str]) -> int:
    cmd = [
        sys.executable,
        "-m",
        "tms_server.server",
        "--host",
        config.host,
        "--port",
        str(config.port),
        "--reuse-port",
    ]
    children = [subprocess.Popen(cmd, env=env) for _ in range(config.workers)]  # noqa: S603
    started = [time.monotonic()] * config.workers
    quick_deaths = 0
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for c in children:
            if c.poll() is None:
                c.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while not stopping:
        for i, c in enumerate(children):
            if c.poll() is not None and not stopping:
                worker_gone(c.pid, env[MULTIPROC_DIR])
                # A worker that dies within seconds of starting, again and again, is not a crash to
                # ride out but a fault to report (a port taken since, a database refusing): stop.
                quick_deaths = quick_deaths + 1 if time.monotonic() - started[i] < 10 else 0
                if quick_deaths >= 3:
                    log.error("workers keep exiting right after start (last: %s); stopping", c.returncode)
                    stop(signal.SIGTERM, None)
                    break
                log.error("worker %d exited with %s; restarting it", c.pid, c.returncode)
                time.sleep(1.0)
                children[i] = subprocess.Popen(cmd, env=env)  # noqa: S603
                started[i] = time.monotonic()
        time.sleep(0.2)
    deadline = time.monotonic() + SHUTDOWN_TIMEOUT + 5
    for c in children:
        try:
            c.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            c.kill()
    return 1 if quick_deaths >= 3 else 0


def _check_ports_free(config: Config) -> None:
    """Fail once, before any worker starts, when the KSS, metrics or admin port is taken: workers would
    otherwise fail one after the other, each saying so."""
    import socket

    listeners = ((config.host, config.port, "--port/TMS_PORT"), (config.host, config.metrics_port, "TMS_METRICS_PORT"),
                 (config.admin_host, config.admin_port, "TMS_ADMIN_PORT"))  # fmt: skip
    for host, port, which in listeners:
        if port is None:
            continue
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError as exc:
                raise OSError(
                    f"cannot listen on {host}:{port}: {exc.strerror or exc} (choose another with {which})"
                ) from None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``tms-server``."""
    args = parse_args(argv)
    try:
        flags = {"TMS_HOST": ("--host", args.host), "TMS_PORT": ("--port", args.port),
                 "TMS_WORKERS": ("--workers", args.workers)}  # fmt: skip
        config = from_env(flags=flags)
    except ConfigError as exc:
        print(f"tms-server: configuration error: {exc}", file=sys.stderr)
        return 2
    logs.setup(config.log_format, config.log_level)
    try:
        if not args.reuse_port:  # a worker shares the port on purpose; anyone else finds it taken
            _check_ports_free(config)  # before the database starts or a banner claims we serve
        with database_url(config) as dsn:
            try:
                asyncio.run(_prepare(config, dsn, run_migrations=args.migrate or config.auto_migrate,
                                     with_demo=args.demo))  # fmt: skip
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                raise DatabaseUnavailable(f"cannot reach {config.where()}: {exc}") from None
            if config.workers > 1:
                return _supervise(config, dsn)
            _serve(config, dsn, args.reuse_port)
    except (EmbeddedError, SchemaBehind, DatabaseUnavailable, OSError) as exc:
        # Startup failures are the operator's to fix: say what is wrong, no traceback.
        print(f"tms-server: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
