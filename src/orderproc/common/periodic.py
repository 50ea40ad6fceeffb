"""A step run every few seconds on the event loop, for the background work of a service (the
price ticker, the purge): started and stopped with the runtime; a failing step is logged and
the next one runs on time."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["Periodic", "cancel_and_wait"]


async def cancel_and_wait(*tasks: asyncio.Future[Any]) -> None:
    """Cancel `tasks`, every one first, and wait until each has ended, whatever it raised (a
    task logs its own failures). A cancellation of the caller itself is not swallowed: a stop
    that is cancelled ends there, as its canceller expects (`Task.cancelling`), and leaves no
    task it was given uncancelled."""
    for task in tasks:
        task.cancel()
    for task in tasks:
        try:
            await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise
        except Exception:  # noqa: S110 - ended; its own failure, which it logged
            pass


class Periodic:
    def __init__(
        self,
        name: str,
        *,
        interval: float,
        step: Callable[[], Awaitable[Any]],
        log: logging.Logger,
    ) -> None:
        self.name, self.interval, self._step, self._log = name, interval, step, log
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None

    def start(self) -> None:
        """Start the loop (once; an interval of 0 or less means never)."""
        if self._task is None and self.interval > 0:
            self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            task, self._task = self._task, None
            await cancel_and_wait(task)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self._step()
            except Exception:  # a hiccup (the store, the feed): the next step tries again
                self._log.exception("%s failed", self.name)
