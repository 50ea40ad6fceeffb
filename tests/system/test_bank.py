"""The bank test: 20 users, 2,000 random deposits, withdrawals, buys and sells in parallel
against a real server with a fee, slippage and moving prices; retries reuse idempotency keys,
some requests are sent twice on purpose, some are abandoned by the client mid-flight and
retried, and a connection the transport drops is retried as a real client does
(`post_until_settled`). Every acknowledged operation must be there exactly once and every
number must add up."""

from __future__ import annotations

import asyncio
import contextlib
import random
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.system.harness import (
    ServerProcess,
    deposit,
    ledger,
    post_until_settled,
    register_and_login,
)

pytestmark = [pytest.mark.system, pytest.mark.slow]

USERS = 20
OPERATIONS = 2000
ASSETS = ("BTC", "ETH", "SOL", "DOGE", "USDT")
CASH_KINDS = ("deposit", "withdraw")
ORDER_KINDS = ("order_payment", "order_sale")  # one per filled order; its reference is the order


@dataclass
class Book:
    """What the client saw acknowledged, per user."""

    cash: Decimal = Decimal(0)
    units: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    receipts: dict[str, str] = field(default_factory=dict)  # Idempotency-Key -> transaction id
    order_ids: set[str] = field(default_factory=set)


def random_operation(rng: random.Random) -> tuple[str, dict[str, str]]:
    roll = rng.random()
    if roll < 0.25:
        return "/api/v1/balance/deposit", {
            "amount": f"{rng.randint(50, 900)}.{rng.randint(0, 99):02d}"
        }
    if roll < 0.40:
        return "/api/v1/balance/withdraw", {
            "amount": f"{rng.randint(1, 300)}.{rng.randint(0, 99):02d}"
        }
    asset = rng.choice(ASSETS)
    if roll < 0.75:
        if rng.random() < 0.5:
            return "/api/v1/orders", {
                "order_type": "market_buy",
                "asset_id": asset,
                "notional": f"{rng.randint(2, 400)}.{rng.randint(0, 99):02d}",
            }
        qty = {"BTC": "0.001", "ETH": "0.02", "SOL": "0.5", "DOGE": "100", "USDT": "25"}[asset]
        return "/api/v1/orders", {"order_type": "market_buy", "asset_id": asset, "quantity": qty}
    qty = {"BTC": "0.0007", "ETH": "0.013", "SOL": "0.3", "DOGE": "70", "USDT": "13"}[asset]
    return "/api/v1/orders", {"order_type": "market_sell", "asset_id": asset, "quantity": qty}


def record(book: Book, path: str, key: str, answer: dict[str, Any]) -> None:
    if path.endswith("deposit"):
        book.cash += Decimal(answer["amount"])
        book.receipts[key] = answer["transaction_id"]
    elif path.endswith("withdraw"):
        book.cash -= Decimal(answer["amount"])
        book.receipts[key] = answer["transaction_id"]
    else:
        order = answer["data"]
        total, fee, qty = (Decimal(order[k]) for k in ("total_amount", "fee", "quantity"))
        if order["order_type"] == "market_buy":
            book.cash -= total + fee
            book.units[order["asset_id"]] += qty
        else:
            book.cash += total - fee
            book.units[order["asset_id"]] -= qty
        book.order_ids.add(order["order_id"])


@dataclass
class Tally:
    acknowledged: int = 0
    abandoned: int = 0  # the client gave up on a first attempt, then retried with its key


