"""The ticker's live candles: moved in place each tick, written in turns when there are many
assets, an open hour or day written after a minute closes (holding the minutes before the
current one), each asset's in its own minute of five, a candle that closed before its turn
written with its final figures, an asset that stopped ticking written whole, and everything
due written at once by a flush."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from orderproc.common.storage.records import CandleRecord
from orderproc.inventory.candles import Candle, Interval, bucket_start, complete
from orderproc.inventory.live_candles import INTERVALS, ROLLUP_EVERY, LiveCandles

START = datetime(2026, 5, 1, 12, 0, 10, tzinfo=UTC)
IDS = ("AAA", "BBB", "CCC", "DDD", "EEE")


def tick(candles: LiveCandles, moment: datetime, price: str) -> None:
    candles.tick(((a, Decimal(price), 100) for a in IDS), moment)  # $1.00 traded a tick


def written(rows: list[CandleRecord]) -> set[str]:
    return {row.asset_id for row in rows}


def ticks_of(candles: LiveCandles) -> Callable[[int, tuple[str, ...]], None]:
    """`tick(seconds, ids)`: those assets tick at $1, `seconds` after START."""

    def tick(seconds: int, ids: tuple[str, ...]) -> None:
        candles.tick(((a, Decimal(1), 100) for a in ids), START + timedelta(seconds=seconds))

    return tick


def cycle(candles: LiveCandles) -> list[CandleRecord]:
    """A turn of every asset, each committed: their rows."""
    rows: list[CandleRecord] = []
    for _ in range(candles.turns):
        turn = candles.due()
        turn.committed()
        rows += turn.rows
    return rows


class TestTurns:
    def test_a_small_catalog_writes_every_minute_every_tick(self) -> None:
        candles = LiveCandles()
        tick(candles, START, "10")
        rows, committed, _ = candles.due()
        committed()
        assert candles.turns == 1
        assert len(rows) == 3 * len(IDS)  # the minute, and the hour and day it opened
        hour = next(r for r in rows if r.interval == "1h" and r.asset_id == "AAA")
        assert (hour.open, hour.close, hour.volume) == (10, 10, 0)  # no minute closed yet
        assert hour.rolled_until == START.replace(second=0)
        tick(candles, START + timedelta(seconds=2), "12")
        rows, *_ = candles.due()
        assert {r.interval for r in rows} == {"1m"}  # the hour and day did not change
        minute = {r.asset_id: r for r in rows}
        assert minute["AAA"].close == minute["AAA"].high == Decimal(12)
        assert minute["AAA"].open == Decimal(10)
        assert minute["AAA"].volume == Decimal(2)

    def test_each_asset_writes_its_hour_and_day_in_its_own_minute_of_five(self) -> None:
        ids = [f"A{n:03d}" for n in range(100)]
        candles = LiveCandles()
        candles.tick(((a, Decimal(10), 100) for a in ids), START)
        rows, committed, _ = candles.due()
        committed()
        assert {r.asset_id for r in rows if r.interval == "1h"} == set(ids)  # a new hour
        hours: dict[str, list[CandleRecord]] = {}
        for minutes in range(1, 2 * ROLLUP_EVERY + 1):  # 12:01 to 12:10, two ticks each
            for seconds, price in ((0, 12), (2, 10 + minutes)):
                moment = START + timedelta(minutes=minutes, seconds=seconds)
                candles.tick(((a, Decimal(price), 100) for a in ids), moment)
                rows, committed, _ = candles.due()
                committed()
                for row in rows:
                    if row.interval == "1h":
                        hours.setdefault(row.asset_id, []).append(row)
        # Every asset twice in ten minutes, five minutes apart...
        assert {a: len(rows) for a, rows in hours.items()} == dict.fromkeys(ids, 2)
        assert all(
            rows[1].rolled_until - rows[0].rolled_until == timedelta(minutes=ROLLUP_EVERY)
            for rows in hours.values()
        )
        # ...and the assets spread over the five minutes, not all in one.
        per_minute = Counter(rows[0].rolled_until for rows in hours.values())
        assert len(per_minute) == ROLLUP_EVERY
        assert max(per_minute.values()) < 40
        # What a row holds: every tick of the minutes before its `rolled_until`.
        row = hours["A000"][0]
        assert row.rolled_until is not None
        closed = (row.rolled_until - START.replace(second=0)) // timedelta(minutes=1)
        prices = [10] + [p for minute in range(1, closed) for p in (12, 10 + minute)]
        assert (row.open, row.high, row.low, row.close) == (
            10, max(prices), min(prices), prices[-1],
        )  # fmt: skip
        assert row.volume == len(prices)  # $1.00 a tick

    def test_a_new_hour_is_written_at_once_after_the_closed_one(self) -> None:
        candles = LiveCandles(assets_per_write=1)  # a turn each
        last = START.replace(minute=59, second=58)
        tick(candles, last, "10")
        cycle(candles)
        tick(candles, last + timedelta(seconds=2), "11")  # 13:00: a new hour, the same day
        first = cycle(candles)
        assert {(r.interval, r.open_time.hour, r.rolled_until) for r in first} == {
            ("1h", 12, None)  # the closed hour, whole, and nothing else of its asset
        }
        assert len(first) == len(IDS)
        rows = cycle(candles)
        opened = last + timedelta(seconds=2)
        assert {(r.interval, r.open_time, r.rolled_until) for r in rows} == {
            ("1m", opened, None),  # the new minute
            ("1h", opened, opened),  # the new hour at once, no minute in it yet
            ("1d", START.replace(hour=0, minute=0, second=0), opened),
        }
        hours = [r for r in rows if r.interval == "1h"]
        assert all(hour.volume == 0 and hour.open == 11 for hour in hours)

    def test_closed_candles_go_first_one_a_turn_so_a_close_spreads_its_rows(self) -> None:
        """Midnight closes every asset's minute, hour and day in one tick: they are written
        at three turns of each asset, oldest first, and its open candles at the fourth; for
        half the assets (BBB here) the new hour's and day's first rows at the fifth."""
        candles = LiveCandles(assets_per_write=1)
        last = START.replace(hour=23, minute=59, second=56)
        tick(candles, last, "10")
        cycle(candles)
        tick(candles, last + timedelta(seconds=2), "11")  # 23:59's last figures, unwritten
        tick(candles, last + timedelta(seconds=4), "12")  # midnight
        cycles = []
        for _ in range(6):
            rows = cycle(candles)
            cycles.append(sorted({(r.asset_id, r.interval, r.open_time) for r in rows}))
        midnight, day = last + timedelta(seconds=4), START.replace(hour=0, minute=0, second=0)

        def each(*rows: tuple[str, datetime], but: tuple[str, ...] = ()) -> list[object]:
            return sorted((a, i, t) for a in IDS if a not in but for i, t in rows)

        assert cycles == [
            each(("1m", START.replace(hour=23, minute=59, second=0))),
            each(("1h", START.replace(hour=23, minute=0, second=0))),
            each(("1d", day)),
            sorted(each(("1m", midnight)) + each(("1h", midnight), ("1d", midnight), but=("BBB",))),
            [("BBB", "1d", midnight), ("BBB", "1h", midnight)],
            [],
        ]
        assert all(r.rolled_until == midnight for r in rows if r.interval != "1m")

    def test_a_new_hours_first_rows_wait_only_while_its_minute_is_its_only_one(self) -> None:
        """BBB's new hour's and day's rows wait a turn after midnight (above), not where the
        store gets another minute of the day in the same turn: a restart would open the day at
        the later minute, without the earlier one."""
        candles = LiveCandles(assets_per_write=1)
        tick(candles, START, "10")
        cycle(candles)
        next_day = START.replace(hour=13, minute=59, second=30) + timedelta(days=1)
        tick(candles, next_day, "11")  # the next day's 13:59 ...
        tick(candles, next_day + timedelta(seconds=40), "12")  # ... closes at 14:00:10
        rows = {(r.asset_id, r.interval, r.open_time) for r in cycle(candles)}
        assert ("BBB", "1m", next_day.replace(second=0)) in rows
        assert ("BBB", "1d", next_day.replace(hour=0, minute=0, second=0)) in rows

    @pytest.mark.parametrize("why", ["one turn", "a sandbox admin's price", "everything"])
    def test_closed_candles_go_with_the_open_ones(self, why: str) -> None:
        """With one turn (200 assets or fewer) the store is never a tick behind; a sandbox
        admin's price and a flush reach the store at once."""
        candles = LiveCandles(assets_per_write=len(IDS) if why == "one turn" else 1)
        tick(candles, START, "10")
        cycle(candles)
        tick(candles, START + timedelta(seconds=2), "11")
        tick(candles, START + timedelta(minutes=1), "12")  # 12:00 closes, its last unwritten
        if why == "everything":
            rows = candles.due(everything=True).rows
        else:
            rows = candles.due(closed_first=why == "one turn").rows
        got = {(r.interval, r.open_time.minute) for r in rows if r.asset_id == "AAA"}
        assert {("1m", 0), ("1m", 1)} <= got  # the closed minute and the open one

    def test_when_more_than_one_close_waits_the_closed_go_at_once(self) -> None:
        """Turns slower than minutes: one closed candle a turn would never catch up."""
        candles = LiveCandles(assets_per_write=1)
        tick(candles, START, "10")
        cycle(candles)
        for minutes in range(1, 6):  # 12:00 to 12:04 close, 12:01 to 12:04 never written
            tick(candles, START + timedelta(minutes=minutes), str(10 + minutes))
        rows = cycle(candles)
        closed = {("1m", m) for m in range(1, 5)}
        assert {(r.interval, r.open_time.minute) for r in rows} == {
            *closed,
            ("1m", 5),
            ("1h", 0),
            ("1d", 0),
        }

    def test_turns_a_minute_apart_write_the_open_candles_every_other_turn(self) -> None:
        """Each turn finds a minute closed since the last: the open ones wait for one turn
        at most, else they would never reach the store."""
        candles = LiveCandles(assets_per_write=1)
        tick(candles, START, "10")
        cycle(candles)
        opens = []
        for minutes in range(1, 7):
            tick(candles, START + timedelta(minutes=minutes), str(10 + minutes))
            rows = cycle(candles)
            opens.append(any(r.open_time.minute == minutes for r in rows))
            tick(candles, START + timedelta(minutes=minutes, seconds=30), "9")  # unwritten
        assert opens == [True, False] * 3  # 12:00 was written whole: nothing closed waits

    def test_closed_candles_go_with_the_open_ones_over_a_whole_row(self) -> None:
        """A whole row of the open hour is read as holding the latest stored minute (`resume`):
        a closed minute written alone after it would be read as in it, and a restart would
        take its volume out of the hour. So the closed go with the open ones there."""
        candles = LiveCandles(assets_per_write=1)
        tick(candles, START, "10")
        cycle(candles)
        candles.tick([("AAA", Decimal(11), 100)], START + timedelta(minutes=1))
        cycle(candles)  # the others stopped ticking: their hours and days written whole
        tick(candles, START + timedelta(minutes=2), "12")  # they tick again: 12:01 closes
        tick(candles, START + timedelta(minutes=2, seconds=2), "13")
        tick(candles, START + timedelta(minutes=3), "14")  # 12:02 closes, its last unwritten
        rows = cycle(candles)
        got = {(r.asset_id, r.interval, r.open_time.minute) for r in rows}
        assert ("AAA", "1m", 2) in got  # the closed first
        assert ("AAA", "1m", 3) not in got
        assert {("BBB", "1m", 2), ("BBB", "1m", 3), ("BBB", "1h", 0)} <= got  # together

    def test_what_two_closes_left_goes_at_once(self) -> None:
        """Its turns failed across two closes (or are a minute apart): one closed candle a
        turn would fall behind, so they go at once, with the open ones."""
        candles = LiveCandles(assets_per_write=1)
        tick(candles, START, "10")
        cycle(candles)  # the store has hour 12's rollups
        for minutes in range(60, 63):  # 13:00 and 13:01 close, with hour 12
            tick(candles, START + timedelta(minutes=minutes), str(minutes))
        rows = cycle(candles)
        got = {(r.interval, r.open_time.hour, r.open_time.minute) for r in rows}
        assert got == {
            ("1h", 12, 0),  # whole
            *(("1m", 13, m) for m in range(3)),  # the closed two, and the open one
            ("1h", 13, 0),
            ("1d", 0, 0),
        }

    def test_a_move_a_later_tick_overtook_goes_into_the_current_minute(self) -> None:
        """A sandbox admin's price racing a tick across a minute's close reaches the candles
        after the later tick: it must not roll the minute back (12:00 would lose its figures
        and 12:01 its first ones)."""
        candles = LiveCandles()
        tick(candles, START, "10")
        tick(candles, START + timedelta(seconds=50), "50")  # 12:01:00, ticked first
        tick(candles, START + timedelta(seconds=49), "11")  # 12:00:59, read before it
        rows = {(r.interval, r.open_time.minute): r for r in candles.due().rows}
        assert (rows["1m", 0].close, rows["1m", 0].volume) == (10, 1)
        minute = rows["1m", 1]
        assert (minute.open, minute.high, minute.low, minute.close) == (50, 50, 11, 11)
        assert minute.volume == 2

    @pytest.mark.parametrize("lands", ["after its turn", "while its turn is in flight"])
    def test_a_late_move_of_an_asset_written_whole_writes_it_whole_again(self, lands: str) -> None:
        """AAA stopped ticking, so its hour and day were written whole; an admin's price read
        at 12:00:59 then reaches it: they must take it in, not only its minute."""
        candles = LiveCandles()
        opened = START.replace(second=0)
        candles.tick([("AAA", Decimal(10), 100), ("BBB", Decimal(10), 100)], START)
        candles.due().committed()
        candles.tick([("BBB", Decimal(11), 100)], opened + timedelta(seconds=61))
        turn = candles.due()  # AAA is written whole
        late = [("AAA", Decimal(50), 700)]
        if lands == "after its turn":
            turn.committed()
            candles.tick(late, opened + timedelta(seconds=59))
        else:
            candles.tick(late, opened + timedelta(seconds=59))
            turn.committed()
        rows = {(r.asset_id, r.interval): r for r in candles.due(closed_first=False).rows}
        for interval in ("1m", "1h", "1d"):
            row = rows["AAA", interval]
            assert (row.high, row.close, row.volume, row.rolled_until) == (50, 50, 8, None)

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

    def test_a_candle_that_closes_while_a_turn_is_written_stays_due(self) -> None:
        candles = LiveCandles()
        tick(candles, START, "10")
        candles.due()[1]()
        tick(candles, START + timedelta(seconds=2), "11")
        tick(candles, START + timedelta(minutes=1), "12")  # minute 12:00 closes, unwritten
        _, in_flight, _ = candles.due()  # its write awaits the store...
        tick(candles, START + timedelta(minutes=1, seconds=2), "13")
        tick(candles, START + timedelta(minutes=2), "14")  # ...while 12:01 closes (a sandbox
        in_flight()  # admin's price, say), and then it commits
        rows, *_ = candles.due()
        closed = {(r.asset_id, r.open_time) for r in rows if r.interval == "1m"}
        assert ("AAA", START.replace(second=0) + timedelta(minutes=1)) in closed

    @pytest.mark.parametrize("lands_first", ["the flush", "the turn"])
    def test_closed_candles_two_turns_took_are_written_once_whichever_lands_first(
        self, lands_first: str
    ) -> None:
        """A turn and a flush in flight together (the ticker keeps one in flight; the candles
        do not rely on it), both holding AAA's closed minute, the flush its hour too; then a
        minute closes. Whichever lands first, what either wrote is due no more, and the
        minute that closed after both is due once."""
        candles = LiveCandles(assets_per_write=2)  # three turns
        tick(candles, START, "10")
        cycle(candles)
        tick(candles, START + timedelta(seconds=2), "10.5")
        hour = START.replace(minute=0, second=0)
        tick(candles, hour + timedelta(hours=1), "11")  # 12:00 and the hour close
        turn = candles.due()  # AAA and DDD's closed minute, first
        assert {(r.asset_id, r.interval) for r in turn.rows} == {("AAA", "1m"), ("DDD", "1m")}
        flush = candles.due(everything=True)  # everything closed, and the open candles
        tick(candles, hour + timedelta(hours=1, minutes=1), "12")  # 13:00 closes too
        for landed in (flush, turn) if lands_first == "the flush" else (turn, flush):
            landed.committed()
        rows, *_ = candles.due(everything=True)
        closed = Counter((r.asset_id, r.interval, r.open_time) for r in rows)
        thirteen = hour + timedelta(hours=1)
        assert all(closed[(asset, "1m", thirteen)] == 1 for asset in IDS)  # due, once
        assert not any(closed[(a, "1m", hour)] or closed[(a, "1h", hour)] for a in IDS)

    def test_closed_hours_are_written_once_none_waits_for_its_turn(self) -> None:
        """What a purge of old minutes waits for (`closed_written`): an hour or day that
        closed, and an asset that stopped ticking, written whole; not a closed minute."""
        candles = LiveCandles(assets_per_write=2)  # three turns
        tick(candles, START, "10")
        for _ in range(candles.turns):
            candles.due()[1]()
        assert candles.closed_written()  # nothing closed yet
        tick(candles, START + timedelta(minutes=1), "11")
        assert candles.closed_written()  # minutes closed: they need no other row
        next_hour = START.replace(minute=0) + timedelta(hours=1)
        tick(candles, next_hour, "12")  # every hour closes
        taken = 0  # 12:01's minute, the hour, then the new hour's rows (BBB's a turn later)
        while not candles.closed_written():
            candles.due()[1]()
            taken += 1
            assert taken <= 4 * candles.turns
        assert taken > 2 * candles.turns  # not at the closed ones: the new hour's rows too
        candles.tick([("AAA", Decimal(13), 100)], next_hour + timedelta(minutes=1))
        for _ in range(candles.turns):  # the others stopped ticking: each written whole
            assert not candles.closed_written()
            candles.due()[1]()
        assert candles.closed_written()

    def test_a_flush_writes_everything_due(self) -> None:
        candles = LiveCandles(assets_per_write=1)
        tick(candles, START, "10")
        rows, committed, _ = candles.due(everything=True)
        committed()
        assert written(rows) == set(IDS)
        assert candles.due(everything=True)[0] == []


