"""The compiled catalog: immutable values the rule engine evaluates, built once by ``parse``.

This module owns the in-memory shape of a merchant's shipping offer. Everything is frozen attrs and
already validated, so the engine never re-checks a catalog per request. Money is integer minor units;
weekdays are 0 (Monday) to 6 (Sunday); times are naive local wall-clock times.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, time
from typing import Final

import attrs
from attrs import frozen

from tms_server import wire
from tms_server.geo import PointIndex, PostalPositions

__all__ = [
    "WEEKDAYS",
    "Addon",
    "Area",
    "Bracket",
    "Catalog",
    "Conditions",
    "Hours",
    "Location",
    "Option",
    "OrderTotalExcludes",
    "PostalArea",
    "PostalPattern",
    "PriceTable",
    "Product",
    "Promise",
    "SlotTemplate",
    "Surcharge",
    "TimeWindow",
    "TimeslotTemplate",
    "Warehouse",
]

WEEKDAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@frozen
class TimeWindow:
    """A local wall-clock window [start, end); "14:00-21:00"."""

    start: time
    end: time

    def contains(self, t: time) -> bool:
        """Whether ``t`` lies in the window; one ending at 24:00 (``time.max``) holds to midnight,
        its last microsecond included, so every clock of a minute gets the same answer."""
        return self.start <= t and (t < self.end or self.end == time.max)

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


@frozen
class PostalPattern:
    """One postal pattern: a prefix ("11*"), an exact code, or an inclusive range of compact codes."""

    text: str
    low: str
    high: str

    def matches(self, code: str) -> bool:
        """``code`` is compact; ranges compare the code's first characters, as long as the bounds."""
        head = code[: len(self.low)]
        return len(head) == len(self.low) and self.low <= head <= self.high


@frozen
class Conditions:
    """One AND-group of conditions; None means "not constrained". Lists inside are OR."""

    countries: frozenset[str] | None = None
    postal_codes: Mapping[str, tuple[PostalPattern, ...]] | None = None
    not_postal_codes: Mapping[str, tuple[PostalPattern, ...]] | None = None
    total_weight_min: int | None = None
    total_weight_max: int | None = None
    parcel_weight_max: int | None = None
    line_weight_max: int | None = None
    parcel_dimensions_max: tuple[int, int, int] | None = None
    unknown_dimensions: str | None = None  # "allow" (the default) or "refuse"
    physical_goods: bool | None = None
    order_total_min: int | None = None
    order_total_max: int | None = None
    order_tags: frozenset[str] | None = None
    not_order_tags: frozenset[str] | None = None
    line_tags: frozenset[str] | None = None
    not_line_tags: frozenset[str] | None = None
    customer_types: frozenset[str] | None = None
    senders: frozenset[str] | None = None
    currencies: frozenset[str] | None = None
    weekdays: frozenset[int] | None = None
    local_time: TimeWindow | None = None


@frozen
class OrderTotalExcludes:
    """Lines left out of the amount ``order_total_*`` and ``free_above`` compare: by Klarna line
    type (``gift_card``, ...) and by line tag. Their ``total_price_including_tax`` is subtracted
    from ``order.total_amount`` (a negative one, such as a gift card paying, is added back)."""

    line_types: frozenset[str] = frozenset()
    line_tags: frozenset[str] = frozenset()

    def leaves_out(self, line: wire.LineView) -> bool:
        """Whether ``line`` is left out."""
        if line.type is not None and line.type in self.line_types:
            return True
        tags = line.attributes.tags if line.attributes else ()
        return any(tag in self.line_tags for tag in tags)


@frozen
class Bracket:
    """From ``start`` (inclusive, grams or minor units) upwards the price is ``price``."""

    start: int
    price: int


@frozen
class Surcharge:
    """An amount added when its conditions hold (a tag, a remote postal area, ...)."""

    name: str
    amount: int
    when: Conditions


@frozen
class PriceTable:
    """All money of one option in one currency."""

    base: int
    free_above: int | None = None
    weight: tuple[Bracket, ...] = ()
    order_total: tuple[Bracket, ...] = ()
    surcharges: tuple[Surcharge, ...] = ()
    addons: Mapping[str, int] = attrs.field(factory=dict)
    area: int = 0
    locations: Mapping[str, int] = attrs.field(factory=dict)
    timeslots: Mapping[str, int] = attrs.field(factory=dict)


@frozen
class Product:
    """The carrier's own product code, printed on labels."""

    identifier: str
    name: str


@frozen
class Addon:
    """An extra the shopper may (or must) choose; ``code`` is the carrier's addon code."""

    id: str
    type: str
    label: str
    code: str
    required: bool = False
    preselected: bool = False
    max_length: int | None = None


