"""Where and when: pickup points for a recipient, timeslots, and the delivery promise of an option.

This module owns the parts of an option that depend on geography and the calendar. Pickup points are
the option's list filtered to the recipient's country, nearest first when the catalog knows the
centre of the recipient's postal area, otherwise by postal-code closeness (longest common prefix,
then numeric distance). Timeslots come from the option's template on the carrier's delivery days.
The promise is ``tms_server.calendar.compute_delivery_time``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Set
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
from tms_server.geo import Position, min_prefix_length

__all__ = [
    "Nearby",
    "Slot",
    "delivery_time",
    "location_dict",
    "pickup_points",
    "recipient_position",
    "recipient_tz",
    "timeslots",
]

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
_SLOT_JSON = _Memo(16384)


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


@frozen
class Nearby:
    """The pickup points offered to one recipient: nearest first, each point's distance in km when
    both positions are known, and how they were chosen (for the explain trace; no postal code)."""

    points: tuple[Location, ...]
    km: Mapping[str, float]
    note: str
    nearest_km: float | None = None  # when none is near enough: how far the nearest point is


def recipient_position(catalog: Catalog, country: str, code: str) -> Position | None:
    """Where a compact postal ``code`` is: the longest match among the catalog's
    ``[postal_areas.XX]`` prefixes and the shared imported positions (exact code, or a prefix),
    the catalog winning a tie. A prefix shorter than the code less two characters stands for too
    large an area and is never used (``geo.min_prefix_length``): a recipient it would place gets
    no position rather than a wrong one."""
    shortest = min_prefix_length(code, country)
    area = next(
        (
            a
            for a in catalog.postal_areas.get(country, ())
            if len(a.prefix) >= shortest and code.startswith(a.prefix)
        ),
        None,
    )
    imported = catalog.positions.match(country, code) if catalog.positions else None
    if area is not None and (imported is None or len(area.prefix) >= imported[0]):
        return Position(
            area.lat, area.lng, f"catalog [postal_areas.{country}] prefix of {len(area.prefix)} characters"
        )
    return imported[1] if imported else None


def pickup_points(catalog: Catalog, option: Option, facts: Facts) -> Nearby:
    """The option's pickup points for this recipient: at most ``max_locations``, none farther than
    ``max_distance_km`` from the recipient's position (see ``_nearest`` for the policy)."""
    if option.locations is None or facts.country is None or facts.postal_code is None:
        return _NONE
    key = (id(catalog), option.locations, option.max_locations, option.max_distance_km, facts.country, facts.postal_code)  # fmt: skip
    cached = _POINTS.get(key)
    if cached is not _MISS:
        return cached  # type: ignore[no-any-return]  # stored below as Nearby
    return _POINTS.put(key, catalog, _nearest(catalog, option, facts))  # type: ignore[no-any-return]


_NONE: Final = Nearby((), {}, "")


def _nearest(catalog: Catalog, option: Option, facts: Facts) -> Nearby:
    """Policy: with a position for the recipient, the nearest points within ``max_distance_km``
    (great-circle), then points without coordinates in the recipient's postal district. Without a
    position, only points in the recipient's postal district (never the whole country): the
    postal code less its last two characters, e.g. "621" for "621 41"."""
    assert option.locations is not None and facts.country is not None and facts.postal_code is not None
    name, limit, reach = option.locations, option.max_locations, option.max_distance_km
    index = catalog.point_indexes.get(name)
    if index is None:
        return Nearby(
            (), {}, f"network {name!r} is not imported (tms-admin pickup-points import {name} FILE)"
        )
    code = postal.compact(facts.postal_code)
    where = recipient_position(catalog, facts.country, code)
    if where is None:
        points = tuple(index.in_district(facts.country, code)[:limit])
        how = "no position known for the recipient's postal code: points in its postal district only"
        if not points:
            how += f"; none of {name} there (import positions: tms-admin postal-areas import FILE)"
        return Nearby(points, {}, how)
    found = index.nearest(where.lat, where.lng, country=facts.country, limit=limit, max_km=reach)
    unplaced = [p for p in index.in_district(facts.country, code) if p.lat is None or p.lng is None]
    points = tuple([p for p, _ in found] + unplaced)[:limit]
    how = f"within {reach} km of the recipient (position: {where.source})"
    if not points:
        beyond = index.nearest(where.lat, where.lng, country=facts.country, limit=1, max_km=1000)
        return Nearby((), {}, f"no point of {name} {how}", round(beyond[0][1]) if beyond else None)
    return Nearby(points, {p.id: round(km, 1) for p, km in found}, how)


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
        """The KSS timeslot object (shared between answers: never change it)."""
        key = (id(self), price)
        cached = _SLOT_JSON.get(key)
        if cached is not _MISS:
            return cached  # type: ignore[no-any-return]  # stored below as a dict
        value = {
            "id": self.id,
            "start": _z(self.start),
            "end": _z(self.end),
            "cutoff": _z(self.cutoff),
            "price": price,
        }
        return _SLOT_JSON.put(key, self, value)  # type: ignore[no-any-return]


