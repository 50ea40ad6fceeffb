"""Is this token still good? Revoked ids and per-user cut-offs live in the store; this keeps a
short-lived cache of both so a request costs two dict lookups, and revocations made by this
process are seen at once (write-through). Another process's revocation is seen within
`cache_seconds` (sharing revocations through Redis is planned for distributed mode; see
docs/architecture.md)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from orderproc.common.storage.ports import Store
from orderproc.errors import AccountDisabled, TokenRevoked


@dataclass(frozen=True, slots=True)
class _UserState:
    is_active: bool
    valid_after: datetime | None
    checked_at: float


class RevocationChecker:
    def __init__(self, store: Store, *, cache_seconds: float, max_entries: int = 100_000) -> None:
        self._store = store
        self._ttl = cache_seconds
        self._max = max_entries
        self._good_jti: dict[str, float] = {}
        self._revoked_jti: set[str] = set()
        self._users: dict[str, _UserState] = {}

    async def ensure_valid(self, *, user_id: str, jti: str, issued_at: datetime) -> None:
        """Raise `TokenRevoked` (or `AccountDisabled`) unless the token may still be used."""
        if jti in self._revoked_jti:
            raise TokenRevoked()
        now = time.monotonic()
        state = self._users.get(user_id)
        if state is None or now - state.checked_at > self._ttl:
            state = await self._load_user(user_id, now)
        if not state.is_active:
            raise AccountDisabled()
        if state.valid_after is not None and issued_at < state.valid_after:
            raise TokenRevoked()
        checked = self._good_jti.get(jti)
        if checked is None or now - checked > self._ttl:
            await self._check_jti(jti, now)

    def revoked(self, jti: str) -> None:
        """Note a revocation this process just committed."""
        self._revoked_jti.add(jti)
        self._good_jti.pop(jti, None)
        if len(self._revoked_jti) > self._max:
            self._revoked_jti.clear()  # the store still knows; this is only a cache

    def user_changed(self, user_id: str) -> None:
        """Forget the cached state of a user whose cut-off, role or status just changed."""
        self._users.pop(user_id, None)

    async def _load_user(self, user_id: str, now: float) -> _UserState:
        async with self._store.unit_of_work() as uow:
            user = await uow.users.get(user_id)
        state = _UserState(
            is_active=user is not None and user.is_active,
            valid_after=user.tokens_valid_after if user else None,
            checked_at=now,
        )
        if len(self._users) >= self._max:
            self._users.clear()
        self._users[user_id] = state
        return state

    async def _check_jti(self, jti: str, now: float) -> None:
        async with self._store.unit_of_work() as uow:
            revoked = await uow.revocations.is_revoked(jti)
        if revoked:
            self.revoked(jti)
            raise TokenRevoked()
        if len(self._good_jti) >= self._max:
            self._good_jti.clear()
        self._good_jti[jti] = now
