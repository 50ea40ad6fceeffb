"""Does storage cost grow with data? The same requests on a big database and on a fresh one.

    .venv/bin/python bench/dataset.py [--small] [--postgres] [--rebuild] [--build-only]
                                      [--duration 5] [--warmup 2] [--rounds 3]
                                      [--concurrency 32] [--json FILE] [--keep]

THE DATASET. A SQLite database of 100,000 users with their cash accounts, 2,000,000 cash ledger
entries and 1,000,000 filled market orders (each with its cash entry, its asset ledger entry and
its position), plus 1,000,000 idempotency records and 200,000 revoked tokens. Five heavy users
(`heavy_1` .. `heavy_5`) hold 130,000 cash entries, 120,000 orders and 60 positions each, 103,000
of the orders in one asset (BTC for heavy_1), so every list has a page 100,000 rows deep; the
99,995 light users hold about 14 cash entries and 4 orders each. `--small` builds 1/50 of every
count (2,000 users, 40,000 entries, 20,000 orders, lists 2,000 rows deep; still 60 positions)
and runs 1-second windows without warm-up, once each: a smoke run, under a minute.

How it is built: `open_store(url)` and `await store.migrate()` make the schema; then plain sqlite3
`executemany` in large transactions fills it. Rows go in in global time order, as a live platform
writes them (so a heavy user's rows are scattered over the table, not packed together), with
timestamps over the 180 days before today (UTC micros) and ids that are UUIDv7 of those times.
The numbers are consistent: every fill comes from the platform's own `fill_market_order` at a
price near the catalog's, positions from its own `Holding.after`, every balance is the sum of its
ledger and never negative, `balance_after` runs with it, `daily_limits` holds each day's deposit
and withdrawal sums. Every user has the same password hash, made once by the platform's
hasher (default profile) for PASSWORD, so any user can log in. Idempotency records (receipts and
order ids, as the platform stores them) are dated the last day and revocations expire 30 days
after the build, so the background purge finds nothing to do while the cached file is in use
(a cache older than 25 days is rebuilt). The build checks itself (every account and position
against its ledger in SQL, then `orderproc reconcile`) and is cached under
/tmp/orderproc-dataset-<key>/, the key a hash of the schema that migrate() made (sqlite_master),
DATASET_VERSION, the scale and the seed: a rerun does not rebuild; a schema change does.

WHAT IT MEASURES, in one run. `orderproc serve` (embedded mode, bench/run.py's settings: rate
limit off, daily limits raised, everything else default) runs on a copy of the dataset ("big")
and on a fresh data dir ("fresh"). Servers are pinned to CPU 0 with taskset, wrk and this script
to the other CPU (as bench/ab.py); the figure is the server's CPU time per successful request
from /proc (as bench/run.py: user + system over the measured window / 2xx answers), the median of
--rounds windows, each after an uncounted warm-up. On a shared 2-core VM CPU per request is the
steady figure; requests/s are shown beside it.

1. List pages (GET, one user's token per case, limit=50): the cash ledger
   (/balance/transactions), /orders and the asset ledger (/assets/{asset}/transactions): a light
   user's first page (on big, and on fresh for a user given the same number of rows through the
   API), heavy_1's first page, and heavy_1's page 100,000 rows deep. The deep cursor is the
   server's own next_cursor, followed page by page (limit=250) from the top: no signing key
   leaves the server and nothing assumes how a cursor is made. A light user's page holds a
   handful of rows (the dataset's light users have 3 to 20 of each) and a heavy one 50, and
   rendering 50 rows costs more than 4 whatever the store does, so the target compares pages of
   equal length: the two heavy pages asked for with the light page's row count as the limit
   ("limit N") must each cost at most 2x the light first page. The 50-row pages are shown
   beside them (their ratio is the rows' share, not the data's).
2. The longest time one callback held the event loop during those list windows, p99.9 and max
   (target < 5 ms). A second server on the same data runs `orderproc serve` unchanged except that
   every event-loop callback is timed: `asyncio.events.Handle._run` (which runs every callback: a
   task's step, where the route's synchronous work happens, a socket read, a timer) is wrapped
   with two perf_counter() calls, and the thread's CPU time (`time.thread_time`) is taken for each
   callback over 1 ms: on this 2-core machine the server's core is shared with the kernel and
   wrk's neighbours, so a callback's wall time includes moments the OS ran something else. The
   target is judged on p99.9 of wall time and on the CPU time of the longest callback that serves
   a request ("cpu"); the longest wall time is printed beside it, and the background's (the price
   ticker's tick, whose cost is a matter of its own) is shown apart as "max bg". uvloop runs
   callbacks in C where no Python hook reaches, so this server is given the standard asyncio loop
   (uvicorn picks it when uvloop cannot be imported); the callbacks run the same application code,
   while asyncio's Python transport makes socket callbacks a little slower than uvloop's, so the
   figures err high. Its CPU-per-request figures are not used. The distribution covers every
   callback of the measured window (requests and background tasks) and names the slowest; "max
   req" is the longest callback serving a request (its ASGI task, its protocol, its transport),
   "max bg" the longest of the rest (price ticker, purge, commit of their writes). The target
   applies to every callback: any of them delays the requests waiting behind it. Before the
   windows each page is fetched 10 times, which also waits out the server's start-up. (asyncio's
   debug mode would time callbacks too, but it also records a traceback for every callback
   scheduled, which changes what is measured.)
3. Deposits and market buys: bench/run.py's `deposit` and `market_buy_c32` workloads, as 50
   light users of the dataset on big and 50 new users on fresh, windows alternating fresh, big.
   Printed: fresh CPU per request / big CPU per request (big's throughput as a fraction of
   fresh's at equal CPU). Target >= 0.9.
4. Table sizes: bytes per row (= MB per million rows) of `idempotency` and `revoked_tokens`,
   written through the store's own write path and measured after VACUUM by bench/table_sizes.py.
5. With --postgres: a throwaway PostgreSQL cluster (tests/support/postgres_server.py: initdb and
   pg_ctl on a free loopback port), the same rows loaded with asyncpg's `copy_records_to_table`
   (COPY) into the schema PostgresStore.migrate() made, then ANALYZE. Printed: (a) statements and
   round trips per deposit and per market buy, counted on the wire: a third server talks to
   PostgreSQL through a relay in this script that parses the protocol; a round trip is one
   ReadyForQuery from the server (the client waits for it; a pipelined batch ends in one),
   a statement one simple Query or one extended-protocol Execute; the server runs with the price
   ticker slowed to 10 minutes and the purge off, an idle window shows what else is counted, and
   one request's statements are listed. (b) market-buy (market_buy_c32) throughput on PostgreSQL
   as a fraction of SQLite's, both on the big data, windows alternating. Target >= 0.6.

Exit status 1 when a target is missed, as bench/run.py. To measure a fixed version while the
tree changes, run a copy of the code (bench/README.md): PYTHONPATH=/tmp/snap/src.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import gc
import hashlib
import json
import os
import random
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from run import (
    API,
    BENCH_SETTINGS,
    ROOT,
    WORKLOADS,
    Platform,
    Server,
    Workload,
    call,
    code_info,
    cpu_seconds,
    fund_users,
    machine_info,
    make_users,
    postgres_pids,
    run_wrk,
    start_server,
    stop_server,
    uptime,
)

DATASET_VERSION = "1"  # bump when the generator changes what it writes
PASSWORD = "Dataset-bench-pw-2026"
HEAVY = 5
POSITIONS = 60  # per heavy user
MONEY_USERS = 50
CHILD = "--serve-instrumented"
DAY_US = 86_400_000_000
KEEP_DAYS = 30  # idempotency records and revocations expire this long after the build
REBUILD_AFTER_DAYS = 25
LIGHT_MARGIN_CENTS = 200_000  # a light user's withdrawal leaves at least 2,000.00
ORDER_PATH = f"{API}/orders"
CASH_PATH = f"{API}/balance/transactions"


def asset_path(asset: str) -> str:
    return f"{API}/assets/{asset}/transactions"


# --------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class Plan:
    """Row counts at a scale (1.0 is the full dataset)."""

    scale: float
    users: int
    cash_entries: int
    orders: int
    heavy_orders: int  # each heavy user's
    heavy_main: int  # of which in the heavy user's main asset
    heavy_deposits: int  # each heavy user's cash movements besides orders
    depth: int  # rows before the deep page
    idempotency: int
    revoked: int

    @classmethod
    def of(cls, scale: float) -> Plan:
        def n(full: int) -> int:
            return max(1, round(full * scale))

        plan = cls(
            scale,
            n(100_000),
            n(2_000_000),
            n(1_000_000),
            n(120_000),
            n(103_000),
            n(10_000),
            n(100_000),
            n(1_000_000),
            n(200_000),
        )
        if plan.heavy_orders - plan.heavy_main < POSITIONS or plan.light_cash_only < plan.light:
            raise SystemExit(f"scale {scale} is too small for this dataset")
        return plan

    @property
    def light(self) -> int:
        return self.users - HEAVY

    @property
    def light_orders(self) -> int:
        return self.orders - HEAVY * self.heavy_orders

    @property
    def light_cash_only(self) -> int:
        heavy = HEAVY * (self.heavy_orders + self.heavy_deposits)
        return self.cash_entries - heavy - self.light_orders


# --------------------------------------------------------------------------- building

_MASK_48 = (1 << 48) - 1


def uuid7(micros: int, rng: random.Random) -> str:
    """A UUIDv7 (the platform's id format) for a moment in the past."""
    value = ((micros // 1000) & _MASK_48) << 80 | 0x7 << 76 | rng.getrandbits(12) << 64
    value |= 0b10 << 62 | rng.getrandbits(62)
    digits = f"{value:032x}"
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


def migrate(url: str) -> None:
    """The schema, made by the store itself."""
    from orderproc.common.storage.factory import open_store

    async def run() -> None:
        store = open_store(url)
        try:
            await store.migrate()
        finally:
            await store.close()

    asyncio.run(run())


def schema_text(path: Path) -> str:
    db = sqlite3.connect(path)
    try:
        rows = db.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master "
            "WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name"
        ).fetchall()
    finally:
        db.close()
    return "\n".join(" ".join(str(part) for part in row) for row in rows)


def password_hash() -> str:
    """One hash of PASSWORD by the platform's hasher at the default profile."""
    from orderproc.common.security.passwords import PasswordHasher
    from orderproc.common.settings import Settings

    profile = Settings.model_fields["password_hash_profile"].default
    hasher = PasswordHasher(profile, workers=1, queue=1)
    try:
        return asyncio.run(hasher.hash(PASSWORD))
    finally:
        hasher.close()


@dataclass
class UserState:
    user_id: str
    username: str
    created: int
    orders_left: int
    cash_left: int
    heavy: bool
    balance: int = 0
    version: int = 1
    last: int = 0
    ops: int = 0
    cash_rows: int = 0
    order_rows: int = 0
    holdings: dict[int, Any] = field(default_factory=dict)  # asset index -> Holding
    position_meta: dict[int, tuple[int, int]] = field(default_factory=dict)  # version, updated
    entries: Counter[int] = field(default_factory=Counter)  # asset ledger rows per asset
    favourites: tuple[int, int] = (0, 1)
    plan: list[int] = field(default_factory=list)  # a heavy user's assets, order by order


INSERTS = {
    "users": "INSERT INTO users (user_id, username, email, password_hash, first_name, last_name, "
    "phone, date_of_birth, role, is_active, created_at, updated_at, tokens_valid_after, version) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    "accounts": "INSERT INTO accounts (user_id, balance_cents, reserved_cents, available_cents, "
    "version, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
    "cash_ledger": "INSERT INTO cash_ledger (entry_id, user_id, kind, amount_cents, "
    "balance_after_cents, reference_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
    "orders": "INSERT INTO orders (order_id, user_id, order_type, asset_id, status, "
    "quantity_units, created_at, updated_at, client_order_id, fingerprint, price, limit_price, "
    "stop_price, notional_cents, total_cents, fee_cents, reserved_cents, reserved_units, "
    "time_in_force, expires_at, filled_at, version) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    "asset_ledger": "INSERT INTO asset_ledger (entry_id, user_id, asset_id, order_id, kind, "
    "quantity_units, price, total_cents, fee_cents, quantity_after_units, created_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    "positions": "INSERT INTO positions (user_id, asset_id, quantity_units, reserved_units, "
    "available_units, cost_basis, realized_pnl, version, updated_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    "daily_limits": "INSERT INTO daily_limits (user_id, day, kind, used_cents) VALUES (?, ?, ?, ?)",
    "idempotency": "INSERT INTO idempotency (user_id, key, fingerprint, outcome, payload, "
    "created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
    "revoked_tokens": "INSERT INTO revoked_tokens (jti, user_id, expires_at) VALUES (?, ?, ?)",
}


class Writer:
    """Buffers rows per table and writes them with executemany, in one open transaction."""

    def __init__(self, db: sqlite3.Connection, batch: int = 100_000) -> None:
        self.db = db
        self.batch = batch
        self.rows: dict[str, list[tuple[Any, ...]]] = {table: [] for table in INSERTS}

    def add(self, table: str, row: tuple[Any, ...]) -> None:
        rows = self.rows[table]
        rows.append(row)
        if len(rows) >= self.batch:
            self.flush(table)

    def flush(self, table: str | None = None) -> None:
        for name in [table] if table else list(self.rows):
            if self.rows[name]:
                self.db.executemany(INSERTS[name], self.rows[name])
                self.rows[name] = []


def generate(db: sqlite3.Connection, plan: Plan, seed: int, hashed: str) -> dict[str, Any]:
    """Writes every row; returns what the benchmark needs to know about the users."""
    from orderproc.common.clock import from_micros, isoformat_z
    from orderproc.inventory.domain import load_snapshot
    from orderproc.orders.domain import (
        Fill,
        Holding,
        OrderType,
        TradingRules,
        fill_market_order,
    )

    rng = random.Random(seed)
    now = time.time_ns() // 1000
    end = (now // DAY_US) * DAY_US - 1  # the end of yesterday: nothing is dated today
    start = end - 180 * DAY_US
    catalog = [a for a in load_snapshot() if a.is_active and a.price_usd >= Decimal("0.01")]
    assets = [a.asset_id for a in catalog[:POSITIONS]]
    base_prices = [float(a.price_usd) for a in catalog[:POSITIONS]]
    # No fee and no slippage, as the defaults were when the dataset's figures were measured.
    rules = TradingRules(0, 0, 0, Decimal("1.00"), Decimal("10000"))
    out = Writer(db)

    # Users and how many operations each will make.
    users: list[UserState] = []
    extra_orders = Counter(rng.choices(range(plan.light), k=plan.light_orders - plan.light))
    extra_cash = Counter(rng.choices(range(plan.light), k=plan.light_cash_only - plan.light))
    for index in range(plan.users):
        heavy = index < HEAVY
        created = start if heavy else start + rng.randrange(150 * DAY_US)
        light = index - HEAVY
        user = UserState(
            user_id=uuid7(created, rng),
            username=f"heavy_{index + 1}" if heavy else f"user_{light:06d}",
            created=created,
            orders_left=plan.heavy_orders if heavy else 1 + extra_orders[light],
            cash_left=plan.heavy_deposits if heavy else 1 + extra_cash[light],
            heavy=heavy,
            last=created,
        )
        if heavy:  # every one of 60 assets at least once, the main one (asset `index`) most
            others = [a for a in range(POSITIONS) if a != index]
            rest = plan.heavy_orders - plan.heavy_main - len(others)
            user.plan = others + rng.choices(others, k=rest) + [index] * plan.heavy_main
            rng.shuffle(user.plan)
        else:
            first, second = rng.sample(range(10), 2)
            user.favourites = (first, second)
        users.append(user)
        out.add(
            "users",
            (
                user.user_id,
                user.username,
                f"{user.username}@example.com",
                hashed,
                "Bench",
                f"User{index}",
                None,
                None,
                "customer",
                1,
                created,
                created,
                None,
                1,
            ),
        )

    # Every operation's moment, in one timeline: (micros << 20) | user index.
    timeline: list[int] = []
    for index, user in enumerate(users):
        count = user.orders_left + user.cash_left
        moments = sorted(rng.randrange(user.created + 60_000_000, end) for _ in range(count))
        timeline.extend((moment << 20) | index for moment in moments)
    timeline.sort()

    daily: Counter[tuple[int, int, str]] = Counter()
    buy, sell = OrderType.MARKET_BUY, OrderType.MARKET_SELL

    def price_of(asset: int) -> Decimal:
        return Decimal(f"{base_prices[asset] * rng.uniform(0.85, 1.15):.6g}")

    def sell_fill(user: UserState, asset: int, market: Decimal) -> Fill | None:
        held = user.holdings[asset].quantity_units if asset in user.holdings else 0
        if held <= 0 or rng.random() >= (0.25 if user.heavy else 0.3):
            return None
        share = rng.uniform(0.05, 0.5) if user.heavy else rng.uniform(0.2, 1.0)
        cap = int(Decimal(9000) / market * 100_000_000)  # worth at most 9,000.00
        units = min(int(held * share), cap)
        if units <= 0 or Decimal(units) * market / 100_000_000 < Decimal("1.50"):
            return None
        quantity = Decimal(units).scaleb(-8)
        return fill_market_order(sell, market_price=market, rules=rules, quantity=quantity)

    for key in timeline:
        moment, index = key >> 20, key & 0xFFFFF
        user = users[index]
        total = user.orders_left + user.cash_left
        is_order = user.ops > 0 and rng.random() * total < user.orders_left
        user.ops += 1
        user.version += 1
        user.last = moment
        user.cash_rows += 1
        if not is_order:
            user.cash_left -= 1
            if user.heavy:
                amount = rng.randint(100_000, 1_000_000) * 100
                withdraw = user.balance > 10_000_000_00 and rng.random() < 0.1
            elif user.ops == 1:
                amount, withdraw = rng.randint(2_000, 10_000) * 100, False
            else:
                amount = rng.randint(1_000, 200_000)
                withdraw = rng.random() < 0.3 and user.balance - amount >= LIGHT_MARGIN_CENTS
            kind = "withdraw" if withdraw else "deposit"
            delta = -amount if withdraw else amount
            user.balance += delta
            daily[(index, moment // DAY_US, kind)] += amount
            out.add(
                "cash_ledger",
                (
                    uuid7(moment, rng),
                    user.user_id,
                    kind,
                    delta,
                    user.balance,
                    uuid7(moment, rng),
                    moment,
                ),
            )
            continue

        user.orders_left -= 1
        user.order_rows += 1
        if user.heavy:
            asset = user.plan.pop()
        else:
            asset = user.favourites[0] if rng.random() < 0.7 else user.favourites[1]
        market = price_of(asset)
        fill = sell_fill(user, asset, market)
        notional_cents = None
        if fill is None:
            if user.heavy:
                notional_cents = min(rng.randint(1_000, 500_000), user.balance // 2)
            else:
                notional_cents = min(rng.randint(500, 10_000), user.balance // 10)
            if notional_cents < 500:
                raise RuntimeError(f"{user.username} ran out of cash: the generator is wrong")
            notional = Decimal(notional_cents).scaleb(-2)
            fill = fill_market_order(buy, market_price=market, rules=rules, notional=notional)
        order_id = uuid7(moment, rng)
        price = str(fill.price)
        user.balance += fill.cash_delta_cents
        assert user.balance >= 0
        before = user.holdings.get(asset, Holding(0, Decimal(0), Decimal(0)))
        after = before.after(fill)
        user.holdings[asset] = after
        version = user.position_meta.get(asset, (0, 0))[0] + 1
        user.position_meta[asset] = (version, moment)
        user.entries[asset] += 1
        out.add(
            "orders",
            (
                order_id,
                user.user_id,
                "market_buy" if fill.is_buy else "market_sell",
                assets[asset],
                "filled",
                fill.quantity_units,
                moment,
                moment,
                None,
                hashlib.sha256(order_id.encode()).hexdigest(),
                price,
                None,
                None,
                notional_cents,
                fill.total_cents,
                fill.fee_cents,
                0,
                0,
                "gtc",
                None,
                moment,
                1,
            ),
        )
        out.add(
            "cash_ledger",
            (
                uuid7(moment, rng),
                user.user_id,
                "order_payment" if fill.is_buy else "order_sale",
                -fill.total_cents if fill.is_buy else fill.total_cents,
                user.balance,
                order_id,
                moment,
            ),
        )
        out.add(
            "asset_ledger",
            (
                uuid7(moment, rng),
                user.user_id,
                assets[asset],
                order_id,
                "buy" if fill.is_buy else "sell",
                fill.quantity_units if fill.is_buy else -fill.quantity_units,
                price,
                fill.total_cents,
                fill.fee_cents,
                after.quantity_units,
                moment,
            ),
        )

    epoch = date(1970, 1, 1)
    for (index, day, kind), used in daily.items():
        day_text = (epoch + timedelta(days=day)).isoformat()
        out.add("daily_limits", (users[index].user_id, day_text, kind, used))
    for user in users:
        out.add(
            "accounts",
            (user.user_id, user.balance, 0, user.balance, user.version, user.last),
        )
        for asset, holding in user.holdings.items():
            version, updated = user.position_meta[asset]
            out.add(
                "positions",
                (
                    user.user_id,
                    assets[asset],
                    holding.quantity_units,
                    0,
                    holding.quantity_units,
                    str(holding.cost_basis),
                    str(holding.realized_pnl),
                    version,
                    updated,
                ),
            )

    # The last day's idempotency records (a deposit's receipt or an order's id, as the platform
    # stores them) and revocations, none expiring before KEEP_DAYS after the build.
    nonce = f"{rng.getrandbits(32):08x}"
    heavy_share = [u for u in users if u.heavy]
    moments = sorted(rng.randrange(now - DAY_US, now) for _ in range(plan.idempotency))
    for n, moment in enumerate(moments):
        user = rng.choice(heavy_share) if rng.random() < 0.1 else rng.choice(users)
        if n % 2:
            payload = {"order_id": uuid7(moment, rng)}
        else:
            balance = f"{user.balance / 100:.2f}"
            payload = {
                "transaction_id": uuid7(moment, rng),
                "transaction_type": "deposit",
                "amount": f"{rng.randint(100, 100_000) / 100:.2f}",
                "balance": balance,
                "available_balance": balance,
                "timestamp": isoformat_z(from_micros(moment)),
            }
        out.add(
            "idempotency",
            (
                user.user_id,
                f"g{nonce}-{n % 64}-{n}",
                hashlib.sha256(f"{user.user_id}{n}".encode()).hexdigest(),
                "ok",
                json.dumps(payload, separators=(",", ":")),
                moment,
                moment + KEEP_DAYS * DAY_US,
            ),
        )
    for _ in range(plan.revoked):
        user = rng.choice(users)
        expires = now + KEEP_DAYS * DAY_US - rng.randrange(3_600_000_000)
        out.add("revoked_tokens", (f"{rng.getrandbits(128):032x}", user.user_id, expires))
    out.flush()

    # What the benchmark uses: heavy_1, a light user with a typical handful, 50 more light ones.
    heavy = users[0]
    light = next(u for u in users[HEAVY:] if u.cash_rows >= 12 and u.order_rows >= 3 and u.entries)
    light_asset, light_entries = light.entries.most_common(1)[0]
    money = [u.username for u in users[HEAVY:] if u is not light][:MONEY_USERS]
    return {
        "history": [start, end],
        "heavy": {
            "username": heavy.username,
            "balance_cents": heavy.balance,
            "cash_entries": heavy.cash_rows,
            "orders": heavy.order_rows,
            "asset": assets[0],
            "asset_entries": heavy.entries[0],
            "positions": len(heavy.holdings),
        },
        "light": {
            "username": light.username,
            "balance_cents": light.balance,
            "cash_entries": light.cash_rows,
            "orders": light.order_rows,
            "asset": assets[light_asset],
            "asset_entries": light_entries,
        },
        "money_users": money,
    }


def check(path: Path, env: dict[str, str]) -> dict[str, Any]:
    """Row counts, every account and position against its ledger in SQL, and the platform's own
    `orderproc reconcile`."""
    db = sqlite3.connect(path)
    try:
        counts = {
            table: db.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in INSERTS
        }
        cash_bad = db.execute(
            "SELECT count(*) FROM accounts a LEFT JOIN (SELECT user_id, sum(amount_cents) AS s "
            "FROM cash_ledger GROUP BY user_id) l ON l.user_id = a.user_id "
            "WHERE a.balance_cents != coalesce(l.s, 0) OR a.balance_cents < 0"
        ).fetchone()[0]
        units_bad = db.execute(
            "SELECT count(*) FROM positions p LEFT JOIN (SELECT user_id, asset_id, "
            "sum(quantity_units) AS s FROM asset_ledger GROUP BY user_id, asset_id) l "
            "ON l.user_id = p.user_id AND l.asset_id = p.asset_id "
            "WHERE p.quantity_units != coalesce(l.s, 0) OR p.quantity_units < 0"
        ).fetchone()[0]
    finally:
        db.close()
    if cash_bad or units_bad:
        raise SystemExit(f"dataset check: {cash_bad} accounts, {units_bad} positions differ")
    started = time.perf_counter()
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "orderproc"),
            "reconcile",
            "--data-dir",
            str(path.parent),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=False,
    )
    took = time.perf_counter() - started
    output = (done.stdout + done.stderr).strip().splitlines()
    if done.returncode != 0:
        raise SystemExit("orderproc reconcile failed:\n" + "\n".join(output[-20:]))
    return {"counts": counts, "reconcile": output[-1] if output else "", "reconcile_s": took}


def dataset(plan: Plan, seed: int, cache_root: Path, rebuild: bool) -> tuple[Path, dict[str, Any]]:
    """The cached dataset for this schema, scale and seed; built first if missing or stale."""
    scratch = Path(tempfile.mkdtemp(prefix="orderproc-dataset-build-", dir=cache_root))
    path = scratch / "orderproc.db"
    migrate(f"sqlite:///{path}")
    key_text = f"{schema_text(path)}\n{DATASET_VERSION}\n{plan.scale}\n{seed}"
    key = hashlib.sha256(key_text.encode()).hexdigest()[:12]
    final = cache_root / f"orderproc-dataset-{key}"
    meta_file = final / "dataset.json"
    if meta_file.exists() and not rebuild:
        meta = json.loads(meta_file.read_text())
        age_days = (time.time() - meta["built_at"]) / 86400
        if age_days < REBUILD_AFTER_DAYS:
            shutil.rmtree(scratch)
            print(
                f"Dataset: cached {final} (built {age_days:.1f} days ago in "
                f"{meta['build_s']:.0f} s; key {key})"
            )
            return final / "orderproc.db", meta
        print(f"Dataset: cached {final} is {age_days:.0f} days old; rebuilding")
    print(
        f"Dataset: building {final} (key {key}: schema, v{DATASET_VERSION}, scale "
        f"{plan.scale:g}, seed {seed})",
        flush=True,
    )
    started = time.perf_counter()
    hashed = password_hash()
    db = sqlite3.connect(path, isolation_level=None)
    try:
        for pragma in ("journal_mode = OFF", "synchronous = OFF", "cache_size = -1000000"):
            db.execute(f"PRAGMA {pragma}")
        db.execute("BEGIN")
        facts = generate(db, plan, seed, hashed)
        db.execute("COMMIT")
        generated = time.perf_counter() - started
        db.execute("PRAGMA journal_mode = WAL")
    finally:
        db.close()
    print(f"  rows written in {generated:.1f} s", flush=True)
    env = dict(os.environ)
    env.pop("ORDERPROC_DATABASE_URL", None)
    checked = check(path, env)
    took = time.perf_counter() - started
    meta = {
        **facts,
        **checked,
        "key": key,
        "plan": plan.__dict__,
        "seed": seed,
        "built_at": time.time(),
        "build_s": took,
        "generate_s": generated,
        "bytes": path.stat().st_size,
    }
    for leftover in scratch.glob(".write-test-*"):
        leftover.unlink()
    (scratch / "dataset.json").write_text(json.dumps(meta, indent=2))
    shutil.rmtree(final, ignore_errors=True)
    scratch.rename(final)
    print(
        f"  built in {took:.1f} s ({generated:.1f} s writing, {checked['reconcile_s']:.1f} s "
        f"`orderproc reconcile`: {checked['reconcile']}); {meta['bytes'] / 1e9:.2f} GB"
    )
    return final / "orderproc.db", meta


# --------------------------------------------------------------------------- the event loop timer
# Runs in the instrumented server process (`dataset.py --serve-instrumented STATS -- serve ...`).


def _describe(handle: Any) -> str:
    callback = getattr(handle, "_callback", None)
    owner = getattr(callback, "__self__", None)
    if isinstance(owner, asyncio.Task):
        coro = owner.get_coro()
        return f"task {getattr(coro, '__qualname__', type(coro).__name__)}"
    return str(getattr(callback, "__qualname__", repr(callback)))


def _serves_request(what: str) -> bool:
    """A request's own callback: its ASGI task, or the protocol and transport reading it."""
    return any(part in what for part in ("RequestResponseCycle", "Protocol", "Transport"))


def serve_instrumented(stats_path: Path, argv: list[str]) -> None:
    """`orderproc serve` with every event-loop callback timed. SIGUSR1 writes the distribution
    since the last SIGUSR1 to `stats_path` (JSON) and starts a new one."""
    sys.modules["uvloop"] = None  # type: ignore[assignment]  # uvicorn then picks asyncio's loop
    import asyncio.events

    durations = array.array("d")
    slow: list[tuple[float, str, float, float]] = []
    state: dict[str, Any] = {"generation": 0, "loop": "", "dumps": 0, "gc_ms": 0.0}
    original = asyncio.events.Handle._run
    clock = time.perf_counter
    cpu_clock = time.thread_time
    # The garbage collector's passes, by generation: how many, the longest, and (in `slow`) how
    # much of each slow callback was a collection that ran inside it.
    collections: dict[int, list[float]] = {0: [], 1: [], 2: []}
    gc_started = [0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:  # in thread CPU, as `slow`'s cpu
        if phase == "start":
            gc_started[0] = cpu_clock()
        else:
            spent = (cpu_clock() - gc_started[0]) * 1000
            collections[info["generation"]].append(spent)
            state["gc_ms"] += spent

    gc.callbacks.append(on_gc)

    def timed(self: asyncio.events.Handle) -> None:
        generation, gc_before = state["generation"], state["gc_ms"]
        started, cpu_started = clock(), cpu_clock()
        original(self)
        spent = clock() - started
        if generation != state["generation"]:
            return  # a dump ran inside this callback: its time is not the callback's
        durations.append(spent)
        if spent > 0.001:
            gc_in = state["gc_ms"] - gc_before
            slow.append((spent, _describe(self), cpu_clock() - cpu_started, gc_in))
        if not state["loop"]:
            state["loop"] = type(asyncio.events._get_running_loop()).__module__

    asyncio.events.Handle._run = timed  # type: ignore[method-assign]

    def dump(signum: int, frame: Any) -> None:
        ordered = sorted(durations)
        n = len(ordered)

        def at(q: float) -> float:
            return ordered[min(n - 1, int(q * n))] * 1000 if n else 0.0

        state["dumps"] += 1
        slowest = sorted(slow, reverse=True)[:5]
        stats = {
            "seq": state["dumps"],
            "loop": state["loop"],
            "callbacks": n,
            "p50_ms": at(0.5),
            "p99_ms": at(0.99),
            "p999_ms": at(0.999),
            "max_ms": ordered[-1] * 1000 if n else 0.0,
            "over_1ms": sum(1 for d in ordered if d > 0.001),
            "over_5ms": sum(1 for d in ordered if d > 0.005),
            "slowest": [
                [round(s * 1000, 3), what, round(c * 1000, 3), round(g, 3)]
                for s, what, c, g in slowest
            ],
            "max_request_ms": max((s for s, w, *_ in slow if _serves_request(w)), default=0) * 1000,
            "max_other_ms": max((s for s, w, *_ in slow if not _serves_request(w)), default=0)
            * 1000,
            # The thread's own CPU in the longest callbacks: wall time above it is time the OS
            # gave the core to another process (wrk, PostgreSQL) while the callback ran.
            "max_cpu_ms": max((c for _, _, c, _ in slow), default=0) * 1000,
            "max_request_cpu_ms": max((c for _, w, c, _ in slow if _serves_request(w)), default=0)
            * 1000,
            # The same without the collector's passes inside them: what the request itself took.
            "max_request_cpu_ms_without_gc": max(
                (c * 1000 - g for _, w, c, g in slow if _serves_request(w)), default=0
            ),
            "gc": {
                str(gen): {"count": len(ms), "max_ms": round(max(ms, default=0), 3)}
                for gen, ms in collections.items()
            },
        }
        tmp = stats_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(stats))
        tmp.replace(stats_path)
        del durations[:]
        slow.clear()
        for passes in collections.values():
            passes.clear()
        state["generation"] += 1

    signal.signal(signal.SIGUSR1, dump)
    from orderproc.cli import main as orderproc

    orderproc(argv)


def loop_stats(pid: int, path: Path) -> dict[str, Any]:
    """Ask the instrumented server for its distribution since the last ask."""
    seen = json.loads(path.read_text())["seq"] if path.exists() else 0
    os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if path.exists():
            stats: dict[str, Any] = json.loads(path.read_text())
            if stats["seq"] > seen:
                return stats
        time.sleep(0.02)
    raise SystemExit("the instrumented server did not answer SIGUSR1")


# --------------------------------------------------------------------------- servers and windows


@dataclass
class Window:
    cpu_us: float  # server CPU per 2xx
    rps: float  # 2xx per second
    ok: int
    non_2xx: dict[int, int]
    errors: int
    extra_cpu_us: float = 0.0  # PostgreSQL's CPU per 2xx, when it runs


@dataclass
class Case:
    """One list page measured: `path` with limit (and cursor) is what wrk asks for."""

    route: str
    name: str
    server: Server
    base_path: str
    who: str  # whose token: "light", "heavy", "fresh light"
    cursor: str | None = None
    limit: int = 50
    target: bool = False  # a heavy page the 2x target applies to (as many rows as the light one)
    timed: bool = False  # a full heavy page whose event-loop holds are timed
    rows: int = 0
    windows: list[Window] = field(default_factory=list)

    @property
    def path(self) -> str:
        return f"{self.base_path}?limit={self.limit}" + (
            f"&cursor={self.cursor}" if self.cursor else ""
        )


@dataclass
class Setup:
    args: argparse.Namespace
    workdir: Path
    pin: list[str]
    started: list[Server] = field(default_factory=list)
    settled: set[Path] = field(default_factory=set)

    def serve(
        self,
        name: str,
        data_dir: Path,
        extra_env: dict[str, str] | None = None,
        stats: Path | None = None,
    ) -> Server:
        env = {**os.environ, **BENCH_SETTINGS, **(extra_env or {})}
        env.pop("ORDERPROC_ACCESS_LOG", None)  # stays at its default (on)
        if not extra_env or "ORDERPROC_DATABASE_URL" not in extra_env:
            env.pop("ORDERPROC_DATABASE_URL", None)
        serve = ["serve", "--port", "0", "--data-dir", str(data_dir)]
        if stats is None:
            cmd = [str(Path(sys.executable).parent / "orderproc"), *serve]
        else:
            cmd = [sys.executable, str(Path(__file__)), CHILD, str(stats), "--", *serve]
        server = start_server(
            name,
            [*self.pin, *cmd],
            env,
            self.workdir / f"{name}.log",
            r"Order Processor on (http://\S+)",
        )
        self.started.append(server)
        backfill = env.get("ORDERPROC_CANDLE_BACKFILL", "true").lower() not in ("false", "0", "no")
        if backfill and data_dir not in self.settled:  # a dir with its history logs nothing
            settle_backfill(server)
            self.settled.add(data_dir)
        return server

    def stop(self, server: Server) -> None:
        stop_server(server)
        self.started.remove(server)

    def window(
        self, server: Server, workload: Workload, tokens: Path, pg_pids: list[int] | None = None
    ) -> Window:
        common = {
            "concurrency": workload.concurrency or self.args.concurrency,
            "threads": 2,
            "tokens_file": tokens,
        }
        if self.args.warmup > 0:
            run_wrk(workload, server.url, duration=self.args.warmup, **common)
        pid = server.process.pid
        before = (cpu_seconds([pid]), cpu_seconds(pg_pids or []))
        result = run_wrk(workload, server.url, duration=self.args.duration, **common)
        after = (cpu_seconds([pid]), cpu_seconds(pg_pids or []))
        ok = max(result.ok, 1)
        return Window(
            (after[0] - before[0]) / ok * 1e6,
            result.success_rps,
            result.ok,
            result.non_2xx,
            result.errors,
            (after[1] - before[1]) / ok * 1e6,
        )


def settle_backfill(server: Server, timeout: float = 300.0) -> None:
    """Wait until the server's candle backfill has finished (its log line). A fresh data dir
    writes two years of candles in the background at start-up (bench/backfill.py measures that
    on its own); it would otherwise count against the first windows and the event-loop figures.
    Only a data dir's first start has one to wait for."""
    deadline = time.monotonic() + timeout
    while "candle backfill" not in server.log.read_text(errors="replace"):
        if server.process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{server.name}: no candle backfill line in {server.log}")
        time.sleep(0.5)


def login(base: str, username: str) -> str:
    status, body = call(
        "POST", f"{base}{API}/auth/login", {"username": username, "password": PASSWORD}
    )
    if status != 200:
        raise SystemExit(f"login {username}: HTTP {status} {body}")
    return str(body["access_token"])


def login_all(base: str, names: list[str]) -> list[tuple[str, str]]:
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(zip(names, pool.map(lambda name: login(base, name), names), strict=True))


def tokens_file(workdir: Path, name: str, tokens: Iterable[str]) -> Path:
    path = workdir / f"tokens-{name}.txt"
    path.write_text("".join(f"{token}\n" for token in tokens))
    return path


def get(base: str, path: str, token: str) -> dict[str, Any]:
    status, body = call("GET", base + path, token=token)
    if status != 200:
        raise SystemExit(f"GET {path}: HTTP {status} {str(body)[:300]}")
    return dict(body)


def walk(base: str, token: str, path: str, depth: int) -> str:
    """The server's next_cursor after `depth` rows, following pages of up to 250 from the top."""
    seen, cursor = 0, None
    while seen < depth:
        query = f"?limit={min(250, depth - seen)}" + (f"&cursor={cursor}" if cursor else "")
        page = get(base, path + query, token)
        seen += len(page["data"])
        cursor = page["next_cursor"]
        if cursor is None:
            raise SystemExit(f"{path}: the list ended at row {seen}, before {depth}")
    return str(cursor)


def post(base: str, path: str, token: str, body: dict[str, str]) -> None:
    key = f"dataset-{os.urandom(8).hex()}"
    status, answer = call("POST", base + path, body, token=token, headers={"Idempotency-Key": key})
    if status != 201:
        raise SystemExit(f"POST {path}: HTTP {status} {answer}")


# --------------------------------------------------------------------------- PostgreSQL

COPY_TABLES = (
    "users",
    "accounts",
    "cash_ledger",
    "daily_limits",
    "idempotency",
    "revoked_tokens",
    "orders",
    "positions",
    "asset_ledger",
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _optional(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: None if value is None else convert(value)


CONVERT: dict[str, Callable[[Any], Any]] = {
    "timestamp with time zone": _optional(lambda us: _EPOCH + timedelta(microseconds=us)),
    "date": _optional(date.fromisoformat),
    "boolean": _optional(bool),
    "numeric": _optional(Decimal),
}


async def load_postgres(dsn: str, source: Path) -> dict[str, int]:
    """The dataset's rows into the schema the store made, by COPY, table by table, in the
    SQLite file's row order (so PostgreSQL's `seq` follows the same time order); then ANALYZE."""
    import asyncpg

    from orderproc.common.storage.factory import open_store

    store = open_store(dsn)
    try:
        await store.migrate()
    finally:
        await store.close()
    conn = await asyncpg.connect(dsn)
    lite = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    loaded: dict[str, int] = {}
    try:
        for table in COPY_TABLES:
            types = {
                row["column_name"]: row["data_type"]
                for row in await conn.fetch(
                    "SELECT column_name, data_type FROM information_schema.columns "
                    "WHERE table_schema = 'public' AND table_name = $1",
                    table,
                )
            }
            columns = [row[1] for row in lite.execute(f"PRAGMA table_info({table})")]
            missing = [c for c in columns if c not in types]
            if missing:
                raise SystemExit(f"PostgreSQL's {table} lacks {missing}")
            converters = [CONVERT.get(types[c], lambda v: v) for c in columns]
            try:
                lite.execute(f"SELECT rowid FROM {table} LIMIT 0")
                order = " ORDER BY rowid"
            except sqlite3.OperationalError:  # WITHOUT ROWID
                order = ""
            cursor = lite.execute(f"SELECT {', '.join(columns)} FROM {table}{order}")
            loaded[table] = 0
            while rows := cursor.fetchmany(50_000):
                records = [
                    tuple(f(v) for f, v in zip(converters, row, strict=True)) for row in rows
                ]
                await conn.copy_records_to_table(table, records=records, columns=columns)
                loaded[table] += len(records)
        await conn.execute("ANALYZE")
    finally:
        lite.close()
        await conn.close()
    return loaded


SSL_REQUEST, GSS_REQUEST = 80877103, 80877104


class WireCounter:
    """A TCP relay between the platform and PostgreSQL that counts protocol messages: from the
    client Query ('Q'), Parse ('P'), Bind ('B'), Execute ('E'), Sync ('S'); from the server
    ReadyForQuery ('Z'), which ends every round trip. `trace` (when a list) collects the client's
    statements and the server's ReadyForQuery in order."""

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.trace: list[str] | None = None
        self.port = 0
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> WireCounter:
        self._thread.start()
        if not self._ready.wait(10):
            raise SystemExit("the wire counter did not start")
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    def snapshot(self) -> Counter[str]:
        with self.lock:
            return Counter(self.counts)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._relay, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        try:
            while True:  # untyped start-up messages: SSL/GSS requests, then the startup packet
                head = await reader.readexactly(8)
                body = await reader.readexactly(int.from_bytes(head[:4], "big") - 8)
                up_writer.write(head + body)
                await up_writer.drain()
                if int.from_bytes(head[4:], "big") not in (SSL_REQUEST, GSS_REQUEST):
                    break
                answer = await up_reader.readexactly(1)
                writer.write(answer)
                await writer.drain()
                if answer != b"N":
                    raise ConnectionError("encrypted connections cannot be counted")
            statements: dict[bytes, str] = {}
            pumps = [
                asyncio.ensure_future(self._pump(reader, up_writer, "client", statements)),
                asyncio.ensure_future(self._pump(up_reader, writer, "server", statements)),
            ]
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            for pump in pumps:
                pump.cancel()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            for w in (writer, up_writer):
                w.close()

    async def _pump(
        self,
        src: asyncio.StreamReader,
        dst: asyncio.StreamWriter,
        side: str,
        statements: dict[bytes, str],
    ) -> None:
        portal = ""
        try:
            while True:
                head = await src.readexactly(5)
                body = await src.readexactly(int.from_bytes(head[1:], "big") - 4)
                dst.write(head + body)
                kind = chr(head[0])
                sql = ""
                if side == "client":
                    if kind == "Q":
                        sql = body[:-1].decode(errors="replace")
                    elif kind == "P":
                        name, query = body.split(b"\0")[:2]
                        statements[name] = query.decode(errors="replace")
                    elif kind == "B":
                        portal = statements.get(body.split(b"\0")[1], "?")
                    elif kind == "E":
                        sql = portal
                    self._note(f"client {kind}", sql)
                elif kind == "Z":
                    self._note("server Z", "")
                await dst.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            return

    def _note(self, what: str, sql: str) -> None:
        with self.lock:
            self.counts[what] += 1
            if self.trace is not None:
                if what in ("client Q", "client E"):
                    self.trace.append(" ".join(sql.split())[:110])
                elif what == "server Z":
                    self.trace.append("-- round trip ends (ReadyForQuery)")


def per_request(before: Counter[str], after: Counter[str], n: int) -> dict[str, float]:
    delta = {k: after[k] - before[k] for k in set(after) | set(before)}
    return {
        "round_trips": delta.get("server Z", 0) / n,
        "statements": (delta.get("client Q", 0) + delta.get("client E", 0)) / n,
        "simple_queries": delta.get("client Q", 0) / n,
        "executes": delta.get("client E", 0) / n,
        "parses": delta.get("client P", 0) / n,
    }


# --------------------------------------------------------------------------- report helpers


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def table_sizes(rows: int) -> dict[str, dict[str, int]]:
    """bench/table_sizes.py: rows through the store's write path, sizes after VACUUM."""
    import table_sizes as ts

    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "sizes.db"
        asyncio.run(ts.fill(path, rows, "mix"))
        return ts.sizes(path) if ts.has_dbstat() else ts.sizes_by_file(path)


# --------------------------------------------------------------------------- main


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--small", action="store_true", help="1/50 of the dataset: a smoke run")
    parser.add_argument("--postgres", action="store_true", help="also PostgreSQL (item 5)")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the cached dataset")
    parser.add_argument("--seed", type=int, default=20261201, help="the generator's seed")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=Path(tempfile.gettempdir()),
        help="where the dataset is kept",
    )
    parser.add_argument("--duration", type=float, help="measured seconds per window (5; small 1)")
    parser.add_argument(
        "--warmup", type=float, help="uncounted seconds before each (2; small 0: none)"
    )
    parser.add_argument("--rounds", type=int, help="windows per case and side (3; small 1)")
    parser.add_argument("--concurrency", type=int, default=32, help="wrk connections")
    parser.add_argument(
        "--count-requests",
        type=int,
        default=100,
        help="requests of each kind counted on the wire (--postgres)",
    )
    parser.add_argument("--size-rows", type=int, help="rows for the table sizes (100000; 5000)")
    parser.add_argument("--build-only", action="store_true", help="build (or find) and stop")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs, copies)")
    parser.add_argument("--json", type=Path, help="also write every figure here")
    args = parser.parse_args()
    defaults = (1, 0, 1, 5_000) if args.small else (5, 2, 3, 100_000)
    for name, value in zip(("duration", "warmup", "rounds", "size_rows"), defaults, strict=True):
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


def main() -> None:
    args = parse_args()
    if shutil.which("wrk") is None and not args.build_only:
        raise SystemExit("wrk is not installed (apt-get install -y wrk)")
    plan = Plan.of(1 / 50 if args.small else 1.0)
    t0 = time.perf_counter()
    source, meta = dataset(plan, args.seed, args.cache_dir, args.rebuild)
    counts = meta["counts"]
    print("  rows: " + ", ".join(f"{t} {n:,}" for t, n in counts.items()))
    h, lu = meta["heavy"], meta["light"]
    print(
        f"  {h['username']}: {h['cash_entries']:,} cash entries, {h['orders']:,} orders, "
        f"{h['positions']} positions, {h['asset_entries']:,} {h['asset']} ledger entries; "
        f"light {lu['username']}: {lu['cash_entries']} cash entries, {lu['orders']} orders, "
        f"{lu['asset_entries']} {lu['asset']} ledger entries; `orderproc reconcile` at build: "
        f"{meta['reconcile']}"
    )
    if args.build_only:
        return

    figures: dict[str, Any] = {}
    failures: list[str] = []
    workdir = Path(tempfile.mkdtemp(prefix="orderproc-dataset-run-"))
    postgres: Any = None
    if args.postgres:  # before pinning this script: the cluster keeps every CPU
        from run import start_postgres

        postgres = start_postgres()
    cpus = os.cpu_count() or 1
    pinned = cpus > 1 and shutil.which("taskset") is not None
    if pinned:
        os.sched_setaffinity(0, set(range(1, cpus)))  # wrk and this script: never CPU 0
    setup = Setup(args, workdir, ["taskset", "-c", "0"] if pinned else [])
    info = machine_info()
    print("Machine: " + ", ".join(f"{k} {v}" for k, v in info.items()))
    print(f"Load before: {uptime()}")
    print(f"Code: {code_info({**os.environ})}")
    where = f"pinned to CPU 0, wrk and this script to CPUs 1-{cpus - 1}" if pinned else "unpinned"
    print(
        f"Protocol: servers {where}; "
        f"wrk -t2 -c{args.concurrency} (or the workload's own); warm-up {args.warmup:g} s + "
        f"{args.duration:g} s per window; median of {args.rounds} window(s) per case and side; "
        "settings raised: " + " ".join(f"{k}={v}" for k, v in BENCH_SETTINGS.items())
    )
    try:
        big_dir, fresh_dir = workdir / "db-big", workdir / "db-fresh"
        big_dir.mkdir()
        started = time.perf_counter()
        shutil.copyfile(source, big_dir / "orderproc.db")
        print(f"Copied the dataset to {big_dir} in {time.perf_counter() - started:.1f} s")
        big = setup.serve("big", big_dir)
        fresh = setup.serve("fresh", fresh_dir)
        print(f"Servers: big {big.url}, fresh {fresh.url}; work dir {workdir}")

        # ---- users and cursors
        heavy_token = login(big.url, h["username"])
        light_token = login(big.url, lu["username"])
        for who, token, expected in (
            (h["username"], heavy_token, h["balance_cents"]),
            (lu["username"], light_token, lu["balance_cents"]),
        ):
            balance = get(big.url, f"{API}/balance", token)["current_balance"]
            if Decimal(balance) != Decimal(expected).scaleb(-2):
                raise SystemExit(f"{who}: the server reads balance {balance}, built {expected}")
        print("  the big server reads the dataset: heavy_1's and the light user's balances match")
        fresh_light = make_users(fresh.url, ["list_light"])[0][1]
        post(fresh.url, f"{API}/balance/deposit", fresh_light, {"amount": "10000.00"})
        for _ in range(lu["cash_entries"] - lu["orders"] - 1):
            post(fresh.url, f"{API}/balance/deposit", fresh_light, {"amount": "10.00"})
        for _ in range(lu["orders"]):
            post(
                fresh.url,
                ORDER_PATH,
                fresh_light,
                {"order_type": "market_buy", "asset_id": lu["asset"], "notional": "5.00"},
            )
        routes = {
            "cash ledger": (CASH_PATH, CASH_PATH),
            "orders": (ORDER_PATH, ORDER_PATH),
            "asset ledger": (asset_path(lu["asset"]), asset_path(h["asset"])),
        }
        depth = plan.depth
        cursors: dict[str, str] = {}
        started = time.perf_counter()
        for route, (_, heavy_path) in routes.items():
            cursors[route] = walk(big.url, heavy_token, heavy_path, depth)
        walked = time.perf_counter() - started
        print(
            f"  deep cursors: followed next_cursor to row {depth:,} on 3 lists in "
            f"{walked:.1f} s (pages of 250)"
        )

        files = {
            "heavy": tokens_file(workdir, "heavy", [heavy_token]),
            "light": tokens_file(workdir, "light", [light_token]),
            "fresh light": tokens_file(workdir, "fresh-light", [fresh_light]),
        }
        cases: list[Case] = []
        for route, (light_path, heavy_path) in routes.items():
            fresh_case = Case(
                route, "light first page (fresh db)", fresh, light_path, "fresh light"
            )
            light_case = Case(route, "light first page", big, light_path, "light")
            n = len(get(big.url, light_case.path, light_token)["data"])
            deep = f"heavy page at row {depth:,}"
            cases += [
                fresh_case,
                light_case,
                Case(route, "heavy first page", big, heavy_path, "heavy", timed=True),
                Case(route, deep, big, heavy_path, "heavy", cursors[route], timed=True),
                Case(
                    route,
                    f"heavy first page, limit {n}",
                    big,
                    heavy_path,
                    "heavy",
                    limit=n,
                    target=True,
                ),
                Case(
                    route,
                    f"{deep}, limit {n}",
                    big,
                    heavy_path,
                    "heavy",
                    cursors[route],
                    n,
                    target=True,
                ),
            ]
        tokens_of = {"heavy": heavy_token, "light": light_token, "fresh light": fresh_light}
        for case in cases:
            case.rows = len(get(case.server.url, case.path, tokens_of[case.who])["data"])

        # ---- 1. list pages: CPU per request
        print(
            f"\n1. List pages: server CPU µs per 2xx (median of {args.rounds}); /light: over the "
            "light first page on big; 'limit N': a heavy page of the light page's rows",
            flush=True,
        )
        for _ in range(args.rounds):
            for case in cases:
                workload = Workload(f"{case.route}: {case.name}", "GET", case.path, None)
                case.windows.append(setup.window(case.server, workload, files[case.who]))
        print(
            f"{'list':<13} {'case':<34} {'rows':>5} {'µs/req':>8} {'req/s':>7} "
            f"{'/light':>7}  target"
        )
        for route in routes:
            mine = [case for case in cases if case.route == route]
            light_cpu = median([w.cpu_us for w in mine[1].windows])
            for case in mine:
                cpu = median([w.cpu_us for w in case.windows])
                rps = median([w.rps for w in case.windows])
                bad = sum(sum(w.non_2xx.values()) + w.errors for w in case.windows)
                ratio = cpu / light_cpu
                target = ""
                if case.target:
                    target = f"<= 2  {verdict(ratio <= 2)}"
                    if ratio > 2:
                        failures.append(f"{route} {case.name}: {ratio:.2f}x the light page")
                figures[f"list {route}: {case.name}"] = {
                    "rows": case.rows,
                    "cpu_us": cpu,
                    "rps": rps,
                    "ratio_to_light": ratio,
                }
                print(
                    f"{route:<13} {case.name:<34} {case.rows:>5} {cpu:8.0f} {rps:7.0f} "
                    f"{ratio:7.2f}  {target}" + (f"  ({bad} non-2xx/errors)" if bad else "")
                )

        # ---- 2. event loop hold times
        setup.stop(big)
        stats_path = workdir / "loop-stats.json"
        timed = setup.serve("big-timed", big_dir, stats=stats_path)
        print(
            f"\n2. Event loop: every callback timed, on a second server ({timed.url}, same "
            "data, asyncio loop); one window per case",
            flush=True,
        )
        print(
            f"{'list':<13} {'case':<34} {'callbacks':>9} {'per 2xx':>7} {'p99 ms':>7} "
            f"{'p99.9 ms':>8} {'max ms':>7} {'cpu':>5} {'>5ms':>5} {'max req':>7} {'max bg':>6}  "
            "target <5 ms  slowest (wall ms, what, cpu ms, of it the collector's ms)"
        )
        timed_cases = [
            case
            for case in cases
            if case.server is big and (case.timed or case.name == "light first page")
        ]
        for case in timed_cases:  # waits for the start-up to end; first requests out of the way
            for _ in range(10):
                get(timed.url, case.path, tokens_of[case.who])
        for case in timed_cases:
            workload = Workload(f"{case.route}: {case.name}", "GET", case.path, None)
            common = {"concurrency": args.concurrency, "threads": 2, "tokens_file": files[case.who]}
            if args.warmup > 0:
                run_wrk(workload, timed.url, duration=args.warmup, **common)
            loop_stats(timed.process.pid, stats_path)  # starts the count afresh
            result = run_wrk(workload, timed.url, duration=args.duration, **common)
            stats = loop_stats(timed.process.pid, stats_path)
            ok = stats["p999_ms"] < 5 and stats["max_request_cpu_ms"] < 5
            if not ok:
                failures.append(
                    f"event loop {case.route} {case.name}: p99.9 {stats['p999_ms']:.2f} ms, "
                    f"max {stats['max_ms']:.2f} ms (a request's longest: "
                    f"{stats['max_request_cpu_ms']:.2f} ms of CPU)"
                )
            figures[f"loop {case.route}: {case.name}"] = stats
            slowest = " / ".join(
                f"{ms:.2f} ms {what} ({cpu:.2f}, gc {gc_ms:.2f})"
                for ms, what, cpu, gc_ms in stats["slowest"][:2]
            )
            print(
                f"{case.route:<13} {case.name:<34} {stats['callbacks']:>9} "
                f"{stats['callbacks'] / max(result.ok, 1):7.1f} {stats['p99_ms']:7.2f} "
                f"{stats['p999_ms']:8.2f} {stats['max_ms']:7.2f} "
                f"{stats['max_request_cpu_ms']:5.2f} {stats['over_5ms']:>5} "
                f"{stats['max_request_ms']:7.2f} {stats['max_other_ms']:6.2f}  "
                f"{verdict(ok):<12} {slowest}"
            )
            passes = stats["gc"]
            print(
                "  garbage collector: "
                + ", ".join(
                    f"gen {gen} {n['count']} passes, longest {n['max_ms']:.2f} ms"
                    for gen, n in sorted(passes.items())
                )
                + f"; a request's longest callback without its collections: "
                f"{stats['max_request_cpu_ms_without_gc']:.2f} ms of CPU"
            )
        print(
            f"  (the loop: {stats['loop']}; max req: the longest callback of a request's own "
            "(its ASGI task, its protocol, its transport), max bg: of anything else (price "
            "ticker, purge), 0 when none took over 1 ms; the target applies to every callback)"
        )
        setup.stop(timed)

        # ---- 3. deposits and market buys, big against fresh
        big = setup.serve("big", big_dir)
        big_users = login_all(big.url, meta["money_users"])
        fresh_users = make_users(fresh.url, [f"bench_user_{i:03d}" for i in range(MONEY_USERS)])
        platforms = {
            "fresh": Platform(
                "fresh",
                fresh,
                {},
                fresh_dir,
                users=fresh_users,
                tokens_file=tokens_file(workdir, "fresh", [t for _, t in fresh_users]),
            ),
            "big": Platform(
                "big",
                big,
                {},
                big_dir,
                users=big_users,
                tokens_file=tokens_file(workdir, "big", [t for _, t in big_users]),
            ),
        }
        for platform in platforms.values():  # cash for the market buys
            fund_users(platform)
        print(
            f"\n3. Deposits and market buys: server CPU µs per 2xx, fresh against big "
            f"(median of {args.rounds}; {MONEY_USERS} users each)",
            flush=True,
        )
        print(
            f"{'workload':<16} {'fresh µs':>9} {'big µs':>8} {'fresh/big':>9} "
            f"{'fresh r/s':>9} {'big r/s':>8}  target >= 0.9"
        )
        chosen = [w for w in WORKLOADS if w.name in ("deposit", "market_buy_c32")]
        money: dict[str, dict[str, list[Window]]] = {}
        for workload in chosen:
            sides: dict[str, list[Window]] = {"fresh": [], "big": []}
            for _ in range(args.rounds):
                for name, platform in platforms.items():
                    assert platform.tokens_file is not None
                    sides[name].append(
                        setup.window(platform.server, workload, platform.tokens_file)
                    )
            money[workload.name] = sides
            f_cpu, b_cpu = (median([w.cpu_us for w in sides[s]]) for s in ("fresh", "big"))
            f_rps, b_rps = (median([w.rps for w in sides[s]]) for s in ("fresh", "big"))
            bad = sum(sum(w.non_2xx.values()) + w.errors for s in sides.values() for w in s)
            ratio = f_cpu / b_cpu
            if ratio < 0.9:
                failures.append(f"{workload.name}: fresh/big CPU {ratio:.3f} < 0.9")
            figures[f"money {workload.name}"] = {
                "fresh_cpu_us": f_cpu,
                "big_cpu_us": b_cpu,
                "ratio": ratio,
                "fresh_rps": f_rps,
                "big_rps": b_rps,
            }
            print(
                f"{workload.name:<16} {f_cpu:9.0f} {b_cpu:8.0f} {ratio:9.3f} {f_rps:9.0f} "
                f"{b_rps:8.0f}  {verdict(ratio >= 0.9)}"
                + (f"  ({bad} non-2xx/errors)" if bad else "")
            )

        # ---- 4. table sizes
        print(
            f"\n4. Table sizes: {args.size_rows:,} rows each through the store's write path "
            "(bench/table_sizes.py), after VACUUM",
            flush=True,
        )
        sizes = table_sizes(args.size_rows)
        for table, got in sizes.items():
            per_row = (got["table"] + got["indexes"]) / max(got["rows"], 1)
            figures[f"size {table}"] = {"bytes_per_row": per_row, **got}
            print(
                f"  {table:<15} {got['rows']:>8,} rows: table {got['table']:,} B + indexes "
                f"{got['indexes']:,} B = {per_row:.1f} B/row = {per_row:.0f} MB per "
                "million rows"
            )

        # ---- 5. PostgreSQL
        if postgres is not None:
            print("\n5. PostgreSQL", flush=True)
            started = time.perf_counter()
            loaded = asyncio.run(load_postgres(postgres.dsn("postgres"), source))
            print(
                f"  loaded by COPY in {time.perf_counter() - started:.1f} s: "
                + ", ".join(f"{t} {n:,}" for t, n in loaded.items())
            )
            pg = setup.serve(
                "pg", workdir / "db-pg", {"ORDERPROC_DATABASE_URL": postgres.dsn("postgres")}
            )
            pg_users = login_all(pg.url, meta["money_users"])
            pg_platform = Platform(
                "pg",
                pg,
                {},
                workdir / "db-pg",
                users=pg_users,
                tokens_file=tokens_file(workdir, "pg", [t for _, t in pg_users]),
            )
            fund_users(pg_platform)
            buy = next(w for w in WORKLOADS if w.name == "market_buy_c32")
            sides = {"sqlite": [], "postgres": []}
            for _ in range(args.rounds):
                for name, platform in (("sqlite", platforms["big"]), ("postgres", pg_platform)):
                    assert platform.tokens_file is not None
                    pids = postgres_pids(postgres) if name == "postgres" else []
                    sides[name].append(
                        setup.window(platform.server, buy, platform.tokens_file, pids)
                    )
            s_rps, p_rps = (
                median([w.rps for w in sides["sqlite"]]),
                median([w.rps for w in sides["postgres"]]),
            )
            s_cpu, p_cpu = (
                median([w.cpu_us for w in sides["sqlite"]]),
                median([w.cpu_us for w in sides["postgres"]]),
            )
            p_db = median([w.extra_cpu_us for w in sides["postgres"]])
            ratio = p_rps / s_rps
            if ratio < 0.6:
                failures.append(f"market buys on PostgreSQL: {ratio:.3f} of SQLite's < 0.6")
            figures["pg market_buy_c32"] = {
                "sqlite_rps": s_rps,
                "postgres_rps": p_rps,
                "ratio": ratio,
                "sqlite_cpu_us": s_cpu,
                "postgres_server_cpu_us": p_cpu,
                "postgres_db_cpu_us": p_db,
            }
            bad = sum(sum(w.non_2xx.values()) + w.errors for s in sides.values() for w in s)
            print(
                f"  market_buy_c32 on the big data (median of {args.rounds}): SQLite "
                f"{s_rps:.0f} req/s ({s_cpu:.0f} µs server CPU per 2xx), PostgreSQL "
                f"{p_rps:.0f} req/s ({p_cpu:.0f} µs server + {p_db:.0f} µs PostgreSQL CPU per "
                f"2xx); PostgreSQL/SQLite {ratio:.3f}  target >= 0.6 {verdict(ratio >= 0.6)}"
                + (f"  ({bad} non-2xx/errors)" if bad else "")
            )
            setup.stop(pg)

            counter = WireCounter(postgres.host, postgres.port).start()
            quiet = {
                "ORDERPROC_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{counter.port}/postgres",
                "ORDERPROC_PRICE_TICK_SECONDS": "600",
                "ORDERPROC_PRICE_STALE_SECONDS": "3600",
                "ORDERPROC_PURGE_INTERVAL_SECONDS": "0",
                "ORDERPROC_CANDLE_BACKFILL": "false",  # its writes are not a request's
            }
            counted = setup.serve("pg-counted", workdir / "db-pg-counted", quiet)
            users = login_all(counted.url, meta["money_users"][:10])
            bodies = {
                "deposit": (f"{API}/balance/deposit", {"amount": "1.00"}),
                "market buy": (
                    ORDER_PATH,
                    {"order_type": "market_buy", "asset_id": "BTC", "notional": "1.00"},
                ),
            }
            for path, body in bodies.values():  # warm: pool connections, statement caches
                for _, token in users * 2:
                    post(counted.url, path, token, body)
            before = counter.snapshot()
            time.sleep(3)
            idle = counter.snapshot()
            idle_rt = idle["server Z"] - before["server Z"]
            print(
                f"  on the wire (server with ticker every 600 s, purge off; idle 3 s: "
                f"{idle_rt} round trips); {args.count_requests} sequential requests each:"
            )
            n = args.count_requests
            for what, (path, body) in bodies.items():
                before = counter.snapshot()
                for i in range(n - 1):
                    post(counted.url, path, users[i % len(users)][1], body)
                with counter.lock:
                    counter.trace = []
                post(counted.url, path, users[0][1], body)
                with counter.lock:
                    trace, counter.trace = counter.trace or [], None
                got = per_request(before, counter.snapshot(), n)
                figures[f"pg wire {what}"] = got
                print(
                    f"  {what:<11} per request: {got['round_trips']:.2f} round trips, "
                    f"{got['statements']:.2f} statements ({got['simple_queries']:.2f} simple, "
                    f"{got['executes']:.2f} extended), {got['parses']:.2f} parses"
                )
                print(f"    the last {what}, in order:")
                for line in trace:
                    print(f"      {line}")
            setup.stop(counted)
            counter.stop()
    finally:
        for server in list(setup.started):
            setup.stop(server)
        if postgres is not None:
            postgres.close()
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    print(f"\nLoad after: {uptime()}; whole run {time.perf_counter() - t0:.0f} s")
    if args.json:
        args.json.write_text(json.dumps({"dataset": meta, "figures": figures}, indent=2))
    for failure in failures:
        print(f"  MISSED: {failure}")
    if failures:
        raise SystemExit(1)


if __name__ == "__main__":
    if len(sys.argv) > 3 and sys.argv[1] == CHILD:
        rest = sys.argv[3:]
        serve_instrumented(Path(sys.argv[2]), rest[1:] if rest[:1] == ["--"] else rest)
    else:
        main()
