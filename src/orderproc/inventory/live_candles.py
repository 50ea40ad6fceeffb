"""The price ticker's current candles (1 m, 1 h and 1 d of every asset), moved in place on each
tick and written to the store in turns.

Why: a tick used to make three new `Candle` values per asset and write them all, 3,000 rows a
tick for 1,000 assets (the larger part of a tick's 61-71 ms). Here a tick moves one asset's
current minute in place. Its hour and day are rolled up from minutes: each keeps the minutes
that closed within it (`_Rollup`), and only changes when a minute closes.

So the store holds an open hour or day as its closed minutes, with `rolled_until` (the minute
that was current when it was written) on its row, and a reader merges the 1m rows from that
time on (`candles.complete`): a turn writes an asset's minute, and its hour and day only when
a minute has closed since their last rows, in the asset's own minute of every `ROLLUP_EVERY`
(`_rollups_due`), instead of on every tick (600 rows a tick for 1,000 assets became 200 on most
ticks; the turns after a minute's close write about 480, not 800). A closed hour or day is
written whole.

With more than `assets_per_write` assets, each tick writes the candles of one group of them in
turn, so each asset's rows in the store are at most `turns` ticks behind the live ones (with
the default catalog, one group: every tick writes everything due), a few turns more right after
a close (`due`: closed candles first, one a turn). A candle whose bucket closed before its turn
came is written with its final figures at that turn; `due(everything=True)` writes everything
due at once (on stop). A stored hour's `rolled_until` is never after its asset's latest stored
minute (that minute is written with it, or first) and, while the asset ticks, a few minutes
before it at most; `resume` merges the stored minutes between them."""

from __future__ import annotations

import itertools
import math
import zlib
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import NamedTuple

from orderproc.common.storage.records import CandleRecord
from orderproc.inventory.candles import Candle, Interval, bucket_start

INTERVALS = (Interval.MINUTE, Interval.HOUR, Interval.DAY)
ROLLED_UP = INTERVALS[1:]  # made of minutes
ASSETS_PER_WRITE = 200
# A closed minute reaches an asset's stored hour and day within this many minutes, each asset
# in its own of them (`_rollups_due`), so that the rollups of a minute's close are not all
# written in the few ticks after it.
ROLLUP_EVERY = 5
NEVER = datetime.min.replace(tzinfo=UTC)  # the open time of a minute not begun
_MINUTE_INTERVAL, _HOUR_INTERVAL, _DAY_INTERVAL = INTERVALS
_MINUTE = Interval.MINUTE.value
_HOUR = Interval.HOUR.length
_Opens = tuple[datetime, ...]  # a minute's open time, then its hour's and its day's


class _Rollup:
    """A bucket's figures: an open hour's or day's closed minutes, merged (its first price and
    no volume while none has closed); or a candle that closed before its turn came, kept until
    then, with its `interval` (set when it closes: at midnight every asset closes three, and
    a tuple of each with its interval was three more objects an asset to make and collect)."""

    __slots__ = ("cents", "close", "high", "interval", "low", "open", "open_time")
    interval: Interval  # set once it closes (`LiveCandles._roll`)

    def __init__(
        self, open_time: datetime, open_: Decimal, high: Decimal, low: Decimal, close: Decimal,
        cents: int,
    ) -> None:  # fmt: skip
        self.open_time = open_time
        self.open, self.high, self.low, self.close, self.cents = open_, high, low, close, cents

    @staticmethod
    def opening(open_time: datetime, price: Decimal) -> _Rollup:
        """A bucket no minute of which has closed yet. (Every asset's new hour and day in the
        tick after an hour's close: made slot by slot, without `__init__`'s call.)"""
        opened = _new_rollup(_Rollup)
        opened.open_time, opened.cents = open_time, 0
        opened.open = opened.high = opened.low = opened.close = price
        return opened

    @staticmethod
    def of(open_time: datetime, minute: _Minute) -> _Rollup:
        """A closed minute's figures (most assets' at every minute's close: slot by slot)."""
        closed = _new_rollup(_Rollup)
        closed.open_time, closed.open, closed.high = open_time, minute.open, minute.high
        closed.low, closed.close, closed.cents = minute.low, minute.close, minute.cents
        closed.interval = _MINUTE_INTERVAL
        return closed

    def merged(self, minute: _Minute) -> _Rollup:
        """These figures with `minute` in them, as new figures."""
        merged = _Rollup(self.open_time, self.open, self.high, self.low, self.close, self.cents)
        merged.add(minute)
        return merged

    def add(self, minute: _Minute) -> None:
        self.take(minute.high, minute.low, minute.close, minute.cents)

    def take(self, high: Decimal, low: Decimal, close: Decimal, cents: int) -> None:
        """A later closed minute's figures into these."""
        if high > self.high:
            self.high = high
        if low < self.low:
            self.low = low
        self.close = close
        self.cents += cents


