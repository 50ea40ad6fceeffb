"""Test support shared by every service's tests: settings, clocks, a no-op locker."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from orderproc.common.settings import Settings

TEST_SECRET = "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz"


def test_settings(data_dir: Path, **overrides: Any) -> Settings:
    """Settings for tests: a private SQLite file, cheap password hashing, quiet logs."""
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "database_url": f"sqlite:///{data_dir / 'test.db'}",
        "jwt_secret": TEST_SECRET,
        "password_hash_profile": "fast-insecure-for-tests",
        "access_log": False,
        "rate_limit_enabled": False,
    }
    values.update(overrides)
    return Settings(**values)


class SteppingClock:
    """A test clock that moves forward a millisecond on every reading, so events are ordered
    and tokens issued one after another differ, yet the test decides the day."""

    def __init__(self, start: datetime | None = None, step: timedelta | None = None) -> None:
        self._now = start or datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
        self._step = step or timedelta(milliseconds=1)

    def now(self) -> datetime:
        self._now += self._step
        return self._now

    def set(self, moment: datetime) -> None:
        self._now = moment

    def advance(self, **delta: float) -> None:
        self._now += timedelta(**delta)


class NoLocker:
    """Takes no lock at all: for tests proving the store's conditional writes alone keep money
    safe when the lock is bypassed."""

    @asynccontextmanager
    async def hold(self, key: str, *, timeout: float) -> AsyncIterator[None]:
        yield
