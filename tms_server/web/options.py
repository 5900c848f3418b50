"""The ``/shippingoptions`` answer as a pure function of (catalog, body bytes, clock): the hot path.

``options_answer`` is what the handler serves and what the golden test (``tests/test_golden.py``)
pins byte for byte, so every speed-up here is checked against the recorded answers.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from tms_server import wire
from tms_server.catalog import Catalog, shipping_options

__all__ = ["decode_json", "options_answer"]

_NO_OPTIONS = b'{"shipping_options":[]}'


def decode_json(raw: bytes) -> Any:
    """The JSON value of a request body.

    Raises ``WireError`` (a 400 whose failure_reason is the message) for text that is not JSON or
    that holds a NUL character, which PostgreSQL cannot store."""
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise wire.WireError(f"request body is not valid JSON: {exc}") from None
    wire.check_nul(raw, payload)
    return payload


def options_answer(
    catalog: Catalog | None, raw: bytes, now: datetime
) -> tuple[wire.ShippingOptionsRequest, bytes]:
    """(the parsed request, the answer's JSON bytes) for one ``/shippingoptions`` body at ``now`` (UTC).

    A merchant without a catalog gets no options. Raises ``WireError`` naming the field for a body
    that is not a valid KSS request (``PROTOCOL.md``: 400 with ``failure_reason``)."""
    req = wire.parse(decode_json(raw), wire.ShippingOptionsRequest)
    if catalog is None:
        return req, _NO_OPTIONS
    return req, orjson.dumps({"shipping_options": shipping_options(catalog, req, now=now)})
