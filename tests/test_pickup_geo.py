"""Pickup points near the shopper: the distance limit, the no-position policy, the grid index against
brute force at a real network's scale, postal positions with prefix centroids, and KSS areas."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import FIXTURES, load_fixture
from tms_server import wire
from tms_server.catalog import (
    SelectionError,
    check_selection,
    example_catalog_text,
    explain,
    parse_catalog,
    shipping_options,
)
from tms_server.catalog.model import Hours, Location
from tms_server.geo import PointIndex, PostalPositions, distance_km, inside
from tms_server.geodata.files import read_geonames

NOW = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)
EXAMPLE = parse_catalog(example_catalog_text())
GEONAMES = read_geonames((FIXTURES / "geonames_se_sample.txt").read_text(encoding="utf-8").splitlines())
POSITIONS = PostalPositions(
    [(r.country, r.postal_code, r.lat, r.lng) for r in GEONAMES], "imported postal areas"
)


def body_to(postal_code: str, city: str) -> dict[str, Any]:
    body: dict[str, Any] = load_fixture("kss_shippingoptions_request.json")
    body["recipient"].update(postal_code=postal_code, city=city)
    return body


def option(catalog: Any, body: dict[str, Any], oid: str) -> dict[str, Any] | None:
    req = wire.parse(body, wire.ShippingOptionsRequest)
    return next((o for o in shipping_options(catalog, req, now=NOW) if o["id"] == oid), None)


def decided(catalog: Any, body: dict[str, Any], oid: str) -> str:
    req = wire.parse(body, wire.ShippingOptionsRequest)
    return next(t.decided_by for t in explain(catalog, req, now=NOW).options if t.option_id == oid)


def test_visby_gets_no_mainland_points_and_the_option_is_hidden() -> None:
    """The issue's input: Visby (621 41) was offered points 180-380 km away across the sea. The example
    catalog knows no position for it and has no point in its district: PostNord Ombud is hidden."""
    body = body_to("621 41", "Visby")
    assert option(EXAMPLE, body, "postnord-service-point") is None
    assert decided(EXAMPLE, body, "postnord-service-point") == (
        "no_pickup_point: no position known for the recipient's postal code: points in its postal district only; "
        "none of postnord-se there (import positions: tms-admin postal-areas import FILE)"
    )


def test_visby_with_imported_positions_says_how_far_the_nearest_point_is() -> None:
    """With imported positions Visby is placed; the nearest point is ~150 km away, beyond 50 km."""
    bound = EXAMPLE.bound({}, POSITIONS)
    body = body_to("621 41", "Visby")
    assert option(bound, body, "postnord-service-point") is None
    reason = decided(bound, body, "postnord-service-point")
    assert reason.startswith("no_pickup_point: no point of postnord-se within 50 km of the recipient")


def test_reserving_a_far_point_is_refused() -> None:
    """Reserving Göteborg's point for a Visby address is shipping_option_not_available (it was 201)."""
    body = body_to("621 41", "Visby")
    body.pop("geoblocking")
    body.pop("selected_shipping_option_id")
    body["selected_shipping_option"] = {"id": "postnord-service-point", "location": {"id": "pn-gbg-nordstan"}}
    with pytest.raises(SelectionError) as err:
        check_selection(EXAMPLE, wire.parse(body, wire.ShipmentRequest), now=NOW)
    assert err.value.reason == "shipping_option_not_available"


def test_kiruna_gets_only_kiruna() -> None:
    """Kiruna 981 38 was offered points 900 km away; now only the Kiruna point, ~1 km off."""
    body = body_to("981 38", "Kiruna")
    found = option(EXAMPLE, body, "postnord-service-point")
    assert found is not None
    assert [loc["id"] for loc in found["locations"]] == ["pn-kiruna"]
    bound = EXAMPLE.bound({}, POSITIONS)
    found = option(bound, body, "postnord-service-point")
    assert found is not None and [loc["id"] for loc in found["locations"]] == ["pn-kiruna"]


@pytest.mark.parametrize(("code", "city"), [("984 31", "Pajala"), ("982 31", "Gällivare")])
def test_a_coarse_prefix_never_places_a_far_recipient_next_to_a_point(code: str, city: str) -> None:
    """Pajala is 150 km and Gällivare 80 km from the Kiruna point; no position finer than a postal
    district is known, so no point is offered (a 2-digit "98" centre would have put them in Kiruna)."""
    assert option(EXAMPLE, body_to(code, city), "postnord-service-point") is None
    coarse = parse_catalog(
        example_catalog_text().replace('"981" = [67.8550, 20.2250]', '"98" = [67.8550, 20.2250]')
    )
    assert option(coarse, body_to(code, city), "postnord-service-point") is None


