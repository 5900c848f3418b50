"""The strict JSON-to-attrs converter at the trust boundary, and its field-path error messages.

Strict about types (``type()``, not ``isinstance()``: no ``"3"`` for 3, no ``true`` for 1, no string
where an array belongs), tolerant of unknown keys. Any failure becomes one ``WireError`` naming the
field: ``recipient.postal_code: expected string, got integer``. Value checks live on the attrs
classes (``tms_server.wire``) and raise ``FieldError`` so the path can be completed here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import attrs
import cattrs
from cattrs.errors import (
    AttributeValidationNote,
    ClassValidationError,
    IterableValidationError,
    IterableValidationNote,
)

T = TypeVar("T")


class WireError(ValueError):
    """A request body that does not match the KSS shape; ``str(err)`` is the failure_reason."""


class FieldError(ValueError):
    """A value check failed inside an attrs class; carries the attribute's JSON name."""

    def __init__(self, attribute: attrs.Attribute[Any], message: str) -> None:
        super().__init__(message)
        self.field = attribute.name.rstrip("_")
        self.message = message


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
    if isinstance(exc, FieldError):
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
