"""POST /auth and bearer tokens: the digest, replay protection, key rotation, and token checks."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import jwt
import pytest

from tests.conftest import Merchant, token_for
from tms_server import auth, merchants
from tms_server.web import keys

REFERENCE_DIGEST = "8C3891B3162DB3AB61A9B2DA74E6A479553ABA897894E5236ED290C11A0B832B"


def test_reference_digest_vector() -> None:
    """The reference's worked example (sweMerch123 / smOOOth / lRFUpqW7Xd) verifies, in either case."""
    assert auth.digest_matches("lRFUpqW7Xd", "smOOOth", REFERENCE_DIGEST)
    assert auth.digest_matches("lRFUpqW7Xd", "smOOOth", REFERENCE_DIGEST.lower())
    assert not auth.digest_matches("lRFUpqW7Xd", "smOOOtH", REFERENCE_DIGEST)
    assert not auth.digest_matches("lRFUpqW7Xe", "smOOOth", REFERENCE_DIGEST)


async def test_reference_example_over_http(client: Any, conn: Any) -> None:
    """The reference's credentials authenticate over HTTP: 201 with a token."""
    await merchants.add(conn, "sweMerch123", "smOOOth")
    body = {"identifier": "sweMerch123", "secret": {"nonce": "lRFUpqW7Xd", "digest": REFERENCE_DIGEST}}
    resp = await client.post("/auth", json=body)
    assert resp.status == 201
    data = await resp.json()
    assert set(data) == {"token"}
    header = jwt.get_unverified_header(data["token"])
    assert header["alg"] == "HS256" and header["kid"]
    claims = jwt.decode(data["token"], options={"verify_signature": False})
    assert claims["sub"] == "sweMerch123" and claims["iss"] == "tms_server" and claims["aud"] == "kss"
    assert claims["exp"] - claims["iat"] == 3600


async def test_unknown_identifier_and_wrong_digest_look_the_same(client: Any, make_merchant: Any) -> None:
    """Unknown identifier and wrong digest both answer 401 with the same body."""
    m: Merchant = await make_merchant("shop-a", catalog=None)
    wrong = m.auth_body()
    wrong["secret"]["digest"] = "0" * 64
    unknown = Merchant("no-such-shop", m.key).auth_body()
    r1 = await client.post("/auth", json=wrong)
    r2 = await client.post("/auth", json=unknown)
    assert r1.status == r2.status == 401
    assert await r1.json() == await r2.json() == {"failure_reason": "invalid credentials"}


async def test_replayed_auth_is_refused(client: Any, make_merchant: Any) -> None:
    """The same identifier and nonce a second time is a 401, even with the right digest."""
    m = await make_merchant("shop-a", catalog=None)
    body = m.auth_body(nonce="fixed-nonce-1")
    assert (await client.post("/auth", json=body)).status == 201
    again = await client.post("/auth", json=body)
    assert again.status == 401


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "request body is not valid JSON"),
        (b"[1, 2]", "request body must be a JSON object, got array"),
        (b"", "request body is empty"),
        (b'{"identifier": "x"}', "secret: required field is missing"),
        (
            b'{"identifier": 5, "secret": {"nonce": "n", "digest": "d"}}',
            "identifier: expected string, got integer",
        ),
        (b'{"identifier": "x", "secret": {"nonce": "n"}}', "secret.digest: required field is missing"),
        (b'{"identifier": "x", "secret": "s"}', "secret: expected object, got string"),
    ],
)
async def test_malformed_auth_is_400_naming_the_problem(client: Any, body: bytes, reason: str) -> None:
    """A malformed /auth body is a 400 whose failure_reason says what is wrong."""
    resp = await client.post("/auth", data=body, headers={"Content-Type": "application/json"})
    assert resp.status == 400
    assert (await resp.json())["failure_reason"].startswith(reason)


async def test_vendor_media_types_are_accepted(client: Any, make_merchant: Any) -> None:
    """The spec's vdn/vnd vendor types and a missing Content-Type are accepted as JSON."""
    m = await make_merchant("shop-a", catalog=None)
    import orjson

    for ctype in (
        "application/vdn.klarna.shipping.auth-v1+json",
        "application/vnd.klarna.shipping.auth-v1+json",
        None,
    ):
        headers = {"Content-Type": ctype} if ctype else {}
        skip = () if ctype else ("Content-Type",)
        resp = await client.post(
            "/auth", data=orjson.dumps(m.auth_body()), headers=headers, skip_auto_headers=skip
        )
        assert resp.status == 201, (ctype, await resp.text())


async def test_foreign_media_type_is_415(client: Any, make_merchant: Any) -> None:
    """A body declared as something other than JSON is refused with 415 and a failure_reason."""
    m = await make_merchant("shop-a", catalog=None)
    import orjson

    resp = await client.post(
        "/auth", data=orjson.dumps(m.auth_body()), headers={"Content-Type": "text/plain"}
    )
    assert resp.status == 415
    assert "text/plain" in (await resp.json())["failure_reason"]


