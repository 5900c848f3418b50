"""Catalog versions in the database: load, history, roll back, and what the servers should serve.

Every load is kept (who, when, a diff summary); ``merchants.catalog_id`` names the version that is
served. Servers poll ``served()`` every few seconds and compile only what changed, so a load
reaches every process sharing the database without a restart.
"""

from __future__ import annotations

import difflib
import hashlib
from datetime import datetime

import asyncpg
from attrs import frozen

from tms_server import merchants

NEXT_VERSION = "SELECT coalesce(max(version), 0) + 1 FROM catalogs WHERE merchant_id = $1"
INSERT = """
INSERT INTO catalogs (merchant_id, version, source, digest, summary, loaded_by)
VALUES ($1, $2, $3, $4, $5, $6) RETURNING id
"""
SERVE = "UPDATE merchants SET catalog_id = $2 WHERE id = $1"
SOURCE_BY_ID = "SELECT source FROM catalogs WHERE id = $1"
BY_VERSION = "SELECT id FROM catalogs WHERE merchant_id = $1 AND version = $2"
HISTORY = """
SELECT c.version, c.digest, c.summary, c.loaded_by, c.loaded_at, (c.id = m.catalog_id) AS served
  FROM catalogs c JOIN merchants m ON m.id = c.merchant_id
 WHERE m.identifier = $1 ORDER BY c.version DESC
"""
SERVED = """
SELECT m.id AS merchant_id, m.identifier, m.active, c.id AS catalog_id, c.digest,
       extract(epoch FROM m.tokens_valid_from)::float8 AS tokens_valid_from,
       coalesce((SELECT array_agg(k.id) FROM merchant_keys k
                  WHERE k.merchant_id = m.id AND k.retired_at IS NULL), '{}') AS active_keys
  FROM merchants m LEFT JOIN catalogs c ON c.id = m.catalog_id
"""
# Serialises loads for one merchant so version numbers never collide.
LOAD_LOCK = "SELECT pg_advisory_xact_lock(746120, $1::int)"


@frozen
class CatalogVersion:
    """One stored version of a merchant's catalog."""

    version: int
    digest: str
    summary: str
    loaded_by: str
    loaded_at: datetime
    served: bool


@frozen
class ServedCatalog:
    """What one merchant's /shippingoptions should be computed from."""

    merchant_id: int
    identifier: str
    active: bool
    catalog_id: int | None
    digest: str | None
    tokens_valid_from: float | None = None  # epoch seconds; tokens issued before it are revoked
    active_keys: frozenset[int] = frozenset()


def digest(source: str) -> str:
    """SHA-256 of the catalog text."""
    return hashlib.sha256(source.encode("utf-8")).hexdigest()


def diff_summary(old: str | None, new: str) -> str:
    """'first version', 'unchanged' or '+A -R lines' against the served version."""
    if old is None:
        return "first version"
    added = removed = 0
    for line in difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=0):
        if line.startswith("+") and not line.startswith("+++"):
            added += 1
        elif line.startswith("-") and not line.startswith("---"):
            removed += 1
    return "unchanged" if not added and not removed else f"+{added} -{removed} lines"


async def load(conn: asyncpg.Connection, identifier: str, source: str, loaded_by: str) -> tuple[int, str]:
    """Store ``source`` (already validated) as the next version and serve it. Returns (version, summary)."""
    async with conn.transaction():
        merchant = await merchants.get(conn, identifier)
        await conn.execute(LOAD_LOCK, merchant.id)
        old = await conn.fetchval(SOURCE_BY_ID, merchant.catalog_id) if merchant.catalog_id else None
        version = await conn.fetchval(NEXT_VERSION, merchant.id)
        summary = diff_summary(old, source)
        cid = await conn.fetchval(INSERT, merchant.id, version, source, digest(source), summary, loaded_by)
        await conn.execute(SERVE, merchant.id, cid)
    return int(version), summary


async def rollback(conn: asyncpg.Connection, identifier: str, version: int) -> None:
    """Serve an earlier stored version again."""
    async with conn.transaction():
        merchant = await merchants.get(conn, identifier)
        cid = await conn.fetchval(BY_VERSION, merchant.id, version)
        if cid is None:
            raise merchants.MerchantError(f"merchant {identifier!r} has no catalog version {version}")
        await conn.execute(SERVE, merchant.id, cid)


async def history(conn: asyncpg.Connection, identifier: str) -> list[CatalogVersion]:
    """Every version of the merchant's catalog, newest first."""
    await merchants.get(conn, identifier)
    return [CatalogVersion(**dict(r)) for r in await conn.fetch(HISTORY, identifier)]


async def source(conn: asyncpg.Connection, catalog_id: int) -> str:
    """The text of one stored version."""
    text = await conn.fetchval(SOURCE_BY_ID, catalog_id)
    if text is None:
        raise LookupError(f"catalog {catalog_id} not found")
    return str(text)


async def served_source(conn: asyncpg.Connection, identifier: str, version: int | None = None) -> str | None:
    """The served (or a given) version's text, or None when the merchant has no catalog."""
    merchant = await merchants.get(conn, identifier)
    cid = merchant.catalog_id if version is None else await conn.fetchval(BY_VERSION, merchant.id, version)
    return None if cid is None else await source(conn, cid)


async def served(conn: asyncpg.Connection) -> list[ServedCatalog]:
    """For every merchant, the catalog version to serve (cheap: ids and digests only)."""
    return [
        ServedCatalog(**(dict(r) | {"active_keys": frozenset(r["active_keys"])}))
        for r in await conn.fetch(SERVED)
    ]