def test_stockholm_points_are_nearest_first_and_capped() -> None:
    """111 34 gets five points, all in Stockholm, nearest first."""
    found = option(EXAMPLE, body_to("111 34", "Stockholm"), "postnord-service-point")
    assert found is not None
    points = found["locations"]
    assert len(points) == 5 and {p["address"]["city"] for p in points} == {"Stockholm"}
    centre = (59.3326, 18.0649)
    km = [distance_km(*centre, p["coordinates"]["lat"], p["coordinates"]["lng"]) for p in points]
    assert km == sorted(km)


def test_max_distance_km_is_validated() -> None:
    """max_distance_km is 1 to 100."""
    for bad in ("0", "101"):
        text = example_catalog_text().replace(
            "max_locations = 5", f"max_locations = 5\nmax_distance_km = {bad}"
        )
        with pytest.raises(Exception, match="max_distance_km"):
            parse_catalog(text)


def test_a_smaller_radius_drops_points() -> None:
    """max_distance_km = 4 around central Stockholm leaves out Solna (4.7 km), Sundbyberg, Nacka, Huddinge."""
    text = example_catalog_text().replace("max_locations = 5", "max_locations = 20\nmax_distance_km = 4")
    found = option(parse_catalog(text), body_to("111 34", "Stockholm"), "postnord-service-point")
    assert found is not None
    assert {p["id"] for p in found["locations"]}.isdisjoint(
        {"pn-solna", "pn-nacka", "pn-huddinge", "pn-sundbyberg"}
    )


SE_CODES = st.integers(10000, 99999).map(lambda n: f"{str(n)[:3]} {str(n)[3:]}")


@settings(max_examples=300, deadline=None)
@given(code=SE_CODES, imported=st.booleans())
def test_no_offered_point_is_beyond_the_limit(code: str, imported: bool) -> None:
    """Any Swedish postal code: every offered point is within 50 km of the recipient's position, or
    (no position known) shares the recipient's postal district; never the whole country."""
    catalog = EXAMPLE.bound({}, POSITIONS) if imported else EXAMPLE
    found = option(catalog, body_to(code, "X"), "postnord-service-point")
    if found is None:
        return
    compact = code.replace(" ", "")
    area = next((a for a in catalog.postal_areas["SE"] if compact.startswith(a.prefix)), None)
    where = (area.lat, area.lng) if area else None
    if where is None and imported:
        pos = POSITIONS.position("SE", compact)
        where = (pos.lat, pos.lng) if pos else None
    for loc in found["locations"]:
        if where is not None:
            assert distance_km(*where, loc["coordinates"]["lat"], loc["coordinates"]["lng"]) <= 50.0
        else:
            assert loc["address"]["postal_code"].replace(" ", "")[:3] == compact[:3]


def _network(n: int, seed: int) -> list[Location]:
    rng = random.Random(seed)
    points = []
    for i in range(n):
        lat, lng = rng.uniform(55.3, 69.0), rng.uniform(11.0, 24.0)
        placed = rng.random() > 0.02
        country = "SE" if rng.random() > 0.05 else "NO"
        code = f"{rng.randint(100, 999)} {rng.randint(10, 99)}"
        where = (lat, lng) if placed else (None, None)
        points.append(Location(f"p{i:05d}", f"Point {i}", "Gatan 1", code, "Ort", country, *where, Hours()))
    return points


def _agrees_with_brute_force(
    points: list[Location], index: PointIndex[Location], lat: float, lng: float, limit: int, reach: int
) -> None:
    """``index.nearest`` equals sorting every placed Swedish point by distance."""
    expected = sorted(
        (distance_km(lat, lng, p.lat, p.lng), p.id)
        for p in points
        if p.lat is not None and p.lng is not None and p.country == "SE"
    )
    expected = [(km, pid) for km, pid in expected if km <= reach][:limit]
    got = [(km, p.id) for p, km in index.nearest(lat, lng, country="SE", limit=limit, max_km=reach)]
    assert got == expected


NETWORK = _network(20000, 7)
INDEX = PointIndex(NETWORK)


@settings(max_examples=200, deadline=None)
@given(
    lat=st.floats(54.0, 70.0),
    lng=st.floats(9.0, 26.0),
    limit=st.integers(1, 12),
    reach=st.integers(1, 100),
)
def test_grid_index_matches_brute_force_on_20000_points(
    lat: float, lng: float, limit: int, reach: int
) -> None:
    """The grid's nearest-N-within-R equals sorting all 20,000 points by distance."""
    _agrees_with_brute_force(NETWORK, INDEX, lat, lng, limit, reach)


SPARSE = _network(300, 8)
SPARSE_INDEX = PointIndex(SPARSE)


@settings(max_examples=300, deadline=None)
@given(
    lat=st.floats(54.0, 70.0),
    lng=st.floats(9.0, 26.0),
    limit=st.integers(1, 12),
    reach=st.integers(1, 100),
)
def test_a_sparse_network_matches_brute_force(lat: float, lng: float, limit: int, reach: int) -> None:
    """With few points in reach the index measures them all instead of walking empty cells: same
    answers as sorting every point by distance."""
    _agrees_with_brute_force(SPARSE, SPARSE_INDEX, lat, lng, limit, reach)


