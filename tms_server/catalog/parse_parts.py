"""Readers for the reusable parts of a catalog: conditions, postal patterns, pickup points, hours,
warehouses, timeslot templates and delivery promises.

This module owns how each part is spelled in TOML and what is an impossible value there; ``parse``
assembles the parts into a ``Catalog``.
"""

from __future__ import annotations

import re
from datetime import date, time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tms_server import postal
from tms_server.catalog.model import (
    Conditions,
    Hours,
    Location,
    PostalPattern,
    Promise,
    SlotTemplate,
    TimeslotTemplate,
    TimeWindow,
    Warehouse,
)
from tms_server.catalog.reader import Context, Table, calendar_date, clock, join, weekday, window

__all__ = [
    "COUNTRY",
    "read_conditions",
    "read_hours",
    "read_location",
    "read_promise",
    "read_timeslots",
    "read_warehouse",
    "valid_zone",
]

COUNTRY = r"[A-Z]{2}"
_PATTERN = re.compile(r"^[A-Z0-9 ]+\*?$")


def valid_zone(ctx: Context, path: str, name: str | None) -> str | None:
    if name is None:
        return None
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        ctx.error(path, f"unknown time zone {name!r}")
        return None
    return name


def _postal_pattern(ctx: Context, path: str, value: object) -> PostalPattern | None:
    """ "11*" (prefix), "111 34" (exact) or "100 00-199 99" (inclusive range)."""
    text = value.upper().strip() if isinstance(value, str) else ""
    parts = [postal.compact(p) for p in text.split("-")]
    if not all(_PATTERN.match(p) for p in text.split("-")) or len(parts) > 2 or not all(parts):
        ctx.error(path, f'expected a postal pattern like "11*", "111 34" or "100 00-199 99", got {value!r}')
        return None
    if len(parts) == 2:
        low, high = parts
        if "*" in text or len(low) != len(high) or low > high:
            ctx.error(path, f"range bounds must have equal length and low <= high, got {value!r}")
            return None
        return PostalPattern(text, low, high)
    code = parts[0].rstrip("*")
    return PostalPattern(text, code, code)


def _postal_table(table: Table | None) -> dict[str, tuple[PostalPattern, ...]] | None:
    if table is None:
        return None
    out: dict[str, tuple[PostalPattern, ...]] = {}
    for country in table.keys():
        if not re.fullmatch(COUNTRY, country):
            table.error(country, f"expected an upper-case country code such as SE, got {country!r}")
            continue
        patterns = table.mapped(country, _postal_pattern)
        if patterns is not None:
            out[country] = patterns
    return out


def _frozen(values: tuple[str, ...] | None) -> frozenset[str] | None:
    return None if values is None else frozenset(values)


def _min_max(t: Table, low_key: str, high_key: str) -> tuple[int | None, int | None]:
    low, high = t.integer(low_key), t.integer(high_key)
    if low is not None and high is not None and high < low:
        t.error(high_key, f"must not be below {low_key} ({high} < {low})")
    return low, high


def _dimensions(t: Table) -> tuple[int, int, int] | None:
    items = t.array("parcel_dimensions_max")
    if items is None:
        return None
    if len(items) != 3 or any(type(v) is not int or v <= 0 for v in items):
        t.error("parcel_dimensions_max", "expected three positive integers (mm), e.g. [1200, 600, 600]")
        return None
    big, mid, small = sorted(items, reverse=True)
    return big, mid, small


