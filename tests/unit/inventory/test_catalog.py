from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orderproc.common.prices import PriceCache
from orderproc.common.quotes import bid_ask
from orderproc.errors import AssetNotFound, ValidationFailed
from orderproc.inventory.domain import (
    ASSET_ID_PATTERN,
    CATEGORIES,
    find_asset,
    load_snapshot,
    normalize_asset_id,
    read_snapshot,
)
from orderproc.inventory.pricefeed import round_price
from orderproc.inventory.service import Catalog


class TestSnapshot:
    def test_holds_about_one_hundred_assets_with_unique_ids(self) -> None:
        assets = load_snapshot()
        assert 95 <= len(assets) <= 110
        assert len({asset.asset_id for asset in assets}) == len(assets)

    def test_every_asset_has_valid_fields(self) -> None:
        for asset in load_snapshot():
            assert ASSET_ID_PATTERN.fullmatch(asset.asset_id)
            assert asset.asset_id == asset.symbol.upper()
            assert asset.category in CATEGORIES
            assert asset.name
            assert asset.description.endswith(".")
            assert asset.image.startswith("https://assets.coingecko.com/")
            assert asset.price_usd > 0
            assert asset.market_cap_rank is not None
            assert asset.market_cap_rank > 0
            assert asset.last_updated.tzinfo is UTC
            assert asset.is_active

    def test_marks_the_unsourced_fields_as_illustrative(self) -> None:
        for asset in load_snapshot():
            assert set(asset.illustrative) == {"category", "description"}

    def test_keeps_the_source_digits_exactly(self) -> None:
        by_id = {asset.asset_id: asset for asset in load_snapshot()}
        assert by_id["BTC"].price_usd == Decimal("51618")
        assert by_id["SATS"].price_usd == Decimal("0.000000517785")
        assert by_id["SHIB"].atl == Decimal("0.000000000056366")
        assert by_id["ETH"].max_supply is None

    def test_cites_its_source_and_as_of_date(self) -> None:
        snapshot = read_snapshot()
        assert snapshot.source["repository"] == "Adil-9/api.coingecko"
        assert snapshot.as_of.date().isoformat() == "2024-02-18"
        assert "illustrative" in snapshot.note

    def test_covers_the_categories_the_simulator_treats_apart(self) -> None:
        categories = {asset.category for asset in load_snapshot()}
        assert {"major", "stablecoin", "meme"} <= categories

    def test_returns_a_fresh_list_each_time(self) -> None:
        first = load_snapshot()
        first.clear()
        assert load_snapshot()


class TestAssetIds:
    @pytest.mark.parametrize(
        ("raw", "expected"),
        [("btc", "BTC"), (" Eth ", "ETH"), ("1INCH", "1INCH"), ("a" * 15, "A" * 15)],
    )
    def test_upper_cases_valid_ids(self, raw: str, expected: str) -> None:
        assert normalize_asset_id(raw) == expected

    @pytest.mark.parametrize("raw", ["", "BT-C", "a" * 16, "ÉTH", "BTC/USD", "b c"])
    def test_refuses_malformed_ids(self, raw: str) -> None:
        with pytest.raises(ValidationFailed):
            normalize_asset_id(raw)

    def test_finds_an_asset_whatever_the_case(self) -> None:
        by_id = {asset.asset_id: asset for asset in load_snapshot()}
        assert find_asset(by_id, "doge").name == "Dogecoin"

    def test_reports_an_unknown_asset_as_not_found(self) -> None:
        with pytest.raises(AssetNotFound):
            find_asset({}, "NOPE")

    def test_reports_a_malformed_id_before_looking_it_up(self) -> None:
        with pytest.raises(ValidationFailed):
            find_asset({}, "no-pe")


class TestAMove:
    """`Catalog.apply_prices` (and a tick's `move`): a new price and the figures it carries."""

    @given(st.integers(min_value=1, max_value=10**12 - 1), st.integers(min_value=-18, max_value=0))
    def test_carries_its_24h_figures_and_its_quote(self, digits: int, exponent: int) -> None:
        eth = next(asset for asset in load_snapshot() if asset.asset_id == "ETH")
        assert eth.price_change_24h is not None
        assert eth.high_24h is not None
        assert eth.low_24h is not None
        base = eth.price_usd - eth.price_change_24h  # the price 24 h ago
        price = round_price(Decimal(digits).scaleb(exponent))
        moment = datetime(2026, 1, 1, 0, 30, tzinfo=UTC)
        catalog = Catalog([eth], PriceCache(), now=datetime(2026, 1, 1, tzinfo=UTC))
        [moved] = catalog.apply_prices({"ETH": price}, moment)
        assert (moved.price_usd, moved.last_updated) == (price, moment)
        # In the hour it was loaded in, the asset's stored figures stand for the day before.
        assert moved.price_change_24h == price - base
        assert moved.price_change_percentage_24h == ((price - base) / base * 100).quantize(
            Decimal("0.00001")
        )
        assert moved.high_24h == max(eth.high_24h, eth.price_usd, price)
        assert moved.low_24h == min(eth.low_24h, eth.price_usd, price)
        assert eth.ath is not None
        assert eth.atl is not None
        assert (moved.ath, moved.ath_date) == (
            (price, moment) if price > eth.ath else (eth.ath, eth.ath_date)
        )
        assert (moved.atl, moved.atl_date) == (
            (price, moment) if price < eth.atl else (eth.atl, eth.atl_date)
        )
        assert (moved.bid, moved.ask) == bid_ask(price, eth.spread)
