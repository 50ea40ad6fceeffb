"""The price ticker's current candles (1 m, 1 h and 1 d of every asset), moved in place on each
tick and written to the store in turns.

Why: a tick used to make three new `Candle` values per asset and write them all, 3,000 rows a
tick for 1,000 assets (the larger part of a tick's 61-71 ms). Here a tick moves plain mutable
state (the bucket of each interval is computed once per tick, not once per asset) and a
`CandleRecord` is made only for a row being written. With more than `assets_per_write` assets,
each tick writes the candles of one group of them in turn, so each asset's rows in the store
are at most `turns` ticks behind the live ones (with the default catalog, one group: every tick
writes everything, as before). A candle whose bucket closed before its turn came is written
with its final figures at that turn; `flush` writes everything due at once (on stop)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from decimal import Decimal

from orderproc.common.storage.records import CandleRecord
from orderproc.inventory.candles import Candle, Interval, bucket_start

INTERVALS = (Interval.MINUTE, Interval.HOUR, Interval.DAY)
ASSETS_PER_WRITE = 200


class _Live:
    """One asset's current candle of one interval; `changes` counts its moves, `written` the
    count that reached the store."""

    __slots__ = ("cents", "changes", "close", "high", "interval", "low", "open", "open_time",
                 "written")  # fmt: skip

    def __init__(self, interval: Interval, open_time: datetime, price: Decimal, cents: int) -> None:
        self.interval = interval
        self.open_time = open_time
        self.open = self.high = self.low = self.close = price
        self.cents = cents  # the volume, in integer cents: a tick adds an int, not a Decimal
        self.changes = 1
        self.written = 0

    @property
    def volume(self) -> Decimal:
        return Decimal(self.cents).scaleb(-2)

    def record(self, asset_id: str) -> CandleRecord:
        return CandleRecord(
            asset_id,
            self.interval.value,
            self.open_time,
            self.open,
            self.high,
            self.low,
            self.close,
            self.volume,
        )


class LiveCandles:
    def __init__(self, *, assets_per_write: int = ASSETS_PER_WRITE) -> None:
        self.assets_per_write = assets_per_write
        self._live: dict[str, list[_Live]] = {}  # asset id → its candles, in INTERVALS order
        self._closed: dict[str, list[CandleRecord]] = {}  # closed before their turn came
        self._turn = 0

    @property
    def turns(self) -> int:
        """Ticks it takes every asset's candles to reach the store once."""
        return max(1, math.ceil(len(self._live) / self.assets_per_write))

    def tick(self, moves: Iterable[tuple[str, Decimal, int]], moment: datetime) -> None:
        """Each (asset id, price, volume in cents) of a tick at `moment` extends its candles
        or opens new ones."""
        opens = [bucket_start(moment, interval) for interval in INTERVALS]
        live, closed = self._live, self._closed
        for asset_id, price, cents in moves:
            candles = live.get(asset_id)
            if candles is None:
                live[asset_id] = [
                    _Live(i, o, price, cents) for i, o in zip(INTERVALS, opens, strict=True)
                ]
                continue
            for index, candle in enumerate(candles):
                if candle.open_time != opens[index]:
                    if candle.written != candle.changes:
                        closed.setdefault(asset_id, []).append(candle.record(asset_id))
                    candles[index] = _Live(candle.interval, opens[index], price, cents)
                    continue
                if price > candle.high:
                    candle.high = price
                elif price < candle.low:
                    candle.low = price
                candle.close = price
                candle.cents += cents
                candle.changes += 1

    def due(self, *, everything: bool = False) -> tuple[list[CandleRecord], Callable[[], None]]:
        """The rows this turn writes (every asset's changed candles when `everything`), and
        what to call once they are committed (until then they stay due)."""
        turns = 1 if everything else self.turns
        turn, self._turn = self._turn % turns, self._turn + 1
        rows: list[CandleRecord] = []
        marks: list[tuple[_Live, int]] = []
        closed_ids: list[str] = []
        for position, (asset_id, candles) in enumerate(self._live.items()):
            if position % turns != turn:
                continue
            for candle in candles:
                if candle.written != candle.changes:
                    rows.append(candle.record(asset_id))
                    marks.append((candle, candle.changes))
            if asset_id in self._closed:
                rows.extend(self._closed[asset_id])
                closed_ids.append(asset_id)

        def committed() -> None:
            for candle, changes in marks:
                candle.written = max(candle.written, changes)
            for asset_id in closed_ids:
                self._closed.pop(asset_id, None)

        return rows, committed

    def resume(self, latest: Sequence[Candle]) -> None:
        """Go on from candles the store holds (the latest of each asset and interval), so a
        restart does not reopen them."""
        for candle in latest:
            candles = self._live.get(candle.asset_id)
            index = INTERVALS.index(candle.interval)
            if candles is None:
                candles = self._live[candle.asset_id] = [
                    _Live(i, candle.open_time, candle.close, 0) for i in INTERVALS
                ]
                for other in candles:
                    other.open_time = datetime.min.replace(tzinfo=candle.open_time.tzinfo)
                    other.written = other.changes
            cents = int(candle.volume.scaleb(2).to_integral_value())
            live = candles[index] = _Live(candle.interval, candle.open_time, candle.open, cents)
            live.high, live.low, live.close = candle.high, candle.low, candle.close
            live.written = live.changes  # it is the store's already

    def current(self, asset_id: str, interval: Interval) -> Candle | None:
        """The live candle (for tests and the curious)."""
        candles = self._live.get(asset_id)
        if candles is None:
            return None
        live = candles[INTERVALS.index(interval)]
        if live.open_time.year == 1:
            return None
        return Candle(
            asset_id,
            interval,
            live.open_time,
            live.open,
            live.high,
            live.low,
            live.close,
            live.volume,
        )