def read_conditions(t: Table) -> Conditions:
    """One AND-group; see the catalog format in tms_server/catalog/__init__.py."""
    weight = _min_max(t, "total_weight_min", "total_weight_max")
    total = _min_max(t, "order_total_min", "order_total_max")
    countries = t.strings("countries")
    for i, country in enumerate(countries or ()):
        if not re.fullmatch(COUNTRY, country):
            t.ctx.error(join(t.at("countries"), i), f"expected an upper-case country code, got {country!r}")
    customer_types = t.strings("customer_types")
    if customer_types and not set(customer_types) <= {"person", "organization"}:
        t.error("customer_types", "expected person and/or organization")
    weekdays = t.mapped("weekdays", weekday)
    local = t.raw("local_time")
    conditions = Conditions(
        countries=_frozen(countries),
        postal_codes=_postal_table(t.table("postal_codes")),
        not_postal_codes=_postal_table(t.table("not_postal_codes")),
        total_weight_min=weight[0],
        total_weight_max=weight[1],
        parcel_weight_max=t.integer("parcel_weight_max"),
        line_weight_max=t.integer("line_weight_max"),
        parcel_dimensions_max=_dimensions(t),
        unknown_dimensions=t.choice("unknown_dimensions", ("allow", "refuse"), default="") or None,
        physical_goods=t.boolean("physical_goods"),
        order_total_min=total[0],
        order_total_max=total[1],
        order_tags=_frozen(t.strings("order_tags")),
        not_order_tags=_frozen(t.strings("not_order_tags")),
        line_tags=_frozen(t.strings("line_tags")),
        not_line_tags=_frozen(t.strings("not_line_tags")),
        customer_types=_frozen(customer_types),
        senders=_frozen(t.strings("senders")),
        currencies=_frozen(t.strings("currencies")),
        weekdays=None if weekdays is None else frozenset(weekdays),
        local_time=None if local is None else window(t.ctx, t.at("local_time"), local),
    )
    t.done()
    return conditions


def _hours_list(ctx: Context, path: str, value: object) -> tuple[TimeWindow, ...]:
    """ "08:00-21:00", "closed", or a list of windows ("08:00-12:00", "13:00-18:00")."""
    if value == "closed":
        return ()
    items = value if isinstance(value, list) else [value]
    found = (window(ctx, join(path, i) if isinstance(value, list) else path, v) for i, v in enumerate(items))
    return tuple(w for w in found if w is not None)


def read_hours(t: Table | None) -> Hours:
    """Opening hours from ``default``, ``mon``..``sun`` and ``dates`` (see the catalog format)."""
    if t is None:
        return Hours()
    default: tuple[TimeWindow, ...] = ()
    weekdays: dict[int, tuple[TimeWindow, ...]] = {}
    dates: dict[date, tuple[TimeWindow, ...]] = {}
    for key in t.keys():
        if key == "default":
            default = _hours_list(t.ctx, t.at(key), t.data[key])
        elif key == "dates":
            dates = _date_hours(t.table("dates"))
        elif (day := weekday(t.ctx, t.at(key), key)) is not None:
            weekdays[day] = _hours_list(t.ctx, t.at(key), t.data[key])
    return Hours(default, weekdays, dates)


def _date_hours(t: Table | None) -> dict[date, tuple[TimeWindow, ...]]:
    out = {}
    for key in t.keys() if t else ():
        assert t is not None
        day = calendar_date(t.ctx, t.at(key), key)
        if day is not None:
            out[day] = _hours_list(t.ctx, t.at(key), t.data[key])
    return out


def read_location(t: Table) -> Location | None:
    """One pickup point of a ``[[pickup_points.LIST]]`` array."""
    country = t.text("country", required=True, pattern=COUNTRY)
    code = t.text("postal_code", required=True)
    if country and code and postal.normalise(country, code) is None:
        t.error("postal_code", f"{code!r} is not a valid postal code in {country}")
    lat, lng = t.number("lat", bound=90.0), t.number("lng", bound=180.0)
    if (lat is None) != (lng is None):
        t.error("lat", "give both lat and lng, or neither")
    location = Location(
        id=t.text("id", required=True) or "",
        name=t.text("name", required=True) or "",
        street_address=t.text("street_address", required=True) or "",
        postal_code=postal.normalise(country or "", code or "") or (code or ""),
        city=t.text("city", required=True) or "",
        country=country or "",
        lat=lat,
        lng=lng,
        hours=read_hours(t.table("hours")),
        lead_days=_lead_days(t, required=False),
    )
    t.done()
    return location


