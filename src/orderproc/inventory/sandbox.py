"""The sandbox (`ORDERPROC_SANDBOX=true`): an admin pauses the price feed, sets an asset's price
and spread, and steps one tick, so a bot can test its fills and P&L against prices it chose.

Pausing freezes every asset: the scheduled ticks stop, and each quote carries `frozen`, so
trading goes on at the frozen prices without the staleness check. The flag is kept in each
asset row's metadata as well, so an orders process on its own (which reads prices from the store
or from the leader's ticks) sees it too, and a restart comes back paused (a start with the
sandbox off unfreezes them, and gives each asset the model's spread again). A price set here
moves the asset as a tick does (read model, stored price and candles, the tick's listeners),
and the simulator walks on from it. Every action is audited: a pause or a resume in the unit of
work that flips the flags, a price with its spread (before the price moves), a step after its
tick."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from orderproc.common.clock import Clock
from orderproc.common.retry import retry_on_conflict
from orderproc.common.storage.ports import Store
from orderproc.errors import AssetInactive, AssetNotFound, NotFeedLeader
from orderproc.inventory.domain import Asset, find_asset
from orderproc.inventory.pricefeed import PriceFeed, SimulatedFeed
from orderproc.inventory.service import (
    TAKING_OVER,
    AdminActor,
    Catalog,
    PriceTicker,
    audit_admin_change,
    from_record,
    jsonable,
    to_record,
    with_newer_price,
)

log = logging.getLogger("orderproc.inventory.sandbox")


@dataclass(frozen=True, slots=True)
class SandboxDeps:
    store: Store
    catalog: Catalog
    ticker: PriceTicker
    feed: PriceFeed
    clock: Clock


@dataclass(frozen=True, slots=True)
class FeedState:
    paused: bool
    moved: int  # assets a step moved (0 for a pause or a resume)
    as_of: datetime


async def pause(*, deps: SandboxDeps, actor: AdminActor) -> FeedState:
    """Freeze every asset at its price; the scheduled ticks stop until `resume`. Audited
    (`admin_sandbox_pause`)."""
    await _check_leading(deps)
    return await _freeze(True, deps=deps, actor=actor)


async def resume(*, deps: SandboxDeps, actor: AdminActor) -> FeedState:
    """Unfreeze every asset; the feed ticks again from the next interval, one tick's move
    away from the frozen prices (not a jump for the time it stood still). Audited
    (`admin_sandbox_resume`)."""
    await _check_leading(deps)
    state = await _freeze(False, deps=deps, actor=actor)
    _continue_feed(deps, deps.catalog.assets())
    return state


async def _freeze(frozen: bool, *, deps: SandboxDeps, actor: AdminActor) -> FeedState:
    was_paused = deps.catalog.paused

    async def attempt() -> int:
        async with deps.store.unit_of_work() as uow:
            changed = 0
            for record in await uow.assets.list_all():
                if bool(record.metadata.get("frozen", False)) != frozen:
                    live = deps.catalog.by_id.get(record.asset_id)
                    asset = replace(with_newer_price(record, live), frozen=frozen)
                    uow.assets.update(
                        to_record(asset, version=record.version + 1),
                        expected_version=record.version,
                    )
                    changed += 1
            event = "admin_sandbox_pause" if frozen else "admin_sandbox_resume"
            audit_admin_change(
                uow, event, actor, {"was_paused": was_paused, "assets_changed": changed}
            )
            await uow.commit()
            return changed

    await retry_on_conflict(attempt)
    now = deps.clock.now()
    deps.ticker.tell_listeners(deps.catalog.freeze(frozen), now)
    return FeedState(paused=frozen, moved=0, as_of=now)


async def thaw(store: Store, catalog: Catalog) -> int:
    """Undo what the sandbox left in the assets' rows, at a start with the sandbox off (whose
    routes could never undo it): the freeze of a pause, and the spreads set by an admin (back
    to the model's). Not audited, as no admin asked. Returns how many assets changed."""
    if not any(_sandboxed(asset) for asset in catalog.assets()):
        return 0

    async def attempt() -> list[Asset]:
        async with store.unit_of_work() as uow:
            changed = []
            for record in await uow.assets.list_all():
                asset = from_record(record)
                if _sandboxed(asset):
                    changed.append(replace(asset, frozen=False, spread_bps=None))
                    uow.assets.update(
                        to_record(changed[-1], version=record.version + 1),
                        expected_version=record.version,
                    )
            await uow.commit()
            return changed

    changed = await retry_on_conflict(attempt)
    catalog.freeze(False)
    for asset in catalog.assets():
        if asset.spread_bps is not None:
            catalog.put(replace(asset, spread_bps=None))
    log.warning(
        "the sandbox is off: %d assets it froze or spread tick again with the model's spread",
        len(changed),
    )
    return len(changed)


def _sandboxed(asset: Asset) -> bool:
    return asset.frozen or asset.spread_bps is not None


async def set_price(
    asset_id: str,
    price: Decimal,
    spread_bps: Decimal | None,
    *,
    deps: SandboxDeps,
    actor: AdminActor,
    model_spread: bool = False,
) -> Asset:
    """Move the asset to `price` now, as a tick would, with `spread_bps` as its spread from now
    on (None keeps the spread it has; `model_spread` goes back to the model's). Audited
    (`admin_sandbox_price`: the price and the spread, each from and to) with the spread's
    change."""
    known = find_asset(deps.catalog.by_id, asset_id)
    await _check_leading(deps)  # may resume the candles first: the asset as it is after
    known = deps.catalog.by_id.get(known.asset_id, known)
    if not known.is_active:  # the feed does not price it, and neither does a tick
        raise AssetInactive(f"{known.asset_id} is inactive: activate it to set its price")
    chosen = None if model_spread else known.spread_bps if spread_bps is None else spread_bps
    await retry_on_conflict(lambda: _record_choice(known, price, chosen, deps=deps, actor=actor))
    current = deps.catalog.by_id[known.asset_id]
    if current.spread_bps != chosen:
        deps.catalog.put(replace(current, spread_bps=chosen))
    await deps.ticker.apply({known.asset_id: price}, deps.clock.now(), every_price=True)
    moved = deps.catalog.by_id[known.asset_id]
    _continue_feed(deps, [moved])
    return moved


async def _record_choice(
    known: Asset, price: Decimal, chosen: Decimal | None, *, deps: SandboxDeps, actor: AdminActor
) -> None:
    """The spread (kept with the asset's metadata) and the audit event, in one unit of work."""
    async with deps.store.unit_of_work() as uow:
        record = await uow.assets.get(known.asset_id)
        if record is None:  # the catalog has it, the store does not: nothing to set
            raise AssetNotFound(f"no asset {known.asset_id}")
        stored = from_record(record)
        if stored.spread_bps != chosen:
            uow.assets.update(
                to_record(replace(stored, spread_bps=chosen), version=record.version + 1),
                expected_version=record.version,
            )
        spread_after = replace(known, spread_bps=chosen).spread
        # The price as it is now, after this unit's read (a tick may have landed since the
        # request began; with the feed paused, none does).
        was = deps.catalog.by_id.get(known.asset_id, known).price_usd
        details: dict[str, Any] = {
            "asset_id": known.asset_id,
            "price_usd": {"from": jsonable(was), "to": jsonable(price)},
            "spread_bps": {"from": jsonable(known.spread), "to": jsonable(spread_after)},
        }
        audit_admin_change(uow, "admin_sandbox_price", actor, details)
        await uow.commit()


async def step(*, deps: SandboxDeps, actor: AdminActor) -> FeedState:
    """One tick now, as a scheduled one (the feed's next prices, candles, listeners), paused
    or not; while paused, one tick's move (a second's) from the frozen prices, however long
    they stood. Audited (`admin_sandbox_tick`, with how many assets moved)."""
    await _check_leading(deps)
    if deps.catalog.paused:
        _continue_feed(deps, deps.catalog.assets())
    moved = await deps.ticker.tick_once(every_price=True)  # the store has them at once
    async with deps.store.unit_of_work() as uow:
        audit_admin_change(uow, "admin_sandbox_tick", actor, {"moved": moved})
        await uow.commit()
    newest = max((a.last_updated for a in deps.catalog.assets()), default=deps.clock.now())
    return FeedState(paused=deps.catalog.paused, moved=moved, as_of=newest)


async def _check_leading(deps: SandboxDeps) -> None:
    """Only the process that leads the feed may act: a follower's pause or price would be
    undone by the leader's next tick (with Redis, several inventory processes may answer);
    and not while it takes the feed over (its live candles are not the store's yet)."""
    if not deps.ticker.leading():
        raise NotFeedLeader()
    if await deps.ticker.ready() is None:
        raise NotFeedLeader(TAKING_OVER)


def _continue_feed(deps: SandboxDeps, assets: list[Asset]) -> None:
    """The simulator walks on from these prices, one tick's step away (CoinGecko's next tick
    is the market's, whatever was set here)."""
    if isinstance(deps.feed, SimulatedFeed):
        deps.feed.continue_from({asset.asset_id: asset.price_usd for asset in assets})
