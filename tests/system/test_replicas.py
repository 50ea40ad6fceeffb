"""Replicas: two users and two orders processes (and one inventory) behind one gateway, over one
PostgreSQL and one Redis, as `docs/deploy.md` runs them. The bank's guarantees hold across them:
daily limits are counted once for both users replicas, and an orders replica killed with
`kill -9` in the middle of a burst loses nothing acknowledged and doubles nothing; the gateway
takes the surviving replica, and retries with the same keys settle every order exactly once."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from orderproc.deploy.nginx import render_nginx
from orderproc.gateway.routes import Service
from tests.support.nginx import Nginx, nginx_binary
from tests.support.postgres_fixtures import _empty_tables, run_async
from tests.support.redis_server import RedisServer, free_loopback_port
from tests.system.harness import (
    PASSWORD,
    ServerProcess,
    deposit,
    every_page,
    ledger,
    register_and_login,
)
from tests.system.test_money_under_fire import assert_balance_is_its_ledger, post_all
from tests.ui.test_forms_http import hidden_fields

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server"),
]

DAILY_DEPOSIT_LIMIT = 5000


class Platform:
    def __init__(self, root: Path, env: dict[str, str]) -> None:
        def service(name: str, n: int = 0, **more: Any) -> ServerProcess:
            return ServerProcess(root / f"{name}{n}", service=name, **env, **more)

        gateway_port = free_loopback_port()  # the web UI must know it before it starts
        self.users = [service("users", 0), service("users", 1)]
        self.orders = [service("orders", 0), service("orders", 1)]
        self.inventory = [service("inventory", 0), service("inventory", 1)]
        # Ready once the gateway answers it: started when alive.
        api_url = f"http://127.0.0.1:{gateway_port}"
        self.webui = service("webui", probe="/health", ORDERPROC_API_URL=api_url)
        self.services = [*self.users, *self.orders, *self.inventory, self.webui]
        self.gateways: list[ServerProcess] = []
        try:
            self._start(gateway_port, service)
        except BaseException:
            self.stop()  # nothing left running behind a failed start
            raise

    def _start(self, gateway_port: int, service: Callable[..., ServerProcess]) -> None:
        for process in self.services:
            process.launch()
        for process in self.services:
            process.wait_ready(60)
        upstreams = json.dumps(
            {
                "users": ",".join(p.url for p in self.users),
                "orders": ",".join(p.url for p in self.orders),
                "inventory": ",".join(p.url for p in self.inventory),
                "webui": self.webui.url,
            }
        )
        self.gateways = [
            service("gateway", n, port=port, ORDERPROC_GATEWAY_UPSTREAMS=upstreams)
            for n, port in enumerate((gateway_port, 0))
        ]
        for gateway in self.gateways:
            gateway.launch()
        for gateway in self.gateways:
            gateway.wait_ready(60)
        self.gateway = self.gateways[0]

    def stop(self) -> None:
        for process in [*self.gateways, *self.services]:
            process.stop()


@pytest.fixture(scope="module")
def module_redis() -> Iterator[RedisServer]:
    """A redis-server of the module's own: the last test stops and starts it."""
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="module")
def platform(
    tmp_path_factory: pytest.TempPathFactory,
    _shared_postgres_database: str,
    module_redis: RedisServer,
) -> Iterator[Platform]:
    """One platform for the module's tests (starting eight processes is the slow part); each
    test has users of its own."""
    dsn = _shared_postgres_database
    run_async(lambda: _empty_tables(dsn))
    env = {
        "ORDERPROC_DATABASE_URL": dsn,
        "ORDERPROC_REDIS_URL": module_redis.url,
        "ORDERPROC_REDIS_TIMEOUT_SECONDS": "0.5",
        "ORDERPROC_REDIS_BREAKER_COOL_DOWN_SECONDS": "0.5",
        "ORDERPROC_DEPOSIT_DAILY_LIMIT": str(DAILY_DEPOSIT_LIMIT),
        "ORDERPROC_PRICE_TICK_SECONDS": "0.5",
        "ORDERPROC_PRICE_STALE_SECONDS": "5",
        "ORDERPROC_FEED_LEASE_SECONDS": "1.5",
        "ORDERPROC_LOGIN_BLOCK_ENABLED": "true",  # only one test fails logins, for one name
    }
    started = Platform(tmp_path_factory.mktemp("replicas"), env)
    yield started
    started.stop()


