"""KSS wire types: the JSON bodies KSS sends us, as frozen attrs classes, and the strict parser.

The parser is the trust boundary. It is strict about types (no ``"3"`` for 3, no ``true`` for 1, no
string where a list is expected) and about values (no negative money, weights or tax rates), but
tolerates unknown keys because KSS adds fields over time. Every failure becomes one
``WireError`` whose message names the field path, e.g.
``order.lines[0].quantity: expected integer, got string``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

import attrs
import cattrs
from attrs import frozen
from cattrs.errors import (
    AttributeValidationNote,
    ClassValidationError,
    IterableValidationError,
    IterableValidationNote,
)

T = TypeVar("T")


class WireError(ValueError):
    """A request body that does not match the KSS shape; ``str(err)`` is the failure_reason."""


class _FieldError(ValueError):
    """A value check failed inside an attrs class; carries the attribute's JSON name."""

    def __init__(self, attribute: attrs.Attribute[Any], message: str) -> None:
        super().__init__(message)
        self.field = attribute.name.rstrip("_")
        self.message = message


def _non_negative(_inst: object, attribute: attrs.Attribute[Any], value: int | None) -> None:
    if value is not None and value < 0:
        raise _FieldError(attribute, f"must not be negative, got {value}")


def _non_empty(_inst: object, attribute: attrs.Attribute[Any], value: str | None) -> None:
    if value is not None and not value.strip():
        raise _FieldError(attribute, "must not be empty")


_CURRENCY = re.compile(r"^[A-Z]{3}$")
_COUNTRY = re.compile(r"^[A-Za-z]{2}$")


def _currency(_inst: object, attribute: attrs.Attribute[Any], value: str) -> None:
    if not _CURRENCY.match(value):
        raise _FieldError(attribute, f"expected an ISO 4217 code such as 'SEK', got {value!r}")


def _country(_inst: object, attribute: attrs.Attribute[Any], value: str | None) -> None:
    if value is not None and not _COUNTRY.match(value):
        raise _FieldError(attribute, f"expected an ISO 3166-1 alpha-2 code such as 'SE', got {value!r}")


def _max_len(n: int) -> Callable[[object, attrs.Attribute[Any], str | None], None]:
    def check(_inst: object, attribute: attrs.Attribute[Any], value: str | None) -> None:
        if value is not None and len(value) > n:
            raise _FieldError(attribute, f"longer than {n} characters")

    return check


def _one_of(attribute: attrs.Attribute[Any], value: str | None, allowed: tuple[str, ...]) -> None:
    if value is not None and value not in allowed:
        raise _FieldError(attribute, f"expected one of {', '.join(allowed)}, got {value!r}")


def _between(attribute: attrs.Attribute[Any], value: float, bound: float) -> None:
    if not -bound <= value <= bound:
        raise _FieldError(attribute, f"must be between -{bound:g} and {bound:g}, got {value}")


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


@frozen
class OrderLine:
    """One order line; amounts in minor units, tax_rate with two implied decimals."""

    quantity: int = attrs.field(validator=_non_negative)
    reference: str | None = None
    name: str | None = None
    type: str | None = None
    unit_price: int | None = _money
    total_price_including_tax: int | None = _money
    total_discount_amount: int | None = _money
    total_tax_amount: int | None = _money
    tax_rate: int | None = _money
    attributes: LineAttributes | None = None


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


# --- the strict converter -------------------------------------------------------------------------

_JSON_TYPE_NAMES = {
    bool: "boolean",
    int: "integer",
    float: "number",
    str: "string",
    list: "array",
    dict: "object",
    type(None): "null",
}


def json_type_name(value: object) -> str:
    """The JSON name of a decoded value's type, for messages."""
    return _JSON_TYPE_NAMES.get(type(value), type(value).__name__)


class _TypeMismatch(TypeError):
    def __init__(self, expected: str, value: object) -> None:
        super().__init__(f"expected {expected}, got {json_type_name(value)}")


def _strict(kind: type, name: str, also: tuple[type, ...] = ()) -> Callable[[object, type], Any]:
    accepted = (kind, *also)

    def hook(value: object, _t: type) -> Any:
        # type() rather than isinstance(): bool is an int subclass and must not pass as one.
        if type(value) not in accepted:
            raise _TypeMismatch(name, value)
        return kind(value)

    return hook


def _is_optional_of(kind: type) -> Callable[[Any], bool]:
    optional = kind | None

    def predicate(t: Any) -> bool:
        return bool(t == optional)

    return predicate


def _optional(inner: Callable[[object, type], Any]) -> Callable[[object, type], Any]:
    def hook(value: object, t: type) -> Any:
        return None if value is None else inner(value, t)

    return hook


