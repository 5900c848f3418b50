"""The price of an option for a request, with the lines that explain how it was built.

This module owns the pricing order, which is part of the catalog format:

1. ``base``;
2. the last weight bracket whose ``from`` the total weight reaches replaces it;
3. the last order-total bracket whose ``from`` the order total reaches replaces it again (it is the
   commercial rule, so it wins over the physical one);
4. surcharges whose conditions hold are added (a surcharge whose condition cannot be known yet, such
   as a postal area in preview, is left out: the preview price is a "from" price);
5. at or above ``free_above`` the option price is 0, surcharges included: the shopper was told
   "free above", and a fee after that would break the promise.

Pickup-point, timeslot and addon prices are extras on top, never waived. All integers, minor units.
"""

from __future__ import annotations

from attrs import frozen

from tms_server.catalog.conditions import Facts, group_holds
from tms_server.catalog.model import Bracket, PriceTable

__all__ = ["Price", "price_of"]


@frozen
class Price:
    """An option's price (minor units) and the steps that made it (empty when not asked for)."""

    amount: int
    lines: tuple[str, ...]
    free_above: int | None


def _bracket(brackets: tuple[Bracket, ...], value: int | None) -> Bracket | None:
    if value is None:
        return None
    reached = [b for b in brackets if value >= b.start]
    return reached[-1] if reached else None


def price_of(table: PriceTable, facts: Facts, currency: str, *, explained: bool = True) -> Price:
    """Apply the pricing order above; ``explained`` False leaves ``lines`` empty (the answer path)."""
    amount = table.base
    lines = [f"base {amount} {currency}"] if explained else None
    weight = _bracket(table.weight, facts.total_weight)
    if weight is not None:
        amount = weight.price
        if lines is not None:
            lines.append(f"weight {facts.total_weight} g >= {weight.start} g: {amount}")
    total = _bracket(table.order_total, facts.order_total)
    if total is not None:
        amount = total.price
        if lines is not None:
            lines.append(f"order total {facts.order_total} >= {total.start}: {amount}")
    for surcharge in table.surcharges:
        if group_holds(surcharge.when, facts) and _known(surcharge.when, facts):
            amount += surcharge.amount
            if lines is not None:
                lines.append(f"+ {surcharge.amount} {surcharge.name}")
    if table.free_above is not None and facts.order_total >= table.free_above:
        amount = 0
        if lines is not None:
            lines.append(f"order total {facts.order_total} >= free_above {table.free_above}: free")
    if lines is None:
        return Price(amount, (), table.free_above)
    lines.append(f"= {amount} {currency}")
    return Price(amount, tuple(lines), table.free_above)


def _known(when: object, facts: Facts) -> bool:
    """A postal surcharge applies only once the postal code is known."""
    postal_rule = getattr(when, "postal_codes", None) or getattr(when, "not_postal_codes", None)
    return not (postal_rule and facts.preview)
