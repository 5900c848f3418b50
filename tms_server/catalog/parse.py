"""TOML catalog text -> compiled ``Catalog``, strictly validated.

This module owns the catalog format (documented in ``tms_server/catalog/__init__.py`` and README): the
top-level layout, options, prices, addons and the cross-references between them (an option's pickup
point list must exist, a per-location price must name one of its pickup points, ...). Every mistake is
reported as ``path: message (line N)``; all of them at once in one ``CatalogError``.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Mapping, Set

import attrs

from tms_server.catalog.model import (
    Addon,
    Area,
    Bracket,
    Catalog,
    Location,
    Option,
    OrderTotalExcludes,
    PostalArea,
    PriceTable,
    Product,
    Surcharge,
)
from tms_server.catalog.parse_parts import (
    COUNTRY,
    read_conditions,
    read_location,
    read_promise,
    read_timeslots,
    read_warehouse,
    valid_zone,
)
from tms_server.catalog.reader import Context, Table, join
from tms_server.geo import PointIndex

__all__ = ["FORMAT", "CatalogError", "parse_catalog"]

FORMAT = 1
# How far a pickup point may be from the recipient's position (km): a default that keeps a shopper
# in their town or its surroundings, and a ceiling past which no carrier calls a point "near".
DEFAULT_DISTANCE_KM = 50
MAX_DISTANCE_KM = 100
_ID = r"[A-Za-z0-9][A-Za-z0-9_\-.]*"
_SLUG = r"[a-z0-9][a-z0-9\-]*"
_CURRENCY = r"[A-Z]{3}"
_REQUIRABLE = ("street_address", "postal_code", "city", "phone", "email", "given_name", "family_name")
_DEFAULT_REQUIRES = {
    "delivery-address": ("street_address", "postal_code", "city"),
    "pickup-point": ("postal_code",),
    "pickup-box": ("postal_code",),
}


class CatalogError(ValueError):
    """A catalog that does not validate; ``errors`` holds one "path: message (line N)" per mistake."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


