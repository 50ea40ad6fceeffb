"""Input field types shared by the services' API schemas."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

from pydantic import AfterValidator, BeforeValidator

_PLAIN_DECIMAL = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?")


def _plain_decimal(value: object) -> object:
    """Decimal text as people write money: ASCII digits and one point. Python's own parser
    would also take `1_000`, `1e3` and full-width digits."""
    if isinstance(value, bool):
        raise ValueError("must be a number, not true or false")
    if isinstance(value, str) and not _PLAIN_DECIMAL.fullmatch(value.strip()):
        raise ValueError("must be a plain decimal number such as 12.34")
    return value


def _in_the_past(value: date) -> date:
    if value >= datetime.now(UTC).date():
        raise ValueError("must be a date in the past")
    return value


PlainDecimal = BeforeValidator(_plain_decimal)
PastDate = AfterValidator(_in_the_past)