class TestResume:
    MINUTE = CandleRecord("AAA", "1m", START.replace(second=0), Decimal(9), Decimal(30),
                          Decimal(5), Decimal(10), Decimal(7))  # fmt: skip

    def stored_hour(self, volume: str, rolled_until: datetime | None) -> CandleRecord:
        return CandleRecord("AAA", "1h", START.replace(minute=0, second=0), Decimal(8),
                            Decimal(40), Decimal(5), Decimal(10), Decimal(volume),
                            rolled_until)  # fmt: skip

    def resumed(self, *rows: CandleRecord) -> LiveCandles:
        day = CandleRecord("AAA", "1d", START.replace(hour=0, minute=0, second=0), Decimal(8),
                           Decimal(40), Decimal(5), Decimal(10), Decimal(20),
                           START.replace(second=0))  # fmt: skip
        candles = LiveCandles()
        candles.resume([*rows, day])
        return candles

    def test_ticks_after_a_restart_extend_the_stored_candles(self) -> None:
        candles = self.resumed(self.MINUTE, self.stored_hour("12", START.replace(second=0)))
        assert candles.due()[0] == []  # the store has them already
        candles.tick([("AAA", Decimal(12), 100)], START + timedelta(seconds=20))
        current = candles.current("AAA", Interval.MINUTE)
        assert current is not None
        assert (current.open, current.high, current.low, current.close) == (9, 30, 5, 12)
        assert current.volume == Decimal(8)
        hour = candles.current("AAA", Interval.HOUR)
        assert hour is not None
        assert (hour.open, hour.high, hour.low, hour.close) == (8, 40, 5, 12)
        assert hour.volume == Decimal(20)  # the stored 12 and the minute's 8

    def test_an_hour_written_before_schema_7_holds_its_minute_and_is_written_again(
        self,
    ) -> None:
        candles = self.resumed(self.MINUTE, self.stored_hour("19", None))
        rows, *_ = candles.due()
        assert [(r.interval, r.volume, r.rolled_until) for r in rows] == [
            ("1h", Decimal(12), START.replace(second=0)),  # 19 less the minute's 7
            ("1d", Decimal(20), START.replace(second=0)),
        ]

    def test_an_hour_rolled_until_an_earlier_minute_takes_in_the_stored_minutes_since(
        self,
    ) -> None:
        at = START.replace(second=0)  # 12:00

        def minute(n: int, high: int, low: int, volume: int) -> CandleRecord:
            return CandleRecord("AAA", "1m", at + timedelta(minutes=n), Decimal(9),
                                Decimal(high), Decimal(low), Decimal(10 + n),
                                Decimal(volume))  # fmt: skip

        day = CandleRecord("AAA", "1d", START.replace(hour=0, minute=0, second=0), Decimal(8),
                           Decimal(40), Decimal(5), Decimal(10), Decimal(20), at)  # fmt: skip
        latest = [minute(3, 30, 9, 1), self.stored_hour("12", at + timedelta(minutes=1)), day]
        stored = [minute(0, 35, 6, 5), minute(1, 45, 7, 2), minute(2, 20, 3, 4)]
        ranges = LiveCandles.minutes_to_read(latest)
        assert ranges == {"AAA": (at, at + timedelta(minutes=3))}  # the day's is the earlier
        candles = LiveCandles()
        candles.resume(latest, stored)
        hour = candles.current("AAA", Interval.HOUR)
        whole_day = candles.current("AAA", Interval.DAY)
        assert hour is not None
        assert whole_day is not None
        # The stored hour (8, 40, 5, 10, 12) with 12:01, 12:02 and the current 12:03.
        assert (hour.open, hour.high, hour.low, hour.close, hour.volume) == (8, 45, 3, 13, 19)
        # The stored day (8, 40, 5, 10, 20) with 12:00 as well.
        assert (whole_day.high, whole_day.low, whole_day.volume) == (45, 3, 32)
        rows, *_ = candles.due()  # written again, rolled until the current minute
        assert [(r.interval, r.volume, r.rolled_until) for r in rows] == [
            ("1h", Decimal(18), at + timedelta(minutes=3)),
            ("1d", Decimal(31), at + timedelta(minutes=3)),
        ]

    def test_a_minute_without_its_hour_gets_one(self) -> None:
        candles = self.resumed(self.MINUTE)
        rows, *_ = candles.due()
        hour = next(r for r in rows if r.interval == "1h")
        assert (hour.open, hour.volume, hour.rolled_until) == (9, 0, START.replace(second=0))


