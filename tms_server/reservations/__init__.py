"""Reservations: the one stateful business object, end to end.

A reservation holds a shopper's selected shipping option for one checkout session (KSS calls it a
"shipment" on the wire). This package owns it: ``kss`` the KSS operations (reserve, update, view,
confirm), ``sweep`` expiry, the personal-data erase and nonce pruning, ``operator`` the operators'
queries and changes (list, show, track, confirm, expire, reconcile), ``export`` the label-printing
export. The HTTP and CLI layers only call into it.
"""

from tms_server.reservations.kss import (
    ShipmentNotFound,
    ShipmentRefused,
    ShipmentView,
    confirm,
    parse_id,
    reserve,
    update,
    view,
)
from tms_server.reservations.record import STATUSES, Reservation, Status

__all__ = [
    "STATUSES",
    "Reservation",
    "ShipmentNotFound",
    "ShipmentRefused",
    "ShipmentView",
    "Status",
    "confirm",
    "parse_id",
    "reserve",
    "update",
    "view",
]
