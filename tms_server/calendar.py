"""Business days, dispatch and delivery days, and the delivery promise computed from them.

This module owns *when* a parcel goes out and arrives; ``tms_server.delivery_time`` owns how that is
said. Everything here is a pure function of its arguments (no clock, no I/O): the caller passes ``now``.

Decisions:

- Holidays come from the ``holidays`` library, category "public". Sweden also closes on its de-facto
  holidays (Midsummer Eve, Christmas Eve, New Year's Eve: shops, warehouses and carriers stop), so SE
  adds the library's "de_facto" category. Older ``holidays`` releases list every Swedish Sunday as a
  holiday; we ask for ``include_sundays=False`` so only real holidays count and Sunday is governed by
  the working weekdays like everywhere else. Denmark's Constitution Day (June 5) is only "optional"
  in the library and is not counted; a catalog that closes then lists it in ``closed_dates``.
- ``open_dates`` beat holidays and weekends (the catalog opens a Saturday before Christmas);
  ``closed_dates`` close any day. A date in both is a configuration error.
- The carrier's own weekdays (``carrier_delivery_weekdays``) decide which weekdays it delivers; the
  destination ``carrier_calendar`` adds holidays and its closed/open dates. Its ``working_weekdays``
  are the shopper's business days, used only to count an interval.
- An interval counts the shopper's business days from today (recipient's zone) up to and including
  the delivery day (which counts even on a weekend, as the wait then ends), so an order placed after
  the cutoff shows a larger interval. A same-day delivery counts 0; use dates for such promises.
- Dates are instants in the recipient's zone: ``earliest`` is the start of the delivery window on the
  first delivery day (local midnight without a window), ``latest`` the end of the window on the last
  one (23:59:59 local without a window). Instants already past are left out, never emitted.
- ``cutoff`` is emitted only when today is the dispatch day: a later day's "order before 14:00" would
  read as today's.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Set
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs
import holidays

__all__ = [
    "MON_TO_FRI",
    "BusinessCalendar",
    "arrival_day",
    "compute_delivery_time",
    "delivery_days",
    "dispatch_day",
    "is_delivery_day",
    "latest_dispatch",
    "require_aware",
    "shopper_business_days",
    "zone_info",
]

MON_TO_FRI: Final[frozenset[int]] = frozenset(range(5))
# Any sane calendar has a business day within weeks; this bounds the search for a broken one.
_SEARCH_LIMIT_DAYS: Final = 3 * 366
_DEFAULT_CATEGORIES: Final[Mapping[str, tuple[str, ...]]] = {"SE": ("public", "de_facto")}
_END_OF_DAY: Final = time(23, 59, 59)


@functools.lru_cache(maxsize=512)
def _holiday_dates(
    country: str, subdivision: str | None, categories: tuple[str, ...], year: int
) -> frozenset[date]:
    options: dict[str, Any] = {"include_sundays": False} if country == "SE" else {}
    table = holidays.country_holidays(
        country, subdiv=subdivision, years=year, categories=categories, **options
    )
    return frozenset(table)


def _weekday_set(value: Iterable[int]) -> frozenset[int]:
    weekdays = frozenset(value)
    if not weekdays <= frozenset(range(7)):
        raise ValueError(f"weekdays: expected integers 0 (Monday) to 6 (Sunday), got {sorted(weekdays)}")
    return weekdays


def _date_set(value: Iterable[date]) -> frozenset[date]:
    return frozenset(value)


def _country_code(value: str | None) -> str | None:
    return value.upper() if value else None


@attrs.frozen
class BusinessCalendar:
    """Which days a warehouse works or a country counts as business days."""

    country: str | None = attrs.field(default=None, converter=_country_code)
    subdivision: str | None = None
    working_weekdays: frozenset[int] = attrs.field(default=MON_TO_FRI, converter=_weekday_set)
    closed_dates: frozenset[date] = attrs.field(default=frozenset(), converter=_date_set)
    open_dates: frozenset[date] = attrs.field(default=frozenset(), converter=_date_set)
    # None means the country's default (see the module docstring).
    holiday_categories: tuple[str, ...] | None = None

    def __attrs_post_init__(self) -> None:
        both = self.closed_dates & self.open_dates
        if both:
            raise ValueError(f"closed_dates and open_dates overlap: {sorted(map(str, both))}")
        if self.country is not None:
            try:
                self.holidays_in(2000)
            except (NotImplementedError, KeyError, ValueError) as exc:
                raise ValueError(f"country: no holiday calendar for {self.country!r}: {exc}") from exc

    def holidays_in(self, year: int) -> frozenset[date]:
        """The library's holidays of ``year`` for this country (empty without a country)."""
        if self.country is None:
            return frozenset()
        categories = self.holiday_categories or _DEFAULT_CATEGORIES.get(self.country, ("public",))
        return _holiday_dates(self.country, self.subdivision, categories, year)

    def is_closed(self, d: date) -> bool:
        """A holiday or an extra closed date, whatever the weekday; an open date is never closed."""
        if d in self.open_dates:
            return False
        return d in self.closed_dates or d in self.holidays_in(d.year)

    def is_business_day(self, d: date) -> bool:
        if d in self.open_dates:
            return True
        return d.weekday() in self.working_weekdays and not self.is_closed(d)

    def next_business_day(self, d: date) -> date:
        """The first business day strictly after ``d``."""
        return self.add_business_days(d, 1)

    def add_business_days(self, d: date, n: int) -> date:
        """The n-th business day after ``d`` (before it when n < 0); ``d`` itself when n == 0."""
        step = timedelta(days=1 if n >= 0 else -1)
        remaining, day = abs(n), d
        for _ in range(_SEARCH_LIMIT_DAYS * max(remaining, 1)):
            if remaining == 0:
                return day
            day += step
            if self.is_business_day(day):
                remaining -= 1
        raise ValueError(f"no {n} business days from {d} within the search limit: check the calendar")


