"""Money under fire, through real server processes over loopback: parallel movements, the lock
bypassed across processes, and `kill -9` in the middle of a burst. Afterwards every balance
equals its ledger, nothing is negative, and every acknowledged operation is there once."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from tests.support.redis_server import RedisServer
from tests.system.harness import (
    ServerProcess,
    deposit,
    ledger,
    post_until_settled,
    post_until_settled_sync,
    register_and_login,
)

pytestmark = pytest.mark.system


@pytest.fixture
def server(tmp_path: Path, store_env: dict[str, str]) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path / "data", **store_env).start()
    yield process
    process.stop()


def assert_balance_is_its_ledger(client: httpx.Client, auth: dict[str, str]) -> Decimal:
    balance = Decimal(client.get("/api/v1/balance", headers=auth).json()["current_balance"])
    entries = ledger(client, auth)
    assert balance == sum((Decimal(e["amount"]) for e in entries), Decimal(0))
    assert balance >= 0
    assert all(Decimal(e["balance_after"]) >= 0 for e in entries)
    return balance


async def post_all(
    url: str,
    requests: list[tuple[str, dict[str, str], dict[str, str]]],
    concurrency: int,
    *,
    retry: bool = True,
    on_answer: Callable[[httpx.Response], None] | None = None,
) -> list[httpx.Response | Exception]:
    """Every request, `concurrency` at a time; each retried on a dropped connection with its
    Idempotency-Key (`post_until_settled`), unless `retry` is off (the server is to die).
    `on_answer` is told of each answer as it comes."""
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        gate = asyncio.Semaphore(concurrency)

        async def one(path: str, headers: dict[str, str], body: dict[str, str]) -> httpx.Response:
            async with gate:
                if not retry:
                    answer = await client.post(path, headers=headers, json=body)
                else:
                    delivery = await post_until_settled(client, path, headers=headers, json=body)
                    answer = delivery.response
                if on_answer is not None:
                    on_answer(answer)
                return answer

        return await asyncio.gather(*(one(*r) for r in requests), return_exceptions=True)


async def withdraw_from_each(
    servers: list[ServerProcess], auth: dict[str, str]
) -> list[httpx.Response | Exception]:
    """30 withdrawals of 10.00 through every server at once, 10 at a time per server."""
    batches = [
        post_all(
            s.url,
            [
                (
                    "/api/v1/balance/withdraw",
                    {**auth, "Idempotency-Key": f"w{i}-{n}"},
                    {"amount": "10"},
                )
                for n in range(30)
            ],
            10,
        )
        for i, s in enumerate(servers)
    ]
    return list(itertools.chain(*await asyncio.gather(*batches)))


class TestParallelMovements:
    def test_parallel_deposits_and_withdrawals_on_one_account_add_up(
        self, server: ServerProcess
    ) -> None:
        with httpx.Client(base_url=server.url) as client:
            auth = register_and_login(client, "racer")
            deposit(client, auth, "100", key="start")
            rng = random.Random(7)
            requests = [
                (
                    f"/api/v1/balance/{rng.choice(['deposit', 'withdraw'])}",
                    {**auth, "Idempotency-Key": f"move-{n}"},
                    {"amount": str(rng.randint(1, 60))},
                )
                for n in range(200)
            ]
            answers = asyncio.run(post_all(server.url, requests, concurrency=32))
            expected = Decimal(100)
            for (path, _, body), answer in zip(requests, answers, strict=True):
                assert isinstance(answer, httpx.Response)
                assert answer.status_code in (201, 422), answer.text
                if answer.status_code == 201:
                    sign = 1 if path.endswith("deposit") else -1
                    expected += sign * Decimal(body["amount"])
                else:
                    assert answer.json()["code"] == "INSUFFICIENT_FUNDS"
            assert assert_balance_is_its_ledger(client, auth) == expected


class TestLockBypassed:
    def test_three_processes_without_a_shared_lock_cannot_overdraw(
        self, tmp_path: Path, store_env: dict[str, str]
    ) -> None:
        """Each process has only its own in-process lock, so across processes the lock is
        bypassed; the store's conditional write alone must refuse every overdraft."""
        data = tmp_path / "shared"
        servers = [ServerProcess(data, **store_env).start()]
        servers += [ServerProcess(data, **store_env).start() for _ in range(2)]
        try:
            with httpx.Client(base_url=servers[0].url) as client:
                auth = register_and_login(client, "target")
                deposit(client, auth, "200", key="start")

            answers = asyncio.run(withdraw_from_each(servers, auth))
            statuses = [a.status_code for a in answers if isinstance(a, httpx.Response)]
            assert len(statuses) == 90
            assert set(statuses) <= {201, 409, 422}
            with httpx.Client(base_url=servers[0].url) as client:
                left = assert_balance_is_its_ledger(client, auth)
            assert left == 200 - 10 * statuses.count(201)
            assert statuses.count(201) >= 18, "contention may cost a 409, never an overdraft"
        finally:
            for s in servers:
                s.stop()

    def test_three_processes_without_a_shared_lock_cannot_oversell(
        self, tmp_path: Path, store_env: dict[str, str]
    ) -> None:
        data = tmp_path / "shared"
        servers = [ServerProcess(data, **store_env).start()]
        servers += [ServerProcess(data, **store_env).start() for _ in range(2)]
        try:
            with httpx.Client(base_url=servers[0].url) as client:
                auth = register_and_login(client, "seller")
                deposit(client, auth, "5000", key="start")
                bought = post_until_settled_sync(
                    client,
                    "/api/v1/orders",
                    headers={**auth, "Idempotency-Key": "buy"},
                    json={"order_type": "market_buy", "asset_id": "ETH", "quantity": "0.2"},
                ).response
                assert bought.status_code == 201, bought.text
            sell = {"order_type": "market_sell", "asset_id": "ETH", "quantity": "0.01"}

            async def fire() -> list[httpx.Response | Exception]:
                batches = [
                    post_all(
                        s.url,
                        [
                            ("/api/v1/orders", {**auth, "Idempotency-Key": f"s{i}-{n}"}, sell)
                            for n in range(15)
                        ],
                        concurrency=8,
                    )
                    for i, s in enumerate(servers)
                ]
                return list(itertools.chain(*await asyncio.gather(*batches)))

            answers = [a for a in asyncio.run(fire()) if isinstance(a, httpx.Response)]
            assert len(answers) == 45
            assert {a.status_code for a in answers} <= {201, 409, 422}
            sold = sum(1 for a in answers if a.status_code == 201)
            refused = [a.json()["code"] for a in answers if a.status_code == 422]
            assert set(refused) <= {"INSUFFICIENT_HOLDINGS"}
            with httpx.Client(base_url=servers[0].url) as client:
                answer = client.get("/api/v1/balance/asset/ETH", headers=auth)
                held = Decimal(answer.json()["quantity"]) if answer.status_code == 200 else 0
                assert answer.status_code in (200, 404)  # 404: sold out, which is allowed
                assert held == Decimal("0.2") - sold * Decimal("0.01")
                assert held >= 0
                assert sold >= 18, "contention may cost a 409, never an oversell"
                assert_balance_is_its_ledger(client, auth)
        finally:
            for s in servers:
                s.stop()


