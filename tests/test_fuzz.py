"""Fuzzing the KSS endpoints in process: arbitrary JSON, mutations of valid bodies, arbitrary header
values and path ids. Whatever arrives, the answer is never a 5xx; a 4xx is a JSON object with a
failure_reason; no body ever shows a traceback."""

from __future__ import annotations

import base64
import copy
import json
import weakref
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import token_for
from tests.kss import new_session, options_request, shipment_request

# The client fixture is function-scoped and shared by all examples of a test on purpose: building an
# app per example would cost seconds. Examples only add reservations, which no assertion depends on.
FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
    | st.sampled_from(["", "\x00", "SE", "sv-SE", "SEK", "111 34", "2026-03-05T10:00:00Z", "é" * 300])
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=25,
)

_DELETE = object()


class Setup:
    """A merchant with a token, a valid options body, a valid shipment body and a reserved shipment."""

    def __init__(self, headers: dict[str, str], options: dict[str, Any], shipment: dict[str, Any], sid: str):
        self.headers = headers
        self.options = options
        self.shipment = shipment
        self.sid = sid

    def auth(self) -> dict[str, Any]:
        return {"identifier": "shop-a", "secret": {"nonce": "n" * 10, "digest": "ab" * 32}}


_SETUPS: weakref.WeakKeyDictionary[Any, Setup] = weakref.WeakKeyDictionary()


async def setup(client: Any, make_merchant: Any) -> Setup:
    """Once per test (the client lives as long as the test): merchant, token, options, one reservation."""
    if client in _SETUPS:
        return _SETUPS[client]
    m = await make_merchant("shop-a")
    headers = {"Authorization": f"Bearer {await token_for(client, m)}"}
    options = options_request(new_session())
    resp = await client.post("/shippingoptions", json=options, headers=headers)
    option = (await resp.json())["shipping_options"][0]
    shipment = shipment_request(options, option)
    resp = await client.post("/shipment", json=shipment, headers=headers)
    assert resp.status == 201, await resp.text()
    _SETUPS[client] = Setup(headers, options, shipment, (await resp.json())["shipment_id"])
    return _SETUPS[client]


async def check(resp: Any) -> None:
    """Never a 5xx; a 4xx is exactly {"failure_reason": str} as JSON; no traceback anywhere."""
    text = await resp.text()
    assert resp.status < 500, (resp.status, text)
    assert "Traceback" not in text and 'File "' not in text, text
    if resp.status >= 400:
        assert resp.headers["Content-Type"].startswith("application/json"), text
        body = json.loads(text)
        assert isinstance(body, dict) and set(body) == {"failure_reason"}, text
        assert isinstance(body["failure_reason"], str) and body["failure_reason"], text
    elif text:
        json.loads(text)


def encode(value: Any) -> bytes:
    """JSON as a client could send it (NaN/Infinity spelled as Python does: not valid JSON)."""
    return json.dumps(value).encode()


def paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key/index path into ``doc``."""
    out = [prefix] if prefix else []
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += paths(v, (*prefix, i))
    return out


def _get(doc: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        doc = doc[key]
    return doc


def mutate(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    """A copy of ``doc`` with the value at ``path`` replaced (or removed, for _DELETE)."""
    doc = copy.deepcopy(doc)
    parent = _get(doc, path[:-1])
    if value is _DELETE:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return doc


def flipped(value: Any) -> Any:
    """The same information in the wrong JSON type, the way sloppy clients get it wrong."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return int(value) if value.isdigit() else [value]
    if isinstance(value, list):
        return {str(i): v for i, v in enumerate(value)}
    if isinstance(value, dict):
        return list(value.values())
    return False


REPLACEMENTS = st.one_of(
    JSON,
    st.just(_DELETE),
    st.just("flip"),
    st.sampled_from([2**63, -(2**63) - 1, -1, 0, 1.5, "", " ", "x" * 5000, [], {}]),
)

ENDPOINTS = ["/auth", "/shippingoptions", "POST /shipment", "PUT /shipment", "confirm", "GET"]


