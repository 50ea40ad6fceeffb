"""HTTP routes of the inventory service: the public catalog, candles, admin asset routes.

Catalog answers are rendered once per tick and query, then served from memory by
`orderproc.inventory.cache.CatalogResponseCache`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Protocol, cast

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel
from starlette.responses import Response

from orderproc.common.clock import Clock
from orderproc.common.paging import ListPaging, cursor_paging, offset_paging
from orderproc.common.settings import Settings
from orderproc.common.storage.ports import Store
from orderproc.common.storage.records import PageKey
from orderproc.common.web import ClientIP, CurrentAdmin
from orderproc.errors import ValidationFailed
from orderproc.errors.problem import problem_responses
from orderproc.inventory import sandbox_api, service
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
    @property
    def ticker(self) -> service.PriceTicker: ...


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


# The widest start-to-end range a request may name, by interval: about what retention keeps.
CANDLE_SPAN = {
    Interval.MINUTE: timedelta(days=31),
    Interval.HOUR: timedelta(days=366),
    Interval.DAY: timedelta(days=7305),
    Interval.WEEK: timedelta(days=7305),
}
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
Moment = Annotated[
    datetime | None,
    Query(description="ISO 8601, 1970 to 2100; UTC when it names no offset"),
]
CandlePaging = Annotated[
    ListPaging,
    Depends(cursor_paging("inventory_list_candles", default_limit=100, max_limit=1000)),
]


def _refused(parameter: str, message: str) -> ValidationFailed:
    return ValidationFailed(
        f"{parameter}: {message}",
        [{"loc": ["query", parameter], "msg": message, "type": "value_error"}],
    )


def candle_range(
    start: datetime | None, end: datetime | None, interval: Interval, now: datetime
) -> tuple[datetime | None, datetime | None]:
    """`start` and `end` in UTC, checked: within 1970-2100, start before end, and no wider
    than `CANDLE_SPAN` (to `end`, or to now without one)."""
    start, end = (None if t is None else _utc(t) for t in (start, end))
    for name, moment in (("start", start), ("end", end)):
        if moment is not None and not EARLIEST <= moment < LATEST:
            raise _refused(name, "must be from 1970 to 2100")
    if start is not None and end is not None and start >= end:
        raise _refused("start", "must be before end")
    if start is not None and (end or now) - start > CANDLE_SPAN[interval]:
        days = CANDLE_SPAN[interval].days
        raise _refused("start", f"a range of {interval.value} candles spans at most {days} days")
    return start, end


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@catalog_router.get(
    "/assets/{asset_id}/candles",
    operation_id="inventory_list_candles",
    response_model=CandlesRead,
    responses=problem_responses(404, 422, 429),
)
async def get_candles(
    asset_id: AssetId,
    rt: Runtime,
    paging: CandlePaging,
    interval: Interval = Interval.MINUTE,
    start: Moment = None,
    end: Moment = None,
) -> CandlesRead:
    """OHLC candles with their USD volume, oldest first on every page (1m from ticks; 1h and
    1d roll up; 1w rolls up from 1d when read, weeks starting on Monday). A fresh install has
    history (docs/architecture.md, "Candle history").

    Without `start`: the latest `limit` candles opening before `end` (or now), and
    `next_cursor` pages back to older ones. With `start`: the first `limit` opening at or
    after it (and before `end`), and `next_cursor` pages forward. A cursor is good only with
    the same asset, interval, `start` and `end`."""
    asset = find_asset(rt.catalog.by_id, asset_id)
    start, end = candle_range(start, end, interval, rt.clock.now())
    scope = paging.scope(user="", sort="open_time.asc" if start else "open_time.desc")
    after = None if paging.cursor is None else paging.codec.decode_key(paging.cursor, scope).at
    query = service.CandleQuery(interval, paging.limit, start, end, after)
    live = rt.ticker.own_candles()
    page = await service.list_candles(asset.asset_id, query, store=rt.store, live=live)
    at = page.next_at
    return CandlesRead(
        asset_id=asset.asset_id,
        interval=interval.value,
        data=[CandleRead.of(c) for c in page.candles],
        has_more=at is not None,
        next_cursor=None if at is None else paging.codec.encode_key(scope, PageKey(at, 0)),
        total_count=None,
        limit=paging.limit,
        offset=None,
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
        total_volume_24h=(
            service.usual_volume(rt.catalog.assets(), body.market_cap_rank)
            if body.total_volume_24h is None
            else body.total_volume_24h
        ),
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


def sandbox_routers(settings: Settings) -> tuple[APIRouter, ...]:
    """The sandbox's admin routes (inventory/sandbox_api.py), only with `ORDERPROC_SANDBOX`
    on: off, they do not exist."""
    return (sandbox_api.router,) if settings.sandbox else ()
