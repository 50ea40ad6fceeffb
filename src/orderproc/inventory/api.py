"""HTTP routes of the inventory service: the public catalog, candles, admin asset routes.

Catalog answers are rendered once per tick and query, then served from memory by
`orderproc.inventory.cache.CatalogResponseCache`."""

from __future__ import annotations

from typing import Annotated, Protocol, cast

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel
from starlette.responses import Response

from orderproc.common.clock import Clock
from orderproc.common.paging import ListPaging, offset_paging
from orderproc.common.storage.ports import Store
from orderproc.common.web import ClientIP, CurrentAdmin
from orderproc.errors.problem import problem_responses
from orderproc.inventory import service
from orderproc.inventory.candles import Interval
from orderproc.inventory.domain import (
    DEFAULT_SORT_ORDER,
    Asset,
    AssetQuery,
    SortField,
    SortOrder,
    find_asset,
    list_assets,
)
from orderproc.inventory.schemas import (
    AssetCreate,
    AssetEnvelope,
    AssetRead,
    AssetsPage,
    AssetUpdate,
    CandleRead,
    CandlesRead,
    Category,
)
from orderproc.inventory.stream_api import stream_router


class InventoryRuntime(Protocol):
    store: Store
    clock: Clock

    @property
    def catalog(self) -> service.Catalog: ...


async def _runtime(request: Request) -> InventoryRuntime:
    return cast(InventoryRuntime, request.app.state.runtime)


Runtime = Annotated[InventoryRuntime, Depends(_runtime)]
AssetId = Annotated[str, Path(min_length=1, max_length=32, description="Case-insensitive")]

catalog_router = APIRouter(prefix="/inventory", tags=["catalog"])
admin = APIRouter(prefix="/admin/assets", tags=["admin"])


def _json(model: BaseModel) -> bytes:
    return model.__pydantic_serializer__.to_json(model)


@catalog_router.get(
    "/assets",
    operation_id="inventory_list_assets",
    response_model=AssetsPage,
    responses=problem_responses(422, 429, store=False),  # the in-memory catalog
)
async def get_assets(
    rt: Runtime,
    paging: Annotated[ListPaging, Depends(offset_paging("inventory_list_assets"))],
    search: Annotated[str | None, Query(max_length=64, description="Id or name")] = None,
    category: Category | None = None,
    active_only: bool = True,
    sort_by: SortField = SortField.MARKET_CAP_RANK,
    sort_order: SortOrder | None = None,
) -> Response:
    """The catalog with live prices: search, filter, sort and page. It lives in memory and
    sorts by prices that move every tick, so it pages by offset: `next_cursor` holds the next
    one (or pass `offset`); a page may repeat or miss an asset whose place moved meanwhile."""
    sort = f"{sort_by.value}.{(sort_order or DEFAULT_SORT_ORDER[sort_by]).value}"
    offset = paging.start_offset(user="", sort=sort)
    limit = paging.limit
    query = AssetQuery(search, category, active_only, sort_by, sort_order, limit, offset)
    page = list_assets(rt.catalog.assets(), query)
    next_cursor = paging.offset_cursor(offset + limit, user="", sort=sort)
    model = AssetsPage(
        data=[AssetRead.of(a) for a in page.items],
        total_count=page.total_count,
        active_count=page.active_count,
        has_more=page.has_more,
        next_cursor=next_cursor if page.has_more else None,
        limit=limit,
        offset=offset,
    )
    return Response(_json(model), media_type="application/json")


@catalog_router.get(
    "/assets/{asset_id}",
    operation_id="inventory_get_asset",
    response_model=AssetEnvelope,
    responses=problem_responses(404, 422, 429, store=False),  # the in-memory catalog
)
async def get_asset(asset_id: AssetId, rt: Runtime) -> Response:
    """One asset with its market data."""
    asset = find_asset(rt.catalog.by_id, asset_id)
    return Response(_json(AssetEnvelope(data=AssetRead.of(asset))), media_type="application/json")


@catalog_router.get(
    "/assets/{asset_id}/candles",
    operation_id="inventory_list_candles",
    response_model=CandlesRead,
    responses=problem_responses(404, 422, 429),
)
async def get_candles(
    asset_id: AssetId,
    rt: Runtime,
    interval: Interval = Interval.MINUTE,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> CandlesRead:
    """OHLC candles, oldest first (1m from ticks; 1h and 1d roll up)."""
    asset = find_asset(rt.catalog.by_id, asset_id)
    candles = await service.list_candles(asset.asset_id, interval, limit=limit, store=rt.store)
    return CandlesRead(
        asset_id=asset.asset_id,
        interval=interval.value,
        data=[CandleRead.of(c) for c in candles],
    )


@admin.post(
    "",
    operation_id="admin_create_asset",
    status_code=201,
    response_model=AssetEnvelope,
    responses=problem_responses(400, 401, 403, 409, 413, 422, 429),
)
async def create_asset(
    body: AssetCreate, admin_user: CurrentAdmin, rt: Runtime, ip: ClientIP
) -> AssetEnvelope:
    """Add an asset to the catalog; the price feed moves it from the next tick. Audited."""
    asset_id = body.asset_id.upper()
    asset = Asset(
        asset_id=asset_id,
        symbol=asset_id.lower(),
        name=body.name,
        category=body.category,
        description=body.description,
        image=str(body.image or ""),
        price_usd=body.price_usd,
        last_updated=rt.clock.now(),
        is_active=body.is_active,
        market_cap_rank=body.market_cap_rank,
    )
    actor = service.AdminActor(admin_user.user_id, ip, rt.clock)
    added = await service.add_asset(asset, store=rt.store, catalog=rt.catalog, actor=actor)
    return AssetEnvelope(data=AssetRead.of(added))


@admin.patch(
    "/{asset_id}",
    operation_id="admin_update_asset",
    response_model=AssetEnvelope,
    responses=problem_responses(400, 401, 403, 404, 413, 422, 429),
)
async def update_asset(
    asset_id: AssetId, body: AssetUpdate, admin_user: CurrentAdmin, rt: Runtime, ip: ClientIP
) -> AssetEnvelope:
    """Change metadata, or activate and deactivate (inactive assets cannot be traded).
    Audited."""
    known = find_asset(rt.catalog.by_id, asset_id)
    changes = {k: v for k, v in body.model_dump(exclude_unset=True).items() if v is not None}
    if "image" in changes:
        changes["image"] = str(changes["image"])
    updated = await service.change_asset(
        known.asset_id,
        changes,
        store=rt.store,
        catalog=rt.catalog,
        actor=service.AdminActor(admin_user.user_id, ip, rt.clock),
    )
    return AssetEnvelope(data=AssetRead.of(updated))


routers = (catalog_router, admin, stream_router)
