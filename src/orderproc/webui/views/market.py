"""The market: every asset with its live price and 24 h change; search, category, sort."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import Response

from orderproc.webui.client import Api
from orderproc.webui.pages import int_param, is_htmx, page_info, render
from orderproc.webui.session import current_session

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 100
SORTS = {
    "rank": ("market_cap_rank", "asc", "Market cap"),
    "change_desc": ("change_24h", "desc", "Top gainers"),
    "change_asc": ("change_24h", "asc", "Top losers"),
    "price_desc": ("price", "desc", "Price, high to low"),
    "price_asc": ("price", "asc", "Price, low to high"),
    "volume": ("volume", "desc", "Volume"),
    "name": ("name", "asc", "Name"),
}
CATEGORY_TTL = 300.0


@router.get("/market")
async def market(request: Request) -> Response:
    params = request.query_params
    query = {
        "q": params.get("q", "").strip()[:60],
        "category": params.get("category", ""),
        "sort": params.get("sort", "rank") if params.get("sort") in SORTS else "rank",
    }
    offset = int_param(params.get("offset"))
    api = Api(request, current_session(request))
    sort_by, sort_order, _ = SORTS[query["sort"]]
    page = await api.get(
        "/inventory/assets",
        search=query["q"],
        category=query["category"],
        sort_by=sort_by,
        sort_order=sort_order,
        limit=PAGE_SIZE,
        offset=offset,
    )
    context = {
        "assets": page["data"],
        "page": page_info(page, offset, PAGE_SIZE, page["data"]),
        "query": query,
        "sorts": {key: label for key, (_, _, label) in SORTS.items()},
        "categories": await _categories(request, api),
    }
    template = "market/_table.html" if is_htmx(request) else "market/market.html"
    return render(request, template, context)


async def _categories(request: Request, api: Api) -> list[str]:
    """The catalog's categories, asked of the API at most every few minutes."""
    cached: tuple[float, list[str]] | None = getattr(request.app.state, "webui_categories", None)
    if cached and cached[0] > time.monotonic():
        return cached[1]
    page = await api.get("/inventory/assets", limit=250)
    names = sorted({str(asset["category"]) for asset in page["data"]})
    request.app.state.webui_categories = (time.monotonic() + CATEGORY_TTL, names)
    return names
