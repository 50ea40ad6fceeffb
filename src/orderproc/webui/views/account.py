"""A person's money: portfolio, order history, cash (deposit, withdraw, ledger)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from orderproc.webui.client import Api, ApiError
from orderproc.webui.formatting import money
from orderproc.webui.pages import (
    cursor_of,
    cursor_pager,
    error_status,
    go,
    render,
    render_form,
    require_user,
)
from orderproc.webui.session import check_csrf

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 20
ORDER_STATUSES = ("filled", "open", "cancelled", "expired", "rejected")
ORDER_TYPES = ("market_buy", "market_sell")
LEDGER_TYPES = ("deposit", "withdraw", "order_payment", "order_sale", "fee")


@router.get("/portfolio")
async def portfolio(request: Request) -> Response:
    api = Api(request, require_user(request))
    answer = await api.get("/portfolio")
    positions = sorted(answer["assets"], key=lambda p: -Decimal(p["percentage"] or "0"))
    return render(request, "account/portfolio.html", {"p": answer, "positions": positions})


def _filters(request: Request, allowed: dict[str, tuple[str, ...]]) -> dict[str, str]:
    """Query filters limited to known values; dates as `YYYY-MM-DD`."""
    params = request.query_params
    chosen = {name: params.get(name, "") for name in allowed if params.get(name) in allowed[name]}
    for name in ("start", "end"):
        value = params.get(name, "")
        if len(value) == 10 and value[4] == "-" and value[7] == "-":
            chosen[name] = value
    return chosen


def _time_range(filters: dict[str, str]) -> dict[str, str]:
    bounds = {}
    if "start" in filters:
        bounds["start"] = f"{filters['start']}T00:00:00Z"
    if "end" in filters:
        bounds["end"] = f"{filters['end']}T23:59:59Z"
    return bounds


@router.get("/orders")
async def orders(request: Request) -> Response:
    api = Api(request, require_user(request))
    filters = _filters(request, {"status": ORDER_STATUSES, "order_type": ORDER_TYPES})
    asset_id = request.query_params.get("asset_id", "").strip().upper()[:20]
    if asset_id:
        filters["asset_id"] = asset_id
    query = {k: v for k, v in filters.items() if k not in ("start", "end")}
    answer = await api.get(
        "/orders", **query, **_time_range(filters), limit=PAGE_SIZE, cursor=cursor_of(request)
    )
    context = {
        "orders": answer["data"],
        "page": cursor_pager(request, answer, filters),
        "filters": filters,
        "statuses": ORDER_STATUSES,
        "types": ORDER_TYPES,
    }
    return render(request, "account/orders.html", context)


async def _cash_context(request: Request, api: Api) -> dict[str, Any]:
    filters = _filters(request, {"transaction_type": LEDGER_TYPES})
    balance = await api.get("/balance")
    query = {k: v for k, v in filters.items() if k not in ("start", "end")}
    ledger = await api.get(
        "/balance/transactions",
        **query,
        **_time_range(filters),
        limit=PAGE_SIZE,
        cursor=cursor_of(request),
    )
    return {
        "balance": balance,
        "ledger": ledger["data"],
        "page": cursor_pager(request, ledger, filters),
        "filters": filters,
        "types": LEDGER_TYPES,
    }


@router.get("/cash")
async def cash(request: Request) -> Response:
    api = Api(request, require_user(request))
    context = await _cash_context(request, api)
    return render(request, "account/cash.html", {**context, "move": {}})


@router.post("/cash/{kind}")
async def move_cash(request: Request, kind: str) -> Response:
    session = require_user(request)
    await check_csrf(request, session)
    if kind not in ("deposit", "withdraw"):
        return render(request, "error.html", {"heading": "Not found", "message": ""}, 404)
    form = await request.form()
    amount = str(form.get("amount", "")).replace(",", "").replace("$", "").strip()
    api = Api(request, session)
    try:
        if not amount:
            raise _Blank
        answer = await api.post(
            f"/balance/{kind}",
            {"amount": amount},
            idempotency_key=str(form.get("idempotency_key", "")) or None,
        )
    except (ApiError, _Blank) as error:
        message = "Enter an amount." if isinstance(error, _Blank) else _amount_error(error)
        status = 422 if isinstance(error, _Blank) else error_status(error.status)
        move = {"kind": kind, "amount": amount, "error": message}
        context = {**await _cash_context(request, api), "move": move}
        return render_form(request, "account/cash.html", "account/_move.html", context, status)
    done = "Deposited" if kind == "deposit" else "Withdrew"
    message = f"{done} {money(answer['amount'])}. Your balance is now {money(answer['balance'])}."
    return go(request, "/cash", message=message)


class _Blank(Exception):
    pass


def _amount_error(error: ApiError) -> str:
    return error.field("amount") or error.message
