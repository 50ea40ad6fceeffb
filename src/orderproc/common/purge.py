"""The background purge: expired idempotency records and token revocations are deleted every
`interval` seconds, in batches of at most `batch` rows.

Why batches: a single `DELETE … WHERE expires_at <= now` over a backlog (measured: two million
idempotency records, 38 % of a 2.15 GB database, none ever deleted) holds SQLite's write lock,
and with it every request's commit, for as long as it runs, and on PostgreSQL makes one long
transaction. Each batch is one short transaction of its own (on SQLite it goes through the
store's group commit, so it shares a turn with request writes instead of meeting them), and the
loop yields to the event loop between batches. A table is done when a batch comes back short.

Rows are deleted only once they have been expired for `margin` (5 minutes): every process
decides expiry by its own clock, and a process whose clock is behind must still find a
revocation, or a record it would replay, that a process ahead of it already counts as expired.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from orderproc.common.clock import Clock
from orderproc.common.periodic import Periodic
from orderproc.common.storage.ports import Store, UnitOfWork

log = logging.getLogger("orderproc.purge")

DEFAULT_MARGIN = timedelta(minutes=5)

# One batch of one table: (unit of work, cut-off, limit) -> rows deleted.
_Batch = Callable[[UnitOfWork, datetime, int], Awaitable[int]]


async def _idempotency(uow: UnitOfWork, cutoff: datetime, limit: int) -> int:
    return await uow.idempotency.purge_expired(now=cutoff, limit=limit)


async def _revocations(uow: UnitOfWork, cutoff: datetime, limit: int) -> int:
    return await uow.revocations.purge_expired(now=cutoff, limit=limit)


TABLES: tuple[tuple[str, _Batch], ...] = (
    ("idempotency", _idempotency),
    ("revocations", _revocations),
)


class Purger:
    def __init__(
        self,
        *,
        store: Store,
        clock: Clock,
        interval: float,
        batch: int,
        margin: timedelta = DEFAULT_MARGIN,
    ) -> None:
        if batch < 1:
            raise ValueError("batch must be at least 1")
        self.store, self.clock = store, clock
        self.interval = interval
        self.batch = batch
        self.margin = margin
        self.batches = 0  # statements run since start, for tests and curiosity
        self._loop = Periodic("purge", interval=interval, step=self.purge_once, log=log)

    async def purge_once(self) -> dict[str, int]:
        """Empty each table of what expired `margin` ago, batch by batch; rows deleted per
        table. A table that fails is logged and left for the next run; the other still goes."""
        cutoff = self.clock.now() - self.margin
        deleted: dict[str, int] = {}
        for name, batch in TABLES:
            try:
                deleted[name] = await self._drain(batch, cutoff)
            except Exception:  # a store fault or a bug: the next run tries again
                log.exception("purge of expired %s failed; next try in %ss", name, self.interval)
        if any(deleted.values()):
            log.info("purged expired rows", extra={"purged": deleted})
        return deleted

    async def _drain(self, batch: _Batch, cutoff: datetime) -> int:
        total = 0
        while True:
            async with self.store.unit_of_work() as uow:
                removed = await batch(uow, cutoff, self.batch)
            self.batches += 1
            total += removed
            if removed < self.batch:
                return total
            await asyncio.sleep(0)  # let requests run between batches

    @property
    def running(self) -> bool:
        return self._loop.running

    def start(self) -> None:
        self._loop.start()  # an interval of 0 turns the purge off

    async def stop(self) -> None:
        await self._loop.stop()