def test_imported_codes_stand_for_the_longer_codes_under_them() -> None:
    """GeoNames lists NL's 4 digits and GB's outward codes: "1012 AB" is placed by "1012", "SW1A 1AA"
    by "SW1A", and a US ZIP+4 by its ZIP."""
    rows = [("NL", "1012", 52.37, 4.89), ("GB", "SW1A", 51.50, -0.14), ("US", "10001", 40.75, -73.99)]
    positions = PostalPositions(rows)
    for country, code in (("NL", "1012AB"), ("GB", "SW1A1AA"), ("US", "100011234")):
        found = positions.position(country, code)
        assert found is not None, code


def test_the_log_trace_does_not_locate_the_recipient() -> None:
    """explain(redact=True), which is logged, names neither the offered points nor distances."""
    req = wire.parse(body_to("111 34", "Stockholm"), wire.ShippingOptionsRequest)
    text = str(explain(EXAMPLE, req, now=NOW, redact=True))
    assert "pn-sthlm" not in text and " km" not in text.replace("50 km", "")
    assert "pickup points: 5 offered (withheld from logs)" in text
    visby = wire.parse(body_to("621 41", "Visby"), wire.ShippingOptionsRequest)
    far = str(explain(EXAMPLE.bound({}, POSITIONS), visby, now=NOW, redact=True))
    assert "nearest point" not in far
    assert "nearest point: 17" in str(explain(EXAMPLE.bound({}, POSITIONS), visby, now=NOW))


def test_positions_use_the_exact_code_then_the_longest_prefix() -> None:
    """Exact code first; an unseen code uses the centroid of its longest known prefix, never shorter
    than the code less two characters."""
    exact = POSITIONS.position("SE", "62141")
    assert exact is not None and (exact.lat, exact.lng) == (57.6348, 18.2948)
    unseen = POSITIONS.position("SE", "62149")  # 621 41 and 621 45 share "6214"
    assert unseen is not None and unseen.lat == pytest.approx((57.6348 + 57.6280) / 2)
    district = POSITIONS.position("SE", "62299")  # only 622 50 under "622"
    assert district is not None and district.lat == pytest.approx(57.4806)
    assert POSITIONS.position("SE", "63000") is None  # "6" or "63" alone is too coarse
    assert POSITIONS.position("DK", "1000") is None


ARCHIPELAGO = """
[options.area]
type = "archipelago"
boundary = [[57.95, 18.05], [57.95, 18.55], [57.45, 18.55], [57.45, 18.05]]
"""


def test_area_price_is_added_and_the_area_returned_inside_it() -> None:
    """A home delivery with an area around Visby costs its area price more there, and carries the
    KSS area with true latitude/longitude; outside the polygon neither."""
    text = (
        example_catalog_text()
        .replace(
            "addons = { entry-code = 0, carry-in = 4900 }",
            "addons = { entry-code = 0, carry-in = 4900 }\narea = 5000",
        )
        .replace('time_of_day = "08:00-17:00"\n', 'time_of_day = "08:00-17:00"\n' + ARCHIPELAGO, 1)
    )
    catalog = parse_catalog(text).bound({}, POSITIONS)
    visby = option(catalog, body_to("621 41", "Visby"), "postnord-home")
    assert visby is not None
    assert visby["price"] == 6900 + 5000
    assert visby["area"]["type"] == "archipelago" and visby["area"]["price"] == 5000
    assert visby["area"]["boundary"][0] == {"lat": 57.95, "lng": 18.05}
    stockholm = option(catalog, body_to("111 34", "Stockholm"), "postnord-home")
    assert stockholm is not None and "area" not in stockholm and stockholm["price"] == 6900


def test_area_needs_a_polygon_and_its_price_an_area() -> None:
    """An area with two vertices, or an area price on an option without an area, is a catalog error."""
    text = example_catalog_text().replace(
        'time_of_day = "08:00-17:00"\n',
        'time_of_day = "08:00-17:00"\n[options.area]\ntype = "x"\nboundary = [[1, 2], [3, 4]]\n',
        1,
    )
    with pytest.raises(Exception, match=r"area.boundary: expected a polygon of at least three"):
        parse_catalog(text)
    text = example_catalog_text().replace("base = 4900\n", "base = 4900\narea = 100\n", 1)
    with pytest.raises(Exception, match=r"price.SEK.area: this option has no \[options.area\]"):
        parse_catalog(text)


def test_point_in_polygon() -> None:
    """Ray casting: inside, outside, and a concave polygon's notch."""
    square = [(0.0, 0.0), (0.0, 10.0), (10.0, 10.0), (10.0, 0.0)]
    assert inside(5, 5, square) and not inside(11, 5, square)
    notch = [(0.0, 0.0), (0.0, 10.0), (10.0, 10.0), (10.0, 6.0), (4.0, 5.0), (10.0, 4.0), (10.0, 0.0)]
    assert inside(2, 5, notch) and not inside(8, 5, notch)