class TestWritesThatLandUnacknowledged:
    """Rows that reached the store though their turn was never committed (the commit raised
    after the database applied it), or committed after a later turn: the store never holds a
    whole hour while the minutes after it wait for the asset's minute of five."""

    HOUR = START.replace(minute=0, second=0)

    def test_whole_rows_that_landed_uncommitted_are_followed_by_rollups_at_once(self) -> None:
        store: dict[tuple[str, str, datetime], CandleRecord] = {}
        candles = LiveCandles()
        candles.tick([("CCC", Decimal(1), 100)], START)
        rows, committed, _ = candles.due()
        land(store, rows)
        committed()
        candles.tick([], START + timedelta(seconds=61))  # 12:01: CCC settles (written whole)...
        land(store, candles.due().rows)  # ...and its rows land, but the commit raised
        candles.tick([("CCC", Decimal(1), 100)], START + timedelta(seconds=63))
        rows, committed, _ = candles.due()
        land(store, rows)
        committed()
        assert read(store)["CCC", "1h", self.HOUR].volume == 2
        hour = resumed(store, 200).current("CCC", Interval.HOUR)  # a take-over, no flush
        assert hour is not None
        assert hour.volume == 2

    def test_rollups_committed_after_a_later_turn_are_written_again_at_once(self) -> None:
        store: dict[tuple[str, str, datetime], CandleRecord] = {}
        candles = LiveCandles()

        tick = ticks_of(candles)

        for seconds in (2, 63):  # 12:00 and 12:01, written
            tick(seconds, ("AAA", "BBB"))
            rows, committed, _ = candles.due()
            land(store, rows)
            committed()
        tick(124, ("AAA", "BBB"))  # 12:02, AAA's minute of five: its rollups land...
        rows, late, _ = candles.due()
        land(store, rows)  # ...and their commit is acknowledged only later
        tick(185, ("BBB",))  # 12:03: AAA settles, written whole and committed
        rows, committed, _ = candles.due()
        land(store, rows)
        committed()
        late()
        tick(187, ("AAA",))  # AAA ticks again in 12:03
        rows, committed, _ = candles.due()
        land(store, rows)
        committed()
        assert read(store)["AAA", "1h", self.HOUR].volume == 4
        hour = resumed(store, 200).current("AAA", Interval.HOUR)
        assert hour is not None
        assert hour.volume == 4

    def test_whole_rows_that_land_after_a_later_turns_rollups_are_written_again(self) -> None:
        store: dict[tuple[str, str, datetime], CandleRecord] = {}
        candles = LiveCandles()

        tick = ticks_of(candles)

        tick(2, ("AAA", "BBB"))  # 12:00
        rows, committed, _ = candles.due()
        land(store, rows)
        committed()
        tick(63, ("BBB",))  # 12:01: AAA did not tick, and is written whole...
        whole, whole_committed, _ = candles.due()  # ...by a turn still in flight
        tick(65, ("AAA",))  # AAA ticks again: the next turn writes its rollups at once
        rows, committed, _ = candles.due()
        land(store, rows)
        committed()
        land(store, whole)  # the turn in flight lands last, over them
        whole_committed()
        tick(67, ("AAA", "BBB"))
        rows, committed, _ = candles.due()  # so its hour and day are written again
        land(store, rows)
        committed()
        live = candles.current("AAA", Interval.HOUR)
        assert live is not None
        assert read(store)["AAA", "1h", self.HOUR].volume == live.volume == 3  # $1.00 a tick
        hour = resumed(store, 200).current("AAA", Interval.HOUR)
        assert hour is not None
        assert hour.volume == 3


