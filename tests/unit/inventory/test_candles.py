from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orderproc.inventory.candles import (
    Candle,
    Interval,
    apply_tick,
    bucket_start,
    cutoff,
    roll_up,
)

START = datetime(2026, 1, 15, 22, 58, 30, tzinfo=UTC)


class TestBuckets:
    @pytest.mark.parametrize(
        ("interval", "expected"),
        [
            (Interval.MINUTE, datetime(2026, 1, 15, 22, 58, tzinfo=UTC)),
            (Interval.HOUR, datetime(2026, 1, 15, 22, 0, tzinfo=UTC)),
            (Interval.DAY, datetime(2026, 1, 15, tzinfo=UTC)),
        ],
    )
    def test_start_at_the_utc_minute_hour_or_day(
        self, interval: Interval, expected: datetime
    ) -> None:
        assert bucket_start(START + timedelta(microseconds=999), interval) == expected

    def test_use_utc_whatever_the_zone_of_the_moment(self) -> None:
        tokyo = START.astimezone(timezone(timedelta(hours=9)))  # already the 16th there
        assert bucket_start(tokyo, Interval.DAY) == datetime(2026, 1, 15, tzinfo=UTC)

    def test_refuse_a_naive_moment(self) -> None:
        with pytest.raises(ValueError, match="time zone"):
            bucket_start(datetime(2026, 1, 15), Interval.MINUTE)


class TestApplyTick:
    def test_opens_a_candle_on_the_first_tick(self) -> None:
        candle = apply_tick(None, asset_id="BTC", price=Decimal(10), moment=START)
        assert candle == Candle(
            "BTC", Interval.MINUTE, bucket_start(START, Interval.MINUTE), *[Decimal(10)] * 4
        )

    def test_extends_the_candle_of_the_same_minute(self) -> None:
        candle = apply_tick(None, asset_id="BTC", price=Decimal(10), moment=START)
        candle = apply_tick(candle, asset_id="BTC", price=Decimal(12), moment=START)
        candle = apply_tick(candle, asset_id="BTC", price=Decimal(9), moment=START)
        assert (candle.open, candle.high, candle.low, candle.close) == (10, 12, 9, 9)

    def test_opens_a_new_candle_in_the_next_minute(self) -> None:
        first = apply_tick(None, asset_id="BTC", price=Decimal(10), moment=START)
        second = apply_tick(
            first, asset_id="BTC", price=Decimal(11), moment=START + timedelta(seconds=30)
        )
        assert second.open_time == first.open_time + timedelta(minutes=1)
        assert second.open == 11

    def test_refuses_to_extend_another_assets_candle(self) -> None:
        candle = apply_tick(None, asset_id="BTC", price=Decimal(10), moment=START)
        with pytest.raises(ValueError, match="own asset"):
            apply_tick(candle, asset_id="ETH", price=Decimal(1), moment=START)


class TestRollUp:
    def test_refuses_to_roll_coarser_candles_into_finer_ones(self) -> None:
        day = Candle("BTC", Interval.DAY, datetime(2026, 1, 15, tzinfo=UTC), *[Decimal(1)] * 4)
        with pytest.raises(ValueError, match="cannot roll"):
            roll_up([day], Interval.HOUR)

    def test_keeps_assets_apart(self) -> None:
        btc = apply_tick(None, asset_id="BTC", price=Decimal(10), moment=START)
        eth = apply_tick(None, asset_id="ETH", price=Decimal(2), moment=START)
        hours = roll_up([eth, btc], Interval.HOUR)
        assert [(c.asset_id, c.close) for c in hours] == [("BTC", 10), ("ETH", 2)]


class TestRetention:
    def test_cuts_off_at_a_whole_bucket(self) -> None:
        assert cutoff(START, Interval.MINUTE, timedelta(hours=6)) == datetime(
            2026, 1, 15, 16, 58, tzinfo=UTC
        )
        assert cutoff(START, Interval.DAY, timedelta(days=365)) == datetime(2025, 1, 15, tzinfo=UTC)


ticks_strategy = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=3 * 3600 * 1000),  # milliseconds after START
        st.decimals(min_value=Decimal("1E-18"), max_value=Decimal(100_000), places=18),
    ),
    min_size=1,
    max_size=200,
).map(lambda ticks: sorted(ticks, key=lambda tick: tick[0]))


def minute_candles(ticks: list[tuple[int, Decimal]]) -> list[Candle]:
    """What the feed loop does: upsert the current candle, keep the closed ones."""
    closed: list[Candle] = []
    current: Candle | None = None
    for offset, price in ticks:
        moment = START + timedelta(milliseconds=offset)
        updated = apply_tick(current, asset_id="MEME", price=price, moment=moment)
        if current is not None and updated.open_time != current.open_time:
            closed.append(current)
        current = updated
    assert current is not None
    return [*closed, current]


def expected_summary(
    ticks: list[tuple[int, Decimal]], interval: Interval
) -> dict[datetime, tuple[Decimal, Decimal, Decimal, Decimal]]:
    buckets: dict[datetime, list[Decimal]] = {}
    for offset, price in ticks:
        start = bucket_start(START + timedelta(milliseconds=offset), interval)
        buckets.setdefault(start, []).append(price)
    return {
        start: (prices[0], max(prices), min(prices), prices[-1])
        for start, prices in buckets.items()
    }


def summary(candles: list[Candle]) -> dict[datetime, tuple[Decimal, Decimal, Decimal, Decimal]]:
    return {c.open_time: (c.open, c.high, c.low, c.close) for c in candles}


class TestCandlesAgreeWithTicks:
    @given(ticks_strategy)
    def test_minute_candles_summarize_their_ticks(self, ticks: list[tuple[int, Decimal]]) -> None:
        candles = minute_candles(ticks)
        assert summary(candles) == expected_summary(ticks, Interval.MINUTE)
        assert all(c.low <= min(c.open, c.close) <= max(c.open, c.close) <= c.high for c in candles)

    @given(ticks_strategy)
    def test_hour_and_day_roll_ups_agree_with_the_minutes_and_the_ticks(
        self, ticks: list[tuple[int, Decimal]]
    ) -> None:
        minutes = minute_candles(ticks)
        hours = roll_up(minutes, Interval.HOUR)
        assert summary(hours) == expected_summary(ticks, Interval.HOUR)
        assert all(c.interval is Interval.HOUR for c in hours)
        days_from_hours = roll_up(hours, Interval.DAY)
        assert days_from_hours == roll_up(minutes, Interval.DAY)
        assert summary(days_from_hours) == expected_summary(ticks, Interval.DAY)
