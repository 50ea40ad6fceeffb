"""Order use cases: place a market order, estimate one, cancel, and read orders back.

A market order is one unit of work under the user's account lock: the order, the cash
balance and its ledger entries, the position and its ledger entry, and the idempotency
record all commit, or none do."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from orderproc.common.clock import Clock
from orderproc.common.idempotency import IdempotencyScope, remember_rejection, replay
from orderproc.common.ids import new_id
from orderproc.common.locking import Locker, account_lock_key
from orderproc.common.metrics import MoneyOperations
from orderproc.common.prices import PriceSource, QuoteView
from orderproc.common.retry import retry_on_conflict
from orderproc.common.storage.ports import Store, UnitOfWork
from orderproc.common.storage.records import (
    AccountRecord,
    AssetEntry,
    CashEntry,
    CashEntryKind,
    OrderRecord,
    PositionRecord,
)
from orderproc.errors import (
    AccountNotFound,
    BusinessRuleViolation,
    ClientOrderIdReused,
    OrderNotFound,
    OrderNotOpen,
)
from orderproc.orders.domain import Fill, Holding, OrderType, TradingRules, fill_market_order
from orderproc.orders.pricing import PricedOrder, market_price, tradeable_quote


@dataclass(frozen=True, slots=True)
class OrderDeps:
    store: Store
    locker: Locker
    clock: Clock
    prices: PriceSource
    rules: TradingRules
    stale_after: timedelta
    lock_timeout: float
    idempotency_ttl: timedelta
    money: MoneyOperations = field(default_factory=MoneyOperations)


@dataclass(frozen=True, slots=True)
class PlaceOrder:
    user_id: str
    order_type: OrderType
    asset_id: str
    quantity: Decimal | None = None
    notional: Decimal | None = None
    client_order_id: str | None = None
    idempotency_key: str | None = None
    fingerprint: str = ""


async def place_order(cmd: PlaceOrder, *, deps: OrderDeps) -> OrderRecord:
    """Fill a market order at the cached quote (a buy at the ask, a sale at the bid), exactly
    once per idempotency key and per client order id."""
    async with deps.locker.hold(account_lock_key(cmd.user_id), timeout=deps.lock_timeout):
        return await retry_on_conflict(lambda: _place_once(cmd, deps))


async def _place_once(cmd: PlaceOrder, deps: OrderDeps) -> OrderRecord:
    now = deps.clock.now()
    async with deps.store.unit_of_work() as uow:
        earlier = await _earlier_answer(uow, cmd, now)
        if earlier is not None:
            return earlier
        try:
            priced = await _price(uow, cmd, deps, now)
            refusal = priced.refusal()
            if refusal is not None:
                raise refusal
        except BusinessRuleViolation as rejection:
            await remember_rejection(
                deps.store, _scope(cmd), rejection, now=now, ttl=deps.idempotency_ttl
            )
            raise
        fill = priced.fill
        order = _order(cmd, priced.quote, fill, now)
        _stage_fill(uow, order, fill, priced.account, priced.position, now)
        scope = _scope(cmd)
        if scope is not None:
            payload = {"order_id": order.order_id}
            uow.idempotency.add(scope.record("ok", payload, now=now, ttl=deps.idempotency_ttl))
        await uow.commit()
        deps.money.count("buy" if fill.is_buy else "sell")
        if fill.fee_cents:
            deps.money.count("fee")
        return order


async def _earlier_answer(uow: UnitOfWork, cmd: PlaceOrder, now: datetime) -> OrderRecord | None:
    """The order this request already made (a retry), or None for a new request."""
    if cmd.idempotency_key:
        record = await uow.idempotency.get(cmd.user_id, cmd.idempotency_key, now=now)
        if record is not None:
            payload = replay(record, fingerprint_now=cmd.fingerprint)
            order = await uow.orders.get(str(payload["order_id"]))
            if order is None:  # committed together with the key, so this is a broken store
                raise OrderNotFound("the order this key made is missing")
            return order
    if cmd.client_order_id:
        existing = await uow.orders.get_by_client_id(cmd.user_id, cmd.client_order_id)
        if existing is not None:
            if existing.fingerprint != cmd.fingerprint:
                raise ClientOrderIdReused()
            return existing
    return None


async def estimate_order(cmd: PlaceOrder, *, deps: OrderDeps) -> PricedOrder:
    """What `place_order` would do with `cmd` now: the same pricing step against the same
    account, refused the same way (unknown or inactive asset, stale price, out-of-range
    value), but written nowhere and so taking no lock. Whether the account can take the fill
    is the answer's `refusal()`, not an error."""
    async with deps.store.unit_of_work() as uow:
        return await _price(uow, cmd, deps, deps.clock.now())


async def _price(uow: UnitOfWork, cmd: PlaceOrder, deps: OrderDeps, now: datetime) -> PricedOrder:
    quote = tradeable_quote(cmd.asset_id, prices=deps.prices, stale_after=deps.stale_after, now=now)
    fill = fill_market_order(
        cmd.order_type,
        market_price=market_price(quote, cmd.order_type),
        rules=deps.rules,
        quantity=cmd.quantity,
        notional=cmd.notional,
    )
    account = await uow.accounts.get(cmd.user_id)
    if account is None:
        raise AccountNotFound()
    position = await uow.positions.get(cmd.user_id, quote.asset_id)
    return PricedOrder(quote, fill, account, position)


