"""The users service's composition root: its parts (`UsersParts`, built on a process's core by
`build_users`), and the service on its own (`create_app`: accounts, login, tokens, profiles,
cash, the audit log, under `/api/v1`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from fastapi import FastAPI

from orderproc.common.clock import Clock
from orderproc.common.login_throttle import (
    LoginThrottle,
    in_process_login_throttle,
)
from orderproc.common.money import to_cents
from orderproc.common.purge import Purger
from orderproc.common.redis_shared import RedisLoginThrottle, login_throttle_for
from orderproc.common.runtime import Core, open_core, parts_of
from orderproc.common.security.devices import DeviceCookies
from orderproc.common.security.passwords import PasswordHasher
from orderproc.common.service_app import service_app
from orderproc.common.settings import Settings
from orderproc.users import api
from orderproc.users.cash import CashDeps
from orderproc.users.domain import CashRules
from orderproc.users.service import UsersDeps


@dataclass(kw_only=True, eq=False)
class UsersParts:
    hasher: PasswordHasher
    login_throttle: LoginThrottle
    devices: DeviceCookies
    users: UsersDeps
    cash: CashDeps
    purger: Purger

    def start_users(self) -> None:
        """The purge of expired idempotency records and revocations (unless its interval is 0)."""
        self.purger.start()

    async def stop_users(self) -> None:
        await self.purger.stop()
        self.hasher.close()
        if isinstance(self.login_throttle, RedisLoginThrottle):
            await self.login_throttle.aclose()


def build_users(core: Core) -> UsersParts:
    settings, clock = core.settings, core.clock
    hasher = PasswordHasher(
        settings.password_hash_profile,
        workers=settings.password_hash_workers,
        queue=settings.password_hash_queue,
    )
    throttle = login_throttle_for(
        settings, in_process_login_throttle(settings, clock), metrics=core.metrics
    )
    devices = DeviceCookies(
        secret=core.secret,
        max_age_seconds=settings.login_device_cookie_days * 86400,
        clock=lambda: clock.now().timestamp(),
    )
    return UsersParts(
        hasher=hasher,
        login_throttle=throttle,
        devices=devices,
        users=UsersDeps(
            core.store, hasher, core.tokens, core.revocations, clock, throttle, devices
        ),
        cash=CashDeps(
            store=core.store,
            locker=core.locker,
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
            money=core.metrics.money,
        ),
        purger=Purger(
            store=core.store,
            clock=clock,
            interval=settings.purge_interval_seconds,
            batch=settings.purge_batch_size,
        ),
    )


@dataclass(kw_only=True, eq=False)
class UsersProcess(Core, UsersParts):
    """The users service's process: its core and its own parts, nothing else."""

    async def start(self) -> None:
        self.start_users()

    async def close(self) -> None:
        await self.stop_users()
        await self.close_core()


async def build_users_process(settings: Settings, *, clock: Clock | None = None) -> UsersProcess:
    core = await open_core(settings, clock=clock, service="users")
    return UsersProcess(**parts_of(core), **parts_of(build_users(core)))


def _satisfies(runtime: UsersProcess) -> api.UsersRuntime:
    return runtime  # mypy checks the runtime against what the API module declares


def create_app(settings: Settings, *, clock: Clock | None = None) -> FastAPI:
    """The users service alone, on its own port (`orderproc serve users`)."""
    return service_app(
        "users",
        settings,
        build=lambda: build_users_process(settings, clock=clock),
        routers=api.routers,
    )
