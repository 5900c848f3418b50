"""Where and when: pickup points for a recipient, timeslots, and the delivery promise of an option.

This module owns the parts of an option that depend on geography and the calendar. Pickup points are
the option's list filtered to the recipient's country, nearest first when the catalog knows the
centre of the recipient's postal area, otherwise by postal-code closeness (longest common prefix,
then numeric distance). Timeslots come from the option's template on the carrier's delivery days.
The promise is ``tms_server.calendar.compute_delivery_time``.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Set
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

import attrs
from attrs import frozen

from tms_server import calendar, postal
from tms_server.catalog.conditions import Facts
from tms_server.catalog.model import (
    WEEKDAYS,
    Catalog,
    Hours,
    Location,
    Option,
    Promise,
    TimeWindow,
    Warehouse,
)

__all__ = ["Slot", "delivery_time", "location_dict", "pickup_points", "recipient_tz", "timeslots"]

_COUNTRY_TZ: Final = {
    "SE": "Europe/Stockholm",
    "NO": "Europe/Oslo",
    "DK": "Europe/Copenhagen",
    "FI": "Europe/Helsinki",
    "DE": "Europe/Berlin",
    "AT": "Europe/Vienna",
    "NL": "Europe/Amsterdam",
    "BE": "Europe/Brussels",
    "CH": "Europe/Zurich",
    "FR": "Europe/Paris",
    "ES": "Europe/Madrid",
    "IT": "Europe/Rome",
    "PL": "Europe/Warsaw",
    "GB": "Europe/London",
    "US": "America/New_York",
}


def recipient_tz(catalog: Catalog, country: str | None) -> str:
    """The recipient's zone: the catalog's table, a built-in one per country, else the catalog's."""
    if country is None:
        return catalog.timezone
    return catalog.timezones.get(country) or _COUNTRY_TZ.get(country) or catalog.timezone


class _Memo:
    """A bounded cache for pure results that every shopper shares (the same promise, slots and
    pickup points for everyone in a postal area within one minute). Keys hold ``id()`` of catalog
    objects, so each value keeps its catalog object alive: an id is never reused while cached."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.data: dict[tuple[Any, ...], tuple[object, Any]] = {}

    def get(self, key: tuple[Any, ...]) -> Any:
        hit = self.data.get(key)
        return _MISS if hit is None else hit[1]

    def put(self, key: tuple[Any, ...], owner: object, value: Any) -> Any:
        if len(self.data) >= self.size:
            self.data.clear()  # crude but bounded; a refill costs one evaluation per key
        self.data[key] = (owner, value)
        return value


_MISS: Final = object()
_SLOTS = _Memo(4096)
_PROMISES = _Memo(4096)
_POINTS = _Memo(16384)
_LOCATION_JSON = _Memo(16384)


def _minute(now: datetime) -> datetime:
    """Catalog times are whole minutes, so every answer is the same within one minute."""
    return now.replace(second=0, microsecond=0)


@functools.lru_cache(maxsize=256)
def country_calendar(country: str | None) -> calendar.BusinessCalendar:
    """The destination's holidays; a country the holidays library does not know has none."""
    try:
        return calendar.BusinessCalendar(country=country)
    except ValueError:
        return calendar.BusinessCalendar()


@functools.lru_cache(maxsize=256)
def _warehouse_calendar(
    country: str, weekdays: frozenset[int], closed: frozenset[date], opened: frozenset[date]
) -> calendar.BusinessCalendar:
    try:
        return calendar.BusinessCalendar(
            country=country, working_weekdays=weekdays, closed_dates=closed, open_dates=opened
        )
    except ValueError:
        return calendar.BusinessCalendar(working_weekdays=weekdays, closed_dates=closed, open_dates=opened)


