"""`include_flat` adds a router's routes as `include_router` does, minus the router node: the
same OpenAPI document, the same routes in the same order, each with its own route class."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.routing import APIRoute

from orderproc.common.fastroute import FastRoute
from orderproc.common.routing import include_flat
from orderproc.errors.problem import install_problem_handlers
from orderproc.gateway.app import API_PREFIX, API_ROUTERS


def app(*, flat: bool) -> FastAPI:
    made = FastAPI(title="t", version="1")
    install_problem_handlers(made)
    for router in API_ROUTERS:
        if flat:
            include_flat(made, router, prefix=API_PREFIX)
        else:
            made.include_router(router, prefix=API_PREFIX)
    return made


def test_the_openapi_document_is_include_routers() -> None:
    assert app(flat=True).openapi() == app(flat=False).openapi()


def test_routes_are_direct_children_of_the_app_with_their_own_class() -> None:
    routes = [r for r in app(flat=True).routes if isinstance(r, APIRoute)]
    declared = [r for router in API_ROUTERS for r in router.routes]
    assert [(r.path, r.methods) for r in routes] == [
        (API_PREFIX + r.path, r.methods) for r in declared if isinstance(r, APIRoute)
    ]
    assert {type(r) for r in routes} == {APIRoute, FastRoute}
