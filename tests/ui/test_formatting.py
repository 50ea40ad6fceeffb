"""What the pages show for money, prices and quantities, and the request the order ticket makes
(no browser). The ticket's estimate is the API's: tests/api/test_order_estimate.py."""

from __future__ import annotations

from decimal import Decimal

import pytest

from orderproc.webui.formatting import money, percent, price, quantity, tone
from orderproc.webui.ticket import TicketInvalid, order_body, parse_ticket, shortfall

pytestmark = pytest.mark.ui


class TestFormatting:
    @pytest.mark.parametrize(
        ("value", "shown"),
        [("1000.00", "$1,000.00"), ("-3.1", "\u2212$3.10"), ("0.004", "$0.00"), (None, "—")],
    )
    def test_money_is_grouped_with_cents_and_a_true_minus(self, value: str, shown: str) -> None:
        assert money(value) == shown

    def test_gains_can_carry_a_plus(self) -> None:
        assert money("12.5", plus=True) == "+$12.50"

    def test_small_prices_keep_four_significant_digits(self) -> None:
        assert price("0.0000123456") == "$0.00001235"
        assert price("51616.3230477") == "$51,616.32"

    def test_quantities_drop_trailing_zeros(self) -> None:
        assert quantity("0.05000000") == "0.05"
        assert quantity("1250") == "1,250"

    def test_percent_and_tone(self) -> None:
        assert percent("0.13295") == "+0.13%"
        assert tone("-0.001") == "flat"
        assert tone("-0.5") == "down"


class TestTicket:
    def test_a_sale_by_amount_becomes_a_quantity(self) -> None:
        ticket = parse_ticket("sell", "amount", "100")
        body = order_body(ticket, "ETH", bid=Decimal("3000"))
        assert body == {"order_type": "market_sell", "asset_id": "ETH", "quantity": "0.03333333"}

    def test_a_buy_by_amount_is_a_notional_order(self) -> None:
        body = order_body(parse_ticket("buy", "amount", "50"), "BTC", bid=Decimal("1"))
        assert body == {"order_type": "market_buy", "asset_id": "BTC", "notional": "50"}

    def test_an_order_by_quantity_asks_for_that_quantity(self) -> None:
        ticket = parse_ticket("sell", "quantity", "0.333")
        body = order_body(ticket, "SOL", bid=Decimal("150"))
        assert body == {"order_type": "market_sell", "asset_id": "SOL", "quantity": "0.333"}

    def test_a_sale_worth_less_than_one_unit_step_is_explained(self) -> None:
        ticket = parse_ticket("sell", "amount", "0.01")
        with pytest.raises(TicketInvalid, match="less than the smallest unit"):
            order_body(ticket, "BTC", bid=Decimal("10000000"))

    def test_a_shortfall_is_said_in_the_words_of_the_refused_order(self) -> None:
        reason = {"code": "INSUFFICIENT_FUNDS", "detail": "the order needs 10.03 USD with fees"}
        assert shortfall({"sufficient": False, "reason": reason}) == (
            "You don't have enough cash available for this."
        )
        assert shortfall({"sufficient": True, "reason": None}) is None

    @pytest.mark.parametrize(
        ("mode", "raw", "message"),
        [
            ("amount", "", "Enter an amount."),
            ("quantity", "abc", "Enter a number, like 100 or 0.5."),
            ("amount", "-5", "Enter a number above zero."),
            ("amount", "1.005", "Use at most 2 decimal places."),
            ("quantity", "0.000000001", "Use at most 8 decimal places."),
        ],
    )
    def test_bad_input_is_explained(self, mode: str, raw: str, message: str) -> None:
        with pytest.raises(TicketInvalid, match=message):
            parse_ticket("buy", mode, raw)
