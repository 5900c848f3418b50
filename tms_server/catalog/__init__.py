"""The shipping catalog and the rule engine: a merchant's shipping offer as data, and its evaluation.

This package owns the catalog format (TOML, ``format = 1``), its strict compilation into immutable
values, and the pure evaluation of (catalog, KSS request, now) into shipping options and reservation
checks. No database, no network: catalogs are compiled once and evaluated in memory.

Layout of a catalog (see ``example.toml`` for a full, commented one):

- top level: ``format``, ``version_label``, ``timezone``; ``[timezones]`` per recipient country;
- ``[[warehouses]]``: ``id``, ``tz``, ``country``, ``cutoffs = { mon = "14:00", ... }``,
  ``closed_dates``, ``open_dates``;
- ``[[pickup_points.LIST]]``: ``id``, ``name``, ``street_address``, ``postal_code``, ``city``,
  ``country``, ``lat``/``lng``, ``[hours]`` (``default``, ``mon``..``sun``, ``dates``);
- ``[postal_areas.SE]``: ``"111" = [lat, lng]`` centres used to put the nearest pickup point first;
- ``[[options]]``: identity, ``product``, ``[[options.when]]`` condition groups, ``[options.price.CUR]``,
  ``[[options.addons]]``, ``pickup_points``, ``[options.timeslots]``, ``[options.delivery]``.
"""

from __future__ import annotations

from importlib import resources

from tms_server.catalog.engine import shipping_options
from tms_server.catalog.explain import Explanation, OptionTrace, explain, explain_text, format_explanation
from tms_server.catalog.model import Catalog
from tms_server.catalog.parse import CatalogError, parse_catalog
from tms_server.catalog.selection import Selection, SelectionError, check_selection

__all__ = [
    "Catalog",
    "CatalogError",
    "Explanation",
    "OptionTrace",
    "Selection",
    "SelectionError",
    "check_selection",
    "example_catalog_text",
    "explain",
    "explain_text",
    "format_explanation",
    "parse_catalog",
    "shipping_options",
]


def example_catalog_text() -> str:
    """The example catalog shipped with the package (a Swedish web shop)."""
    return resources.files("tms_server.catalog").joinpath("example.toml").read_text(encoding="utf-8")
