"""Test fixtures: one real PostgreSQL per test session, migrated once, emptied before each test.

The database is the embedded cluster (in a temporary directory) unless TMS_TEST_DATABASE_URL names
another PostgreSQL. Nothing is mocked.
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import attrs
import pytest
from aiohttp.test_utils import TestClient

from tms_server import catalog_store, merchants
from tms_server.config import Config
from tms_server.db.embedded import EmbeddedPostgres
from tms_server.db.migrate import migrate

FIXTURES = Path(__file__).parent / "fixtures"

TABLES = (
    "audit_log, tracking, shipments, auth_nonces, signing_keys, merchant_keys, catalogs, merchants, "
    "pickup_points, pickup_networks, postal_areas, postal_area_imports, operator_sessions, operators"
)


async def recreate_database(admin_dsn: str, name: str) -> None:
    """Drop (whoever is connected) and create the database ``name`` on ``admin_dsn``'s server."""
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def create_and_migrate(admin_dsn: str, dsn: str, dbname: str | None) -> None:
    """Migrate ``dsn``, after (re)creating the database ``dbname`` on ``admin_dsn``'s server if given."""
    if dbname:
        await recreate_database(admin_dsn, dbname)
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_root() -> Iterator[Path]:
    """A temporary directory for the embedded cluster."""
    root = Path(tempfile.mkdtemp(prefix="tms-test-"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def dsn(pg_root: Path) -> Iterator[str]:
    """The test database's URL, migrated once per session."""
    import os

    external = os.environ.get("TMS_TEST_DATABASE_URL")
    if external:
        asyncio.run(create_and_migrate(external, external, None))
        yield external
        return
    pg = EmbeddedPostgres(pg_root / "data")
    pg.acquire()
    url = pg.dsn("tms_test")
    asyncio.run(create_and_migrate(pg.dsn("postgres"), url, "tms_test"))
    try:
        yield url
    finally:
        pg.release()


@pytest.fixture
def config(dsn: str, tmp_path: Path) -> Config:
    """A Config pointing at the test database, with fast timers."""
    return Config(
        database_url=dsn, data_dir=tmp_path, refresh_interval=0.2, sweep_interval=3600, log_format="text"
    )


@pytest.fixture
async def conn(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to an emptied test database (every table truncated)."""
    c = await asyncpg.connect(dsn)
    for typ in ("jsonb", "json"):
        import orjson

        await c.set_type_codec(typ, encoder=lambda v: orjson.dumps(v).decode(), decoder=orjson.loads,
                               schema="pg_catalog")  # fmt: skip
    await c.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")
    yield c
    await c.close()


@attrs.define
class Merchant:
    """A merchant created for a test, with its key."""

    identifier: str
    key: str

    def auth_body(self, nonce: str | None = None) -> dict[str, Any]:
        """A valid /auth body for this merchant."""
        nonce = nonce or uuid.uuid4().hex
        digest = hashlib.sha256((nonce + self.key).encode()).hexdigest()
        return {"identifier": self.identifier, "secret": {"nonce": nonce, "digest": digest}}


MakeMerchant = Callable[..., Awaitable[Merchant]]


@pytest.fixture
def make_merchant(conn: asyncpg.Connection) -> MakeMerchant:
    """Create a merchant (with the example catalog unless catalog=None)."""

    async def make(identifier: str = "shop-a", catalog: str | None = "example") -> Merchant:
        key = merchants.generate_key()
        await merchants.add(conn, identifier, key)
        if catalog is not None:
            from tms_server.catalog import example_catalog_text

            text = example_catalog_text() if catalog == "example" else catalog
            await catalog_store.load(conn, identifier, text, loaded_by="test")
        return Merchant(identifier, key)

    return make


@pytest.fixture
async def client(aiohttp_client: Any, config: Config, conn: asyncpg.Connection) -> TestClient[Any, Any]:
    """A test client for a server app on the emptied test database."""
    from tms_server.app import create_app

    app = create_app(config, sweeper=False)
    result: TestClient[Any, Any] = await aiohttp_client(app)
    return result


async def token_for(client: TestClient[Any, Any], merchant: Merchant) -> str:
    """Authenticate as ``merchant`` and return the bearer token."""
    resp = await client.post("/auth", json=merchant.auth_body())
    assert resp.status == 201, await resp.text()
    return str((await resp.json())["token"])


def load_fixture(name: str) -> Any:
    """A JSON file from tests/fixtures."""
    import json

    return json.loads((FIXTURES / name).read_text())


@pytest.fixture
async def own_cluster(tmp_path: Path) -> AsyncIterator[EmbeddedPostgres]:
    """A migrated PostgreSQL cluster of this test's own, so stopping it disturbs no other test."""
    pg = EmbeddedPostgres(tmp_path / "pg")
    pg.acquire()
    try:
        await create_and_migrate(pg.dsn(), pg.dsn(), None)
        yield pg
    finally:
        pg.release()
