"""The background purge of expired idempotency records and revocations: bounded batches until
one comes back short, a margin for clocks that disagree, a loop that outlives errors, and the
runtime starting and stopping it. A fixed clock decides expiry; the loop runs every few ms."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from orderproc import testing
from orderproc.common.clock import FixedClock
from orderproc.common.purge import Purger
from orderproc.common.storage.memory import MemoryStore
from orderproc.common.storage.ports import Store
from orderproc.common.storage.records import IdempotencyRecord
from orderproc.common.storage.repositories import IdempotencyRepository
from orderproc.errors import StoreUnavailable
from orderproc.runtime import build_runtime

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def record(key: str, *, expires_at: datetime) -> IdempotencyRecord:
    return IdempotencyRecord("u1", key, "f" * 64, "ok", {"order_id": key}, T0, expires_at)


async def fill(store: Store, *, expired: int, fresh: int = 0, revoked: int = 0) -> None:
    """`expired` records and `revoked` revocations that expire at T0 + 1 h, `fresh` at + 30 h."""
    async with store.unit_of_work() as uow:
        for n in range(expired):
            uow.idempotency.add(record(f"old{n}", expires_at=T0 + timedelta(hours=1)))
        for n in range(fresh):
            uow.idempotency.add(record(f"new{n}", expires_at=T0 + timedelta(hours=30)))
        for n in range(revoked):
            uow.revocations.add(f"j{n}", user_id="u1", expires_at=T0 + timedelta(hours=1))
        await uow.commit()


def purger(store: Store, clock: FixedClock, **options: object) -> Purger:
    values: dict[str, object] = {"interval": 0.01, "batch": 500, "margin": timedelta(0)}
    values.update(options)
    return Purger(store=store, clock=clock, **values)  # type: ignore[arg-type]


async def until(condition: Callable[[], bool], *, within: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "not within the time allowed"
        await asyncio.sleep(0.005)


class TestOneRun:
    async def test_batches_of_at_most_the_limit_until_one_comes_back_short(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        store = MemoryStore()
        await fill(store, expired=1250, fresh=3, revoked=7)
        calls: list[tuple[int, int]] = []
        real = IdempotencyRepository.purge_expired

        async def counted(self: IdempotencyRepository, *, now: datetime, limit: int) -> int:
            removed = await real(self, now=now, limit=limit)
            calls.append((limit, removed))
            return removed

        monkeypatch.setattr(IdempotencyRepository, "purge_expired", counted)
        run = purger(store, FixedClock(T0 + timedelta(hours=2)))
        assert await run.purge_once() == {"idempotency": 1250, "revocations": 7}
        assert calls == [(500, 500), (500, 500), (500, 250)]
        assert run.batches == 4  # three of idempotency, one of revocations
        assert len(store.tables["idempotency"].rows) == 3
        assert store.tables["revoked_tokens"].rows == {}

    async def test_an_exact_multiple_of_the_batch_ends_on_an_empty_batch(self) -> None:
        store = MemoryStore()
        await fill(store, expired=10)
        run = purger(store, FixedClock(T0 + timedelta(hours=2)), batch=5)
        assert await run.purge_once() == {"idempotency": 10, "revocations": 0}
        assert run.batches == 4  # 5, 5, 0; and one for revocations

    async def test_requests_run_between_batches(self, monkeypatch: pytest.MonkeyPatch) -> None:
        store = MemoryStore()
        await fill(store, expired=30)
        turns = 0
        seen: list[int] = []
        real = IdempotencyRepository.purge_expired

        async def watched(self: IdempotencyRepository, *, now: datetime, limit: int) -> int:
            seen.append(turns)
            return await real(self, now=now, limit=limit)

        async def other_work() -> None:
            nonlocal turns
            while True:
                turns += 1
                await asyncio.sleep(0)

        monkeypatch.setattr(IdempotencyRepository, "purge_expired", watched)
        worker = asyncio.create_task(other_work())
        await asyncio.sleep(0)
        try:
            await purger(store, FixedClock(T0 + timedelta(hours=2)), batch=10).purge_once()
        finally:
            worker.cancel()
        assert len(seen) == 4
        assert seen == sorted(set(seen))  # the other task ran before each batch

    async def test_keeps_what_expired_less_than_the_margin_ago(self) -> None:
        store = MemoryStore()
        await fill(store, expired=3, revoked=2)
        clock = FixedClock(T0 + timedelta(hours=1, minutes=4))
        run = purger(store, clock, margin=timedelta(minutes=5))
        assert await run.purge_once() == {"idempotency": 0, "revocations": 0}
        clock.advance(minutes=1)
        assert await run.purge_once() == {"idempotency": 3, "revocations": 2}

    async def test_a_failing_table_is_logged_and_the_other_still_purged(
        self, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        store = MemoryStore()
        await fill(store, expired=3, revoked=2)

        async def broken(self: IdempotencyRepository, *, now: datetime, limit: int) -> int:
            raise StoreUnavailable("disk I/O error")

        monkeypatch.setattr(IdempotencyRepository, "purge_expired", broken)
        with caplog.at_level(logging.ERROR, logger="orderproc.purge"):
            done = await purger(store, FixedClock(T0 + timedelta(hours=2))).purge_once()
        assert done == {"revocations": 2}
        assert "purge of expired idempotency failed" in caplog.text
        assert len(store.tables["idempotency"].rows) == 3


class TestInTheBackground:
    async def test_removes_rows_as_they_expire(self) -> None:
        store = MemoryStore()
        await fill(store, expired=40, fresh=2, revoked=5)
        clock = FixedClock(T0)
        run = purger(store, clock, batch=7)
        run.start()
        try:
            await asyncio.sleep(0.05)  # a few runs: nothing has expired yet
            assert len(store.tables["idempotency"].rows) == 42
            assert len(store.tables["revoked_tokens"].rows) == 5
            clock.advance(hours=2)
            await until(
                lambda: (
                    len(store.tables["idempotency"].rows) == 2
                    and not store.tables["revoked_tokens"].rows
                )
            )
            clock.advance(hours=40)
            await until(lambda: not store.tables["idempotency"].rows)
        finally:
            await run.stop()

    async def test_an_error_never_stops_the_loop(self, monkeypatch: pytest.MonkeyPatch) -> None:
        store = MemoryStore()
        await fill(store, expired=4)
        failures = 0
        real = IdempotencyRepository.purge_expired

        async def flaky(self: IdempotencyRepository, *, now: datetime, limit: int) -> int:
            nonlocal failures
            if failures < 3:
                failures += 1
                raise RuntimeError("boom")
            return await real(self, now=now, limit=limit)

        monkeypatch.setattr(IdempotencyRepository, "purge_expired", flaky)
        run = purger(store, FixedClock(T0 + timedelta(hours=2)))
        run.start()
        try:
            await until(lambda: not store.tables["idempotency"].rows)
        finally:
            await run.stop()
        assert failures == 3

    async def test_an_interval_of_zero_starts_nothing(self) -> None:
        run = purger(MemoryStore(), FixedClock(T0), interval=0)
        run.start()
        assert not run.running
        await run.stop()


class TestRuntime:
    async def test_the_runtime_runs_the_purge_on_its_store_and_stops_it(
        self, tmp_path: Path
    ) -> None:
        """The SQLite store of a real runtime, through `start_background` and `close`."""
        clock = FixedClock(T0)
        settings = testing.test_settings(
            tmp_path, price_feed="off", purge_interval_seconds=0.01, purge_batch_size=3
        )
        runtime = await build_runtime(settings, clock=clock)
        try:
            await fill(runtime.store, expired=10, fresh=1, revoked=4)
            await runtime.start_background()
            clock.advance(hours=2)  # past expiry and the 5-minute margin

            async def left() -> tuple[int, int]:
                async with runtime.store.unit_of_work() as uow:
                    records = [
                        await uow.idempotency.get("u1", f"{kind}{n}", now=T0)
                        for kind, count in (("old", 10), ("new", 1))
                        for n in range(count)
                    ]
                    revoked = [await uow.revocations.is_revoked(f"j{n}") for n in range(4)]
                return sum(r is not None for r in records), sum(revoked)

            deadline = asyncio.get_running_loop().time() + 5
            while await left() != (1, 0):
                assert asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0.01)
            assert runtime.purger.batches >= 4 + 2  # 3, 3, 3, 1 and 3, 1
        finally:
            await runtime.close()
        assert not runtime.purger.running
