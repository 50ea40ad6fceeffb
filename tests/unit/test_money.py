"""Money rules, by property: exact conversions and rounding that never favours the trader."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orderproc.common.money import (
    PrecisionError,
    fee_for,
    format_money,
    format_price,
    format_quantity,
    from_cents,
    from_units,
    round_cost_up,
    round_proceeds_down,
    to_cents,
    to_units,
)

cents = st.integers(min_value=0, max_value=10**14)
units = st.integers(min_value=0, max_value=2**63 - 1)
amounts = st.decimals(min_value=0, max_value=10**9, places=18, allow_nan=False)


class TestExactConversions:
    @given(cents)
    def test_cents_round_trip_exactly(self, value: int) -> None:
        assert to_cents(from_cents(value)) == value

    @given(units)
    def test_units_round_trip_exactly(self, value: int) -> None:
        assert to_units(from_units(value)) == value

    def test_the_documented_edge_values_round_trip(self) -> None:
        assert to_cents(Decimal("1000000.00")) == 100_000_000
        assert format_money(from_cents(100_000_000)) == "1000000.00"
        assert to_units(Decimal("0.00000001")) == 1
        assert format_quantity(from_units(1)) == "0.00000001"

    @pytest.mark.parametrize("text", ["0.001", "10.005", "1E-3"])
    def test_refuses_cash_with_more_than_two_places(self, text: str) -> None:
        with pytest.raises(PrecisionError):
            to_cents(Decimal(text))

    def test_refuses_quantities_with_more_than_eight_places(self) -> None:
        with pytest.raises(PrecisionError):
            to_units(Decimal("0.000000001"))

    def test_trailing_zeros_are_not_extra_precision(self) -> None:
        assert to_cents(Decimal("5.1000")) == 510

    def test_prices_print_exactly_without_exponents(self) -> None:
        assert format_price(Decimal("0.000001234567890123")) == "0.000001234567890123"
        assert format_price(Decimal("64000")) == "64000.00"
        assert format_price(Decimal("1E-18")) == "0.000000000000000001"
        assert format_price(Decimal("43210.1200000")) == "43210.12"
        assert format_price(Decimal("1E+3")) == "1000.00"
        assert format_price(Decimal("0E-8")) == "0.00"
        # The short cut for most prices (two places or more, no trailing zero), and around it.
        assert format_price(Decimal("5")) == "5.00"
        assert format_price(Decimal("-7")) == "-7.00"
        assert format_price(Decimal("1.5")) == "1.50"
        assert format_price(Decimal("1.25")) == "1.25"
        assert format_price(Decimal("0.555412307312")) == "0.555412307312"
        assert format_price(Decimal("1.5E+3")) == "1500.00"
        assert format_price(Decimal("1.2345E-8")) == "0.000000012345"

    @given(st.integers(-(10**20), 10**20), st.integers(-3, 20))
    def test_prices_print_as_their_normal_form_with_at_least_two_places(
        self, digits: int, places: int
    ) -> None:
        price = Decimal(digits).scaleb(-places)
        whole, _, fraction = format(price.normalize(), "f").partition(".")
        assert format_price(price) == f"{whole}.{fraction.ljust(2, '0')}"


class TestRounding:
    @given(amounts)
    def test_a_cost_is_never_less_than_exact_and_within_a_cent(self, exact: Decimal) -> None:
        charged = round_cost_up(exact)
        assert exact <= charged < exact + Decimal("0.01")
        assert charged == charged.quantize(Decimal("0.01"))

    @given(amounts)
    def test_proceeds_are_never_more_than_exact_and_within_a_cent(self, exact: Decimal) -> None:
        paid = round_proceeds_down(exact)
        assert exact - Decimal("0.01") < paid <= exact

    @given(st.decimals(min_value=0, max_value=10**7, places=2), st.integers(0, 1000))
    def test_a_fee_rounds_up_and_is_proportional(self, notional: Decimal, bps: int) -> None:
        fee = fee_for(notional, basis_points=bps)
        exact = notional * bps / 10_000
        assert exact <= fee < exact + Decimal("0.01")

    def test_a_zero_fee_rate_charges_nothing(self) -> None:
        assert fee_for(Decimal("9999.99"), basis_points=0) == 0
