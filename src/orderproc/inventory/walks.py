"""Random walks drawn as candles, for `inventory.backfill`: the float paths (a Brownian bridge,
a monotone stretch onto a range, a walk backwards reflected inside bounds) and the exact candles
along them (wicks a fraction of a step past the body, volumes larger on larger moves, prices of
12 significant digits). Knows nothing of snapshots: the backfill anchors these to an asset's.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from itertools import accumulate, islice, pairwise, repeat
from operator import mul

from orderproc.common.storage.records import CandleRecord
from orderproc.inventory.candles import Interval

WICK = 0.5  # a wick's size, in steps of the walk

Bounds = tuple[float, float]  # log prices
# Log prices stay this far inside their bounds, so rounding to 12 digits never crosses one;
# the two 24 h extremes are then set to the bounds exactly.
MARGIN = 1e-9
CENT, ZERO = Decimal("0.01"), Decimal(0)


# --- the float paths ---------------------------------------------------------------------------


def bridge(rng: random.Random, start: float, end: float, steps: int, step: float) -> list[float]:
    """`steps + 1` log prices from `start` to `end`: a Brownian bridge."""
    walk, x = [0.0], 0.0
    for _ in range(steps):
        x += step * rng.gauss(0.0, 1.0)
        walk.append(x)
    drift = (end - start - walk[-1]) / steps
    return [start + w + k * drift for k, w in enumerate(walk)]


def stretch(path: list[float], low: float, high: float) -> list[float]:
    """Map `path` monotonically so it spans [low, high], keeping both ends where they are: the
    part below the lower end scales onto [low, lower end], the part above the upper end onto
    [upper end, high]. A path that never goes past an end stays short of that bound (the
    candle that comes closest gets a wick to it instead)."""
    ends = sorted((path[0], path[-1]))
    least, most = min(path), max(path)
    below = (ends[0] - low) / (ends[0] - least) if least < ends[0] else 0.0
    above = (high - ends[1]) / (most - ends[1]) if most > ends[1] else 0.0
    return [
        ends[0] - (ends[0] - x) * below
        if x < ends[0]
        else ends[1] + (x - ends[1]) * above
        if x > ends[1]
        else x
        for x in path
    ]


def walk_back(
    rng: random.Random, end: float, steps: int, step: float, low: float, high: float
) -> list[float]:
    """`steps + 1` log prices ending at `end`: a random walk backwards, reflected into
    [low, high]."""
    path, x = [end], end
    for _ in range(steps):
        x += step * rng.gauss(0.0, 1.0)
        if x > high:
            x = max(2 * high - x, low)
        elif x < low:
            x = min(2 * low - x, high)
        path.append(x)
    path.reverse()
    return path


# --- candles -----------------------------------------------------------------------------------


# --- candles -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Series:
    """One series of candles: its asset, the price whose 12 significant digits set its prices'
    places, its interval and first open time, the size of a step of its walk, the volume of an
    average bucket, and its bounds (log prices)."""

    asset_id: str
    price: Decimal
    interval: Interval
    first: datetime
    step: float
    volume: float
    bounds: Bounds

    def unit(self) -> tuple[Decimal, float]:
        """How a log price x becomes a price: `Decimal(round(exp(x) * scale)) * unit`, with 12
        significant digits at the series' price (a fixed number of places, within the store's
        18: fast, and monotone, so a max stays a max)."""
        places = min(18, max(2, 11 - self.price.adjusted()))
        return Decimal(1).scaleb(-places), 10.0**places

    def prices(self) -> Callable[[float], Decimal]:
        unit, scale = self.unit()
        return lambda log_price: Decimal(round(math.exp(log_price) * scale)) * unit


@dataclass(frozen=True, slots=True)
class Drawn:
    """A series drawn in floats: `path` has one log price more than there are candles (each
    candle opens at one and closes at the next); `tops` and `bottoms` are the wicks' ends
    (log prices), `cents` the volumes."""

    series: Series
    path: list[float]
    tops: list[float]
    bottoms: list[float]
    cents: list[int]

    def records(self, start: int = 0, stop: int | None = None) -> list[CandleRecord]:
        """The candles from `start` up to `stop` (by index; the last, if None), exact. (The hot
        loop of a backfill: maps of built-ins, no Python-level step per candle but the
        record's own.)"""
        series = self.series
        stop = len(self.cents) if stop is None else min(stop, len(self.cents))
        count = stop - start
        if count <= 0:
            return []
        unit, scale = series.unit()
        length = series.interval.length

        def prices(logs: list[float]) -> list[Decimal]:  # `Series.prices`, mapped
            scaled = map(mul, map(math.exp, logs), repeat(scale))
            return list(map(mul, map(Decimal, map(round, scaled)), repeat(unit)))

        path = prices(self.path[start : stop + 1])
        return list(
            map(
                CandleRecord,
                repeat(series.asset_id, count),
                repeat(series.interval.value),
                accumulate(repeat(length, count - 1), initial=series.first + start * length),
                path,
                prices(self.tops[start:stop]),
                prices(self.bottoms[start:stop]),
                islice(path, 1, None),
                map(mul, self.cents[start:stop], repeat(CENT)),
            )
        )

    def merged(self, start: int, interval: Interval) -> CandleRecord:
        """The candles from `start` on, rolled up into one of `interval`: what `roll` makes
        of `records(start)`, without making them (the conversion is monotone)."""
        price = self.series.prices()
        return CandleRecord(
            self.series.asset_id, interval.value,
            self.series.first + start * self.series.interval.length, price(self.path[start]),
            price(max(self.tops[start:])), price(min(self.bottoms[start:])),
            price(self.path[-1]), sum(self.cents[start:]) * CENT,
        )  # fmt: skip


def draw_along(
    rng: random.Random, path: list[float], series: Series, *, total: float | None = None
) -> Drawn:
    """Candles along `path`: wicks a fraction of a step past the body, a volume around the
    series' (larger on larger moves; scaled to add up to `total` if given). Everything stays
    inside the bounds by a margin far wider than rounding to 12 digits, so a wick is never past
    a bound nor inside its body."""
    # The hot loop of a backfill: conditional expressions, not min() and max() calls.
    low, high = series.bounds[0] + MARGIN, series.bounds[1] - MARGIN
    path = [low if x < low else high if x > high else x for x in path]
    step, draw, volume = series.step, rng.random, series.volume
    per_move = 0.5 / step if step else 0.0
    wick = 2 * WICK * step
    tops, bottoms, sizes = [], [], []
    for before, after in pairwise(path):
        upper, lower = (before, after) if before > after else (after, before)
        sizes.append(volume * (0.4 + 1.2 * draw()) * (0.6 + (upper - lower) * per_move))
        top, bottom = draw(), draw()
        top, bottom = upper + top * top * wick, lower - bottom * bottom * wick
        tops.append(top if top < high else high)
        bottoms.append(bottom if bottom > low else low)
    drawn_total = math.fsum(sizes)
    factor = total / drawn_total if total is not None and drawn_total else 1.0
    return Drawn(series, path, tops, bottoms, [round(size * factor * 100) for size in sizes])


def roll(candles: list[CandleRecord], interval: Interval, size: int) -> list[CandleRecord]:
    """Contiguous finer candles from the start of a coarser bucket, merged `size` at a time
    (`candles.roll_up` without its sorting and grouping: the history is built in order)."""
    highs, lows = [c.high for c in candles], [c.low for c in candles]
    volumes = [c.volume or ZERO for c in candles]
    out = []
    for start in range(0, len(candles), size):
        first, last = candles[start], candles[min(start + size, len(candles)) - 1]
        out.append(
            CandleRecord(
                first.asset_id, interval.value, first.open_time, first.open,
                max(highs[start : start + size]), min(lows[start : start + size]), last.close,
                sum(volumes[start : start + size], ZERO),
            )
        )  # fmt: skip
    return out


def amended(candle: CandleRecord, *, low: Decimal | None = None, high: Decimal | None = None,
          close: Decimal | None = None) -> CandleRecord:  # fmt: skip
    """`candle` with a new low, high or close, its high and low still around its body."""
    close = candle.close if close is None else close
    return candle.evolve(
        close=close,
        high=max(candle.high if high is None else high, candle.open, close),
        low=min(candle.low if low is None else low, candle.open, close),
    )
