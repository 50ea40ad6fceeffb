"""The price port: what orders read prices through. Inventory implements it with an in-memory
cache fed by its ticks (in process; over Redis pub/sub when distributed)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Quote:
    asset_id: str
    name: str
    price: Decimal
    as_of: datetime
    is_active: bool


class PriceSource(Protocol):
    def quote(self, asset_id: str) -> Quote | None:
        """The latest known price of the asset, or None for an unknown asset."""


class PriceCache:
    """Quotes by asset id, replaced whole on each tick (readers never see half a tick)."""

    def __init__(self) -> None:
        self._quotes: dict[str, Quote] = {}

    def quote(self, asset_id: str) -> Quote | None:
        return self._quotes.get(asset_id)

    def newest(self) -> datetime | None:
        """When the newest price was set (by the last tick that moved one); None if none is."""
        return max((quote.as_of for quote in self._quotes.values()), default=None)

    def publish(self, quotes: dict[str, Quote]) -> None:
        self._quotes = quotes
