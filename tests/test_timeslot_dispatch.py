"""Timeslots agree with the dispatch calendar: a slot is offered only when a parcel dispatched by the
warehouse (cutoffs per weekday, closed and open dates, holidays, carrier weekdays, lead days) can
arrive in it, its cutoff is the earlier of its own and that dispatch's, and the option's
delivery_time starts on the first slot's day."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import load_fixture
from tms_server import wire
from tms_server.calendar import shopper_business_days
from tms_server.catalog import (
    SelectionError,
    check_selection,
    example_catalog_text,
    parse_catalog,
    shipping_options,
)
from tms_server.catalog.logistics import country_calendar

STOCKHOLM = ZoneInfo("Europe/Stockholm")
EXAMPLE = parse_catalog(example_catalog_text())


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=STOCKHOLM)


def request_body() -> dict[str, Any]:
    body: dict[str, Any] = load_fixture("kss_shippingoptions_request.json")
    return body


def evening(
    now: datetime, catalog: Any = EXAMPLE, body: dict[str, Any] | None = None
) -> dict[str, Any] | None:
    req = wire.parse(body or request_body(), wire.ShippingOptionsRequest)
    return next((o for o in shipping_options(catalog, req, now=now) if o.get("timeslots")), None)


def day_of(instant: str, zone: ZoneInfo = STOCKHOLM) -> date:
    return datetime.fromisoformat(instant.replace("Z", "+00:00")).astimezone(zone).date()


def reserve(slot_id: str, now: datetime) -> None:
    body = request_body()
    body.pop("geoblocking")
    body.pop("selected_shipping_option_id")
    body["selected_shipping_option"] = {"id": "budbee-evening", "timeslot": {"id": slot_id}}
    check_selection(EXAMPLE, wire.parse(body, wire.ShipmentRequest), now=now)


@pytest.mark.parametrize("clock", ["2026-12-04T13:00", "2026-12-05T10:00", "2026-12-06T20:00"])
def test_after_fridays_cutoff_the_first_slot_is_monday(clock: str) -> None:
    """The issue's input: Friday 13:00 (after the 12:00 Friday cutoff), Saturday 10:00 and Sunday evening:
    no Friday, Saturday or Sunday slot; the first slot and the promise's earliest day are Monday 7 Dec."""
    option = evening(local(clock))
    assert option is not None
    days = [day_of(s["start"]) for s in option["timeslots"]]
    assert days[0] == date(2026, 12, 7)
    assert not {d for d in days if d.weekday() >= 4 and d < date(2026, 12, 7)}
    assert day_of(option["delivery_time"]["earliest"]) == date(2026, 12, 7)
    assert option["timeslots"][0]["id"] == "evening-2026-12-07-1700"


def test_friday_slot_reserved_after_the_cutoff_is_refused_as_expired() -> None:
    """POST /shipment of evening-2026-12-04-1700 at Friday 13:00 is cutoff_time_expired (it was accepted)."""
    with pytest.raises(SelectionError) as err:
        reserve("evening-2026-12-04-1700", local("2026-12-04T13:00"))
    assert err.value.reason == "cutoff_time_expired"


def test_sunday_slot_reserved_on_saturday_is_refused_as_expired() -> None:
    """Sunday's slot can only be reached by Friday's dispatch, whose cutoff has passed on Saturday."""
    with pytest.raises(SelectionError) as err:
        reserve("evening-2026-12-06-1700", local("2026-12-05T10:00"))
    assert err.value.reason == "cutoff_time_expired"


def test_a_slot_never_offered_is_not_available() -> None:
    """A slot beyond the template's days, or of a day the carrier does not deliver, is not available."""
    for slot_id in ("evening-2026-12-31-1700", "evening-2026-12-05-1700", "nightly-2026-12-08-0100"):
        with pytest.raises(SelectionError) as err:
            reserve(slot_id, local("2026-12-04T13:00"))
        assert err.value.reason == "shipping_option_not_available", slot_id


