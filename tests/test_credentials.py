"""Stolen and replayed credentials: a captured /auth body stays useless for TMS_NONCE_RETENTION, and
tokens are revoked by a key retirement, a disable or ``merchant revoke-tokens``, in every process
within TMS_REFRESH_INTERVAL."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.kss import options_request
from tms_server import merchants
from tms_server.config import ConfigError, from_env
from tms_server.reservations import sweep


async def _token(client: Any, body: dict[str, Any]) -> tuple[int, str | None]:
    resp = await client.post("/auth", json=body)
    data = await resp.json()
    return resp.status, data.get("token")


async def _options_status(client: Any, token: str) -> int:
    resp = await client.post(
        "/shippingoptions", json=options_request(), headers={"Authorization": f"Bearer {token}"}
    )
    return int(resp.status)


async def _eventually(client: Any, token: str, status: int) -> int:
    """The status /shippingoptions settles on within 5 s (the test config refreshes every 0.2 s)."""
    got = 0
    for _ in range(25):
        got = await _options_status(client, token)
        if got == status:
            return got
        await asyncio.sleep(0.2)
    return got


async def test_a_captured_auth_body_is_refused_after_the_token_lifetime(
    client: Any, conn: Any, make_merchant: Any
) -> None:
    """Replayed two hours later (after the one-hour token lifetime, when its nonce used to be
    forgotten), a captured /auth body is still a 401."""
    m = await make_merchant()
    captured = m.auth_body()
    assert (await _token(client, captured))[0] == 201
    assert (await _token(client, captured))[0] == 401
    await conn.execute("UPDATE auth_nonces SET seen_at = now() - interval '2 hours'")
    assert (await _token(client, captured))[0] == 401


async def test_the_sweep_forgets_nonces_only_after_the_retention(conn: Any, make_merchant: Any) -> None:
    """The sweep prunes nonces older than TMS_NONCE_RETENTION (default a week) and keeps younger ones."""
    await make_merchant()
    mid = await conn.fetchval("SELECT id FROM merchants")
    await conn.execute(
        "INSERT INTO auth_nonces (merchant_id, nonce, seen_at) VALUES ($1, 'old', now() - interval '8 days'),"
        " ($1, 'young', now() - interval '2 days')",
        mid,
    )
    week = from_env({}).nonce_retention
    assert week == 7 * 86400
    result = await sweep.run(
        conn, reservation_ttl=3600, retention_expired=86400, retention_confirmed=86400, nonce_retention=week
    )
    assert result.nonces_pruned == 1
    assert [r["nonce"] for r in await conn.fetch("SELECT nonce FROM auth_nonces")] == ["young"]


def test_nonce_retention_must_outlast_tokens() -> None:
    """A retention shorter than the token lifetime would let a captured request work again: refused."""
    with pytest.raises(ConfigError, match="TMS_NONCE_RETENTION"):
        from_env({"TMS_NONCE_RETENTION": "600", "TMS_TOKEN_TTL": "3600"})
    assert from_env({"TMS_NONCE_RETENTION": "3600"}).nonce_retention == 3600


async def test_retiring_a_key_revokes_the_tokens_obtained_with_it(
    client: Any, conn: Any, make_merchant: Any
) -> None:
    """After rotate-key --retire-previous, a token obtained with the retired key is a 401; one obtained
    with the new key works. A rotation that keeps the previous key keeps its tokens."""
    m = await make_merchant()
    _, old = await _token(client, m.auth_body())
    assert old and await _options_status(client, old) == 200
    second = merchants.generate_key()
    await merchants.rotate_key(conn, m.identifier, second)  # the previous key stays active
    await asyncio.sleep(0.5)
    assert await _options_status(client, old) == 200
    third = merchants.generate_key()
    await merchants.rotate_key(conn, m.identifier, third, keep_previous=False)
    assert await _eventually(client, old, 401) == 401
    m.key = third
    _, fresh = await _token(client, m.auth_body())
    assert fresh and await _options_status(client, fresh) == 200


async def test_disable_then_enable_does_not_revive_old_tokens(
    client: Any, conn: Any, make_merchant: Any
) -> None:
    """A token from before a disable stays refused after the merchant is enabled again."""
    m = await make_merchant()
    _, old = await _token(client, m.auth_body())
    assert old
    await merchants.set_active(conn, m.identifier, False)
    assert await _eventually(client, old, 401) == 401
    await merchants.set_active(conn, m.identifier, True)
    await asyncio.sleep(0.6)
    assert await _options_status(client, old) == 401
    _, fresh = await _token(client, m.auth_body())
    assert fresh and await _eventually(client, fresh, 200) == 200


async def test_revoke_tokens(client: Any, conn: Any, make_merchant: Any) -> None:
    """merchant revoke-tokens refuses every token issued so far; KSS's next /auth gets a working one."""
    m = await make_merchant()
    _, old = await _token(client, m.auth_body())
    other = await make_merchant("shop-b")
    _, others = await _token(client, other.auth_body())
    assert old and others
    await merchants.revoke_tokens(conn, m.identifier)
    assert await _eventually(client, old, 401) == 401
    assert await _options_status(client, others) == 200  # another merchant's tokens are untouched
    _, fresh = await _token(client, m.auth_body())
    assert fresh and await _options_status(client, fresh) == 200