def _order(cmd: PlaceOrder, quote: QuoteView, fill: Fill, now: datetime) -> OrderRecord:
    notional_cents = None if cmd.notional is None else int(cmd.notional * 100)
    return OrderRecord(
        order_id=new_id(),
        user_id=cmd.user_id,
        order_type=cmd.order_type.value,
        asset_id=quote.asset_id,
        status="filled",
        quantity_units=fill.quantity_units,
        created_at=now,
        updated_at=now,
        client_order_id=cmd.client_order_id,
        fingerprint=cmd.fingerprint,
        price=fill.price,
        notional_cents=notional_cents,
        total_cents=fill.total_cents,
        fee_cents=fill.fee_cents,
        filled_at=now,
    )


def _stage_fill(
    uow: UnitOfWork,
    order: OrderRecord,
    fill: Fill,
    account: AccountRecord,
    position: PositionRecord | None,
    now: datetime,
) -> None:
    uow.orders.add(order)
    balance = account.balance_cents
    moves: list[tuple[CashEntryKind, int]] = [
        ("order_payment", -fill.total_cents) if fill.is_buy else ("order_sale", fill.total_cents)
    ]
    if fill.fee_cents:
        moves.append(("fee", -fill.fee_cents))
    for kind, amount in moves:
        balance += amount
        uow.cash_ledger.add(
            CashEntry(new_id(), order.user_id, kind, amount, balance, order.order_id, now)
        )
    uow.accounts.update(
        account.evolve(balance_cents=balance, version=account.version + 1, updated_at=now),
        expected_version=account.version,
    )
    _stage_position(uow, order, fill, position, now)


def _stage_position(
    uow: UnitOfWork,
    order: OrderRecord,
    fill: Fill,
    position: PositionRecord | None,
    now: datetime,
) -> None:
    before = (
        Holding(0, Decimal(0), Decimal(0))
        if position is None
        else Holding(position.quantity_units, position.cost_basis, position.realized_pnl)
    )
    after = before.after(fill)
    if position is None:
        uow.positions.add(
            PositionRecord(
                order.user_id,
                order.asset_id,
                after.quantity_units,
                0,
                after.cost_basis,
                after.realized_pnl,
                1,
                now,
            )
        )
    else:
        uow.positions.update(
            position.evolve(
                quantity_units=after.quantity_units,
                cost_basis=after.cost_basis,
                realized_pnl=after.realized_pnl,
                version=position.version + 1,
                updated_at=now,
            ),
            expected_version=position.version,
        )
    uow.asset_ledger.add(
        AssetEntry(
            new_id(),
            order.user_id,
            order.asset_id,
            order.order_id,
            "buy" if fill.is_buy else "sell",
            fill.units_delta,
            fill.price,
            fill.total_cents,
            fill.fee_cents,
            after.quantity_units,
            now,
        )
    )


def _scope(cmd: PlaceOrder) -> IdempotencyScope | None:
    return IdempotencyScope.of(cmd.user_id, cmd.idempotency_key, cmd.fingerprint)


async def get_order(user_id: str, order_id: str, *, store: Store) -> OrderRecord:
    """The user's own order; another user's is as unknown as a missing one."""
    async with store.unit_of_work() as uow:
        order = await uow.orders.get(order_id)
    if order is None or order.user_id != user_id:
        raise OrderNotFound()
    return order


async def cancel_order(user_id: str, order_id: str, *, deps: OrderDeps) -> OrderRecord:
    """Cancel an open order and release what it reserved."""
    async with deps.locker.hold(account_lock_key(user_id), timeout=deps.lock_timeout):
        return await retry_on_conflict(lambda: _cancel_once(user_id, order_id, deps))


async def _cancel_once(user_id: str, order_id: str, deps: OrderDeps) -> OrderRecord:
    now = deps.clock.now()
    async with deps.store.unit_of_work() as uow:
        order = await uow.orders.get(order_id)
        if order is None or order.user_id != user_id:
            raise OrderNotFound()
        if order.status != "open":
            raise OrderNotOpen(f"the order is {order.status}")
        if order.reserved_cents:
            account = await uow.accounts.get(user_id)
            assert account is not None
            uow.accounts.update(
                account.evolve(
                    reserved_cents=account.reserved_cents - order.reserved_cents,
                    version=account.version + 1,
                    updated_at=now,
                ),
                expected_version=account.version,
            )
        if order.reserved_units:
            position = await uow.positions.get(user_id, order.asset_id)
            assert position is not None
            uow.positions.update(
                position.evolve(
                    reserved_units=position.reserved_units - order.reserved_units,
                    version=position.version + 1,
                    updated_at=now,
                ),
                expected_version=position.version,
            )
        cancelled = order.evolve(
            status="cancelled",
            reserved_cents=0,
            reserved_units=0,
            updated_at=now,
            version=order.version + 1,
        )
        uow.orders.update(cancelled, expected_version=order.version)
        await uow.commit()
        return cancelled