async def test_both_keys_work_during_rotation(client: Any, conn: Any, make_merchant: Any) -> None:
    """After rotate-key the old and new key both authenticate; --retire-previous leaves only the new one."""
    m = await make_merchant("shop-a", catalog=None)
    await merchants.rotate_key(conn, "shop-a", "new-key-123456")
    assert (await client.post("/auth", json=m.auth_body())).status == 201
    assert (await client.post("/auth", json=Merchant("shop-a", "new-key-123456").auth_body())).status == 201
    await merchants.rotate_key(conn, "shop-a", "newer-key-123456", keep_previous=False)
    assert (await client.post("/auth", json=m.auth_body())).status == 401
    assert (await client.post("/auth", json=Merchant("shop-a", "new-key-123456").auth_body())).status == 401
    assert (await client.post("/auth", json=Merchant("shop-a", "newer-key-123456").auth_body())).status == 201


def _forge(claims: dict[str, Any], key: bytes | str, alg: str = "HS256", kid: str = "x") -> str:
    return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid})


async def _bad_tokens(client: Any, good: str) -> dict[str, str]:
    ring = client.app[keys.RUNTIME].keyring
    kid = jwt.get_unverified_header(good)["kid"]
    secret = ring._keys[kid]
    claims = jwt.decode(good, options={"verify_signature": False})
    head, payload, sig = good.split(".")
    now = int(time.time())
    import base64

    none_header = base64.urlsafe_b64encode(
        b'{"alg":"none","typ":"JWT","kid":"' + kid.encode() + b'"}'
    ).rstrip(b"=")
    return {
        "garbage": "not-a-token",
        "tampered": f"{head}.{payload[:-2]}AA.{sig}",
        "alg none": f"{none_header.decode()}.{payload}.",
        "other alg": _forge(claims, secret, "HS512", kid),
        "expired": _forge({**claims, "iat": now - 7200, "nbf": now - 7200, "exp": now - 2}, secret, kid=kid),
        "wrong audience": _forge({**claims, "aud": "someone-else"}, secret, kid=kid),
        "wrong issuer": _forge({**claims, "iss": "evil"}, secret, kid=kid),
        "unknown key": _forge(claims, b"k" * 64, kid="unknown-kid"),
        "other merchant claim": _forge({**claims, "sub": "shop-b"}, secret, kid=kid),
    }


async def test_bad_tokens_get_401_without_detail(client: Any, make_merchant: Any) -> None:
    """Missing, malformed, tampered, alg-none, expired, foreign and forged tokens are all a bare 401."""
    m = await make_merchant("shop-a")
    good = await token_for(client, m)
    body = {"session_id": "s"}
    assert (await client.post("/shippingoptions", json=body)).status == 401
    assert (await client.post("/shippingoptions", json=body, headers={"Authorization": good})).status == 401
    for name, token in (await _bad_tokens(client, good)).items():
        resp = await client.post("/shippingoptions", json=body, headers={"Authorization": f"Bearer {token}"})
        assert resp.status == 401, name
        assert await resp.json() == {"failure_reason": "invalid or expired token"}, name
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")


async def test_signing_key_rotation_keeps_old_tokens_valid(
    client: Any, conn: Any, make_merchant: Any
) -> None:
    """After signing-key rotation, tokens signed by the old key still work and new ones use the new kid."""
    m = await make_merchant("shop-a")
    old = await token_for(client, m)
    new_kid = await auth.rotate_signing_key(conn)
    await client.app[keys.RUNTIME].refresh(client.app[keys.DB])
    headers = {"Authorization": f"Bearer {old}"}
    from tests.kss import options_request

    assert (await client.post("/shippingoptions", json=options_request(), headers=headers)).status == 200
    fresh = await token_for(client, m)
    assert jwt.get_unverified_header(fresh)["kid"] == new_kid


async def test_disabled_merchant_token_stops_working(client: Any, conn: Any, make_merchant: Any) -> None:
    """Disabling a merchant makes its existing token a 401 and its credentials refused."""
    m = await make_merchant("shop-a")
    token = await token_for(client, m)
    await merchants.set_active(conn, "shop-a", False)
    await client.app[keys.RUNTIME].refresh(client.app[keys.DB])
    from tests.kss import options_request

    resp = await client.post(
        "/shippingoptions", json=options_request(), headers={"Authorization": f"Bearer {token}"}
    )
    assert resp.status == 401
    assert (await client.post("/auth", json=m.auth_body())).status == 401


def test_digest_comparison_handles_non_ascii() -> None:
    """A digest with non-ASCII characters is simply wrong, not an error."""
    good = hashlib.sha256(b"nk").hexdigest()
    assert auth.digest_matches("n", "k", good)
    assert not auth.digest_matches("n", "k", "é" * 64)


def test_remembered_token_still_expires_and_dies_with_its_key() -> None:
    """A token verified once is remembered, but not past its expiry or its signing key's removal."""
    ring = auth.KeyRing(issuer="tms_server", audience="kss", ttl=60)
    ring.update({"k1": b"s" * 64}, "k1")
    token = ring.issue(7, "shop-a", now=time.time() - 59)  # expires in about a second
    assert ring.verify(token).merchant_id == 7
    time.sleep(2.2)
    with pytest.raises(auth.InvalidToken):
        ring.verify(token)
    fresh = ring.issue(7, "shop-a")
    assert ring.verify(fresh).identifier == "shop-a"
    ring.update({"k2": b"t" * 64}, "k2")
    with pytest.raises(auth.InvalidToken):
        ring.verify(fresh)
