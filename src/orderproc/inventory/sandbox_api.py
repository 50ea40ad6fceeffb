"""HTTP routes of the sandbox (`/api/v1/admin/sandbox/...`, admins only): pause and resume the
price feed, set an asset's price and spread, step one tick. `inventory.api.sandbox_routers`
includes them only with `ORDERPROC_SANDBOX=true`; otherwise they do not exist (404, and absent
from the OpenAPI document). An inventory process that does not lead the feed (with Redis, one
of several) answers 409 `NOT_FEED_LEADER`."""

from __future__ import annotations

from typing import Annotated, Protocol, cast

from fastapi import APIRouter, Depends, Path, Request

from orderproc.common.clock import Clock, isoformat_z
from orderproc.common.storage.ports import Store
from orderproc.common.web import ClientIP, CurrentAdmin
from orderproc.errors.problem import problem_responses
from orderproc.inventory import sandbox
from orderproc.inventory.pricefeed import PriceFeed
from orderproc.inventory.schemas import (
    AssetEnvelope,
    AssetRead,
    SandboxPriceSet,
    SandboxStateEnvelope,
    SandboxStateRead,
)
from orderproc.inventory.service import AdminActor, Catalog, PriceTicker


class SandboxRuntime(Protocol):
    store: Store
    clock: Clock
    feed: PriceFeed

    @property
    def catalog(self) -> Catalog: ...

    @property
    def ticker(self) -> PriceTicker: ...


async def _deps(request: Request) -> sandbox.SandboxDeps:
    rt = cast(SandboxRuntime, request.app.state.runtime)
    return sandbox.SandboxDeps(rt.store, rt.catalog, rt.ticker, rt.feed, rt.clock)


Deps = Annotated[sandbox.SandboxDeps, Depends(_deps)]
AssetId = Annotated[str, Path(min_length=1, max_length=32, description="Case-insensitive")]
ADMIN = problem_responses(401, 403, 409, 429)  # 409: this process does not lead the feed

router = APIRouter(prefix="/admin/sandbox", tags=["sandbox"])


def _actor(admin: CurrentAdmin, ip: str | None, deps: sandbox.SandboxDeps) -> AdminActor:
    return AdminActor(admin.user_id, ip, deps.clock)


def _state(state: sandbox.FeedState) -> SandboxStateEnvelope:
    return SandboxStateEnvelope(
        data=SandboxStateRead(
            paused=state.paused, moved=state.moved, as_of=isoformat_z(state.as_of)
        )
    )


@router.post(
    "/pause",
    operation_id="sandbox_pause",
    response_model=SandboxStateEnvelope,
    responses=ADMIN,
)
async def pause(admin: CurrentAdmin, deps: Deps, ip: ClientIP) -> SandboxStateEnvelope:
    """Freeze every price: the feed stops ticking (but for `POST /admin/sandbox/tick`) and
    trading goes on at the frozen prices, their age not counted against them. Audited."""
    return _state(await sandbox.pause(deps=deps, actor=_actor(admin, ip, deps)))


@router.post(
    "/resume",
    operation_id="sandbox_resume",
    response_model=SandboxStateEnvelope,
    responses=ADMIN,
)
async def resume(admin: CurrentAdmin, deps: Deps, ip: ClientIP) -> SandboxStateEnvelope:
    """Let the feed tick again from the frozen prices. Audited."""
    return _state(await sandbox.resume(deps=deps, actor=_actor(admin, ip, deps)))


@router.put(
    "/prices/{asset_id}",
    operation_id="sandbox_set_price",
    response_model=AssetEnvelope,
    responses=problem_responses(400, 401, 403, 404, 409, 413, 422, 429),
)
async def set_price(
    asset_id: AssetId, body: SandboxPriceSet, admin: CurrentAdmin, deps: Deps, ip: ClientIP
) -> AssetEnvelope:
    """Set the asset's price (the mid) and, optionally, its spread (`null`: the model's again;
    omitted: the one it has); it moves now, as a tick moves it (candles, streams), and the
    answer shows its new bid and ask. Paused, it stays there; running, the simulator walks on
    from it. An inactive asset is refused (422 `ASSET_INACTIVE`). Audited."""
    moved = await sandbox.set_price(
        asset_id,
        body.price_usd,
        body.spread_bps,
        deps=deps,
        actor=_actor(admin, ip, deps),
        model_spread="spread_bps" in body.model_fields_set and body.spread_bps is None,
    )
    return AssetEnvelope(data=AssetRead.of(moved))


@router.post(
    "/tick",
    operation_id="sandbox_tick",
    response_model=SandboxStateEnvelope,
    responses=ADMIN,
)
async def tick(admin: CurrentAdmin, deps: Deps, ip: ClientIP) -> SandboxStateEnvelope:
    """Step one tick now, as the feed would (prices, candles, streams), paused or not. Audited."""
    return _state(await sandbox.step(deps=deps, actor=_actor(admin, ip, deps)))
