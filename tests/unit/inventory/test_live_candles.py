"""The ticker's live candles: moved in place each tick, written in turns when there are many
assets, a candle that closed before its turn written with its final figures, and everything
due written at once by a flush."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from orderproc.common.storage.records import CandleRecord
from orderproc.inventory.candles import Candle, Interval, bucket_start
from orderproc.inventory.live_candles import LiveCandles

START = datetime(2026, 5, 1, 12, 0, 10, tzinfo=UTC)
IDS = ("AAA", "BBB", "CCC", "DDD", "EEE")


def tick(candles: LiveCandles, moment: datetime, price: str) -> None:
    candles.tick(((a, Decimal(price), 100) for a in IDS), moment)  # $1.00 traded a tick


def written(rows: list[CandleRecord]) -> set[str]:
    return {row.asset_id for row in rows}


class TestTurns:
    def test_a_small_catalog_writes_every_candle_every_tick(self) -> None:
        candles = LiveCandles()
        tick(candles, START, "10")
        rows, committed, _ = candles.due()
        committed()
        assert candles.turns == 1
        assert len(rows) == 3 * len(IDS)
        tick(candles, START + timedelta(seconds=2), "12")
        rows, *_ = candles.due()
        minute = {r.asset_id: r for r in rows if r.interval == "1m"}
        assert minute["AAA"].close == minute["AAA"].high == Decimal(12)
        assert minute["AAA"].open == Decimal(10)
        assert minute["AAA"].volume == Decimal(2)

    def test_many_assets_are_written_in_turns_each_within_the_turns(self) -> None:
        candles = LiveCandles(assets_per_write=2)
        seen: set[str] = set()
        for number in range(3):
            tick(candles, START + timedelta(seconds=2 * number), str(10 + number))
            rows, committed, _ = candles.due()
            committed()
            assert len(written(rows)) <= 2
            seen |= written(rows)
        assert candles.turns == 3
        assert seen == set(IDS)

    def test_nothing_is_written_twice_and_nothing_committed_is_due_again(self) -> None:
        candles = LiveCandles()
        tick(candles, START, "10")
        rows, committed, _ = candles.due()
        assert rows
        committed()
        assert candles.due()[0] == []

    def test_rows_not_committed_stay_due(self) -> None:
        candles = LiveCandles()
        tick(candles, START, "10")
        first, *_ = candles.due()  # the store failed: never committed
        again, *_ = candles.due()
        assert again == first

    def test_a_candle_closed_before_its_turn_is_written_with_its_final_figures(self) -> None:
        candles = LiveCandles(assets_per_write=2)  # three turns
        for number, price in enumerate(("10", "15", "11")):
            tick(candles, START + timedelta(seconds=2 * number), price)
        candles.due()[1]()  # turn 0 of the next round: AAA, DDD, written and committed
        tick(candles, START + timedelta(minutes=1), "20")  # every minute candle closes
        rows, *_ = candles.due()  # turn 1: BBB and EEE
        closed = [r for r in rows if r.interval == "1m" and r.open_time == START.replace(second=0)]
        assert {r.asset_id for r in closed} == {"BBB", "EEE"}
        assert all((r.open, r.high, r.low, r.close) == (10, 15, 10, 11) for r in closed)

    def test_a_flush_writes_everything_due(self) -> None:
        candles = LiveCandles(assets_per_write=1)
        tick(candles, START, "10")
        rows, committed, _ = candles.due(everything=True)
        committed()
        assert written(rows) == set(IDS)
        assert candles.due(everything=True)[0] == []


class TestResume:
    def test_ticks_after_a_restart_extend_the_stored_candle(self) -> None:
        stored = Candle(
            "AAA", Interval.MINUTE, START.replace(second=0), Decimal(9), Decimal(30),
            Decimal(5), Decimal(10), Decimal(7),
        )  # fmt: skip
        candles = LiveCandles()
        candles.resume([stored])
        assert candles.due()[0] == []  # the store has it already
        candles.tick([("AAA", Decimal(12), 100)], START + timedelta(seconds=20))
        current = candles.current("AAA", Interval.MINUTE)
        assert current is not None
        assert (current.open, current.high, current.low, current.close) == (9, 30, 5, 12)
        assert current.volume == Decimal(8)
        assert candles.current("AAA", Interval.HOUR) is not None


class TestAgainstTheTicks:
    """Whatever the turns, failed writes and restarts, the store ends up with every candle of
    every interval exactly as the ticks make it: open the first price of its bucket, high and
    low the extremes, close the last, volume the sum (the hour and day rolled up from
    minutes)."""

    @given(
        steps=st.lists(
            st.tuples(
                st.sampled_from([2, 2, 2, 20, 61, 3_600, 86_400]),  # seconds to the next tick
                st.integers(min_value=1, max_value=99),  # the price
                st.sampled_from(["write", "write", "fail", "restart", "none"]),
            ),
            max_size=60,
        ),
        per_write=st.integers(min_value=1, max_value=3),
    )
    def test_the_store_holds_each_bucket_of_the_ticks(
        self, steps: list[tuple[int, int, str]], per_write: int
    ) -> None:
        store: dict[tuple[str, str, datetime], CandleRecord] = {}
        expected: dict[tuple[str, str, datetime], list[Decimal]] = {}
        candles, moment = LiveCandles(assets_per_write=per_write), START
        for seconds, price, then in steps:
            moment += timedelta(seconds=seconds)
            moves = [(a, Decimal(price + n), 100 + n) for n, a in enumerate(IDS[:3])]
            candles.tick(moves, moment)
            for asset_id, value, cents in moves:
                for interval in (Interval.MINUTE, Interval.HOUR, Interval.DAY):
                    key = (asset_id, interval.value, bucket_start(moment, interval))
                    o, h, lo, _, v = expected.get(key, [value, value, value, value, Decimal(0)])
                    expected[key] = [o, max(h, value), min(lo, value), value, v + cents]
            if then in ("write", "fail"):
                rows, committed, _ = candles.due()
                if then == "write":
                    store.update({(r.asset_id, r.interval, r.open_time): r for r in rows})
                    committed()
            elif then == "restart":
                rows, committed, _ = candles.due(everything=True)
                store.update({(r.asset_id, r.interval, r.open_time): r for r in rows})
                committed()
                candles = LiveCandles(assets_per_write=per_write)
                candles.resume([_candle(r) for r in latest(store)])
        rows, *_ = candles.due(everything=True)
        store.update({(r.asset_id, r.interval, r.open_time): r for r in rows})
        assert {k: [r.open, r.high, r.low, r.close, r.volume] for k, r in store.items()} == {
            k: [o, h, lo, c, v / 100] for k, (o, h, lo, c, v) in expected.items()
        }


def latest(store: dict[tuple[str, str, datetime], CandleRecord]) -> list[CandleRecord]:
    """What a restart reads: the latest stored candle of each asset and interval."""
    newest: dict[tuple[str, str], CandleRecord] = {}
    for (asset_id, interval, _), row in sorted(store.items()):
        newest[(asset_id, interval)] = row
    return list(newest.values())


def _candle(record: CandleRecord) -> Candle:
    assert record.volume is not None
    return Candle(
        record.asset_id, Interval(record.interval), record.open_time, record.open, record.high,
        record.low, record.close, record.volume,
    )  # fmt: skip
