"""A leaner request handler for the busiest routes, with FastAPI's semantics kept.

FastAPI's handler is general: for every request it looks up the endpoint's context, parses the
content type with `email.message` and walks the dependency tree. For a route whose endpoint
takes at most one JSON body model plus dependencies that need nothing but the request (the
principal, the runtime, the idempotency key) and returns a `Response`, `FastRoute` does the same
steps directly: the body is read as FastAPI reads it (the same parser, the same content-type
rules, cached per content type, the same 422 and 400 answers), the dependencies run first, then
the body is validated, and the endpoint's response is sent as is. Any other route, and every
route while `app.dependency_overrides` is set, gets FastAPI's own handler. The OpenAPI document
is FastAPI's, since the route is declared the usual way. tests/unit/test_fastroute.py compares
both handlers on the same requests.
"""

from __future__ import annotations

import email.message
import functools
import inspect
import json
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from fastapi import HTTPException
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class FastRoute(APIRoute):
    def get_route_handler(self) -> Handler:
        stock = super().get_route_handler()
        lean = _lean_handler(self.dependant)
        if lean is None:
            return stock
        provider = self.dependency_overrides_provider

        async def handle(request: Request) -> Response:
            # `app.dependency_overrides` (tests' tool) is FastAPI's business: its handler then.
            if provider is not None and getattr(provider, "dependency_overrides", None):
                return await stock(request)
            return await lean(request)

        return handle


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
    """FastAPI's reading, step for step: the stdlib JSON parser (bytes in any JSON encoding)
    when the content type is empty or JSON by `email.message`'s rules, else the raw bytes (which
    the model then refuses); a decode error is a 422, anything else a 400. None when empty."""
    try:
        raw = await request.body()
        if not raw:
            return None
        content_type = request.headers.get("content-type")
        if not content_type or _is_json(content_type):
            return json.loads(raw)
        return raw
    except json.JSONDecodeError as error:
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
            body=error.doc,
        ) from error
    except StarletteHTTPException:
        raise  # from a middleware, e.g. the body-size limit's 413
    except Exception as error:
        detail = "There was an error parsing the body"
        raise HTTPException(status_code=400, detail=detail) from error


@functools.lru_cache(maxsize=256)
def _is_json(content_type: str) -> bool:
    message = email.message.Message()
    message["content-type"] = content_type
    if message.get_content_maintype() != "application":
        return False
    subtype = message.get_content_subtype()
    return subtype == "json" or subtype.endswith("+json")


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
