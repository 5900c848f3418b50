"""Facts about one request, and conditions evaluated against them with three-valued logic.

This module owns what each condition means. A check answers True, False, or None ("cannot know yet":
the postal code or country is not given). In preview mode None counts as a pass, so a shopper who has
not typed a postal code sees every option that could apply; a complete request never has None for
address checks. Each answer carries a sentence for ``catalog explain``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, time
from typing import Any, Final
from zoneinfo import ZoneInfo

from attrs import frozen

from tms_server import postal, wire
from tms_server.catalog.model import WEEKDAYS, Conditions, OrderTotalExcludes, PostalPattern

__all__ = ["TIMING", "Facts", "Failure", "Unit", "evaluate", "facts_of", "group_holds", "holds"]

# Conditions on the clock: an option hidden only by these has passed its cutoff.
TIMING: Final = frozenset({"weekdays", "local_time"})

Answer = tuple[bool | None, str]


@frozen
class Unit:
    """One kind of physical unit in the cart: its sorted dimensions (mm, largest first) and count."""

    dims: tuple[int, int, int]
    quantity: int

    @property
    def volume(self) -> int:
        """Cubic millimetres of all ``quantity`` units."""
        return self.dims[0] * self.dims[1] * self.dims[2] * self.quantity


@frozen
class Facts:
    """What the rules look at, extracted once per request.

    The shipment is one parcel holding the physical lines (see ``wire.OrderLine.physical``):
    ``total_weight`` is its weight in grams (None when no physical line has a weight),
    ``units`` its units of known size, ``unknown_dimensions`` how many physical lines carry no
    complete size, ``physical`` whether there is anything to ship at all (None: the cart has no
    lines, so nobody knows). ``order_total`` is the amount rules compare, in minor units: the
    order's ``total_amount`` less the lines the catalog's ``order_total_excludes`` leaves out.
    """

    currency: str
    order_total: int
    total_weight: int | None
    line_weights: tuple[int, ...]
    units: tuple[Unit, ...]
    order_tags: frozenset[str]
    line_tags: frozenset[str]
    weekday: int
    clock: time
    country: str | None = None
    postal_code: str | None = None  # national display form, only when valid for the country
    customer_type: str | None = None
    sender_id: str | None = None
    unknown_dimensions: int = 0
    physical: bool | None = None
    compact_postal: str | None = None  # ``postal_code`` without spaces or dashes (``postal.compact``)

    @property
    def preview(self) -> bool:
        return self.country is None or self.postal_code is None


def facts_of(
    req: wire.RequestView,
    *,
    now: datetime,
    tz: str,
    excludes: OrderTotalExcludes | None = None,
) -> Facts:
    """Extract the facts; ``tz`` is the zone of the local clock conditions compare.

    Weight: the sum of the physical lines' ``weight × quantity``, or ``order.total_weight`` when that
    is larger (the shop may know about packaging we do not); None when neither is known."""
    order = req.order
    lines = order.lines
    leaving_out = excludes is not None and bool(excludes.line_types or excludes.line_tags)
    line_weights: list[int] = []
    units: list[Unit] = []
    tags: set[str] = set()
    unknown = left_out = 0
    weighed = physical = False
    for line in lines:  # one pass: carts of 1,000 lines are real
        attributes = line.attributes
        if attributes is not None and attributes.tags:
            tags.update(attributes.tags)
        if leaving_out and excludes is not None and excludes.leaves_out(line):
            left_out += _line_total(line)
        if not line.physical:
            continue
        quantity = line.quantity
        physical = physical or bool(quantity)
        if attributes is not None and attributes.weight is not None:
            line_weights.append(attributes.weight * quantity)
            weighed = True
        unit = _unit(line)
        if unit is not None:
            units.append(unit)
        # A size with a side missing is a lower bound for the fit test but unknown for the volume.
        if quantity and (unit is None or not unit.volume):
            unknown += 1
    total = order.total_weight
    if weighed:
        summed = sum(line_weights)
        total = summed if total is None else max(total, summed)
    recipient = req.recipient
    country = recipient.country.upper() if recipient and recipient.country else None
    code = recipient.postal_code if recipient else None
    local = now.astimezone(ZoneInfo(tz))
    normal = postal.normalise(country, code) if country and code else None
    return Facts(
        currency=req.currency,
        order_total=max(0, order.total_amount - left_out) if leaving_out else order.total_amount,
        total_weight=total,
        line_weights=tuple(line_weights),
        units=tuple(units),
        order_tags=frozenset(order.tags),
        line_tags=frozenset(tags),
        weekday=local.weekday(),
        clock=local.time().replace(tzinfo=None),
        country=country,
        postal_code=normal,
        customer_type=recipient.customer_type if recipient else None,
        sender_id=req.sender.sender_id if req.sender else None,
        unknown_dimensions=unknown,
        physical=physical if lines else None,
        compact_postal=None if normal is None else postal.compact(normal),
    )


def _unit(line: wire.LineView) -> Unit | None:
    """The line's unit size, largest side first; a side not given counts as 0, so a partly known
    size is a lower bound (two 5 m sides never fit a locker) and its volume is 0 (unknown)."""
    d = line.attributes.dimensions if line.attributes else None
    if d is None or line.quantity == 0 or not (d.height or d.width or d.length):
        return None
    big, mid, small = sorted((d.height or 0, d.width or 0, d.length or 0), reverse=True)
    return Unit((big, mid, small), line.quantity)


def _line_total(line: wire.LineView) -> int:
    if line.total_price_including_tax is not None:
        return line.total_price_including_tax
    return (line.unit_price or 0) * line.quantity - (line.total_discount_amount or 0)


def _names(values: frozenset[str]) -> str:
    return ", ".join(sorted(values))


def _in(what: str, value: str | None, allowed: frozenset[str]) -> Answer:
    if value is None:
        return None, f"{what} unknown (rule: one of {_names(allowed)})"
    ok = value in allowed
    return ok, f"{what} {value} {'is' if ok else 'is not'} one of {_names(allowed)}"


def _postal(patterns: Mapping[str, tuple[PostalPattern, ...]], f: Facts, negate: bool) -> Answer:
    if f.country is not None and f.country not in patterns:
        return True, f"no postal rule for {f.country}"
    code = f.compact_postal
    if f.country is None or code is None:
        return None, "postal code unknown"
    hit = next((p.text for p in patterns[f.country] if p.matches(code)), None)
    listed = ", ".join(p.text for p in patterns[f.country])
    # The code itself is left out: reasons reach logs, and a postal code is part of an address.
    reason = f"postal code {'matches ' + hit if hit else 'matches none of ' + listed}"
    return (hit is None if negate else hit is not None), reason


def _at_most(what: str, values: tuple[int, ...], limit: int, unit: str) -> Answer:
    worst = max(values, default=None)
    if worst is None:
        return True, f"{what} unknown, not limited"
    return worst <= limit, f"heaviest {what} {worst} {unit} (max {limit})"


def _bound(what: str, value: int | None, low: int | None, high: int | None) -> Answer:
    if value is None:
        return True, f"{what} unknown, not limited"
    ok = (low is None or value >= low) and (high is None or value <= high)
    rule = f"{low if low is not None else ''}..{high if high is not None else ''}"
    return ok, f"{what} {value} {'within' if ok else 'outside'} {rule}"


def _litres(mm3: int) -> str:
    return f"{mm3 / 1_000_000:.1f} l"


def _dims(f: Facts, limit: tuple[int, int, int]) -> Answer:
    """Every unit fits the box in some orientation, and their summed volume fits its volume.

    Sorting both sides largest first and comparing side by side is exact for "fits in some
    orientation" of one box in another (axis-aligned rotations). The volume test is necessary but
    not sufficient for packing several units: it never refuses a cart that fits, and may accept one
    that does not."""
    text = "x".join(map(str, limit))
    worst = next((u for u in f.units if any(x > m for x, m in zip(u.dims, limit, strict=True))), None)
    if worst is not None:
        return False, f"unit {'x'.join(map(str, worst.dims))} mm does not fit {text} mm in any orientation"
    volume, box = sum(u.volume for u in f.units), limit[0] * limit[1] * limit[2]
    count = sum(u.quantity for u in f.units)
    if volume > box:
        return (
            False,
            f"shipment volume {_litres(volume)} ({count} units) exceeds the box's {_litres(box)} ({text} mm)",
        )
    note = f", size of {f.unknown_dimensions} line(s) unknown" if f.unknown_dimensions else ""
    return True, f"shipment {count} units, {_litres(volume)}, fits {text} mm{note}"


def _unknown_size(f: Facts, policy: str) -> Answer:
    """``unknown_dimensions``: may physical lines without a size go in this option's parcel?"""
    if not f.unknown_dimensions:
        return True, "every physical line has a size"
    ok = policy == "allow"
    return ok, f"size of {f.unknown_dimensions} physical line(s) unknown (unknown_dimensions = {policy})"