_new_rollup = object.__new__


class _Minute:
    """One asset's candles: its current minute, moved in place each tick, and the hour and day
    it belongs to (`rollups`: their closed minutes; None only before a first minute). `changes`
    counts the ticks and `rolls` the changes of the rollups; `written` and `rolls_written`
    the counts that reached the store. `settled`: the asset did not tick in a later minute, and
    its hour and day were written whole, this minute included (`whole_rows`)."""

    __slots__ = ("began", "cents", "changes", "close", "high", "low", "open", "open_time",
                 "opens", "rolls", "rolls_written", "rollups", "settled", "slot", "stored_by",
                 "stored_opens", "waits_from", "written")  # fmt: skip

    def __init__(self, opens: _Opens, price: Decimal, cents: int, slot: int = 0) -> None:
        self.opens = opens  # the minute's open time, its hour's and its day's (the tick's)
        self.open_time = opens[0]
        self.open = self.high = self.low = self.close = price
        self.cents = cents  # the volume, in integer cents: a tick adds an int, not a Decimal
        self.rollups: list[_Rollup | None] = [
            None if opened is NEVER else _Rollup.opening(opened, price) for opened in opens[1:]
        ]
        self.changes = self.rolls = self.began = 1
        self.written = self.rolls_written = 0
        self.settled = False
        # Which minute of five its rollups wait for, and (`// ROLLUP_EVERY`) which half of the
        # assets it is in, whose new hour's first rows wait a turn (`_rollups_due`).
        self.slot = slot
        self.stored_opens: _Opens | None = None  # the hour and day of its rollups' last rows
        self.stored_by = -1  # the last turn that wrote them (`LiveCandles.due`)
        self.waits_from = -1  # `rolls` when its open candles began to wait for its closed

    def start(self, opens: _Opens, price: Decimal, cents: int) -> None:
        """The next minute (`LiveCandles._roll` has closed the last one into its rollups)."""
        self.opens, self.open_time = opens, opens[0]
        self.open = self.high = self.low = self.close = price
        self.cents = cents
        self.changes += 1
        self.began = self.changes  # its row is the store's once `written` reaches this

    def candle(self, asset_id: str, interval: Interval) -> Candle:
        """The current candle of `interval`: the minute, merged into its hour or day."""
        if interval is Interval.MINUTE:
            return Candle(asset_id, interval, self.open_time, self.open, self.high, self.low,
                          self.close, _dollars(self.cents))  # fmt: skip
        rollup = self.rollups[ROLLED_UP.index(interval)]
        assert rollup is not None
        whole = rollup.merged(self)
        return Candle(asset_id, interval, whole.open_time, whole.open, whole.high, whole.low,
                      whole.close, _dollars(whole.cents))  # fmt: skip

    def row(self, asset_id: str) -> CandleRecord:
        """The minute as the store's row."""
        return CandleRecord(asset_id, _MINUTE, self.open_time, self.open, self.high, self.low,
                            self.close, _dollars(self.cents))  # fmt: skip

    def whole_rows(self, asset_id: str) -> list[CandleRecord]:
        """The hour's and the day's rows with this minute merged in: whole as they stand."""
        return [
            _row(asset_id, interval, rollup.merged(self))
            for interval, rollup in zip(ROLLED_UP, self.rollups, strict=True)
            if rollup is not None
        ]

    def rollup_rows(self, asset_id: str) -> list[CandleRecord]:
        """The hour's and the day's rows: their minutes before this one (`rolled_until`)."""
        return [
            _row(asset_id, interval, rollup, rolled_until=self.open_time)
            for interval, rollup in zip(ROLLED_UP, self.rollups, strict=True)
            if rollup is not None
        ]


class Turn(NamedTuple):
    """What one turn writes: its candle rows, what to call once they are committed (until
    then they stay due), and the assets whose turn it is (None: every asset)."""

    rows: list[CandleRecord]
    committed: Callable[[], None]
    assets: frozenset[str] | None