def make_kss_converter(*, detailed: bool = True) -> cattrs.Converter:
    """A converter for KSS payloads: strict types, unknown keys tolerated.

    The fast one (``detailed=False``) parses valid bodies; when it fails, the detailed one runs
    again on the same body only to name the field, so bad input costs twice and good input once."""
    conv = cattrs.Converter(forbid_extra_keys=False, detailed_validation=detailed)
    conv.register_structure_hook(int, _strict(int, "integer"))
    conv.register_structure_hook(float, _strict(float, "number", also=(int,)))
    conv.register_structure_hook(str, _strict(str, "string"))
    conv.register_structure_hook(bool, _strict(bool, "boolean"))
    for kind, name, also in (
        (int, "integer", ()),
        (str, "string", ()),
        (bool, "boolean", ()),
        (float, "number", (int,)),
    ):
        # Optional scalars are most fields: a direct hook skips cattrs' generic Optional dispatch.
        conv.register_structure_hook_func(_is_optional_of(kind), _optional(_strict(kind, name, also)))
    conv.register_structure_hook_factory(attrs.has, lambda cl: _object_hook(conv, cl))
    conv.register_structure_hook_factory(_is_homogeneous_tuple, lambda cl: _array_hook(conv, cl))
    return conv


def _object_hook(conv: cattrs.Converter, cl: type) -> Callable[[object, type], Any]:
    """attrs classes come from JSON objects only; ``class`` maps onto ``class_``."""
    overrides = {a.name: cattrs.gen.override(rename=a.name.rstrip("_")) for a in attrs.fields(cl)}
    inner: Callable[[Any, Any], Any] = cattrs.gen.make_dict_structure_fn(cl, conv, **overrides)  # type: ignore[arg-type]

    def hook(value: object, t: type) -> Any:
        if type(value) is not dict:
            raise _TypeMismatch("object", value)
        return inner(value, t)

    return hook


def _is_homogeneous_tuple(t: object) -> bool:
    args = getattr(t, "__args__", None)
    return getattr(t, "__origin__", None) is tuple and args is not None and args[-1:] == (Ellipsis,)


def _array_hook(conv: cattrs.Converter, cl: Any) -> Callable[[object, type], Any]:
    """Tuples come from JSON arrays only; the first bad item is reported with its index."""
    item_type = cl.__args__[0]
    item_hook = conv.get_structure_hook(item_type)

    def hook(value: object, t: type) -> Any:
        if value is None:
            return ()  # an absent list, as some clients spell it
        if type(value) is not list:
            raise _TypeMismatch("array", value)
        out = []
        for i, item in enumerate(value):
            try:
                out.append(item_hook(item, item_type))
            except Exception as exc:
                exc.__notes__ = [*getattr(exc, "__notes__", []), IterableValidationNote(f"@ index {i}", i, t)]
                raise IterableValidationError("invalid item", [exc], t) from None
        return tuple(out)

    return hook


def _error_path(exc: BaseException, path: str) -> tuple[str, str]:
    """Walk a cattrs exception group down to its first leaf: (path, message)."""
    if isinstance(exc, ClassValidationError | IterableValidationError):
        sub = exc.exceptions[0]
        for note in getattr(sub, "__notes__", []):
            if isinstance(note, AttributeValidationNote):
                name = note.name.rstrip("_")
                return _error_path(sub, f"{path}.{name}" if path else name)
            if isinstance(note, IterableValidationNote):
                return _error_path(sub, f"{path}[{note.index}]")
        return _error_path(sub, path)
    if isinstance(exc, _FieldError):
        return (f"{path}.{exc.field}" if path else exc.field), exc.message
    if isinstance(exc, KeyError):
        return path, "required field is missing"
    return path, str(exc) or type(exc).__name__


def format_error(exc: BaseException) -> str:
    """One line naming the wrong field: ``recipient.postal_code: expected string, got integer``."""
    path, message = _error_path(exc, "")
    return f"{path}: {message}" if path else message


_CONVERTER = make_kss_converter()
_FAST = make_kss_converter(detailed=False)


def find_nul(value: object, path: str = "") -> str | None:
    """The path of the first string (key or value) holding a NUL character, which PostgreSQL cannot store."""
    if isinstance(value, str):
        return (path or "body") if "\x00" in value else None
    if isinstance(value, dict):
        for k, v in value.items():
            where = f"{path}.{k}" if path else str(k)
            if "\x00" in k:
                return where.replace("\x00", "\\u0000")
            found = find_nul(v, where)
            if found:
                return found
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found = find_nul(v, f"{path}[{i}]")
            if found:
                return found
    return None


def parse(payload: object, cls: type[T]) -> T:
    """Structure a decoded JSON body into ``cls``, or raise WireError naming the field."""
    if type(payload) is not dict:
        raise WireError(f"request body must be a JSON object, got {json_type_name(payload)}")
    try:
        return _FAST.structure(payload, cls)
    except Exception:  # noqa: S110  # re-run below with detailed validation, only to name the field
        pass
    try:
        return _CONVERTER.structure(payload, cls)
    except (ClassValidationError, IterableValidationError, ValueError, TypeError, KeyError) as exc:
        raise WireError(format_error(exc)) from None


def check_nul(raw: bytes, payload: object) -> None:
    """Refuse NUL characters, which PostgreSQL cannot store (JSON can only spell them \\u0000)."""
    if b"\\u0000" in raw:
        nul = find_nul(payload)
        if nul:
            raise WireError(f"{nul}: contains a NUL character (\\u0000), which is not allowed")
