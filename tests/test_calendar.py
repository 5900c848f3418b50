"""Business calendars, dispatch and delivery days, and computed delivery promises."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tms_server.calendar import (
    BusinessCalendar,
    compute_delivery_time,
    delivery_days,
    dispatch_day,
    is_delivery_day,
    shopper_business_days,
)
from tms_server.delivery_time import render

STOCKHOLM = ZoneInfo("Europe/Stockholm")
SE = BusinessCalendar(country="SE")
WEEKDAY_CUTOFFS = {weekday: time(14, 0) for weekday in range(5)}
MON_TO_FRI = {0, 1, 2, 3, 4}


def local(text: str) -> datetime:
    """A Stockholm wall-clock time such as "2026-03-04 10:00"."""
    return datetime.fromisoformat(text).replace(tzinfo=STOCKHOLM)


def promise(now: str, form: Literal["interval", "dates"] = "interval", /, **overrides: Any) -> dict[str, Any]:
    """A Swedish promise: dispatch Mon-Fri before 14:00, delivery Mon-Fri after 1-3 delivery days."""
    arguments: dict[str, Any] = {
        "now": local(now),
        "warehouse_tz": "Europe/Stockholm",
        "cutoffs": WEEKDAY_CUTOFFS,
        "warehouse_calendar": SE,
        "carrier_delivery_weekdays": MON_TO_FRI,
        "carrier_calendar": SE,
        "lead_days_min": 1,
        "lead_days_max": 3,
        "form": form,
        "recipient_tz": "Europe/Stockholm",
        "time_of_day": None,
    }
    arguments.update(overrides)
    return compute_delivery_time(**arguments)


# ------------------------------------------------------------------------------------ holidays


@pytest.mark.parametrize("country", ["SE", "NO", "DK", "FI", "DE"])
@pytest.mark.parametrize("day", [date(2026, 4, 3), date(2026, 4, 6)])
def test_good_friday_and_easter_monday_are_closed(country: str, day: date) -> None:
    """Good Friday and Easter Monday are no business days in any of our countries."""
    assert not BusinessCalendar(country=country).is_business_day(day)


@pytest.mark.parametrize(
    ("country", "closed"), [("SE", False), ("FI", False), ("DE", False), ("NO", True), ("DK", True)]
)
def test_maundy_thursday_only_in_norway_and_denmark(country: str, closed: bool) -> None:
    """Maundy Thursday is a holiday in Norway and Denmark only."""
    assert BusinessCalendar(country=country).is_business_day(date(2026, 4, 2)) is not closed


@pytest.mark.parametrize(
    ("country", "day"),
    [
        ("SE", date(2025, 6, 6)),  # National Day, a Friday
        ("NO", date(2027, 5, 17)),  # Constitution Day, a Monday
        ("FI", date(2027, 12, 6)),  # Independence Day, a Monday
        ("DE", date(2025, 10, 3)),  # German Unity Day, a Friday
    ],
)
def test_national_days_are_closed(country: str, day: date) -> None:
    """National days that are public holidays close business."""
    assert not BusinessCalendar(country=country).is_business_day(day)


def test_danish_constitution_day_is_open_unless_configured() -> None:
    """DK June 5 is only an optional holiday in the library: open by default, closed on request."""
    constitution_day = date(2026, 6, 5)  # a Friday
    assert BusinessCalendar(country="DK").is_business_day(constitution_day)
    assert not BusinessCalendar(country="DK", closed_dates={constitution_day}).is_business_day(
        constitution_day
    )
    optional = BusinessCalendar(country="DK", holiday_categories=("public", "optional"))
    assert not optional.is_business_day(constitution_day)


@pytest.mark.parametrize("day", [date(2026, 6, 19), date(2025, 12, 24), date(2025, 12, 31)])
def test_swedish_de_facto_holidays_are_closed(day: date) -> None:
    """Midsummer Eve, Christmas Eve and New Year's Eve close Swedish business (de-facto holidays)."""
    assert not SE.is_business_day(day)
    assert BusinessCalendar(country="SE", holiday_categories=("public",)).is_business_day(day)


