"""The embedded composition root: one app with every service's routes under `/api/v1`."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response

from orderproc import __version__
from orderproc.common.asgi import EdgeMiddleware
from orderproc.common.clock import Clock
from orderproc.common.metrics import CONTENT_TYPE_LATEST
from orderproc.common.routing import include_flat
from orderproc.common.settings import Settings
from orderproc.errors.problem import install_problem_handlers, problem_responses
from orderproc.gateway.docs import DESCRIPTION, SWAGGER_DIR, openapi_tags, swagger_ui_page
from orderproc.gateway.ratelimit import RateLimitMiddleware
from orderproc.inventory import api as inventory_api
from orderproc.inventory.cache import CatalogResponseCache
from orderproc.orders import api as orders_api
from orderproc.runtime import Runtime, build_runtime
from orderproc.users import api as users_api
from orderproc.webui.routes import mount_webui

API_PREFIX = "/api/v1"
SERVICES = ("users", "inventory", "orders")
# Starlette tries routes in order, about 2 µs each (measured: POST /orders was the 26th), so
# the busiest routers go first; `openapi_tags` keeps the docs in reading order.
_BUSIEST = (orders_api.orders, users_api.balance)
API_ROUTERS = (
    *_BUSIEST,
    *(
        router
        for router in (*users_api.routers, *inventory_api.routers, *orders_api.routers)
        if router not in _BUSIEST
    ),
)


def create_app(
    settings: Settings, *, runtime: Runtime | None = None, clock: Clock | None = None
) -> FastAPI:
    """The whole platform in one app. Without `runtime`, it is built at start-up."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if runtime is None:
            app.state.runtime = await build_runtime(settings, clock=clock, service="gateway")
            try:  # a start-up that fails closes what it opened, as the services' apps do
                await app.state.runtime.start_background()
                # What start-up built lives as long as the process: keep the cyclic collector
                # from walking it on every full collection (pauses under load otherwise grow
                # with it).
                gc.collect()
                gc.freeze()
                yield
            finally:
                await app.state.runtime.close()
        else:
            yield

    app = FastAPI(
        title="Order Processor",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_tags=openapi_tags(sandbox=settings.sandbox),
        # Observability here is Prometheus metrics and JSON logs. FastAPI's OpenTelemetry
        # bridge, on by default since 0.16x, looks up three global providers on every request
        # even when none is configured (docs/PERFORMANCE.md); off until we export traces.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    if runtime is not None:
        app.state.runtime = runtime
    install_problem_handlers(app)
    app.add_middleware(CatalogResponseCache, state=app.state)  # innermost
    app.add_middleware(RateLimitMiddleware, state=app.state)
    app.add_middleware(EdgeMiddleware, state=app.state)  # added last, so outermost
    for router in (*API_ROUTERS, *inventory_api.sandbox_routers(settings)):
        include_flat(app, router, prefix=API_PREFIX)
    _add_operations(app)
    _add_docs(app)
    mount_webui(app)
    return app


def _add_docs(app: FastAPI) -> None:
    """Swagger UI from vendored files, so the docs work without internet access."""
    app.mount("/docs/static", StaticFiles(directory=SWAGGER_DIR), name="swagger-ui")

    page = swagger_ui_page()  # the same page the gateway of distributed mode serves

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(page)


def _add_operations(app: FastAPI) -> None:
    @app.get("/health", operation_id="operations_health", tags=["operations"])
    async def health() -> dict[str, object]:
        """Alive; in embedded mode every service lives in this process."""
        return {"status": "ok", "services": {name: "ok" for name in SERVICES}}

    @app.get(
        "/ready",
        operation_id="operations_ready",
        tags=["operations"],
        responses=problem_responses(503),
    )
    async def ready() -> dict[str, object]:
        """The store answers; `degraded` names an optional dependency that does not (Redis,
        when configured), without which the platform works on."""
        degraded = await app.state.runtime.ready()
        return {"status": "ready", "degraded": degraded} if degraded else {"status": "ready"}

    @app.get(
        "/metrics", operation_id="operations_metrics", tags=["operations"], response_class=Response
    )
    async def metrics() -> Response:
        """Prometheus metrics."""
        return Response(app.state.runtime.metrics.render(), media_type=CONTENT_TYPE_LATEST)