def _shipment_weight(f: Facts, limit: int) -> Answer:
    if f.total_weight is None:
        return True, "shipment weight unknown, not limited"
    ok = f.total_weight <= limit
    return (
        ok,
        f"shipment weight {f.total_weight} g {'within' if ok else 'exceeds'} parcel_weight_max {limit} g",
    )


def _physical(f: Facts, wanted: bool) -> Answer:
    if f.physical is None:
        return None, "no order lines: physical goods unknown"
    what = "has physical goods to ship" if f.physical else "has nothing physical to ship"
    return f.physical == wanted, f"cart {what}"


def _tags(what: str, have: frozenset[str], wanted: frozenset[str], negate: bool) -> Answer:
    hit = have & wanted
    if negate:
        return not hit, f"{what} {_names(hit) if hit else 'have none of ' + _names(wanted)}"
    return bool(hit), f"{what} {'include ' + _names(hit) if hit else 'have none of ' + _names(wanted)}"


def _weekday(f: Facts, days: frozenset[int]) -> Answer:
    allowed = frozenset(WEEKDAYS[d] for d in days)
    return _in("weekday", WEEKDAYS[f.weekday], allowed)


_CHECKS: Final[tuple[tuple[str, Callable[[Any, Facts], Answer]], ...]] = (
    ("currencies", lambda v, f: _in("currency", f.currency, v)),
    ("countries", lambda v, f: _in("country", f.country, v)),
    ("postal_codes", lambda v, f: _postal(v, f, negate=False)),
    ("not_postal_codes", lambda v, f: _postal(v, f, negate=True)),
    ("customer_types", lambda v, f: _in("customer type", f.customer_type, v)),
    ("senders", lambda v, f: _in("sender", f.sender_id, v)),
    ("total_weight_min", lambda v, f: _bound("shipment weight (g)", f.total_weight, v, None)),
    ("total_weight_max", lambda v, f: _bound("shipment weight (g)", f.total_weight, None, v)),
    ("physical_goods", lambda v, f: _physical(f, v)),
    ("parcel_weight_max", lambda v, f: _shipment_weight(f, v)),
    ("line_weight_max", lambda v, f: _at_most("line", f.line_weights, v, "g")),
    ("parcel_dimensions_max", lambda v, f: _dims(f, v)),
    ("unknown_dimensions", lambda v, f: _unknown_size(f, v)),
    ("order_total_min", lambda v, f: _bound("order total", f.order_total, v, None)),
    ("order_total_max", lambda v, f: _bound("order total", f.order_total, None, v)),
    ("order_tags", lambda v, f: _tags("order tags", f.order_tags, v, negate=False)),
    ("not_order_tags", lambda v, f: _tags("order tags", f.order_tags, v, negate=True)),
    ("line_tags", lambda v, f: _tags("line tags", f.line_tags, v, negate=False)),
    ("not_line_tags", lambda v, f: _tags("line tags", f.line_tags, v, negate=True)),
    ("weekdays", lambda v, f: _weekday(f, v)),
    (
        "local_time",
        lambda v, f: (
            v.contains(f.clock),
            f"local time {f.clock:%H:%M} {'in' if v.contains(f.clock) else 'outside'} {v}",
        ),
    ),
)


