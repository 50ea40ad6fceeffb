"""Pure trading rules: filling a market order, and what a fill does to a position.

Rounding happens once, here: a buy's cost rounds up to the cent, a sale's proceeds round
down, a fee rounds up. Average cost carries buy fees; a sale leaves it unchanged."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from enum import StrEnum

from orderproc.common.money import (
    EXACT,
    PRICE_STEP,
    QUANTITY_STEP,
    fee_for,
    format_money,
    from_cents,
    from_units,
    round_cost_up,
    round_proceeds_down,
    to_cents,
    to_units,
)
from orderproc.errors import NotionalOutOfRange, OrderTypeNotSupported, ValidationFailed

COST_STEP = Decimal("0.000000000000000001")  # cost basis and P&L carry 18 places


class OrderType(StrEnum):
    MARKET_BUY = "market_buy"
    MARKET_SELL = "market_sell"
    LIMIT_BUY = "limit_buy"
    LIMIT_SELL = "limit_sell"
    STOP_BUY = "stop_buy"
    STOP_SELL = "stop_sell"

    @property
    def is_buy(self) -> bool:
        return self.value.endswith("_buy")


MARKET_TYPES = frozenset({OrderType.MARKET_BUY, OrderType.MARKET_SELL})


@dataclass(frozen=True, slots=True)
class TradingRules:
    """Fees in basis points of the order value: the taker's for an order that fills when it is
    placed (every market order), the maker's for one that rests and fills on a later tick
    (resting orders, when they come)."""

    taker_fee_bps: int
    maker_fee_bps: int
    slippage_bps: int
    min_notional: Decimal
    max_notional: Decimal


@dataclass(frozen=True, slots=True)
class Fill:
    """What a market order moves: `quantity_units` of the asset at `price`, `total_cents` of
    cash for them (cost for a buy, proceeds for a sale) and `fee_cents` on top."""

    is_buy: bool
    quantity_units: int
    price: Decimal
    total_cents: int
    fee_cents: int

    @property
    def cash_delta_cents(self) -> int:
        """The signed change to the cash balance, fee included."""
        if self.is_buy:
            return -(self.total_cents + self.fee_cents)
        return self.total_cents - self.fee_cents

    @property
    def units_delta(self) -> int:
        """The signed change to the position, in 10^-8 units."""
        return self.quantity_units if self.is_buy else -self.quantity_units


def execution_price(market: Decimal, *, is_buy: bool, slippage_bps: int) -> Decimal:
    """The market price moved against the trader by the slippage."""
    factor = Decimal(10_000 + slippage_bps if is_buy else 10_000 - slippage_bps) / 10_000
    # Prices are stored to 18 places; the last place rounds against the trader.
    return EXACT.multiply(market, factor).quantize(
        PRICE_STEP, rounding=ROUND_CEILING if is_buy else ROUND_FLOOR, context=EXACT
    )


def fill_market_order(
    order_type: OrderType,
    *,
    market_price: Decimal,
    rules: TradingRules,
    quantity: Decimal | None = None,
    notional: Decimal | None = None,
) -> Fill:
    if order_type not in MARKET_TYPES:
        raise OrderTypeNotSupported(f"{order_type.value} orders are not available yet")
    is_buy = order_type.is_buy
    price = execution_price(market_price, is_buy=is_buy, slippage_bps=rules.slippage_bps)
    if quantity is None:
        quantity = _quantity_for(notional, price, is_buy=is_buy)
    gross = EXACT.multiply(price, quantity)
    total = round_cost_up(gross) if is_buy else round_proceeds_down(gross)
    _check_notional(total, rules)
    fee = fee_for(total, basis_points=rules.taker_fee_bps)  # a market order takes liquidity
    return Fill(is_buy, to_units(quantity), price, to_cents(total), to_cents(fee))


def _quantity_for(notional: Decimal | None, price: Decimal, *, is_buy: bool) -> Decimal:
    if notional is None:
        raise ValidationFailed("give either quantity or notional")
    if not is_buy:
        raise ValidationFailed("notional orders are for market buys; sell by quantity")
    quantity = EXACT.divide(notional, price).quantize(
        QUANTITY_STEP, rounding=ROUND_FLOOR, context=EXACT
    )
    if quantity <= 0:
        raise NotionalOutOfRange(f"{format_money(notional)} USD buys less than 0.00000001 units")
    return quantity


def _check_notional(total: Decimal, rules: TradingRules) -> None:
    if total < rules.min_notional:
        raise NotionalOutOfRange(
            f"order value {format_money(total)} USD is below the minimum "
            f"{format_money(rules.min_notional)}"
        )
    if total > rules.max_notional:
        raise NotionalOutOfRange(
            f"order value {format_money(total)} USD is above the maximum "
            f"{format_money(rules.max_notional)}"
        )


@dataclass(frozen=True, slots=True)
class Holding:
    """A position's numbers: units held, what they cost (fees included), realized P&L."""

    quantity_units: int
    cost_basis: Decimal
    realized_pnl: Decimal

    @property
    def average_cost(self) -> Decimal:
        if self.quantity_units == 0:
            return Decimal(0)
        return (self.cost_basis / from_units(self.quantity_units)).quantize(
            COST_STEP, context=EXACT
        )

    def after(self, fill: Fill) -> Holding:
        if fill.is_buy:
            paid = from_cents(fill.total_cents + fill.fee_cents)
            return Holding(
                self.quantity_units + fill.quantity_units,
                self.cost_basis + paid,
                self.realized_pnl,
            )
        return self._after_sale(fill)

    def _after_sale(self, fill: Fill) -> Holding:
        left = self.quantity_units - fill.quantity_units
        if left < 0:
            raise ValueError("a sale cannot exceed the quantity held")
        if left == 0:
            cost_sold = self.cost_basis
        else:
            share = EXACT.divide(Decimal(fill.quantity_units), Decimal(self.quantity_units))
            cost_sold = EXACT.multiply(self.cost_basis, share).quantize(COST_STEP, context=EXACT)
        net = from_cents(fill.total_cents - fill.fee_cents)
        return Holding(
            left,
            Decimal(0) if left == 0 else self.cost_basis - cost_sold,
            self.realized_pnl + net - cost_sold,
        )