def test_an_offered_slot_is_reservable() -> None:
    """The first offered slot at Friday 13:00 (Monday's) reserves."""
    reserve("evening-2026-12-07-1700", local("2026-12-04T13:00"))


def test_a_slot_closes_at_the_dispatch_cutoff_that_reaches_it() -> None:
    """Thursday 10:00: Friday's slots close at Friday's 12:00 dispatch cutoff, not their own 14:00."""
    option = evening(local("2026-12-03T10:00"))
    assert option is not None
    cutoffs = {s["id"]: s["cutoff"] for s in option["timeslots"]}
    assert cutoffs["evening-2026-12-03-1700"] == "2026-12-03T13:00:00Z"  # Thursday 14:00 both ways
    assert cutoffs["evening-2026-12-04-1700"] == "2026-12-04T11:00:00Z"  # Friday 12:00 dispatch
    assert option["delivery_time"]["cutoff"] == "2026-12-03T13:00:00Z"


def test_christmas_closes_dispatch_and_slots_follow() -> None:
    """Wednesday 23 Dec 15:00: Christmas Eve/Day/Boxing Day close the warehouse and the carrier, the
    weekend and the 28 Dec stocktaking follow, so the first slot and the promise agree on 29 Dec."""
    option = evening(local("2026-12-23T15:00"))
    assert option is not None
    first = day_of(option["timeslots"][0]["start"])
    assert first == day_of(option["delivery_time"]["earliest"])
    assert first == date(2026, 12, 29)


INTERVAL_CATALOG = """
format = 1
version_label = "interval"
timezone = "Europe/Stockholm"
[[warehouses]]
id = "w"
tz = "Europe/Stockholm"
country = "SE"
cutoffs = { mon = "15:00", tue = "15:00", wed = "15:00", thu = "15:00", fri = "11:00" }
closed_dates = [2027-01-04]
[[options]]
id = "home"
name = "Home"
carrier = "budbee"
class = "express"
type = "delivery-address"
tax_rate = 2500
product = { identifier = "H", name = "Home" }
[options.price.SEK]
base = 4900
[options.timeslots]
days = 3
slots = [
  { id = "day", window = "10:00-16:00", cutoff = "09:00" },
  { id = "morning", window = "07:00-10:00", cutoff = "20:00", cutoff_days_before = 1 },
]
[options.delivery]
lead_days = [1, 2]
weekdays = ["mon", "tue", "wed", "thu", "fri", "sat"]
"""
CATALOGS = {"example": EXAMPLE, "interval": parse_catalog(INTERVAL_CATALOG)}


@settings(max_examples=400, deadline=None)
@given(
    name=st.sampled_from(sorted(CATALOGS)),
    minutes=st.integers(0, 2 * 366 * 24 * 60),
)
def test_promise_and_slots_always_agree(name: str, minutes: int) -> None:
    """Over random clocks from Dec 2026 for two years (weekends, holidays, DST changes, year ends):
    every offered slot's cutoff is ahead, at or before its start, and the first slot's day is the
    day the delivery_time promises first."""
    now = datetime(2026, 12, 1, tzinfo=UTC) + timedelta(minutes=minutes)
    option = evening(now, CATALOGS[name])
    if option is None:
        return
    slots = option["timeslots"]
    starts = [s["start"] for s in slots]
    assert starts == sorted(starts)  # chronological, though the template lists "day" before "morning"
    for s in slots:
        cutoff, start = (datetime.fromisoformat(s[k].replace("Z", "+00:00")) for k in ("cutoff", "start"))
        assert now < cutoff <= start, s
    assert "delivery_time" in option
    first = day_of(slots[0]["start"])
    if "earliest" in option["delivery_time"]:
        assert day_of(option["delivery_time"]["earliest"]) == first
    else:  # the interval counts the shopper's business days up to and including the first slot's day
        today = now.astimezone(STOCKHOLM).date()
        expected = shopper_business_days(today=today, day=first, calendar=country_calendar("SE"))
        assert option["delivery_time"]["interval"]["earliest"] == expected
