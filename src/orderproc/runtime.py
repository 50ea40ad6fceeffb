"""The runtime: every long-lived collaborator of a process, built once by the composition root
(`orderproc.gateway.app` or a service's own app) and kept in `app.state.runtime`."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from orderproc.common.clock import Clock, SystemClock
from orderproc.common.locking import InProcessLocker, Locker
from orderproc.common.metrics import Metrics
from orderproc.common.money import to_cents
from orderproc.common.security.passwords import PasswordHasher
from orderproc.common.security.revocation import RevocationChecker
from orderproc.common.security.tokens import TokenService
from orderproc.common.settings import Settings
from orderproc.common.storage.factory import open_store
from orderproc.common.storage.ports import Store
from orderproc.common.throttle import LoginGuard, RateLimiter
from orderproc.users.cash import CashDeps
from orderproc.users.domain import CashRules
from orderproc.users.service import UsersDeps


@dataclass
class Runtime:
    settings: Settings
    store: Store
    locker: Locker
    clock: Clock
    hasher: PasswordHasher
    tokens: TokenService
    revocations: RevocationChecker
    login_guard: LoginGuard
    rate_limiter: RateLimiter
    metrics: Metrics
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def users(self) -> UsersDeps:
        return UsersDeps(self.store, self.hasher, self.tokens, self.revocations, self.clock)

    @property
    def cash(self) -> CashDeps:
        return self.extras["cash"]  # type: ignore[no-any-return]

    async def close(self) -> None:
        self.hasher.close()
        await self.store.close()


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


async def build_runtime(
    settings: Settings, *, clock: Clock | None = None, service: str = "orderproc"
) -> Runtime:
    clock = clock or SystemClock()
    store = open_store(settings.resolved_database_url)
    await store.migrate()
    runtime = Runtime(
        settings=settings,
        store=store,
        locker=InProcessLocker(),
        clock=clock,
        hasher=PasswordHasher(
            settings.password_hash_profile,
            workers=settings.password_hash_workers,
            queue=settings.password_hash_queue,
        ),
        tokens=TokenService(
            secret=jwt_secret_for(settings),
            algorithm=settings.jwt_algorithm,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            ttl_seconds=settings.access_token_ttl_seconds,
            clock=clock,
        ),
        revocations=RevocationChecker(store, cache_seconds=settings.revocation_cache_seconds),
        login_guard=LoginGuard(
            max_failures=settings.login_failure_limit,
            window=settings.login_failure_window_seconds,
            block_seconds=settings.login_block_seconds,
        ),
        rate_limiter=RateLimiter(per_minute=settings.rate_limit_per_minute),
        metrics=Metrics(service),
    )
    runtime.extras["cash"] = CashDeps(
        store=store,
        locker=runtime.locker,
        clock=clock,
        rules=CashRules(
            max_amount_cents=to_cents(settings.max_cash_amount),
            daily_limit_cents={
                "deposit": to_cents(settings.deposit_daily_limit),
                "withdraw": to_cents(settings.withdraw_daily_limit),
            },
        ),
        lock_timeout=settings.lock_timeout_seconds,
        idempotency_ttl=timedelta(seconds=settings.idempotency_ttl_seconds),
    )
    return runtime
