"""An asset's page: live price, candlestick chart, the order ticket and the person's position."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from orderproc.common.settings import Settings
from orderproc.webui.client import Api, ApiError
from orderproc.webui.pages import error_status, render
from orderproc.webui.runtime import webui_runtime
from orderproc.webui.session import Session, check_csrf, current_session
from orderproc.webui.ticket import Ticket, TicketInvalid, order_body, parse_ticket, shortfall

router = APIRouter(include_in_schema=False)


def _settings(request: Request) -> Settings:
    return webui_runtime(request).settings


async def _asset(api: Api, asset_id: str) -> dict[str, Any]:
    answer = await api.get(f"/inventory/assets/{asset_id}")
    return answer["data"]  # type: ignore[no-any-return]


async def _holding(api: Api, session: Session, asset_id: str) -> dict[str, Any]:
    """Cash, the position (if any) and its recent trades, for a signed-in person."""
    if not session.signed_in:
        return {}
    balance = await api.get("/balance")
    try:
        position = await api.get(f"/balance/asset/{asset_id}")
    except ApiError as error:
        if error.status != 404:
            raise
        position = None
    trades = await api.get(f"/assets/{asset_id}/transactions", limit=10)
    return {"balance": balance, "position": position, "trades": trades["data"]}


@router.get("/assets/{asset_id}")
async def asset_page(request: Request, asset_id: str) -> Response:
    session = current_session(request)
    api = Api(request, session)
    try:
        asset = await _asset(api, asset_id)
    except ApiError as error:
        if error.status not in (404, 422):
            raise
        missing = {"heading": "Asset not found", "message": f"There is no asset “{asset_id}”."}
        return render(request, "error.html", missing, status=404)
    context: dict[str, Any] = {
        "asset": asset,
        "ticket": {"side": request.query_params.get("side", "buy"), "mode": "amount"},
        "fee_bps": _settings(request).taker_fee_bps,
        **await _holding(api, session, asset["asset_id"]),
    }
    return render(request, "asset/asset.html", context)


@router.get("/assets/{asset_id}/estimate")
async def order_estimate(request: Request, asset_id: str) -> Response:
    """The ticket's estimate: the orders service's answer to the order the ticket would
    place."""
    params = request.query_params
    context: dict[str, Any] = {"estimate": None, "problem": None}
    try:
        ticket = parse_ticket(
            params.get("side", ""), params.get("mode", ""), params.get("amount", "")
        )
        context["ticket"] = ticket
        api = Api(request, current_session(request))
        body = await _order_body(api, ticket, asset_id)
        estimate = (await api.post("/orders/estimate", body))["data"]
        context.update(estimate=estimate, shortfall=shortfall(estimate))
    except TicketInvalid as invalid:
        context["problem"] = str(invalid) if params.get("amount") else None
    except ApiError as error:
        context["problem"] = error.message
    return render(request, "asset/_estimate.html", context)


async def _order_body(api: Api, ticket: Ticket, asset_id: str) -> dict[str, str]:
    """The API request for the ticket (the asset's bid turns a sale by USD amount into
    units)."""
    asset = await _asset(api, asset_id)
    return order_body(ticket, asset["asset_id"], bid=Decimal(asset["bid"]))


@router.post("/assets/{asset_id}/order")
async def place_order(request: Request, asset_id: str) -> Response:
    session = current_session(request)
    await check_csrf(request, session)
    form = await request.form()
    side, mode = str(form.get("side", "buy")), str(form.get("mode", "amount"))
    raw = str(form.get("amount", ""))
    api = Api(request, session)
    asset = await _asset(api, asset_id)
    context: dict[str, Any] = {
        "asset": asset,
        "ticket": {"side": side, "mode": mode, "amount": raw},
        "fee_bps": _settings(request).taker_fee_bps,
        "oob": True,
    }
    status = 200
    try:
        if not session.signed_in:
            raise TicketInvalid("Log in to trade.")
        ticket = parse_ticket(side, mode, raw)
        body = order_body(ticket, asset["asset_id"], bid=Decimal(asset["bid"]))
        key = str(form.get("idempotency_key", "")) or None
        answer = await api.post("/orders", body, idempotency_key=key)
        context["filled"] = answer["data"]
        context["ticket"] = {"side": side, "mode": mode}
    except TicketInvalid as invalid:
        context["error"], status = str(invalid), 422
    except ApiError as error:
        context["error"], status = error.message, error_status(error.status)
    context.update(await _holding(api, session, asset["asset_id"]))
    return render(request, "asset/_trade.html", context, status=status)
