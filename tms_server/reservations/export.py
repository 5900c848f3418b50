"""Label export: what a label-printing step needs about each reservation, as CSV or JSON, streamed.

``tms-admin reservations export`` feeds rows from a server-side cursor through ``writer``; nothing
is held in memory but the current row.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import IO, Any

import attrs
import orjson

from tms_server import wire
from tms_server.reservations import operator
from tms_server.reservations.record import to_json

__all__ = ["EXPORT_COLUMNS", "Progress", "export_flat", "export_record", "iso", "writer"]


def iso(moment: datetime | None) -> str:
    """A moment in UTC ISO 8601, to the second (empty for None)."""
    if moment is None:
        return ""
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


# The label fields, in the CSV's column order (a contract for label tools: append, never reorder).
ADDRESS_FIELDS = [f.name for f in attrs.fields(wire.Address)]
RECIPIENT_FIELDS = ["given_name", "family_name", "company_name", "care_of", *ADDRESS_FIELDS, "email", "phone"]
LOCATION_FIELDS = ["street_address", "postal_code", "city", "country"]
EXPORT_COLUMNS = [
    "shipment_id", "merchant", "session_id", "status", "since", "order_id", "option_id", "carrier",
    "product_identifier", "product_name", "addon_identifiers", "addon_texts", "total_weight",
    "location_id", "location_name", *(f"location_{k}" for k in LOCATION_FIELDS),
    "timeslot_id", "timeslot_start", "timeslot_end", *(f"recipient_{k}" for k in RECIPIENT_FIELDS),
    "sender_id", *(f"sender_{k}" for k in ADDRESS_FIELDS), "price", "currency",
]  # fmt: skip


def export_record(r: operator.ExportRow) -> dict[str, Any]:
    """One export row as nested JSON (``--format json``)."""
    res = r.reservation
    sel, order = res.selection, res.request.order
    return {
        "shipment_id": str(r.shipment_id), "merchant": r.merchant, "session_id": res.session_id,
        "status": str(r.status), "since": iso(r.status_at), "order_id": order.id if order else None,
        "option_id": res.option_id, "carrier": res.carrier, "carrier_product": to_json(res.carrier_product),
        "addons": to_json(sel.addons), "total_weight": order.total_weight if order else None,
        "location": to_json(sel.location), "timeslot": to_json(sel.timeslot),
        "recipient": to_json(res.recipient), "sender": to_json(res.request.sender),
        "price": res.price, "currency": res.currency,
    }  # fmt: skip


def export_flat(rec: Mapping[str, Any]) -> dict[str, Any]:
    """One export record as a CSV row (one column per label field)."""
    product, addons = rec["carrier_product"], rec["addons"]
    loc = rec["location"] or {}
    slot = rec["timeslot"] or {}
    recipient = rec["recipient"] or {}
    sender = rec["sender"] or {}
    flat = {k: rec[k] for k in ("shipment_id", "merchant", "session_id", "status", "since", "order_id",
                                "option_id", "carrier", "total_weight", "price", "currency")}  # fmt: skip
    flat |= {
        "product_identifier": product.get("identifier"), "product_name": product.get("name"),
        "addon_identifiers": ";".join(product.get("addon_identifiers") or []),
        "addon_texts": " | ".join(f"{a.get('code') or a.get('id')}: {a['text']}" for a in addons if a.get("text")),
        "location_id": loc.get("id"), "location_name": loc.get("name"),
        "timeslot_id": slot.get("id"), "timeslot_start": slot.get("start"), "timeslot_end": slot.get("end"),
        "sender_id": sender.get("sender_id"),
    }  # fmt: skip
    flat |= {f"location_{k}": (loc.get("address") or {}).get(k) for k in LOCATION_FIELDS}
    flat |= {f"recipient_{k}": recipient.get(k) for k in RECIPIENT_FIELDS}
    flat |= {f"sender_{k}": (sender.get("address") or {}).get(k) for k in ADDRESS_FIELDS}
    return flat


class Progress:
    """A progress bar on stderr, redrawn at most ten times a second."""

    def __init__(self, total: int, out: IO[str]) -> None:
        self.total, self.out, self.done, self.drawn = total, out, 0, 0.0

    def step(self) -> None:
        self.done += 1
        if time.monotonic() - self.drawn >= 0.1:
            self.draw()

    def draw(self) -> None:
        self.drawn = time.monotonic()
        share = self.done / self.total if self.total else 1.0
        bar = "#" * int(share * 30)
        self.out.write(f"\rexporting [{bar:30}] {share:4.0%} {self.done}/{self.total}")
        self.out.flush()

    def finish(self) -> None:
        self.draw()
        self.out.write("\n")


def writer(fmt: str, out: IO[str]) -> Callable[[dict[str, Any] | None, int], None]:
    """A row writer; called with None after the last row to close the document."""
    if fmt == "json":

        def json_row(rec: dict[str, Any] | None, n: int) -> None:
            if rec is None:
                out.write("\n]\n" if n else "[]\n")
            else:
                out.write(("[\n" if n == 0 else ",\n") + orjson.dumps(rec).decode())

        return json_row
    w = csv.DictWriter(out, EXPORT_COLUMNS, lineterminator="\n")
    w.writeheader()

    def csv_row(rec: dict[str, Any] | None, n: int) -> None:
        if rec is not None:
            w.writerow(export_flat(rec))

    return csv_row