def test_finnish_midsummer_eve_is_a_holiday() -> None:
    """Finland's Midsummer Eve is a public holiday in its own right."""
    assert not BusinessCalendar(country="FI").is_business_day(date(2026, 6, 19))


def test_swedish_sundays_are_not_holidays() -> None:
    """Only real Swedish holidays count: an ordinary Sunday is a business day where Sunday is worked."""
    seven_days = BusinessCalendar(country="SE", working_weekdays=range(7))
    assert seven_days.is_business_day(date(2026, 3, 8))  # an ordinary Sunday
    assert not seven_days.is_business_day(date(2026, 4, 5))  # Easter Sunday
    assert all(
        day.weekday() != 6 or day in {date(2026, 4, 5), date(2026, 5, 24)} for day in SE.holidays_in(2026)
    )


def test_weekends_are_closed_by_default() -> None:
    """Working weekdays default to Monday to Friday."""
    assert [SE.is_business_day(date(2026, 3, d)) for d in range(2, 9)] == [True] * 5 + [False] * 2


def test_extra_open_and_closed_dates() -> None:
    """The catalog can open a Saturday or a holiday and close an ordinary weekday."""
    calendar = BusinessCalendar(
        country="SE", open_dates={date(2026, 12, 19), date(2026, 4, 6)}, closed_dates={date(2026, 3, 10)}
    )
    assert calendar.is_business_day(date(2026, 12, 19))
    assert calendar.is_business_day(date(2026, 4, 6))
    assert not calendar.is_business_day(date(2026, 3, 10))


def test_calendar_without_country_has_no_holidays() -> None:
    """Without a country only weekdays and extra dates count."""
    assert BusinessCalendar().is_business_day(date(2026, 4, 3))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"country": "XX"}, "country: no holiday calendar for 'XX'"),
        ({"working_weekdays": {7}}, "weekdays: expected integers 0"),
        (
            {"open_dates": {date(2026, 1, 1)}, "closed_dates": {date(2026, 1, 1)}},
            "closed_dates and open_dates overlap",
        ),
    ],
)
def test_invalid_calendar_is_refused(kwargs: dict[str, Any], message: str) -> None:
    """A calendar that cannot be right fails at construction with a message naming the field."""
    with pytest.raises(ValueError, match=message):
        BusinessCalendar(**kwargs)


# ------------------------------------------------------------------------ business-day arithmetic


@pytest.mark.parametrize(
    ("start", "n", "expected"),
    [
        (date(2026, 3, 6), 1, date(2026, 3, 9)),  # Friday + 1 is Monday
        (date(2026, 3, 7), 1, date(2026, 3, 9)),  # Saturday + 1 is Monday
        (date(2026, 3, 4), 0, date(2026, 3, 4)),
        (date(2026, 4, 2), 1, date(2026, 4, 7)),  # over Easter
        (date(2025, 12, 23), 1, date(2025, 12, 29)),  # Christmas Eve to the weekend closed
        (date(2025, 12, 30), 1, date(2026, 1, 2)),  # New Year's Eve and Day closed
        (date(2026, 1, 2), 2, date(2026, 1, 7)),  # Epiphany
        (date(2026, 3, 9), -1, date(2026, 3, 6)),
    ],
)
def test_add_business_days(start: date, n: int, expected: date) -> None:
    """n business days after (or before) a date skip weekends and Swedish holidays."""
    assert SE.add_business_days(start, n) == expected


def test_next_business_day_is_strictly_after() -> None:
    """The next business day after a business day is a later day."""
    assert SE.next_business_day(date(2026, 3, 4)) == date(2026, 3, 5)
    assert SE.next_business_day(date(2026, 6, 18)) == date(2026, 6, 22)  # Midsummer Eve, weekend


def test_calendar_without_business_days_fails_cleanly() -> None:
    """A calendar that never works raises ValueError instead of looping forever."""
    with pytest.raises(ValueError, match="business days"):
        BusinessCalendar(working_weekdays=()).next_business_day(date(2026, 3, 4))