def _distance_km(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """Great-circle distance; ordering only, so floats are fine here."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lng2 - lng1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 6371.0 * 2 * math.asin(math.sqrt(a))


def _postal_key(code: str, other: str) -> tuple[int, int, str]:
    common = next(
        (i for i, (a, b) in enumerate(zip(code, other, strict=False)) if a != b), min(len(code), len(other))
    )
    gap = abs(int(code) - int(other)) if code.isdigit() and other.isdigit() else 0
    return -common, gap, other


def pickup_points(catalog: Catalog, option: Option, facts: Facts) -> list[Location]:
    """The option's pickup points for this recipient, nearest first, at most ``max_locations``."""
    if option.locations is None or facts.country is None or facts.postal_code is None:
        return []
    key = (id(catalog), option.locations, option.max_locations, facts.country, facts.postal_code)
    cached = _POINTS.get(key)
    if cached is not _MISS:
        return list(cached)
    return list(_POINTS.put(key, catalog, tuple(_nearest(catalog, option, facts))))


def _nearest(catalog: Catalog, option: Option, facts: Facts) -> list[Location]:
    assert option.locations is not None and facts.country is not None and facts.postal_code is not None
    code = postal.compact(facts.postal_code)
    candidates = [loc for loc in catalog.location_lists[option.locations] if loc.country == facts.country]
    area = next((a for a in catalog.postal_areas.get(facts.country, ()) if code.startswith(a.prefix)), None)

    def key(loc: Location) -> tuple[float, tuple[int, int, str], str]:
        near = postal.compact(loc.postal_code)
        if area is not None and loc.lat is not None and loc.lng is not None:
            return _distance_km(area.lat, area.lng, loc.lat, loc.lng), (0, 0, ""), loc.id
        # Points without coordinates sort after the measured ones when the area is known.
        return (math.inf if area is not None else 0.0), _postal_key(code, near), loc.id

    return sorted(candidates, key=key)[: option.max_locations]


def _hours_json(windows: tuple[TimeWindow, ...]) -> list[dict[str, Any]]:
    if not windows:
        return [{"closed": True}]
    return [
        {"open": f"{w.start:%H:%M}", "close": "24:00" if w.end == time.max else f"{w.end:%H:%M}"}
        for w in windows
    ]


def _operational_hours(hours: Hours) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if hours.default or hours.weekdays or hours.dates:
        out["default"] = _hours_json(hours.default)
    overrides: dict[str, Any] = {}
    if hours.weekdays:
        overrides["weekday"] = {WEEKDAYS[d]: _hours_json(w) for d, w in sorted(hours.weekdays.items())}
    if hours.dates:
        overrides["date"] = [
            {"date": d.isoformat(), "hours": _hours_json(w)} for d, w in sorted(hours.dates.items())
        ]
    if overrides:
        out["overrides"] = overrides
    return out


def location_dict(loc: Location, price: int) -> dict[str, Any]:
    """A KSS location object; ``price`` is the extra for this pickup point (shared: do not mutate)."""
    key = (id(loc), price)
    cached = _LOCATION_JSON.get(key)
    if cached is not _MISS:
        return dict(cached)
    return dict(_LOCATION_JSON.put(key, loc, _location_json(loc, price)))


def _location_json(loc: Location, price: int) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": loc.id,
        "name": loc.name,
        "address": {
            "street_address": loc.street_address,
            "postal_code": loc.postal_code,
            "city": loc.city,
            "country": loc.country,
        },
        "price": price,
    }
    if loc.lat is not None and loc.lng is not None:
        out["coordinates"] = {"lat": loc.lat, "lng": loc.lng}
    hours = _operational_hours(loc.hours)
    if hours:
        out["operational_hours"] = hours
    return out


@frozen
class Slot:
    """One generated timeslot; ``id`` encodes its template and day, e.g. ``evening-2026-11-25-1700``."""

    id: str
    template: str
    start: datetime
    end: datetime
    cutoff: datetime

    def as_json(self, price: int) -> dict[str, Any]:
        return {
            "id": self.id,
            "start": _z(self.start),
            "end": _z(self.end),
            "cutoff": _z(self.cutoff),
            "price": price,
        }


