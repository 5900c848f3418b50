"""A strict reader over decoded TOML tables that collects errors with path and line.

This module owns the mechanics of catalog validation: typed getters that record
``path: message (line N)`` instead of raising, so one ``catalog check`` reports every mistake at once,
and ``done()`` which reports keys nobody asked for (typos). The catalog's meaning lives in ``parse``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, time
from typing import Any, TypeVar

from tms_server.catalog.lines import LineMap
from tms_server.catalog.model import WEEKDAYS, TimeWindow

__all__ = ["Context", "Table"]

T = TypeVar("T")

_TYPE_NAMES = {
    str: "string",
    int: "integer",
    float: "float",
    bool: "boolean",
    list: "array",
    dict: "table",
    date: "date",
    time: "time",
}
_CLOCK = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


def type_name(value: object) -> str:
    return _TYPE_NAMES.get(type(value), type(value).__name__)


class Context:
    """Shared state of one parse: the error list and the line map."""

    def __init__(self, text: str) -> None:
        self.errors: list[str] = []
        self.lines = LineMap(text)

    def error(self, path: str, message: str) -> None:
        line = self.lines.line_of(path)
        self.errors.append(f"{path}: {message}" + (f" (line {line})" if line else ""))


def join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def clock(ctx: Context, path: str, value: object) -> time | None:
    """A local wall-clock time: "14:00" or a TOML local time."""
    if type(value) is time:
        return value
    match = _CLOCK.match(value) if isinstance(value, str) else None
    if match is None:
        ctx.error(path, f'expected a time like "14:00", got {value!r}')
        return None
    return time(int(match.group(1)), int(match.group(2)))


def window(ctx: Context, path: str, value: object) -> TimeWindow | None:
    """A window "17:00-21:00"; "24:00" may end one."""
    if not isinstance(value, str) or value.count("-") != 1:
        ctx.error(path, f'expected a window like "17:00-21:00", got {value!r}')
        return None
    first, last = (part.strip() for part in value.split("-"))
    start = clock(ctx, path, first)
    end = time.max if last == "24:00" else clock(ctx, path, last)
    if start is None or end is None:
        return None
    if not start < end:
        ctx.error(path, f"start must be before end, got {value!r}")
        return None
    return TimeWindow(start, end)


def weekday(ctx: Context, path: str, value: object) -> int | None:
    if isinstance(value, str) and value.lower() in WEEKDAYS:
        return WEEKDAYS.index(value.lower())
    ctx.error(path, f"unknown weekday {value!r}, expected one of {', '.join(WEEKDAYS)}")
    return None


def calendar_date(ctx: Context, path: str, value: object) -> date | None:
    if type(value) is date:
        return value
    try:
        return date.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        pass
    ctx.error(path, f"expected a date like 2026-12-24, got {value!r}")
    return None


class Table:
    """One TOML table being read; every getter marks its key as known."""

    def __init__(self, ctx: Context, data: dict[str, Any], path: str) -> None:
        self.ctx, self.data, self.path = ctx, data, path
        self._used: set[str] = set()

    def at(self, key: str | int) -> str:
        return join(self.path, key)

    def error(self, key: str, message: str) -> None:
        self.ctx.error(self.at(key), message)

    def raw(self, key: str) -> Any:
        self._used.add(key)
        return self.data.get(key)

    def _typed(self, key: str, kind: type[T], name: str, required: bool) -> T | None:
        value = self.raw(key)
        if value is None:
            if required:
                self.error(key, "required key is missing")
            return None
        # type() rather than isinstance(): a boolean must not pass as an integer.
        if type(value) is not kind and not (kind is float and type(value) is int):
            self.error(key, f"expected {name}, got {type_name(value)}")
            return None
        return kind(value)  # type: ignore[call-arg]

    def text(self, key: str, *, required: bool = False, pattern: str | None = None) -> str | None:
        value = self._typed(key, str, "string", required)
        if value is not None and not value.strip():
            self.error(key, "must not be empty")
            return None
        if value is not None and pattern is not None and not re.fullmatch(pattern, value):
            self.error(key, f"{value!r} does not match {pattern}")
            return None
        return value

    def choice(self, key: str, choices: tuple[str, ...], default: str | None = None) -> str | None:
        value = self.text(key, required=default is None)
        if value is not None and value not in choices:
            self.error(key, f"expected one of {', '.join(choices)}, got {value!r}")
            return None
        return default if value is None else value

    def integer(
        self, key: str, *, required: bool = False, low: int = 0, high: int | None = None
    ) -> int | None:
        value = self._typed(key, int, "integer", required)
        if value is not None and value < low:
            self.error(key, "must not be negative" if low == 0 else f"must be at least {low}")
            return None
        if value is not None and high is not None and value > high:
            self.error(key, f"must be at most {high}")
            return None
        return value

    def number(self, key: str, *, bound: float) -> float | None:
        value = self._typed(key, float, "number", False)
        if value is not None and not -bound <= value <= bound:
            self.error(key, f"must be between -{bound:g} and {bound:g}")
            return None
        return value

    def boolean(self, key: str) -> bool | None:
        """A true/false whose absence means "not constrained"."""
        return self._typed(key, bool, "boolean", False)

    def flag(self, key: str, default: bool = False) -> bool:
        value = self._typed(key, bool, "boolean", False)
        return default if value is None else value

    def array(self, key: str) -> list[Any] | None:
        return self._typed(key, list, "array", False)

    def strings(self, key: str) -> tuple[str, ...] | None:
        items = self.array(key)
        if items is None:
            return None
        for i, item in enumerate(items):
            if type(item) is not str or not item.strip():
                self.ctx.error(join(self.at(key), i), f"expected a non-empty string, got {type_name(item)}")
                return None
        return tuple(items)

    def mapped(self, key: str, convert: Callable[[Context, str, object], T | None]) -> tuple[T, ...] | None:
        items = self.array(key)
        if items is None:
            return None
        values = [convert(self.ctx, join(self.at(key), i), item) for i, item in enumerate(items)]
        return tuple(v for v in values if v is not None)

    def table(self, key: str, *, required: bool = False) -> Table | None:
        value = self._typed(key, dict, "table", required)
        return None if value is None else Table(self.ctx, value, self.at(key))

    def tables(self, key: str) -> list[Table]:
        """An array of tables (``[[key]]``); a single table is accepted as a one-item array."""
        value = self.raw(key)
        if value is None:
            return []
        if type(value) is dict:
            return [Table(self.ctx, value, self.at(key))]
        if type(value) is not list:
            self.error(key, f"expected an array of tables, got {type_name(value)}")
            return []
        out = []
        for i, item in enumerate(value):
            if type(item) is not dict:
                self.ctx.error(join(self.at(key), i), f"expected a table, got {type_name(item)}")
            else:
                out.append(Table(self.ctx, item, join(self.at(key), i)))
        return out

    def keys(self) -> list[str]:
        """All keys, marked as used (for tables keyed by the catalog's own names)."""
        self._used.update(self.data)
        return list(self.data)

    def done(self) -> None:
        for key in self.data:
            if key not in self._used:
                self.error(key, "unknown key")
