"""Field types shared by the services' API schemas: decimal inputs and outputs, past dates.

Money, quantities and prices leave as decimal strings whose JSON Schema is a `string` with a
`pattern`, so a client generator types them `str`. They arrive as a plain decimal string or a
JSON number; `DecimalInputSchema` states that in standard JSON Schema.
"""

from __future__ import annotations

import re
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


PlainDecimal = BeforeValidator(_plain_decimal)
PastDate = AfterValidator(_in_the_past)

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
