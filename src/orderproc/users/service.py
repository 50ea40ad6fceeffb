"""Account use cases: register, log in and out, profile, password, admin and audit."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from orderproc.common.clock import Clock
from orderproc.common.ids import new_id
from orderproc.common.login_throttle import LoginAttempt, LoginThrottle, Scope
from orderproc.common.retry import retry_on_conflict
from orderproc.common.security.devices import DeviceCookies
from orderproc.common.security.passwords import PasswordHasher, VerifyResult, check_password_policy
from orderproc.common.security.revocation import RevocationChecker
from orderproc.common.security.tokens import IssuedToken, TokenService
from orderproc.common.storage.ports import Store, UnitOfWork
from orderproc.common.storage.records import (
    AccountRecord,
    AuditEvent,
    Page,
    PageKey,
    Role,
    UserRecord,
)
from orderproc.common.vocabulary import USERNAME_PATTERN, normalize_username
from orderproc.errors import (
    AccountDisabled,
    ClientBlocked,
    EmailTaken,
    InvalidCredentials,
    LastAdmin,
    LoginThrottled,
    UsernameTaken,
    UserNotFound,
    ValidationFailed,
)
from orderproc.users.domain import normalize_email

log = logging.getLogger("orderproc.users")


@dataclass(frozen=True, slots=True)
class UsersDeps:
    store: Store
    hasher: PasswordHasher
    tokens: TokenService
    revocations: RevocationChecker
    clock: Clock
    throttle: LoginThrottle
    devices: DeviceCookies


@dataclass(frozen=True, slots=True)
class Registration:
    username: str
    email: str
    password: str
    first_name: str
    last_name: str
    phone: str | None = None
    date_of_birth: date | None = None
    role: Role = "customer"


@dataclass(frozen=True, slots=True)
class ProfileChanges:
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    phone: str | None = None
    date_of_birth: date | None = None


def audit(uow: UnitOfWork, event_type: str, *, now: datetime, **fields: Any) -> None:
    details = fields.pop("details", {})
    uow.audit.add(
        AuditEvent(
            event_id=new_id(), event_type=event_type, created_at=now, details=details, **fields
        )
    )


async def register(reg: Registration, *, deps: UsersDeps, ip: str | None = None) -> UserRecord:
    """A new user with an empty cash account, or `UsernameTaken` / `EmailTaken`."""
    username, email = normalize_username(reg.username), normalize_email(reg.email)
    if not USERNAME_PATTERN.fullmatch(username):  # the API checks it too; the CLI does not
        raise ValidationFailed(
            "username: 3 to 30 letters (a-z), digits or _",
            [{"loc": ["username"], "msg": "3 to 30 letters, digits or _", "type": "value_error"}],
        )
    check_password_policy(reg.password, username=username, email=email)
    password_hash = await deps.hasher.hash(reg.password)

    async def attempt() -> UserRecord:
        now = deps.clock.now()
        async with deps.store.unit_of_work() as uow:
            if await uow.users.get_by_username(username):
                raise UsernameTaken()
            if await uow.users.get_by_email(email):
                raise EmailTaken()
            user = UserRecord(
                user_id=new_id(),
                username=username,
                email=email,
                password_hash=password_hash,
                first_name=reg.first_name,
                last_name=reg.last_name,
                phone=reg.phone,
                date_of_birth=reg.date_of_birth,
                role=reg.role,
                is_active=True,
                created_at=now,
                updated_at=now,
            )
            uow.users.add(user)
            uow.accounts.add(AccountRecord(user.user_id, 0, 0, 1, now))
            audit(uow, "register", now=now, user_id=user.user_id, actor_id=user.user_id, ip=ip)
            await uow.commit()
            return user

    return await retry_on_conflict(attempt)


@dataclass(frozen=True, slots=True)
class PasswordCheck:
    result: VerifyResult
    blocks: tuple[Scope, ...]  # the throttle blocks a failure started

    @property
    def ok(self) -> bool:
        return self.result.ok


async def check_password(
    username: str,
    password: str,
    password_hash: str | None,
    *,
    deps: UsersDeps,
    ip: str | None,
    device_cookie: str | None,
) -> PasswordCheck:
    """Every password check goes through here (login, password change, whatever comes next):
    a throttled attempt is refused before any hashing (`ClientBlocked` for a blocked address,
    `LoginThrottled` with the seconds to wait otherwise); a wrong password counts for the
    (username, client) pair, the username and the address; a right one clears the pair."""
    attempt = LoginAttempt(
        username=username,
        address=ip or "unknown",
        device=deps.devices.device_for(device_cookie, username),
    )
    verdict = await deps.throttle.check(attempt)
    if verdict.refused == "address":
        raise ClientBlocked()
    if verdict.refused is not None:
        raise LoginThrottled(retry_after=verdict.retry_after)
    result = await deps.hasher.verify(password, password_hash)
    if not result.ok:
        blocks = await deps.throttle.record_failure(attempt)
        if blocks:
            log.warning(
                "failed passwords started a block: %s",
                ", ".join(blocks),
                extra={"user": username if USERNAME_PATTERN.fullmatch(username) else "?"},
            )
        return PasswordCheck(result, blocks)
    await deps.throttle.record_success(attempt)
    return PasswordCheck(result, ())


async def login(
    username: str,
    password: str,
    *,
    deps: UsersDeps,
    ip: str | None = None,
    device_cookie: str | None = None,
) -> tuple[UserRecord, IssuedToken]:
    """A token for the right password; `InvalidCredentials` alike for a wrong one or an
    unknown user (which costs a dummy verify, so timing tells nothing). Throttled as
    `check_password` says."""
    username = normalize_username(username)
    async with deps.store.unit_of_work() as uow:
        user = await uow.users.get_by_username(username)
    check = await check_password(
        username,
        password,
        user.password_hash if user else None,
        deps=deps,
        ip=ip,
        device_cookie=device_cookie,
    )
    result = check.result
    now = deps.clock.now()
    if user is None or not result.ok:
        # Only what could be a username: people type passwords into the wrong field.
        details: dict[str, Any] = {
            "username": username if USERNAME_PATTERN.fullmatch(username) else "?"
        }
        if check.blocks:
            details["blocks"] = list(check.blocks)
        async with deps.store.unit_of_work() as uow:
            audit(
                uow,
                "login_failure",
                now=now,
                user_id=user.user_id if user else None,
                ip=ip,
                details=details,
            )
            await uow.commit()
        raise InvalidCredentials()
    if not user.is_active:
        raise AccountDisabled()
    token = deps.tokens.issue(user_id=user.user_id, role=user.role)
    async with deps.store.unit_of_work() as uow:
        audit(uow, "login_success", now=now, user_id=user.user_id, actor_id=user.user_id, ip=ip)
        await uow.commit()
    if result.needs_rehash:
        await _upgrade_hash(user, password, deps=deps)
    return user, token


async def _upgrade_hash(user: UserRecord, password: str, *, deps: UsersDeps) -> None:
    """Re-hash an old (bcrypt or weaker Argon2) hash; losing a race here is harmless."""
    new_hash = await deps.hasher.hash(password)
    async with deps.store.unit_of_work() as uow:
        current = await uow.users.get(user.user_id)
        if current is None or current.password_hash != user.password_hash:
            return
        uow.users.update(
            current.evolve(password_hash=new_hash, version=current.version + 1),
            expected_version=current.version,
        )
        try:
            await uow.commit()
        except Exception:  # the old hash still works; try again at the next login
            log.info("password hash upgrade skipped", extra={"user": user.user_id})


async def logout(
    *, user_id: str, jti: str, expires_at: datetime, deps: UsersDeps, ip: str | None = None
) -> None:
    async with deps.store.unit_of_work() as uow:
        uow.revocations.add(jti, user_id=user_id, expires_at=expires_at)
        audit(uow, "logout", now=deps.clock.now(), user_id=user_id, actor_id=user_id, ip=ip)
        await uow.commit()
    await deps.revocations.publish_revocation(jti, expires_at)


async def get_user(user_id: str, *, store: Store) -> UserRecord:
    async with store.unit_of_work() as uow:
        user = await uow.users.get(user_id)
    if user is None:
        raise UserNotFound()
    return user


async def update_profile(
    user_id: str, changes: ProfileChanges, *, deps: UsersDeps, fields_set: set[str]
) -> UserRecord:
    """Change only the fields the client sent (`fields_set`); a taken email is `EmailTaken`."""

    async def attempt() -> UserRecord:
        now = deps.clock.now()
        async with deps.store.unit_of_work() as uow:
            user = await uow.users.get(user_id)
            if user is None:
                raise UserNotFound()
            updates = {name: getattr(changes, name) for name in fields_set}
            if "email" in updates and updates["email"] is not None:
                updates["email"] = normalize_email(updates["email"])
                other = await uow.users.get_by_email(updates["email"])
                if other is not None and other.user_id != user_id:
                    raise EmailTaken()
            updated = user.evolve(**updates, updated_at=now, version=user.version + 1)
            uow.users.update(updated, expected_version=user.version)
            audit(
                uow,
                "profile_update",
                now=now,
                user_id=user_id,
                actor_id=user_id,
                details={"fields": sorted(updates)},
            )
            await uow.commit()
            return updated

    return await retry_on_conflict(attempt)


async def change_password(
    user_id: str,
    current: str,
    new: str,
    *,
    deps: UsersDeps,
    ip: str | None = None,
    device_cookie: str | None = None,
) -> IssuedToken:
    """Set a new password and revoke every token issued before now; returns a fresh token so
    the session that changed it carries on. The current password is checked (and throttled)
    as at login."""
    user = await get_user(user_id, store=deps.store)
    check = await check_password(
        user.username,
        current,
        user.password_hash,
        deps=deps,
        ip=ip,
        device_cookie=device_cookie,
    )
    if not check.ok:
        raise InvalidCredentials("The current password is not correct.")
    check_password_policy(new, username=user.username, email=user.email)
    new_hash = await deps.hasher.hash(new)

    async def attempt() -> IssuedToken:
        now = deps.clock.now()
        async with deps.store.unit_of_work() as uow:
            fresh = await uow.users.get(user_id)
            if fresh is None:
                raise UserNotFound()
            uow.users.update(
                fresh.evolve(
                    password_hash=new_hash,
                    tokens_valid_after=now,
                    updated_at=now,
                    version=fresh.version + 1,
                ),
                expected_version=fresh.version,
            )
            audit(uow, "password_change", now=now, user_id=user_id, actor_id=user_id, ip=ip)
            await uow.commit()
        await deps.revocations.publish_user_change(user_id)
        return deps.tokens.issue(user_id=user_id, role=fresh.role)

    return await retry_on_conflict(attempt)


async def list_users(*, store: Store, limit: int, after: PageKey | None = None) -> Page[UserRecord]:
    async with store.unit_of_work() as uow:
        return await uow.users.list(limit=limit, after=after)


async def admin_update_user(
    username: str,
    *,
    role: Role | None,
    is_active: bool | None,
    actor_id: str,
    deps: UsersDeps,
    ip: str | None = None,
) -> UserRecord:
    """Change a role or enable/disable; either revokes the user's tokens (they carry the role).

    `LastAdmin` if it would leave no active admin (an admin demoting or disabling themselves
    included), decided inside the unit of work that makes the change; see `_stage_admin_guard`
    for why two concurrent demotions cannot both pass. Audited as `admin_user_update` with the
    actor, the target and each change from and to."""

    async def attempt() -> UserRecord:
        now = deps.clock.now()
        async with deps.store.unit_of_work() as uow:
            user = await uow.users.get_by_username(normalize_username(username))
            if user is None:
                raise UserNotFound()
            changes: dict[str, Any] = {}
            if role is not None and role != user.role:
                changes["role"] = role
            if is_active is not None and is_active != user.is_active:
                changes["is_active"] = is_active
            if not changes:
                return user
            updated = user.evolve(
                **changes, tokens_valid_after=now, updated_at=now, version=user.version + 1
            )
            if _is_active_admin(user) and not _is_active_admin(updated):
                await _stage_admin_guard(uow, updated, expected_version=user.version)
            else:
                uow.users.update(updated, expected_version=user.version)
            audit(
                uow,
                "admin_user_update",
                now=now,
                user_id=user.user_id,
                actor_id=actor_id,
                ip=ip,
                details={
                    "username": user.username,
                    **{k: {"from": getattr(user, k), "to": v} for k, v in changes.items()},
                },
            )
            await uow.commit()
        await deps.revocations.publish_user_change(user.user_id)
        return updated

    return await retry_on_conflict(attempt)


def _is_active_admin(user: UserRecord) -> bool:
    return user.role == "admin" and user.is_active


async def _stage_admin_guard(
    uow: UnitOfWork, leaving: UserRecord, *, expected_version: int
) -> None:
    """Stage `leaving` (an admin's row, no longer an active admin) and refuse with `LastAdmin`
    if no other active admin remains.

    Reads see committed data and nothing locks them, so two units that each demote a different
    one of two admins would both count two and both commit (write skew). The guard turns the
    read into writes: every other active admin's row is staged too, unchanged but for a version
    bump at its expected version. Any two units that take an admin away then write a row in
    common, the later commit fails its condition (`ConcurrencyConflict`), and its retry reads
    the new count. The rows are written in user id order, so PostgreSQL's row locks are taken
    in one order (a wait, never a deadlock)."""
    others = [a for a in await uow.users.active_admins() if a.user_id != leaving.user_id]
    if not others:
        raise LastAdmin()
    writes = [(leaving, expected_version)]
    writes += [(a.evolve(version=a.version + 1), a.version) for a in others]
    for record, version in sorted(writes, key=lambda write: write[0].user_id):
        uow.users.update(record, expected_version=version)


async def list_audit(
    *,
    store: Store,
    user_id: str | None,
    event_type: str | None,
    start: datetime | None,
    end: datetime | None,
    limit: int,
    after: PageKey | None = None,
) -> Page[AuditEvent]:
    async with store.unit_of_work() as uow:
        return await uow.audit.list(
            user_id=user_id,
            event_type=event_type,
            start=start,
            end=end,
            limit=limit,
            after=after,
        )
