"""Admin pages: the user list and the audit log."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from orderproc.webui.client import Api
from orderproc.webui.pages import int_param, page_info, render, require_user
from orderproc.webui.session import AdminOnly

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 50


def _admin_api(request: Request) -> Api:
    session = require_user(request)
    if not session.is_admin:
        raise AdminOnly
    return Api(request, session)


@router.get("/admin/users")
async def users(request: Request) -> Response:
    api = _admin_api(request)
    offset = int_param(request.query_params.get("offset"))
    answer = await api.get("/admin/users", limit=PAGE_SIZE, offset=offset)
    rows = answer.get("data") or answer.get("users") or []
    context = {"users": rows, "page": page_info(answer, offset, PAGE_SIZE, rows), "filters": {}}
    return render(request, "admin/users.html", context)


@router.get("/admin/audit")
async def audit(request: Request) -> Response:
    api = _admin_api(request)
    params = request.query_params
    filters = {
        name: params.get(name, "").strip()[:60]
        for name in ("username", "event_type")
        if params.get(name, "").strip()
    }
    offset = int_param(params.get("offset"))
    answer = await api.get("/admin/audit", **filters, limit=PAGE_SIZE, offset=offset)
    rows = answer.get("data") or answer.get("events") or []
    page = page_info(answer, offset, PAGE_SIZE, rows)
    return render(request, "admin/audit.html", {"events": rows, "page": page, "filters": filters})
