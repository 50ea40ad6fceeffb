"""Backfilled history: deterministic candles for an asset that has none, so a fresh install
charts 48 h of 1 m, 90 days of 1 h and 2 years of 1 d candles (weeks roll up from days when
read). Pure: `inventory.history` writes them at start-up. This module anchors the history to
the asset's snapshot and to `now`; `inventory.walks` draws the walks and their candles.

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
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TypeVar

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
from orderproc.inventory.walks import (
    Drawn,
    Series,
    amended,
    bridge,
    draw_along,
    roll,
    stretch,
    walk_back,
)

# How far back each interval goes (the retention settings' defaults keep at least this).
DEPTH = {
    Interval.MINUTE: timedelta(hours=48),
    Interval.HOUR: timedelta(days=90),
    Interval.DAY: timedelta(days=730),
}
WINDOW_MINUTES = 1440  # the last 24 h, which must agree with the snapshot's 24 h figures
STABLE_STEP = 0.0002  # a stablecoin's log-price step per minute (it stays in its band anyway)


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


def _seeded(seed: int, asset_id: str, stage: str) -> random.Random:
    return random.Random(f"orderproc-backfill/{seed}/{asset_id}/{stage}")


@dataclass(frozen=True, slots=True)
class _LastDay:
    """The last 24 h of 1 m candles, drawn: the last is the current minute's."""

    drawn: Drawn
    anchor: Anchor
    lowest: int  # the candle whose low is the 24 h low
    highest: int  # the candle whose high is the 24 h high

    def records(self, start: int = 0) -> list[CandleRecord]:
        return self.amend(self.drawn.records(start), start)

    def records_in_steps(self) -> Steps[list[CandleRecord]]:
        return self.amend((yield from in_steps(self.drawn)), 0)

    def amend(self, out: list[CandleRecord], start: int) -> list[CandleRecord]:
        """The candles from `start` on with the 24 h low, high and the price exact."""
        for index, change in ((self.lowest, "low"), (self.highest, "high")):
            if index >= start:
                exact = self.anchor.low_24h if change == "low" else self.anchor.high_24h
                out[index - start] = amended(out[index - start], **{change: exact})
        out[-1] = amended(out[-1], close=self.anchor.price)
        return out

    def merged(self, start: int, interval: Interval) -> CandleRecord:
        merged = self.drawn.merged(start, interval)
        exact: dict[str, Decimal] = {"close": self.anchor.price}
        if self.lowest >= start:
            exact["low"] = self.anchor.low_24h
        if self.highest >= start:
            exact["high"] = self.anchor.high_24h
        return amended(merged, **exact)


def last_day(anchor: Anchor, *, seed: int, now: datetime) -> _LastDay:
    """The last 24 h of 1 m candles: from the price 24 h ago to the price, reaching `high_24h`
    and `low_24h` exactly (the candles that come closest get them)."""
    rng = _seeded(seed, anchor.asset_id, "window")
    step = _step(anchor.sigma, Interval.MINUTE, anchor.stable)
    start, end = math.log(anchor.price_24h_ago), math.log(anchor.price)
    low, high = math.log(anchor.low_24h), math.log(anchor.high_24h)
    path = stretch(bridge(rng, start, end, WINDOW_MINUTES, step), low, high)
    first = Span(now).current(Interval.MINUTE) - (WINDOW_MINUTES - 1) * Interval.MINUTE.length
    volume = anchor.volume_24h / WINDOW_MINUTES
    series = Series(
        anchor.asset_id, anchor.price, Interval.MINUTE, first, step, volume, (low, high)
    )
    drawn = draw_along(rng, path, series, total=anchor.volume_24h)
    indexes = range(WINDOW_MINUTES)
    lowest = min(indexes, key=drawn.bottoms.__getitem__)
    highest = max(indexes, key=drawn.tops.__getitem__)
    return _LastDay(drawn, anchor, lowest, highest)


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
    """`history` a step at a time, so a caller on the event loop can let others run between
    them: None after each (a walk's floats, or at most `STEP_CANDLES` records: a few ms), the
    candles last."""
    span = Span(now)
    day = last_day(anchor, seed=seed, now=now)
    yield None
    window = yield from day.records_in_steps()
    older = yield from _older(anchor, seed, span.first(Interval.MINUTE), window[0])
    minutes = [*older, *window]
    rolled_hours = roll(minutes, Interval.HOUR, 60)
    older = yield from _older(anchor, seed, span.first(Interval.HOUR), rolled_hours[0])
    hours = [*older, *rolled_hours]
    rolled_days = roll(hours, Interval.DAY, 24)
    older = yield from _older(anchor, seed, span.first(Interval.DAY), rolled_days[0])
    days = [*older, *rolled_days]
    out = {Interval.MINUTE: minutes, Interval.HOUR: hours, Interval.DAY: days}
    for interval, retention in (keep or {}).items():
        before = cutoff(now, interval, retention)
        out[interval] = [c for c in out[interval] if c.open_time >= before]
    yield out


# Records made in one step of `history_in_steps`: about 3.5 µs each (the stages of a thousand
# and more candles held the event loop 8-17 ms, measured).
STEP_CANDLES = 500
T = TypeVar("T")
Steps = Generator[None, None, T]  # steps that end with a T (`yield from` gives it)


def in_steps(drawn: Drawn) -> Steps[list[CandleRecord]]:
    """`drawn.records()`, `STEP_CANDLES` at a time."""
    out: list[CandleRecord] = []
    for start in range(0, len(drawn.cents), STEP_CANDLES):
        out += drawn.records(start, start + STEP_CANDLES)
        yield None
    return out


def _older(
    anchor: Anchor, seed: int, since: datetime, finer: CandleRecord
) -> Steps[list[CandleRecord]]:
    """The candles of `finer`'s interval from `since` up to `finer`, the last closing where
    `finer` opens: a walk backwards from there."""
    interval = Interval(finer.interval)
    count = (finer.open_time - since) // interval.length
    if count <= 0:
        return []
    rng = _seeded(seed, anchor.asset_id, interval.value)
    step = _step(anchor.sigma, interval, anchor.stable)
    bounds = (math.log(anchor.floor), math.log(anchor.ceiling))
    path = walk_back(rng, math.log(finer.open), count, step, *bounds)
    per_bucket = anchor.volume_24h * (interval.length / timedelta(days=1))
    series = Series(anchor.asset_id, anchor.price, interval, since, step, per_bucket, bounds)
    drawn = draw_along(rng, path, series)
    yield None
    older = yield from in_steps(drawn)
    older[-1] = amended(older[-1], close=finer.open)
    return older
