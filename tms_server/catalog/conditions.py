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
from tms_server.catalog.model import WEEKDAYS, Conditions, PostalPattern

__all__ = ["TIMING", "Facts", "Failure", "evaluate", "facts_of"]

# Conditions on the clock: an option hidden only by these has passed its cutoff.
TIMING: Final = frozenset({"weekdays", "local_time"})

Answer = tuple[bool | None, str]


@frozen
class Facts:
    """What the rules look at, extracted once per request."""

    currency: str
    order_total: int
    total_weight: int | None
    unit_weights: tuple[int, ...]
    line_weights: tuple[int, ...]
    dimensions: tuple[tuple[int, int, int], ...]
    order_tags: frozenset[str]
    line_tags: frozenset[str]
    weekday: int
    clock: time
    country: str | None = None
    postal_code: str | None = None  # national display form, only when valid for the country
    customer_type: str | None = None
    sender_id: str | None = None

    @property
    def preview(self) -> bool:
        return self.country is None or self.postal_code is None

    @property
    def compact_postal(self) -> str | None:
        return None if self.postal_code is None else postal.compact(self.postal_code)


def facts_of(req: wire.ShippingOptionsRequest | wire.ShipmentRequest, *, now: datetime, tz: str) -> Facts:
    """Extract the facts; weights fall back to the lines when total_weight is absent."""
    lines = req.order.lines
    attrs_ = [line.attributes for line in lines]
    units = [
        (a.weight, line.quantity) for a, line in zip(attrs_, lines, strict=True) if a and a.weight is not None
    ]
    dims = [a.dimensions for a in attrs_ if a and a.dimensions]
    total = req.order.total_weight
    if total is None and units:
        total = sum(w * q for w, q in units)
    recipient = req.recipient
    country = recipient.country.upper() if recipient and recipient.country else None
    code = recipient.postal_code if recipient else None
    local = now.astimezone(ZoneInfo(tz))
    return Facts(
        currency=req.currency,
        order_total=req.order.total_amount,
        total_weight=total,
        unit_weights=tuple(w for w, _ in units),
        line_weights=tuple(w * q for w, q in units),
        dimensions=tuple(_sorted_dims(d) for d in dims),
        order_tags=frozenset(req.order.tags),
        line_tags=frozenset(tag for a in attrs_ if a for tag in a.tags),
        weekday=local.weekday(),
        clock=local.time().replace(tzinfo=None),
        country=country,
        postal_code=postal.normalise(country, code) if country and code else None,
        customer_type=recipient.customer_type if recipient else None,
        sender_id=req.sender.sender_id if req.sender else None,
    )


def _sorted_dims(d: wire.Dimensions) -> tuple[int, int, int]:
    big, mid, small = sorted((d.height or 0, d.width or 0, d.length or 0), reverse=True)
    return big, mid, small


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


def _dims(f: Facts, limit: tuple[int, int, int]) -> Answer:
    too_big = [d for d in f.dimensions if any(x > m for x, m in zip(d, limit, strict=True))]
    text = "x".join(map(str, limit))
    if too_big:
        return False, f"parcel {'x'.join(map(str, too_big[0]))} mm exceeds {text} mm"
    return True, f"all parcels within {text} mm"


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
    ("total_weight_min", lambda v, f: _bound("total weight (g)", f.total_weight, v, None)),
    ("total_weight_max", lambda v, f: _bound("total weight (g)", f.total_weight, None, v)),
    ("parcel_weight_max", lambda v, f: _at_most("parcel", f.unit_weights, v, "g")),
    ("line_weight_max", lambda v, f: _at_most("line", f.line_weights, v, "g")),
    ("parcel_dimensions_max", lambda v, f: _dims(f, v)),
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
    for key, check in _CHECKS:
        rule = getattr(group, key)
        if rule is None or key in skip:
            continue
        ok, text = check(rule, facts)
        if ok is False:
            return Failure(path, key, text)
    return None


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
