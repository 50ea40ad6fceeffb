"""HTTP routes of the orders service: orders, portfolio, positions, asset ledger, reconcile."""

from __future__ import annotations

from typing import Annotated, Protocol, cast

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from pydantic import AwareDatetime

from orderproc.common.fastroute import FastRoute
from orderproc.common.idempotency import fingerprint
from orderproc.common.money import format_money
from orderproc.common.paging import ListPaging, legacy_offset_paging, turn_before_rendering
from orderproc.common.prices import PriceSource
from orderproc.common.storage.ports import Store
from orderproc.common.storage.records import OrderStatus
from orderproc.common.vocabulary import ASSET_ID_INPUT_REGEX, USERNAME_REGEX, normalize_asset_id
from orderproc.common.web import (
    IDEMPOTENCY_OPENAPI,
    CurrentAdmin,
    CurrentUser,
    IdempotencyKey,
    check_time_range,
    model_response,
)
from orderproc.errors import UserNotFound
from orderproc.errors.problem import problem_responses
from orderproc.orders import portfolio as reads
from orderproc.orders import service
from orderproc.orders.domain import OrderType
from orderproc.orders.schemas import (
    AssetTransactionRead,
    AssetTransactionsPage,
    EstimateEnvelope,
    EstimateRead,
    HoldingRead,
    OrderCreate,
    OrderEnvelope,
    OrderRead,
    OrdersPage,
    PortfolioRead,
    PositionRead,
    ReconcileRead,
)
from orderproc.orders.stream_api import ticket_router


class OrdersRuntime(Protocol):
    store: Store

    @property
    def orders(self) -> service.OrderDeps: ...
    @property
    def prices(self) -> PriceSource: ...


async def _runtime(request: Request) -> OrdersRuntime:
    return cast(OrdersRuntime, request.app.state.runtime)


Runtime = Annotated[OrdersRuntime, Depends(_runtime)]
OrderId = Annotated[str, Path(min_length=1, max_length=64)]
AssetIdPath = Annotated[str, Path(min_length=1, max_length=32, description="Case-insensitive")]

orders = APIRouter(prefix="/orders", tags=["orders"], route_class=FastRoute)
portfolio = APIRouter(tags=["portfolio"])
admin = APIRouter(prefix="/admin", tags=["admin"])
AUTHED = problem_responses(401, 422, 429)


@orders.post(
    "",
    operation_id="orders_place",
    openapi_extra=IDEMPOTENCY_OPENAPI,
    status_code=201,
    response_model=OrderEnvelope,
    responses=problem_responses(400, 401, 404, 409, 413, 422, 429),
)
async def place_order(
    body: OrderCreate, principal: CurrentUser, rt: Runtime, key: IdempotencyKey
) -> Response:
    """Place a market order; it fills at once, a buy at the ask and a sale at the bid (plus
    any slippage), and pays the taker fee. Buy by `quantity` or by `notional` (USD, before the
    fee)."""
    cmd = service.PlaceOrder(
        user_id=principal.user_id,
        order_type=body.order_type,
        asset_id=normalize_asset_id(body.asset_id),
        quantity=body.quantity,
        notional=body.notional,
        client_order_id=body.client_order_id,
        idempotency_key=key,
        fingerprint=fingerprint("POST", "/orders", body.canonical()),
    )
    order = await service.place_order(cmd, deps=rt.orders)
    return model_response(OrderEnvelope(data=OrderRead.of(order)), status_code=201)


@orders.post(
    "/estimate",
    operation_id="orders_estimate",
    response_model=EstimateEnvelope,
    responses=problem_responses(400, 401, 404, 413, 422, 429),
)
async def estimate_order(body: OrderCreate, principal: CurrentUser, rt: Runtime) -> Response:
    """What the same body sent to `POST /orders` would do now, priced by the same rules:
    price, quantity, cost or proceeds, fee, and your available cash and units after. The same
    refusals (unknown or inactive asset, stale price, value out of range) are the same
    problems; too little cash or too few units is not an error but `sufficient: false` with
    the `reason`. Nothing is written; `Idempotency-Key` and `client_order_id` are ignored."""
    cmd = service.PlaceOrder(
        user_id=principal.user_id,
        order_type=body.order_type,
        asset_id=normalize_asset_id(body.asset_id),
        quantity=body.quantity,
        notional=body.notional,
    )
    priced = await service.estimate_order(cmd, deps=rt.orders)
    return model_response(EstimateEnvelope(data=EstimateRead.of(priced, body)))


