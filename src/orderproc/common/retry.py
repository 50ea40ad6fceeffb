"""Retry a use case whose unit of work lost a race (a failed conditional write)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from orderproc.errors import ConcurrencyConflict, LockTimeout

T = TypeVar("T")

DEFAULT_ATTEMPTS = 6


async def retry_on_conflict(
    attempt: Callable[[], Awaitable[T]], *, attempts: int = DEFAULT_ATTEMPTS
) -> T:
    """Run `attempt` until it commits; each try re-reads, so a lost race becomes either a
    success or a business refusal. After `attempts` lost races the conflict (409) stands."""
    for tried in range(1, attempts + 1):
        try:
            return await attempt()
        except LockTimeout:
            raise
        except ConcurrencyConflict:
            if tried == attempts:
                raise
            await asyncio.sleep(random.uniform(0, 0.002 * 2**tried))
    raise AssertionError("unreachable")
