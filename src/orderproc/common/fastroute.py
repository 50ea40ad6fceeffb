"""A leaner request handler for the busiest routes, with FastAPI's semantics kept.

FastAPI's handler is general: it re-reads the endpoint's context, parses the content type with
`email.message`, and walks the dependency tree for every request. For a route whose endpoint
takes at most one JSON body model plus dependencies that need nothing but the request (the
principal, the runtime, the idempotency key) and returns a `Response`, `FastRoute` resolves the
same things directly: the body is parsed and validated as FastAPI would (the same content types,
the same 422 errors), each dependency is called with the request, and the endpoint's response is
sent as is. Any other route gets FastAPI's own handler. The OpenAPI document is FastAPI's, since
the route is declared the usual way.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import orjson
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class FastRoute(APIRoute):
    def get_route_handler(self) -> Handler:
        lean = _lean_handler(self.dependant)
        return lean if lean is not None else super().get_route_handler()


def _lean_handler(dependant: Dependant) -> Handler | None:
    endpoint = dependant.call
    if endpoint is None or not inspect.iscoroutinefunction(endpoint) or _has_own_params(dependant):
        return None
    if dependant.request_param_name or len(dependant.body_params) > 1:
        return None
    body: tuple[str, type[BaseModel]] | None = None
    if dependant.body_params:
        field = dependant.body_params[0]
        model = field.field_info.annotation
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
        body = (field.name, model)
    dependencies: list[tuple[str, Callable[[Request], Awaitable[Any]]]] = []
    for sub in dependant.dependencies:
        call = sub.call
        if (
            sub.name is None
            or call is None
            or sub.dependencies
            or _has_own_params(sub)
            or sub.body_params
            or not sub.request_param_name
            or not _is_async(call)
        ):
            return None
        dependencies.append((sub.name, call))
    run: Callable[..., Awaitable[Any]] = endpoint

    async def handle(request: Request) -> Response:
        # FastAPI's order: the body is read and parsed, the dependencies run (so a request
        # without a token is a 401 whatever its body), then the body is validated.
        value = await _read_body(request) if body is not None else None
        arguments: dict[str, Any] = {}
        for name, call in dependencies:
            arguments[name] = await call(request)
        if body is not None:
            name, model = body
            arguments[name] = _validate(value, model)
        response = await run(**arguments)
        if not isinstance(response, Response):
            raise TypeError(f"{run.__name__} must return a Response under FastRoute")
        return response

    return handle


def _has_own_params(dependant: Dependant) -> bool:
    return bool(
        dependant.path_params
        or dependant.query_params
        or dependant.header_params
        or dependant.cookie_params
        or dependant.security_scopes_param_name
        or dependant.response_param_name
        or dependant.background_tasks_param_name
        or dependant.websocket_param_name
        or dependant.http_connection_param_name
    )


def _is_async(call: Callable[..., Any]) -> bool:
    """A coroutine function, or an instance whose `__call__` is one (a security scheme)."""
    return inspect.iscoroutinefunction(call) or inspect.iscoroutinefunction(type(call).__call__)


async def _read_body(request: Request) -> Any:
    """As FastAPI: JSON when the content type is absent or `application/json` or `+json`;
    otherwise the raw bytes, which the model then refuses. None for an empty body."""
    raw = await request.body()
    value: Any = None
    if raw:
        content_type = request.headers.get("content-type")
        value = raw
        if content_type is None or _is_json(content_type):
            try:
                value = orjson.loads(raw)
            except orjson.JSONDecodeError as error:
                raise RequestValidationError(
                    [
                        {
                            "type": "json_invalid",
                            "loc": ("body", error.pos),
                            "msg": "JSON decode error",
                            "input": {},
                            "ctx": {"error": error.msg},
                        }
                    ],
                    body=raw,
                ) from error
    return value


def _validate(value: Any, model: type[BaseModel]) -> BaseModel:
    if value is None:
        raise RequestValidationError(
            [{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}]
        )
    try:
        return model.model_validate(value, from_attributes=True)
    except ValidationError as error:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in error.errors(include_url=False)]
        raise RequestValidationError(errors, body=value) from None


def _is_json(content_type: str) -> bool:
    main = content_type.split(";", 1)[0].strip().lower()
    kind, _, subtype = main.partition("/")
    return kind == "application" and (subtype == "json" or subtype.endswith("+json"))
