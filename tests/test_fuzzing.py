"""Fuzzing every KSS endpoint: any JSON and any header values get a 2xx or a 4xx with a
failure_reason, never a 5xx and never a stack trace in a body."""

from __future__ import annotations

import copy
import json
import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import token_for
from tests.kss import options_request, shipment_request

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)

SETTINGS = settings(
    max_examples=int(os.environ.get("TMS_FUZZ_EXAMPLES", "120")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, (*prefix, i))
    return out


def _mutate(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    doc = copy.deepcopy(doc)
    target = doc
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return doc


_DELETE = object()


async def _check(resp: Any) -> None:
    text = await resp.text()
    assert resp.status < 500, text
    assert "Traceback" not in text and 'File "' not in text
    if resp.status >= 400:
        body = json.loads(text)
        assert set(body) == {"failure_reason"} and isinstance(body["failure_reason"], str)


async def _setup(
    client: Any, make_merchant: Any
) -> tuple[dict[str, str], dict[str, Any], dict[str, Any], str]:
    m = await make_merchant("shop-a")
    headers = {"Authorization": f"Bearer {await token_for(client, m)}"}
    body = options_request()
    resp = await client.post("/shippingoptions", json=body, headers=headers)
    options = (await resp.json())["shipping_options"]
    shipment = shipment_request(body, options[0])
    resp = await client.post("/shipment", json=shipment, headers=headers)
    sid = (await resp.json())["shipment_id"]
    return headers, body, shipment, sid


@SETTINGS
@given(data=st.data())
async def test_mutated_bodies_never_5xx(client: Any, make_merchant: Any, data: st.DataObject) -> None:
    """Valid bodies with one field replaced by any JSON value (or removed) never cause a 5xx."""
    if not hasattr(client, "_fuzz"):
        client._fuzz = await _setup(client, make_merchant)
    headers, body, shipment, sid = client._fuzz
    endpoint = data.draw(st.sampled_from(["options", "post", "put"]))
    doc = body if endpoint == "options" else shipment
    path = data.draw(st.sampled_from(_paths(doc)))
    value = data.draw(JSON | st.just(_DELETE))
    mutated = _mutate(doc, path, value)
    url = {"options": "/shippingoptions", "post": "/shipment", "put": f"/shipment/{sid}"}[endpoint]
    method = client.put if endpoint == "put" else client.post
    await _check(
        await method(url, data=json.dumps(mutated), headers={**headers, "Content-Type": "application/json"})
    )


@SETTINGS
@given(value=JSON, endpoint=st.sampled_from(["/auth", "/shippingoptions", "/shipment", "PUT", "confirm"]))
async def test_arbitrary_json_never_5xx(client: Any, make_merchant: Any, value: Any, endpoint: str) -> None:
    """Any JSON document sent to any endpoint gets a 2xx or a 4xx with a failure_reason."""
    if not hasattr(client, "_fuzz"):
        client._fuzz = await _setup(client, make_merchant)
    headers, _body, _shipment, sid = client._fuzz
    data = json.dumps(value)
    h = {**headers, "Content-Type": "application/json"}
    if endpoint == "PUT":
        resp = await client.put(f"/shipment/{sid}", data=data, headers=h)
    elif endpoint == "confirm":
        resp = await client.post(f"/shipment/{sid}/confirm", data=data, headers=h)
    else:
        resp = await client.post(endpoint, data=data, headers=h)
    await _check(resp)


@SETTINGS
@given(
    ctype=st.text(max_size=60),
    auth=st.text(max_size=80)
    | st.just("Bearer ")
    | st.builds(lambda t: "Bearer " + t, st.text(max_size=200)),
    raw=st.binary(max_size=300),
    path_id=st.text(
        alphabet=st.characters(codec="ascii", exclude_characters="/?#%"), min_size=1, max_size=40
    ),
)
async def test_arbitrary_headers_and_bytes_never_5xx(
    client: Any, ctype: str, auth: str, raw: bytes, path_id: str
) -> None:
    """Arbitrary Content-Type, Authorization, raw bytes and path ids never cause a 5xx."""
    headers = {}
    for name, value in (("Content-Type", ctype), ("Authorization", auth)):
        if value.isprintable() and value.isascii() and "\n" not in value:
            headers[name] = value
    for method, url in (("POST", "/auth"), ("POST", "/shippingoptions"), ("GET", f"/shipment/{path_id}"),
                        ("PUT", f"/shipment/{path_id}"), ("POST", f"/shipment/{path_id}/confirm")):  # fmt: skip
        resp = await client.request(method, url, data=raw, headers=headers)
        await _check(resp)


async def test_nul_characters_are_a_400_naming_the_field(client: Any, make_merchant: Any) -> None:
    """A NUL character (which PostgreSQL cannot store) anywhere in a body is a 400 naming where."""
    headers, _body, shipment, _sid = await _setup(client, make_merchant)
    shipment["recipient"]["city"] = "Stock\x00holm"
    resp = await client.post("/shipment", json=shipment, headers=headers)
    assert resp.status == 400
    assert (await resp.json())["failure_reason"].startswith("recipient.city: contains a NUL character")
    resp = await client.post("/auth", json={"identifier": "a\x00", "secret": {"nonce": "n", "digest": "d"}})
    assert resp.status == 400
