"""Jinja filters that show money, prices, quantities and times the way people read them.

Inputs are the API's decimal strings (or Decimals); nothing passes through a float."""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

from orderproc.common.money import CENT, QUANTITY_STEP

MINUS = "\u2212"


def to_decimal(value: object) -> Decimal | None:
    if value is None or value == "":
        return None
    if isinstance(value, Decimal):
        return value
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _grouped(amount: Decimal, places: int) -> str:
    step = Decimal(1).scaleb(-places)
    return f"{abs(amount).quantize(step, rounding=ROUND_HALF_EVEN):,.{places}f}"


def _sign(amount: Decimal, *, plus: bool) -> str:
    if amount < 0 and amount.quantize(CENT) != 0:
        return MINUS
    return "+" if plus and amount > 0 else ""


def money(value: object, plus: bool = False) -> str:
    """`$1,234.56`, `-$3.10` (with a true minus sign); with `plus`, gains get a `+`."""
    amount = to_decimal(value)
    if amount is None:
        return "—"
    return f"{_sign(amount, plus=plus)}${_grouped(amount, 2)}"


def price(value: object) -> str:
    """A unit price: cents above $1, more places below so a memecoin still shows 4 digits."""
    amount = to_decimal(value)
    if amount is None:
        return "—"
    if abs(amount) >= 1 or amount == 0:
        return f"${_grouped(amount, 2)}"
    places = min(max(-amount.adjusted() + 3, 2), 12)
    return f"${_grouped(amount, places)}"


def quantity(value: object) -> str:
    """Up to 8 places, trailing zeros dropped: `0.0015`, `12`, `1,250.5`."""
    amount = to_decimal(value)
    if amount is None:
        return "—"
    text = _grouped(amount.quantize(QUANTITY_STEP), 8).rstrip("0").rstrip(".")
    return f"{MINUS if amount < 0 else ''}{text}"


def percent(value: object, plus: bool = True) -> str:
    amount = to_decimal(value)
    if amount is None:
        return "—"
    return f"{_sign(amount, plus=plus)}{_grouped(amount, 2)}%"


def tone(value: object) -> str:
    """A CSS class for a signed figure: `up`, `down` or `flat`."""
    amount = to_decimal(value)
    if amount is None or amount.quantize(CENT) == 0:
        return "flat"
    return "up" if amount > 0 else "down"


def when(value: object) -> str:
    """`2026-11-23 22:50 UTC` from the API's ISO-8601 text."""
    if not value:
        return "—"
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return str(value)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def compact_money(value: object) -> str:
    """Market caps and volumes: `$1.01T`, `$21.3B`, `$950.2M`."""
    amount = to_decimal(value)
    if amount is None:
        return "—"
    for size, suffix in (
        (Decimal(10) ** 12, "T"),
        (Decimal(10) ** 9, "B"),
        (Decimal(10) ** 6, "M"),
    ):
        if abs(amount) >= size:
            return f"${_grouped(amount / size, 2)}{suffix}"
    return money(amount)


FILTERS = {
    "money": money,
    "price": price,
    "quantity": quantity,
    "percent": percent,
    "tone": tone,
    "when": when,
    "compact_money": compact_money,
}
