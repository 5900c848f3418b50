"""The rule engine: (catalog, KSS request, now) -> the ordered list of shipping options.

This module owns which options are offered and in what order. Per option, in this order: it needs a
price in the request's currency; its ``when`` groups must hold (OR of AND-groups; in preview, facts
not known yet pass); a pickup option needs at least one pickup point for the recipient; a timeslot
option needs at least one slot whose cutoff is still ahead. Fallback options are offered only when
nothing else is. Offered options are sorted: the preselected one first (KSS preselects the first),
then ``priority``, then price, then id, so equal inputs always give the same list.

Pure and in memory: no I/O, no clock (``now`` is an argument).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

import attrs
from attrs import frozen

from tms_server import wire
from tms_server.catalog.conditions import TIMING, Facts, evaluate, facts_of, holds
from tms_server.catalog.logistics import (
    Nearby,
    Slot,
    delivery_time,
    location_dict,
    pickup_points,
    recipient_position,
    timeslots,
)
from tms_server.catalog.model import Catalog, Location, Option
from tms_server.catalog.pricing import Price, price_of
from tms_server.geo import inside

__all__ = [
    "Kind",
    "Outcome",
    "evaluate_option",
    "evaluate_options",
    "option_dict",
    "request_facts",
    "shipping_options",
]

Request = wire.RequestView


class Kind(StrEnum):
    """Why the engine offered or hid an option (``Outcome.kind``)."""

    OFFERED = "offered"
    CURRENCY = "currency"  # no price in the request's currency
    CONDITION = "condition"  # a ``when`` condition failed
    TIMING = "timing"  # only a clock condition failed: its cutoff passed
    NO_PICKUP_POINT = "no_pickup_point"  # no pickup point near enough
    NO_TIMESLOT = "no_timeslot"  # no slot can still be reached
    FALLBACK = "fallback"  # a fallback option while others are offered


@frozen
class Outcome:
    """What the engine decided for one option, and why.

    ``kind`` says why (``Kind``).
    """

    option: Option
    offered: bool
    kind: Kind
    reason: str
    price: Price | None = None
    locations: tuple[Location, ...] = ()
    slots: tuple[Slot, ...] = ()
    delivery_time: dict[str, Any] | None = None
    location_times: Mapping[str, dict[str, Any] | None] = attrs.field(factory=dict)
    nearby: Nearby | None = None
    area: dict[str, Any] | None = None


def request_facts(catalog: Catalog, req: Request, now: datetime) -> Facts:
    """Facts with the local clock of the sender's warehouse (the catalog's zone without one)."""
    sender = req.sender.sender_id if req.sender else None
    warehouse = catalog.warehouse(sender)
    tz = warehouse.tz if warehouse else catalog.timezone
    return facts_of(req, now=now, tz=tz, excludes=catalog.order_total_excludes)


def _judge(
    catalog: Catalog, option: Option, facts: Facts, now: datetime, *, explained: bool = True
) -> Outcome | None:
    """The option's outcome; with ``explained`` False (the answer path) a hidden option is None and
    no sentence is built."""
    table = option.prices.get(facts.currency)
    if table is None:
        return (
            Outcome(option, False, Kind.CURRENCY, f"price: no price in {facts.currency}")
            if explained
            else None
        )
    if not explained:
        if not holds(option.when, facts):
            return None
    else:
        ok, failures = evaluate(option.when, facts, "when")
        if not ok:
            timing_only = holds(option.when, facts, skip=TIMING)
            return Outcome(
                option, False, Kind.TIMING if timing_only else Kind.CONDITION, "; ".join(map(str, failures))
            )
    nearby = pickup_points(catalog, option, facts)
    points = nearby.points
    if option.locations is not None and not facts.preview and not points:
        if not explained:
            return None
        return Outcome(
            option, False, Kind.NO_PICKUP_POINT, f"{Kind.NO_PICKUP_POINT}: {nearby.note}", nearby=nearby
        )
    slots = tuple(s for s in timeslots(catalog, option, facts, now) if s.cutoff > now)
    if option.timeslots is not None and not slots:
        if not explained:
            return None
        return Outcome(
            option,
            False,
            Kind.NO_TIMESLOT,
            f"timeslots: no slot in the next {option.timeslots.days} delivery days can still be reached",
        )
    price, area = _with_area(
        catalog, option, facts, price_of(table, facts, facts.currency, explained=explained)
    )
    promise = delivery_time(catalog, option, facts, now, first_slot=slots[0] if slots else None)
    own = {p.id: delivery_time(catalog, option, facts, now, p) for p in points if p.lead_days is not None}
    return Outcome(
        option, True, Kind.OFFERED, "all conditions hold", price, points, slots, promise, own, nearby, area
    )


def _with_area(
    catalog: Catalog, option: Option, facts: Facts, price: Price
) -> tuple[Price, dict[str, Any] | None]:
    """The KSS ``area`` and its price, when the recipient's position lies inside the option's area.

    The area price is added after ``free_above``: it is the zone's own cost (a ferry, a toll),
    shown to the shopper with the area, not part of the option's own price that free_above waives."""
    area, code = option.area, facts.compact_postal
    if area is None or facts.country is None or code is None:
        return price, None
    where = recipient_position(catalog, facts.country, code)
    if where is None or not inside(where.lat, where.lng, area.boundary):
        return price, None
    amount = option.prices[facts.currency].area
    lines = price.lines and (
        *price.lines[:-1],
        f"+ {amount} area {area.type}",
        f"= {price.amount + amount} {facts.currency}",
    )
    shape = [{"lat": lat, "lng": lng} for lat, lng in area.boundary]
    return Price(price.amount + amount, lines, price.free_above), {
        "boundary": shape,
        "price": amount,
        "type": area.type,
    }


