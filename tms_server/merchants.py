"""Merchants and their KSS keys: what operators create, rotate and disable."""

from __future__ import annotations

import re
import secrets
from datetime import datetime

import asyncpg
from attrs import frozen

IDENTIFIER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,255}$")

INSERT_MERCHANT = "INSERT INTO merchants (identifier, name) VALUES ($1, $2) RETURNING id"
INSERT_KEY = "INSERT INTO merchant_keys (merchant_id, key) VALUES ($1, $2)"
MERCHANT_BY_IDENTIFIER = (
    "SELECT id, identifier, name, active, catalog_id, created_at FROM merchants WHERE identifier = $1"
)
LIST_MERCHANTS = """
SELECT m.id, m.identifier, m.name, m.active, m.catalog_id, m.created_at,
       (SELECT count(*) FROM merchant_keys k WHERE k.merchant_id = m.id AND k.retired_at IS NULL) AS keys,
       (SELECT c.version FROM catalogs c WHERE c.id = m.catalog_id) AS catalog_version
  FROM merchants m ORDER BY m.identifier
"""
# Keep the newest previous key active (rotation without downtime); retire the older ones.
RETIRE_OLD_KEYS = """
UPDATE merchant_keys SET retired_at = now()
 WHERE merchant_id = $1 AND retired_at IS NULL
   AND id NOT IN (SELECT id FROM merchant_keys WHERE merchant_id = $1 AND retired_at IS NULL
                  ORDER BY created_at DESC, id DESC LIMIT $2)
"""
SET_ACTIVE = "UPDATE merchants SET active = $2 WHERE id = $1"
REVOKE_TOKENS = "UPDATE merchants SET tokens_valid_from = now() WHERE id = $1"


class MerchantError(ValueError):
    """An operator asked for something about merchants that cannot be done; the message says why."""


@frozen
class Merchant:
    """A merchant as operators see it."""

    id: int
    identifier: str
    name: str | None
    active: bool
    catalog_id: int | None
    created_at: datetime
    keys: int = 0
    catalog_version: int | None = None


def generate_key() -> str:
    """A strong random key (256 bits, URL-safe) for a merchant to configure in KSS."""
    return secrets.token_urlsafe(32)


def check_identifier(identifier: str) -> None:
    """Identifiers are what KSS sends; keep them printable and unambiguous."""
    if not IDENTIFIER.match(identifier):
        raise MerchantError(
            f"identifier {identifier!r}: use 1-256 characters from letters, digits and . _ : @ -"
        )


WEAK_KEY_LENGTH = 16


def check_key(key: str) -> None:
    """Keys are printable text of 1-512 characters (KSS's own example key has 7)."""
    if not 1 <= len(key) <= 512 or not key.isprintable() or key != key.strip():
        raise MerchantError("key: use 1-512 printable characters without surrounding spaces")


def is_weak(key: str) -> bool:
    """Short keys can be guessed offline from one captured digest; operators are warned."""
    return len(key) < WEAK_KEY_LENGTH


async def get(conn: asyncpg.Connection, identifier: str) -> Merchant:
    """The merchant with this identifier, or MerchantError."""
    row = await conn.fetchrow(MERCHANT_BY_IDENTIFIER, identifier)
    if row is None:
        raise MerchantError(f"no merchant with identifier {identifier!r}")
    return Merchant(**dict(row))


async def add(conn: asyncpg.Connection, identifier: str, key: str, name: str | None = None) -> Merchant:
    """Create a merchant with one active key."""
    check_identifier(identifier)
    check_key(key)
    async with conn.transaction():
        try:
            mid = await conn.fetchval(INSERT_MERCHANT, identifier, name)
        except asyncpg.UniqueViolationError:
            raise MerchantError(f"merchant {identifier!r} already exists") from None
        await conn.execute(INSERT_KEY, mid, key)
    return await get(conn, identifier)


async def rotate_key(
    conn: asyncpg.Connection, identifier: str, key: str, *, keep_previous: bool = True
) -> int:
    """Add ``key``; the previous key stays valid unless ``keep_previous`` is false. Returns active keys."""
    check_key(key)
    async with conn.transaction():
        merchant = await get(conn, identifier)
        await conn.execute(INSERT_KEY, merchant.id, key)
        await conn.execute(RETIRE_OLD_KEYS, merchant.id, 2 if keep_previous else 1)
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM merchant_keys WHERE merchant_id = $1 AND retired_at IS NULL",
                merchant.id,
            )
        )


async def set_active(conn: asyncpg.Connection, identifier: str, active: bool) -> Merchant:
    """Enable or disable a merchant; a disabled merchant's tokens stop working within seconds, and
    stay revoked after it is enabled again (KSS then obtains new ones)."""
    async with conn.transaction():
        merchant = await get(conn, identifier)
        await conn.execute(SET_ACTIVE, merchant.id, active)
        if not active:
            await conn.execute(REVOKE_TOKENS, merchant.id)
    return await get(conn, identifier)


async def revoke_tokens(conn: asyncpg.Connection, identifier: str) -> None:
    """Refuse every token issued to the merchant until now (a stolen token); KSS obtains a new one
    with /auth. Every server process applies it within ``TMS_REFRESH_INTERVAL``."""
    merchant = await get(conn, identifier)
    await conn.execute(REVOKE_TOKENS, merchant.id)


async def list_all(conn: asyncpg.Connection) -> list[Merchant]:
    """Every merchant with key count and served catalog version."""
    return [Merchant(**dict(r)) for r in await conn.fetch(LIST_MERCHANTS)]