def parse_catalog(
    text: str, *, source: str = "<catalog>", networks: Mapping[str, Set[str]] | None = None
) -> Catalog:
    """Parse and validate catalog text; raise CatalogError listing every mistake.

    An option's ``pickup_points = "NAME"`` names the catalog's own ``[[pickup_points.NAME]]`` list,
    else an imported network. ``networks`` maps the imported networks' names to their point ids;
    with it, a name that is neither is an error (and so is a per-point price for an unknown id).
    Without it (None) the check is left to the caller: the names are in ``networks_needed``."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError([f"{source}: not valid TOML: {exc}"]) from None
    except RecursionError:
        raise CatalogError([f"{source}: nested too deeply to be a catalog"]) from None
    ctx = Context(text)
    catalog = _read_catalog(Table(ctx, data, ""), text, source, networks)
    if ctx.errors or catalog is None:
        raise CatalogError(ctx.errors or ["catalog: no options"])
    return catalog


def _read_catalog(
    t: Table, text: str, source: str, networks: Mapping[str, Set[str]] | None
) -> Catalog | None:
    fmt = t.integer("format", required=True)
    if fmt is not None and fmt != FORMAT:
        t.error("format", f"this server reads catalog format {FORMAT}, got {fmt}")
    label = t.text("version_label", required=True)
    zone = valid_zone(t.ctx, t.at("timezone"), t.text("timezone", required=True))
    warehouses = tuple(read_warehouse(w) for w in t.tables("warehouses"))
    _unique(t, "warehouses", [w.id for w in warehouses])
    lists = _pickup_points(t.table("pickup_points"))
    areas = _postal_areas(t.table("postal_areas"))
    zones = _timezones(t.table("timezones"))
    excludes = _excludes(t.table("order_total_excludes"))
    options = tuple(_option(o, lists, networks) for o in t.tables("options"))
    compiled = tuple(o for o in options if o is not None)
    if not t.data.get("options"):
        t.error("options", "expected at least one [[options]]")
    _unique(t, "options", [o.id for o in compiled])
    if sum(o.preselected for o in compiled) > 1:
        t.error("options", "at most one option may be preselected")
    t.done()
    if label is None or zone is None:
        return None
    digest = hashlib.sha256(text.encode()).hexdigest()
    needed = frozenset(o.locations for o in compiled if o.locations is not None and o.locations not in lists)
    indexes = {name: PointIndex(points) for name, points in lists.items()}
    return Catalog(
        FORMAT,
        label,
        digest,
        zone,
        compiled,
        warehouses,
        lists,
        areas,
        zones,
        source,
        excludes,
        needed,
        indexes,
    )


def _excludes(t: Table | None) -> OrderTotalExcludes:
    """``[order_total_excludes]``: ``line_types = ["gift_card"]``, ``line_tags = ["gift-card"]``."""
    if t is None:
        return OrderTotalExcludes()
    types, tags = t.strings("line_types") or (), t.strings("line_tags") or ()
    for i, kind in enumerate(types):
        if kind == "physical":
            t.ctx.error(join(t.at("line_types"), i), "physical lines are the goods: they cannot be left out")
    t.done()
    return OrderTotalExcludes(frozenset(types), frozenset(tags))


def _unique(t: Table, key: str, ids: list[str]) -> None:
    seen: set[str] = set()
    for i, item in enumerate(ids):
        if item in seen:
            t.ctx.error(join(t.at(key), i), f"duplicate id {item!r}")
        seen.add(item)


def _pickup_points(t: Table | None) -> dict[str, tuple[Location, ...]]:
    out: dict[str, tuple[Location, ...]] = {}
    for name in t.keys() if t else ():
        assert t is not None
        found = (read_location(item) for item in t.tables(name))
        out[name] = tuple(loc for loc in found if loc is not None)
        _unique(t, name, [loc.id for loc in out[name]])
    return out


def _postal_areas(t: Table | None) -> dict[str, tuple[PostalArea, ...]]:
    """``[postal_areas.SE]`` ``"111" = [59.334, 18.063]``: the centre of codes starting 111."""
    out: dict[str, tuple[PostalArea, ...]] = {}
    for country in t.keys() if t else ():
        assert t is not None
        areas, table = [], t.table(country)
        for prefix in table.keys() if table else ():
            assert table is not None
            point = table.data[prefix]
            ok = isinstance(point, list) and len(point) == 2 and all(type(v) in (int, float) for v in point)
            if not ok or not (-90 <= point[0] <= 90 and -180 <= point[1] <= 180):
                table.error(prefix, "expected [lat, lng], e.g. [59.334, 18.063]")
                continue
            areas.append(PostalArea(re.sub(r"\s", "", prefix), float(point[0]), float(point[1])))
        out[country] = tuple(sorted(areas, key=lambda a: -len(a.prefix)))
    return out


def _timezones(t: Table | None) -> dict[str, str]:
    out = {}
    for country in t.keys() if t else ():
        assert t is not None
        if not re.fullmatch(COUNTRY, country):
            t.error(country, f"expected an upper-case country code such as SE, got {country!r}")
        zone = valid_zone(t.ctx, t.at(country), t.text(country))
        if zone is not None:
            out[country] = zone
    return out


def _option(
    t: Table, lists: Mapping[str, tuple[Location, ...]], networks: Mapping[str, Set[str]] | None
) -> Option | None:
    option_type = t.text("type", required=True, pattern=_SLUG) or ""
    addons = tuple(_addon(a) for a in t.tables("addons"))
    _unique(t, "addons", [a.id for a in addons])
    pickup = t.text("pickup_points")
    point_ids: Set[str] | None = None
    if pickup is not None and pickup in lists:
        point_ids = {loc.id for loc in lists[pickup]}
    elif pickup is not None and networks is not None:
        point_ids = networks.get(pickup)
        if point_ids is None:
            t.error(
                "pickup_points",
                f"no [[pickup_points.{pickup}]] list in this catalog and no imported network {pickup!r} "
                "(see tms-admin pickup-points list)",
            )
    if option_type.startswith("pickup") and pickup is None:
        t.error("pickup_points", f"a {option_type} option needs a pickup_points list")
    slots_table = t.table("timeslots")
    timeslots = read_timeslots(slots_table) if slots_table else None
    promise_table = t.table("delivery")
    option = Option(
        id=t.text("id", required=True, pattern=_ID) or "",
        name=t.text("name", required=True) or "",
        carrier=t.text("carrier", required=True, pattern=_SLUG) or "",
        class_=t.text("class", required=True, pattern=_SLUG) or "",
        type=option_type,
        tax_rate=t.integer("tax_rate", required=True, high=10000) or 0,
        product=_product(t),
        prices={},
        line=t.ctx.lines.line_of(t.path) or 0,
        priority=_or(t.integer("priority", high=10_000), 100),
        preselected=t.flag("preselected"),
        fallback=t.flag("fallback"),
        when=tuple(read_conditions(c) for c in t.tables("when")),
        features=tuple(_feature(f) for f in t.tables("features")),
        addons=addons,
        locations=pickup,
        max_locations=t.integer("max_locations", low=1, high=50) or 5,
        max_distance_km=t.integer("max_distance_km", low=1, high=MAX_DISTANCE_KM) or DEFAULT_DISTANCE_KM,
        area=_area(t.table("area")),
        timeslots=timeslots,
        delivery=read_promise(promise_table) if promise_table else None,
        requires=_requires(t, option_type),
    )
    prices = _prices(t, option, point_ids)
    t.done()
    return None if not prices else attrs.evolve(option, prices=prices)


def _or(value: int | None, default: int) -> int:
    return default if value is None else value


def _product(t: Table) -> Product:
    p = t.table("product", required=True)
    if p is None:
        return Product("", "")
    product = Product(p.text("identifier", required=True) or "", p.text("name", required=True) or "")
    p.done()
    return product


def _requires(t: Table, option_type: str) -> tuple[str, ...]:
    fields = t.strings("requires")
    for field in fields or ():
        if field not in _REQUIRABLE:
            t.error(
                "requires", f"unknown recipient field {field!r}, expected some of {', '.join(_REQUIRABLE)}"
            )
    return fields if fields is not None else _DEFAULT_REQUIRES.get(option_type, ("postal_code",))


def _feature(t: Table) -> dict[str, str]:
    feature = {"class": t.choice("class", ("badge", "call_to_action", "info")) or "info"}
    feature["type"] = t.text("type", required=True) or ""
    url = t.text("url", pattern=r"https://\S+")
    if url:
        feature["url"] = url
    t.done()
    return feature


def _addon(t: Table) -> Addon:
    addon = Addon(
        id=t.text("id", required=True, pattern=_ID) or "",
        type=t.text("type", required=True, pattern=_SLUG) or "",
        label=t.text("label", required=True) or "",
        code=t.text("code", required=True) or "",
        required=t.flag("required"),
        preselected=t.flag("preselected"),
        max_length=t.integer("max_length", low=1, high=500),
    )
    t.done()
    return addon


def _prices(t: Table, option: Option, point_ids: Set[str] | None) -> dict[str, PriceTable]:
    table = t.table("price", required=True)
    out: dict[str, PriceTable] = {}
    for currency in table.keys() if table else ():
        assert table is not None
        if not re.fullmatch(_CURRENCY, currency):
            table.error(currency, f"expected a currency code such as SEK, got {currency!r}")
            continue
        sub = table.table(currency)
        if sub is not None:
            out[currency] = _price_table(sub, option, point_ids)
    if table is not None and not out:
        t.error("price", "expected a price table per currency, e.g. [options.price.SEK]")
    return out


def _price_table(t: Table, option: Option, location_ids: Set[str] | None) -> PriceTable:
    slot_ids = {s.id for s in option.timeslots.slots} if option.timeslots else set()
    table = PriceTable(
        base=t.integer("base", required=True) or 0,
        free_above=t.integer("free_above"),
        weight=_brackets(t, "weight"),
        order_total=_brackets(t, "order_total"),
        surcharges=tuple(_surcharge(s) for s in t.tables("surcharges")),
        addons=_amounts(t, "addons", {a.id for a in option.addons}, "addon"),
        area=_area_price(t, option),
        locations=_amounts(t, "locations", location_ids, "pickup point of this option"),
        timeslots=_amounts(t, "timeslots", slot_ids, "timeslot of this option"),
    )
    t.done()
    return table


def _brackets(t: Table, key: str) -> tuple[Bracket, ...]:
    brackets: list[Bracket] = []
    for b in t.tables(key):
        start, price = b.integer("from", required=True), b.integer("price", required=True)
        b.done()
        if start is not None and price is not None:
            if brackets and start <= brackets[-1].start:
                b.error("from", f"brackets must go up: {start} is not above {brackets[-1].start}")
            brackets.append(Bracket(start, price))
    return tuple(brackets)


def _surcharge(t: Table) -> Surcharge:
    when = t.table("when", required=True)
    surcharge = Surcharge(
        name=t.text("name", required=True) or "",
        amount=t.integer("amount", required=True) or 0,
        when=read_conditions(when) if when else read_conditions(Table(t.ctx, {}, t.at("when"))),
    )
    t.done()
    return surcharge


def _amounts(t: Table, key: str, known: Set[str] | None, what: str) -> dict[str, int]:
    """Per-id amounts; ``known`` None means the ids cannot be checked here (an imported network)."""
    table = t.table(key)
    out = {}
    for name in table.keys() if table else ():
        assert table is not None
        if known is not None and name not in known:
            table.error(name, f"not a {what}")
        amount = table.integer(name, required=True)
        if amount is not None:
            out[name] = amount
    return out


def _area(t: Table | None) -> Area | None:
    """``[options.area]``: ``type = "archipelago"``, ``boundary = [[lat, lng], ...]`` (3+ vertices)."""
    if t is None:
        return None
    kind = t.text("type", required=True, pattern=_SLUG) or ""
    raw = t.array("boundary")
    vertices: list[tuple[float, float]] = []
    for i, point in enumerate(raw or ()):
        ok = isinstance(point, list) and len(point) == 2 and all(type(v) in (int, float) for v in point)
        if not ok or not (-90 <= point[0] <= 90 and -180 <= point[1] <= 180):
            t.ctx.error(join(t.at("boundary"), i), "expected [lat, lng] in degrees, e.g. [59.33, 18.06]")
            continue
        vertices.append((float(point[0]), float(point[1])))
    if raw is None or len(raw) < 3:
        t.error("boundary", "expected a polygon of at least three [lat, lng] vertices")
    t.done()
    return Area(kind, tuple(vertices)) if len(vertices) >= 3 else None


def _area_price(t: Table, option: Option) -> int:
    amount = t.integer("area")
    if amount is not None and option.area is None:
        t.error("area", "this option has no [options.area]")
    return amount or 0