async def send(
    client: Any, s: Setup, endpoint: str, data: bytes, headers: dict[str, str] | None = None
) -> Any:
    """One request to ``endpoint`` with raw ``data``, the merchant's token and a JSON content type."""
    h = {**s.headers, "Content-Type": "application/json", **(headers or {})}
    if endpoint == "/auth":
        h.pop("Authorization")
        return await client.post("/auth", data=data, headers=h)
    if endpoint == "/shippingoptions":
        return await client.post("/shippingoptions", data=data, headers=h)
    if endpoint == "POST /shipment":
        return await client.post("/shipment", data=data, headers=h)
    if endpoint == "PUT /shipment":
        return await client.put(f"/shipment/{s.sid}", data=data, headers=h)
    if endpoint == "confirm":
        return await client.post(f"/shipment/{s.sid}/confirm", data=data, headers=h)
    return await client.get(f"/shipment/{s.sid}", data=data, headers=h)


def valid_body(s: Setup, endpoint: str) -> dict[str, Any]:
    """The valid body each endpoint takes (confirm and GET take none; the shipment body will do)."""
    if endpoint == "/auth":
        return s.auth()
    if endpoint == "/shippingoptions":
        return s.options
    return s.shipment


@FUZZ
@given(value=JSON, endpoint=st.sampled_from(ENDPOINTS))
async def test_any_json_value_on_any_endpoint(
    client: Any, make_merchant: Any, value: Any, endpoint: str
) -> None:
    """Any JSON value (or not-quite JSON such as NaN) as the body of any endpoint is never a 5xx."""
    s = await setup(client, make_merchant)
    await check(await send(client, s, endpoint, encode(value)))


@FUZZ
@given(data=st.data(), endpoint=st.sampled_from(ENDPOINTS[:4]))
async def test_mutated_valid_bodies(
    client: Any, make_merchant: Any, data: st.DataObject, endpoint: str
) -> None:
    """A valid body with one field replaced by any value, removed, given the wrong type, or joined by an
    unknown field is never a 5xx."""
    s = await setup(client, make_merchant)
    doc = valid_body(s, endpoint)
    path = data.draw(st.sampled_from(paths(doc)), label="path")
    value = data.draw(REPLACEMENTS, label="value")
    if value == "flip":
        value = flipped(_get(doc, path))
    mutated = mutate(doc, path, value)
    if data.draw(st.booleans(), label="add unknown field"):
        target = _get(mutated, path[:-1])
        if isinstance(target, dict):
            target[data.draw(st.text(max_size=10), label="key")] = data.draw(JSON, label="extra")
    await check(await send(client, s, endpoint, encode(mutated)))


CONTENT_TYPES = st.one_of(
    st.text(max_size=60),
    st.sampled_from(
        [
            "application/json",
            "application/json; charset=utf-8",
            "APPLICATION/JSON",
            "application/vdn.klarna.shipping.auth-v1+json",
            "application/vnd.klarna.shipping.get_shipment-v1+json",
            "application/vnd.klarna.shipping.+json",
            "application/vnd.klarna.shipping.x+xml",
            "text/plain",
            "multipart/form-data; boundary=x",
            "application/x-www-form-urlencoded",
            ";",
            "",
        ]
    ),
)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@st.composite
def jwt_like(draw: st.DrawFn) -> str:
    """Three base64url segments: a JSON (or junk) header and payload, and a random signature."""
    header = draw(st.one_of(JSON, st.fixed_dictionaries({"alg": st.sampled_from(["none", "HS256", "RS256"]),
                                                         "kid": JSON})))  # fmt: skip
    payload = draw(JSON)
    parts = [_b64(json.dumps(header).encode() if draw(st.booleans()) else b"{")]
    parts.append(_b64(json.dumps(payload).encode()))
    parts.append(_b64(draw(st.binary(max_size=40))))
    return ".".join(parts[: draw(st.integers(1, 3))])


