"""Rendering for the web UI: full pages, htmx fragments, redirects; each carries the page
Content-Security-Policy (no inline scripts or styles) and the session cookie."""

from __future__ import annotations

import hashlib
import re
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from orderproc import __version__
from orderproc.webui.formatting import FILTERS
from orderproc.webui.session import Session, SignInRequired, attach_cookie, current_session

HERE = Path(__file__).parent
# The one hash lets the chart library's own <style> for its TradingView attribution logo.
CHART_LOGO_STYLE = "'sha256-3pRED1tOXas1FXFoPb9TGCjmYe9XQsmO9OV23khV2nY='"
PAGE_CSP = (
    f"default-src 'none'; script-src 'self'; style-src 'self' {CHART_LOGO_STYLE}; "
    "img-src 'self' https: data:; "
    "connect-src 'self'; font-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)


def _static_version() -> str:
    """Changes whenever our own CSS or JS does, so cached copies never outlive an upgrade."""
    digest = hashlib.sha256(__version__.encode())
    for name in ("app.css", "app.js"):
        digest.update((HERE / "static" / name).read_bytes())
    return digest.hexdigest()[:12]


templates = Jinja2Templates(directory=HERE / "templates")
templates.env.filters.update(FILTERS)
templates.env.globals.update(version=_static_version(), new_key=lambda: uuid.uuid4().hex)


def is_htmx(request: Request) -> bool:
    """An htmx request that wants a fragment (a history restore wants the whole page)."""
    headers = request.headers
    return (
        headers.get("hx-request") == "true" and headers.get("hx-history-restore-request") != "true"
    )


def render(
    request: Request, template: str, context: dict[str, Any] | None = None, status: int = 200
) -> Response:
    """A whole page, or (for htmx) whatever the template renders as its fragment."""
    session = current_session(request)
    values = {
        "request": request,
        "session": session,
        "csrf": session.csrf,
        "flashes": session.take_flashes() if not is_htmx(request) else [],
        "path": request.url.path,
        **(context or {}),
    }
    response = templates.TemplateResponse(request, template, values, status_code=status)
    return finish(request, response)


def finish(request: Request, response: Response) -> Response:
    response.headers["content-security-policy"] = PAGE_CSP
    response.headers["vary"] = "HX-Request"
    return attach_cookie(request, response)


def go(request: Request, url: str, *, message: str | None = None) -> Response:
    """After a successful form: htmx follows `HX-Location`; a plain form gets a 303."""
    if message:
        current_session(request).flash(message)
    if is_htmx(request):
        response: Response = HTMLResponse("", headers={"hx-redirect": url})
    else:
        response = RedirectResponse(url, status_code=303)
    return finish(request, response)


def render_form(
    request: Request, page: str, fragment: str, context: dict[str, Any], status: int = 200
) -> Response:
    """A form after a POST: only its fragment for htmx, the whole page for a plain browser."""
    return render(request, fragment if is_htmx(request) else page, context, status)


def error_status(status: int) -> int:
    """The status a re-rendered form answers with: the API's 4xx, or 503 when it failed."""
    return status if 400 <= status < 500 else 503


def require_user(request: Request) -> Session:
    session = current_session(request)
    if not session.signed_in:
        raise SignInRequired
    return session


def int_param(value: str | None) -> int:
    """A non-negative integer query parameter (an offset), 0 when absent or malformed."""
    return int(value) if value and value.isdigit() and len(value) < 10 else 0


def page_info(answer: dict[str, Any], offset: int, limit: int, rows: list[Any]) -> dict[str, Any]:
    """What the offset pager (the market's) needs from one page of an API list."""
    return {
        "offset": offset,
        "limit": limit,
        "count": len(rows),
        "total": answer.get("total_count"),
        "has_more": bool(answer.get("has_more")),
    }


_CURSOR = re.compile(r"[A-Za-z0-9_.-]{1,256}")
TRAIL_PAGES = 20  # how many pages back "Newer" can step before it jumps to the newest


def cursor_of(request: Request) -> str | None:
    """The API cursor this page of a list was asked for with (`?cursor=`), if well formed."""
    cursor = request.query_params.get("cursor", "")
    return cursor if _CURSOR.fullmatch(cursor) else None


def cursor_pager(
    request: Request, answer: dict[str, Any], filters: dict[str, str]
) -> dict[str, Any]:
    """Newer and Older links for one page of an API list paged by cursor: Older asks for the
    answer's `next_cursor`; Newer for the cursor of the page before, which the links carry
    along in `trail` (the cursors of the pages between the newest and this one, up to
    `TRAIL_PAGES`; past that, Newer goes back to the newest page). None: no such link."""
    cursor = cursor_of(request)
    trail = [c for c in request.query_params.get("trail", "").split("~") if _CURSOR.fullmatch(c)]
    older = newer = None
    if answer.get("has_more") and answer.get("next_cursor"):
        behind = [*trail, cursor][-TRAIL_PAGES:] if cursor else []
        older = _link(filters, answer["next_cursor"], behind)
    if cursor:
        newer = _link(filters, trail[-1], trail[:-1]) if trail else _link(filters, None, [])
    return {"older": older, "newer": newer}


def _link(filters: dict[str, str], cursor: str | None, trail: list[str]) -> str:
    """The query string of a page: its filters, its cursor and the trail behind it."""
    params = dict(filters)
    if cursor:
        params["cursor"] = cursor
    if trail:
        params["trail"] = "~".join(trail)
    return urlencode(params)
