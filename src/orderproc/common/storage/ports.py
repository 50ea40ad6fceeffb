"""Storage ports: the store, its unit of work, and the repositories (one per aggregate, written
once for every store in `repositories`), with the errors a store raises.

A store is a backend of `repositories.Session`: a few read primitives and an intent compiler
(`sqlite`, `postgres`, `memory`). Faults are not conflicts: a store that is full, read-only,
unreachable or too slow raises `StoreUnavailable` or one of its kinds (`StoreFull`,
`StoreReadOnly`, `StoreTimeout`; all 503 at the edge) from any read or commit. Each adapter maps
its driver's errors to them once, at its boundary; a failed commit applied nothing (or, for a
lost connection during the commit, may have: the caller is never told it committed when it did
not).
"""

from __future__ import annotations

from typing import Protocol

from orderproc.common.storage.repositories import UnitOfWork as UnitOfWork
from orderproc.errors import StoreFull as StoreFull
from orderproc.errors import StoreReadOnly as StoreReadOnly
from orderproc.errors import StoreTimeout as StoreTimeout
from orderproc.errors import StoreUnavailable as StoreUnavailable


class Store(Protocol):
    """A storage backend: makes units of work, owns connections and the schema."""

    def unit_of_work(self) -> UnitOfWork: ...
    async def migrate(self) -> None:
        """Create or upgrade the schema in place."""

    async def ping(self) -> None:
        """Raise `StoreUnavailable` if the store cannot be reached."""

    async def close(self) -> None: ...
