"""Pure rules of the users service: emails, cash movements and daily limits (the username
rule is shared vocabulary: `common.vocabulary`)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from orderproc.common.money import format_money, from_cents, to_cents
from orderproc.errors import DailyLimitExceeded, InsufficientFunds, ValidationFailed

CashKind = Literal["deposit", "withdraw"]


def normalize_email(email: str) -> str:
    return email.strip().lower()


@dataclass(frozen=True, slots=True)
class CashRules:
    """Limits on one cash movement and per UTC day, in cents."""

    max_amount_cents: int
    daily_limit_cents: dict[CashKind, int]


def validate_amount(amount: Decimal, rules: CashRules) -> int:
    """The amount in cents, if it is a positive cash amount within the per-operation maximum."""
    if amount <= 0:
        raise ValidationFailed("amount must be greater than 0")
    cents = to_cents(amount)
    if cents > rules.max_amount_cents:
        raise ValidationFailed(f"amount must be at most {_usd(rules.max_amount_cents)}")
    return cents


def signed_movement(
    kind: CashKind,
    amount_cents: int,
    *,
    available_cents: int,
    used_today_cents: int,
    rules: CashRules,
) -> int:
    """The signed change to the balance, or the rule it breaks."""
    if kind == "withdraw" and amount_cents > available_cents:
        raise InsufficientFunds(
            f"available balance is {_usd(available_cents)}, cannot withdraw {_usd(amount_cents)}"
        )
    limit = rules.daily_limit_cents[kind]
    if used_today_cents + amount_cents > limit:
        left = max(0, limit - used_today_cents)
        raise DailyLimitExceeded(f"daily {kind} limit is {_usd(limit)}; {_usd(left)} left today")
    return amount_cents if kind == "deposit" else -amount_cents


def _usd(cents: int) -> str:
    return format_money(from_cents(cents))
