"""The storage contract's fixture: one migrated `store` per adapter.

A new backend joins the contract by adding its name to `ADAPTERS` and a branch in `_open`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from orderproc.common.storage.memory import MemoryStore
from orderproc.common.storage.ports import Store
from orderproc.common.storage.postgres import PostgresStore
from orderproc.common.storage.sqlite import SqliteStore

ADAPTERS = ["memory", "sqlite", "postgres"]


def _open(adapter: str, request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if adapter == "memory":
        return MemoryStore()
    if adapter == "sqlite":
        return SqliteStore(tmp_path / "data" / "store.db")
    if adapter == "postgres":
        # Asked for here, not in the signature, so the other adapters never start a cluster.
        return PostgresStore(request.getfixturevalue("postgres_dsn"))
    raise AssertionError(f"unknown adapter {adapter}")


@pytest.fixture(params=ADAPTERS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    opened = _open(request.param, request, tmp_path)
    await opened.migrate()
    yield opened
    await opened.close()
