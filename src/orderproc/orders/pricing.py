"""A market order priced against the market and the account as they stand: the one step that
placing an order and estimating one both take, so an estimate is what the fill does."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from orderproc.common.money import format_money, format_quantity, from_cents, from_units
from orderproc.common.prices import PriceSource, QuoteView
from orderproc.common.storage.records import AccountRecord, PositionRecord
from orderproc.errors import (
    AssetInactive,
    AssetNotFound,
    BusinessRuleViolation,
    InsufficientFunds,
    InsufficientHoldings,
    PositionLimitExceeded,
    StalePrice,
)
from orderproc.orders.domain import Fill, OrderType

# Quantities are stored as signed 64-bit integers of 10^-8 units (about 92 billion coins).
MAX_POSITION_UNITS = 2**63 - 1


def tradeable_quote(
    asset_id: str, *, prices: PriceSource, stale_after: timedelta, now: datetime
) -> QuoteView:
    """The asset's quote if it can be traded on now; unknown, inactive and stale refuse (a
    quote frozen by a sandbox admin's pause is never stale: its age is on purpose)."""
    quote = prices.quote(asset_id)
    if quote is None:
        raise AssetNotFound(f"no asset {asset_id}")
    if not quote.is_active:
        raise AssetInactive(f"{asset_id} is not tradeable now")
    if not quote.frozen and now - quote.as_of > stale_after:
        raise StalePrice(f"the last {asset_id} price is from {quote.as_of:%Y-%m-%d %H:%M:%S} UTC")
    return quote


def market_price(quote: QuoteView, order_type: OrderType) -> Decimal:
    """Where a market order meets the market: a buy at the ask, a sale at the bid (slippage,
    if set, then moves it further against the trader)."""
    return quote.ask if order_type.is_buy else quote.bid


@dataclass(frozen=True, slots=True)
class PricedOrder:
    """What a market order would move (`fill`, at `quote`) and the account it would move."""

    quote: QuoteView
    fill: Fill
    account: AccountRecord
    position: PositionRecord | None

    @property
    def available_units(self) -> int:
        return self.position.available_units if self.position else 0

    def refusal(self) -> BusinessRuleViolation | None:
        """Why the account cannot take this fill (funds, holdings, the position limit), or
        None when it can."""
        fill, available_cents = self.fill, self.account.available_cents
        if fill.is_buy and -fill.cash_delta_cents > available_cents:
            return InsufficientFunds(
                f"the order needs {_usd(-fill.cash_delta_cents)} USD with fees; "
                f"{_usd(available_cents)} USD is available"
            )
        if not fill.is_buy and fill.quantity_units > self.available_units:
            return InsufficientHoldings(f"available quantity is {_qty(self.available_units)}")
        held = self.position.quantity_units if self.position else 0
        if held + fill.units_delta > MAX_POSITION_UNITS:
            return PositionLimitExceeded(
                f"a position holds at most {_qty(MAX_POSITION_UNITS)} units of one asset"
            )
        return None

    @property
    def available_cents_after(self) -> int:
        return self.account.available_cents + self.fill.cash_delta_cents

    @property
    def available_units_after(self) -> int:
        return self.available_units + self.fill.units_delta


def _usd(cents: int) -> str:
    return format_money(from_cents(cents))


def _qty(units: int) -> str:
    return format_quantity(from_units(units))
