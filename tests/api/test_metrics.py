"""/metrics for operators: money movements counted once, process and interpreter series, lock
waits and timeouts, price age, circuit breakers, and an exposition `promtool` finds clean."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from orderproc.common.locking import account_lock_key
from orderproc.runtime import Runtime
from orderproc.testing import SteppingClock
from tests.api.conftest import Auth, Client
from tests.api.test_users_auth import assert_problem
from tests.support.redis_server import RedisServer

DEPOSIT = "/api/v1/balance/deposit"
WITHDRAW = "/api/v1/balance/withdraw"
ORDERS = "/api/v1/orders"
# Nothing listens on port 1: every Redis call is refused at once and the breaker opens.
DEAD_REDIS = "redis://127.0.0.1:1/0"


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(client: Client) -> Samples:
    """Every sample of /metrics by name and labels."""
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


async def money(client: Client) -> dict[str, float]:
    samples = await scrape(client)
    return {
        kind: value(samples, "orderproc_money_operations_total", kind=kind)
        for kind in ("deposit", "withdraw", "buy", "sell", "fee")
    }


async def user_id(runtime: Runtime, username: str) -> str:
    async with runtime.store.unit_of_work() as uow:
        user = await uow.users.get_by_username(username)
    assert user is not None
    return user.user_id


@pytest.mark.every_store
class TestMoneyOperations:
    """What counts is what committed (so on every store the API tests run on)."""

    @pytest.mark.parametrize("settings_overrides", [{"taker_fee_bps": 25}])
    async def test_each_committed_movement_counts_once_and_replays_do_not(
        self, client: Client, alice: Auth, runtime: Runtime
    ) -> None:
        await runtime.ticker.tick_once()
        before = await money(client)
        assert before == dict.fromkeys(before, 0.0)

        deposit = {**alice, "Idempotency-Key": "dep-1"}
        for _ in range(2):  # the second is a replay
            response = await client.post(DEPOSIT, headers=deposit, json={"amount": "1000"})
            assert response.status_code == 201, response.text
        assert await money(client) == {**before, "deposit": 1.0}

        buy = {**alice, "Idempotency-Key": "buy-1"}
        body = {"order_type": "market_buy", "asset_id": "BTC", "notional": "100"}
        first = await client.post(ORDERS, headers=buy, json=body)
        assert first.status_code == 201, first.text
        replay = await client.post(ORDERS, headers=buy, json=body)
        assert replay.json() == first.json()
        assert await money(client) == {**before, "deposit": 1.0, "buy": 1.0, "fee": 1.0}

        quantity = first.json()["data"]["quantity"]
        sell = {"order_type": "market_sell", "asset_id": "BTC", "quantity": quantity}
        assert (await client.post(ORDERS, headers=alice, json=sell)).status_code == 201
        withdraw = {**alice, "Idempotency-Key": "wd-1"}
        assert (await client.post(WITHDRAW, headers=withdraw, json={"amount": "10"})).is_success
        assert (await client.post(WITHDRAW, headers=withdraw, json={"amount": "10"})).is_success
        counted = {"deposit": 1.0, "buy": 1.0, "sell": 1.0, "fee": 2.0, "withdraw": 1.0}
        assert await money(client) == counted

        again = {**body, "notional": "50", "client_order_id": "c-1"}  # the same order twice
        assert (await client.post(ORDERS, headers=alice, json=again)).is_success
        assert (await client.post(ORDERS, headers=alice, json=again)).is_success
        assert await money(client) == {**counted, "buy": 2.0, "fee": 3.0}

    async def test_rejected_movements_do_not_count(
        self, client: Client, alice: Auth, runtime: Runtime
    ) -> None:
        await runtime.ticker.tick_once()
        too_much = await client.post(WITHDRAW, headers=alice, json={"amount": "10"})
        assert_problem(too_much, 422, "INSUFFICIENT_FUNDS")
        body = {"order_type": "market_buy", "asset_id": "BTC", "notional": "100"}
        assert_problem(
            await client.post(ORDERS, headers=alice, json=body), 422, "INSUFFICIENT_FUNDS"
        )
        assert set((await money(client)).values()) == {0.0}


class TestOperationsSeries:
    async def test_process_and_python_series(self, client: Client) -> None:
        samples = await scrape(client)
        names = {name for name, _ in samples}
        assert value(samples, "process_resident_memory_bytes") > 0
        assert value(samples, "process_cpu_seconds_total") > 0
        assert {"process_open_fds", "process_start_time_seconds"} <= names
        info = [dict(labels) for name, labels in samples if name == "python_info"]
        assert len(info) == 1
        assert info[0]["implementation"] == "CPython"
        assert value(samples, "python_gc_collections_total", generation="0") >= 0

    async def test_every_metric_has_help_and_a_type(self, client: Client) -> None:
        families = list(text_string_to_metric_families((await client.get("/metrics")).text))
        assert len(families) > 10
        for family in families:
            assert family.documentation, family.name
            assert family.type != "unknown", family.name

    async def test_lock_waits(self, client: Client, alice: Auth, runtime: Runtime) -> None:
        waits = value(await scrape(client), "orderproc_lock_wait_seconds_count")
        assert (await client.post(DEPOSIT, headers=alice, json={"amount": "5"})).status_code == 201
        at_once = await scrape(client)
        assert value(at_once, "orderproc_lock_wait_seconds_count") == waits + 1
        assert value(at_once, "orderproc_lock_wait_seconds_bucket", le="0.0005") == waits + 1

        # A deposit that waits for the lock this test holds for 0.3 s (the test's own hold
        # counts too, as a wait of nothing).
        key = account_lock_key(await user_id(runtime, "alice"))
        async with runtime.locker.hold(key, timeout=1):
            waiting = asyncio.create_task(client.post(DEPOSIT, headers=alice, json={"amount": "5"}))
            await asyncio.sleep(0.3)
        assert (await waiting).status_code == 201
        waited = await scrape(client)
        assert value(waited, "orderproc_lock_wait_seconds_count") == waits + 3
        assert value(waited, "orderproc_lock_wait_seconds_bucket", le="0.0005") == waits + 2
        assert value(waited, "orderproc_lock_wait_seconds_bucket", le="5.0") == waits + 3
        assert 0.1 < value(waited, "orderproc_lock_wait_seconds_sum") < 5
        assert value(waited, "orderproc_lock_timeouts_total") == 0

    @pytest.mark.parametrize("settings_overrides", [{"lock_timeout_seconds": 0.02}])
    async def test_a_lock_timeout_counts(
        self, client: Client, alice: Auth, runtime: Runtime
    ) -> None:
        key = account_lock_key(await user_id(runtime, "alice"))
        async with runtime.locker.hold(key, timeout=1):
            response = await client.post(DEPOSIT, headers=alice, json={"amount": "5"})
        assert_problem(response, 409, "LOCK_TIMEOUT")
        samples = await scrape(client)
        assert value(samples, "orderproc_lock_timeouts_total") == 1
        assert value(samples, "orderproc_lock_wait_seconds_sum") >= 0.015
        assert value(samples, "orderproc_money_operations_total", kind="deposit") == 0

    async def test_price_age_follows_the_ticks(
        self, client: Client, runtime: Runtime, clock: SteppingClock
    ) -> None:
        await runtime.ticker.tick_once()
        assert 0 <= value(await scrape(client), "orderproc_price_age_seconds") < 1
        clock.advance(seconds=45)
        assert 45 <= value(await scrape(client), "orderproc_price_age_seconds") < 46
        await runtime.ticker.tick_once()
        assert value(await scrape(client), "orderproc_price_age_seconds") < 1

    async def test_no_breaker_series_without_redis(self, client: Client) -> None:
        text = (await client.get("/metrics")).text
        assert "# TYPE orderproc_circuit_breaker_state gauge" in text
        assert "orderproc_circuit_breaker_state{" not in text


class TestBreakerState:
    @pytest.fixture
    def settings_overrides(self, redis_server: RedisServer) -> dict[str, Any]:
        return {"redis_url": redis_server.url}

    async def test_closed_while_redis_answers(self, client: Client, alice: Auth) -> None:
        assert (await client.post(DEPOSIT, headers=alice, json={"amount": "1"})).is_success
        samples = await scrape(client)
        assert value(samples, "orderproc_circuit_breaker_state", breaker="redis_lock") == 0
        assert value(samples, "orderproc_circuit_breaker_openings_total", breaker="redis_lock") == 0
        assert value(samples, "orderproc_lock_wait_seconds_count") == 1

    @pytest.mark.parametrize("settings_overrides", [{"redis_url": DEAD_REDIS}])
    async def test_open_after_redis_fails(self, client: Client, alice: Auth) -> None:
        for _ in range(3):  # three failures open it; the lock falls back to the process's own
            assert (await client.post(DEPOSIT, headers=alice, json={"amount": "1"})).is_success
        samples = await scrape(client)
        assert value(samples, "orderproc_circuit_breaker_state", breaker="redis_lock") == 2
        assert value(samples, "orderproc_circuit_breaker_openings_total", breaker="redis_lock") == 1
        assert value(samples, "orderproc_money_operations_total", kind="deposit") == 3


class TestReadiness:
    """Redis is optional: with it down, locks, limits, login blocking and revocations fall back
    to the process and the store, so `/ready` stays 200 and names what is degraded."""

    @pytest.fixture
    def settings_overrides(self, redis_server: RedisServer) -> dict[str, Any]:
        return {"redis_url": redis_server.url}

    async def test_ready_and_not_degraded_while_redis_answers(self, client: Client) -> None:
        answer = await client.get("/ready")
        assert answer.status_code == 200
        assert answer.json() == {"status": "ready"}

    @pytest.mark.parametrize("settings_overrides", [{"redis_url": DEAD_REDIS}])
    async def test_ready_but_degraded_with_redis_down_and_money_still_moves(
        self, client: Client, alice: Auth
    ) -> None:
        answer = await client.get("/ready")
        assert answer.status_code == 200
        assert answer.json() == {"status": "ready", "degraded": ["redis"]}
        assert (await client.post(DEPOSIT, headers=alice, json={"amount": "1"})).is_success


class TestPromtool:
    """`promtool check metrics` (Debian's `prometheus` package; build.sh installs it) finds
    nothing to say about the exposition, with every kind of series present."""

    @pytest.mark.parametrize("settings_overrides", [{"redis_url": DEAD_REDIS, "taker_fee_bps": 25}])
    async def test_the_exposition_is_clean(
        self, client: Client, alice: Auth, runtime: Runtime
    ) -> None:
        promtool = shutil.which("promtool")
        if promtool is None:
            if os.environ.get("CI", "").lower() in {"true", "1", "yes"}:
                pytest.fail("promtool is missing; build.sh installs it (Debian package prometheus)")
            pytest.skip("promtool is not installed (apt-get install prometheus)")
        await runtime.ticker.tick_once()
        assert (await client.post(DEPOSIT, headers=alice, json={"amount": "500"})).is_success
        body = {"order_type": "market_buy", "asset_id": "BTC", "notional": "100"}
        assert (await client.post(ORDERS, headers=alice, json=body)).is_success
        exposition = (await client.get("/metrics")).content
        assert b"orderproc_circuit_breaker_state{" in exposition
        checked = subprocess.run(
            [promtool, "check", "metrics"], input=exposition, capture_output=True, timeout=60
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert checked.stdout == b""
        assert checked.stderr == b""