@frozen
class Failure:
    """The condition that hid an option; ``key`` is the catalog key, e.g. ``local_time``."""

    path: str
    key: str
    text: str

    def __str__(self) -> str:
        return f"{self.path}.{self.key}: {self.text}"


def check_group(
    group: Conditions, facts: Facts, path: str, *, skip: frozenset[str] = frozenset()
) -> Failure | None:
    """The first condition of ``group`` that fails (unknown passes), or None when all hold."""
    for key, check, _test, rule in _active(group):
        if key in skip:
            continue
        ok, text = check(rule, facts)
        if ok is False:
            return Failure(path, key, text)
    return None


# The same answers as _CHECKS without the sentences, for the answer path (tests/test_golden.py holds
# the two together: answers come from these, traces from _CHECKS).
def _in_fast(value: str | None, allowed: frozenset[str]) -> bool | None:
    return None if value is None else value in allowed


def _postal_fast(patterns: Mapping[str, tuple[PostalPattern, ...]], f: Facts, negate: bool) -> bool | None:
    if f.country is not None and f.country not in patterns:
        return True
    code = f.compact_postal
    if f.country is None or code is None:
        return None
    hit = any(p.matches(code) for p in patterns[f.country])
    return not hit if negate else hit


def _dims_fast(f: Facts, limit: tuple[int, int, int]) -> bool:
    a, b, c = limit
    volume = 0
    for u in f.units:
        x, y, z = u.dims
        if x > a or y > b or z > c:
            return False
        volume += x * y * z * u.quantity
    return volume <= a * b * c


