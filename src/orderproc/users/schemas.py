"""API schemas of the users service (requests and responses; never storage records)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints

from orderproc.common.clock import isoformat_z
from orderproc.common.fields import (
    DecimalInputSchema,
    MoneyText,
    PastDate,
    PlainDecimal,
    PrintableName,
)
from orderproc.common.money import format_money, from_cents
from orderproc.common.paging import ListPage
from orderproc.common.storage.records import AccountRecord, AuditEvent, CashEntry, UserRecord
from orderproc.common.vocabulary import USERNAME_REGEX

Username = Annotated[str, StringConstraints(strip_whitespace=True, pattern=USERNAME_REGEX)]
PersonName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100), PrintableName
]
Phone = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^\+?[0-9 ()\-]{5,20}$")]
Password = Annotated[str, Field(min_length=1, max_length=1024)]
CashAmount = Annotated[
    Decimal,
    PlainDecimal,
    Field(
        gt=0,
        le=1_000_000,
        decimal_places=2,
        description="USD, more than 0 and at most 1000000, at most 2 decimal places",
    ),
    DecimalInputSchema(example="100.00"),
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RegisterRequest(_Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "username": "alice",
                    "email": "alice@example.com",
                    "password": "correct horse battery staple",
                    "first_name": "Alice",
                    "last_name": "Liddell",
                }
            ]
        }
    )

    username: Username
    email: EmailStr
    password: Password
    first_name: PersonName
    last_name: PersonName
    phone: Phone | None = None
    date_of_birth: Annotated[date, Field(ge=date(1900, 1, 1)), PastDate] | None = None


class UserProfile(BaseModel):
    username: str
    email: str
    first_name: str
    last_name: str
    phone: str | None
    date_of_birth: date | None
    role: Literal["customer", "admin"]
    created_at: str
    updated_at: str

    @classmethod
    def of(cls, user: UserRecord) -> UserProfile:
        return cls(
            username=user.username,
            email=user.email,
            first_name=user.first_name,
            last_name=user.last_name,
            phone=user.phone,
            date_of_birth=user.date_of_birth,
            role=user.role,
            created_at=isoformat_z(user.created_at),
            updated_at=isoformat_z(user.updated_at),
        )


class RegisterResponse(BaseModel):
    message: str
    user: UserProfile


class LoginRequest(_Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"username": "alice", "password": "correct horse battery staple"}]
        }
    )

    username: Annotated[str, Field(min_length=1, max_length=64)]
    password: Password


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
    user: UserProfile


class MessageResponse(BaseModel):
    message: str


class ProfileUpdate(_Strict):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"phone": "+44 20 7946 0958"}, {"date_of_birth": None}]}
    )

    email: EmailStr | None = None
    first_name: PersonName | None = None
    last_name: PersonName | None = None
    phone: Phone | None = None
    date_of_birth: Annotated[date, Field(ge=date(1900, 1, 1)), PastDate] | None = None


class PasswordChange(_Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "current_password": "correct horse battery staple",
                    "new_password": "tr0ub4dor & 3, but longer",
                }
            ]
        }
    )

    current_password: Password
    new_password: Password


class PasswordChanged(BaseModel):
    message: str
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int


class BalanceRead(BaseModel):
    current_balance: MoneyText
    available_balance: MoneyText
    reserved_balance: MoneyText
    updated_at: str

    @classmethod
    def of(cls, account: AccountRecord) -> BalanceRead:
        return cls(
            current_balance=format_money(from_cents(account.balance_cents)),
            available_balance=format_money(from_cents(account.available_cents)),
            reserved_balance=format_money(from_cents(account.reserved_cents)),
            updated_at=isoformat_z(account.updated_at),
        )


class CashRequest(_Strict):
    model_config = ConfigDict(json_schema_extra={"examples": [{"amount": "100.00"}]})

    amount: CashAmount


class CashReceiptRead(BaseModel):
    transaction_id: str
    transaction_type: Literal["deposit", "withdraw"]
    amount: MoneyText
    balance: MoneyText
    available_balance: MoneyText
    timestamp: str


class TransactionRead(BaseModel):
    transaction_id: str
    transaction_type: Literal["deposit", "withdraw", "order_payment", "order_sale", "fee"]
    amount: Annotated[MoneyText, Field(description="USD, signed: + in, - out")]
    balance_after: MoneyText
    reference_id: str | None
    created_at: str

    @classmethod
    def of(cls, entry: CashEntry) -> TransactionRead:
        return cls(
            transaction_id=entry.entry_id,
            transaction_type=entry.kind,
            amount=format_money(from_cents(entry.amount_cents)),
            balance_after=format_money(from_cents(entry.balance_after_cents)),
            reference_id=entry.reference_id,
            created_at=isoformat_z(entry.created_at),
        )


class TransactionsPage(ListPage[TransactionRead]):
    """A page of the cash ledger, newest first."""

    transactions: list[TransactionRead] = Field(
        description="The same rows as `data`, under the name the original platform's clients "
        "read (legacy)"
    )


class AdminUserRead(UserProfile):
    user_id: str
    is_active: bool

    @classmethod
    def of(cls, user: UserRecord) -> AdminUserRead:
        return cls(
            **UserProfile.of(user).model_dump(), user_id=user.user_id, is_active=user.is_active
        )


class UsersPage(ListPage[AdminUserRead]):
    """A page of users, newest first."""


class AdminUserUpdate(_Strict):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"role": "admin"}, {"is_active": False}]}
    )

    role: Literal["customer", "admin"] | None = None
    is_active: bool | None = None


class AuditEventRead(BaseModel):
    event_id: str
    event_type: str
    user_id: str | None
    actor_id: str | None
    ip: str | None
    details: dict[str, object]
    created_at: str

    @classmethod
    def of(cls, event: AuditEvent) -> AuditEventRead:
        return cls(
            event_id=event.event_id,
            event_type=event.event_type,
            user_id=event.user_id,
            actor_id=event.actor_id,
            ip=event.ip,
            details=dict(event.details),
            created_at=isoformat_z(event.created_at),
        )


class AuditPage(ListPage[AuditEventRead]):
    """A page of the audit log, newest first."""