def read_warehouse(t: Table) -> Warehouse:
    cutoffs: dict[int, time] = {}
    table = t.table("cutoffs", required=True)
    for key in table.keys() if table else ():
        assert table is not None
        day = weekday(t.ctx, table.at(key), key)
        at = clock(t.ctx, table.at(key), table.data[key])
        if day is not None and at is not None:
            cutoffs[day] = at
    if table is not None and not cutoffs:
        t.error("cutoffs", 'expected a cutoff for at least one weekday, e.g. { mon = "14:00" }')
    closed = frozenset(t.mapped("closed_dates", calendar_date) or ())
    opened = frozenset(t.mapped("open_dates", calendar_date) or ())
    if closed & opened:
        t.error("open_dates", f"also in closed_dates: {sorted(map(str, closed & opened))}")
    warehouse = Warehouse(
        id=t.text("id", required=True) or "",
        tz=valid_zone(t.ctx, t.at("tz"), t.text("tz", required=True)) or "UTC",
        country=t.text("country", required=True, pattern=COUNTRY) or "",
        cutoffs=cutoffs,
        closed_dates=closed,
        open_dates=opened - closed,
    )
    t.done()
    return warehouse


def _slot(ctx: Context, path: str, value: object) -> SlotTemplate | None:
    if not isinstance(value, dict):
        ctx.error(
            path,
            'expected a table like { id = "evening", window = "17:00-21:00", cutoff = "14:00" }',
        )
        return None
    t = Table(ctx, value, path)
    slot_id, span = t.text("id", required=True, pattern=r"[A-Za-z0-9_]+"), t.raw("window")
    slot_window = window(ctx, t.at("window"), span) if span is not None else None
    if span is None:
        t.error("window", "required key is missing")
    cutoff = clock(ctx, t.at("cutoff"), t.raw("cutoff"))
    before = t.integer("cutoff_days_before", high=7) or 0
    t.done()
    if slot_id is None or slot_window is None or cutoff is None:
        return None
    if before == 0 and cutoff > slot_window.start:
        t.error("cutoff", "a same-day cutoff must not be after the slot starts")
    return SlotTemplate(slot_id, slot_window, cutoff, before)


def read_timeslots(t: Table) -> TimeslotTemplate | None:
    days = t.integer("days", required=True, low=1, high=31)
    slots = t.mapped("slots", _slot)
    if not slots:
        t.error("slots", "expected at least one slot")
    ids = [s.id for s in slots or ()]
    if len(set(ids)) != len(ids):
        t.error("slots", f"slot ids must be unique, got {ids}")
    t.done()
    return TimeslotTemplate(days, slots) if days and slots else None


def _lead_days(t: Table, *, required: bool) -> tuple[int, int] | None:
    lead: Any = t.array("lead_days")
    if lead is None and not required:
        return None
    if not (isinstance(lead, list) and len(lead) == 2 and all(type(v) is int and 0 <= v <= 60 for v in lead)):
        t.error("lead_days", "expected [min, max] delivery days after dispatch, e.g. [1, 2]")
        return None
    if lead[1] < lead[0]:
        t.error("lead_days", f"max must not be below min, got {lead}")
        return None
    return lead[0], lead[1]


def read_promise(t: Table) -> Promise | None:
    lead = _lead_days(t, required=True)
    weekdays = t.mapped("weekdays", weekday)
    if weekdays == ():
        t.error("weekdays", "expected at least one delivery weekday")
    form = t.choice("form", ("interval", "dates"), default="interval") or "interval"
    span = t.raw("time_of_day")
    time_of_day = window(t.ctx, t.at("time_of_day"), span) if span is not None else None
    t.done()
    if lead is None:
        return None
    return Promise(lead[0], lead[1], frozenset(weekdays or range(5)), form, time_of_day)
