"""The ticker's live candles: moved in place each tick, written in turns when there are many
assets, a candle that closed before its turn written with its final figures, and everything
due written at once by a flush."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from orderproc.common.storage.records import CandleRecord
from orderproc.inventory.candles import Candle, Interval
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
        rows, committed = candles.due()
        committed()
        assert candles.turns == 1
        assert len(rows) == 3 * len(IDS)
        tick(candles, START + timedelta(seconds=2), "12")
        rows, _ = candles.due()
        minute = {r.asset_id: r for r in rows if r.interval == "1m"}
        assert minute["AAA"].close == minute["AAA"].high == Decimal(12)
        assert minute["AAA"].open == Decimal(10)
        assert minute["AAA"].volume == Decimal(2)

    def test_many_assets_are_written_in_turns_each_within_the_turns(self) -> None:
        candles = LiveCandles(assets_per_write=2)
        seen: set[str] = set()
        for number in range(3):
            tick(candles, START + timedelta(seconds=2 * number), str(10 + number))
            rows, committed = candles.due()
            committed()
            assert len(written(rows)) <= 2
            seen |= written(rows)
        assert candles.turns == 3
        assert seen == set(IDS)

    def test_nothing_is_written_twice_and_nothing_committed_is_due_again(self) -> None:
        candles = LiveCandles()
        tick(candles, START, "10")
        rows, committed = candles.due()
        assert rows
        committed()
        assert candles.due()[0] == []

    def test_rows_not_committed_stay_due(self) -> None:
        candles = LiveCandles()
        tick(candles, START, "10")
        first, _ = candles.due()  # the store failed: never committed
        again, _ = candles.due()
        assert again == first

    def test_a_candle_closed_before_its_turn_is_written_with_its_final_figures(self) -> None:
        candles = LiveCandles(assets_per_write=2)  # three turns
        for number, price in enumerate(("10", "15", "11")):
            tick(candles, START + timedelta(seconds=2 * number), price)
        candles.due()[1]()  # turn 0 of the next round: AAA, DDD, written and committed
        tick(candles, START + timedelta(minutes=1), "20")  # every minute candle closes
        rows, _ = candles.due()  # turn 1: BBB and EEE
        closed = [r for r in rows if r.interval == "1m" and r.open_time == START.replace(second=0)]
        assert {r.asset_id for r in closed} == {"BBB", "EEE"}
        assert all((r.open, r.high, r.low, r.close) == (10, 15, 10, 11) for r in closed)

    def test_a_flush_writes_everything_due(self) -> None:
        candles = LiveCandles(assets_per_write=1)
        tick(candles, START, "10")
        rows, committed = candles.due(everything=True)
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
