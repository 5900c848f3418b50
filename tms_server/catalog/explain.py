"""``catalog explain``: for every option of a catalog, offered or hidden, what decided it, and how
its price was built.

This module owns the trace and its text form. It reuses the engine's own outcomes, so what it says is
what ``/shippingoptions`` does, never a second implementation that could drift.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from attrs import frozen

from tms_server import wire
from tms_server.catalog.conditions import Facts
from tms_server.catalog.engine import Outcome, evaluate_options
from tms_server.catalog.logistics import recipient_tz
from tms_server.catalog.model import Catalog
from tms_server.delivery_time import render

__all__ = ["Explanation", "OptionTrace", "explain", "explain_text", "explanation_of", "format_explanation"]


@frozen
class OptionTrace:
    """One option's verdict."""

    option_id: str
    name: str
    offered: bool
    decided_by: str
    price: int | None
    price_lines: tuple[str, ...]
    notes: tuple[str, ...] = ()


@frozen
class Explanation:
    """The whole trace: offered options in display order, then the hidden ones in catalog order."""

    header: tuple[str, ...]
    preview: bool
    options: tuple[OptionTrace, ...]


def _facts_lines(catalog: Catalog, facts: Facts, now: datetime, redact: bool) -> tuple[str, ...]:
    code = "(postal code withheld)" if redact and facts.postal_code else facts.postal_code
    place = f"{facts.country or '?'} {code or '(postal code unknown)'}"
    weight = "unknown" if facts.total_weight is None else f"{facts.total_weight} g"
    return (
        f"catalog {catalog.version_label!r} (sha256 {catalog.digest[:12]}), "
        f"now {now.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}",
        f"request: {facts.currency}, order total {facts.order_total}, weight {weight}, to {place}, "
        f"customer {facts.customer_type or '?'}, sender {facts.sender_id or '?'}",
        f"tags: order [{', '.join(sorted(facts.order_tags))}], lines [{', '.join(sorted(facts.line_tags))}]; "
        f"local time {facts.clock:%H:%M} {('mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun')[facts.weekday]}",
    )


def _notes(
    catalog: Catalog, outcome: Outcome, facts: Facts, now: datetime, locale: str, redact: bool
) -> tuple[str, ...]:
    """What a person checks next: the promise in words, the pickup points (with distances), the
    first slot. ``redact`` (for logs) leaves out everything that would locate the recipient: point
    ids and distances from named, public places pin down a postal code."""
    notes = []
    nearby = outcome.nearby
    if not outcome.offered:
        if nearby is not None and nearby.nearest_km is not None and not redact:
            notes.append(f"nearest point: {nearby.nearest_km} km away")
        return tuple(notes)
    if outcome.delivery_time:
        tz = recipient_tz(catalog, facts.country)
        notes.append(
            f"delivery: {render(outcome.delivery_time, now=now, tz=tz, locale=locale) or '(nothing to say)'}"
        )
    if outcome.locations and not facts.preview:
        if redact:
            notes.append(f"pickup points: {len(outcome.locations)} offered (withheld from logs)")
        else:
            km = nearby.km if nearby else {}
            listed = ", ".join(
                f"{loc.id} ({km[loc.id]:.1f} km)" if loc.id in km else loc.id for loc in outcome.locations
            )
            how = f" [{nearby.note}]" if nearby and nearby.note else ""
            notes.append(f"pickup points: {listed}{how}")
    if outcome.area is not None:
        notes.append(f"area: recipient inside {outcome.area['type']} (+{outcome.area['price']})")
    if outcome.slots and not facts.preview:
        notes.append(f"timeslots: {len(outcome.slots)}, first {outcome.slots[0].id}")
    return tuple(notes)


def explain(
    catalog: Catalog,
    req: wire.RequestView,
    *,
    now: datetime,
    redact: bool = False,
) -> Explanation:
    """Trace the engine's decision for every option of ``catalog``; ``redact`` leaves the
    recipient's postal code out (for logs, where no part of an address belongs)."""
    facts, outcomes = evaluate_options(catalog, req, now)
    return explanation_of(catalog, facts, outcomes, now=now, locale=req.locale or "en", redact=redact)


def explanation_of(
    catalog: Catalog,
    facts: Facts,
    outcomes: Sequence[Outcome],
    *,
    now: datetime,
    locale: str = "en",
    redact: bool = False,
) -> Explanation:
    """``explain`` of outcomes already evaluated (``evaluate_options``), for a caller that needs
    both: the same trace, the engine run once."""
    traces = tuple(
        OptionTrace(
            option_id=o.option.id,
            name=o.option.name,
            offered=o.offered,
            decided_by=o.reason,
            price=o.price.amount if o.price else None,
            price_lines=o.price.lines if o.price else (),
            notes=_notes(catalog, o, facts, now, locale, redact),
        )
        for o in outcomes
    )
    return Explanation(_facts_lines(catalog, facts, now, redact), facts.preview, traces)


def format_explanation(e: Explanation) -> str:
    """The text ``tms-admin catalog explain`` prints."""
    lines = [*e.header, f"preview: {'yes (postal code or country not known yet)' if e.preview else 'no'}", ""]
    rank = 0
    for t in e.options:
        if t.offered:
            rank += 1
        mark, verdict = (f"#{rank}", "OFFERED") if t.offered else ("--", "HIDDEN")
        lines.append(f"{mark} {t.option_id} {t.name!r}: {verdict}")
        lines.append(f"    decided by: {t.decided_by}")
        if t.price_lines:
            lines.append(f"    price: {'; '.join(t.price_lines)}")
        lines.extend(f"    {note}" for note in t.notes)
    return "\n".join(lines) + "\n"


def explain_text(catalog: Catalog, request_dict: dict[str, Any], *, now: datetime) -> str:
    """Explain a raw JSON request (a /shippingoptions or /shipment body); WireError when malformed."""
    req = wire.parse(request_dict, wire.ShippingOptionsRequest)
    return format_explanation(explain(catalog, req, now=now))
