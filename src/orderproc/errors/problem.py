"""The one RFC 7807 renderer: every error leaves as `application/problem+json`."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from orderproc.common.context import request_id_var
from orderproc.errors.exceptions import (
    AuthenticationFailed,
    BusinessRuleViolation,
    Conflict,
    MethodNotAllowed,
    NotFound,
    OrderProcError,
    PayloadTooLarge,
    PermissionDenied,
    RouteNotFound,
    ServiceUnavailable,
    TooManyRequests,
    ValidationFailed,
)

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://orderproc.dev/problems/"
REF_PREFIX = "#/components/schemas/"
log = logging.getLogger("orderproc.errors")

# Most specific first: the edge's whole knowledge of HTTP status codes.
_STATUS: tuple[tuple[type[OrderProcError], int], ...] = (
    (PayloadTooLarge, 413),
    (ValidationFailed, 422),
    (AuthenticationFailed, 401),
    (PermissionDenied, 403),
    (NotFound, 404),
    (MethodNotAllowed, 405),
    (Conflict, 409),
    (BusinessRuleViolation, 422),
    (TooManyRequests, 429),
    (ServiceUnavailable, 503),
)


class FieldError(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class Problem(BaseModel):
    """RFC 7807 problem details, with a stable `code` and the request id."""

    type: str = Field(examples=[f"{TYPE_BASE}insufficient-funds"])
    title: str
    status: int
    detail: str
    instance: str
    code: str = Field(examples=["INSUFFICIENT_FUNDS"])
    request_id: str | None = None
    errors: list[FieldError] | None = None


def status_for(error: OrderProcError) -> int:
    for category, status in _STATUS:
        if isinstance(error, category):
            return status
    return 400


def problem_response(
    *,
    status: int,
    code: str,
    title: str,
    detail: str,
    instance: str,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body: dict[str, Any] = {
        "type": TYPE_BASE + code.lower().replace("_", "-"),
        "title": title,
        "status": status,
        "detail": detail,
        "instance": instance,
        "code": code,
        "request_id": request_id_var.get(),
    }
    if errors is not None:
        body["errors"] = errors
    return Response(orjson.dumps(body), status, headers=headers, media_type=PROBLEM_JSON)


def render(error: OrderProcError, instance: str) -> Response:
    headers = None
    if isinstance(error, TooManyRequests | ServiceUnavailable):
        headers = {"Retry-After": str(error.retry_after)}
    elif isinstance(error, AuthenticationFailed):
        headers = {"WWW-Authenticate": "Bearer"}
    errors = error.errors if isinstance(error, ValidationFailed) else None
    return problem_response(
        status=status_for(error),
        code=error.code,
        title=error.title,
        detail=error.detail,
        instance=instance,
        errors=errors,
        headers=headers,
    )


def _field_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    return [
        {"loc": list(err.get("loc", ())), "msg": str(err.get("msg", "")), "type": err.get("type")}
        for err in exc.errors()
    ]


async def _on_domain_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, OrderProcError)
    if isinstance(exc, ServiceUnavailable):  # the operator's business: say what failed
        log.warning("%s: %s", exc.code, exc, extra={"path": request.url.path})
    return render(exc, request.url.path)


async def _on_validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = _field_errors(exc)
    first = errors[0] if errors else {"loc": [], "msg": "invalid"}
    where = ".".join(str(part) for part in first["loc"])
    message = str(first["msg"])
    error = ValidationFailed(f"{where}: {message}" if where else message, errors)
    return render(error, request.url.path)


async def _on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    error: OrderProcError
    if exc.status_code == 404:
        error = RouteNotFound()
    elif exc.status_code == 405:
        error = MethodNotAllowed()
    elif exc.status_code == 413:
        error = PayloadTooLarge()
    elif exc.status_code == 401:
        error = AuthenticationFailed(str(exc.detail))
    else:
        return problem_response(
            status=exc.status_code,
            code="HTTP_ERROR",
            title="Request failed",
            detail=str(exc.detail),
            instance=request.url.path,
            headers=dict(exc.headers) if exc.headers else None,
        )
    response = render(error, request.url.path)
    if exc.headers:  # e.g. the 405's `Allow`, which RFC 9110 requires
        response.headers.update(exc.headers)
    return response


async def _on_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error", extra={"path": request.url.path})
    return problem_response(
        status=500,
        code="INTERNAL_ERROR",
        title="Internal server error",
        detail="Something went wrong on our side; quote the request id if you report it.",
        instance=request.url.path,
    )


def install_problem_handlers(app: FastAPI) -> None:
    """Make every error of `app` an RFC 7807 response, and put the `Problem` schema that
    `problem_responses` refers to in its OpenAPI document."""
    app.add_exception_handler(OrderProcError, _on_domain_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(Exception, _on_unexpected)
    build = app.openapi

    def openapi() -> dict[str, Any]:
        document = build()  # FastAPI keeps it, so this runs once
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        if "Problem" not in schemas:
            document["components"]["schemas"] = dict(sorted({**schemas, **_schemas()}.items()))
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def _schemas() -> dict[str, Any]:
    """`Problem` and the models it uses, as OpenAPI components."""
    schema = Problem.model_json_schema(ref_template=REF_PREFIX + "{model}", mode="serialization")
    return {**schema.pop("$defs"), "Problem": schema}


def problem_responses(*statuses: int, store: bool = True) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries declaring problem+json bodies for these statuses, and 503
    unless `store=False`: any route that reads or writes the store (or checks a token's
    revocation in it) answers 503 with `Retry-After` when the store is full, read-only, slow or
    unreachable.

    They refer to `Problem` by `$ref` alone (`install_problem_handlers` adds it to the
    components): given as a response `model`, FastAPI would declare it as `application/json`
    too, which no error is."""
    descriptions = {
        400: "The body could not be read (for example, it is not UTF-8)",
        401: "Not authenticated, or the token is invalid or revoked",
        403: "Forbidden",
        404: "Not found",
        409: "Conflict",
        413: "Request body too large",
        422: "Invalid input, or a business rule refused it",
        429: "Rate limited or busy; see Retry-After",
        503: "A backing service (the store, Redis) is unavailable; see Retry-After",
    }
    if store and 503 not in statuses:
        statuses = (*statuses, 503)
    return {
        status: {
            "description": descriptions.get(status, "Error"),
            "content": {PROBLEM_JSON: {"schema": {"$ref": REF_PREFIX + "Problem"}}},
        }
        for status in statuses
    }
