"""What the web UI reads of its process's runtime (`app.state.runtime`): settings, the live
catalog its price streams watch, and its way to the API. The embedded runtime satisfies it
with inventory's own catalog and no upstream (the API is the same app, called in-process);
the web UI on its own (`orderproc.webui.app`) with a catalog kept from the API and one pooled
HTTP client to the gateway."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Protocol, cast

import httpx
from fastapi import Request

from orderproc.common.settings import Settings


class LiveAsset(Protocol):
    @property
    def asset_id(self) -> str: ...
    @property
    def price_usd(self) -> Decimal: ...
    @property
    def price_change_percentage_24h(self) -> Decimal | None: ...
    @property
    def last_updated(self) -> datetime: ...


class LiveCatalog(Protocol):
    """Prices in memory; `version` moves whenever one does."""

    @property
    def version(self) -> int: ...
    def assets(self) -> Sequence[LiveAsset]: ...


class WebuiRuntime(Protocol):
    @property
    def settings(self) -> Settings: ...
    @property
    def catalog(self) -> LiveCatalog: ...
    @property
    def upstream(self) -> httpx.AsyncClient | None:
        """The pooled client to the API (the gateway); None when the API is this same app."""


def webui_runtime(request: Request) -> WebuiRuntime:
    return cast(WebuiRuntime, request.app.state.runtime)
