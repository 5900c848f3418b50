"""The fast decoder of ``/shippingoptions`` and ``/shipment`` bodies: msgspec structs with the wire
types' checks.

``tms_server.wire`` (attrs classes, structured by ``tms_server.strict``) stays the definition of a
valid body and the source of every error message. This module mirrors its shape and its checks as
msgspec structs and constraints, which msgspec validates in C while it parses: about 0.8 µs per order
line against 8 µs. It is only ever a shortcut: ``decode`` and ``decode_shipment`` answer None for
anything it does not accept (a wrong type, a negative amount, a NUL character, JSON orjson would
refuse, a field the structs do not declare), and the caller then takes the slow path, which
accepts or names the field exactly as before. So a body this module
accepts must be one the slow path accepts with the same values; ``tests/test_fastwire.py`` checks
that differentially (and that a reservation stores the same JSON either way), and the golden test
checks the answers.

Every struct forbids unknown fields: msgspec would skip them without the checks orjson makes (bytes
that are not UTF-8, numbers past a double's range), so a body with a field we do not model (one KSS
added later) takes the strict path, which tolerates it. The documented KSS bodies hold none.

Limits mirrored from ``wire``: money, weights and sizes never negative (except the amounts of lines
that reduce the order, see ``wire.OrderLine``), strings no longer than the same maxima, currency and
country codes by the same patterns. Integers are bounded to int64; beyond it the slow path decides
(orjson reads up to 2^64 - 1 as integers and larger numbers as floats, hence errors).
"""

from __future__ import annotations

from typing import Annotated, Final, Literal, TypeVar

import msgspec

from tms_server import wire

__all__ = ["ShipmentRequest", "ShippingOptionsRequest", "StoredRequest", "decode", "decode_shipment"]

_MIN_INT: Final = -(2**63)
_MAX_INT: Final = 2**63 - 1  # msgspec bounds are int64; larger ones take the slow path

Count = Annotated[int, msgspec.Meta(ge=0, le=_MAX_INT)]
Amount = Annotated[int, msgspec.Meta(ge=_MIN_INT, le=_MAX_INT)]
NonEmpty = Annotated[str, msgspec.Meta(pattern=r"\S")]
NonEmpty200 = Annotated[str, msgspec.Meta(max_length=200, pattern=r"\S")]
T = TypeVar("T")
Currency = Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}$")]
Country = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z]{2}$")]
Text35 = Annotated[str, msgspec.Meta(max_length=35)]
Text64 = Annotated[str, msgspec.Meta(max_length=64)]
Text200 = Annotated[str, msgspec.Meta(max_length=200)]
Text320 = Annotated[str, msgspec.Meta(max_length=320)]
Text500 = Annotated[str, msgspec.Meta(max_length=500)]


class Dimensions(msgspec.Struct, frozen=True, omit_defaults=True, forbid_unknown_fields=True):
    """``wire.Dimensions``: millimetres."""

    height: Count | None = None
    width: Count | None = None
    length: Count | None = None


class LineAttributes(msgspec.Struct, frozen=True, omit_defaults=True, forbid_unknown_fields=True):
    """``wire.LineAttributes``: weight in grams."""

    weight: Count | None = None
    dimensions: Dimensions | None = None
    tags: tuple[str, ...] = ()


class OrderLine(msgspec.Struct, frozen=True, omit_defaults=True, forbid_unknown_fields=True):
    """``wire.OrderLine``: amounts in minor units."""

    quantity: Count
    reference: str | None = None
    name: str | None = None
    type: Text64 | None = None
    unit_price: Amount | None = None
    total_price_including_tax: Amount | None = None
    total_discount_amount: Amount | None = None
    total_tax_amount: Amount | None = None
    tax_rate: Count | None = None
    attributes: LineAttributes | None = None

    def __post_init__(self) -> None:
        # wire._line_amounts: money may be negative only on lines that reduce the order.
        if (self.type if self.type is not None else wire.PHYSICAL) in wire.NON_NEGATIVE_AMOUNTS and (
            (self.unit_price or 0) < 0
            or (self.total_price_including_tax or 0) < 0
            or (self.total_discount_amount or 0) < 0
            or (self.total_tax_amount or 0) < 0
        ):
            raise ValueError("negative amount")

    @property
    def physical(self) -> bool:
        """As ``wire.OrderLine.physical``."""
        return self.type not in wire.NOT_SHIPPED


class Order(msgspec.Struct, frozen=True, omit_defaults=True, forbid_unknown_fields=True):
    """``wire.Order``."""

    total_amount: Count
    id: str | None = None
    tags: tuple[str, ...] = ()
    lines: tuple[OrderLine, ...] = ()
    total_tax: Count | None = None
    total_weight: Count | None = None


class Address(msgspec.Struct, frozen=True, omit_defaults=True, forbid_unknown_fields=True):
    """``wire.Address``."""

    street_address: Text500 | None = None
    street_address2: Text500 | None = None
    postal_code: Text64 | None = None
    city: Text200 | None = None
    region: Text200 | None = None
    country: Country | None = None


