"""Mounts the web UI on the gateway app: pages at `/`, `/market`, `/assets/{id}`, …, live
prices at `/live/prices`, static files at `/static`. Call `mount_webui(app)` once: it also gives
the app its in-process client to the API (`app.state.webui_api`), closed when the app shuts
down."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles

from orderproc.common.routing import include_flat
from orderproc.webui.client import ApiError, InProcessApi, QuietInProcessCalls
from orderproc.webui.pages import HERE, go, is_htmx, render
from orderproc.webui.session import (
    AdminOnly,
    CsrfRejected,
    SessionMiddleware,
    SignInRequired,
    current_session,
    store_of,
    use_session,
)
from orderproc.webui.streams import router as streams_router
from orderproc.webui.views import account, admin, auth, market, profile, trade

STATIC_MAX_AGE = 3600
PAGING = frozenset({"cursor", "trail"})  # a list page's position, dropped when it goes stale


class _StaticFiles(StaticFiles):
    """Static files that browsers may cache (URLs carry a version)."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers["cache-control"] = f"public, max-age={STATIC_MAX_AGE}"
        return response


def mount_webui(app: FastAPI) -> None:
    app.add_middleware(SessionMiddleware)
    httpx_log = logging.getLogger("httpx")
    if not any(isinstance(f, QuietInProcessCalls) for f in httpx_log.filters):
        httpx_log.addFilter(QuietInProcessCalls())
    app.mount("/static", _StaticFiles(directory=HERE / "static"), name="static")
    _add_in_process_api(app)

    @app.get("/", include_in_schema=False)
    async def home(request: Request) -> Response:
        return go(request, "/portfolio" if current_session(request).signed_in else "/market")

    for module in (auth, market, trade, account, profile, admin):
        include_flat(app, module.router)
    include_flat(app, streams_router)
    _install_handlers(app)


def _add_in_process_api(app: FastAPI) -> None:
    """One client to the API for the app's life (used when embedded: `webui/client.py`),
    closed after the app's own shutdown."""
    api = app.state.webui_api = InProcessApi(app)
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[Any]:
        try:
            async with inner(app) as state:
                yield state
        finally:
            await api.aclose()

    app.router.lifespan_context = lifespan


def _install_handlers(app: FastAPI) -> None:
    @app.exception_handler(SignInRequired)
    async def sign_in_required(request: Request, _: Exception) -> Response:
        session = current_session(request)
        if session.signed_in:  # the token expired or was revoked: start over
            store_of(request).drop(session)
            use_session(request, store_of(request).new())
            current_session(request).flash("Your session ended. Please log in again.", "warn")
        target = request.url.path if request.method == "GET" and not is_htmx(request) else ""
        return go(request, f"/login?next={quote(target)}" if target else "/login")

    @app.exception_handler(CsrfRejected)
    async def csrf_rejected(request: Request, _: Exception) -> Response:
        message = "This form has expired. Reload the page and try again."
        context = {"heading": "Form expired", "message": message}
        return render(request, "error.html", context, status=403)

    @app.exception_handler(AdminOnly)
    async def admin_only(request: Request, _: Exception) -> Response:
        context = {"heading": "Admins only", "message": "This page is for administrators."}
        return render(request, "error.html", context, status=403)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, ApiError)
        if request.method == "GET" and "cursor" in request.query_params and error.field("cursor"):
            # A list link whose cursor no longer holds (a bookmark from another session, a new
            # token secret): the newest page of the same list, with the same filters.
            kept = [(k, v) for k, v in request.query_params.multi_items() if k not in PAGING]
            query = "&".join(f"{quote(k)}={quote(v)}" for k, v in kept)
            return go(request, request.url.path + (f"?{query}" if query else ""))
        context = {"heading": "Something went wrong", "message": error.message}
        return render(request, "error.html", context, status=502 if error.status >= 500 else 400)