def land(store: dict[tuple[str, str, datetime], CandleRecord], rows: list[CandleRecord]) -> None:
    store.update({(r.asset_id, r.interval, r.open_time): r for r in rows})


class TestAgainstTheTicks:
    """Whatever the turns, failed writes, restarts and ticks an asset misses, the store ends up
    with every candle of every interval exactly as the ticks make it, read as the candles route
    reads it (an open hour or day merged with its later minutes): open the first price of its
    bucket, high and low the extremes, close the last, volume the sum. And once everything is
    written, no row needs a minute row but the current minute's, which retention keeps."""

    @given(
        steps=st.lists(
            st.tuples(
                st.sampled_from([2, 2, 2, 20, 61, 3_600, 86_400]),  # seconds to the next tick
                st.integers(min_value=1, max_value=99),  # the price
                st.sampled_from(
                    ["write", "write", "fail", "landed", "late", "restart", "take over", "none"]
                ),
                st.booleans(),  # whether the third asset ticks
            ),
            max_size=60,
        ),
        per_write=st.integers(min_value=1, max_value=3),
    )
    # A restart last, the third asset a minute behind: its hour and day are written whole.
    @example(
        steps=[(2, 5, "write", True), (61, 6, "write", False), (2, 7, "restart", False)],
        per_write=3,
    )
    # Another process takes over after minutes whose closes no hour row holds yet: it merges
    # the stored minutes since the hour's `rolled_until` (fails if `resume` ignores them).
    @example(
        steps=[(2, 5, "write", True), (61, 6, "write", True), (61, 7, "write", True),
               (2, 8, "take over", True), (61, 9, "write", True)],
        per_write=1,
    )  # fmt: skip
    # An asset written whole (it missed a minute) ticks again: its next minute's close must
    # reach its hour at once, the whole row having no `rolled_until` to merge from.
    @example(
        steps=[(2, 1, "write", True), (61, 1, "write", False), (2, 1, "write", True),
               (2, 1, "take over", False)],
        per_write=3,
    )  # fmt: skip
    # A turn acknowledged only after later turns wrote the third asset whole: its rows are
    # written again, and whole (not as rollups pointing at a minute retention deletes).
    @example(
        steps=[(2, 5, "late", True), (61, 6, "write", False), (2, 7, "write", False)],
        per_write=3,
    )
    def test_the_store_holds_each_bucket_of_the_ticks(
        self, steps: list[tuple[int, int, str, bool]], per_write: int
    ) -> None:
        store: dict[tuple[str, str, datetime], CandleRecord] = {}
        late: list[Callable[[], None]] = []  # turns that landed, acknowledged later
        expected: dict[tuple[str, str, datetime], list[Decimal]] = {}
        candles, moment = LiveCandles(assets_per_write=per_write), START
        for seconds, price, then, third in steps:
            moment += timedelta(seconds=seconds)
            moves = [(a, Decimal(price + n), 100 + n) for n, a in enumerate(IDS[: 2 + third])]
            candles.tick(moves, moment)
            for asset_id, value, cents in moves:
                for interval in (Interval.MINUTE, Interval.HOUR, Interval.DAY):
                    key = (asset_id, interval.value, bucket_start(moment, interval))
                    o, h, lo, _, v = expected.get(key, [value, value, value, value, Decimal(0)])
                    expected[key] = [o, max(h, value), min(lo, value), value, v + cents]
            if then in ("write", "fail", "landed", "late"):  # landed: the commit raised after
                rows, committed, _ = candles.due()  # it did; late: it is acknowledged later
                if then != "fail":
                    land(store, rows)
                if then == "write":
                    committed()
                elif then == "late":
                    late.append(committed)
            elif then == "take over":  # the turns' rows only: no flush (rollups may wait)
                # Enough of them for what closed (one a turn of its asset), then the open.
                for _ in range(candles.turns * (len(INTERVALS) + 1)):
                    rows, committed, _ = candles.due()
                    land(store, rows)
                    committed()
                candles, late = resumed(store, per_write), []
            elif then == "restart":
                for acknowledged in late:
                    acknowledged()
                rows, committed, _ = candles.due(everything=True)
                land(store, rows)
                committed()
                candles, late = resumed(store, per_write), []
        for acknowledged in late:
            acknowledged()
        rows, *_ = candles.due(everything=True)
        land(store, rows)
        assert {k: [c.open, c.high, c.low, c.close, c.volume] for k, c in read(store).items()} == {
            k: [o, h, lo, c, v / 100] for k, (o, h, lo, c, v) in expected.items()
        }
        current = bucket_start(moment, Interval.MINUTE)
        assert {r.rolled_until for r in store.values()} <= {None, current}


