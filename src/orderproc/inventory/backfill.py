"""Backfilled history: deterministic candles for an asset that has none, so a fresh install
charts 48 h of 1 m, 90 days of 1 h and 2 years of 1 d candles (weeks roll up from days when
read). Pure: `inventory.history` writes them at start-up.

The history is generated backwards from the price the simulator starts from at `now`, so its
last close is that price exactly and the first live tick continues it. The last 24 h of minutes
open at the price 24 h ago (`price - price_change_24h`) and reach exactly the snapshot's
`high_24h` and `low_24h` (a Brownian bridge in log price, stretched monotonically onto that
range); no price leaves [atl, ath]. Older minutes, hours and days are random walks backwards,
reflected at those bounds, with the simulator's volatility for the asset's category. A coarser
candle overlapping finer ones is their roll-up, so the intervals agree. Volumes are USD: the
last 24 h of minutes add up to the snapshot's `total_volume_24h`, older ones vary around it.

Where the snapshot contradicts itself (TON's price above its own high_24h), the 24 h range and
the [atl, ath] bounds widen to take the price. Same seed, asset, price and `now`: the same
candles (a `random.Random` per asset and stage, seeded by text, which Python hashes with
SHA-512, so the draws are the same on every run and platform).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import accumulate, islice, pairwise, repeat
from operator import mul

from orderproc.common.storage.records import CandleRecord
from orderproc.inventory.candles import Interval, bucket_start, cutoff
from orderproc.inventory.domain import Asset
from orderproc.inventory.pricefeed import (
    SECONDS_PER_YEAR,
    STABLE_BAND,
    STABLE_PEG,
    round_price,
    simulated,
)

# How far back each interval goes (the retention settings' defaults keep at least this).
DEPTH = {
    Interval.MINUTE: timedelta(hours=48),
    Interval.HOUR: timedelta(days=90),
    Interval.DAY: timedelta(days=730),
}
WINDOW_MINUTES = 1440  # the last 24 h, which must agree with the snapshot's 24 h figures
STABLE_STEP = 0.0002  # a stablecoin's log-price step per minute (it stays in its band anyway)
WICK = 0.5  # a wick's size, in steps of the walk

Bounds = tuple[float, float]  # log prices
# Log prices stay this far inside their bounds, so rounding to 12 digits never crosses one;
# the two 24 h extremes are then set to the bounds exactly.
MARGIN = 1e-9
CENT, ZERO = Decimal("0.01"), Decimal(0)


@dataclass(frozen=True, slots=True)
class Anchor:
    """What an asset's history must agree with: where it ends, its last 24 h, its bounds."""

    asset_id: str
    price: Decimal  # the last close: the price the simulator ticks from
    price_24h_ago: Decimal
    high_24h: Decimal
    low_24h: Decimal
    floor: Decimal  # no price below (the all-time low)
    ceiling: Decimal  # no price above (the all-time high)
    volume_24h: float  # USD
    sigma: float  # annualized volatility of the log price
    stable: bool


