"""Is this token still good? Revoked ids and per-user cut-offs live in the store; this keeps a
short-lived cache of both so a request costs two dict lookups, and revocations made by this
process are seen at once (write-through). Another process's revocation is seen within
`cache_seconds`.

With Redis (`shared`, `common/redis_shared.py`), revocations are also shared at once: a logout
sets the token's id in Redis until the token expires, a password change, role change or
disabling sets a per-user mark, and every check asks Redis first (one round trip for both). A
revoked id there refuses the token; a changed mark reloads the user from the store. Redis never
allows anything on its own: when it misses, or is down or slow, the check goes on exactly as
without it (the cache, then the store), so a revoked token stays revoked.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from orderproc.common.storage.ports import Store
from orderproc.errors import AccountDisabled, TokenRevoked


@dataclass(frozen=True, slots=True)
class _UserState:
    is_active: bool
    valid_after: datetime | None
    checked_at: float
    mark: bytes | None = None  # the user's change mark in Redis when loaded


class SharedRevocations(Protocol):
    """Revocations shared by every process (Redis). Failures are the adapter's to absorb."""

    async def lookup(self, jti: str, user_id: str) -> tuple[bool, bytes | None] | None:
        """(is this id revoked, the user's change mark); None when it could not be asked."""
        ...

    async def revoke(self, jti: str, expires_at: datetime) -> None:
        """Share a revocation the store has committed, until the token expires."""
        ...

    async def user_changed(self, user_id: str) -> None:
        """Share that a user's cut-off, role or status changed (the store has committed it)."""
        ...

    async def aclose(self) -> None: ...


class RevocationChecker:
    def __init__(
        self,
        store: Store,
        *,
        cache_seconds: float,
        max_entries: int = 100_000,
        shared: SharedRevocations | None = None,
    ) -> None:
        self._store = store
        self._shared = shared
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
        mark = state.mark if state is not None else None
        if self._shared is not None:
            seen = await self._shared.lookup(jti, user_id)
            if seen is not None:  # else Redis could not say: go on as without it
                revoked, mark = seen
                if revoked:
                    self.revoked(jti)
                    raise TokenRevoked()
                if state is not None and state.mark != mark:
                    state = None  # changed by another process since we loaded it
        if state is None or now - state.checked_at > self._ttl:
            state = await self._load_user(user_id, now, mark)
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

    async def publish_revocation(self, jti: str, expires_at: datetime) -> None:
        """Note a revocation this process just committed, and share it with every process."""
        self.revoked(jti)
        if self._shared is not None:
            await self._shared.revoke(jti, expires_at)

    async def publish_user_change(self, user_id: str) -> None:
        """`user_changed`, and tell every process (their cached state of the user is stale)."""
        self.user_changed(user_id)
        if self._shared is not None:
            await self._shared.user_changed(user_id)

    async def aclose(self) -> None:
        """Close the shared path's client (at shutdown)."""
        if self._shared is not None:
            await self._shared.aclose()

    async def _load_user(self, user_id: str, now: float, mark: bytes | None = None) -> _UserState:
        async with self._store.unit_of_work() as uow:
            user = await uow.users.get(user_id)
        state = _UserState(
            is_active=user is not None and user.is_active,
            valid_after=user.tokens_valid_after if user else None,
            checked_at=now,
            mark=mark,
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
