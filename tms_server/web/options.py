"""The ``/shippingoptions`` answer as a pure function of (catalog, body bytes, clock): the hot path.

``options_answer`` is what the handler serves and what the golden test (``tests/test_golden.py``)
pins byte for byte, so every speed-up here is checked against the recorded answers.

``AnswerCache`` keeps recent answers: KSS sends the same body several times while a shopper moves
through checkout. An answer depends on the compiled catalog (the merchant's served version, bound
to the pickup-point networks and postal areas imported when it was compiled: a new version or a
new import compiles a new object), the body's bytes (every fact the rules read, the session id
included) and the clock to the minute: every clock the catalog knows is a local "HH:MM", so within
one UTC minute the answer cannot change (``tests/test_golden.py`` checks the first and the last
microsecond of minutes). Those three are the key, nothing else is.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime
from typing import Any

import orjson

from tms_server import fastwire, wire
from tms_server.catalog import Catalog, shipping_options

__all__ = ["AnswerCache", "decode_json", "options_answer"]

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


def options_answer(catalog: Catalog | None, raw: bytes, now: datetime) -> tuple[wire.RequestView, bytes]:
    """(the parsed request, the answer's JSON bytes) for one ``/shippingoptions`` body at ``now`` (UTC).

    A merchant without a catalog gets no options. Raises ``WireError`` naming the field for a body
    that is not a valid KSS request (``PROTOCOL.md``: 400 with ``failure_reason``)."""
    req: wire.RequestView | None = fastwire.decode(raw)
    if req is None:  # not for the fast decoder: the strict parser accepts it or names the field
        req = wire.parse(decode_json(raw), wire.ShippingOptionsRequest)
    if catalog is None:
        return req, _NO_OPTIONS
    return req, orjson.dumps({"shipping_options": shipping_options(catalog, req, now=now)})


class AnswerCache:
    """Recent answers keyed by (catalog object, UTC minute, body bytes), at most ``max_bytes`` of
    bodies and answers together (plus a fixed overhead per entry).

    Only the current minute's answers are kept: the first lookup of a new minute drops the rest.
    When full, the oldest entry goes first. Entries hold their catalog, so an id is never reused
    while cached; the identity check on a hit guards against a reloaded catalog."""

    ENTRY_OVERHEAD = 400  # bytes: the dict slot, the tuple, two bytes objects' headers
    LARGEST = 64 * 1024  # bodies or answers above this are not kept (1,000-line carts)

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self.minute = -1
        # Ordered by insertion; OrderedDict because a plain dict's first item is found by scanning
        # past every slot deleted before it, which made eviction quadratic.
        self._entries: OrderedDict[tuple[int, bytes], tuple[Catalog, str, bytes]] = OrderedDict()

    def get(self, catalog: Catalog, minute: int, raw: bytes) -> tuple[str, bytes] | None:
        """(session id, answer) when this body was answered in this minute with this catalog."""
        if minute != self.minute:
            self._entries.clear()
            self.size, self.minute = 0, minute
        hit = self._entries.get((id(catalog), raw))
        if hit is None or hit[0] is not catalog:
            return None
        return hit[1], hit[2]

    def put(self, catalog: Catalog, minute: int, raw: bytes, session_id: str, answer: bytes) -> None:
        """Keep one answer (ignored for another minute than the current one, or when too large)."""
        if minute != self.minute or len(raw) > self.LARGEST or len(answer) > self.LARGEST:
            return
        cost = len(raw) + len(answer) + self.ENTRY_OVERHEAD
        if cost > self.max_bytes:
            return
        key = (id(catalog), raw)
        old = self._entries.pop(key, None)
        if old is not None:
            self.size -= len(raw) + len(old[2]) + self.ENTRY_OVERHEAD
        while self._entries and self.size + cost > self.max_bytes:
            oldest, gone = self._entries.popitem(last=False)
            self.size -= len(oldest[1]) + len(gone[2]) + self.ENTRY_OVERHEAD
        self._entries[key] = (catalog, session_id, answer)
        self.size += cost

    def __len__(self) -> int:
        return len(self._entries)