def test_the_gateway_spreads_requests_and_its_ready_lists_each_replica(platform: Platform) -> None:
    with httpx.Client(base_url=platform.gateway.url) as client:
        ready = client.get("/ready").json()
        for name, replicas in (("users", platform.users), ("orders", platform.orders)):
            listed = ready["services"][name]["replicas"]
            assert set(listed) == {p.url for p in replicas}
            assert all(r["status"] == "ready" for r in listed.values())


def test_a_daily_limit_is_counted_once_across_two_users_replicas(platform: Platform) -> None:
    with httpx.Client(base_url=platform.gateway.url) as client:
        auth = register_and_login(client, "limited")  # the only test with this user
    requests = [
        ("/api/v1/balance/deposit", {**auth, "Idempotency-Key": f"d{i}"}, {"amount": "400"})
        for i in range(20)  # 8,000 asked; the limit is 5,000
    ]
    answers = asyncio.run(post_all(platform.gateway.url, requests, concurrency=8))
    codes = [a.status_code for a in answers if isinstance(a, httpx.Response)]
    assert len(codes) == len(requests)
    assert codes.count(201) == DAILY_DEPOSIT_LIMIT // 400
    assert set(codes) == {201, 422}
    with httpx.Client(base_url=platform.gateway.url) as client:
        assert assert_balance_is_its_ledger(client, auth) == Decimal(12 * 400)


def test_an_orders_replica_killed_mid_burst_loses_and_doubles_nothing(platform: Platform) -> None:
    gateway = platform.gateway.url
    with httpx.Client(base_url=gateway) as client:
        users = [register_and_login(client, f"trader{i}") for i in range(4)]
        for n, auth in enumerate(users):
            deposit(client, auth, "4000", key=f"fund-{n}")
    requests = [
        (
            "/api/v1/orders",
            {**users[i % 4], "Idempotency-Key": f"order-{i}"},
            {
                "order_type": "market_buy",
                "asset_id": ("BTC", "ETH", "SOL")[i % 3],
                "notional": "10",
                "client_order_id": f"burst-{i}",
            },
        )
        for i in range(240)
    ]

    async def burst_then_kill() -> list[httpx.Response | Exception]:
        """The burst, 16 at a time without retries; replica 0 is killed when the 40th order
        is acknowledged, with the requests it holds then cut off (the point of the test)."""
        gate, acknowledged = asyncio.Semaphore(16), 0
        limits = httpx.Limits(max_connections=16)

        async def one(client: httpx.AsyncClient, request: Any) -> httpx.Response:
            nonlocal acknowledged
            path, headers, body = request
            async with gate:
                answer = await client.post(path, headers=headers, json=body)
            if answer.status_code == 201:
                acknowledged += 1
                if acknowledged == 40:
                    await asyncio.to_thread(platform.orders[0].kill_hard)
            return answer

        async with httpx.AsyncClient(base_url=gateway, limits=limits, timeout=30) as client:
            return await asyncio.gather(*(one(client, r) for r in requests), return_exceptions=True)

    answers = asyncio.run(burst_then_kill())
    acknowledged = {
        r[2]["client_order_id"]: a.json()["data"]
        for r, a in zip(requests, answers, strict=True)
        if isinstance(a, httpx.Response) and a.status_code == 201
    }
    assert platform.orders[0].process is not None
    assert platform.orders[0].process.poll() is not None, "replica 0 was killed mid-burst"
    assert len(acknowledged) >= 40

    # Everything again with the same keys, through the gateway: the dead replica is skipped.
    again = asyncio.run(post_all(gateway, requests, concurrency=16))
    assert all(isinstance(a, httpx.Response) and a.status_code == 201 for a in again), [
        a.status_code if isinstance(a, httpx.Response) else repr(a) for a in again
    ]
    for r, a in zip(requests, again, strict=True):
        assert isinstance(a, httpx.Response)
        first = acknowledged.get(r[2]["client_order_id"])
        if first is not None:
            assert a.json()["data"]["order_id"] == first["order_id"]

    with httpx.Client(base_url=gateway) as client:
        placed = [o for auth in users for o in every_page(client, "/api/v1/orders", auth)]
        by_client_id = [o["client_order_id"] for o in placed]
        assert sorted(by_client_id) == sorted(r[2]["client_order_id"] for r in requests)
        for auth in users:
            assert_balance_is_its_ledger(client, auth)
            payments = [e for e in ledger(client, auth) if e["transaction_type"] == "order_payment"]
            assert len(payments) == len(requests) // 4