def test_shopper_business_days_counts_delivery_day() -> None:
    """The shopper's wait counts business days up to the delivery day, which counts even on a weekend."""
    assert shopper_business_days(today=date(2026, 3, 4), day=date(2026, 3, 4), calendar=SE) == 0
    assert shopper_business_days(today=date(2026, 3, 4), day=date(2026, 3, 5), calendar=SE) == 1
    assert shopper_business_days(today=date(2026, 3, 6), day=date(2026, 3, 9), calendar=SE) == 1
    assert shopper_business_days(today=date(2026, 3, 6), day=date(2026, 3, 7), calendar=SE) == 1


# ------------------------------------------------------------------------------ delivery days


def test_delivery_days_skip_holidays_and_non_delivery_weekdays() -> None:
    """Delivery days are the carrier's weekdays minus destination holidays, from the start day on."""
    days = delivery_days(
        start=date(2026, 4, 2), count=3, carrier_delivery_weekdays=MON_TO_FRI, carrier_calendar=SE
    )
    assert days == [date(2026, 4, 2), date(2026, 4, 7), date(2026, 4, 8)]


def test_saturday_carrier_delivers_saturdays_but_not_holidays() -> None:
    """A carrier's own weekdays beat the destination's working weekdays; its holidays still close."""
    weekdays = {0, 1, 2, 3, 4, 5}
    assert is_delivery_day(date(2026, 3, 7), carrier_delivery_weekdays=weekdays, carrier_calendar=SE)
    assert not is_delivery_day(date(2026, 6, 20), carrier_delivery_weekdays=weekdays, carrier_calendar=SE)
    assert not is_delivery_day(date(2026, 3, 8), carrier_delivery_weekdays=weekdays, carrier_calendar=SE)


def test_carrier_open_date_is_a_delivery_day() -> None:
    """An open date on the carrier calendar is a delivery day whatever the weekday."""
    calendar = BusinessCalendar(country="SE", open_dates={date(2026, 12, 20)})
    assert is_delivery_day(
        date(2026, 12, 20), carrier_delivery_weekdays=MON_TO_FRI, carrier_calendar=calendar
    )


def test_evening_timeslot_days() -> None:
    """The next N delivery days over Midsummer skip Midsummer Eve and the weekend."""
    days = delivery_days(
        start=date(2026, 6, 18), count=3, carrier_delivery_weekdays=MON_TO_FRI, carrier_calendar=SE
    )
    assert days == [date(2026, 6, 18), date(2026, 6, 22), date(2026, 6, 23)]
    assert (
        delivery_days(
            start=date(2026, 6, 18), count=0, carrier_delivery_weekdays=MON_TO_FRI, carrier_calendar=SE
        )
        == []
    )


# ------------------------------------------------------------------------------ dispatch


@pytest.mark.parametrize(
    ("now", "day", "cutoff"),
    [
        ("2026-03-04 13:59", date(2026, 3, 4), "2026-03-04T13:00:00+00:00"),
        ("2026-03-04 14:00", date(2026, 3, 5), "2026-03-05T13:00:00+00:00"),
        ("2026-03-06 15:00", date(2026, 3, 9), "2026-03-09T13:00:00+00:00"),  # Friday late: Monday
        ("2026-03-07 09:00", date(2026, 3, 9), "2026-03-09T13:00:00+00:00"),  # Saturday: Monday
        ("2026-03-27 15:00", date(2026, 3, 30), "2026-03-30T12:00:00+00:00"),  # over DST: CEST cutoff
        ("2026-10-23 15:00", date(2026, 10, 26), "2026-10-26T13:00:00+00:00"),  # back to CET
        ("2026-04-02 15:00", date(2026, 4, 7), "2026-04-07T12:00:00+00:00"),  # over Easter
    ],
)
def test_dispatch_day(now: str, day: date, cutoff: str) -> None:
    """Orders before the cutoff leave today; later ones on the next working dispatch day."""
    assert dispatch_day(
        now=local(now), warehouse_tz="Europe/Stockholm", cutoffs=WEEKDAY_CUTOFFS, warehouse_calendar=SE
    ) == (
        day,
        datetime.fromisoformat(cutoff),
    )


