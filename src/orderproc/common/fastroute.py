"""A leaner request handler for the busiest routes, with FastAPI's semantics kept.

FastAPI's handler is general: per request it sets up exit stacks and telemetry, parses the
content type with `email.message` and walks the dependency tree. `FastRoute` is an opt-in
`APIRoute` (FastAPI's documented extension point: a custom route class that overrides
`get_route_handler`) for endpoints of one simple shape, read from the endpoint's own signature:

- dependencies declared as `Annotated[T, Depends(call)]` where `call` is async and takes only the
  `Request` (a function, or an instance whose `__call__` does, such as a security scheme);
- at most one JSON body, a pydantic model;
- a `Response` returned as is (see `model_response`).

For those it does FastAPI's steps directly, in FastAPI's order: the body is read and parsed (the
same parser, the same content-type rules, cached per content type, the same 400 and 422
answers), the dependencies run, then the body is validated. Any other endpoint, a route with
`max_body_size`, a body sent without a content type (whose fate depends on the effective
`strict_content_type`), and every request while `app.dependency_overrides` is set get FastAPI's
own handler. The OpenAPI document is FastAPI's, since the route is declared the
usual way. Only public API is used: the endpoint's signature and type hints, `Depends.dependency`,
and the route's documented settings. tests/unit/test_fastroute.py compares both handlers on the
same requests, and the same OpenAPI document.
"""

from __future__ import annotations

import email.message
import functools
import inspect
import json
import typing
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.params import Depends
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

__all__ = ["FastRoute"]

Handler = Callable[[Request], Coroutine[Any, Any, Response]]
Dependency = Callable[[Request], Awaitable[Any]]
_EMPTY: Any = object()  # no body at all, as opposed to a JSON `null`
_DEFER: Any = object()  # a body without a content type: FastAPI's handler decides


@dataclass(frozen=True, slots=True)
class _Plan:
    """What a lean call needs: the dependencies in declaration order, and the body, if any."""

    dependencies: tuple[tuple[str, Dependency], ...]
    body: tuple[str, type[BaseModel]] | None


class FastRoute(APIRoute):
    def get_route_handler(self) -> Handler:
        stock = super().get_route_handler()
        plan = _plan_for(self.endpoint)
        if plan is None or self.max_body_size is not None:
            return stock
        lean = _lean_handler(self.endpoint, plan, stock)

        async def handle(request: Request) -> Response:
            # `app.dependency_overrides` (tests' tool) is FastAPI's business: its handler then.
            if getattr(request.app, "dependency_overrides", None):
                return await stock(request)
            return await lean(request)

        return handle


def _plan_for(endpoint: Callable[..., Any]) -> _Plan | None:
    """The lean plan for this endpoint, or None when its signature is not the simple shape."""
    if not inspect.iscoroutinefunction(endpoint):
        return None
    try:
        hints = typing.get_type_hints(endpoint, include_extras=True)
    except (NameError, TypeError):
        return None
    dependencies: list[tuple[str, Dependency]] = []
    body: tuple[str, type[BaseModel]] | None = None
    for name, parameter in inspect.signature(endpoint).parameters.items():
        hint = hints.get(name)
        call = _request_only_dependency(hint)
        if call is not None and parameter.default is inspect.Parameter.empty:
            dependencies.append((name, call))
        elif _is_model(hint) and body is None and parameter.default is inspect.Parameter.empty:
            body = (name, hint)
        else:
            return None
    return _Plan(tuple(dependencies), body)


def _request_only_dependency(hint: Any) -> Dependency | None:
    """`call` of `Annotated[T, Depends(call)]` when it is async and needs only the request."""
    if typing.get_origin(hint) is not Annotated:
        return None
    markers = [m for m in hint.__metadata__ if isinstance(m, Depends)]
    if len(markers) != 1 or len(hint.__metadata__) != 1:
        return None
    call = markers[0].dependency
    if call is None or getattr(markers[0], "scopes", None):
        return None
    function = call if inspect.isfunction(call) else type(call).__call__
    if not inspect.iscoroutinefunction(function):
        return None
    try:
        parameters = list(inspect.signature(call).parameters.values())
        call_hints = typing.get_type_hints(function)
    except (NameError, TypeError, ValueError):
        return None
    if len(parameters) != 1 or call_hints.get(parameters[0].name) is not Request:
        return None
    return typing.cast(Dependency, call)


def _is_model(hint: Any) -> typing.TypeGuard[type[BaseModel]]:
    return isinstance(hint, type) and issubclass(hint, BaseModel)


def _lean_handler(endpoint: Callable[..., Any], plan: _Plan, stock: Handler) -> Handler:
    run: Callable[..., Awaitable[Any]] = endpoint
    dependencies, body = plan.dependencies, plan.body

    async def handle(request: Request) -> Response:
        # FastAPI's order: the body is read and parsed, the dependencies run (so a request
        # without a token is a 401 whatever its body), then the body is validated.
        value = await _read_body(request) if body is not None else _EMPTY
        if value is _DEFER:
            return await stock(request)  # nothing has run yet; the body is cached
        arguments: dict[str, Any] = {}
        for name, call in dependencies:
            arguments[name] = await call(request)
        if body is not None:
            arguments[body[0]] = _validate(value, body[1])
        response = await run(**arguments)
        if not isinstance(response, Response):
            raise TypeError(f"{run.__name__} must return a Response under FastRoute")
        return response

    return handle


async def _read_body(request: Request) -> Any:
    """FastAPI's reading, step for step: the stdlib JSON parser (bytes in any JSON encoding)
    when the content type is JSON by `email.message`'s rules, else the raw bytes (which the
    model then refuses); a decode error is a 422, anything else a 400. `_EMPTY` when there is
    no body; `_DEFER` when there is no content type, whose treatment depends on the effective
    `strict_content_type` of the app, router and route, which only FastAPI's handler knows."""
    try:
        raw = await request.body()
        if not raw:
            return _EMPTY
        content_type = request.headers.get("content-type")
        if not content_type:
            return _DEFER
        if _is_json(content_type):
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
    if value is _EMPTY:
        raise RequestValidationError(
            [{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}]
        )
    try:
        return model.model_validate(value, from_attributes=True)
    except ValidationError as error:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in error.errors(include_url=False)]
        raise RequestValidationError(errors, body=value) from None
