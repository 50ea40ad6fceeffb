"""The web UI on its own (`orderproc serve webui`): pages, static files and live prices, talking
to the services only through the gateway's public API at `api_url`, over one pooled HTTP
client. Its live prices come from the API too: one loop per process asks for the catalog every
price tick and hands what moved to the process's price-stream hub, which every open stream
reads."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any

import httpx
from fastapi import FastAPI

from orderproc.common.metrics import Metrics
from orderproc.common.periodic import Periodic
from orderproc.common.price_stream import PriceStreamHub
from orderproc.common.service_app import service_app
from orderproc.common.settings import Settings
from orderproc.errors import ServiceUnavailable
from orderproc.webui.client import API
from orderproc.webui.routes import mount_webui
from orderproc.webui.runtime import WebuiRuntime

log = logging.getLogger("orderproc.webui")
PAGE = 250  # the catalog's largest page


@dataclass(frozen=True, slots=True)
class LivePrice:
    asset_id: str
    price_usd: Decimal
    bid: Decimal
    ask: Decimal
    price_change_percentage_24h: Decimal | None
    last_updated: datetime
    is_active: bool


class RemoteCatalog:
    """The catalog's prices as the API shows them; `version` moves when one changes, and
    each refresh hands the prices that moved to `on_move` (the price-stream hub)."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        interval: float,
        on_move: Callable[[list[LivePrice], datetime], None] | None = None,
    ) -> None:
        self._client = client
        self.on_move = on_move
        self.version = 0
        self._assets: list[LivePrice] = []
        self._loop = Periodic("live prices", interval=interval, step=self._step, log=log)
        self._failing = False

    def assets(self) -> Sequence[LivePrice]:
        return self._assets

    async def refresh(self) -> None:
        assets: list[LivePrice] = []
        offset = 0
        while True:
            params: dict[str, Any] = {"limit": PAGE, "offset": offset, "active_only": "false"}
            response = await self._client.get(f"{API}/inventory/assets", params=params)
            response.raise_for_status()
            page = response.json()
            assets.extend(_live(item) for item in page["data"])
            if not page["has_more"]:
                break
            offset += PAGE
        if assets != self._assets:
            before = {a.asset_id: a for a in self._assets}
            moved = [a for a in assets if before.get(a.asset_id) != a and a.is_active]
            self._assets = assets
            self.version += 1
            if moved and self.on_move is not None:
                self.on_move(moved, max(a.last_updated for a in moved))

    async def _step(self) -> None:
        """A refresh; a failure is logged once, in one line, until one succeeds again."""
        try:
            await self.refresh()
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            if not self._failing:
                log.warning("live prices: the API did not answer (%s); retrying", exc)
            self._failing = True
        else:
            if self._failing:
                log.info("live prices: the API answers again")
            self._failing = False

    async def start(self) -> None:
        await self._step()
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()


def _live(item: dict[str, Any]) -> LivePrice:
    change = item.get("price_change_percentage_24h")
    mid = Decimal(item["price_usd"])
    return LivePrice(
        asset_id=str(item["asset_id"]),
        price_usd=mid,
        bid=Decimal(item.get("bid") or mid),
        ask=Decimal(item.get("ask") or mid),
        price_change_percentage_24h=None if change is None else Decimal(change),
        last_updated=datetime.fromisoformat(str(item["last_updated"]).replace("Z", "+00:00")),
        is_active=bool(item.get("is_active", True)),
    )


def upstream_client(api_url: str) -> httpx.AsyncClient:
    """One pooled client to the API. It keeps no cookies: each call carries its own person's
    (a jar shared by everyone would hand one person's cookies to the next)."""
    return httpx.AsyncClient(
        base_url=api_url.rstrip("/"),
        cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
        timeout=httpx.Timeout(10.0, connect=2.0),
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
        trust_env=False,
    )


@dataclass(kw_only=True, eq=False)
class WebuiProcess:
    settings: Settings
    metrics: Metrics
    catalog: RemoteCatalog
    price_stream: PriceStreamHub
    upstream: httpx.AsyncClient

    async def start(self) -> None:
        await self.catalog.start()

    async def ready(self) -> list[str]:
        """The API answers (the web UI can do nothing without it)."""
        try:
            response = await self.upstream.get("/health", timeout=2.0)
        except httpx.HTTPError as exc:
            raise ServiceUnavailable("The API does not answer.") from exc
        if response.status_code != 200:
            raise ServiceUnavailable("The API is not healthy.")
        return []

    async def close(self) -> None:
        self.price_stream.close()
        await self.catalog.stop()
        await self.upstream.aclose()


async def build_webui_process(settings: Settings, *, api_url: str) -> WebuiProcess:
    client = upstream_client(api_url)
    catalog = RemoteCatalog(client, interval=settings.price_tick_seconds)
    hub = PriceStreamHub(
        assets=catalog.assets,
        resume_ticks=settings.stream_resume_ticks,
        heartbeat_seconds=settings.stream_heartbeat_seconds,
    )
    catalog.on_move = hub.publish
    return WebuiProcess(
        settings=settings,
        metrics=Metrics("webui"),
        catalog=catalog,
        price_stream=hub,
        upstream=client,
    )


def _satisfies(runtime: WebuiProcess) -> WebuiRuntime:
    return runtime  # mypy checks the runtime against what the web UI reads


def create_app(settings: Settings, *, api_url: str) -> FastAPI:
    """The web UI alone, on its own port, in front of the API at `api_url` (the gateway)."""
    # The gateway's access log has a line for each API call; httpx's own would repeat it.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    return service_app(
        "webui",
        settings,
        build=lambda: build_webui_process(settings, api_url=api_url),
        mount=mount_webui,
    )
