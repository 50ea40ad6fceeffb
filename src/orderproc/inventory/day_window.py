"""An asset's last 24 hours, by the hour: what its 24 h high, low and change are measured over.

The window is the current hour and the 24 whole hours before it, so it spans 24 to 25 hours,
and its figures are those of the asset's hourly candles: the 24 h high is the highest high of
the candles opening at or after the hour 24 hours before the current one, the low their lowest
low, and the price 24 h ago the open of the first of them (of the current hour's candle when
there is none). The ticks keep the current hour's open, high and low, as its candle has them;
at an hour's close the hour joins the window and the one that fell out of it leaves.

A window starts from the asset's hourly candles in the store (`Catalog.load_hours`), or, where
none reach back that far, from the figures stored with the asset, which stand for the day before
until the next hour closes.

Per tick an asset costs two comparisons here (its hour's high and low). An hour's close costs
more: the window's high and low come from two monotonic queues (the hours whose high no later
hour's reaches, highest first, and the same of lows), so no close walks the window's hours, but
its queues and their prices are cold in memory by then, about 4 µs an asset: done whole in the
tick that closes the hour, it made the catalog's move of 1,000 assets 6.95 ms instead of 2.5,
and midnight's tick 15.7-16.2 ms instead of 11.3-11.6 (bench/ticks.py). So the close is in two
steps: `turn`, at the asset's first move in the new hour, opens that hour (a few assignments),
and `settle` puts the hour that ended in the window and takes out the one older than a day.
With more than 200 assets the catalog settles none in the tick that opens an hour (already the
heaviest of the hour) and a hundred in each tick after it, so some windows still count the hour
25 hours back for the first few ticks of an hour (ten with 1,000 assets; ticks too far apart
for that settle the rest at the next hour's first); with 200 or fewer, all settle at once."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import NamedTuple

from orderproc.inventory.candles import Interval, bucket_start

SPAN = timedelta(hours=24)  # whole hours before the current one


class Hour(NamedTuple):
    start: datetime
    open: Decimal
    high: Decimal
    low: Decimal


_NO_HIGH, _NO_LOW = Decimal("-Infinity"), Decimal("Infinity")  # below and above any price


def hour_of(moment: datetime) -> datetime:
    return bucket_start(moment, Interval.HOUR)


class DayWindow:
    """One asset's window. `base` is the price 24 h ago, `day_high` and `day_low` the window's
    extremes, the current hour's included; `open`, `high` and `low` are the current hour's
    (`service._with_market_move` moves the last three on every tick)."""

    __slots__ = (
        "_closing", "_highs", "_hours", "_lows", "_stand_in", "base", "day_high", "day_low",
        "high", "low", "open", "start",
    )  # fmt: skip

    def __init__(self, start: datetime, price: Decimal, hours: Iterable[Hour] = ()) -> None:
        self.start = start
        self.open = self.high = self.low = price
        # The closed hours in the window, oldest first, as plain tuples (a `Hour` took 240 ns
        # to make, a tuple 40); of those, each whose high no later hour's reaches (so the
        # first is the highest), and each whose low no later hour's reaches.
        self._hours: deque[tuple[datetime, Decimal, Decimal, Decimal]] = deque()
        self._highs: deque[tuple[datetime, Decimal]] = deque()
        self._lows: deque[tuple[datetime, Decimal]] = deque()
        # The hour a `turn` ended, until `settle` puts it in the window.
        self._closing: tuple[datetime, Decimal, Decimal, Decimal] | None = None
        self._stand_in: datetime | None = None  # the start of `seeded`'s hour for the day before
        for hour in sorted(h for h in hours if start - SPAN <= h.start < start):
            self._close(*hour)
        self._figures()

    @classmethod
    def seeded(
        cls,
        start: datetime,
        price: Decimal,
        *,
        before: Decimal | None,
        high: Decimal | None,
        low: Decimal | None,
    ) -> DayWindow:
        """A window without candles: the day before stands as one hour opening 24 h before
        the current one, at `before` (the price 24 h ago) with that day's `high` and `low`, so
        it leaves at the next hour's close. Without them, the window begins now."""
        if before is None and high is None and low is None:
            return cls(start, price)
        opened = before if before is not None and before > 0 else price
        day = Hour(start - SPAN, opened, max(high or price, opened), min(low or price, opened))
        window = cls(start, price, [day])
        window._stand_in = day.start
        return window

    @property
    def hours(self) -> list[Hour]:
        """The closed hours in the window, oldest first."""
        self.settle()
        return [Hour(*hour) for hour in self._hours]

    def with_hours(self, hours: Iterable[Hour]) -> DayWindow:
        """This window with the closed hours of `hours` (the store's candles) as well: one it
        holds too is the two merged (the store's open, the higher high and the lower low: the
        store's row may lag the ticks, by a leader's turns or a tick since it was read), but
        the stand-in for the day before (`seeded`) gives way to the store's hour. Its current
        hour as it is."""
        merged = {hour.start: hour for hour in self.hours}
        for hour in hours:
            held = merged.get(hour.start)
            if held is not None and hour.start != self._stand_in:
                hour = Hour(
                    hour.start, hour.open, max(hour.high, held.high), min(hour.low, held.low)
                )
            merged[hour.start] = hour
        window = DayWindow(self.start, self.open, merged.values())
        window.high, window.low = self.high, self.low
        if self._stand_in not in {hour.start for hour in hours}:
            window._stand_in = self._stand_in
        window._figures()
        return window

    def high_at(self) -> datetime | None:
        """When the window's high was: the start of the closed hour holding it; None if the
        current hour's is the highest."""
        highs = self._highs
        return highs[0][0] if highs and highs[0][1] > self.high else None

    def low_at(self) -> datetime | None:
        """When the window's low was, as `high_at`."""
        lows = self._lows
        return lows[0][0] if lows and lows[0][1] < self.low else None

    def current(self, hour: Hour) -> None:
        """The current hour as its candle has it so far (read back at a start)."""
        if hour.start == self.start and self._closing is None:
            self.open = hour.open
            self.high = max(self.high, hour.high)
            self.low = min(self.low, hour.low)
            self._figures()

    def turn(self, start: datetime, price: Decimal) -> None:
        """Open the hour at `start` (later) at `price`, the move's that gives the hour its
        range (`service._with_market_move`, which so sees a new high and low, the day's and
        all time's maybe). The hour that ends joins the window, and the hours older than a
        day leave it, at `settle`; until then the figures count them all."""
        if self._closing is not None:
            self.settle()
        self._closing = (self.start, self.open, self.high, self.low)
        self.start = start
        self.open = price
        self.high, self.low = _NO_HIGH, _NO_LOW

    def settle(self) -> None:
        """The hour `turn` ended joins the window, and those older than a day leave it."""
        if self._closing is None:
            return
        self._close(*self._closing)
        self._closing = None
        oldest = self.start - SPAN
        hours, highs, lows = self._hours, self._highs, self._lows
        while hours and hours[0][0] < oldest:
            hours.popleft()
        while highs and highs[0][0] < oldest:
            highs.popleft()
        while lows and lows[0][0] < oldest:
            lows.popleft()
        self._figures()

    def _close(self, start: datetime, open_: Decimal, high: Decimal, low: Decimal) -> None:
        self._hours.append((start, open_, high, low))
        highs, lows = self._highs, self._lows
        while highs and highs[-1][1] <= high:
            highs.pop()
        highs.append((start, high))
        while lows and lows[-1][1] >= low:
            lows.pop()
        lows.append((start, low))

    def _figures(self) -> None:
        hours, highs, lows = self._hours, self._highs, self._lows
        high, low = self.high, self.low
        self.base = hours[0][1] if hours else self.open
        self.day_high = highs[0][1] if highs and highs[0][1] > high else high
        self.day_low = lows[0][1] if lows and lows[0][1] < low else low
