"""The connection pool, the unit-of-work transaction, and the database's origin (URL or embedded).

A database outage must not crash requests into 500s: every connection-level failure is turned
into ``DatabaseUnavailable``, which the HTTP layer answers with 503 and a failure_reason. The pool
reconnects by itself once PostgreSQL is back.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any, cast

import asyncpg
import orjson

from tms_server.config import Config
from tms_server.db.embedded import EmbeddedPostgres


class DatabaseUnavailable(RuntimeError):
    """PostgreSQL cannot be reached right now; try again later (HTTP 503)."""


# Connection-level failures: the database is down, restarting, or the connection broke.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.QueryCanceledError,
    asyncpg.exceptions.TooManyConnectionsError,
    # Refusals when (re)connecting: the database was dropped or is being restored (3D000), our
    # credentials are refused mid-rotation (28000/28P01). Not our bug, and KSS should retry: 503.
    asyncpg.exceptions.InvalidCatalogNameError,
    asyncpg.exceptions.InvalidAuthorizationSpecificationError,
    # A failed-over primary that came back as a standby refuses writes until traffic moves (25006).
    asyncpg.exceptions.ReadOnlySQLTransactionError,
    # asyncpg's own protocol state broke with the connection ("cannot switch to state ...; another
    # operation is in progress"): the connection is unusable, the database may be going away.
    asyncpg.exceptions._base.InternalClientError,
)


def _discard(conn: Any) -> None:
    """Close a connection that failed mid-operation, so the pool replaces it instead of reusing it."""
    with contextlib.suppress(Exception):
        if not conn.is_closed():
            conn.terminate()


@contextlib.contextmanager
def database_url(config: Config) -> Iterator[str]:
    """The configured URL, or an embedded cluster's (started if needed, stopped by its last user)."""
    if config.database_url:
        yield config.database_url
        return
    pg = EmbeddedPostgres(config.data_dir)
    dsn = pg.acquire()
    try:
        yield dsn
    finally:
        pg.release()


async def use_json_codec(conn: asyncpg.Connection) -> None:
    """json and jsonb columns as Python values (orjson both ways): every connection we open."""
    for typ in ("jsonb", "json"):
        await conn.set_type_codec(
            typ, encoder=lambda v: orjson.dumps(v).decode(), decoder=orjson.loads, schema="pg_catalog"
        )


_init_connection = use_json_codec


async def _keep_session(_conn: asyncpg.Connection) -> None:
    """The pool's reset: nothing beyond what asyncpg always does on release (roll back an open
    transaction, drop listeners). Our sessions carry no state to reset: no SET (settings are
    startup parameters), no LISTEN, no cursor outside a transaction, advisory locks only at
    transaction level (migrations' session lock is released in ``finally``). The default reset ran
    four statements per release, a round trip while the connection stayed out of the pool."""


class Database:
    """A pool plus the one way we use it: short transactions, errors mapped to DatabaseUnavailable."""

    def __init__(self, pool: asyncpg.Pool, timeout: float) -> None:
        self.pool = pool
        self.timeout = timeout

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[asyncpg.Connection]:
        """One unit of work: commit on normal exit, roll back on any exception. A connection-level
        failure (even one raised by the commit) discards the connection and raises DatabaseUnavailable."""
        try:
            conn = await self._acquire()
            try:
                async with conn.transaction():
                    yield cast(asyncpg.Connection, conn)  # the pool's proxy behaves as a Connection
            except CONNECTION_ERRORS:
                _discard(conn)
                raise
            finally:
                await self.pool.release(conn)
        except CONNECTION_ERRORS as exc:
            raise DatabaseUnavailable(f"database unavailable: {type(exc).__name__}") from exc

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection without an explicit transaction (for single statements)."""
        try:
            conn = await self._acquire()
            try:
                yield cast(asyncpg.Connection, conn)
            except CONNECTION_ERRORS:
                _discard(conn)
                raise
            finally:
                await self.pool.release(conn)
        except CONNECTION_ERRORS as exc:
            raise DatabaseUnavailable(f"database unavailable: {type(exc).__name__}") from exc

    async def _acquire(self) -> Any:
        """A pooled connection within ``timeout`` seconds (else TimeoutError). ``asyncio.timeout``
        rather than asyncpg's ``acquire(timeout=)``, which wraps each acquire in ``wait_for`` and so
        in a task of its own."""
        async with asyncio.timeout(self.timeout):
            return await self.pool.acquire()

    def stats(self) -> dict[str, int]:
        """Pool usage, for metrics."""
        return {
            "size": self.pool.get_size(),
            "idle": self.pool.get_idle_size(),
            "max": self.pool.get_max_size(),
        }

    async def close(self) -> None:
        """Close the pool, waiting briefly for connections in use."""
        try:
            await asyncio.wait_for(self.pool.close(), timeout=10)
        except CONNECTION_ERRORS:
            self.pool.terminate()


async def open_database(dsn: str, config: Config, **kwargs: Any) -> Database:
    """Create the pool. Connections set UTC and a statement timeout so nothing hangs forever."""
    pool = await asyncpg.create_pool(
        dsn,
        min_size=kwargs.pop("min_size", config.pool_min),
        max_size=kwargs.pop("max_size", config.pool_max),
        init=_init_connection,
        reset=_keep_session,
        timeout=config.db_timeout,
        command_timeout=config.db_timeout * 2,
        server_settings={
            "timezone": "UTC",
            "application_name": kwargs.pop("application_name", "tms_server"),
            "statement_timeout": str(int(config.db_timeout * 2000)),
        },
        **kwargs,
    )
    return Database(pool, config.db_timeout)
