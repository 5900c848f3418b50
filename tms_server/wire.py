"""KSS wire types: the JSON bodies KSS sends us, as frozen attrs classes with their value checks.

Parsing is ``tms_server.strict`` (re-exported here as ``parse``): strict about types (no ``"3"`` for
3, no ``true`` for 1, no string where a list is expected) and about values (no negative money,
weights or tax rates), tolerant of unknown keys because KSS adds fields over time. Every failure is
one ``WireError`` whose message names the field path, e.g.
``order.lines[0].quantity: expected integer, got string``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, Final, Protocol

import attrs
from attrs import frozen

# Re-exported: callers parse bodies as ``wire.parse(body, wire.ShipmentRequest)``.
from tms_server.strict import FieldError
from tms_server.strict import WireError as WireError
from tms_server.strict import check_nul as check_nul
from tms_server.strict import parse as parse


def _non_negative(_inst: object, attribute: attrs.Attribute[Any], value: int | None) -> None:
    if value is not None and value < 0:
        raise FieldError(attribute, f"must not be negative, got {value}")


def _non_empty(_inst: object, attribute: attrs.Attribute[Any], value: str | None) -> None:
    if value is not None and not value.strip():
        raise FieldError(attribute, "must not be empty")


_CURRENCY = re.compile(r"^[A-Z]{3}$")
_COUNTRY = re.compile(r"^[A-Za-z]{2}$")


def _currency(_inst: object, attribute: attrs.Attribute[Any], value: str) -> None:
    if not _CURRENCY.match(value):
        raise FieldError(attribute, f"expected an ISO 4217 code such as 'SEK', got {value!r}")


def _country(_inst: object, attribute: attrs.Attribute[Any], value: str | None) -> None:
    if value is not None and not _COUNTRY.match(value):
        raise FieldError(attribute, f"expected an ISO 3166-1 alpha-2 code such as 'SE', got {value!r}")


def _max_len(n: int) -> Callable[[object, attrs.Attribute[Any], str | None], None]:
    def check(_inst: object, attribute: attrs.Attribute[Any], value: str | None) -> None:
        if value is not None and len(value) > n:
            raise FieldError(attribute, f"longer than {n} characters")

    return check


def _one_of(attribute: attrs.Attribute[Any], value: str | None, allowed: tuple[str, ...]) -> None:
    if value is not None and value not in allowed:
        raise FieldError(attribute, f"expected one of {', '.join(allowed)}, got {value!r}")


def _between(attribute: attrs.Attribute[Any], value: float, bound: float) -> None:
    if not -bound <= value <= bound:
        raise FieldError(attribute, f"must be between -{bound:g} and {bound:g}, got {value}")


_money = attrs.field(default=None, validator=_non_negative)


@frozen
class Dimensions:
    """Parcel dimensions in millimetres."""

    height: int | None = attrs.field(default=None, validator=_non_negative)
    width: int | None = attrs.field(default=None, validator=_non_negative)
    length: int | None = attrs.field(default=None, validator=_non_negative)


@frozen
class LineAttributes:
    """Physical attributes of one order line (weight in grams)."""

    weight: int | None = attrs.field(default=None, validator=_non_negative)
    dimensions: Dimensions | None = None
    tags: tuple[str, ...] = ()


# Klarna's order line types (Klarna payments/checkout API, ``order_lines[].type``). Any other string is
# accepted too: Klarna adds types over time, and refusing one would stop the checkout.
PHYSICAL: Final = "physical"
LINE_TYPES: Final = (
    PHYSICAL, "discount", "shipping_fee", "sales_tax", "digital", "gift_card", "store_credit", "surcharge",
)  # fmt: skip
# Lines that are not goods to ship. A line without a type, or of a type we do not know, is physical:
# the capacity checks then err on the side of a parcel that fits.
NOT_SHIPPED: Final = frozenset(LINE_TYPES) - {PHYSICAL}
# Lines whose amounts may be negative: they reduce the order. A surcharge may be negative too: checkout
# plugins send rounding corrections and shops' negative fees (discounts by another name) as surcharge
# lines. Unknown types may be such lines as well.
_REDUCING: Final = frozenset({"discount", "gift_card", "store_credit", "surcharge"})
NON_NEGATIVE_AMOUNTS: Final = frozenset(LINE_TYPES) - _REDUCING  # also read by fastwire


def _line_amounts(line: OrderLine) -> None:
    """Money may be negative only on lines that reduce the order (or of a type we do not know)."""
    kind = line.type if line.type is not None else PHYSICAL
    if kind not in NON_NEGATIVE_AMOUNTS:
        return
    for attribute in attrs.fields(OrderLine):
        if attribute.name in _LINE_MONEY:
            value = getattr(line, attribute.name)
            if value is not None and value < 0:
                raise FieldError(attribute, f"must not be negative on a {kind} line, got {value}")


_LINE_MONEY: Final = (
    "unit_price", "total_price_including_tax", "total_discount_amount", "total_tax_amount",
)  # fmt: skip


@frozen
class OrderLine:
    """One order line; amounts in minor units (negative only on discount, gift_card, store_credit and
    surcharge lines, or on a type we do not know), tax_rate with two implied decimals. ``type`` is Klarna's
    order line type (``LINE_TYPES``); absent means physical."""

    quantity: int = attrs.field(validator=_non_negative)
    reference: str | None = None
    name: str | None = None
    type: str | None = attrs.field(default=None, validator=_max_len(64))
    unit_price: int | None = None
    total_price_including_tax: int | None = None
    total_discount_amount: int | None = None
    total_tax_amount: int | None = None
    tax_rate: int | None = _money
    attributes: LineAttributes | None = None

    def __attrs_post_init__(self) -> None:
        _line_amounts(self)

    @property
    def physical(self) -> bool:
        """Goods that travel in the parcel: a physical line, a line without type, or an unknown type."""
        return self.type not in NOT_SHIPPED


@frozen
class Order:
    """The cart. ``total_amount`` is the order value rules look at."""

    total_amount: int = attrs.field(validator=_non_negative)
    id: str | None = None
    tags: tuple[str, ...] = ()
    lines: tuple[OrderLine, ...] = ()
    total_tax: int | None = _money
    total_weight: int | None = _money


@frozen
class Address:
    """A postal address; early in a session any part may be missing."""

    street_address: str | None = attrs.field(default=None, validator=_max_len(500))
    street_address2: str | None = attrs.field(default=None, validator=_max_len(500))
    postal_code: str | None = attrs.field(default=None, validator=_max_len(64))
    city: str | None = attrs.field(default=None, validator=_max_len(200))
    region: str | None = attrs.field(default=None, validator=_max_len(200))
    country: str | None = attrs.field(default=None, validator=_country)


@frozen
class Recipient(Address):
    """The shopper receiving the parcel: an address plus who they are and how to reach them."""

    given_name: str | None = attrs.field(default=None, validator=_max_len(200))
    family_name: str | None = attrs.field(default=None, validator=_max_len(200))
    company_name: str | None = attrs.field(default=None, validator=_max_len(200))
    care_of: str | None = attrs.field(default=None, validator=_max_len(200))
    email: str | None = attrs.field(default=None, validator=_max_len(320))
    phone: str | None = attrs.field(default=None, validator=_max_len(64))
    customer_type: str | None = attrs.field(
        default=None, validator=lambda _i, a, v: _one_of(a, v, ("person", "organization"))
    )


@frozen
class Sender:
    """The warehouse the parcel leaves from."""

    sender_id: str | None = None
    address: Address | None = None


@frozen
class Coordinates:
    """A WGS 84 position."""

    lat: float = attrs.field(validator=lambda _i, a, v: _between(a, v, 90.0))
    lng: float = attrs.field(validator=lambda _i, a, v: _between(a, v, 180.0))


@frozen
class AddonData:
    """What the shopper chose for an addon."""

    selected: bool | None = None
    text: str | None = None


@frozen
class SelectedAddon:
    """An addon of the selected option, as KSS echoes it back."""

    id: str = attrs.field(validator=_non_empty)
    type: str | None = None
    price: int | None = _money
    required: bool | None = None
    preselected: bool | None = None
    max_length: int | None = _money
    data: AddonData | None = None


@frozen
class SelectedLocation:
    """The pickup point the shopper chose."""

    id: str = attrs.field(validator=_non_empty)
    name: str | None = None
    address: Address | None = None
    coordinates: Coordinates | None = None


@frozen
class SelectedTimeslot:
    """The delivery timeslot the shopper chose."""

    id: str = attrs.field(validator=_non_empty)
    start: str | None = None
    end: str | None = None


@frozen
class SelectedOption:
    """The shipping option being reserved."""

    id: str = attrs.field(validator=_non_empty)
    carrier: str | None = None
    # ``class`` is a keyword; the converter maps the JSON key onto this attribute.
    class_: str | None = None
    type: str | None = None
    price: int | None = _money
    tax_rate: int | None = _money
    addons: tuple[SelectedAddon, ...] = ()
    location: SelectedLocation | None = None
    timeslot: SelectedTimeslot | None = None


@frozen
class ShippingOptionsRequest:
    """Body of ``POST /shippingoptions``."""

    session_id: str = attrs.field(validator=[_non_empty, _max_len(200)])
    currency: str = attrs.field(validator=_currency)
    order: Order
    locale: str | None = attrs.field(default=None, validator=_max_len(35))
    geoblocking: bool | None = None
    selected_shipping_option_id: str | None = None
    recipient: Recipient | None = None
    sender: Sender | None = None


@frozen
class ShipmentRequest:
    """Body of ``POST /shipment`` and ``PUT /shipment/{id}``."""

    session_id: str = attrs.field(validator=[_non_empty, _max_len(200)])
    currency: str = attrs.field(validator=_currency)
    order: Order
    selected_shipping_option: SelectedOption
    locale: str | None = attrs.field(default=None, validator=_max_len(35))
    recipient: Recipient | None = None
    sender: Sender | None = None


@frozen
class AuthSecret:
    """The nonce and digest KSS computed."""

    nonce: str = attrs.field(validator=[_non_empty, _max_len(256)])
    digest: str = attrs.field(validator=[_non_empty, _max_len(256)])


@frozen
class AuthRequest:
    """Body of ``POST /auth``."""

    identifier: str = attrs.field(validator=[_non_empty, _max_len(256)])
    secret: AuthSecret


# What the rule engine reads of a request. Both the attrs classes above and the fast decoder's
# structs (``tms_server.fastwire``) have this shape, so the engine takes either.
class DimensionsView(Protocol):
    """``Dimensions``: millimetres."""

    @property
    def height(self) -> int | None: ...
    @property
    def width(self) -> int | None: ...
    @property
    def length(self) -> int | None: ...


class LineAttributesView(Protocol):
    """``LineAttributes``: weight in grams."""

    @property
    def weight(self) -> int | None: ...
    @property
    def dimensions(self) -> DimensionsView | None: ...
    @property
    def tags(self) -> Sequence[str]: ...


class LineView(Protocol):
    """``OrderLine``: amounts in minor units."""

    @property
    def quantity(self) -> int: ...
    @property
    def type(self) -> str | None: ...
    @property
    def unit_price(self) -> int | None: ...
    @property
    def total_price_including_tax(self) -> int | None: ...
    @property
    def total_discount_amount(self) -> int | None: ...
    @property
    def attributes(self) -> LineAttributesView | None: ...
    @property
    def physical(self) -> bool: ...


class OrderView(Protocol):
    """``Order``: the cart."""

    @property
    def total_amount(self) -> int: ...
    @property
    def total_weight(self) -> int | None: ...
    @property
    def tags(self) -> Sequence[str]: ...
    @property
    def lines(self) -> Sequence[LineView]: ...


class RecipientView(Protocol):
    """``Recipient``: what rules look at."""

    @property
    def country(self) -> str | None: ...
    @property
    def postal_code(self) -> str | None: ...
    @property
    def customer_type(self) -> str | None: ...


class SenderView(Protocol):
    """``Sender``."""

    @property
    def sender_id(self) -> str | None: ...


class RequestView(Protocol):
    """A ``/shippingoptions`` or ``/shipment`` body as the rule engine reads it."""

    @property
    def session_id(self) -> str: ...
    @property
    def currency(self) -> str: ...
    @property
    def locale(self) -> str | None: ...
    @property
    def order(self) -> OrderView: ...
    @property
    def recipient(self) -> RecipientView | None: ...
    @property
    def sender(self) -> SenderView | None: ...


class AddonDataView(Protocol):
    """``AddonData``."""

    @property
    def selected(self) -> bool | None: ...
    @property
    def text(self) -> str | None: ...


class SelectedAddonView(Protocol):
    """``SelectedAddon``."""

    @property
    def id(self) -> str: ...
    @property
    def data(self) -> AddonDataView | None: ...


class SelectedIdView(Protocol):
    """``SelectedLocation`` or ``SelectedTimeslot``: what the checks read is the id."""

    @property
    def id(self) -> str: ...


class SelectedOptionView(Protocol):
    """``SelectedOption``."""

    @property
    def id(self) -> str: ...
    @property
    def addons(self) -> Sequence[SelectedAddonView]: ...
    @property
    def location(self) -> SelectedIdView | None: ...
    @property
    def timeslot(self) -> SelectedIdView | None: ...


class ShipmentView(RequestView, Protocol):
    """A ``/shipment`` body as the reservation checks read it."""

    @property
    def selected_shipping_option(self) -> SelectedOptionView: ...