def is_delivery_day(
    d: date, *, carrier_delivery_weekdays: Set[int], carrier_calendar: BusinessCalendar
) -> bool:
    """The carrier delivers on ``d`` to the destination of ``carrier_calendar``."""
    if d in carrier_calendar.open_dates:
        return True
    return d.weekday() in carrier_delivery_weekdays and not carrier_calendar.is_closed(d)


def delivery_days(
    *, start: date, count: int, carrier_delivery_weekdays: Set[int], carrier_calendar: BusinessCalendar
) -> list[date]:
    """The first ``count`` delivery days on or after ``start`` (for timeslots on delivery days only)."""
    found: list[date] = []
    day = start
    for _ in range(_SEARCH_LIMIT_DAYS * max(count, 1)):
        if len(found) == count:
            break
        if is_delivery_day(
            day, carrier_delivery_weekdays=carrier_delivery_weekdays, carrier_calendar=carrier_calendar
        ):
            found.append(day)
        day += timedelta(days=1)
    else:
        raise ValueError(f"fewer than {count} delivery days after {start}: check the carrier's weekdays")
    return found


def dispatch_day(
    *,
    now: datetime,
    warehouse_tz: str | ZoneInfo,
    cutoffs: Mapping[int, time],
    warehouse_calendar: BusinessCalendar,
) -> tuple[date, datetime]:
    """The day an order placed ``now`` leaves the warehouse, and that day's cutoff instant (UTC).

    Today if the warehouse works today, dispatches on this weekday, and ``now`` is before its cutoff;
    otherwise the next such day.
    """
    require_aware(now)
    _check_cutoffs(cutoffs)
    zone = zone_info(warehouse_tz, "warehouse_tz")
    day = now.astimezone(zone).date()
    for _ in range(_SEARCH_LIMIT_DAYS):
        cutoff = cutoffs.get(day.weekday())
        if cutoff is not None and warehouse_calendar.is_business_day(day):
            cutoff_at = _instant(day, cutoff, zone)
            if now < cutoff_at:
                return day, cutoff_at
        day += timedelta(days=1)
    raise ValueError("cutoffs: no dispatch day within the search limit: check the warehouse calendar")


def latest_dispatch(
    *,
    day: date,
    lead: int,
    warehouse_tz: str | ZoneInfo,
    cutoffs: Mapping[int, time],
    warehouse_calendar: BusinessCalendar,
    carrier_delivery_weekdays: Set[int],
    carrier_calendar: BusinessCalendar,
    search_days: int = 31,
) -> datetime | None:
    """The cutoff instant (UTC) of the last dispatch day from which a parcel arrives by ``day``.

    A parcel dispatched on day X arrives on ``arrival_day(X, lead)``; the latest X whose arrival is
    on or before ``day`` decides until when an order can still make it. None when no dispatch day
    within ``search_days`` before ``day`` reaches it (the day cannot be reached at all)."""
    _check_cutoffs(cutoffs)
    zone = zone_info(warehouse_tz, "warehouse_tz")
    for back in range(search_days + 1):
        dispatch = day - timedelta(days=back)
        cutoff = cutoffs.get(dispatch.weekday())
        if cutoff is None or not warehouse_calendar.is_business_day(dispatch):
            continue
        if arrival_day(dispatch, lead, carrier_delivery_weekdays, carrier_calendar) <= day:
            return _instant(dispatch, cutoff, zone)
    return None


def shopper_business_days(*, today: date, day: date, calendar: BusinessCalendar) -> int:
    """Business days the shopper waits from ``today`` to ``day``; ``day`` itself always counts."""
    if day <= today:
        return 0
    span = (day - today).days
    between = (today + timedelta(days=offset) for offset in range(1, span))
    return sum(calendar.is_business_day(d) for d in between) + 1