def read(store: dict[tuple[str, str, datetime], CandleRecord]) -> dict[object, Candle]:
    """Every stored candle as the candles route reads it (`service._completed`)."""
    candles = {}
    for key, row in store.items():
        candle = _candle(row)
        if row.rolled_until is not None:
            end = row.open_time + candle.interval.length
            minutes = [
                _candle(m) for (asset_id, interval, opened), m in sorted(store.items())
                if asset_id == row.asset_id and interval == "1m"
                and row.rolled_until <= opened < end
            ]  # fmt: skip
            candle = complete(candle, minutes)
        candles[key] = candle
    return candles


def resumed(store: dict[tuple[str, str, datetime], CandleRecord], per_write: int) -> LiveCandles:
    """Live candles resumed from `store` as the price ticker does: its latest rows, and the
    minutes that an hour's or a day's `rolled_until` a few minutes old leaves out."""
    rows = latest(store)
    ranges = LiveCandles.minutes_to_read(rows)
    minutes = [
        row for (asset_id, interval, opened), row in store.items()
        if interval == "1m" and asset_id in ranges
        and ranges[asset_id][0] <= opened < ranges[asset_id][1]
    ]  # fmt: skip
    candles = LiveCandles(assets_per_write=per_write)
    candles.resume(rows, minutes)
    return candles


def latest(store: dict[tuple[str, str, datetime], CandleRecord]) -> list[CandleRecord]:
    """What a restart reads: the latest stored row of each asset and interval."""
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