def test_per_weekday_cutoffs_and_no_dispatch_days() -> None:
    """Each weekday has its own cutoff; a weekday without one never dispatches."""
    cutoffs = {0: time(14), 2: time(14), 4: time(11, 30)}
    found = dispatch_day(
        now=local("2026-03-06 11:00"), warehouse_tz="Europe/Stockholm", cutoffs=cutoffs, warehouse_calendar=SE
    )
    assert found == (date(2026, 3, 6), datetime(2026, 3, 6, 10, 30, tzinfo=UTC))
    found = dispatch_day(
        now=local("2026-03-03 09:00"), warehouse_tz="Europe/Stockholm", cutoffs=cutoffs, warehouse_calendar=SE
    )
    assert found[0] == date(2026, 3, 4)


# ------------------------------------------------------------------------------ promises


def test_interval_before_and_after_cutoff() -> None:
    """An order after the cutoff shows a larger interval and no cutoff; values are integers."""
    before = promise("2026-03-04 10:00")
    assert before == {
        "interval": {"earliest": 1, "latest": 3, "utc_offset_in_seconds": 3600},
        "cutoff": "2026-03-04T13:00:00Z",
    }
    after = promise("2026-03-04 15:00")
    assert after == {"interval": {"earliest": 2, "latest": 4, "utc_offset_in_seconds": 3600}}
    assert render(before, now=local("2026-03-04 10:00"), tz="Europe/Stockholm") == (
        "Delivered in 1-3 business days, if ordered before 14:00"
    )


def test_interval_offset_follows_dst() -> None:
    """utc_offset_in_seconds is the recipient's offset now: 7200 in Swedish summer time."""
    assert promise("2026-06-10 10:00")["interval"]["utc_offset_in_seconds"] == 7200


def test_dates_form_with_window_across_spring_dst() -> None:
    """A Friday-evening order before DST is promised Tuesday's window in summer time, said at 17:00."""
    now = "2026-03-27 15:00"
    result = promise(now, "dates", time_of_day=(time(17), time(21)))
    assert result == {
        "earliest": "2026-03-31T15:00:00Z",
        "latest": "2026-04-02T19:00:00Z",
        "time_of_day": {"earliest": "2026-03-31T15:00:00Z", "latest": "2026-03-31T19:00:00Z"},
    }
    assert render(result, now=local(now), tz="Europe/Stockholm") == (
        "Delivered between Tuesday, March 31 and Thursday, April 2, from 17:00 to 21:00"
    )


def test_interval_window_across_autumn_dst() -> None:
    """An interval's window computed before the October change still says the local hours."""
    now = "2026-10-23 15:00"
    result = promise(now, time_of_day=(time(17), time(21)))
    assert result["time_of_day"] == {"earliest": "2026-10-27T16:00:00Z", "latest": "2026-10-27T20:00:00Z"}
    assert render(result, now=local(now), tz="Europe/Stockholm") == (
        "Delivered in 2-4 business days between ca. 17:00 and 21:00"
    )


def test_dates_without_window_span_whole_local_days() -> None:
    """Without a window, dates run from local midnight of the first day to 23:59:59 of the last."""
    result = promise("2026-03-04 10:00", "dates")
    assert result == {
        "earliest": "2026-03-04T23:00:00Z",
        "latest": "2026-03-09T22:59:59Z",
        "cutoff": "2026-03-04T13:00:00Z",
    }
    assert render(result, now=local("2026-03-04 10:00"), tz="Europe/Stockholm") == (
        "Delivered between tomorrow and Monday, March 9, if ordered before 14:00"
    )


def test_same_day_delivery_never_emits_past_instants() -> None:
    """A same-day promise leaves out today's midnight, which is past, and says "today"."""
    now = "2026-03-04 10:00"
    result = promise(now, "dates", lead_days_min=0, lead_days_max=0)
    assert result == {"latest": "2026-03-04T22:59:59Z", "cutoff": "2026-03-04T13:00:00Z"}
    assert render(result, now=local(now), tz="Europe/Stockholm") == "Delivered today, if ordered before 14:00"


def test_year_end_promise() -> None:
    """Over Christmas and New Year the Swedish promise skips the eves, the holidays and the weekend."""
    now = "2025-12-23 15:00"
    assert promise(now, "dates") == {"earliest": "2025-12-29T23:00:00Z", "latest": "2026-01-05T22:59:59Z"}
    # Shopper's business days from Dec 23: Dec 29 and 30, then Jan 2 and 5 (the eve and New Year closed).
    assert promise(now)["interval"] == {"earliest": 2, "latest": 4, "utc_offset_in_seconds": 3600}