def anchor_of(asset: Asset, price: Decimal | None = None) -> Anchor:
    """The anchor of `asset`'s history ending at `price` (its current price unless told)."""
    spec = simulated(asset)
    price = asset.price_usd if price is None else price
    # Without 24 h figures (an asset an admin added), two days' standard deviations around.
    spread = Decimal(repr(math.exp(2 * spec.volatility * math.sqrt(86_400 / SECONDS_PER_YEAR))))
    high = max(asset.high_24h or round_price(price * spread), price)
    low = min(asset.low_24h or round_price(price / spread), price)
    change = asset.price_change_24h or Decimal(0)
    before = min(max(price - change, low), high)
    floor = min(asset.atl or low / 10, low)
    ceiling = max(asset.ath or high * 10, high)
    if spec.stable:
        floor = min(max(floor, STABLE_PEG - STABLE_BAND), low)
        ceiling = max(min(ceiling, STABLE_PEG + STABLE_BAND), high)
    volume = float(asset.total_volume_24h or 0)
    return Anchor(
        asset.asset_id, price, before, high, low, floor, ceiling, volume, spec.volatility,
        spec.stable,
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Span:
    """The buckets of a history ending at `now`: each interval's first and current open time.
    Each coarser interval starts at a whole bucket of the next coarser one, so its older part
    is whole roll-ups."""

    now: datetime

    def current(self, interval: Interval) -> datetime:
        return bucket_start(self.now, interval)

    def first(self, interval: Interval) -> datetime:
        coarser = {Interval.MINUTE: Interval.HOUR, Interval.HOUR: Interval.DAY}
        return bucket_start(self.now - DEPTH[interval], coarser.get(interval, Interval.DAY))

    def count(self, interval: Interval) -> int:
        return (self.current(interval) - self.first(interval)) // interval.length + 1


def _step(sigma: float, interval: Interval, stable: bool) -> float:
    if stable:
        return STABLE_STEP * math.sqrt(interval.length / Interval.MINUTE.length)
    return sigma * math.sqrt(interval.length.total_seconds() / SECONDS_PER_YEAR)


# --- the float paths ---------------------------------------------------------------------------


def _bridge(rng: random.Random, start: float, end: float, steps: int, step: float) -> list[float]:
    """`steps + 1` log prices from `start` to `end`: a Brownian bridge."""
    walk, x = [0.0], 0.0
    for _ in range(steps):
        x += step * rng.gauss(0.0, 1.0)
        walk.append(x)
    drift = (end - start - walk[-1]) / steps
    return [start + w + k * drift for k, w in enumerate(walk)]


def _stretch(path: list[float], low: float, high: float) -> list[float]:
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


def _walk_back(
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


@dataclass(frozen=True, slots=True)
class _Series:
    """One series of candles: its asset, interval and first open time, the size of a step of
    its walk, the volume of an average bucket, and its bounds (log prices)."""

    anchor: Anchor
    interval: Interval
    first: datetime
    step: float
    volume: float
    bounds: Bounds

    def unit(self) -> tuple[Decimal, float]:
        """How a log price x becomes a price: `Decimal(round(exp(x) * scale)) * unit`, with 12
        significant digits at the anchor's price (a fixed number of places, within the store's
        18: fast, and monotone, so a max stays a max)."""
        places = min(18, max(2, 11 - self.anchor.price.adjusted()))
        return Decimal(1).scaleb(-places), 10.0**places

    def prices(self) -> Callable[[float], Decimal]:
        unit, scale = self.unit()
        return lambda log_price: Decimal(round(math.exp(log_price) * scale)) * unit


@dataclass(frozen=True, slots=True)
class _Drawn:
    """A series drawn in floats: `path` has one log price more than there are candles (each
    candle opens at one and closes at the next); `tops` and `bottoms` are the wicks' ends
    (log prices), `cents` the volumes."""

    series: _Series
    path: list[float]
    tops: list[float]
    bottoms: list[float]
    cents: list[int]

    def records(self, start: int = 0) -> list[CandleRecord]:
        """The candles from `start` (by index) on, exact. (The hot loop of a backfill: maps of
        built-ins, no Python-level step per candle but the record's own.)"""
        series, count = self.series, len(self.cents) - start
        unit, scale = series.unit()
        length = series.interval.length

        def prices(logs: list[float]) -> list[Decimal]:  # `_Series.prices`, mapped
            scaled = map(mul, map(math.exp, logs), repeat(scale))
            return list(map(mul, map(Decimal, map(round, scaled)), repeat(unit)))

        path = prices(self.path[start:])
        return list(
            map(
                CandleRecord,
                repeat(series.anchor.asset_id, count),
                repeat(series.interval.value),
                accumulate(repeat(length, count - 1), initial=series.first + start * length),
                path,
                prices(self.tops[start:]),
                prices(self.bottoms[start:]),
                islice(path, 1, None),
                map(mul, self.cents[start:], repeat(CENT)),
            )
        )

    def merged(self, start: int, interval: Interval) -> CandleRecord:
        """The candles from `start` on, rolled up into one of `interval`: what `_roll` makes
        of `records(start)`, without making them (the conversion is monotone)."""
        price = self.series.prices()
        return CandleRecord(
            self.series.anchor.asset_id, interval.value,
            self.series.first + start * self.series.interval.length, price(self.path[start]),
            price(max(self.tops[start:])), price(min(self.bottoms[start:])),
            price(self.path[-1]), sum(self.cents[start:]) * Decimal("0.01"),
        )  # fmt: skip


def _draw(
    rng: random.Random, path: list[float], series: _Series, *, total: float | None = None
) -> _Drawn:
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
    return _Drawn(series, path, tops, bottoms, [round(size * factor * 100) for size in sizes])


def _roll(candles: list[CandleRecord], interval: Interval, size: int) -> list[CandleRecord]:
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


def _seeded(seed: int, asset_id: str, stage: str) -> random.Random:
    return random.Random(f"orderproc-backfill/{seed}/{asset_id}/{stage}")


@dataclass(frozen=True, slots=True)
class _LastDay:
    """The last 24 h of 1 m candles, drawn: the last is the current minute's."""

    drawn: _Drawn
    anchor: Anchor
    lowest: int  # the candle whose low is the 24 h low
    highest: int  # the candle whose high is the 24 h high

    def records(self, start: int = 0) -> list[CandleRecord]:
        out = self.drawn.records(start)
        for index, change in ((self.lowest, "low"), (self.highest, "high")):
            if index >= start:
                exact = self.anchor.low_24h if change == "low" else self.anchor.high_24h
                out[index - start] = _with(out[index - start], **{change: exact})
        out[-1] = _with(out[-1], close=self.anchor.price)
        return out

    def merged(self, start: int, interval: Interval) -> CandleRecord:
        merged = self.drawn.merged(start, interval)
        exact: dict[str, Decimal] = {"close": self.anchor.price}
        if self.lowest >= start:
            exact["low"] = self.anchor.low_24h
        if self.highest >= start:
            exact["high"] = self.anchor.high_24h
        return _with(merged, **exact)


def last_day(anchor: Anchor, *, seed: int, now: datetime) -> _LastDay:
    """The last 24 h of 1 m candles: from the price 24 h ago to the price, reaching `high_24h`
    and `low_24h` exactly (the candles that come closest get them)."""
    rng = _seeded(seed, anchor.asset_id, "window")
    step = _step(anchor.sigma, Interval.MINUTE, anchor.stable)
    start, end = math.log(anchor.price_24h_ago), math.log(anchor.price)
    low, high = math.log(anchor.low_24h), math.log(anchor.high_24h)
    path = _stretch(_bridge(rng, start, end, WINDOW_MINUTES, step), low, high)
    first = Span(now).current(Interval.MINUTE) - (WINDOW_MINUTES - 1) * Interval.MINUTE.length
    volume = anchor.volume_24h / WINDOW_MINUTES
    series = _Series(anchor, Interval.MINUTE, first, step, volume, (low, high))
    drawn = _draw(rng, path, series, total=anchor.volume_24h)
    indexes = range(WINDOW_MINUTES)
    lowest = min(indexes, key=drawn.bottoms.__getitem__)
    highest = max(indexes, key=drawn.tops.__getitem__)
    return _LastDay(drawn, anchor, lowest, highest)


def _with(candle: CandleRecord, *, low: Decimal | None = None, high: Decimal | None = None,
          close: Decimal | None = None) -> CandleRecord:  # fmt: skip
    """`candle` with a new low, high or close, its high and low still around its body."""
    close = candle.close if close is None else close
    return candle.evolve(
        close=close,
        high=max(candle.high if high is None else high, candle.open, close),
        low=min(candle.low if low is None else low, candle.open, close),
    )


def current_candles(anchor: Anchor, *, seed: int, now: datetime) -> list[CandleRecord]:
    """The candles of the buckets holding `now` (the minute, the hour, the day), the same as
    `history` has for them: what the ticker continues from its first tick. Cheap: only the
    last day's floats are drawn, and three candles made of them."""
    day = last_day(anchor, seed=seed, now=now)
    span = Span(now)

    def since(interval: Interval) -> int:  # the window's index of the bucket's first minute
        before = span.current(Interval.MINUTE) - span.current(interval)
        return WINDOW_MINUTES - 1 - before // Interval.MINUTE.length

    return [
        day.merged(WINDOW_MINUTES - 1, Interval.MINUTE),
        day.merged(since(Interval.HOUR), Interval.HOUR),
        day.merged(since(Interval.DAY), Interval.DAY),
    ]


def history(
    anchor: Anchor, *, seed: int, now: datetime, keep: dict[Interval, timedelta] | None = None
) -> dict[Interval, list[CandleRecord]]:
    """Every backfilled candle, by interval, oldest first, the current buckets' included;
    with `keep`, none that retention would purge at `now`."""
    for made in history_in_steps(anchor, seed=seed, now=now, keep=keep):
        if made is not None:
            return made
    raise AssertionError("history_in_steps ends with the candles")


def history_in_steps(
    anchor: Anchor, *, seed: int, now: datetime, keep: dict[Interval, timedelta] | None = None
) -> Iterator[dict[Interval, list[CandleRecord]] | None]:
    """`history` a stage at a time, so a caller on the event loop can let others run between
    them (each is at most about 3,000 candles, some 15 ms): None after each, the candles last."""
    span = Span(now)
    window = last_day(anchor, seed=seed, now=now).records()
    yield None
    minutes = [*_older(anchor, seed, span.first(Interval.MINUTE), window[0]), *window]
    yield None
    rolled_hours = _roll(minutes, Interval.HOUR, 60)
    hours = [*_older(anchor, seed, span.first(Interval.HOUR), rolled_hours[0]), *rolled_hours]
    yield None
    rolled_days = _roll(hours, Interval.DAY, 24)
    days = [*_older(anchor, seed, span.first(Interval.DAY), rolled_days[0]), *rolled_days]
    out = {Interval.MINUTE: minutes, Interval.HOUR: hours, Interval.DAY: days}
    for interval, retention in (keep or {}).items():
        before = cutoff(now, interval, retention)
        out[interval] = [c for c in out[interval] if c.open_time >= before]
    yield out


def _older(anchor: Anchor, seed: int, since: datetime, finer: CandleRecord) -> list[CandleRecord]:
    """The candles of `finer`'s interval from `since` up to `finer`, the last closing where
    `finer` opens: a walk backwards from there."""
    interval = Interval(finer.interval)
    count = (finer.open_time - since) // interval.length
    if count <= 0:
        return []
    rng = _seeded(seed, anchor.asset_id, interval.value)
    step = _step(anchor.sigma, interval, anchor.stable)
    bounds = (math.log(anchor.floor), math.log(anchor.ceiling))
    path = _walk_back(rng, math.log(finer.open), count, step, *bounds)
    per_bucket = anchor.volume_24h * (interval.length / timedelta(days=1))
    older = _draw(rng, path, _Series(anchor, interval, since, step, per_bucket, bounds)).records()
    older[-1] = _with(older[-1], close=finer.open)
    return older
