"""Storage ports: the store, its unit of work and repositories (`repositories`), and the errors
a store raises: `StoreUnavailable` and its kinds (`StoreFull`, `StoreReadOnly`, `StoreTimeout`;
503 at the edge) for a fault of the store, never a driver's own error (docs/storage.md)."""

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
