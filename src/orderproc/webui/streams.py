"""Live prices for the web UI: server-sent events of small HTML fragments (htmx's SSE extension
swaps them into the page), from the process's price-stream hub (`common/price_stream.py`), the
one the API's JSON stream uses. Each tick's fragments are rendered once per asset, whatever the
number of pages open.

Per asset and tick: `p-<id>` (the price, marked up or down against the previous tick), `c-<id>`
(the 24 h change), and `tick` (`{"time", "price"}` for the asset page's chart)."""

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
    """The web UI's rendering of a tick. Not resumable: a page that fell behind gets the latest
    prices of everything it shows."""

    resumable = False

    def piece(self, asset: StreamAsset, previous: Decimal | None) -> bytes:
        asset_id = asset.asset_id
        tick = {"time": asset.last_updated.timestamp(), "price": str(asset.price_usd)}
        return "".join(
            (
                _event(f"p-{asset_id}", price_fragment(asset, previous)),
                _event(f"c-{asset_id}", change_fragment(asset)),
                _event("tick", json.dumps(tick)),
            )
        ).encode()

    def frame(self, kind: str, event_id: str, as_of: datetime, pieces: list[bytes]) -> bytes:
        return b"".join(pieces)


HTML_FRAGMENTS = HtmlFragments()


@router.get("/live/prices")
async def live_prices(request: Request, asset: str | None = None) -> Response:
    hub = webui_runtime(request).price_stream
    only = (asset.strip().upper(),) if asset else None
    release = hub.admit(user=None, address=None)  # pages are not capped, only counted
    return EventStreamResponse(hub.events(HTML_FRAGMENTS, only=only, after=None), release=release)


def price_fragment(asset: StreamAsset, previous: Decimal | None) -> str:
    move = "" if previous is None else _direction(asset.price_usd - previous)
    return (
        f'<span class="px{move}" data-testid="price-{escape(asset.asset_id)}">'
        f"{escape(price(asset.price_usd))}</span>"
    )


def change_fragment(asset: StreamAsset) -> str:
    change = asset.price_change_percentage_24h
    return f'<span class="chg {tone(change)}">{escape(percent(change))}</span>'


def _direction(delta: Decimal) -> str:
    if delta > 0:
        return " tick-up"
    return " tick-down" if delta < 0 else ""


def _event(name: str, data: str) -> str:
    lines = "".join(f"data: {line}\n" for line in data.splitlines() or [""])
    return f"event: {name}\n{lines}\n"
