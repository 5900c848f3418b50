"""What each server process keeps in memory: signing keys, merchants and their compiled catalogs.

``/shippingoptions`` must be fast and must keep answering while the database is away, so it never
touches the database: a refresher polls the (small) served-catalog list every
``TMS_REFRESH_INTERVAL`` seconds and compiles only catalogs whose version changed. A token signed
by a key this process has not seen yet, or a merchant added seconds ago, triggers an early refresh.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

from attrs import define, frozen

from tms_server import auth, catalog_store, wire
from tms_server.catalog import Catalog, CatalogError, parse_catalog, shipping_options
from tms_server.config import Config
from tms_server.db import Database

log = logging.getLogger(__name__)


@frozen
class MerchantState:
    """One merchant as the request path sees it."""

    merchant_id: int
    identifier: str
    active: bool
    catalog_id: int | None
    catalog: Catalog | None


@define
class Runtime:
    """The in-memory state of one server process."""

    config: Config
    keyring: auth.KeyRing
    merchants: dict[int, MerchantState]
    last_refresh: float = 0.0
    last_error: str | None = None
    _lock: asyncio.Lock | None = None

    @classmethod
    def create(cls, config: Config) -> Runtime:
        """Empty state for ``config``; call ``refresh`` before serving."""
        ring = auth.KeyRing(issuer=config.token_issuer, audience=config.token_audience, ttl=config.token_ttl)
        return cls(config=config, keyring=ring, merchants={})

    async def refresh(self, db: Database) -> None:
        """Reload signing keys and the served catalogs; compile what changed."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock, db.connection() as conn:
            keys, current = await auth.load_signing_keys(conn, self.config.token_ttl)
            served = await catalog_store.served(conn)
            sources = {
                s.catalog_id: await catalog_store.source(conn, s.catalog_id)
                for s in served
                if s.catalog_id is not None and not self._has(s.merchant_id, s.catalog_id)
            }
        self.keyring.update(keys, current)
        self.merchants = {s.merchant_id: self._state(s, sources) for s in served}
        self.last_refresh = time.monotonic()
        self.last_error = None

    def _has(self, merchant_id: int, catalog_id: int) -> bool:
        old = self.merchants.get(merchant_id)
        return old is not None and old.catalog_id == catalog_id and old.catalog is not None

    def _state(self, s: catalog_store.ServedCatalog, sources: dict[int, str]) -> MerchantState:
        catalog = None
        if s.catalog_id is not None:
            if s.catalog_id in sources:
                catalog = _compile(s.identifier, sources[s.catalog_id])
            else:
                catalog = self.merchants[s.merchant_id].catalog
        return MerchantState(s.merchant_id, s.identifier, s.active, s.catalog_id, catalog)

    async def refresh_soon(self, db: Database, min_age: float = 0.5) -> bool:
        """Refresh now unless that happened less than ``min_age`` s ago; False when it could not."""
        if time.monotonic() - self.last_refresh < min_age:
            return False
        if self._lock is not None and self._lock.locked():
            return False  # a refresh is under way (maybe waiting on a slow database): do not queue up
        try:
            await self.refresh(db)
        except Exception as exc:  # a failed early refresh must not fail the request that asked
            self.last_error = f"{type(exc).__name__}: {exc}"
            return False
        return True


def _compile(identifier: str, source: str) -> Catalog | None:
    try:
        catalog = parse_catalog(source, source=f"catalog of {identifier}")
    except CatalogError as exc:
        # Loads are validated first, so this only happens when the format got stricter in an upgrade.
        log.error("catalog of merchant %s no longer compiles: %s", identifier, exc)
        return None
    warm_up(catalog)
    return catalog


def warm_up(catalog: Catalog) -> None:
    """Evaluate once per warehouse country and currency, so the first shopper does not pay for
    loading holiday tables and locale data (tens of milliseconds)."""
    countries = {w.country for w in catalog.warehouses} or {"SE"}
    currencies = {c for o in catalog.options for c in o.prices}
    now = datetime.now(UTC)
    for country in sorted(countries)[:5]:
        for currency in sorted(currencies)[:5]:
            req = wire.ShippingOptionsRequest(
                session_id="warm-up", currency=currency, order=wire.Order(total_amount=0),
                recipient=wire.Recipient(country=country),
            )  # fmt: skip
            try:
                shipping_options(catalog, req, now=now)
            except Exception:  # a warm-up must never stop a catalog from being served
                log.debug("warm-up of %s/%s failed", country, currency, exc_info=True)
