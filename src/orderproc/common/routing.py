"""Routers added to an app as a flat list of routes.

Since 0.131, `FastAPI.include_router` keeps each included router as a node that matches its
routes in Python, one method call per route, and walks the nodes for every request that reaches
the router. The platform includes a dozen routers, so a request to a route near the end of the
list (`/health`) made about three times the Python calls it made with a flat list (cProfile,
in-process: 345 → 1,019 calls; `GET /balance` 230 → 443; docs/PERFORMANCE.md). `include_flat`
adds a router's routes to the app itself through the documented `add_api_route`, with every
setting the route was declared with, so matching is one compiled regular expression per route,
as it was, and each route keeps its own route class (`FastRoute` for the hot ones).
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute

__all__ = ["include_flat"]


def include_flat(app: FastAPI, router: APIRouter, *, prefix: str = "") -> None:
    """Add every route of `router` to `app` under `prefix`, as `include_router` would for the
    OpenAPI document and the answers, without a router node in between."""
    for route in router.routes:
        if not isinstance(route, APIRoute):
            raise TypeError(f"include_flat takes API routes only, not {route!r}")
        app.router.add_api_route(
            prefix + route.path,
            route.endpoint,
            response_model=route.response_model,
            status_code=route.status_code,
            tags=route.tags,
            dependencies=route.dependencies,
            summary=route.summary,
            description=route.description,
            response_description=route.response_description,
            responses=route.responses,
            deprecated=route.deprecated,
            methods=route.methods,
            operation_id=route.operation_id,
            response_model_include=route.response_model_include,
            response_model_exclude=route.response_model_exclude,
            response_model_by_alias=route.response_model_by_alias,
            response_model_exclude_unset=route.response_model_exclude_unset,
            response_model_exclude_defaults=route.response_model_exclude_defaults,
            response_model_exclude_none=route.response_model_exclude_none,
            include_in_schema=route.include_in_schema,
            response_class=route.response_class,
            name=route.name,
            route_class_override=type(route),
            callbacks=route.callbacks,
            openapi_extra=route.openapi_extra,
            generate_unique_id_function=route.generate_unique_id_function,
            strict_content_type=route.strict_content_type,
            max_body_size=route.max_body_size,
        )
