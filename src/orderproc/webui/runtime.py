"""What the web UI reads of its process's runtime (`app.state.runtime`): settings, the price
stream hub its live prices come from, and its way to the API. The embedded runtime satisfies it
with inventory's own hub (fed by the ticker) and no upstream (the API is the same app, called
in-process); the web UI on its own (`orderproc.webui.app`) with a hub fed from the API and one
pooled HTTP client to the gateway."""

from __future__ import annotations

from typing import Protocol, cast

import httpx
from fastapi import Request

from orderproc.common.price_stream import PriceStreamHub
from orderproc.common.settings import Settings


class WebuiRuntime(Protocol):
    @property
    def settings(self) -> Settings: ...
    @property
    def price_stream(self) -> PriceStreamHub: ...
    @property
    def upstream(self) -> httpx.AsyncClient | None:
        """The pooled client to the API (the gateway); None when the API is this same app."""


def webui_runtime(request: Request) -> WebuiRuntime:
    return cast(WebuiRuntime, request.app.state.runtime)