def _bound_fast(value: int | None, low: int | None, high: int | None) -> bool:
    return value is None or ((low is None or value >= low) and (high is None or value <= high))


_FAST: Final[dict[str, Callable[[Any, Facts], bool | None]]] = {
    "currencies": lambda v, f: _in_fast(f.currency, v),
    "countries": lambda v, f: _in_fast(f.country, v),
    "postal_codes": lambda v, f: _postal_fast(v, f, negate=False),
    "not_postal_codes": lambda v, f: _postal_fast(v, f, negate=True),
    "customer_types": lambda v, f: _in_fast(f.customer_type, v),
    "senders": lambda v, f: _in_fast(f.sender_id, v),
    "total_weight_min": lambda v, f: _bound_fast(f.total_weight, v, None),
    "total_weight_max": lambda v, f: _bound_fast(f.total_weight, None, v),
    "physical_goods": lambda v, f: None if f.physical is None else f.physical == v,
    "parcel_weight_max": lambda v, f: f.total_weight is None or f.total_weight <= v,
    "line_weight_max": lambda v, f: not f.line_weights or max(f.line_weights) <= v,
    "parcel_dimensions_max": lambda v, f: _dims_fast(f, v),
    "unknown_dimensions": lambda v, f: not f.unknown_dimensions or v == "allow",
    "order_total_min": lambda v, f: f.order_total >= v,
    "order_total_max": lambda v, f: f.order_total <= v,
    "order_tags": lambda v, f: not f.order_tags.isdisjoint(v),
    "not_order_tags": lambda v, f: f.order_tags.isdisjoint(v),
    "line_tags": lambda v, f: not f.line_tags.isdisjoint(v),
    "not_line_tags": lambda v, f: f.line_tags.isdisjoint(v),
    "weekdays": lambda v, f: f.weekday in v,
    "local_time": lambda v, f: v.contains(f.clock),
}


def group_holds(group: Conditions, facts: Facts, skip: frozenset[str] = frozenset()) -> bool:
    """Whether no condition of ``group`` fails (unknown passes): ``check_group`` without sentences."""
    for key, _check, test, rule in _active(group):
        if test(rule, facts) is False and key not in skip:
            return False
    return True


def holds(groups: tuple[Conditions, ...], facts: Facts, *, skip: frozenset[str] = frozenset()) -> bool:
    """OR over AND-groups, as ``evaluate`` decides it, without building the failures."""
    if not groups:
        return True
    for group in groups:
        if group_holds(group, facts, skip):
            return True
    return False


_Active = tuple[tuple[str, Callable[[Any, Facts], Answer], Callable[[Any, Facts], bool | None], Any], ...]
_ACTIVE: dict[int, tuple[Conditions, _Active]] = {}


def _active(group: Conditions) -> _Active:
    """The group's set conditions in check order, computed once per compiled group (the entry
    keeps the group alive, so its id is never reused while cached)."""
    hit = _ACTIVE.get(id(group))
    if hit is not None:
        return hit[1]
    if len(_ACTIVE) > 65536:
        _ACTIVE.clear()  # catalogs come and go with loads; stay bounded
    active = tuple(
        (key, check, _FAST[key], getattr(group, key))
        for key, check in _CHECKS
        if getattr(group, key) is not None
    )
    _ACTIVE[id(group)] = (group, active)
    return active


def evaluate(
    groups: tuple[Conditions, ...], facts: Facts, path: str, *, skip: frozenset[str] = frozenset()
) -> tuple[bool, list[Failure]]:
    """OR over AND-groups: (holds, the failure of every group when none holds)."""
    if not groups:
        return True, []
    failures = []
    for i, group in enumerate(groups):
        failure = check_group(group, facts, f"{path}[{i}]" if len(groups) > 1 else path, skip=skip)
        if failure is None:
            return True, []
        failures.append(failure)
    return False, failures
