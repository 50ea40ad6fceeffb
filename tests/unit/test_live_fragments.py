"""The web UI's live fragments (`webui/streams.py`) and how the price-stream hub renders them:
the market list's events, the asset page's quote, and an asset page that renders its one asset
a tick, not the catalog."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import cast

from orderproc.common.price_stream import PriceStreamHub, StreamAsset
from orderproc.webui.app import LivePrice
from orderproc.webui.formatting import price
from orderproc.webui.streams import (
    ASSET_PAGE_FRAGMENTS,
    HTML_FRAGMENTS,
    AssetPageFragments,
    quote_fragment,
)

NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)


def live(asset_id: str, mid: str, bid: str, ask: str) -> LivePrice:
    return LivePrice(
        asset_id=asset_id,
        price_usd=Decimal(mid),
        bid=Decimal(bid),
        ask=Decimal(ask),
        price_change_percentage_24h=Decimal("1.5"),
        last_updated=NOW,
        is_active=True,
    )


def names(piece: bytes) -> list[str]:
    lines = piece.decode().splitlines()
    return [line.removeprefix("event: ") for line in lines if line.startswith("event: ")]


class TestFragments:
    def test_the_market_list_gets_the_price_and_the_change_only(self) -> None:
        piece = HTML_FRAGMENTS.piece(live("BTC", "50000", "49990", "50010"), Decimal("49000"))
        assert names(piece) == ["p-BTC", "c-BTC"]
        assert b"tick-up" in piece

    def test_the_asset_page_gets_the_quote_and_the_chart_tick_too(self) -> None:
        piece = ASSET_PAGE_FRAGMENTS.piece(live("BTC", "50000", "49990", "50010"), None)
        assert names(piece) == ["p-BTC", "c-BTC", "q-BTC", "tick"]
        assert (
            b'data: <div><dt>Bid</dt><dd data-testid="bid-BTC">$49,990.00</dd></div>'
            b'<div><dt>Ask</dt><dd data-testid="ask-BTC">$50,010.00</dd></div>\n'
        ) in piece

    def test_the_quote_is_spelt_by_the_pages_price_filter(self) -> None:
        meme = live("PEPE", "0.0000123456", "0.0000123444", "0.0000123469")
        fragment = quote_fragment(meme)
        assert price(meme.bid) == "$0.00001234"
        assert price(meme.ask) == "$0.00001235"
        assert f'data-testid="bid-PEPE">{price(meme.bid)}</dd>' in fragment
        assert f'data-testid="ask-PEPE">{price(meme.ask)}</dd>' in fragment


class CountingPages(AssetPageFragments):
    """The asset page's rendering, noting each asset it renders."""

    def __init__(self) -> None:
        self.made: list[str] = []

    def piece(self, asset: StreamAsset, previous: Decimal | None) -> bytes:
        self.made.append(asset.asset_id)
        return super().piece(asset, previous)


async def test_a_followed_asset_is_rendered_alone_and_once_for_every_client() -> None:
    catalog = [live("AAA", "1.00", "0.99", "1.01"), live("BBB", "2.00", "1.98", "2.02")]
    catalog.append(live("CCC", "3.00", "2.97", "3.03"))
    hub = PriceStreamHub(assets=lambda: catalog, heartbeat_seconds=3600)
    pages = CountingPages()
    first = hub.events(pages, only=("BBB",), after=None)
    second = hub.events(pages, only=("BBB",), after=None)
    every = hub.events(pages, only=None, after=None)
    try:
        for stream in (first, second, every):
            await anext(stream)  # retry
            await anext(stream)  # snapshot
        pages.made.clear()
        # Each stream waits for the next tick, as a server's do once their snapshot went out.
        waiting = [asyncio.ensure_future(anext(s)) for s in (first, second, every)]
        await asyncio.sleep(0)  # one turn of the loop, not a pause

        moved = [
            replace(a, price_usd=a.price_usd + 1, bid=a.bid + 1, ask=a.ask + 1, last_updated=NOW)
            for a in catalog
        ]
        catalog[:] = moved
        hub.publish(moved, NOW + timedelta(seconds=1))
        tick = await waiting[0]
        assert names(tick) == ["p-BBB", "c-BBB", "q-BBB", "tick"]
        assert b'data-testid="bid-BBB">$2.98</dd>' in tick
        assert b'data-testid="ask-BBB">$3.02</dd>' in tick
        assert await waiting[1] == tick  # the same bytes for the second page
        everything = await waiting[2]  # a client of every asset: the others, in tick order
        assert pages.made == ["BBB", "AAA", "CCC"]  # BBB once, and only BBB for the pages
        assert [n for n in names(everything) if n.startswith("q-")] == ["q-AAA", "q-BBB", "q-CCC"]
        assert tick in everything
    finally:
        hub.close()
        for stream in (first, second, every):
            await cast(AsyncGenerator[bytes, None], stream).aclose()
