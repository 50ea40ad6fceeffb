"""What the web UI's live fragments cost: the rendering of one asset's tick piece, the bytes of a
tick for a market-list client, and the hub's work per tick for an open asset page.

    python bench/live_fragments.py
    PYTHONPATH=/tmp/before/src python bench/live_fragments.py   # the same figures of another tree

1. **A piece** (`webui/streams.py`), per asset: `timeit`, best of 7 repeats of 50 passes over
   the packaged catalog's 101 assets, for the market list's rendering and the asset page's
   (a tree without an asset page rendering of its own uses the one rendering for both); with
   the bytes of a piece and of a 101-asset tick.
2. **An asset page's tick** in the hub: one stream of the asset page's rendering following BTC
   (no market list open), 30 ticks at 101 and at 1,000 assets, each moving every asset; the
   thread CPU from the tick's publication to the stream's bytes, median and max.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import timeit
from collections.abc import AsyncGenerator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

from ticks import catalog_of

import orderproc
import orderproc.webui.streams as streams
from orderproc.common.price_stream import PriceStreamHub
from orderproc.webui.app import LivePrice

NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)
LIST: Any = streams.HTML_FRAGMENTS
PAGE: Any = getattr(streams, "ASSET_PAGE_FRAGMENTS", streams.HTML_FRAGMENTS)


def live(asset: Any, at: datetime = NOW, scale: Decimal = Decimal(1)) -> LivePrice:
    return LivePrice(
        asset_id=asset.asset_id,
        price_usd=asset.price_usd * scale,
        bid=asset.bid * scale,
        ask=asset.ask * scale,
        price_change_percentage_24h=asset.price_change_percentage_24h,
        last_updated=at,
        is_active=True,
    )


def pieces() -> None:
    assets = [live(a) for a in catalog_of(101)]
    previous = {a.asset_id: a.price_usd * Decimal("0.999") for a in assets}
    for name, rendering in (("market list", LIST), ("asset page", PAGE)):

        def run(rendering: Any = rendering) -> None:
            for asset in assets:
                rendering.piece(asset, previous[asset.asset_id])

        best = min(timeit.repeat(run, number=50, repeat=7)) / 50 / len(assets)
        size = sum(len(rendering.piece(a, previous[a.asset_id])) for a in assets)
        print(
            f"{name} piece: {best * 1e6:.2f} µs an asset, {size / len(assets):.0f} bytes an "
            f"asset, {size:,} bytes a 101-asset tick"
        )


async def asset_page(size: int, ticks: int = 30) -> None:
    base = catalog_of(size)
    catalog = [live(a) for a in base]
    hub = PriceStreamHub(assets=lambda: catalog, heartbeat_seconds=3600)
    stream = cast(AsyncGenerator[bytes, None], hub.events(PAGE, only=("BTC",), after=None))
    await anext(stream), await anext(stream)  # retry, snapshot
    published, sent = [], []
    for number in range(1, ticks + 1):
        at = NOW + timedelta(seconds=number)
        catalog = [live(a, at, Decimal(1) + Decimal(number) / 10000) for a in base]
        waiting = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0)  # the stream waits for the tick, as a server's does
        started = time.thread_time()
        hub.publish(catalog, at)  # the API's JSON pieces, made whoever listens
        woken = time.thread_time()
        chunk = await waiting  # the page's bytes: its rendering of what it follows
        sent.append(time.thread_time() - woken)
        published.append(woken - started)
        assert b"p-BTC" in chunk
    hub.close()
    await stream.aclose()
    page, tick = statistics.median(sent) * 1e3, statistics.median(published) * 1e3
    print(
        f"{size:,} assets, one asset page open: the page's bytes {page:.3f} ms a tick (median "
        f"of {ticks}; max {max(sent) * 1e3:.3f}); the tick's publication {tick:.3f} ms"
    )


def main() -> None:
    print("orderproc from", Path(orderproc.__file__).parent)
    pieces()
    for size in (101, 1000):
        asyncio.run(asset_page(size))


if __name__ == "__main__":
    main()