@functools.lru_cache(maxsize=8192)
def _z(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def timeslots(
    catalog: Catalog, option: Option, facts: Facts, now: datetime, *, horizon_days: int = 0
) -> list[Slot]:
    """The option's slots on its next ``days`` delivery days that a parcel can reach, expired ones
    included (callers filter on ``cutoff``); ``horizon_days`` also lists the slots of that many
    past days, so a reservation of a slot that has passed is recognised as expired."""
    if option.timeslots is None:
        return []
    tz = recipient_tz(catalog, facts.country)
    warehouse = catalog.warehouse(facts.sender_id)
    key = (id(option), id(warehouse), facts.country, tz, _minute(now), horizon_days)
    cached = _SLOTS.get(key)
    if cached is not _MISS:
        return list(cached)
    slots = tuple(_generate_slots(option, warehouse, facts, now, tz, horizon_days))
    return list(_SLOTS.put(key, (option, warehouse), slots))


def _generate_slots(
    option: Option, warehouse: Warehouse | None, facts: Facts, now: datetime, tz: str, horizon_days: int
) -> list[Slot]:
    """Slots on delivery days, each closing at the earlier of its own cutoff and the cutoff of the
    last dispatch day from which the parcel arrives in time (the dispatch calendar: cutoffs per
    weekday, closed and open dates, holidays, the carrier's weekdays, lead days). Without a
    warehouse only the slot's own cutoff counts."""
    template = option.timeslots
    assert template is not None
    zone = ZoneInfo(tz)
    weekdays: Set[int] = option.delivery.weekdays if option.delivery else calendar.MON_TO_FRI
    lead = option.delivery.lead_days_min if option.delivery else 0
    carrier = country_calendar(facts.country)
    today = now.astimezone(zone).date()
    first = today
    if warehouse is not None:
        try:
            dispatch, _ = calendar.dispatch_day(
                now=now, warehouse_tz=warehouse.tz, cutoffs=warehouse.cutoffs,
                warehouse_calendar=warehouse_calendar(warehouse),
            )  # fmt: skip
        except ValueError:
            return []  # no dispatch day in years: nothing can be delivered
        first = max(today, calendar.arrival_day(dispatch, lead, weekdays, carrier))
    days = calendar.delivery_days(
        start=first, count=template.days, carrier_delivery_weekdays=weekdays, carrier_calendar=carrier
    )
    if horizon_days:
        past = today - timedelta(days=horizon_days)
        days = [past + timedelta(days=n) for n in range((first - past).days)] + days
        days = [d for d in days if calendar.is_delivery_day(d, carrier_delivery_weekdays=weekdays, carrier_calendar=carrier)]  # fmt: skip
    slots = []
    for day in days:
        reachable = _dispatch_cutoff(warehouse, day, lead, weekdays, carrier)
        if reachable is None:
            continue
        for s in template.slots:
            start = datetime.combine(day, s.window.start, tzinfo=zone)
            end = datetime.combine(day, s.window.end, tzinfo=zone)
            own = datetime.combine(day - timedelta(days=s.cutoff_days_before), s.cutoff, tzinfo=zone)
            cutoff = min(own.astimezone(UTC), reachable)
            slot_id = f"{s.id}-{day.isoformat()}-{s.window.start:%H%M}"
            slots.append(Slot(slot_id, s.id, start.astimezone(UTC), end.astimezone(UTC), cutoff))
    # Chronological, whatever the template's order: the first slot is the promise's earliest.
    return sorted(slots, key=lambda slot: (slot.start, slot.end, slot.id))


_NO_LIMIT: Final = datetime.max.replace(tzinfo=UTC)


def _dispatch_cutoff(
    warehouse: Warehouse | None, day: date, lead: int, weekdays: Set[int], carrier: calendar.BusinessCalendar
) -> datetime | None:
    """Until when an order can still be dispatched to arrive by ``day``; None: it never can."""
    if warehouse is None:
        return _NO_LIMIT
    return calendar.latest_dispatch(
        day=day, lead=lead, warehouse_tz=warehouse.tz, cutoffs=warehouse.cutoffs,
        warehouse_calendar=warehouse_calendar(warehouse), carrier_delivery_weekdays=weekdays,
        carrier_calendar=carrier,
    )  # fmt: skip


SLOT_ID: Final = re.compile(r"^(?P<template>[A-Za-z0-9_]+)-(?P<day>\d{4}-\d{2}-\d{2})-(?P<start>\d{4})$")


def delivery_time(
    catalog: Catalog,
    option: Option,
    facts: Facts,
    now: datetime,
    location: Location | None = None,
    first_slot: Slot | None = None,
) -> dict[str, Any] | None:
    """The option's KSS delivery_time (or a pickup point's, when it has lead days of its own), or
    None when there is no promise or no warehouse.

    ``first_slot`` is a timeslot option's first bookable slot: the promise then starts on that
    slot's day, its ``cutoff`` is that slot's (when it is today), and in the dates form its
    ``earliest`` is the slot's start, so what the shopper reads and what they can book agree."""
    promise, warehouse = option.delivery, catalog.warehouse(facts.sender_id)
    if promise is None or warehouse is None:
        return None
    own = location is not None and location.lead_days is not None
    slot_key = (first_slot.id, first_slot.cutoff) if first_slot else None
    key = (id(option), id(location) if own else None, id(warehouse), id(catalog), facts.country, _minute(now), slot_key)  # fmt: skip
    cached = _PROMISES.get(key)
    if cached is not _MISS:
        return cached  # type: ignore[no-any-return]  # stored below as dict | None
    if own:
        assert location is not None and location.lead_days is not None
        lead_min, lead_max = location.lead_days
        promise = attrs.evolve(promise, lead_days_min=lead_min, lead_days_max=lead_max)
    value = _promise(catalog, promise, warehouse, facts, now, first_slot)
    return _PROMISES.put(key, (catalog, option, location), value)  # type: ignore[no-any-return]


def _promise(
    catalog: Catalog,
    promise: Promise,
    warehouse: Warehouse,
    facts: Facts,
    now: datetime,
    first_slot: Slot | None = None,
) -> dict[str, Any] | None:
    window = (promise.time_of_day.start, promise.time_of_day.end) if promise.time_of_day else None
    zone = ZoneInfo(recipient_tz(catalog, facts.country or warehouse.country))
    slot_day = first_slot.start.astimezone(zone).date() if first_slot else None
    try:
        value = calendar.compute_delivery_time(
            now=now,
            warehouse_tz=warehouse.tz,
            cutoffs=warehouse.cutoffs,
            warehouse_calendar=warehouse_calendar(warehouse),
            carrier_delivery_weekdays=promise.weekdays,
            carrier_calendar=country_calendar(facts.country or warehouse.country),
            lead_days_min=promise.lead_days_min,
            lead_days_max=promise.lead_days_max,
            form="dates" if promise.form == "dates" else "interval",
            recipient_tz=zone,
            time_of_day=window,
            not_before=slot_day,
        )
    except ValueError:
        return None  # a calendar with no dispatch day in years: say nothing rather than fail the checkout
    if first_slot is not None:
        _align_to_slot(value, first_slot, now, zone)
    return value


def _align_to_slot(value: dict[str, Any], slot: Slot, now: datetime, zone: ZoneInfo) -> None:
    """The first bookable slot decides the earliest moment and the cutoff of a timeslot option."""
    value.pop("cutoff", None)
    if slot.cutoff > now and slot.cutoff.astimezone(zone).date() == now.astimezone(zone).date():
        value["cutoff"] = _z(slot.cutoff)
    if "interval" not in value and slot.start > now:
        value["earliest"] = _z(slot.start)


def warehouse_calendar(w: Warehouse) -> calendar.BusinessCalendar:
    return _warehouse_calendar(w.country, frozenset(w.cutoffs), w.closed_dates, w.open_dates)
