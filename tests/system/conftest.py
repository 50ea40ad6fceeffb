from __future__ import annotations

import pytest


@pytest.fixture(params=["sqlite", "postgres"])
def store_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """Environment for server processes: the default SQLite file in their data dir, or the
    test PostgreSQL database (emptied before the test)."""
    if request.param == "sqlite":
        return {}
    return {"ORDERPROC_DATABASE_URL": request.getfixturevalue("postgres_dsn")}
