"""Reservation checks: is the shopper's selected option still offered for this cart and address now?

This module owns the answer to ``POST/PUT /shipment`` (apart from storage). Order, as PROTOCOL.md
says: the address (``shipping_address_invalid`` wins), then the option (``shipping_option_not_available``
or ``cutoff_time_expired``), then the pickup point, timeslot and addons. The engine is re-run for the
reservation request, so a reservation can only hold what ``/shippingoptions`` would offer now.

Decisions: a pickup option reserved without a location gets the first offered pickup point, and a
timeslot option without a timeslot the first open slot (what KSS shows preselected). The price KSS
echoes is not compared: the engine's price is stored, so a later dispute can see what we computed.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from attrs import frozen

from tms_server import postal, wire
from tms_server.catalog.conditions import Facts
from tms_server.catalog.engine import Kind, Outcome, evaluate_option, option_dict
from tms_server.catalog.logistics import SLOT_ID, Slot, location_dict, timeslots
from tms_server.catalog.model import Addon, Catalog, Option

__all__ = ["Selection", "SelectionError", "check_selection"]

NOT_AVAILABLE = "shipping_option_not_available"
EXPIRED = "cutoff_time_expired"
ADDRESS = "shipping_address_invalid"


class SelectionError(Exception):
    """The reservation is refused; ``reason`` is the KSS failure_reason, ``detail`` is for logs."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@frozen
class Selection:
    """A reservable selection with the carrier codes the catalog maps it to."""

    option_id: str
    carrier: str
    carrier_product: dict[str, Any]
    price: int
    option: dict[str, Any]
    location: dict[str, Any] | None
    timeslot: dict[str, Any] | None
    addons: list[dict[str, Any]]


def _check_address(catalog: Catalog, req: wire.ShipmentView) -> None:
    r = req.recipient
    if r is None or not r.country or not r.postal_code:
        raise SelectionError(ADDRESS, "recipient country and postal_code are required")
    if postal.normalise(r.country, r.postal_code) is None:
        raise SelectionError(
            ADDRESS,
            # The value itself is personal data and this detail is logged: name the field only.
            f"recipient.postal_code is not a valid {r.country.upper()} postal code",
        )
    option = catalog.option(req.selected_shipping_option.id)
    missing = [field for field in option.requires if not getattr(r, field)] if option else []
    if missing:
        raise SelectionError(
            ADDRESS, f"recipient: option {option.id if option else ''} needs {', '.join(missing)}"
        )


def _offered(catalog: Catalog, req: wire.ShipmentView, now: datetime) -> tuple[Outcome, Facts]:
    selected = req.selected_shipping_option
    facts, outcome = evaluate_option(catalog, req, selected.id, now)
    if outcome is None:
        raise SelectionError(
            NOT_AVAILABLE, f"option {selected.id!r} is not in catalog {catalog.version_label}"
        )
    if not outcome.offered:
        if outcome.kind == Kind.NO_TIMESLOT and selected.timeslot is not None:
            _check_timeslot(catalog, outcome, facts, req, now)  # names the expired slot
        reason = EXPIRED if outcome.kind in (Kind.TIMING, Kind.NO_TIMESLOT) else NOT_AVAILABLE
        raise SelectionError(reason, f"option {selected.id!r}: {outcome.reason}")
    return outcome, facts


def _location(outcome: Outcome, req: wire.ShipmentView) -> dict[str, Any] | None:
    if outcome.option.locations is None:
        return None
    chosen = req.selected_shipping_option.location
    loc = (
        outcome.locations[0]
        if chosen is None
        else next((p for p in outcome.locations if p.id == chosen.id), None)
    )
    if loc is None:
        raise SelectionError(
            NOT_AVAILABLE, f"pickup point {chosen.id if chosen else ''!r} is not offered for this address"
        )
    return location_dict(loc, outcome.option.prices[req.currency].locations.get(loc.id, 0))


def _slot_day(slot_id: str) -> date | None:
    match = SLOT_ID.match(slot_id)
    try:
        return date.fromisoformat(match.group("day")) if match else None
    except ValueError:
        return None


def _check_timeslot(
    catalog: Catalog, outcome: Outcome, facts: Facts, req: wire.ShipmentView, now: datetime
) -> Slot | None:
    option = outcome.option
    if option.timeslots is None:
        return None
    chosen = req.selected_shipping_option.timeslot
    if chosen is None:
        return outcome.slots[0] if outcome.slots else None
    day = _slot_day(chosen.id)
    # Regenerate from a week back so a slot that was offered and has now passed is recognised as expired.
    every = timeslots(catalog, option, facts, now, horizon_days=7)
    slot = next((s for s in every if s.id == chosen.id), None)
    if slot is None or day is None:
        raise SelectionError(NOT_AVAILABLE, f"timeslot {chosen.id!r} is not offered by {option.id}")
    if slot.cutoff <= now:
        raise SelectionError(
            EXPIRED, f"timeslot {chosen.id!r}: cutoff {slot.cutoff:%Y-%m-%d %H:%M} UTC has passed"
        )
    return slot


def _addons(option: Option, req: wire.ShipmentView) -> list[tuple[Addon, str | None]]:
    known = {a.id: a for a in option.addons}
    chosen: list[tuple[Addon, str | None]] = []
    for i, sel in enumerate(req.selected_shipping_option.addons):
        addon = known.get(sel.id)
        if addon is None:
            raise SelectionError(NOT_AVAILABLE, f"addon {sel.id!r} is not offered by {option.id}")
        data = sel.data or wire.AddonData()
        text = data.text
        if addon.max_length is not None and text is not None and len(text) > addon.max_length:
            message = (
                f"selected_shipping_option.addons[{i}].data.text: longer than max_length {addon.max_length}"
            )
            raise SelectionError(message, f"addon {addon.id}: {len(text)} characters")
        if data.selected is not False:
            chosen.append((addon, text))
    for addon in option.addons:
        if addon.required and addon.id not in {a.id for a, _ in chosen}:
            message = f"selected_shipping_option.addons: required addon {addon.id!r} is not selected"
            raise SelectionError(message, f"option {option.id} requires addon {addon.id}")
    return chosen


def check_selection(catalog: Catalog, req: wire.ShipmentView, *, now: datetime) -> Selection:
    """Re-run the engine for a reservation; raise SelectionError with the KSS failure_reason."""
    _check_address(catalog, req)
    outcome, facts = _offered(catalog, req, now)
    option, table = outcome.option, outcome.option.prices[req.currency]
    location = _location(outcome, req)
    slot = _check_timeslot(catalog, outcome, facts, req, now)
    addons = _addons(option, req)
    timeslot = slot.as_json(table.timeslots.get(slot.template, 0)) if slot else None
    addon_dicts: list[dict[str, Any]] = [
        {"id": a.id, "type": a.type, "code": a.code, "price": table.addons.get(a.id, 0)}
        | ({"text": text} if text is not None else {})
        for a, text in addons
    ]
    assert outcome.price is not None
    total = outcome.price.amount + sum(table.addons.get(a.id, 0) for a, _ in addons)
    total += (location or {}).get("price", 0) + (timeslot or {}).get("price", 0)
    product = {
        "identifier": option.product.identifier,
        "name": option.product.name,
        "addon_identifiers": [a.code for a, _ in addons],
    }
    return Selection(
        option.id,
        option.carrier,
        product,
        total,
        option_dict(outcome, facts),
        location,
        timeslot,
        addon_dicts,
    )
