"""The foundation: configuration errors, migrations, the schema check at start, the embedded
PostgreSQL shared between processes, and graceful shutdown."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from tests import kss
from tests.conftest import recreate_database
from tests.kss import new_session, options_request, shipment_request
from tests.server_process import ServerProcess, free_port
from tms_server.config import ConfigError, from_env
from tms_server.db.embedded import EmbeddedPostgres
from tms_server.db.migrate import applied, migrate, migrations


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TMS_PORT": "eighty"}, "TMS_PORT: expected a whole number, got 'eighty'"),
        ({"TMS_PORT": "70000"}, "TMS_PORT: must be at least 0 and at most 65535"),
        ({"TMS_TOKEN_TTL": "5"}, "TMS_TOKEN_TTL: must be at least 10"),
        ({"TMS_SWEEP_INTERVAL": "soon"}, "TMS_SWEEP_INTERVAL: expected a number of seconds"),
        ({"TMS_LOG_FORMAT": "xml"}, "TMS_LOG_FORMAT: expected one of auto, json, text"),
        ({"TMS_AUTO_MIGRATE": "maybe"}, "TMS_AUTO_MIGRATE: expected true/false"),
        ({"TMS_DATABASE_URL": "mysql://x"}, "TMS_DATABASE_URL: expected a postgresql:// URL"),
        ({"TMS_POOL_MIN": "5", "TMS_POOL_MAX": "2"}, "TMS_POOL_MIN (5) must not exceed TMS_POOL_MAX (2)"),
    ],
)
def test_config_errors_name_the_variable(env: dict[str, str], message: str) -> None:
    """A bad TMS_* value is refused with a message naming the variable."""
    with pytest.raises(ConfigError) as err:
        from_env(env)
    assert str(err.value).startswith(message)


def test_config_defaults_and_flags() -> None:
    """Defaults are 127.0.0.1:8080, .tms-data, 3600 s tokens and reservations; flags override the environment."""
    cfg = from_env({"TMS_PORT": "9000"}, port=9100)
    assert (cfg.host, cfg.port, str(cfg.data_dir)) == ("127.0.0.1", 9100, ".tms-data")
    assert (cfg.token_ttl, cfg.reservation_ttl, cfg.sweep_interval) == (3600, 3600, 60.0)
    assert cfg.embedded
    shown = from_env({"TMS_DATABASE_URL": "postgresql://tms:s3cret@db/tms"}).safe_dict()
    assert "s3cret" not in str(shown)


def test_bad_config_stops_the_server_with_a_clear_message() -> None:
    """tms-server exits 2 naming the variable, without a traceback."""
    out = subprocess.run([sys.executable, "-m", "tms_server.server"], env={**os.environ, "TMS_PORT": "x"},
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert out.returncode == 2
    assert "TMS_PORT" in out.stderr and "Traceback" not in out.stderr


async def _fresh_database(dsn: str, name: str) -> str:
    await recreate_database(dsn, name)
    return (
        dsn.replace("/tms_test?", f"/{name}?") if "/tms_test?" in dsn else dsn.rsplit("/", 1)[0] + f"/{name}"
    )


async def test_server_refuses_a_schema_that_is_behind(dsn: str, tmp_path: Path) -> None:
    """Without --migrate the server will not serve an unmigrated database; with it, it migrates and serves."""
    if os.environ.get("TMS_TEST_DATABASE_URL"):
        pytest.skip("needs CREATE DATABASE on the test server")  # an external URL may not allow it
    fresh = await _fresh_database(dsn, "tms_behind")
    out = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "tms_server.server", "--port", str(free_port())],
                         env={**os.environ, "TMS_DATABASE_URL": fresh}, capture_output=True, text=True,
                         timeout=60)  # fmt: skip
    assert out.returncode == 1
    assert "tms-admin migrate" in out.stderr and "Traceback" not in out.stderr
    server = ServerProcess(fresh, tmp_path / "log", TMS_AUTO_MIGRATE="true").start()
    assert server.stop() == 0
    conn = await asyncpg.connect(fresh)
    try:
        assert await applied(conn) == {m.version for m in migrations()}
    finally:
        await conn.close()


async def test_concurrent_migrations_apply_each_file_once(dsn: str) -> None:
    """Several processes migrating at once (advisory lock) apply each migration exactly once."""
    if os.environ.get("TMS_TEST_DATABASE_URL"):
        pytest.skip("needs CREATE DATABASE on the test server")
    fresh = await _fresh_database(dsn, "tms_race")
    conns = [await asyncpg.connect(fresh) for _ in range(4)]
    try:
        results = await asyncio.gather(*(migrate(c) for c in conns))
        assert sorted(len(r) for r in results) == [0, 0, 0, len(migrations())]
        count = await conns[0].fetchval("SELECT count(*) FROM schema_migrations")
        assert count == len(migrations())
    finally:
        for c in conns:
            await c.close()


def test_embedded_cluster_is_shared_and_stopped_by_its_last_user(tmp_path: Path) -> None:
    """Two users share one embedded cluster; it keeps running until the last one releases it."""
    first, second = EmbeddedPostgres(tmp_path / "data"), EmbeddedPostgres(tmp_path / "data")
    dsn = first.acquire()
    assert second.acquire() == dsn
    pid_file = tmp_path / "data" / "pgdata" / "postmaster.pid"
    first._registered = True
    # Both handles live in this process: simulate two processes by registering a second live pid.
    helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / "data" / ".users").write_text(f"{os.getpid()}\n{helper.pid}\n")
        first.release()
        assert pid_file.exists(), "stopped while another process still uses it"
    finally:
        helper.kill()
        helper.wait()
    second._registered = True
    second.release()
    deadline = time.monotonic() + 10
    while pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not pid_file.exists(), "the last user out did not stop the cluster"


async def test_sigterm_lets_an_in_flight_request_finish(dsn: str, conn: Any, tmp_path: Path) -> None:
    """A reservation still being written when SIGTERM comes is answered 201 before the server exits 0."""
    m = await kss.merchant_with_catalog(conn)
    server = ServerProcess(dsn, tmp_path / "log").start()
    assert server.proc is not None
    async with aiohttp.ClientSession() as session:
        headers = await kss.token(session, server.url, m)
        option = await kss.first_option(session, server.url, headers)
        body = shipment_request(options_request(new_session()), option)
        async with session.post(f"{server.url}/shipment", json=body, headers=headers) as resp:
            assert resp.status == 201
        async with conn.transaction():
            # Hold the reservation's row so the next POST is still in flight when SIGTERM arrives.
            await conn.execute("SELECT 1 FROM shipments WHERE session_id = $1 FOR UPDATE", body["session_id"])
            pending = asyncio.create_task(session.post(f"{server.url}/shipment", json=body, headers=headers))
            await asyncio.sleep(0.5)
            server.proc.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.5)
            assert not pending.done()
        resp = await asyncio.wait_for(pending, 20)
        assert resp.status == 201
        resp.release()
    assert server.proc.wait(30) == 0