def _sort_key(outcome: Outcome) -> tuple[bool, int, int, str]:
    price = outcome.price.amount if outcome.price else 0
    return not outcome.option.preselected, outcome.option.priority, price, outcome.option.id


def evaluate_options(catalog: Catalog, req: Request, now: datetime) -> tuple[Facts, list[Outcome]]:
    """Every option's outcome: offered ones first in display order, then the hidden ones in catalog order."""
    facts = request_facts(catalog, req, now)
    outcomes = [o for option in catalog.options if (o := _judge(catalog, option, facts, now)) is not None]
    regular_offered = any(o.offered and not o.option.fallback for o in outcomes)
    if regular_offered:
        outcomes = [_hidden_fallback(o) if o.offered and o.option.fallback else o for o in outcomes]
    offered = sorted((o for o in outcomes if o.offered), key=_sort_key)
    return facts, offered + [o for o in outcomes if not o.offered]


def evaluate_option(
    catalog: Catalog, req: Request, option_id: str, now: datetime
) -> tuple[Facts, Outcome | None]:
    """``evaluate_options``'s outcome for the one option ``option_id`` (None when the catalog has no
    such option): the others are judged only when it is an offered fallback, to hide it as a
    fallback when a regular option is offered."""
    facts = request_facts(catalog, req, now)
    option = catalog.option(option_id)
    if option is None:
        return facts, None
    outcome = _judge(catalog, option, facts, now)
    assert outcome is not None  # explained: never None
    if (
        outcome.offered
        and option.fallback
        and any(not o.fallback and _judge(catalog, o, facts, now, explained=False) for o in catalog.options)
    ):
        outcome = _hidden_fallback(outcome)
    return facts, outcome


def _hidden_fallback(outcome: Outcome) -> Outcome:
    """An offered fallback option, hidden because a regular option is offered."""
    return attrs.evolve(
        outcome, offered=False, kind=Kind.FALLBACK, reason="fallback: other options are offered"
    )


def _addons(outcome: Outcome, currency: str) -> list[dict[str, Any]]:
    table = outcome.option.prices[currency]
    out = []
    for a in outcome.option.addons:
        addon: dict[str, Any] = {"id": a.id, "type": a.type, "price": table.addons.get(a.id, 0)}
        addon.update(required=a.required, preselected=a.preselected, label=a.label)
        if a.max_length is not None:
            addon["max_length"] = a.max_length
        out.append(addon)
    return out


def option_dict(outcome: Outcome, facts: Facts) -> dict[str, Any]:
    """The KSS shipping option object; only keys that have values. Preview carries no places or slots."""
    o, price = outcome.option, outcome.price
    assert price is not None  # only offered outcomes are turned into options
    table = o.prices[facts.currency]
    out: dict[str, Any] = {
        "id": o.id,
        "name": o.name,
        "carrier": o.carrier,
        "class": o.class_,
        "type": o.type,
    }
    out.update(price=price.amount, tax_rate=o.tax_rate, preview=facts.preview)
    if price.free_above is not None:
        out["free_above"] = price.free_above
    if outcome.delivery_time:
        out["delivery_time"] = outcome.delivery_time
    if o.features:
        out["features"] = [dict(f) for f in o.features]
    if o.addons:
        out["addons"] = _addons(outcome, facts.currency)
    if outcome.area is not None:
        out["area"] = outcome.area
    if outcome.locations and not facts.preview:
        out["locations"] = [
            _location(outcome, loc, table.locations.get(loc.id, 0), facts) for loc in outcome.locations
        ]
    if outcome.slots and not facts.preview:
        out["timeslots"] = [s.as_json(table.timeslots.get(s.template, 0)) for s in outcome.slots]
    return out


def _location(outcome: Outcome, loc: Location, price: int, facts: Facts) -> dict[str, Any]:
    """A pickup point with its promise: the option's, or its own when it has lead days."""
    out = location_dict(loc, price)
    promise = outcome.location_times.get(loc.id, outcome.delivery_time)
    if promise:
        out["delivery_time"] = promise
    return out


def offered_dicts(outcomes: Sequence[Outcome], facts: Facts) -> list[dict[str, Any]]:
    return [option_dict(o, facts) for o in outcomes if o.offered]


def shipping_options(catalog: Catalog, req: wire.RequestView, *, now: datetime) -> list[dict[str, Any]]:
    """The KSS shipping options for ``req`` at ``now``, in display order: ``evaluate_options``'s
    offered ones, computed without the reasons and price steps only the trace shows."""
    facts = request_facts(catalog, req, now)
    offered = [o for option in catalog.options if (o := _judge(catalog, option, facts, now, explained=False))]
    if any(not o.option.fallback for o in offered):
        offered = [o for o in offered if not o.option.fallback]
    offered.sort(key=_sort_key)
    return [option_dict(o, facts) for o in offered]