@functools.lru_cache(maxsize=8192)
def _z(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def timeslots(option: Option, facts: Facts, now: datetime, tz: str, *, horizon_days: int = 0) -> list[Slot]:
    """Every slot of the template on the next delivery days, expired ones included (callers filter)."""
    if option.timeslots is None:
        return []
    key = (id(option), facts.country, tz, _minute(now), horizon_days)
    cached = _SLOTS.get(key)
    if cached is not _MISS:
        return list(cached)
    return list(_SLOTS.put(key, option, tuple(_generate_slots(option, facts, now, tz, horizon_days))))


def _generate_slots(option: Option, facts: Facts, now: datetime, tz: str, horizon_days: int) -> list[Slot]:
    template = option.timeslots
    assert template is not None
    zone = ZoneInfo(tz)
    weekdays: Set[int] = option.delivery.weekdays if option.delivery else calendar.MON_TO_FRI
    today = now.astimezone(zone).date() - timedelta(days=horizon_days)
    days = calendar.delivery_days(
        start=today,
        count=template.days + horizon_days,
        carrier_delivery_weekdays=weekdays,
        carrier_calendar=country_calendar(facts.country),
    )
    slots = []
    for day in days:
        for s in template.slots:
            start = datetime.combine(day, s.window.start, tzinfo=zone)
            end = datetime.combine(day, s.window.end, tzinfo=zone)
            cutoff = datetime.combine(day - timedelta(days=s.cutoff_days_before), s.cutoff, tzinfo=zone)
            slot_id = f"{s.id}-{day.isoformat()}-{s.window.start:%H%M}"
            slots.append(
                Slot(slot_id, s.id, start.astimezone(UTC), end.astimezone(UTC), cutoff.astimezone(UTC))
            )
    return slots


SLOT_ID: Final = re.compile(r"^(?P<template>[A-Za-z0-9_]+)-(?P<day>\d{4}-\d{2}-\d{2})-(?P<start>\d{4})$")


def delivery_time(
    catalog: Catalog, option: Option, facts: Facts, now: datetime, location: Location | None = None
) -> dict[str, Any] | None:
    """The option's KSS delivery_time (or a pickup point's, when it has lead days of its own), or
    None when there is no promise or no warehouse."""
    promise, warehouse = option.delivery, catalog.warehouse(facts.sender_id)
    if promise is None or warehouse is None:
        return None
    own = location is not None and location.lead_days is not None
    key = (id(option), id(location) if own else None, id(warehouse), id(catalog), facts.country, _minute(now))
    cached = _PROMISES.get(key)
    if cached is not _MISS:
        return cached  # type: ignore[no-any-return]  # stored below as dict | None
    if own:
        assert location is not None and location.lead_days is not None
        lead_min, lead_max = location.lead_days
        promise = attrs.evolve(promise, lead_days_min=lead_min, lead_days_max=lead_max)
    value = _promise(catalog, promise, warehouse, facts, now)
    return _PROMISES.put(key, (catalog, option, location), value)  # type: ignore[no-any-return]


def _promise(
    catalog: Catalog, promise: Promise, warehouse: Warehouse, facts: Facts, now: datetime
) -> dict[str, Any] | None:
    window = (promise.time_of_day.start, promise.time_of_day.end) if promise.time_of_day else None
    try:
        return calendar.compute_delivery_time(
            now=now,
            warehouse_tz=warehouse.tz,
            cutoffs=warehouse.cutoffs,
            warehouse_calendar=warehouse_calendar(warehouse),
            carrier_delivery_weekdays=promise.weekdays,
            carrier_calendar=country_calendar(facts.country or warehouse.country),
            lead_days_min=promise.lead_days_min,
            lead_days_max=promise.lead_days_max,
            form="dates" if promise.form == "dates" else "interval",
            recipient_tz=recipient_tz(catalog, facts.country or warehouse.country),
            time_of_day=window,
        )
    except ValueError:
        return None  # a calendar with no dispatch day in years: say nothing rather than fail the checkout


def warehouse_calendar(w: Warehouse) -> calendar.BusinessCalendar:
    return _warehouse_calendar(w.country, frozenset(w.cutoffs), w.closed_dates, w.open_dates)
