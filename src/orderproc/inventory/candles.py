"""Candle math: UTC buckets, the tick-by-tick upsert of a 1-minute candle, roll-ups, retention.

Weeks start on Monday 00:00 UTC (ISO weeks); they are rolled up from days when read, never
stored.

Pure functions over `Candle` values; where candles are kept is the storage adapter's concern.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from orderproc.common.clock import EPOCH


class Interval(StrEnum):
    MINUTE = "1m"
    HOUR = "1h"
    DAY = "1d"
    WEEK = "1w"

    @property
    def length(self) -> timedelta:
        return _LENGTHS[self]


_LENGTHS = {
    Interval.MINUTE: timedelta(minutes=1),
    Interval.HOUR: timedelta(hours=1),
    Interval.DAY: timedelta(days=1),
    Interval.WEEK: timedelta(weeks=1),
}
# Buckets count from the epoch, a Thursday; weeks count from the Monday after it.
_ORIGIN = {Interval.WEEK: EPOCH + timedelta(days=4)}


@dataclass(frozen=True, slots=True)
class Candle:
    asset_id: str
    interval: Interval
    open_time: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal = Decimal(0)  # USD traded in the bucket


def bucket_start(moment: datetime, interval: Interval) -> datetime:
    """The UTC start of the bucket holding `moment` (minute, hour, day or Monday's week)."""
    if moment.tzinfo is None:
        raise ValueError("candle times must carry a time zone")
    origin = _ORIGIN.get(interval, EPOCH)
    since = moment.astimezone(UTC) - origin
    return origin + (since // interval.length) * interval.length


def apply_tick(
    current: Candle | None,
    *,
    asset_id: str,
    price: Decimal,
    moment: datetime,
    interval: Interval = Interval.MINUTE,
    volume: Decimal = Decimal(0),
) -> Candle:
    """Upsert of the current candle for a tick: extend `current` when the tick falls in its
    bucket, otherwise open a new candle at the tick's bucket (a minute unless told). The
    tick's `volume` adds to the candle's."""
    open_time = bucket_start(moment, interval)
    if current is None or current.open_time != open_time:
        return Candle(asset_id, interval, open_time, price, price, price, price, volume)
    if current.asset_id != asset_id or current.interval is not interval:
        raise ValueError("a tick extends only its own asset's candle of that interval")
    return replace(
        current,
        high=max(current.high, price),
        low=min(current.low, price),
        close=price,
        volume=current.volume + volume,
    )


def complete(candle: Candle, minutes: Iterable[Candle]) -> Candle:
    """An hour or a day stored with its minutes opening before some time (`rolled_until` on
    its row), merged with the later `minutes` of its bucket (oldest first): open stays the
    row's, high and low are the extremes, close is the last minute's, the volumes add up. A row
    holding no minute yet carries its first price and no volume, so the same merge holds."""
    high, low, close, volume = candle.high, candle.low, candle.close, candle.volume
    for minute in minutes:
        if minute.high > high:
            high = minute.high
        if minute.low < low:
            low = minute.low
        close = minute.close
        volume += minute.volume
    return replace(candle, high=high, low=low, close=close, volume=volume)


def roll_up(candles: Iterable[Candle], interval: Interval) -> list[Candle]:
    """Merge finer candles into `interval` candles, per asset, ordered by asset then time."""
    groups: dict[tuple[str, datetime], list[Candle]] = {}
    for candle in sorted(candles, key=lambda c: (c.asset_id, c.open_time)):
        if candle.interval.length > interval.length:
            raise ValueError(f"cannot roll {candle.interval} candles up into {interval}")
        key = (candle.asset_id, bucket_start(candle.open_time, interval))
        groups.setdefault(key, []).append(candle)
    return [_merge(asset_id, interval, start, parts) for (asset_id, start), parts in groups.items()]


def _merge(asset_id: str, interval: Interval, start: datetime, parts: list[Candle]) -> Candle:
    return Candle(
        asset_id=asset_id,
        interval=interval,
        open_time=start,
        open=parts[0].open,
        high=max(part.high for part in parts),
        low=min(part.low for part in parts),
        close=parts[-1].close,
        volume=sum((part.volume for part in parts), Decimal(0)),
    )


def cutoff(now: datetime, interval: Interval, retention: timedelta) -> datetime:
    """Candles of `interval` opening before this moment are past `retention` and may go.

    Aligned to the interval, so a kept bucket is always whole."""
    return bucket_start(now - retention, interval)
