"""Quotes: the spread model (common/quotes.py), the bid and ask it puts around a mid, and the
same quote whether it is derived in memory (the Asset) or from a stored asset row."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orderproc.common.money import EXACT, PRICE_STEP
from orderproc.common.prices import Quote
from orderproc.common.quotes import (
    MAX_SPREAD_BPS,
    STABLECOIN_SPREAD_BPS,
    bid_ask,
    model_spread_bps,
    to_price_grid,
)
from orderproc.common.vocabulary import CATEGORIES
from orderproc.inventory.domain import load_snapshot
from orderproc.inventory.pricefeed import round_price
from orderproc.inventory.service import to_record

# Prices as the feeds make them: 12 significant digits, at most 18 places, 10^-18 to 10^12.
prices = st.builds(
    lambda digits, exponent: round_price(Decimal(digits).scaleb(exponent)),
    st.integers(min_value=1, max_value=10**12 - 1),
    st.integers(min_value=-29, max_value=0),
)
spreads = st.decimals(min_value=0, max_value=MAX_SPREAD_BPS, places=2)


class TestBidAsk:
    @given(mid=prices, spread=spreads)
    def test_the_mid_lies_between_a_positive_bid_and_the_ask(
        self, mid: Decimal, spread: Decimal
    ) -> None:
        bid, ask = bid_ask(mid, spread)
        assert 0 < bid <= mid <= ask

    @given(mid=prices, spread=spreads)
    def test_bid_and_ask_are_rounded_as_prices_are(self, mid: Decimal, spread: Decimal) -> None:
        for side in bid_ask(mid, spread):
            # 12 significant digits (a whole number from 10^12 up), at most 18 places
            whole = side == side.to_integral_value()
            assert len(side.normalize().as_tuple().digits) <= 12 or whole
            assert -side.as_tuple().exponent <= 18  # type: ignore[operator]

    @given(mid=prices, spread=spreads)
    def test_the_same_mid_and_spread_always_give_the_same_quote(
        self, mid: Decimal, spread: Decimal
    ) -> None:
        assert bid_ask(mid, spread) == bid_ask(Decimal(str(mid)), Decimal(str(spread)))

    def test_the_spread_is_the_full_width_around_the_mid(self) -> None:
        assert bid_ask(Decimal(50_000), Decimal(10)) == (Decimal(49_975), Decimal(50_025))
        assert bid_ask(Decimal("1.0000"), Decimal(1)) == (Decimal("0.99995"), Decimal("1.00005"))

    def test_the_bid_rounds_down_and_the_ask_up(self) -> None:
        # 1/3 at 2 bps: 0.333299999999666... and 0.333366666666999...
        bid, ask = bid_ask(Decimal("0.333333333333"), Decimal(2))
        assert (bid, ask) == (Decimal("0.333299999999"), Decimal("0.333366666667"))

    def test_no_spread_quotes_the_mid_on_both_sides(self) -> None:
        assert bid_ask(Decimal("123.45"), Decimal(0)) == (Decimal("123.45"), Decimal("123.45"))

    def test_the_smallest_price_keeps_a_bid_above_zero(self) -> None:
        assert bid_ask(PRICE_STEP, Decimal(1000))[0] == PRICE_STEP

    @given(mid=prices, spread=spreads)
    def test_each_side_is_the_exact_product_rounded_to_the_price_grid(
        self, mid: Decimal, spread: Decimal
    ) -> None:
        """The bid rounded down (never to zero) and the ask up, from the exact product."""
        assert bid_ask(mid, spread) == _rounded_exactly(mid, spread)


def _rounded_exactly(mid: Decimal, spread: Decimal) -> tuple[Decimal, Decimal]:
    half = EXACT.divide(spread, Decimal(20_000))
    bid = to_price_grid(EXACT.multiply(mid, 1 - half), ROUND_FLOOR)
    ask = to_price_grid(EXACT.multiply(mid, 1 + half), ROUND_CEILING)
    return max(bid, PRICE_STEP), ask


class TestModel:
    def test_larger_caps_trade_tighter(self) -> None:
        by_rank = [model_spread_bps("layer-1", rank) for rank in (1, 10, 11, 50, 51, 100, 101)]
        assert by_rank == sorted(by_rank)
        assert by_rank[0] < by_rank[-1]
        assert model_spread_bps("layer-1", 251) == model_spread_bps("layer-1", None)
        assert model_spread_bps("layer-1", None) > model_spread_bps("layer-1", 250)

    def test_stablecoins_are_tightest_whatever_their_rank(self) -> None:
        assert model_spread_bps("stablecoin", 500) == STABLECOIN_SPREAD_BPS
        tightest_other = min(
            model_spread_bps(category, 1) for category in CATEGORIES if category != "stablecoin"
        )
        assert tightest_other > STABLECOIN_SPREAD_BPS

    def test_memecoins_trade_wider_than_their_rank_says(self) -> None:
        assert model_spread_bps("meme", 11) > model_spread_bps("layer-1", 11)

    def test_every_spread_of_the_model_is_one_a_sandbox_admin_could_set(self) -> None:
        for category in CATEGORIES:
            for rank in (1, 30, 80, 200, None):
                assert 0 < model_spread_bps(category, rank) <= MAX_SPREAD_BPS


class TestTheAssetsQuote:
    def test_bid_and_ask_follow_every_new_price(self) -> None:
        btc = next(a for a in load_snapshot() if a.asset_id == "BTC")
        moved = btc.with_price(Decimal(50_000), datetime(2026, 1, 1, tzinfo=UTC))
        assert (moved.bid, moved.ask) == bid_ask(Decimal(50_000), moved.spread)
        assert moved.bid < moved.price_usd < moved.ask

    def test_a_chosen_spread_replaces_the_models(self) -> None:
        btc = next(a for a in load_snapshot() if a.asset_id == "BTC")
        chosen = replace(btc, price_usd=Decimal(100), spread_bps=Decimal(200))
        assert (chosen.bid, chosen.ask) == (Decimal(99), Decimal(101))
        flat = replace(chosen, spread_bps=Decimal(0))
        assert flat.bid == flat.ask == flat.price_usd

    @pytest.mark.parametrize("chosen", [None, Decimal("12.5")])
    def test_a_stored_row_gives_the_quote_the_catalog_publishes(
        self, chosen: Decimal | None
    ) -> None:
        """An orders process reading prices from the store derives what inventory derived."""
        for asset in load_snapshot():
            asset = replace(asset, spread_bps=chosen, frozen=True)
            assert Quote.from_record(to_record(asset)) == Quote.of(asset)


def test_a_frozen_quote_with_its_bid_and_ask_crosses_the_tick_channel_intact() -> None:
    """What an orders process on its own learns over Redis (common/price_fanout.py)."""
    from orderproc.common.price_fanout import decode_tick, encode_tick

    btc = next(a for a in load_snapshot() if a.asset_id == "BTC")
    quote = Quote.of(replace(btc, price_usd=Decimal("64000.5"), spread_bps=Decimal(3), frozen=True))
    _, _, [received] = decode_tick(encode_tick([quote], source="leader", seq=1, full=False))
    assert received == quote
    assert (received.bid, received.ask, received.frozen) == (quote.bid, quote.ask, True)


async def test_coingecko_prices_get_their_bid_and_ask_from_the_same_model() -> None:
    """CoinGecko's /simple/price has no quotes: a tick of it quotes each asset by the model.
    (The answer is a hand-made fixture in the shape CoinGecko documents; see its README.)"""
    from pathlib import Path

    import httpx

    from orderproc.common.clock import FixedClock
    from orderproc.common.prices import PriceCache
    from orderproc.common.storage.memory import MemoryStore
    from orderproc.inventory.pricefeed import CoinGeckoFeed
    from orderproc.inventory.service import PriceTicker, Retention, load_catalog, seed_catalog

    answer = (Path(__file__).parent / "inventory/fixtures/simple_price_ok.json").read_bytes()
    ids = {"BTC": "bitcoin", "SHIB": "shiba-inu", "USDT": "tether"}
    feed = CoinGeckoFeed(
        ids, transport=httpx.MockTransport(lambda _: httpx.Response(200, content=answer))
    )
    store, prices = MemoryStore(), PriceCache()
    await seed_catalog(store)
    catalog = await load_catalog(store, prices)
    day = timedelta(days=1)
    ticker = PriceTicker(
        feed=feed,
        catalog=catalog,
        store=store,
        clock=FixedClock(datetime(2026, 1, 15, 12, tzinfo=UTC)),
        interval=2,
        retention=Retention(minute=day, hour=day, day=day),
    )
    assert await ticker.tick_once() == 3
    for asset_id, mid in (("BTC", "51618.12"), ("SHIB", "0.00000970123"), ("USDT", "1.0002")):
        quote = prices.quote(asset_id)
        assert quote is not None
        asset = catalog.by_id[asset_id]
        spread = model_spread_bps(asset.category, asset.market_cap_rank)
        assert (quote.price, quote.bid, quote.ask) == (Decimal(mid), *bid_ask(Decimal(mid), spread))
        assert quote.bid < quote.price < quote.ask
    await feed.aclose()
