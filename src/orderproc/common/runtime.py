"""What every process of the platform builds the same way: the `Core` of its runtime.

A service's composition root (`orderproc.<service>.app`) opens a core, builds its own parts on
it, and keeps the result, a typed dataclass, in `app.state.runtime`; the embedded root
(`orderproc.runtime`, used by `orderproc.gateway.app`) builds every service's parts on one core.
The HTTP edge that every app shares (`common.web`, `common.paging`, `common.asgi`) reads only
the core's fields."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

from orderproc.common.clock import Clock, SystemClock
from orderproc.common.locking import InProcessLocker, Locker
from orderproc.common.metrics import Metrics
from orderproc.common.paging import CursorCodec
from orderproc.common.redis_locking import RedisLocker
from orderproc.common.redis_shared import revocations_for
from orderproc.common.resp import LeanRedis
from orderproc.common.security.revocation import RevocationChecker
from orderproc.common.security.tokens import TokenService
from orderproc.common.settings import Settings
from orderproc.common.storage.factory import open_store
from orderproc.common.storage.ports import Store
from orderproc.common.stream_tickets import StreamTickets, stream_tickets_for
from orderproc.errors import ServiceUnavailable


@dataclass(kw_only=True, eq=False)
class Core:
    settings: Settings
    store: Store
    locker: Locker
    clock: Clock
    tokens: TokenService
    revocations: RevocationChecker
    cursors: CursorCodec  # signs and checks list cursors (`common/paging.py`)
    metrics: Metrics
    stream_tickets: StreamTickets  # browsers' single-use stand-ins for a token on streams
    secret: str = field(repr=False)  # the JWT secret, which also signs device cookies

    async def ready(self) -> list[str]:
        """The store answers, or `ServiceUnavailable`. Returns the optional dependencies that do
        not answer, by name: Redis, when one is configured, is one (locks, limits, login
        blocking and revocations then fall back to this process and the store;
        docs/operations.md, "Redis down"), so the process stays ready and says it is degraded."""
        try:
            await self.store.ping()
        except Exception as exc:
            raise ServiceUnavailable("The database does not answer.") from exc
        if isinstance(self.locker, RedisLocker):
            try:
                await self.locker.ping()
            except Exception:
                return ["redis"]
        return []

    async def close_core(self) -> None:
        if isinstance(self.locker, RedisLocker):
            await self.locker.close()
        await self.revocations.aclose()
        await self.stream_tickets.aclose()
        await self.store.close()


def parts_of(built: object) -> dict[str, Any]:
    """A dataclass's fields by name (not copied, unlike `dataclasses.asdict`), to compose a
    runtime from a core and the parts built on it."""
    if not is_dataclass(built) or isinstance(built, type):
        raise TypeError(f"not a dataclass instance: {built!r}")
    return {f.name: getattr(built, f.name) for f in fields(built)}


def jwt_secret_for(settings: Settings) -> str:
    """The configured secret; embedded mode makes one on first start and keeps it in the
    data dir (mode 0600), so tokens survive a restart."""
    if settings.jwt_secret is not None or settings.mode != "embedded":
        return settings.require_strong_secret()
    path = Path(settings.data_dir) / "jwt_secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(48))
    return path.read_text().strip()


async def open_core(settings: Settings, *, clock: Clock | None = None, service: str) -> Core:
    """The store (migrated), the locker, tokens and revocations, cursors, metrics and stream
    tickets."""
    clock = clock or SystemClock()
    secret = jwt_secret_for(settings)
    store = open_store(
        settings.resolved_database_url,
        pool_size=settings.database_pool_size,
        timeout_seconds=settings.database_timeout_seconds,
    )
    await store.migrate()
    metrics = Metrics(service)
    return Core(
        settings=settings,
        store=store,
        locker=_locker(settings, metrics),
        clock=clock,
        tokens=TokenService.from_settings(settings, secret=secret, clock=clock),
        revocations=RevocationChecker(
            store,
            cache_seconds=settings.revocation_cache_seconds,
            shared=revocations_for(settings, now=clock.now, metrics=metrics),  # with Redis
        ),
        cursors=CursorCodec(secret),
        metrics=metrics,
        stream_tickets=stream_tickets_for(settings, metrics=metrics),
        secret=secret,
    )


LOCK_OP_TIMEOUT = 0.25  # each Redis call of the per-user lock, connecting included


def _locker(settings: Settings, metrics: Metrics) -> Locker:
    """In-process alone when embedded; with Redis configured, a Redis lock behind a
    per-process one, so every process of the platform shares each user's lock."""
    if not settings.redis_url:
        return InProcessLocker(waits=metrics.lock_waits)
    client = LeanRedis.from_url(settings.redis_url, timeout=LOCK_OP_TIMEOUT)
    locker = RedisLocker(
        client, op_timeout=LOCK_OP_TIMEOUT, local=InProcessLocker(), waits=metrics.lock_waits
    )
    metrics.watch_breaker("redis_lock", locker.breaker)
    return locker