def compute_delivery_time(
    *,
    now: datetime,
    warehouse_tz: str | ZoneInfo,
    cutoffs: Mapping[int, time],
    warehouse_calendar: BusinessCalendar,
    carrier_delivery_weekdays: Set[int],
    carrier_calendar: BusinessCalendar,
    lead_days_min: int,
    lead_days_max: int,
    form: Literal["interval", "dates"],
    recipient_tz: str | ZoneInfo,
    time_of_day: tuple[time, time] | None = None,
    not_before: date | None = None,
) -> dict[str, Any]:
    """A KSS ``delivery_time`` object for an order placed ``now`` (see the module docstring).

    ``not_before`` moves the earliest delivery day later (never earlier): a timeslot option's
    promise starts on its first bookable slot's day, so the promise and the slots agree."""
    _check_promise(lead_days_min, lead_days_max, form, carrier_delivery_weekdays, time_of_day)
    recipient_zone = zone_info(recipient_tz, "recipient_tz")
    warehouse_zone = zone_info(warehouse_tz, "warehouse_tz")
    dispatch, cutoff_at = dispatch_day(
        now=now, warehouse_tz=warehouse_zone, cutoffs=cutoffs, warehouse_calendar=warehouse_calendar
    )
    first, last = (
        arrival_day(dispatch, lead, carrier_delivery_weekdays, carrier_calendar)
        for lead in (lead_days_min, lead_days_max)
    )
    if not_before is not None and not_before > first:
        first, last = not_before, max(last, not_before)
    if form == "interval":
        result = _interval(now, recipient_zone, carrier_calendar, first, last)
    else:
        result = _dates(now, recipient_zone, first, last, time_of_day)
    if dispatch == now.astimezone(warehouse_zone).date():
        result["cutoff"] = _rfc3339(cutoff_at)
    if time_of_day is not None:
        start, end = (_instant(first, t, recipient_zone) for t in time_of_day)
        result["time_of_day"] = {"earliest": _rfc3339(start), "latest": _rfc3339(end)}
    return result


def arrival_day(dispatch: date, lead: int, weekdays: Set[int], calendar: BusinessCalendar) -> date:
    """The ``lead``-th delivery day after ``dispatch``; with lead 0 the first one on or after it.

    ``weekdays`` are the carrier's delivery weekdays (0 = Monday), ``calendar`` the destination's."""
    start = dispatch if lead == 0 else dispatch + timedelta(days=1)
    days = delivery_days(
        start=start, count=max(lead, 1), carrier_delivery_weekdays=weekdays, carrier_calendar=calendar
    )
    return days[-1]


def _interval(
    now: datetime, zone: ZoneInfo, calendar: BusinessCalendar, first: date, last: date
) -> dict[str, Any]:
    local_now = now.astimezone(zone)
    today = local_now.date()
    offset = local_now.utcoffset()
    assert offset is not None  # a ZoneInfo-aware datetime always has one
    return {
        "interval": {
            "earliest": shopper_business_days(today=today, day=first, calendar=calendar),
            "latest": shopper_business_days(today=today, day=last, calendar=calendar),
            "utc_offset_in_seconds": int(offset.total_seconds()),
        }
    }


def _dates(
    now: datetime, zone: ZoneInfo, first: date, last: date, window: tuple[time, time] | None
) -> dict[str, Any]:
    start, end = window if window is not None else (time(0, 0), _END_OF_DAY)
    result: dict[str, Any] = {}
    for key, instant in (("earliest", _instant(first, start, zone)), ("latest", _instant(last, end, zone))):
        if instant > now:
            result[key] = _rfc3339(instant)
    return result


def _check_promise(
    lead_min: int, lead_max: int, form: str, weekdays: Set[int], window: tuple[time, time] | None
) -> None:
    if not 0 <= lead_min <= lead_max:
        raise ValueError(f"lead_days: expected 0 <= min <= max, got min={lead_min}, max={lead_max}")
    if form not in ("interval", "dates"):
        raise ValueError(f"form: expected 'interval' or 'dates', got {form!r}")
    if not weekdays or not set(weekdays) <= set(range(7)):
        raise ValueError(f"carrier_delivery_weekdays: expected some of 0..6, got {sorted(weekdays)}")
    if window is not None and not window[0] < window[1]:
        raise ValueError(f"time_of_day: start must be before end, got {window[0]}-{window[1]}")


def _check_cutoffs(cutoffs: Mapping[int, time]) -> None:
    if not cutoffs:
        raise ValueError("cutoffs: expected a cutoff for at least one weekday")
    for weekday, cutoff in cutoffs.items():
        if weekday not in range(7) or cutoff.tzinfo is not None:
            raise ValueError(f"cutoffs: expected weekday 0..6 -> local time, got {weekday}: {cutoff}")


def require_aware(now: datetime) -> None:
    """Refuse a naive ``now``: every promise and sentence is about an instant."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now: expected an aware datetime")


def zone_info(tz: str | ZoneInfo, what: str) -> ZoneInfo:
    """The zone named ``tz``; ValueError naming the parameter ``what`` when there is none."""
    if isinstance(tz, ZoneInfo):
        return tz
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"{what}: unknown time zone {tz!r}") from exc


def _instant(day: date, clock: time, zone: ZoneInfo) -> datetime:
    """The UTC instant of a local wall-clock time; a time skipped by DST lands after the gap."""
    return datetime.combine(day, clock, tzinfo=zone).astimezone(UTC)


def _rfc3339(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
