"""Trading rules: filling market orders, average cost and realized P&L (with properties)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orderproc.common.money import from_cents, from_units
from orderproc.errors import NotionalOutOfRange, OrderTypeNotSupported, ValidationFailed
from orderproc.orders.domain import Holding, OrderType, TradingRules, fill_market_order

RULES = TradingRules(
    taker_fee_bps=25,
    maker_fee_bps=25,
    slippage_bps=0,
    min_notional=Decimal(1),
    max_notional=Decimal(10_000),
)
prices = st.decimals(min_value=Decimal("0.000001"), max_value=Decimal(100_000), places=12)
quantities = st.decimals(min_value=Decimal("0.00000001"), max_value=Decimal(1000), places=8)


def buy(price: str, quantity: str, rules: TradingRules = RULES) -> Holding:
    fill = fill_market_order(
        OrderType.MARKET_BUY, market_price=Decimal(price), rules=rules, quantity=Decimal(quantity)
    )
    return Holding(0, Decimal(0), Decimal(0)).after(fill)


class TestFilling:
    def test_a_buy_rounds_its_cost_up_and_adds_the_fee(self) -> None:
        fill = fill_market_order(
            OrderType.MARKET_BUY, market_price=Decimal("3.333"), rules=RULES, quantity=Decimal("1")
        )
        assert (fill.total_cents, fill.fee_cents) == (334, 1)
        assert fill.cash_delta_cents == -335

    def test_a_sale_rounds_its_proceeds_down(self) -> None:
        fill = fill_market_order(
            OrderType.MARKET_SELL, market_price=Decimal("3.339"), rules=RULES, quantity=Decimal("1")
        )
        assert (fill.total_cents, fill.fee_cents, fill.cash_delta_cents) == (333, 1, 332)

    def test_slippage_moves_the_price_against_the_trader(self) -> None:
        rules = TradingRules(0, 0, 100, Decimal(1), Decimal(10_000))
        bought = fill_market_order(
            OrderType.MARKET_BUY, market_price=Decimal(100), rules=rules, quantity=Decimal(1)
        )
        sold = fill_market_order(
            OrderType.MARKET_SELL, market_price=Decimal(100), rules=rules, quantity=Decimal(1)
        )
        assert (bought.price, sold.price) == (Decimal(101), Decimal(99))

    @given(prices, st.decimals(min_value=1, max_value=10_000, places=2))
    def test_a_notional_buy_never_spends_more_than_asked(
        self, price: Decimal, notional: Decimal
    ) -> None:
        try:
            fill = fill_market_order(
                OrderType.MARKET_BUY, market_price=price, rules=RULES, notional=notional
            )
        except NotionalOutOfRange:
            return
        assert from_cents(fill.total_cents) <= notional

    @pytest.mark.parametrize(("quantity", "price"), [("0.1", "5"), ("2", "5000.01")])
    def test_refuses_a_value_outside_the_bounds(self, quantity: str, price: str) -> None:
        with pytest.raises(NotionalOutOfRange):
            fill_market_order(
                OrderType.MARKET_BUY,
                market_price=Decimal(price),
                rules=RULES,
                quantity=Decimal(quantity),
            )

    def test_resting_types_are_not_available_yet(self) -> None:
        with pytest.raises(OrderTypeNotSupported):
            fill_market_order(
                OrderType.LIMIT_BUY, market_price=Decimal(1), rules=RULES, quantity=Decimal(5)
            )

    def test_a_sale_by_notional_is_refused(self) -> None:
        with pytest.raises(ValidationFailed):
            fill_market_order(
                OrderType.MARKET_SELL, market_price=Decimal(1), rules=RULES, notional=Decimal(5)
            )


class TestAverageCost:
    def test_includes_buy_fees(self) -> None:
        held = buy("100", "2")  # 200.00 + 0.50 fee
        assert held.average_cost == Decimal("100.25")

    def test_a_sale_leaves_the_average_unchanged_and_books_pnl(self) -> None:
        held = buy("100", "2")
        sale = fill_market_order(
            OrderType.MARKET_SELL, market_price=Decimal(110), rules=RULES, quantity=Decimal(1)
        )
        after = held.after(sale)
        assert after.average_cost == held.average_cost
        # proceeds 110.00 - fee 0.28 - average cost 100.25
        assert after.realized_pnl == Decimal("9.47")

    def test_resets_when_the_position_reaches_zero(self) -> None:
        held = buy("100", "2")
        sale = fill_market_order(
            OrderType.MARKET_SELL, market_price=Decimal(90), rules=RULES, quantity=Decimal(2)
        )
        after = held.after(sale)
        assert (after.quantity_units, after.cost_basis, after.average_cost) == (0, 0, 0)

    @given(prices, quantities, st.lists(st.integers(1, 100), min_size=1, max_size=6), prices)
    def test_selling_everything_realizes_exactly_net_proceeds_minus_cost(
        self, price: Decimal, quantity: Decimal, parts: list[int], sell_price: Decimal
    ) -> None:
        """However a position is sold down, the realized P&L sums to what came in minus what
        went out: no cost is lost or counted twice by averaging."""
        rules = TradingRules(25, 25, 0, Decimal(0), Decimal(10**12))
        first = fill_market_order(
            OrderType.MARKET_BUY, market_price=price, rules=rules, quantity=quantity
        )
        held = Holding(0, Decimal(0), Decimal(0)).after(first)
        paid = from_cents(first.total_cents + first.fee_cents)
        received = Decimal(0)
        total_units = held.quantity_units
        sizes = [total_units * p // sum(parts) for p in parts]
        sizes[-1] = total_units - sum(sizes[:-1])
        for size in (s for s in sizes if s > 0):
            sale = fill_market_order(
                OrderType.MARKET_SELL,
                market_price=sell_price,
                rules=rules,
                quantity=from_units(size),
            )
            held = held.after(sale)
            received += from_cents(sale.total_cents - sale.fee_cents)
        assert held.quantity_units == 0
        assert held.realized_pnl == received - paid