def test_the_journey_through_nginx_in_front_of_the_replicas(
    platform: Platform, tmp_path: Path
) -> None:
    """nginx, configured from the routing table (`orderproc.deploy.nginx`), stands in for the
    gateway in front of the same replicas: the whole journey passes through it."""
    nginx_binary()

    def addresses(processes: list[ServerProcess]) -> list[str]:
        return [p.url.removeprefix("http://") for p in processes]

    port = free_loopback_port()
    upstreams = {
        Service.USERS: addresses(platform.users),
        Service.ORDERS: addresses(platform.orders),
        Service.INVENTORY: addresses(platform.inventory),
        Service.GATEWAY: addresses([platform.gateway]),
        Service.WEBUI: ["127.0.0.1:9"],  # no pages in this test
    }
    site = render_nginx(upstreams, listen=f"127.0.0.1:{port}")
    with (
        Nginx(site, tmp_path / "nginx", port=port),
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client,
    ):
        auth = register_and_login(client, "via_nginx")
        deposit(client, auth, "500", key="nginx-fund")
        buy = {"order_type": "market_buy", "asset_id": "BTC", "notional": "100"}
        bought = client.post("/api/v1/orders", headers={**auth, "Idempotency-Key": "nb"}, json=buy)
        assert bought.status_code == 201, bought.text
        quantity = bought.json()["data"]["quantity"]
        sell = {"order_type": "market_sell", "asset_id": "BTC", "quantity": quantity}
        sold = client.post("/api/v1/orders", headers={**auth, "Idempotency-Key": "ns"}, json=sell)
        assert sold.status_code == 201, sold.text
        portfolio = client.get("/api/v1/portfolio", headers=auth)
        assert portfolio.status_code == 200
        balance = assert_balance_is_its_ledger(client, auth)
        assert Decimal(0) < balance < Decimal(500)  # the spread and the fees cost money
        assert client.get("/api/v1/inventory/assets/BTC").status_code == 200
        assert client.post("/api/v1/auth/logout", headers=auth).status_code == 200
        assert client.get("/api/v1/balance", headers=auth).status_code == 401


def test_failed_logins_through_two_gateways_and_two_users_replicas_count_once(
    platform: Platform,
) -> None:
    """Five wrong passwords for one name, spread over both gateways (and so both users
    replicas): the pair is blocked everywhere, even for the right password."""
    with httpx.Client(base_url=platform.gateway.url, timeout=10) as owner:
        register_and_login(owner, "guarded")
    # Clients without the owner's device cookie: their pair is (name, address), one for both.
    first, second = (httpx.Client(base_url=g.url, timeout=10) for g in platform.gateways)
    with first, second:
        wrong = {"username": "guarded", "password": "not the password at all"}
        for n in range(5):
            failed = (first, second)[n % 2].post("/api/v1/auth/login", json=wrong)
            assert failed.status_code == 401, failed.text
        right = {"username": "guarded", "password": PASSWORD}
        for client in (first, second):
            blocked = client.post("/api/v1/auth/login", json=right)
            assert blocked.status_code == 429, blocked.text
            assert blocked.json()["code"] == "LOGIN_THROTTLED"
            assert int(blocked.headers["retry-after"]) > 0