AUTHORIZATIONS = st.one_of(
    st.text(max_size=80),
    st.sampled_from(["Bearer", "Bearer ", "bearer", "Basic dXNlcjpwYXNz", "Bearer a.b.c", "Bearer ..."]),
    st.builds(
        lambda scheme, t: f"{scheme} {t}",
        st.sampled_from(["Bearer", "bearer", "BEARER", "Token"]),
        jwt_like(),
    ),
)


def sendable(value: str) -> bool:
    """Whether an HTTP client can put ``value`` in a header at all."""
    return value.isprintable() and all(ord(c) < 256 for c in value)


@FUZZ
@given(
    ctype=CONTENT_TYPES,
    auth=AUTHORIZATIONS,
    endpoint=st.sampled_from(ENDPOINTS),
    keep_token=st.booleans(),
)
async def test_arbitrary_content_type_and_authorization(
    client: Any, make_merchant: Any, ctype: str, auth: str, endpoint: str, keep_token: bool
) -> None:
    """Any Content-Type and any Authorization value (JWT-shaped forgeries included) with a valid body is
    never a 5xx; a forged or malformed token is a 401."""
    s = await setup(client, make_merchant)
    headers = {}
    if sendable(ctype):
        headers["Content-Type"] = ctype
    if not keep_token and sendable(auth):
        headers["Authorization"] = auth
    h = {**s.headers, **headers}
    resp = await send(client, s, endpoint, encode(valid_body(s, endpoint)), h)
    await check(resp)
    if endpoint != "/auth" and not keep_token and sendable(auth):
        assert resp.status in (401, 415), await resp.text()


@FUZZ
@given(
    raw=st.binary(max_size=400),
    path_id=st.text(min_size=1, max_size=60).map(lambda t: t.replace("/", "%2F")),
    method=st.sampled_from(["GET", "PUT", "POST", "DELETE", "PATCH"]),
    suffix=st.sampled_from(["", "/confirm", "/confirm/x"]),
)
async def test_arbitrary_bytes_and_shipment_ids(
    client: Any, make_merchant: Any, raw: bytes, path_id: str, method: str, suffix: str
) -> None:
    """Arbitrary bytes as body, any shipment id in the path, and any method on the shipment URLs are
    never a 5xx."""
    s = await setup(client, make_merchant)
    from urllib.parse import quote

    url = f"/shipment/{quote(path_id, safe='%')}{suffix}"
    await check(await client.request(method, url, data=raw, headers=s.headers))
    await check(await client.post("/shippingoptions", data=raw, headers=s.headers))


def with_nested(body: dict[str, Any], depth: int, leaf: str) -> bytes:
    """``body`` plus an unknown field holding ``leaf`` inside ``depth`` nested arrays (written by hand:
    Python's json module cannot encode that deep)."""
    nested = "[" * depth + json.dumps(leaf) + "]" * depth
    return (json.dumps(body)[:-1] + f', "x_extension": {nested}}}').encode()


# orjson decodes 1024 levels but encodes only 254: storing such a field in the `request` jsonb was a
# 500. Reservations now store only the fields they know, so an unknown one never reaches the codec.
NESTED = [
    (endpoint, depth)
    for endpoint in ("/auth", "/shippingoptions", "POST /shipment", "PUT /shipment")
    for depth in (100, 300, 1000, 2000)
]


@pytest.mark.parametrize(("endpoint", "depth"), NESTED)
async def test_deeply_nested_unknown_fields(
    client: Any, make_merchant: Any, depth: int, endpoint: str
) -> None:
    """An unknown field holding deeply nested arrays (KSS must be free to add fields) is never a 5xx."""
    s = await setup(client, make_merchant)
    await check(await send(client, s, endpoint, with_nested(valid_body(s, endpoint), depth, "v")))


@pytest.mark.parametrize("depth", [100, 900])
async def test_deeply_nested_nul_character(client: Any, make_merchant: Any, depth: int) -> None:
    """A NUL character deep inside nested arrays is a 400 naming where, never a 5xx."""
    s = await setup(client, make_merchant)
    resp = await send(client, s, "POST /shipment", with_nested(s.shipment, depth, "a\x00b"))
    await check(resp)
    assert resp.status == 400
