"""Schema migrations: numbered plain-SQL files in ``sql/``, applied in order.

Each file runs in its own transaction under a PostgreSQL advisory lock, so several processes
starting at once apply each migration exactly once; ``schema_migrations`` records what ran.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import asyncpg
from attrs import frozen

# Any constant will do; it only has to be the same in every process of this project.
MIGRATION_LOCK = 7_461_202_611

_NAME = re.compile(r"^(\d{3,})_[a-z0-9_]+\.sql$")

CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""
APPLIED = "SELECT version FROM schema_migrations ORDER BY version"
RECORD = "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)"


class SchemaBehind(RuntimeError):
    """The database lacks migrations this code needs; run ``tms-admin migrate``."""


@frozen
class Migration:
    """One numbered SQL file."""

    version: int
    name: str
    path: Path

    def sql(self) -> str:
        """The file's text."""
        return self.path.read_text(encoding="utf-8")


def sql_dir() -> Path:
    """The migrations folder: the checkout's ``sql/`` or the installed copy."""
    here = Path(__file__).resolve().parent.parent.parent / "sql"
    installed = Path(sys.prefix) / "share" / "tms_server" / "sql"
    for cand in (here, installed):
        if cand.is_dir() and any(cand.glob("*.sql")):
            return cand
    raise FileNotFoundError(f"no migrations found in {here} or {installed}")


def migrations(folder: Path | None = None) -> list[Migration]:
    """All migration files, in order; a badly named file is an error, not silently skipped."""
    found = []
    for path in sorted((folder or sql_dir()).glob("*.sql")):
        m = _NAME.match(path.name)
        if not m:
            raise ValueError(f"{path.name}: migration files are named NNN_description.sql")
        found.append(Migration(int(m.group(1)), path.stem, path))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise ValueError("two migration files share a number")
    return found


async def applied(conn: asyncpg.Connection) -> set[int]:
    """Versions already recorded (empty on a new database)."""
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return set()
    return {r["version"] for r in await conn.fetch(APPLIED)}


async def pending(conn: asyncpg.Connection) -> list[Migration]:
    """Migrations not yet applied."""
    done = await applied(conn)
    return [m for m in migrations() if m.version not in done]


async def migrate(conn: asyncpg.Connection) -> list[Migration]:
    """Apply every pending migration; returns those applied by this call."""
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
    try:
        await conn.execute(CREATE_TABLE)
        ran = []
        for m in await pending(conn):
            async with conn.transaction():
                await conn.execute(m.sql())
                await conn.execute(RECORD, m.version, m.name)
            ran.append(m)
        return ran
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)


async def check_current(conn: asyncpg.Connection) -> None:
    """Raise SchemaBehind when migrations are pending."""
    todo = await pending(conn)
    if todo:
        names = ", ".join(m.name for m in todo)
        raise SchemaBehind(f"database schema is behind (pending: {names}); run `tms-admin migrate`")
