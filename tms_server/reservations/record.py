"""The reservation as stored: typed values for its jsonb columns, and the one converter for them.

A reservation keeps what label printing, tracking and the audit need, and nothing else: the
selection (the option as offered, pickup point, timeslot, add-ons with their carrier codes and the
shopper's text), the parsed request's known fields (order, sender, currency, locale; never a field
we do not know), the recipient's known fields, the carrier product. ``to_json``/``from_json`` turn
them into the jsonb column values and back; reading tolerates keys we no longer store, so rows
written by earlier releases read the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any, TypeVar

import attrs
import cattrs
import msgspec
from attrs import frozen

from tms_server import fastwire, wire

__all__ = [
    "STATUSES",
    "CarrierProduct",
    "Reservation",
    "ReservedAddon",
    "Selection",
    "Status",
    "StoredRequest",
    "from_json",
    "to_json",
]

T = TypeVar("T")


class Status(StrEnum):
    """Where a reservation is in its life (the ``shipments.status`` CHECK lists the same)."""

    RESERVED = "reserved"
    CONFIRMED = "confirmed"
    EXPIRED = "expired"


STATUSES = tuple(s.value for s in Status)


@frozen
class CarrierProduct:
    """The carrier's codes for the label: product identifier and name, add-on codes."""

    identifier: str
    name: str = ""
    addon_identifiers: tuple[str, ...] = ()


@frozen
class ReservedAddon:
    """An add-on the shopper chose: its carrier ``code``, price (minor units) and the text they typed
    (a door code; erased with the recipient)."""

    id: str
    price: int
    type: str | None = None
    code: str | None = None
    text: str | None = None


@frozen
class Selection:
    """What was reserved: the KSS option as offered, the pickup point and timeslot (KSS objects),
    the chosen add-ons."""

    option: Mapping[str, Any] = attrs.field(factory=dict)
    location: Mapping[str, Any] | None = None
    timeslot: Mapping[str, Any] | None = None
    addons: tuple[ReservedAddon, ...] = ()


@frozen
class StoredRequest:
    """The known, non-personal parts of the reservation request, in their wire shapes."""

    currency: str | None = None
    order: wire.Order | None = None
    locale: str | None = None
    sender: wire.Sender | None = None

    @classmethod
    def of(cls, req: wire.ShipmentRequest) -> StoredRequest:
        """What a reservation keeps of ``req`` (unknown fields were never parsed into it)."""
        return cls(req.currency, req.order, req.locale, req.sender)


@frozen
class Reservation:
    """One reservation as the KSS layer stores it; money in minor units of ``currency``."""

    session_id: str
    option_id: str
    carrier: str
    # Checked: a plain dict here would be stored as given, unknown keys and all.
    carrier_product: CarrierProduct = attrs.field(validator=attrs.validators.instance_of(CarrierProduct))
    selection: Selection = attrs.field(validator=attrs.validators.instance_of(Selection))
    # The strict parser's attrs values, or the fast decoder's structs (the same JSON when stored).
    request: StoredRequest | fastwire.StoredRequest = attrs.field(
        validator=attrs.validators.instance_of((StoredRequest, fastwire.StoredRequest))
    )
    recipient: wire.Recipient | fastwire.Recipient | None = attrs.field(
        validator=attrs.validators.optional(
            attrs.validators.instance_of((wire.Recipient, fastwire.Recipient))
        )
    )
    price: int = attrs.field(validator=attrs.validators.instance_of(int))
    currency: str = attrs.field(validator=attrs.validators.instance_of(str))


# Unknown keys are ignored when reading (rows of earlier releases); defaults are left out when
# writing, so a stored value holds only what was given.
_CONVERTER = cattrs.Converter(forbid_extra_keys=False, omit_if_default=True)


def _is_json_mapping(t: Any) -> bool:
    return t in (Mapping[str, Any], Mapping[str, Any] | None)


# The KSS objects a selection keeps (option, pickup point, timeslot) are built by the engine from
# JSON types only: stored as they are (walking them value by value cost 200 us per reservation).
_CONVERTER.register_unstructure_hook_func(_is_json_mapping, lambda v: v)


def to_json(value: Any) -> Any:
    """A stored value as the jsonb column holds it (a fast decoder's struct: by msgspec, whose
    ``omit_defaults`` leaves out what cattrs' ``omit_if_default`` does)."""
    if isinstance(value, msgspec.Struct):
        return msgspec.to_builtins(value)
    return _CONVERTER.unstructure(value)


def _none_is_empty(t: Any) -> bool:
    return getattr(t, "__origin__", None) is tuple and getattr(t, "__args__", ())[-1:] == (Ellipsis,)


# Arrays stored as null (the KSS parser always read them as empty) read as empty tuples.
_CONVERTER.register_structure_hook_factory(
    _none_is_empty,
    lambda t: lambda v, _t: () if v is None else tuple(_CONVERTER.structure(x, t.__args__[0]) for x in v),
)


def from_json(data: Any, cls: type[T]) -> T:
    """A jsonb column value as ``cls``. What was stored was valid when stored, so the wire types'
    value checks (which grew stricter over releases) are not run again: an old row always reads.
    cattrs errors propagate (a row of the wrong shape is a bug to see)."""
    with attrs.validators.disabled():
        return _CONVERTER.structure(data, cls)