class Recipient(Address, frozen=True, omit_defaults=True, forbid_unknown_fields=True):
    """``wire.Recipient``."""

    given_name: Text200 | None = None
    family_name: Text200 | None = None
    company_name: Text200 | None = None
    care_of: Text200 | None = None
    email: Text320 | None = None
    phone: Text64 | None = None
    customer_type: Literal["person", "organization"] | None = None


class Sender(msgspec.Struct, frozen=True, omit_defaults=True, forbid_unknown_fields=True):
    """``wire.Sender``."""

    sender_id: str | None = None
    address: Address | None = None


class ShippingOptionsRequest(msgspec.Struct, frozen=True, omit_defaults=True, forbid_unknown_fields=True):
    """``wire.ShippingOptionsRequest``: the body of ``POST /shippingoptions``."""

    session_id: NonEmpty200
    currency: Currency
    order: Order
    locale: Text35 | None = None
    geoblocking: bool | None = None
    selected_shipping_option_id: str | None = None
    recipient: Recipient | None = None
    sender: Sender | None = None


class Coordinates(msgspec.Struct, frozen=True, omit_defaults=True, forbid_unknown_fields=True):
    """``wire.Coordinates``: WGS 84 degrees."""

    lat: Annotated[float, msgspec.Meta(ge=-90.0, le=90.0)]
    lng: Annotated[float, msgspec.Meta(ge=-180.0, le=180.0)]


class AddonData(msgspec.Struct, frozen=True, omit_defaults=True, forbid_unknown_fields=True):
    """``wire.AddonData``."""

    selected: bool | None = None
    text: str | None = None


class SelectedAddon(msgspec.Struct, frozen=True, omit_defaults=True, forbid_unknown_fields=True):
    """``wire.SelectedAddon``."""

    id: NonEmpty
    type: str | None = None
    price: Count | None = None
    required: bool | None = None
    preselected: bool | None = None
    max_length: Count | None = None
    data: AddonData | None = None


class SelectedLocation(msgspec.Struct, frozen=True, omit_defaults=True, forbid_unknown_fields=True):
    """``wire.SelectedLocation``."""

    id: NonEmpty
    name: str | None = None
    address: Address | None = None
    coordinates: Coordinates | None = None


class SelectedTimeslot(msgspec.Struct, frozen=True, omit_defaults=True, forbid_unknown_fields=True):
    """``wire.SelectedTimeslot``."""

    id: NonEmpty
    start: str | None = None
    end: str | None = None


class SelectedOption(msgspec.Struct, frozen=True, omit_defaults=True, forbid_unknown_fields=True):
    """``wire.SelectedOption`` (``class`` is a keyword: the attribute is ``class_``)."""

    id: NonEmpty
    carrier: str | None = None
    class_: str | None = msgspec.field(default=None, name="class")
    type: str | None = None
    price: Count | None = None
    tax_rate: Count | None = None
    addons: tuple[SelectedAddon, ...] = ()
    location: SelectedLocation | None = None
    timeslot: SelectedTimeslot | None = None


class ShipmentRequest(msgspec.Struct, frozen=True, omit_defaults=True, forbid_unknown_fields=True):
    """``wire.ShipmentRequest``: the body of ``POST /shipment`` and ``PUT /shipment/{id}``."""

    session_id: NonEmpty200
    currency: Currency
    order: Order
    selected_shipping_option: SelectedOption
    locale: Text35 | None = None
    recipient: Recipient | None = None
    sender: Sender | None = None


class StoredRequest(msgspec.Struct, frozen=True, omit_defaults=True, forbid_unknown_fields=True):
    """``reservations.record.StoredRequest`` of a request this module decoded: stored as
    ``msgspec.to_builtins`` gives it, the same JSON as the attrs record's."""

    currency: str | None = None
    order: Order | None = None
    locale: str | None = None
    sender: Sender | None = None

    @classmethod
    def of(cls, req: ShipmentRequest) -> StoredRequest:
        """What a reservation keeps of ``req``."""
        return cls(req.currency, req.order, req.locale, req.sender)


_OPTIONS: Final = msgspec.json.Decoder(ShippingOptionsRequest)
_SHIPMENT: Final = msgspec.json.Decoder(ShipmentRequest)


def decode(raw: bytes) -> ShippingOptionsRequest | None:
    """The request, or None when the slow path must decide (and, for a bad body, name the field)."""
    return _decode(_OPTIONS, raw)


def decode_shipment(raw: bytes) -> ShipmentRequest | None:
    """As ``decode``, for a ``/shipment`` body."""
    return _decode(_SHIPMENT, raw)


def _decode(decoder: msgspec.json.Decoder[T], raw: bytes) -> T | None:
    if b"\\u0000" in raw:  # NUL characters: the slow path names the field
        return None
    try:
        return decoder.decode(raw)
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):  # too deep: orjson decides
        return None
