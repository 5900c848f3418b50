"""Operators of the web UI: named tokens, browser sessions, and the audit of who came and went.

``tms-admin operator add NAME`` prints a token once; only its SHA-256 digest is stored (a token is
32 random bytes, so an unsalted digest is as strong as the token). A login exchanges the token for
a session: a random id set in an HttpOnly cookie (again stored as a digest) and a CSRF token every
form of the UI carries. Sessions end at logout, after ``SESSION_SECONDS``, or when the operator is
removed. Logins (and refused ones) and logouts are written to the audit trail.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from datetime import datetime
from typing import Final

import asyncpg
from attrs import frozen

__all__ = [
    "SESSION_SECONDS",
    "Operator",
    "OperatorError",
    "Session",
    "add",
    "by_token",
    "listing",
    "login",
    "logout",
    "remove",
    "session",
]  # fmt: skip

SESSION_SECONDS: Final = 8 * 3600  # a working day; the cookie carries the same Max-Age
NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


class OperatorError(ValueError):
    """A name that is taken, unknown or malformed; the message says which."""


@frozen
class Operator:
    """An operator as listed: ``sessions`` open now."""

    name: str
    created_at: datetime
    sessions: int = 0


@frozen
class Session:
    """A logged-in browser: whose it is and the CSRF token its forms carry."""

    operator: str
    csrf: str


def _digest(secret: str) -> bytes:
    # Header bytes that are not UTF-8 arrive as lone surrogates: such a credential is simply wrong.
    return hashlib.sha256(secret.encode("utf-8", "surrogateescape")).digest()


def _check_name(name: str) -> None:
    if not NAME.match(name):
        raise OperatorError(f"operator name {name!r}: 1-64 letters, digits, '.', '_', '@' or '-'")


async def add(conn: asyncpg.Connection, name: str) -> str:
    """Create operator ``name``; returns the token (shown once, never stored)."""
    _check_name(name)
    token = "op_" + secrets.token_urlsafe(32)
    try:
        await conn.execute("INSERT INTO operators (name, token_hash) VALUES ($1, $2)", name, _digest(token))
    except asyncpg.UniqueViolationError:
        raise OperatorError(f"operator {name!r} exists (remove it first to issue a new token)") from None
    await _audit(conn, "tms-admin", "operator_added", name)
    return token


async def renew(conn: asyncpg.Connection, name: str) -> str:
    """A new token for ``name`` (created when missing); the old token and its sessions end."""
    _check_name(name)
    token = "op_" + secrets.token_urlsafe(32)
    async with conn.transaction():
        found = await conn.fetchval(
            "INSERT INTO operators (name, token_hash) VALUES ($1, $2) "
            "ON CONFLICT (name) DO UPDATE SET token_hash = EXCLUDED.token_hash RETURNING id",
            name, _digest(token),
        )  # fmt: skip
        await conn.execute("DELETE FROM operator_sessions WHERE operator_id = $1", found)
        await _audit(conn, "tms-server --demo", "operator_token_renewed", name)
    return token


async def remove(conn: asyncpg.Connection, name: str) -> None:
    """Delete operator ``name`` and end their sessions; OperatorError when there is none."""
    if await conn.fetchval("DELETE FROM operators WHERE name = $1 RETURNING id", name) is None:
        raise OperatorError(f"no operator {name!r}")
    await _audit(conn, "tms-admin", "operator_removed", name)


async def listing(conn: asyncpg.Connection) -> list[Operator]:
    """Every operator with the number of sessions open now, by name."""
    rows = await conn.fetch(
        "SELECT o.name, o.created_at, (SELECT count(*) FROM operator_sessions s "
        " WHERE s.operator_id = o.id AND s.expires_at > now()) AS sessions FROM operators o ORDER BY o.name"
    )
    return [Operator(r["name"], r["created_at"], int(r["sessions"])) for r in rows]


async def by_token(conn: asyncpg.Connection, token: str) -> str | None:
    """The name of the operator ``token`` belongs to (Bearer use by scripts), or None."""
    if not token or len(token) > 200:
        return None
    name = await conn.fetchval("SELECT name FROM operators WHERE token_hash = $1", _digest(token))
    return None if name is None else str(name)


async def login(conn: asyncpg.Connection, token: str, client: str) -> tuple[str, Session] | None:
    """Exchange a token for a new session: (session id for the cookie, the session), or None for
    a wrong token. Both are audited, with the client's address."""
    name = await by_token(conn, token)
    if name is None:
        count = _refusals.note(client)
        if count:  # at most one row per client a minute, counting the refusals it stands for
            await _audit(conn, "web", "login_refused", None, client=client, attempts=str(count))
        return None
    sid, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
    await conn.execute(
        "INSERT INTO operator_sessions (id_hash, operator_id, csrf, expires_at) "
        "SELECT $1, id, $2, now() + make_interval(secs => $4) FROM operators WHERE name = $3",
        _digest(sid), csrf, name, float(SESSION_SECONDS),
    )  # fmt: skip
    await conn.execute("DELETE FROM operator_sessions WHERE expires_at < now()")
    await _audit(conn, f"operator:{name}", "login", None, client=client)
    return sid, Session(name, csrf)


async def session(conn: asyncpg.Connection, sid: str) -> Session | None:
    """The live session of cookie value ``sid``, or None (unknown, expired, operator removed)."""
    if not sid or len(sid) > 200:
        return None
    row = await conn.fetchrow(
        "SELECT o.name, s.csrf FROM operator_sessions s JOIN operators o ON o.id = s.operator_id "
        " WHERE s.id_hash = $1 AND s.expires_at > now()",
        _digest(sid),
    )
    return None if row is None else Session(row["name"], row["csrf"])


async def logout(conn: asyncpg.Connection, sid: str, client: str) -> None:
    """End the session of ``sid`` (audited when there was one)."""
    name = await conn.fetchval(
        "DELETE FROM operator_sessions s USING operators o WHERE s.id_hash = $1 AND o.id = s.operator_id "
        "RETURNING o.name",
        _digest(sid),
    )
    if name is not None:
        await _audit(conn, f"operator:{name}", "logout", None, client=client)


class _Refusals:
    """Refused logins per client address, so the audit trail gets one row a minute per client
    (with the count) instead of one per attempt: a flood of wrong tokens cannot fill the table."""

    WINDOW: Final = 60.0

    def __init__(self) -> None:
        self._since: dict[str, tuple[float, int]] = {}

    def note(self, client: str) -> int:
        """The number of refusals to write now (0: not yet, the minute is not over)."""
        now = time.monotonic()
        since, count = self._since.get(client, (0.0, 0))
        if now - since >= self.WINDOW:
            if len(self._since) > 10_000:
                self._since.clear()
            self._since[client] = (now, 0)
            return count + 1
        self._since[client] = (since, count + 1)
        return 0


_refusals = _Refusals()


def csrf_matches(expected: str, given: str | None) -> bool:
    """Constant-time comparison of a form's CSRF token."""
    given_bytes = (given or "").encode("utf-8", "surrogateescape")
    return bool(given) and hmac.compare_digest(expected.encode(), given_bytes)


async def _audit(
    conn: asyncpg.Connection, actor: str, action: str, operator: str | None, **detail: str
) -> None:
    if operator is not None:
        detail = {"operator": operator, **detail}
    await conn.execute(
        "INSERT INTO audit_log (actor, action, detail) VALUES ($1, $2, $3)", actor, action, detail
    )