def test_the_web_ui_journey_through_the_gateway(platform: Platform) -> None:
    """A browser without JavaScript, through the gateway: pages come from the web UI process,
    which calls the API through the gateway; sign-up, a deposit and a buy by forms."""
    with httpx.Client(base_url=platform.gateway.url, timeout=15, follow_redirects=True) as web:
        form = hidden_fields(web.get("/register").text, "/register")
        signed_up = web.post(
            "/register",
            data={
                **form,
                "username": "browser_user",
                "email": "browser_user@example.com",
                "first_name": "Web",
                "last_name": "Journey",
                "password": PASSWORD,
            },
        )
        assert signed_up.status_code == 200
        assert str(signed_up.url).endswith("/cash")
        deposit_form = hidden_fields(signed_up.text, "/cash/deposit")
        funded = web.post("/cash/deposit", data={**deposit_form, "amount": "500"})
        assert "$500.00" in funded.text
        order_form = hidden_fields(web.get("/assets/BTC").text, "/assets/BTC/order")
        order = {**order_form, "side": "buy", "mode": "amount", "amount": "100"}
        bought = web.post("/assets/BTC/order", data=order)
        assert bought.status_code == 200
        portfolio = web.get("/portfolio")
        assert "BTC" in portfolio.text
        assert "browser_user" in portfolio.text


def leads(process: ServerProcess) -> int:
    """How many times the process has taken the price-feed lease (its log says so)."""
    return process.log.read_text().count("now leads the price feed")


def estimate_price(client: httpx.Client, auth: dict[str, str]) -> Decimal:
    body = {"order_type": "market_buy", "asset_id": "BTC", "notional": "10"}
    answer = client.post("/api/v1/orders/estimate", headers=auth, json=body)
    assert answer.status_code == 200, answer.text
    return Decimal(answer.json()["data"]["price"])


def until(condition: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}"
        time.sleep(0.1)


def test_with_redis_stopped_trading_goes_on_and_the_feed_leader_fails_over_when_it_returns(
    platform: Platform, module_redis: RedisServer
) -> None:
    """Last in the module: it stops Redis, and kills the inventory replica that leads."""
    (leader,) = [p for p in platform.inventory if leads(p)]
    with httpx.Client(base_url=platform.gateway.url, timeout=10) as client:
        auth = register_and_login(client, "steady")
        deposit(client, auth, "1000", key="steady-fund")
        gone = register_and_login(client, "leaving")
        assert client.post("/api/v1/auth/logout", headers=gone).status_code == 200

        module_redis.stop()
        # Trading goes on through both orders replicas, on prices read from the store.
        for n in range(4):
            order = {"order_type": "market_buy", "asset_id": "ETH", "notional": "10"}
            headers = {**auth, "Idempotency-Key": f"no-redis-{n}"}
            placed = client.post("/api/v1/orders", headers=headers, json=order)
            assert placed.status_code == 201, placed.text
        first = estimate_price(client, auth)
        until(lambda: estimate_price(client, auth) != first, 10, "prices keep moving")
        # A revoked token stays revoked on every replica: the store answers.
        for _ in range(4):
            assert client.get("/api/v1/balance", headers=gone).status_code == 401
        assert_balance_is_its_ledger(client, auth)

        module_redis.start()  # empty: the lease is claimed afresh
        leader.kill_hard()
        (follower,) = [p for p in platform.inventory if p is not leader]
        until(lambda: leads(follower) > 0, 15, "the other inventory replica takes the lead")
        moved = estimate_price(client, auth)
        until(lambda: estimate_price(client, auth) != moved, 10, "the new leader ticks")
