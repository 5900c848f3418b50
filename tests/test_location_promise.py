"""Every pickup point carries a delivery promise: its option's, or its own when it has lead days."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.test_engine import request
from tms_server.catalog import CatalogError, example_catalog_text, parse_catalog, shipping_options

NOW = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)
SLOW = 'id = "pn-sthlm-hotorget"'


def _pickup(text: str) -> dict[str, object]:
    options = shipping_options(parse_catalog(text), request(), now=NOW)
    return next(o for o in options if o["id"] == "postnord-service-point")


def test_locations_inherit_the_option_promise() -> None:
    """Without lead days of their own, pickup points repeat their option's delivery_time."""
    option = _pickup(example_catalog_text())
    locations = option["locations"]
    assert isinstance(locations, list) and locations
    assert all(loc["delivery_time"] == option["delivery_time"] for loc in locations)


def test_a_location_with_its_own_lead_days_gets_its_own_promise() -> None:
    """A pickup point with lead_days = [3, 4] promises later than its 1-2 day option."""
    text = example_catalog_text().replace(SLOW, SLOW + "\nlead_days = [3, 4]", 1)
    option = _pickup(text)
    by_id = {loc["id"]: loc for loc in option["locations"]}  # type: ignore[attr-defined]
    slow = by_id["pn-sthlm-hotorget"]["delivery_time"]
    assert slow["interval"]["earliest"] == 3 and slow["interval"]["latest"] == 4
    others = [loc for loc in by_id.values() if loc["id"] != "pn-sthlm-hotorget"]
    assert all(loc["delivery_time"] == option["delivery_time"] for loc in others)


def test_bad_location_lead_days_are_a_catalog_error_with_a_line() -> None:
    """A pickup point's lead_days with max below min is refused, naming the place and line."""
    text = example_catalog_text().replace(SLOW, SLOW + "\nlead_days = [4, 3]", 1)
    with pytest.raises(CatalogError) as err:
        parse_catalog(text)
    assert any("lead_days: max must not be below min" in e and "(line " in e for e in err.value.errors)