class LiveCandles:
    def __init__(
        self, *, assets_per_write: int = ASSETS_PER_WRITE, max_turns: int | None = None
    ) -> None:
        self.assets_per_write = assets_per_write
        self.max_turns = max_turns  # more assets a write rather than more turns past it
        self._live: dict[str, _Minute] = {}
        # Candles that closed before their turn came, by asset.
        self._closed: dict[str, list[_Rollup]] = {}
        self._turn = 0
        self._opened = NEVER  # the latest tick's minute

    @property
    def turns(self) -> int:
        """Ticks it takes every asset's candles to reach the store once."""
        turns = math.ceil(len(self._live) / self.assets_per_write)
        return max(1, turns if self.max_turns is None else min(turns, self.max_turns))

    def tick(self, moves: Iterable[tuple[str, Decimal, int]], moment: datetime) -> None:
        """Each (asset id, price, volume in cents) of a tick at `moment` extends its minute or
        opens the next one. A move of an earlier minute than the asset's current one (a tick
        that a later one overtook) extends the current one: a minute never rolls back."""
        opens = tuple(bucket_start(moment, interval) for interval in INTERVALS)
        opened, live = opens[0], self._live
        self._opened = max(self._opened, opened)
        for asset_id, price, cents in moves:
            minute = live.get(asset_id)
            if minute is None:
                live[asset_id] = _Minute(opens, price, cents, _slot(asset_id))
            elif minute.open_time < opened:
                self._roll(asset_id, minute, opens, price, cents)
            else:  # its minute, or a move of an earlier one that a later tick overtook (a
                # sandbox admin's price racing a tick): it goes into the current minute
                if price > minute.high:
                    minute.high = price
                elif price < minute.low:
                    minute.low = price
                minute.close = price
                minute.cents += cents
                minute.changes += 1
                if minute.settled:  # a late move of an asset written whole: whole again
                    minute.settled = False

    def _roll(
        self, asset_id: str, minute: _Minute, opens: _Opens, price: Decimal, cents: int
    ) -> None:
        """The minute closed: it goes into its hour and day, and what the store lacks is kept
        (as `_Rollup`s, made into rows at the asset's turn: every asset rolls in the same tick)
        before the next minute opens: the minute if its last figures were not written, and an
        hour or day that closed with it, whole. An hour or day that opens gets its first price.
        (Every asset rolls in one tick, so this is spelt out: the hour and the day without a
        loop, the day's close checked only when the hour closed, and the closed added to an
        asset's list only if it has one: 1.43 ms for 1,000 assets at a minute's close,
        against 1.78 with a loop over them. `take` spelt out inline saved 0.1 ms more.)"""
        rollups = minute.rollups
        if minute.open_time is not NEVER:
            was = minute.opens
            closed = [_Rollup.of(was[0], minute)] if minute.written != minute.changes else []
            high, low, close, cents_in = minute.high, minute.low, minute.close, minute.cents
            hour, day = rollups
            assert hour is not None  # a minute that began has its hour and day
            assert day is not None
            hour.take(high, low, close, cents_in)
            day.take(high, low, close, cents_in)
            if was[1] != opens[1]:  # the hour closed too, and the day if it was its last
                hour.interval = _HOUR_INTERVAL
                closed.append(hour)
                rollups[0] = _Rollup.opening(opens[1], price)
                if was[2] != opens[2]:
                    day.interval = _DAY_INTERVAL
                    closed.append(day)
                    rollups[1] = _Rollup.opening(opens[2], price)
            if closed:
                waiting = self._closed.get(asset_id)
                if waiting is None:  # most assets: no list made to be extended
                    self._closed[asset_id] = closed
                else:
                    waiting += closed
        else:  # resumed without a minute: its hour and day as stored, if they are this one's
            for index in (0, 1):
                rollup = rollups[index]
                if rollup is None or rollup.open_time != opens[index + 1]:
                    rollups[index] = _Rollup.opening(opens[index + 1], price)
        minute.rolls += 1
        minute.settled = False
        minute.start(opens, price, cents)

    def due(self, *, everything: bool = False, closed_first: bool = True) -> Turn:
        """The next turn: its assets' changed candles (every asset's when `everything`): the
        minute on each tick, its hour and day when a minute closed, and what closed. An asset
        that did not tick since a later minute opened (inactive, or its feed had no price for
        it) has its hour and day written whole, its minute in them, so that the store never
        needs a minute row that retention will delete.

        Where assets take turns, an asset's closed candles go first, one a turn, the oldest
        first, and its open ones wait for a turn with none: every asset's minute closes in the
        same tick, and writing the closed minute, the new one and their hour and day in one
        turn made the turns after a minute's close write 480 rows (1,000 assets), 1,000 after
        an hour's and 1,200 after a day's. The closed go with the open ones, as before, when
        `everything` or not `closed_first` (a sandbox admin's price: the store has it at
        once), when more than one close waits or a minute closed since the open ones began
        to wait (turns a minute apart or slower, which would never write them), and where the
        store's row of the asset's hour may be whole or is missing (`_alone`)."""
        turns = 1 if everything else self.turns
        serial = self._turn
        turn, self._turn = serial % turns, serial + 1
        rows: list[CandleRecord] = []
        marks: list[tuple[_Minute, int, int | None, bool, _Opens]] = []
        taken: list[tuple[str, list[_Rollup]]] = []  # the closed, by asset
        assets: list[str] = []
        opened = self._opened
        for asset_id, minute in itertools.islice(self._live.items(), turn, None, turns):
            if turns > 1:
                assets.append(asset_id)
            waiting = self._closed.get(asset_id)
            if waiting:
                first = (
                    closed_first
                    and turns > 1
                    and _closes(waiting) == 1
                    and minute.waits_from in (-1, minute.rolls)  # no minute closed since
                    and _alone(waiting[:1], minute.stored_opens)
                )
                closed = waiting[:1] if first else waiting[:]
                rows += [_row(asset_id, candle.interval, candle) for candle in closed]
                taken.append((asset_id, closed))
                if first:
                    minute.waits_from = minute.rolls
                    continue  # its open candles wait for a turn with nothing closed
            minute.waits_from = -1
            if minute.open_time is not NEVER:
                changed = minute.written != minute.changes
                settle = opened is not NEVER and minute.open_time != opened and not minute.settled
                rolled = settle or (
                    minute.rolls_written != minute.rolls
                    and (everything or _rollups_due(minute, spread=closed_first and turns > 1))
                )
                if changed:
                    rows.append(minute.row(asset_id))
                if settle:
                    rows += minute.whole_rows(asset_id)
                elif rolled:
                    rows += minute.rollup_rows(asset_id)
                if rolled:  # unknown until this turn commits: the next roll writes them at once
                    minute.stored_opens, minute.stored_by = None, serial
                if changed or rolled:
                    marks.append((minute, minute.changes, minute.rolls if rolled else None,
                                  settle, minute.opens))  # fmt: skip

        def committed() -> None:
            for minute, changes, rolls, settled, opens in marks:
                minute.written = max(minute.written, changes)
                if rolls is None:  # its hour and day wait (`_rollups_due`)
                    continue
                if minute.stored_by == serial:  # no later turn wrote its hour and day
                    # Whole rows (settled) hold the current minute, with no `rolled_until`
                    # to merge from: the next minute's close writes the rollups at once.
                    minute.stored_opens = None if settled else opens
                    minute.rolls_written = max(minute.rolls_written, rolls)
                    if settled and minute.rolls == rolls and minute.changes == changes:
                        minute.settled = True  # no tick rolled or moved it since
                else:  # they may have landed over a later turn's: written again next turn,
                    minute.stored_opens = None  # whole if the asset is still behind (settle)
                    minute.rolls_written = min(minute.rolls_written, minute.rolls - 1)
                    minute.settled = False
            for asset_id, closed in taken:  # those written; one that closed meanwhile stays
                left = self._closed.get(asset_id, [])
                if left[: len(closed)] == closed:  # nearly always: they were the first
                    left = left[len(closed) :]  # (`_Rollup`s compare by identity)
                else:
                    written = {id(entry) for entry in closed}
                    left = [entry for entry in left if id(entry) not in written]
                if left:
                    self._closed[asset_id] = left
                else:
                    self._closed.pop(asset_id, None)

        return Turn(rows, committed, None if turns == 1 else frozenset(assets))

    @staticmethod
    def minutes_to_read(latest: Sequence[CandleRecord]) -> dict[str, tuple[datetime, datetime]]:
        """The stored minutes `resume` needs besides `latest` (the latest row of each asset and
        interval): where an asset's stored hour or day holds its minutes up to a minute before
        its latest stored one (`rolled_until`, a few minutes old: `_rollups_due`), those from
        then on. By asset: (from, until), the latest minute excluded."""
        last = {row.asset_id: row.open_time for row in latest if row.interval == _MINUTE}
        ranges: dict[str, tuple[datetime, datetime]] = {}
        for row in latest:
            until = last.get(row.asset_id)
            since = row.rolled_until
            if until is None or since is None or not since < until or row.interval == _MINUTE:
                continue
            if bucket_start(until, Interval(row.interval)) != row.open_time:
                continue  # an hour or day before the minute's: closed, and stored whole
            known = ranges.get(row.asset_id)
            ranges[row.asset_id] = (since if known is None else min(since, known[0]), until)
        return ranges

    def resume(self, latest: Sequence[CandleRecord], minutes: Iterable[CandleRecord] = ()) -> None:
        """Go on from the rows the store holds (the latest of each asset and interval), so a
        restart does not reopen them. A stored hour or day holds the minutes before its
        `rolled_until`: the stored minute's open time, or a few minutes before it, in which case
        `minutes` holds the stored minutes since (`minutes_to_read`), and the hour or day is
        written again at the asset's next turn. One written before schema 7 (no
        `rolled_until`) holds the minute as well, so its rollup is the row less the minute's
        volume, and it is written again too, with `rolled_until`."""
        by_asset: dict[str, dict[str, CandleRecord]] = {}
        for row in latest:
            by_asset.setdefault(row.asset_id, {})[row.interval] = row
        earlier: dict[str, list[CandleRecord]] = {}
        for row in sorted(minutes, key=lambda m: m.open_time):
            earlier.setdefault(row.asset_id, []).append(row)
        for asset_id, stored in by_asset.items():
            last = stored.get(_MINUTE)
            minute = _Minute((NEVER, NEVER, NEVER), Decimal(0), 0, _slot(asset_id))
            if last is not None:
                opens = tuple(bucket_start(last.open_time, interval) for interval in INTERVALS)
                minute.start(opens, last.open, _cents(last.volume))
                minute.high, minute.low, minute.close = last.high, last.low, last.close
            rewrite = False
            for index, interval in enumerate(ROLLED_UP):
                whole = stored.get(interval.value)
                if whole is None:
                    continue
                if last is not None and minute.opens[index + 1] != whole.open_time:
                    continue  # an hour or day before the minute's: closed and stored
                rollup = _Rollup(whole.open_time, whole.open, whole.high, whole.low,
                                 whole.close, _cents(whole.volume))  # fmt: skip
                since = whole.rolled_until
                if last is not None and since is None:  # it holds the minute too
                    rollup.cents = max(0, rollup.cents - minute.cents)
                    rewrite = True
                elif last is not None and since is not None and since < last.open_time:
                    for row in earlier.get(asset_id, ()):
                        if since <= row.open_time < last.open_time:
                            rollup.take(row.high, row.low, row.close, _cents(row.volume))
                    rewrite = True
                minute.rollups[index] = rollup
            if last is not None and None in minute.rollups:  # no row of its hour or day
                minute.rollups = [
                    rollup or _Rollup.opening(opened, last.open)
                    for rollup, opened in zip(minute.rollups, minute.opens[1:], strict=True)
                ]
                rewrite = True
            minute.written = minute.changes  # it is the store's already
            minute.rolls_written = minute.rolls - 1 if rewrite else minute.rolls
            minute.stored_opens = None if rewrite else minute.opens
            self._live[asset_id] = minute
            if last is not None:  # the store's latest minute: an asset behind it settles
                self._opened = max(self._opened, last.open_time)

    def closed_written(self) -> bool:
        """Whether every closed hour and day is in the store whole, so that no stored row
        needs a minute older than a few minutes: none waits for its asset's turn (`_closed`;
        a closed minute does not count, it needs no other row), and no asset that stopped
        ticking waits to be written whole (settle). Within `turns` ticks of an hour's close."""
        for closed in self._closed.values():
            if any(candle.interval is not Interval.MINUTE for candle in closed):
                return False
        opened = self._opened
        return all(
            minute.settled
            or minute.open_time is NEVER
            or (minute.open_time == opened and _rolled_into_current(minute))
            for minute in self._live.values()
        )

    def current(self, asset_id: str, interval: Interval) -> Candle | None:
        """The live candle of `interval` (the candles route's open hour or day, where this
        process ticks; None before the asset's first tick)."""
        minute = self._live.get(asset_id)
        if minute is None or minute.open_time is NEVER:
            return None
        return minute.candle(asset_id, interval)