@orders.get("", operation_id="orders_list", response_model=OrdersPage, responses=AUTHED)
async def list_orders(
    principal: CurrentUser,
    rt: Runtime,
    paging: Annotated[ListPaging, Depends(legacy_offset_paging("orders_list"))],
    status: OrderStatus | None = None,
    asset_id: Annotated[str | None, Query(pattern=ASSET_ID_INPUT_REGEX)] = None,
    order_type: OrderType | None = None,
    client_order_id: Annotated[str | None, Query(max_length=64)] = None,
    start: AwareDatetime | None = None,
    end: AwareDatetime | None = None,
) -> OrdersPage:
    """Your orders, newest first. Pages by `cursor` (or, legacy, `offset`). With `status`,
    `asset_id` or `order_type`, a page looks at no more than 1,000 of your orders (beyond its
    offset), so it can be short, even empty, while `has_more` is true."""
    check_time_range(start, end)
    at = paging.keyset(user=principal.user_id)
    async with rt.store.unit_of_work() as uow:
        page = await uow.orders.list_for_user(
            principal.user_id,
            status=status,
            asset_id=asset_id.upper() if asset_id else None,
            order_type=order_type.value if order_type else None,
            client_order_id=client_order_id,
            start=start,
            end=end,
            limit=at.limit,
            after=at.after,
            offset=at.offset,
        )
    await turn_before_rendering()
    return OrdersPage(data=[OrderRead.of(o) for o in page.items], **at.fields(page))


@orders.get(
    "/{order_id}",
    operation_id="orders_get",
    response_model=OrderEnvelope,
    responses=problem_responses(401, 404, 422, 429),
)
async def get_order(order_id: OrderId, principal: CurrentUser, rt: Runtime) -> OrderEnvelope:
    order = await service.get_order(principal.user_id, order_id, store=rt.store)
    return OrderEnvelope(data=OrderRead.of(order))


@orders.delete(
    "/{order_id}",
    operation_id="orders_cancel",
    response_model=OrderEnvelope,
    responses=problem_responses(401, 404, 409, 422, 429),
)
async def cancel_order(order_id: OrderId, principal: CurrentUser, rt: Runtime) -> OrderEnvelope:
    """Cancel an open order and release what it reserved; a filled one is 409."""
    order = await service.cancel_order(principal.user_id, order_id, deps=rt.orders)
    return OrderEnvelope(data=OrderRead.of(order))


@portfolio.get(
    "/portfolio", operation_id="portfolio_get", response_model=PortfolioRead, responses=AUTHED
)
async def get_portfolio(principal: CurrentUser, rt: Runtime) -> PortfolioRead:
    """Cash and positions at current prices (the mid), with unrealized and realized P&L."""
    p = await reads.portfolio(principal.user_id, store=rt.store, prices=rt.prices)
    return PortfolioRead(
        cash=format_money(p.cash),
        available_cash=format_money(p.available_cash),
        assets=[PositionRead.of(v) for v in p.assets],
        total_value=format_money(p.total_value),
        realized_pnl=format_money(p.realized_pnl),
        unrealized_pnl=format_money(p.unrealized_pnl),
    )


@portfolio.get(
    "/balance/asset/{asset_id}",
    operation_id="portfolio_get_position",
    response_model=HoldingRead,
    responses=problem_responses(401, 404, 422, 429),
)
async def get_holding(asset_id: AssetIdPath, principal: CurrentUser, rt: Runtime) -> HoldingRead:
    """One position; none is 404."""
    view = await reads.position(
        principal.user_id, normalize_asset_id(asset_id), store=rt.store, prices=rt.prices
    )
    return HoldingRead.of(view)


@portfolio.get(
    "/assets/{asset_id}/transactions",
    operation_id="portfolio_list_asset_transactions",
    response_model=AssetTransactionsPage,
    responses=problem_responses(401, 422, 429),
)
async def asset_transactions(
    asset_id: AssetIdPath,
    principal: CurrentUser,
    rt: Runtime,
    paging: Annotated[
        ListPaging, Depends(legacy_offset_paging("portfolio_list_asset_transactions"))
    ],
) -> AssetTransactionsPage:
    """Your buys and sells of one asset, newest first. Pages by `cursor` (or, legacy,
    `offset`)."""
    at = paging.keyset(user=principal.user_id)
    async with rt.store.unit_of_work() as uow:
        page = await uow.asset_ledger.list_for_user(
            principal.user_id,
            asset_id=normalize_asset_id(asset_id),
            limit=at.limit,
            after=at.after,
            offset=at.offset,
        )
    await turn_before_rendering()
    return AssetTransactionsPage(
        data=[AssetTransactionRead.of(e) for e in page.items], **at.fields(page)
    )


@admin.get(
    "/reconcile",
    operation_id="admin_reconcile",
    response_model=ReconcileRead,
    responses=problem_responses(401, 403, 404, 422, 429),
)
async def reconcile(
    username: Annotated[str, Query(pattern=USERNAME_REGEX)], _: CurrentAdmin, rt: Runtime
) -> ReconcileRead:
    """Check one account: each balance and position against the sum of its ledger."""
    async with rt.store.unit_of_work() as uow:
        user = await uow.users.get_by_username(username.lower())
    if user is None:
        raise UserNotFound()
    result = await reads.reconcile_user(user.user_id, store=rt.store, locker=rt.orders.locker)
    return ReconcileRead.of(user.username, result)


routers = (orders, portfolio, admin, ticket_router)