class TestSharedRedisLock:
    def test_three_processes_sharing_a_redis_lock_serve_every_covered_withdrawal(
        self, tmp_path: Path, redis_server: RedisServer, store_env: dict[str, str]
    ) -> None:
        """With the lock shared through Redis, the processes take turns: every withdrawal the
        balance covers succeeds, none is lost to a conflict, none overdraws."""
        data = tmp_path / "shared"
        servers = [
            ServerProcess(data, ORDERPROC_REDIS_URL=redis_server.url, **store_env).start()
            for _ in range(3)
        ]
        try:
            with httpx.Client(base_url=servers[0].url) as client:
                auth = register_and_login(client, "sharer")
                deposit(client, auth, "200", key="start")
                assert client.get("/ready").json() == {"status": "ready"}

            answers = asyncio.run(withdraw_from_each(servers, auth))
            statuses = [a.status_code for a in answers if isinstance(a, httpx.Response)]
            assert sorted(set(statuses)) == [201, 422]
            assert statuses.count(201) == 20
            with httpx.Client(base_url=servers[0].url) as client:
                assert assert_balance_is_its_ledger(client, auth) == 0
        finally:
            for s in servers:
                s.stop()


class TestKillNine:
    def test_every_acknowledged_deposit_survives_a_kill_9_exactly_once(
        self, tmp_path: Path, store_env: dict[str, str]
    ) -> None:
        server = ServerProcess(tmp_path / "data", **store_env).start()
        with httpx.Client(base_url=server.url) as client:
            users = [register_and_login(client, f"user{i}") for i in range(5)]
        requests = [
            (
                "/api/v1/balance/deposit",
                {**users[i % 5], "Idempotency-Key": f"burst-{i}"},
                {"amount": f"{1 + i % 9}.{i % 100:02d}"},
            )
            for i in range(600)
        ]

        async def burst_then_kill() -> list[httpx.Response | Exception]:
            # No retries: the requests the kill cuts off are the point. The kill lands once 20
            # deposits are acknowledged, not after a fixed time: a box busy with the rest of
            # the suite once acknowledged none within 0.6 s.
            acknowledged = 0
            enough = asyncio.Event()

            def counted(answer: httpx.Response) -> None:
                nonlocal acknowledged
                acknowledged += answer.status_code == 201
                if acknowledged == 20:
                    enough.set()

            task = asyncio.create_task(
                post_all(server.url, requests, concurrency=24, retry=False, on_answer=counted)
            )
            await asyncio.wait_for(enough.wait(), timeout=60)
            server.kill_hard()
            return await task

        answers = asyncio.run(burst_then_kill())
        acknowledged = {
            r[1]["Idempotency-Key"]: a.json()
            for r, a in zip(requests, answers, strict=True)
            if isinstance(a, httpx.Response) and a.status_code == 201
        }
        assert 0 < len(acknowledged) < len(requests), "the kill should land mid-burst"

        restarted = ServerProcess(tmp_path / "data", **store_env).start()
        try:
            with httpx.Client(base_url=restarted.url) as client:
                for auth in users:
                    entries = ledger(client, auth)
                    ids = [e["transaction_id"] for e in entries]
                    assert len(ids) == len(set(ids))
                    by_key = {e["reference_id"]: e for e in entries}
                    assert len(by_key) == len(entries), "one ledger entry per key"
                    assert_balance_is_its_ledger(client, auth)
                    for key, receipt in acknowledged.items():
                        if receipt["transaction_id"] in ids:
                            assert by_key[key]["transaction_id"] == receipt["transaction_id"]
                found = {e["transaction_id"] for auth in users for e in ledger(client, auth)}
                assert {r["transaction_id"] for r in acknowledged.values()} <= found
                # Retrying everything with the same keys replays what landed, adds the rest once.
                again = asyncio.run(post_all(restarted.url, requests, concurrency=24))
                assert all(isinstance(a, httpx.Response) and a.status_code == 201 for a in again)
                for r, a in zip(requests, again, strict=True):
                    key = r[1]["Idempotency-Key"]
                    if key in acknowledged:
                        assert isinstance(a, httpx.Response)
                        assert a.json() == acknowledged[key]
                total = sum(
                    (assert_balance_is_its_ledger(client, auth) for auth in users), Decimal(0)
                )
                assert total == sum((Decimal(r[2]["amount"]) for r in requests), Decimal(0))
        finally:
            restarted.stop()
