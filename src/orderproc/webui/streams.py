"""Live prices for the web UI: server-sent events of small HTML fragments (htmx's SSE extension
swaps them into the page), from the process's price-stream hub (`common/price_stream.py`), the
one the API's JSON stream uses. Each tick's fragments are rendered once per asset, whatever the
number of pages open.

Two renderings, one per kind of page, so that a page is sent only the events it swaps in:

- the market list (`/live/prices`, every asset): `p-<id>` (the price, marked up or down against
  the previous tick) and `c-<id>` (the 24 h change);
- the asset page (`/live/prices?asset=<id>`): those two, `q-<id>` (the bid and the ask) and
  `tick` (`{"time", "price"}` for the chart). The hub renders it only for the assets that open
  asset pages show, so it costs nothing per asset of the catalog."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal

from fastapi import APIRouter, Request
from fastapi.responses import Response
from markupsafe import escape

from orderproc.common.price_stream import EventStreamResponse, StreamAsset
from orderproc.common.price_stream import stop_streams as stop_streams
from orderproc.common.price_stream import streams_stopping as streams_stopping
from orderproc.webui.formatting import percent, price, tone
from orderproc.webui.runtime import webui_runtime

router = APIRouter(include_in_schema=False)


class HtmlFragments:
    """The market list's rendering of a tick: the price and the change of every asset. Not
    resumable: a page that fell behind gets the latest prices of everything it shows."""

    resumable = False

    def piece(self, asset: StreamAsset, previous: Decimal | None) -> bytes:
        asset_id = asset.asset_id
        return (
            _event(f"p-{asset_id}", price_fragment(asset, previous))
            + _event(f"c-{asset_id}", change_fragment(asset))
        ).encode()

    def frame(self, kind: str, event_id: str, as_of: datetime, pieces: list[bytes]) -> bytes:
        return b"".join(pieces)


class AssetPageFragments(HtmlFragments):
    """The asset page's rendering: the list's events, then `q-<id>` and `tick`.

    Why a rendering of its own rather than bid and ask in every stream's events: the market
    list, which follows every asset, would be sent a quote and a chart tick per asset and tick
    that it never shows (346 bytes an asset instead of 141 with the packaged catalog, and about
    9 µs more to render each; `timeit`, docs/PERFORMANCE.md). An asset page follows
    one asset, and the hub renders this rendering only for the assets such pages follow, once
    a tick for all of their clients. Why one `q-<id>` event, an HTML fragment holding both the
    bid and the ask, rather than the two in `tick` for a script to write: htmx swaps it as it
    swaps the price, in the markup the template first renders and through the same `price`
    filter, with no script of ours; and one event is one header, not two."""

    def piece(self, asset: StreamAsset, previous: Decimal | None) -> bytes:
        tick = {"time": asset.last_updated.timestamp(), "price": str(asset.price_usd)}
        page = _event(f"q-{asset.asset_id}", quote_fragment(asset)) + _event(
            "tick", json.dumps(tick)
        )
        return super().piece(asset, previous) + page.encode()


HTML_FRAGMENTS = HtmlFragments()
ASSET_PAGE_FRAGMENTS = AssetPageFragments()


@router.get("/live/prices")
async def live_prices(request: Request, asset: str | None = None) -> Response:
    hub = webui_runtime(request).price_stream
    only = (asset.strip().upper(),) if asset else None
    rendering = HTML_FRAGMENTS if only is None else ASSET_PAGE_FRAGMENTS
    release = hub.admit(user=None, address=None)  # pages are not capped, only counted
    return EventStreamResponse(hub.events(rendering, only=only, after=None), release=release)


def price_fragment(asset: StreamAsset, previous: Decimal | None) -> str:
    move = "" if previous is None else _direction(asset.price_usd - previous)
    return (
        f'<span class="px{move}" data-testid="price-{escape(asset.asset_id)}">'
        f"{escape(price(asset.price_usd))}</span>"
    )


def change_fragment(asset: StreamAsset) -> str:
    change = asset.price_change_percentage_24h
    return f'<span class="chg {tone(change)}">{escape(percent(change))}</span>'


def quote_fragment(asset: StreamAsset) -> str:
    """The asset page's bid and ask, as its template first renders them (`asset/asset.html`)."""
    asset_id = escape(asset.asset_id)
    return (
        f'<div><dt>Bid</dt><dd data-testid="bid-{asset_id}">{escape(price(asset.bid))}</dd></div>'
        f'<div><dt>Ask</dt><dd data-testid="ask-{asset_id}">{escape(price(asset.ask))}</dd></div>'
    )


def _direction(delta: Decimal) -> str:
    if delta > 0:
        return " tick-up"
    return " tick-down" if delta < 0 else ""


def _event(name: str, data: str) -> str:
    lines = "".join(f"data: {line}\n" for line in data.splitlines() or [""])
    return f"event: {name}\n{lines}\n"
