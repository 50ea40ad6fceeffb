"""One service as an app of its own (`orderproc serve users|inventory|orders|webui`): its
routes, the shared edge (request ids, access log, metrics, security headers, body limit,
problem+json errors) and its own `/health`, `/ready` and `/metrics`."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Protocol

from fastapi import APIRouter, FastAPI
from starlette.responses import Response

from orderproc import __version__
from orderproc.common.asgi import EdgeMiddleware
from orderproc.common.metrics import CONTENT_TYPE_LATEST, Metrics
from orderproc.common.routing import include_flat
from orderproc.common.settings import Settings
from orderproc.errors.problem import install_problem_handlers, problem_responses

API_PREFIX = "/api/v1"


class ServiceRuntime(Protocol):
    """What the app of one service needs of its runtime, beside what its routes need."""

    @property
    def settings(self) -> Settings: ...
    @property
    def metrics(self) -> Metrics: ...
    async def start(self) -> None: ...
    async def ready(self) -> list[str]:
        """Raise `ServiceUnavailable` when a required dependency does not answer; return the
        optional ones that do not (the service works on without them, degraded)."""

    async def close(self) -> None: ...


def service_app(
    name: str,
    settings: Settings,
    *,
    build: Callable[[], Awaitable[ServiceRuntime]],
    routers: Iterable[APIRouter] = (),
    middleware: Iterable[Callable[[FastAPI], None]] = (),
    mount: Callable[[FastAPI], None] | None = None,
) -> FastAPI:
    """The app of service `name`: `build` makes its runtime at start-up (kept in
    `app.state.runtime`); each of `middleware` adds one to the app (innermost first), inside the
    edge."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = await build()
        app.state.runtime = runtime
        try:
            await runtime.start()
            gc.collect()
            gc.freeze()  # as the embedded app: start-up state lives as long as the process
            yield
        finally:
            await runtime.close()

    app = FastAPI(
        title=f"Order Processor: {name}",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    install_problem_handlers(app)
    for add in middleware:
        add(app)
    app.add_middleware(EdgeMiddleware, state=app.state)  # added last, so outermost
    for router in routers:
        include_flat(app, router, prefix=API_PREFIX)
    _add_operations(app, name)
    if mount is not None:
        mount(app)
    return app


def _add_operations(app: FastAPI, name: str) -> None:
    @app.get("/health", operation_id="operations_health", tags=["operations"])
    async def health() -> dict[str, object]:
        """Alive."""
        return {"status": "ok", "service": name}

    @app.get(
        "/ready",
        operation_id="operations_ready",
        tags=["operations"],
        responses=problem_responses(503),
    )
    async def ready() -> dict[str, object]:
        """What the service needs answers (its store); `degraded` names an optional dependency
        that does not (Redis), without which it works on."""
        runtime: ServiceRuntime = app.state.runtime
        degraded = await runtime.ready()
        answer: dict[str, object] = {"status": "ready", "service": name}
        if degraded:
            answer["degraded"] = degraded
        return answer

    @app.get(
        "/metrics", operation_id="operations_metrics", tags=["operations"], response_class=Response
    )
    async def metrics() -> Response:
        """Prometheus metrics."""
        runtime: ServiceRuntime = app.state.runtime
        return Response(runtime.metrics.render(), media_type=CONTENT_TYPE_LATEST)