@frozen
class Hours:
    """Opening hours: every day, per weekday, and per date; an empty tuple means closed."""

    default: tuple[TimeWindow, ...] = ()
    weekdays: Mapping[int, tuple[TimeWindow, ...]] = attrs.field(factory=dict)
    dates: Mapping[date, tuple[TimeWindow, ...]] = attrs.field(factory=dict)


@frozen
class Location:
    """A pickup point."""

    id: str
    name: str
    street_address: str
    postal_code: str
    city: str
    country: str
    lat: float | None
    lng: float | None
    hours: Hours
    # Lead days of this pickup point when they differ from its option's (e.g. a remote locker).
    lead_days: tuple[int, int] | None = None


@frozen
class SlotTemplate:
    """One daily timeslot; it closes ``cutoff_days_before`` days before at ``cutoff`` (local)."""

    id: str
    window: TimeWindow
    cutoff: time
    cutoff_days_before: int = 0


@frozen
class TimeslotTemplate:
    """Timeslots on the next ``days`` delivery days."""

    days: int
    slots: tuple[SlotTemplate, ...]


@frozen
class Promise:
    """What the delivery promise of an option is made of (see tms_server.calendar)."""

    lead_days_min: int
    lead_days_max: int
    weekdays: frozenset[int]
    form: str
    time_of_day: TimeWindow | None = None


@frozen
class Warehouse:
    """Where parcels leave from: its zone, per-weekday cutoffs and calendar."""

    id: str
    tz: str
    country: str
    cutoffs: Mapping[int, time]
    closed_dates: frozenset[date] = frozenset()
    open_dates: frozenset[date] = frozenset()


@frozen
class Option:
    """One shipping option of the catalog."""

    id: str
    name: str
    carrier: str
    class_: str
    type: str
    tax_rate: int
    product: Product
    prices: Mapping[str, PriceTable]
    line: int = 0
    priority: int = 100
    preselected: bool = False
    fallback: bool = False
    when: tuple[Conditions, ...] = ()
    features: tuple[Mapping[str, str], ...] = ()
    addons: tuple[Addon, ...] = ()
    locations: str | None = None
    max_locations: int = 5
    max_distance_km: int = 50
    area: Area | None = None
    timeslots: TimeslotTemplate | None = None
    delivery: Promise | None = None
    requires: tuple[str, ...] = ()


@frozen
class Area:
    """A KSS ``area``: a zone (an archipelago, a toll island) whose recipients pay ``price`` more.

    ``boundary`` is a polygon of (lat, lng) vertices in degrees; the price per currency is the
    option's ``[options.price.CUR] area``."""

    type: str
    boundary: tuple[tuple[float, float], ...]


@frozen
class PostalArea:
    """The approximate centre of the postal codes starting with ``prefix`` (compact)."""

    prefix: str
    lat: float
    lng: float


@frozen(eq=False)
class Catalog:
    """A compiled catalog; equal and hashed by the digest of its source text."""

    format: int
    version_label: str
    digest: str
    timezone: str
    options: tuple[Option, ...]
    warehouses: tuple[Warehouse, ...] = ()
    location_lists: Mapping[str, tuple[Location, ...]] = attrs.field(factory=dict)
    postal_areas: Mapping[str, tuple[PostalArea, ...]] = attrs.field(factory=dict)
    timezones: Mapping[str, str] = attrs.field(factory=dict)
    source: str = "<catalog>"
    order_total_excludes: OrderTotalExcludes = OrderTotalExcludes()
    # Pickup point lists the catalog names but does not hold: imported networks, bound at run time.
    networks_needed: frozenset[str] = frozenset()
    # Built from location_lists; bound networks bring their own (shared by every catalog using them).
    point_indexes: Mapping[str, PointIndex[Location]] = attrs.field(factory=dict)
    # The shared postal-code positions (``tms-admin postal-areas import``), bound at run time.
    positions: PostalPositions | None = None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Catalog) and other.digest == self.digest

    def __hash__(self) -> int:
        return hash(self.digest)

    def option(self, option_id: str) -> Option | None:
        return next((o for o in self.options if o.id == option_id), None)

    def bound(
        self,
        networks: Mapping[str, tuple[tuple[Location, ...], PointIndex[Location]]],
        positions: PostalPositions | None,
    ) -> Catalog:
        """This catalog with the imported networks it names and the shared postal positions.

        A needed network missing from ``networks`` stays unbound: its options find no pickup point
        (and say so in the explain trace) until it is imported."""
        lists, indexes = dict(self.location_lists), dict(self.point_indexes)
        for name in self.networks_needed & networks.keys():
            lists[name], indexes[name] = networks[name]
        return attrs.evolve(self, location_lists=lists, point_indexes=indexes, positions=positions)

    def warehouse(self, sender_id: str | None) -> Warehouse | None:
        """The sender's warehouse, or the first one when the sender is unknown."""
        found = next((w for w in self.warehouses if w.id == sender_id), None)
        return found or (self.warehouses[0] if self.warehouses else None)
