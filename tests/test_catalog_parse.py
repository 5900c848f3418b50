"""Catalog parsing: the example compiles, and every mistake is reported with its path and line."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tms_server.catalog import CatalogError, example_catalog_text, parse_catalog

HEADER = """format = 1
version_label = "t"
timezone = "Europe/Stockholm"
"""


def opt(oid: str, body: str = "", price: str = "base = 4900") -> str:
    return f"""
[[options]]
id = "{oid}"
name = "Option {oid}"
carrier = "postnord"
class = "standard"
type = "delivery-address"
tax_rate = 2500
product = {{ identifier = "19", name = "MyPack" }}
{body}
[options.price.SEK]
{price}
"""


def line_of(text: str, needle: str, nth: int = 1) -> int:
    """The 1-based line of the nth line containing ``needle``."""
    hits = [i for i, line in enumerate(text.splitlines(), start=1) if needle in line]
    return hits[nth - 1]


def errors(text: str) -> list[str]:
    """The errors of ``text`` checked as ``catalog check`` does, with no imported networks."""
    with pytest.raises(CatalogError) as err:
        parse_catalog(text, networks={})
    assert str(err.value) == "\n".join(err.value.errors)
    assert isinstance(err.value, ValueError)
    return err.value.errors


def test_example_catalog_compiles() -> None:
    """The packaged example is valid and names its options, warehouses and pickup points."""
    cat = parse_catalog(example_catalog_text())
    assert cat.version_label == "nordljus 2026-11"
    assert len(cat.digest) == 64
    assert len(cat.options) >= 8
    assert sum(len(points) for points in cat.location_lists.values()) >= 30
    assert any(loc.city == "Stockholm" for loc in cat.location_lists["postnord-se"])
    assert hash(cat) == hash(parse_catalog(example_catalog_text()))


def test_a_minimal_catalog() -> None:
    """One option with a price is enough; defaults fill in the rest."""
    cat = parse_catalog(HEADER + opt("a"))
    [o] = cat.options
    assert (o.id, o.priority, o.max_locations, o.prices["SEK"].base) == ("a", 100, 5, 4900)
    assert o.requires == ("street_address", "postal_code", "city")


CASES = [
    (opt("a", price="base = -1"), "options[0].price.SEK.base: must not be negative", "base = -1", 1),
    (
        opt("a") + opt("b", "[[options.when]]\ntotal_weight_min = 500\ntotal_weight_max = 100"),
        "options[1].when[0].total_weight_max: must not be below total_weight_min (100 < 500)",
        "total_weight_max = 100",
        1,
    ),
    (
        opt("a", '[[options.when]]\nweekdays = ["mon", "funday"]'),
        "options[0].when[0].weekdays[1]: unknown weekday 'funday'",
        "weekdays",
        1,
    ),
    (opt("a", "colour = 'red'"), "options[0].colour: unknown key", "colour", 1),
    (
        opt("a").replace("tax_rate = 2500", 'tax_rate = "25"'),
        "options[0].tax_rate: expected integer, got string",
        "tax_rate",
        1,
    ),
    (opt("a", "preselected = 1"), "options[0].preselected: expected boolean, got integer", "preselected", 1),
    (opt("a") + opt("a"), "options[1]: duplicate id 'a'", "[[options]]", 2),
    (
        opt("a", '[[options.when]]\npostal_codes = { SE = ["11.*"] }'),
        "options[0].when[0].postal_codes.SE[0]: expected a postal pattern",
        "postal_codes",
        1,
    ),
    (
        opt("a", '[[options.when]]\npostal_codes = { SE = ["199 99-100 00"] }'),
        "options[0].when[0].postal_codes.SE[0]: range bounds must have equal length and low <= high",
        "postal_codes",
        1,
    ),
    (
        opt("a", 'pickup_points = "nope"'),
        "options[0].pickup_points: no [[pickup_points.nope]] list",
        "pickup_points",
        1,
    ),
    (
        opt("a", price="base = 1\nweight = [{ from = 500, price = 2 }, { from = 100, price = 3 }]"),
        "options[0].price.SEK.weight[1].from: brackets must go up",
        "weight = ",
        1,
    ),
    (
        opt("a", price="base = 1\naddons = { sms = 0 }"),
        "options[0].price.SEK.addons.sms: not a addon",
        "addons = ",
        1,
    ),
    (
        opt("a", price="base = 1\nfree_above = -5"),
        "options[0].price.SEK.free_above: must not be negative",
        "free_above",
        1,
    ),
    (
        opt("a", '[[options.when]]\nlocal_time = "15:00-14:00"'),
        "options[0].when[0].local_time: start must be before end",
        "local_time",
        1,
    ),
    (
        opt("a", "[options.delivery]\nlead_days = [3, 1]"),
        "options[0].delivery.lead_days: max must not be below min",
        "lead_days",
        1,
    ),
    (
        opt("a", '[[options.addons]]\nid = "sms"\ntype = "sms"\nlabel = "SMS"\ncode = "A1"\nmax_length = 0'),
        "options[0].addons[0].max_length: must be at least 1",
        "max_length",
        1,
    ),
    (
        opt("a").replace('carrier = "postnord"', 'carrier = "Post Nord"'),
        "options[0].carrier: 'Post Nord' does not match",
        "carrier",
        1,
    ),
    (
        opt("a", '[[options.when]]\ncustomer_types = ["alien"]'),
        "options[0].when[0].customer_types: expected person and/or organization",
        "customer_types",
        1,
    ),
]


@pytest.mark.parametrize(("body", "message", "needle", "nth"), CASES)
def test_mistakes_name_path_and_line(body: str, message: str, needle: str, nth: int) -> None:
    """Each impossible value is reported as 'path: message (line N)' with the right line."""
    text = HEADER + body
    found = [e for e in errors(text) if e.startswith(message)]
    assert found, errors(text)
    assert found[0].endswith(f"(line {line_of(text, needle, nth)})")


def test_top_level_mistakes() -> None:
    """Wrong format, unknown zone and a missing options list are all reported at once."""
    text = 'format = 2\nversion_label = "t"\ntimezone = "Mars/Olympus"\nextra = 1\n'
    found = errors(text)
    assert "format: this server reads catalog format 1, got 2 (line 1)" in found
    assert "timezone: unknown time zone 'Mars/Olympus' (line 3)" in found
    assert "extra: unknown key (line 4)" in found
    assert any(e.startswith("options: expected at least one") for e in found)


def test_warehouse_mistakes() -> None:
    """A warehouse with an unknown weekday cutoff and a bad time is reported with its path."""
    text = (
        HEADER
        + '[[warehouses]]\nid = "w"\ntz = "Europe/Stockholm"\ncountry = "SE"\n'
        + 'cutoffs = { mon = "25:00", xyz = "10:00" }\n'
        + opt("a")
    )
    found = errors(text)
    assert any(
        e.startswith("warehouses[0].cutoffs.mon: expected a time") and e.endswith("(line 8)") for e in found
    )
    assert any(e.startswith("warehouses[0].cutoffs.xyz: unknown weekday") for e in found)


def test_pickup_point_mistakes() -> None:
    """A pickup point with an invalid postal code and a bad opening-hours weekday is reported."""
    text = (
        HEADER
        + opt("a", "type2 = 1")
        + """
[[pickup_points.pts]]
id = "p1"
name = "P"
street_address = "S 1"
postal_code = "1234"
city = "C"
country = "SE"
hours = { default = "08:00-20:00", caturday = "closed" }
"""
    )
    found = errors(text)
    assert any(
        e.startswith("pickup_points.pts[0].postal_code: '1234' is not a valid postal code in SE")
        for e in found
    )
    assert any(e.startswith("pickup_points.pts[0].hours.caturday: unknown weekday") for e in found)


def test_not_toml() -> None:
    """Text that is not TOML is one error naming the source."""
    with pytest.raises(CatalogError) as err:
        parse_catalog("format = = 1", source="shop.toml")
    assert err.value.errors[0].startswith("shop.toml: not valid TOML")


@settings(max_examples=200, deadline=None)
@given(cut=st.integers(0, 20000), junk=st.text(max_size=5))
def test_damaged_catalogs_fail_cleanly(cut: int, junk: str) -> None:
    """A truncated or corrupted catalog either parses or raises CatalogError, nothing else."""
    text = example_catalog_text()
    damaged = text[:cut] + junk + text[cut + len(junk) :]
    try:
        parse_catalog(damaged)
    except CatalogError as exc:
        assert exc.errors
