"""Live prices as server-sent events of small HTML fragments (htmx's SSE extension swaps them
into the page), read from the live catalog each second and sent when its version moves."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterable
from decimal import Decimal

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from markupsafe import escape

from orderproc.webui.formatting import percent, price, tone
from orderproc.webui.runtime import LiveAsset, LiveCatalog, webui_runtime

router = APIRouter(include_in_schema=False)
POLL_SECONDS = 1.0
HEARTBEAT_SECONDS = 15.0


class _Shutdown:
    """Set when the server begins to stop, so open streams end at once instead of holding
    the graceful shutdown until its timeout."""

    stopping = False


def stop_streams() -> None:
    """Call from the server's exit hook (a signal handler may call it: it only sets a flag)."""
    _Shutdown.stopping = True


def streams_stopping() -> bool:
    return _Shutdown.stopping


@router.get("/live/prices")
async def live_prices(request: Request, asset: str | None = None) -> Response:
    catalog = webui_runtime(request).catalog
    only = asset.upper() if asset else None
    return StreamingResponse(
        _events(catalog, only=only),
        media_type="text/event-stream",
        headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
    )


async def _events(catalog: LiveCatalog, *, only: str | None) -> AsyncIterator[str]:
    sent: dict[str, Decimal] = {}
    seen_version = -1
    quiet = 0.0
    yield "retry: 3000\n\n"
    while not streams_stopping():
        if catalog.version != seen_version:
            seen_version = catalog.version
            moved = [a for a in catalog.assets() if only is None or a.asset_id == only]
            chunk = "".join(_asset_events(moved, sent, with_ticks=only is not None))
            if chunk:
                quiet = 0.0
                yield chunk
        quiet += POLL_SECONDS
        if quiet >= HEARTBEAT_SECONDS:
            quiet = 0.0
            yield ": still here\n\n"
        await asyncio.sleep(POLL_SECONDS)


def _asset_events(
    assets: Iterable[LiveAsset], sent: dict[str, Decimal], *, with_ticks: bool
) -> Iterable[str]:
    for asset in assets:
        previous = sent.get(asset.asset_id)
        if previous == asset.price_usd:
            continue
        sent[asset.asset_id] = asset.price_usd
        yield _event(f"p-{asset.asset_id}", price_fragment(asset, previous))
        yield _event(f"c-{asset.asset_id}", change_fragment(asset))
        if with_ticks:
            tick = {"time": asset.last_updated.timestamp(), "price": str(asset.price_usd)}
            yield _event("tick", json.dumps(tick))


def price_fragment(asset: LiveAsset, previous: Decimal | None) -> str:
    move = "" if previous is None else _direction(asset.price_usd - previous)
    return (
        f'<span class="px{move}" data-testid="price-{escape(asset.asset_id)}">'
        f"{escape(price(asset.price_usd))}</span>"
    )


def change_fragment(asset: LiveAsset) -> str:
    change = asset.price_change_percentage_24h
    return f'<span class="chg {tone(change)}">{escape(percent(change))}</span>'


def _direction(delta: Decimal) -> str:
    if delta > 0:
        return " tick-up"
    return " tick-down" if delta < 0 else ""


def _event(name: str, data: str) -> str:
    lines = "".join(f"data: {line}\n" for line in data.splitlines() or [""])
    return f"event: {name}\n{lines}\n"
