"""Read side of orders: the portfolio with P&L, one position, and reconcile (the ledger is
the truth: every balance and position must equal the sum of its entries)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Literal

from orderproc.common.locking import Locker, account_lock_key
from orderproc.common.money import CENT, EXACT, from_cents, from_units
from orderproc.common.prices import PriceSource
from orderproc.common.storage.ports import Store
from orderproc.common.storage.records import PositionRecord
from orderproc.errors import AccountNotFound, PositionNotFound
from orderproc.orders.domain import Holding


@dataclass(frozen=True, slots=True)
class PositionView:
    asset_id: str
    asset_name: str
    quantity: Decimal
    available: Decimal
    average_cost: Decimal
    cost_basis: Decimal
    current_price: Decimal | None
    market_value: Decimal
    unrealized_pnl: Decimal
    realized_pnl: Decimal
    percentage: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class Portfolio:
    cash: Decimal
    available_cash: Decimal
    assets: list[PositionView]
    total_value: Decimal
    realized_pnl: Decimal
    unrealized_pnl: Decimal


RECONCILE_LOCK_WAIT = 10.0
SWEEP_PAGE_SIZE = 500  # accounts per page of the sweep


def _cents(amount: Decimal) -> Decimal:
    return amount.quantize(CENT, rounding=ROUND_HALF_EVEN, context=EXACT)


def view_of(position: PositionRecord, prices: PriceSource) -> PositionView:
    quote = prices.quote(position.asset_id)
    quantity = from_units(position.quantity_units)
    holding = Holding(position.quantity_units, position.cost_basis, position.realized_pnl)
    price = quote.price if quote else None
    # Without a price, value the units at what they cost rather than at nothing.
    value = (
        _cents(EXACT.multiply(quantity, price))
        if price is not None
        else _cents(position.cost_basis)
    )
    return PositionView(
        asset_id=position.asset_id,
        asset_name=quote.name if quote else position.asset_id,
        quantity=quantity,
        available=from_units(position.available_units),
        average_cost=holding.average_cost,
        cost_basis=position.cost_basis,
        current_price=price,
        market_value=value,
        unrealized_pnl=_cents(value - position.cost_basis),
        realized_pnl=_cents(position.realized_pnl),
    )


async def portfolio(user_id: str, *, store: Store, prices: PriceSource) -> Portfolio:
    async with store.unit_of_work() as uow:
        account = await uow.accounts.get(user_id)
        positions = await uow.positions.list_for_user(user_id)
    if account is None:
        raise AccountNotFound()
    held = [view_of(p, prices) for p in positions if p.quantity_units > 0]
    cash = from_cents(account.balance_cents)
    total = cash + sum((v.market_value for v in held), Decimal(0))
    shares = [_with_share(v, (v.market_value / total * 100) if total else Decimal(0)) for v in held]
    return Portfolio(
        cash=cash,
        available_cash=from_cents(account.available_cents),
        assets=shares,
        total_value=total,
        realized_pnl=_cents(sum((p.realized_pnl for p in positions), Decimal(0))),
        unrealized_pnl=sum((v.unrealized_pnl for v in held), Decimal(0)),
    )


def _with_share(view: PositionView, percentage: Decimal) -> PositionView:
    return replace(view, percentage=percentage.quantize(Decimal("0.01"), context=EXACT))


async def position(
    user_id: str, asset_id: str, *, store: Store, prices: PriceSource
) -> PositionView:
    async with store.unit_of_work() as uow:
        record = await uow.positions.get(user_id, asset_id)
    if record is None or record.quantity_units == 0:
        raise PositionNotFound()
    return view_of(record, prices)


@dataclass(frozen=True, slots=True)
class Mismatch:
    what: Literal["cash", "position"]
    asset_id: str | None
    stored: str
    ledger: str
    problem: str


@dataclass(frozen=True, slots=True)
class Reconciliation:
    user_id: str
    positions_checked: int
    mismatches: list[Mismatch] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.mismatches


async def reconcile_user(
    user_id: str, *, store: Store, locker: Locker | None = None, attempts: int = 3
) -> Reconciliation:
    """Each balance and position against the sum of its ledger; nothing negative.

    The reads are separate statements, so a movement committing between them could look like a
    mismatch: with a `locker` the user's operations wait meanwhile, and a mismatch is reported
    only if it is still there on a fresh look (a real one always is)."""
    result = Reconciliation(user_id, 0)
    for attempt in range(attempts):
        if locker is None:
            result = await _reconcile_once(user_id, store)
        else:
            async with locker.hold(account_lock_key(user_id), timeout=RECONCILE_LOCK_WAIT):
                result = await _reconcile_once(user_id, store)
        if result.clean:
            return result
        if attempt + 1 < attempts:
            await asyncio.sleep(0.05)
    return result


async def _reconcile_once(user_id: str, store: Store) -> Reconciliation:
    async with store.unit_of_work() as uow:
        account = await uow.accounts.get(user_id)
        if account is None:
            raise AccountNotFound()
        cash_sum = await uow.cash_ledger.sum_for_user(user_id)
        positions = await uow.positions.list_for_user(user_id)
        unit_sums = {
            p.asset_id: await uow.asset_ledger.sum_for_position(user_id, p.asset_id)
            for p in positions
        }
    found: list[Mismatch] = []
    if account.balance_cents != cash_sum:
        found.append(
            Mismatch(
                "cash",
                None,
                str(from_cents(account.balance_cents)),
                str(from_cents(cash_sum)),
                "balance differs from its ledger",
            )
        )
    if account.balance_cents < 0 or account.available_cents < 0:
        found.append(
            Mismatch(
                "cash",
                None,
                str(from_cents(account.balance_cents)),
                str(from_cents(cash_sum)),
                "negative balance",
            )
        )
    for p in positions:
        stored, summed = str(from_units(p.quantity_units)), str(from_units(unit_sums[p.asset_id]))
        if p.quantity_units != unit_sums[p.asset_id]:
            found.append(
                Mismatch("position", p.asset_id, stored, summed, "quantity differs from its ledger")
            )
        if p.quantity_units < 0 or p.available_units < 0:
            found.append(Mismatch("position", p.asset_id, stored, summed, "negative quantity"))
    return Reconciliation(user_id, len(positions), found)


async def reconcile_sweep(
    *, store: Store, locker: Locker | None = None, page_size: int = SWEEP_PAGE_SIZE
) -> AsyncIterator[Reconciliation]:
    """Every account, one at a time, in user id order: the ids come a page of `page_size` at a
    time (keyset paging, so each page is one index range however far the sweep has gone), and
    each user's check sums its ledgers in the store, so memory holds one page of ids and one
    user's positions however big the tables are. An account opened during the sweep is checked
    if its id comes after the page being read."""
    after: str | None = None
    while True:
        async with store.unit_of_work() as uow:
            user_ids = await uow.accounts.ids_after(after, limit=page_size)
        for user_id in user_ids:
            yield await reconcile_user(user_id, store=store, locker=locker)
        if len(user_ids) < page_size:
            return
        after = user_ids[-1]
