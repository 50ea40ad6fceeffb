"""The store's timeout comes from `ORDERPROC_DATABASE_TIMEOUT_SECONDS` through `open_store`."""

from __future__ import annotations

from pathlib import Path

from orderproc.common.settings import Settings
from orderproc.common.storage.factory import open_store
from orderproc.common.storage.sqlite import SqliteStore


async def test_sqlite_waits_for_its_write_lock_as_long_as_the_setting_says(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, database_timeout_seconds=1.25)
    store = open_store(
        f"sqlite:///{tmp_path / 'x.db'}", timeout_seconds=settings.database_timeout_seconds
    )
    assert isinstance(store, SqliteStore)
    try:
        assert store._conn.execute("PRAGMA busy_timeout").fetchone() == (1250,)
    finally:
        await store.close()


def test_the_default_is_five_seconds() -> None:
    assert Settings().database_timeout_seconds == 5.0
