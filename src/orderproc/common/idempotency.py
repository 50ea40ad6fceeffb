"""Idempotency keys: the fingerprint of a request, and replaying a stored outcome."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson

from orderproc.common.storage.ports import Store
from orderproc.common.storage.records import IdempotencyRecord, Outcome
from orderproc.errors import (
    BusinessRuleViolation,
    IdempotencyKeyReused,
    OrderProcError,
    error_class_for,
)

KEY_PATTERN = re.compile(r"^[A-Za-z0-9_\-:.]{1,128}$")


def fingerprint(method: str, path: str, body: dict[str, Any]) -> str:
    """Covers method, path and the parsed body, so key order and spacing do not matter."""
    canonical = orjson.dumps(body, option=orjson.OPT_SORT_KEYS, default=str)
    digest = hashlib.sha256()
    for part in (method.upper().encode(), path.encode(), canonical):
        digest.update(part)
        digest.update(b"\x00")
    return digest.hexdigest()


def replay(record: IdempotencyRecord, *, fingerprint_now: str) -> dict[str, Any]:
    """The first outcome for this key: its result, or its rejection raised again."""
    if record.fingerprint != fingerprint_now:
        raise IdempotencyKeyReused()
    if record.outcome == "error":
        error_class = error_class_for(str(record.payload.get("code")))
        raise _rebuild(error_class, str(record.payload.get("detail", "")))
    return record.payload


def rejection_payload(error: OrderProcError) -> dict[str, Any]:
    return {"code": error.code, "detail": error.detail}


@dataclass(frozen=True, slots=True)
class IdempotencyScope:
    """Where one request's answer is kept: the user's key and the request's fingerprint."""

    user_id: str
    key: str
    fingerprint: str

    @classmethod
    def of(cls, user_id: str, key: str | None, fingerprint: str) -> IdempotencyScope | None:
        return None if key is None else cls(user_id, key, fingerprint)

    def record(
        self, outcome: Outcome, payload: dict[str, Any], *, now: datetime, ttl: timedelta
    ) -> IdempotencyRecord:
        return IdempotencyRecord(
            self.user_id, self.key, self.fingerprint, outcome, payload, now, now + ttl
        )


async def remember_rejection(
    store: Store,
    scope: IdempotencyScope | None,
    rejection: BusinessRuleViolation,
    *,
    now: datetime,
    ttl: timedelta,
) -> None:
    """A business refusal is the answer for the key too, kept in its own small transaction.
    A transient one (a stale price, a paused asset) is not, so a later retry can succeed."""
    if scope is None or rejection.transient:
        return
    async with store.unit_of_work() as uow:
        uow.idempotency.add(scope.record("error", rejection_payload(rejection), now=now, ttl=ttl))
        await uow.commit()


def _rebuild(error_class: type[OrderProcError], detail: str) -> OrderProcError:
    error = error_class.__new__(error_class)
    OrderProcError.__init__(error, detail)
    return error
