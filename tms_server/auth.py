"""Authentication: the KSS digest check, replay protection, and the JWTs we issue.

KSS proves it knows a merchant's key by sending ``hex(SHA-256(nonce + key))``. We compare in
constant time, against every active key of the merchant (two may be active during a rotation),
and record the nonce so the same request cannot be replayed. Tokens are HS256 JWTs signed with a
key from ``signing_keys`` (shared by all processes on the database) and carry its ``kid``;
verification pins the algorithm and checks issuer, audience and expiry with 1 s of leeway.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import uuid
from collections.abc import Mapping

import asyncpg
import jwt
from attrs import frozen

ALGORITHM = "HS256"
LEEWAY_SECONDS = 1
VERIFIED_CACHE_SIZE = 20_000

# Compared against when the identifier is unknown, so both failures cost the same work.
_DUMMY_KEY = secrets.token_hex(32)

MERCHANT_KEYS = """
SELECT m.id, k.id AS key_id, k.key
  FROM merchants m JOIN merchant_keys k ON k.merchant_id = m.id
 WHERE m.identifier = $1 AND m.active AND k.retired_at IS NULL
"""
RECORD_NONCE = """
INSERT INTO auth_nonces (merchant_id, nonce) VALUES ($1, $2)
ON CONFLICT (merchant_id, nonce) DO UPDATE SET seen_at = now()
  WHERE auth_nonces.seen_at < now() - make_interval(secs => $3)
RETURNING extract(epoch FROM now())::float8
"""
SIGNING_KEYS = """
SELECT kid, secret, created_at, retired_at FROM signing_keys
 WHERE retired_at IS NULL OR retired_at > now() - make_interval(secs => $1)
 ORDER BY created_at DESC
"""
ACTIVE_SIGNING_KEY = "SELECT kid FROM signing_keys WHERE retired_at IS NULL ORDER BY created_at DESC LIMIT 1"
INSERT_SIGNING_KEY = "INSERT INTO signing_keys (kid, secret) VALUES ($1, $2)"
RETIRE_SIGNING_KEYS = "UPDATE signing_keys SET retired_at = now() WHERE retired_at IS NULL AND kid <> $1"
PRUNE_NONCES = "DELETE FROM auth_nonces WHERE seen_at < now() - make_interval(secs => $1)"
# Serialises key creation between processes that start at the same moment.
SIGNING_KEY_LOCK = 7_461_202_612


class InvalidToken(Exception):
    """The bearer token is missing, malformed, forged, expired or not ours (HTTP 401)."""


@frozen
class TokenClaims:
    """Who a valid token speaks for: ``key_id`` is the merchant key /auth was proven with,
    ``issued_at`` the issue time (UTC epoch seconds, millisecond precision)."""

    merchant_id: int
    identifier: str
    expires_at: int
    key_id: int = 0
    issued_at: float = 0.0


def digest_matches(nonce: str, key: str, digest: str) -> bool:
    """Whether ``digest`` is hex SHA-256 of ``nonce + key`` (case-insensitive, constant time)."""
    expected = hashlib.sha256((nonce + key).encode("utf-8")).hexdigest()
    return hmac.compare_digest(expected.encode("ascii"), digest.strip().lower().encode("utf-8", "replace"))


async def authenticate(
    conn: asyncpg.Connection, identifier: str, nonce: str, digest: str, *, replay_window: int
) -> tuple[int, int, float] | None:
    """(merchant id, id of the key that matched, the database's clock in epoch seconds) when the
    digest matches an active key and the nonce was not seen within ``replay_window`` seconds; else
    None. Tokens are stamped with the database's clock, the one revocations are written with, so
    clock skew between servers and the database cannot let an older token through."""
    rows = await conn.fetch(MERCHANT_KEYS, identifier)
    keys = [r["key"] for r in rows] or [_DUMMY_KEY]
    # Check every key (no early exit) so timing does not tell how many keys matched or exist.
    matched = [digest_matches(nonce, k, digest) for k in keys]
    if not rows or not any(matched):
        return None
    merchant_id: int = rows[0]["id"]
    key_id: int = next(r["key_id"] for r, ok in zip(rows, matched, strict=False) if ok)
    stamped = await conn.fetchval(RECORD_NONCE, merchant_id, nonce, float(replay_window))
    return None if stamped is None else (merchant_id, key_id, float(stamped))


class KeyRing:
    """The signing keys this process knows, refreshed from the database."""

    def __init__(self, *, issuer: str, audience: str, ttl: int) -> None:
        self.issuer = issuer
        self.audience = audience
        self.ttl = ttl
        self._keys: dict[str, bytes] = {}
        self._current: str | None = None
        self._verified: dict[str, tuple[TokenClaims, str]] = {}

    def update(self, keys: Mapping[str, bytes], current: str | None) -> None:
        """Replace the known keys (called by the refresher)."""
        self._keys = dict(keys)
        self._current = current

    @property
    def ready(self) -> bool:
        """Whether a signing key is loaded."""
        return self._current is not None

    def knows(self, kid: str) -> bool:
        """Whether ``kid`` is a key we can verify with."""
        return kid in self._keys

    def issue(self, merchant_id: int, identifier: str, key_id: int = 0, now: float | None = None) -> str:
        """A signed token for this merchant, obtained with its key ``key_id``.

        The private claim ``iat_ms`` is the issue time in milliseconds (``iat`` stays whole seconds),
        so a revocation at 10:00:00.500 refuses a token of 10:00:00.200 and not one of 10:00:00.800."""
        if self._current is None:
            raise RuntimeError("no signing key loaded")
        issued = now if now is not None else time.time()
        iat = int(issued)
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": identifier,
            "mid": merchant_id,
            "mk": key_id,
            "iat": iat,
            "iat_ms": int(issued * 1000),
            "nbf": iat,
            "exp": iat + self.ttl,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(
            claims, self._keys[self._current], algorithm=ALGORITHM, headers={"kid": self._current}
        )

    def kid_of(self, token: str) -> str:
        """The token's key id, without verifying anything (to decide whether to reload keys)."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidToken("malformed") from None
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise InvalidToken("no kid")
        return kid

    def verify(self, token: str) -> TokenClaims:
        """The claims of a valid token; anything else raises InvalidToken.

        KSS sends the same token on every call until it expires, so a token that verified once is
        remembered (with its key id and expiry) instead of being decoded again each time."""
        hit = self._verified.get(token)
        if hit is not None:
            claims, kid = hit
            if kid in self._keys and time.time() <= claims.expires_at + LEEWAY_SECONDS:
                return claims
            del self._verified[token]
        claims, kid = self._verify(token)
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            self._verified.clear()
        self._verified[token] = (claims, kid)
        return claims

    def _verify(self, token: str) -> tuple[TokenClaims, str]:
        kid = self.kid_of(token)
        key = self._keys.get(kid)
        if key is None:
            raise InvalidToken("unknown kid")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iat", "iss", "aud", "sub", "mid", "mk", "iat_ms"]},
            )
        except jwt.PyJWTError:
            raise InvalidToken("invalid") from None
        mid, sub, mk, iat = claims.get("mid"), claims.get("sub"), claims.get("mk"), claims.get("iat_ms")
        if type(mid) is not int or not isinstance(sub, str) or type(mk) is not int or type(iat) is not int:
            raise InvalidToken("bad claims")
        return TokenClaims(mid, sub, int(claims["exp"]), mk, iat / 1000), kid