def _rolled_into_current(minute: _Minute) -> bool:
    """Whether the store holds the asset's current hour and day as rollups, whose
    `rolled_until` is then within the hour: not while a closed hour's is written and the new
    one's rows wait (its day's row may still need minutes from before a long pause)."""
    stored = minute.stored_opens
    return stored is not None and stored[1:] == minute.opens[1:]


def _closes(waiting: list[_Rollup]) -> int:
    """How many closes left `waiting`: each leaves its candles in the order minute, hour, day."""
    if len(waiting) == 1:  # most assets, after a minute's close
        return 1
    closes = 1
    for before, after in itertools.pairwise(waiting):
        if _ORDER[after.interval] <= _ORDER[before.interval]:
            closes += 1
    return closes


_ORDER = {interval: place for place, interval in enumerate(INTERVALS)}


def _alone(closed: list[_Rollup], stored: _Opens | None) -> bool:
    """Whether `closed` may be written without the asset's open candles: where the store holds
    its closed minutes' hour and day as rollups (`stored`: their rows have a `rolled_until`),
    which a reader, and `resume`, merge the minutes since into. Not over a whole row (unknown
    `stored`), which is read as holding the latest stored minute, nor where the store has no
    row of the minutes' hour, which `resume` would open at the latest minute, without the
    earlier ones."""
    if stored is None:
        return False
    hour = stored[1]
    return all(
        candle.interval is not Interval.MINUTE or hour <= candle.open_time < hour + _HOUR
        for candle in closed
    )


