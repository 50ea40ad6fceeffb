"""Storage records: what the store keeps, in exact integer units (cents, 10^-8 units)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any, Generic, Literal, Self, TypeVar

Role = Literal["customer", "admin"]
CashEntryKind = Literal["deposit", "withdraw", "order_payment", "order_sale", "fee"]
LimitKind = Literal["deposit", "withdraw"]
Outcome = Literal["ok", "error"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    total_count: int | None
    next_cursor: str | None = None


class _Record:
    __slots__ = ()

    def evolve(self, **changes: Any) -> Self:
        return replace(self, **changes)  # type: ignore[type-var]


@dataclass(frozen=True, slots=True)
class UserRecord(_Record):
    user_id: str
    username: str
    email: str
    password_hash: str
    first_name: str
    last_name: str
    phone: str | None
    date_of_birth: date | None
    role: Role
    is_active: bool
    created_at: datetime
    updated_at: datetime
    tokens_valid_after: datetime | None = None
    version: int = 1


@dataclass(frozen=True, slots=True)
class AccountRecord(_Record):
    """The shared cash account: balance, what open orders reserve, and what is left."""

    user_id: str
    balance_cents: int
    reserved_cents: int
    version: int
    updated_at: datetime

    @property
    def available_cents(self) -> int:
        return self.balance_cents - self.reserved_cents


@dataclass(frozen=True, slots=True)
class CashEntry(_Record):
    entry_id: str
    user_id: str
    kind: CashEntryKind
    amount_cents: int
    balance_after_cents: int
    reference_id: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class IdempotencyRecord(_Record):
    user_id: str
    key: str
    fingerprint: str
    outcome: Outcome
    payload: dict[str, Any]
    created_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class AuditEvent(_Record):
    event_id: str
    event_type: str
    created_at: datetime
    user_id: str | None = None
    actor_id: str | None = None
    ip: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