async def run_bank(url: str, auths: list[dict[str, str]], seed: int) -> tuple[list[Book], Tally]:
    rng = random.Random(seed)
    books = [Book() for _ in auths]
    tally = Tally()
    gate = asyncio.Semaphore(32)

    # A client (and its connection pool) per user, as each user's own app would have. With one
    # pool of 40 for everyone, httpcore's bookkeeping (it scans every connection for every
    # queued request) made the client the test's bottleneck: 12.4 s on SQLite, now 8.6 s.
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                httpx.AsyncClient(base_url=url, timeout=30, limits=httpx.Limits(max_connections=4))
            )
            for _ in auths
        ]

        async def send(
            user: int,
            path: str,
            headers: dict[str, str],
            body: dict[str, str],
            give_up: float | None = None,
        ) -> httpx.Response:
            async with gate:
                delivery = await post_until_settled(
                    clients[user], path, headers=headers, json=body, first_timeout=give_up
                )
            if give_up is not None and delivery.dropped:
                tally.abandoned += 1
            return delivery.response

        async def operate(n: int) -> None:
            user = n % len(auths)
            path, body = random_operation(rng)
            key = f"op-{n}"
            headers = {**auths[user], "Idempotency-Key": key}
            style = rng.random()
            if style < 0.10:  # the client gives up mid-flight, then retries with the same key
                answers = [await send(user, path, headers, body, give_up=0.001)]
            elif style < 0.25:  # a deliberate duplicate, sent at the same time
                answers = list(
                    await asyncio.gather(
                        send(user, path, headers, body), send(user, path, headers, body)
                    )
                )
            else:
                answers = [await send(user, path, headers, body)]
            for answer in answers:
                assert answer.status_code in (201, 409, 422), answer.text
            bodies = {a.text for a in answers if a.status_code == 201}
            assert len(bodies) <= 1, "duplicates of one key must answer the same"
            if bodies:
                answer = next(a for a in answers if a.status_code == 201).json()
                tally.acknowledged += 1
                record(books[user], path, key, answer)

        await asyncio.gather(*(operate(n) for n in range(OPERATIONS)))
    return books, tally


def test_two_thousand_operations_add_up_exactly(tmp_path: Path, store_env: dict[str, str]) -> None:
    data = tmp_path / "bank"
    server = ServerProcess(
        data,
        **store_env,
        ORDERPROC_TAKER_FEE_BPS="25",
        ORDERPROC_ORDER_SLIPPAGE_BPS="10",
        ORDERPROC_PRICE_TICK_SECONDS="0.2",
        ORDERPROC_PRICE_STALE_SECONDS="30",
    ).start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            auths = [register_and_login(client, f"banker{i}") for i in range(USERS)]
            # everyone starts with something to trade
            seeds = [deposit(client, auth, "1000", key="seed") for auth in auths]
        books, tally = asyncio.run(run_bank(server.url, auths, seed=11))
        assert tally.acknowledged > OPERATIONS // 2
        assert tally.abandoned > 0, "some first attempts should have been given up"
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for auth, book, seeded in zip(auths, books, seeds, strict=True):
                book.cash += Decimal(1000)
                book.receipts["seed"] = seeded["transaction_id"]
                check_account(client, auth, book)
    finally:
        server.stop()
    reconcile = subprocess.run(
        [sys.executable, "-m", "orderproc.cli", "reconcile", "--data-dir", str(data)],
        capture_output=True,
        text=True,
        env=server.env,
        check=False,
    )
    assert reconcile.returncode == 0, reconcile.stdout + reconcile.stderr
    assert f"checked {USERS} accounts" in reconcile.stdout


def check_account(client: httpx.Client, auth: dict[str, str], book: Book) -> None:
    balance = client.get("/api/v1/balance", headers=auth).json()
    assert Decimal(balance["current_balance"]) == book.cash
    entries = ledger(client, auth)
    assert Decimal(balance["current_balance"]) == sum(
        (Decimal(e["amount"]) for e in entries), Decimal(0)
    )
    # Each acknowledged cash operation is in the ledger exactly once, under its key, as the
    # receipt the client got (first answer or replay); nothing the client was not told of.
    by_key: dict[str, list[str]] = defaultdict(list)
    for e in entries:
        if e["transaction_type"] in CASH_KINDS:
            by_key[e["reference_id"]].append(e["transaction_id"])
    assert by_key == {key: [tid] for key, tid in book.receipts.items()}
    # Each order moved cash once.
    principal = [e["reference_id"] for e in entries if e["transaction_type"] in ORDER_KINDS]
    assert sorted(principal) == sorted(book.order_ids)
    orders = []
    params: dict[str, Any] = {"limit": 250}
    while True:
        page = client.get("/api/v1/orders", headers=auth, params=params).json()
        orders += page["data"]
        if not page["has_more"]:
            break
        params["cursor"] = page["next_cursor"]
    assert {o["order_id"] for o in orders} == book.order_ids
    assert len(orders) == len(book.order_ids)
    folio = client.get("/api/v1/portfolio", headers=auth).json()
    held = {a["asset_id"]: Decimal(a["quantity"]) for a in folio["assets"]}
    for asset in ASSETS:
        assert held.get(asset, Decimal(0)) == book.units.get(asset, Decimal(0))
        assert held.get(asset, Decimal(0)) >= 0