def _rollups_due(minute: _Minute, *, spread: bool = False) -> bool:
    """Whether an asset's turn writes its hour and day, a minute having closed into them since
    their last rows: in its own minute of every `ROLLUP_EVERY` (`slot`), or at once when the
    store has no row of this hour or day yet, or when that many minutes wait. Until then its
    stored rows' `rolled_until` is a few minutes old and a reader merges the minutes since.

    `spread` (assets take turns): half the assets write a new hour's first rows a turn after
    its first minute's, not with it (a turn after an hour's close wrote 600 rows at 1,000
    assets, the minute, hour and day of each of its 200): the store has then one minute of the
    hour and no row of it, which a reader and a `resume` read as the hour opening there."""
    stored = minute.stored_opens
    if stored is None:
        return True
    opens = minute.opens
    if stored[1:] != opens[1:]:
        return not (
            spread
            and minute.slot >= ROLLUP_EVERY  # the second half
            # The first minute of each bucket the store has no row of: the only one of it.
            and minute.open_time == opens[1]
            and (stored[2] == opens[2] or minute.open_time == opens[2])
            and minute.written < minute.began  # not yet the store's: it goes first
        )
    if minute.rolls - minute.rolls_written >= ROLLUP_EVERY:
        return True
    return (int(minute.open_time.timestamp()) // 60 + minute.slot) % ROLLUP_EVERY == 0


def _slot(asset_id: str) -> int:
    """An asset's minute of every `ROLLUP_EVERY` (`% ROLLUP_EVERY`), and its half of the assets
    (`// ROLLUP_EVERY`): by its id, not by its place in the turns, whose assets would all share
    one."""
    return zlib.crc32(asset_id.encode()) % (2 * ROLLUP_EVERY)


def _dollars(cents: int) -> Decimal:
    # The exact product: the same number as `scaleb(-2)`, with the same exponent, in a third
    # of the time (every candle row a tick writes).
    return Decimal(cents) * _CENT


_CENT = Decimal("0.01")


def _cents(volume: Decimal | None) -> int:
    if volume is None:  # a candle written before schema 5
        return 0
    return int(volume.scaleb(2).to_integral_value())


def _row(
    asset_id: str, interval: Interval, candle: _Rollup, *, rolled_until: datetime | None = None
) -> CandleRecord:
    return CandleRecord(asset_id, interval.value, candle.open_time, candle.open, candle.high,
                        candle.low, candle.close, _dollars(candle.cents), rolled_until)  # fmt: skip