async def load_signing_keys(conn: asyncpg.Connection, token_ttl: int) -> tuple[dict[str, bytes], str | None]:
    """Keys usable for verification (active, or retired less than a token lifetime ago) and the current one."""
    rows = await conn.fetch(SIGNING_KEYS, float(token_ttl + LEEWAY_SECONDS))
    keys = {r["kid"]: bytes(r["secret"]) for r in rows}
    current = next((r["kid"] for r in rows if r["retired_at"] is None), None)
    return keys, current


async def ensure_signing_key(conn: asyncpg.Connection) -> str:
    """The current signing key's id, creating the first one if there is none."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", SIGNING_KEY_LOCK)
        kid = await conn.fetchval(ACTIVE_SIGNING_KEY)
        if kid is None:
            kid = new_kid()
            await conn.execute(INSERT_SIGNING_KEY, kid, secrets.token_bytes(64))
    return str(kid)


async def rotate_signing_key(conn: asyncpg.Connection) -> str:
    """Make a new current key; the old ones stay valid for verification for one token lifetime."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", SIGNING_KEY_LOCK)
        kid = new_kid()
        await conn.execute(INSERT_SIGNING_KEY, kid, secrets.token_bytes(64))
        await conn.execute(RETIRE_SIGNING_KEYS, kid)
    return kid


def new_kid() -> str:
    """A fresh, sortable-enough key id."""
    return f"k{int(time.time())}-{secrets.token_hex(4)}"


async def prune_nonces(conn: asyncpg.Connection, older_than: float) -> int:
    """Forget nonces older than ``older_than`` seconds (``TMS_NONCE_RETENTION``); returns how many."""
    result = await conn.execute(PRUNE_NONCES, float(older_than))
    return int(result.split()[-1])