def test_easter_promise_in_norway() -> None:
    """Norway closes from Maundy Thursday to Easter Monday: a Wednesday-late order arrives Wednesday after."""
    no = BusinessCalendar(country="NO")
    result = promise(
        "2026-04-01 15:00",
        "dates",
        warehouse_calendar=no,
        carrier_calendar=no,
        recipient_tz="Europe/Oslo",
        lead_days_max=1,
    )
    assert result == {"earliest": "2026-04-07T22:00:00Z", "latest": "2026-04-08T21:59:59Z"}


def test_cross_border_holidays_come_from_the_destination() -> None:
    """A Swedish warehouse shipping to Germany skips German Unity Day, not Swedish holidays."""
    result = promise(
        "2025-10-02 10:00",
        "dates",
        carrier_calendar=BusinessCalendar(country="DE"),
        recipient_tz="Europe/Berlin",
        lead_days_max=1,
    )
    assert result["earliest"] == "2025-10-05T22:00:00Z"  # Monday October 6 in Berlin


def test_cutoff_only_when_dispatching_today() -> None:
    """On a weekend no cutoff is emitted: Monday's 14:00 would read as today's."""
    assert "cutoff" not in promise("2026-03-07 10:00")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"lead_days_min": 3, "lead_days_max": 1}, "lead_days"),
        ({"lead_days_min": -1}, "lead_days"),
        ({"form": "words"}, "form"),
        ({"carrier_delivery_weekdays": set()}, "carrier_delivery_weekdays"),
        ({"time_of_day": (time(18), time(17))}, "time_of_day"),
        ({"cutoffs": {}}, "cutoffs"),
        ({"cutoffs": {9: time(14)}}, "cutoffs"),
        ({"recipient_tz": "Mars/Olympus"}, "recipient_tz"),
        ({"warehouse_tz": "Mars/Olympus"}, "warehouse_tz"),
        ({"now": datetime(2026, 3, 4, 10)}, "now"),
    ],
)
def test_invalid_promise_arguments(overrides: dict[str, Any], message: str) -> None:
    """Impossible catalog values raise ValueError naming the parameter."""
    with pytest.raises(ValueError, match=message):
        promise("2026-03-04 10:00", **overrides)


@settings(max_examples=200, deadline=None)
@given(
    now=st.datetimes(
        min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.just(UTC)
    ),
    leads=st.tuples(st.integers(0, 6), st.integers(0, 6)).map(sorted),
    form=st.sampled_from(["interval", "dates"]),
    window=st.sampled_from([None, (time(8), time(12)), (time(17), time(21))]),
    country=st.sampled_from(["SE", "NO", "DK", "FI", "DE"]),
)
def test_promises_are_never_past_and_always_render(
    now: datetime,
    leads: list[int],
    form: Literal["interval", "dates"],
    window: tuple[time, time] | None,
    country: str,
) -> None:
    """Any moment gives a promise with no past instant, ordered bounds, and a sentence when a day is ahead."""
    calendar = BusinessCalendar(country=country)
    result = compute_delivery_time(
        now=now,
        warehouse_tz="Europe/Stockholm",
        cutoffs=WEEKDAY_CUTOFFS,
        warehouse_calendar=calendar,
        carrier_delivery_weekdays=MON_TO_FRI,
        carrier_calendar=calendar,
        lead_days_min=leads[0],
        lead_days_max=leads[1],
        form=form,
        recipient_tz="Europe/Stockholm",
        time_of_day=window,
    )
    for key in ("earliest", "latest", "cutoff"):
        if key in result:
            assert datetime.fromisoformat(result[key]) > now
    if form == "interval":
        interval = result["interval"]
        assert isinstance(interval["earliest"], int) and 0 <= interval["earliest"] <= interval["latest"]
    sentence = render(result, now=now, tz="Europe/Stockholm")
    assert sentence is not None or (form == "dates" and leads[1] == 0)
    if "earliest" in result and "latest" in result:
        assert result["earliest"] <= result["latest"]
    assert now + timedelta(days=60) > datetime.fromisoformat(result.get("latest", now.isoformat()))
