"""Profile details and password change."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from orderproc.webui.client import Api, ApiError
from orderproc.webui.pages import error_status, render, render_form, require_user
from orderproc.webui.session import check_csrf

router = APIRouter(include_in_schema=False)
PROFILE_FIELDS = ("email", "first_name", "last_name", "phone")
PAGE, PROFILE_FORM, PASSWORD_FORM = (
    "account/profile.html",
    "account/_profile_form.html",
    "account/_password_form.html",
)


@router.get("/profile")
async def profile(request: Request) -> Response:
    api = Api(request, require_user(request))
    user = await api.get("/auth/profile")
    return render(request, PAGE, {"user": user, "form": user})


@router.post("/profile")
async def update_profile(request: Request) -> Response:
    session = require_user(request)
    await check_csrf(request, session)
    form = await request.form()
    values = {name: str(form.get(name, "")).strip() for name in PROFILE_FIELDS}
    body = {k: (v or None) if k == "phone" else v for k, v in values.items()}
    api = Api(request, session)
    context: dict[str, object] = {"form": values}
    status = 200
    try:
        context["user"] = await api.call("PUT", "/auth/profile", json=body)
        context["saved"] = True
    except ApiError as error:
        if error.code == "EMAIL_TAKEN":
            error.fields["email"] = error.message
        context["error"], status = error, error_status(error.status)
        context["user"] = await api.get("/auth/profile")
    return render_form(request, PAGE, PROFILE_FORM, context, status)


@router.post("/profile/password")
async def change_password(request: Request) -> Response:
    session = require_user(request)
    await check_csrf(request, session)
    form = await request.form()
    current, new = str(form.get("current_password", "")), str(form.get("new_password", ""))
    api = Api(request, session)
    context: dict[str, object] = {}
    status = 200
    try:
        if new != str(form.get("confirm_password", "")):
            raise _Mismatch
        await api.post("/auth/password", {"current_password": current, "new_password": new})
        context["password_changed"] = True
    except _Mismatch:
        context["password_error"], status = {"confirm_password": "The passwords differ."}, 422
    except ApiError as error:
        fields = dict(error.fields)
        if error.status == 401:
            fields["current_password"] = "That is not your current password."
        elif error.status in (403, 429):  # too many wrong current passwords
            fields["current_password"] = error.message
        elif not fields:
            fields["new_password"] = error.message
        context["password_error"], status = fields, error_status(error.status)
    if status != 200 or not request.headers.get("hx-request"):
        user = await api.get("/auth/profile")
        context.update(user=user, form=user)
    return render_form(request, PAGE, PASSWORD_FORM, context, status)


class _Mismatch(Exception):
    pass
