"""Field types shared by the services' API schemas: decimal inputs and outputs, past dates,
names and texts free of invisible and control characters.

Money, quantities and prices leave as decimal strings whose JSON Schema is a `string` with a
`pattern`, so a client generator types them `str`. They arrive as a plain decimal string or a
JSON number; `DecimalInputSchema` states that in standard JSON Schema.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, GetJsonSchemaHandler, WithJsonSchema
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

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


# Control (Cc), format (Cf: the bidirectional overrides and isolates U+202A-U+202E and
# U+2066-U+2069, zero-width spaces and joiners, the BOM), surrogate (Cs), private-use (Co) and
# unassigned (Cn) code points, and the line and paragraph separators (Zl, Zp): none of them
# belongs in a name, and each can make one text look like another or break where it is shown.
REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
# Free text (a description) may keep its line breaks and tabs.
_TEXT_CONTROLS = frozenset("\t\n\r")


def refused_character(value: str, *, allow: frozenset[str] = frozenset()) -> str | None:
    """The first character of `value` that no name may hold, described (`U+202E at position
    3`), or None."""
    for position, char in enumerate(value, start=1):
        if char not in allow and unicodedata.category(char) in REFUSED_CATEGORIES:
            return f"U+{ord(char):04X} at position {position}"
    return None


def _printable_name(value: str) -> str:
    if found := refused_character(value):
        raise ValueError(
            f"must not contain control, invisible formatting or unassigned characters ({found})"
        )
    return value


def _printable_text(value: str) -> str:
    if found := refused_character(value, allow=_TEXT_CONTROLS):
        raise ValueError(
            "must not contain control (other than line breaks and tabs), invisible formatting "
            f"or unassigned characters ({found})"
        )
    return value


PlainDecimal = BeforeValidator(_plain_decimal)
PastDate = AfterValidator(_in_the_past)
PrintableName = AfterValidator(_printable_name)
"""For every name people give (a person's, an asset's): refuses `REFUSED_CATEGORIES`."""
PrintableText = AfterValidator(_printable_text)
"""For free text: as `PrintableName`, but keeps tabs and line breaks."""

# Pydantic's constraint names and their JSON Schema keywords.
_BOUNDS = {"gt": "exclusiveMinimum", "ge": "minimum", "lt": "exclusiveMaximum", "le": "maximum"}


class DecimalInputSchema:
    """The JSON Schema of a constrained `Decimal` input: `anyOf` a plain decimal string (first,
    the form to prefer: it is exact) and a JSON number.

    Behind `PlainDecimal`, pydantic cannot put a `Field`'s `gt`, `le` or `decimal_places` into
    the decimal schema, so it writes them as keywords of its own next to `anyOf [number, string]`.
    Placed after the `Field`, this turns them into standard JSON Schema: the decimal places
    into the string's `pattern`, the bounds into the number's `exclusiveMinimum`, `maximum`...
    Validation is untouched; say the bounds in the `Field`'s description too, for the string."""

    def __init__(self, example: str) -> None:
        self.example = example

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        if handler.mode != "validation":
            raise TypeError("DecimalInputSchema describes inputs; answers take a *Text type")
        schema = dict(handler(core_schema))
        branches = schema.pop("anyOf", None)
        if branches != [{"type": "number"}, {"type": "string"}]:
            raise TypeError(f"not a Decimal behind PlainDecimal: {schema}")
        places = schema.pop("decimal_places", None)
        number: dict[str, Any] = {"type": "number"}
        for constraint, keyword in _BOUNDS.items():
            if constraint in schema:
                number[keyword] = _json_number(schema.pop(constraint))
        leaked = sorted(key for key in schema if key not in ("description", "title", "examples"))
        if leaked:
            raise TypeError(f"no standard JSON Schema for {leaked}")
        low = number.get("exclusiveMinimum", number.get("minimum"))
        sign = "" if low is not None and low >= 0 else "-?"
        if places is None:
            fraction = r"(\.[0-9]+)?"
        else:
            fraction = rf"(\.[0-9]{{1,{places}}})?" if places else ""
        text = {"type": "string", "pattern": f"^{sign}[0-9]+{fraction}$"}
        return {**schema, "anyOf": [text, number], "examples": [self.example]}


def _json_number(value: object) -> int | float:
    exact = Decimal(str(value))
    return int(exact) if exact == exact.to_integral_value() else float(exact)


def _decimal_text(pattern: str, example: str, description: str) -> WithJsonSchema:
    return WithJsonSchema(
        {"type": "string", "pattern": pattern, "description": description, "examples": [example]}
    )


MONEY_PATTERN = r"^-?[0-9]+\.[0-9]{2}$"
QUANTITY_PATTERN = r"^[0-9]+\.[0-9]{8}$"
DECIMAL_PATTERN = r"^-?[0-9]+\.[0-9]{2,}$"

MoneyText = Annotated[str, _decimal_text(MONEY_PATTERN, "1000.00", "USD, 2 decimal places")]
"""USD as `money.format_money` writes it: exactly two decimal places, signed."""
QuantityText = Annotated[
    str, _decimal_text(QUANTITY_PATTERN, "0.05000000", "Units of the asset, 8 decimal places")
]
"""An amount of an asset as `money.format_quantity` writes it: exactly eight places."""
DecimalText = Annotated[str, _decimal_text(DECIMAL_PATTERN, "64123.50", "Exact decimal")]
"""Prices and market data as `money.format_price` writes them: exact, two places or more."""
