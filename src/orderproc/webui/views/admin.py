"""Admin pages: the user list and the audit log."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from orderproc.webui.client import Api
from orderproc.webui.pages import cursor_of, cursor_pager, render, require_user
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
    answer = await api.get("/admin/users", limit=PAGE_SIZE, cursor=cursor_of(request))
    rows = answer["data"]
    context = {"users": rows, "page": cursor_pager(request, answer, {}), "filters": {}}
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
    answer = await api.get("/admin/audit", **filters, limit=PAGE_SIZE, cursor=cursor_of(request))
    rows = answer["data"]
    page = cursor_pager(request, answer, filters)
    return render(request, "admin/audit.html", {"events": rows, "page": page, "filters": filters})
