"""Sign up, log in and log out."""

from __future__ import annotations

from contextlib import suppress
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from orderproc.webui.client import Api, ApiError
from orderproc.webui.pages import error_status, go, render, render_form
from orderproc.webui.session import (
    Session,
    SignInRequired,
    check_csrf,
    current_session,
    store_of,
    use_session,
)

router = APIRouter(include_in_schema=False)
REGISTER_FIELDS = ("username", "email", "first_name", "last_name")
REGISTER_PAGE, REGISTER_FORM = "auth/register.html", "auth/_register_form.html"


def _safe_next(target: str | None) -> str:
    """Only a local path, so `?next=` cannot send anyone to another site."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return "/portfolio"


@router.get("/login")
async def login_page(request: Request) -> Response:
    if current_session(request).signed_in:
        return go(request, "/portfolio")
    context: dict[str, Any] = {"form": {}, "next": request.query_params.get("next")}
    return render(request, "auth/login.html", context)


@router.post("/login")
async def login(request: Request) -> Response:
    session = current_session(request)
    await check_csrf(request, session)
    form = await request.form()
    username, password = str(form.get("username", "")), str(form.get("password", ""))
    target = _safe_next(str(form.get("next", "")))
    try:
        answer = await Api(request, session).post(
            "/auth/login", {"username": username, "password": password}
        )
    except ApiError as error:
        if error.status == 422:
            error.message = "Enter your username and password."
        context = {"form": {"username": username}, "error": error, "next": target}
        status = error_status(error.status)
        return render_form(request, "auth/login.html", "auth/_login_form.html", context, status)
    _sign_in(request, session, answer)
    return go(request, target)


def _sign_in(request: Request, session: Session, answer: dict[str, object]) -> None:
    user = answer["user"]
    assert isinstance(user, dict)
    signed_in = store_of(request).sign_in(
        session,
        token=str(answer["access_token"]),
        username=str(user["username"]),
        role=str(user.get("role", "customer")),
        ttl=float(str(answer.get("expires_in", 3600))),
    )
    use_session(request, signed_in)


@router.get("/register")
async def register_page(request: Request) -> Response:
    return render(request, "auth/register.html", {"form": {}, "error": None})


@router.post("/register")
async def register(request: Request) -> Response:
    session = current_session(request)
    await check_csrf(request, session)
    form = await request.form()
    values = {name: str(form.get(name, "")).strip() for name in REGISTER_FIELDS}
    password = str(form.get("password", ""))
    api = Api(request, session)
    try:
        await api.post("/auth/register", {**values, "password": password})
        answer = await api.post(
            "/auth/login", {"username": values["username"], "password": password}
        )
    except ApiError as error:
        if error.code == "USERNAME_TAKEN":
            error.fields["username"] = error.message
        elif error.code == "EMAIL_TAKEN":
            error.fields["email"] = error.message
        context = {"form": values, "error": error}
        status = error_status(error.status)
        return render_form(request, REGISTER_PAGE, REGISTER_FORM, context, status)
    _sign_in(request, session, answer)
    return go(request, "/cash", message="Welcome! Add some cash to start trading.")


@router.post("/logout")
async def logout(request: Request) -> Response:
    session = current_session(request)
    await check_csrf(request, session)
    if session.signed_in:
        with suppress(ApiError, SignInRequired):  # a dead token: the session goes anyway
            await Api(request, session).post("/auth/logout")
    store_of(request).drop(session)
    fresh = store_of(request).new()
    fresh.flash("You are logged out.")
    use_session(request, fresh)
    return go(request, "/login")
