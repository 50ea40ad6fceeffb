"""The OpenAPI document is one a client generator likes: explicit, stable operation ids; money
as pattern strings in standard JSON Schema; every error declared as problem+json; examples on
every request body. (tests/system/test_openapi_client.py generates a client from it.)"""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from orderproc import testing
from orderproc.common.fields import DECIMAL_PATTERN, MONEY_PATTERN, QUANTITY_PATTERN
from orderproc.common.money import format_money, format_price, format_quantity
from orderproc.errors.problem import PROBLEM_JSON
from orderproc.gateway.app import API_ROUTERS, create_app
from orderproc.inventory.schemas import AssetCreate
from orderproc.orders.schemas import OrderCreate
from orderproc.users.schemas import CashRequest

Document = dict[str, Any]

# A rename changes every generated client's function names: make it a decision, here.
OPERATION_IDS = {
    "POST /api/v1/auth/register": "auth_register",
    "POST /api/v1/auth/login": "auth_login",
    "POST /api/v1/auth/token": "auth_token",
    "POST /api/v1/auth/logout": "auth_logout",
    "GET /api/v1/auth/profile": "auth_get_profile",
    "PUT /api/v1/auth/profile": "auth_update_profile",
    "POST /api/v1/auth/password": "auth_change_password",
    "GET /api/v1/balance": "balance_get",
    "POST /api/v1/balance/deposit": "balance_deposit",
    "POST /api/v1/balance/withdraw": "balance_withdraw",
    "GET /api/v1/balance/transactions": "balance_list_transactions",
    "GET /api/v1/inventory/assets": "inventory_list_assets",
    "GET /api/v1/inventory/assets/{asset_id}": "inventory_get_asset",
    "GET /api/v1/inventory/assets/{asset_id}/candles": "inventory_list_candles",
    "POST /api/v1/orders": "orders_place",
    "POST /api/v1/orders/estimate": "orders_estimate",
    "GET /api/v1/orders": "orders_list",
    "GET /api/v1/orders/{order_id}": "orders_get",
    "DELETE /api/v1/orders/{order_id}": "orders_cancel",
    "GET /api/v1/portfolio": "portfolio_get",
    "GET /api/v1/balance/asset/{asset_id}": "portfolio_get_position",
    "GET /api/v1/assets/{asset_id}/transactions": "portfolio_list_asset_transactions",
    "GET /api/v1/admin/users": "admin_list_users",
    "PATCH /api/v1/admin/users/{username}": "admin_update_user",
    "GET /api/v1/admin/audit": "admin_list_audit_events",
    "POST /api/v1/admin/assets": "admin_create_asset",
    "PATCH /api/v1/admin/assets/{asset_id}": "admin_update_asset",
    "GET /api/v1/admin/reconcile": "admin_reconcile",
    "GET /api/v1/stream/prices": "stream_prices",
    "POST /api/v1/stream/ticket": "stream_create_ticket",
    "GET /health": "operations_health",
    "GET /ready": "operations_ready",
    "GET /metrics": "operations_metrics",
}
PREFIXES = (
    "auth", "balance", "inventory", "orders", "portfolio", "admin", "stream", "operations"
)  # fmt: skip

# JSON Schema 2020-12 keywords, and the ones OpenAPI 3.1 adds. Anything else is a keyword of
# our own that a generator or validator does not know (pydantic's `gt`, `decimal_places`...).
_CORE = ("$ref", "$defs", "$schema", "$id", "$comment")
_ANNOTATIONS = (
    "title",
    "description",
    "default",
    "examples",
    "deprecated",
    "readOnly",
    "writeOnly",
)
_ANY = ("type", "enum", "const", "format", "contentMediaType", "contentEncoding")
_NUMBERS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")
_STRINGS = ("pattern", "minLength", "maxLength")
_ARRAYS = ("items", "prefixItems", "minItems", "maxItems", "uniqueItems", "contains")
_OBJECTS = ("properties", "additionalProperties", "patternProperties", "propertyNames")
_LIMITS = ("required", "minProperties", "maxProperties", "dependentRequired")
_LOGIC = ("anyOf", "oneOf", "allOf", "not", "if", "then", "else")
_OPENAPI = ("discriminator", "xml", "externalDocs")
JSON_SCHEMA_KEYWORDS = frozenset[str]().union(
    _CORE, _ANNOTATIONS, _ANY, _NUMBERS, _STRINGS, _ARRAYS, _OBJECTS, _LIMITS, _LOGIC, _OPENAPI
)
_SUBSCHEMA_MAPS = ("properties", "$defs", "patternProperties")
_SUBSCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SUBSCHEMAS = ("items", "additionalProperties", "not", "if", "then", "else", "contains")


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    return create_app(testing.test_settings(tmp_path_factory.mktemp("openapi")))


@pytest.fixture(scope="module")
def document(app: FastAPI) -> Document:
    return app.openapi()


def operations(document: Document) -> Iterator[tuple[str, Document]]:
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            yield f"{method.upper()} {path}", operation


def subschemas(schema: Any) -> Iterator[Document]:
    """`schema` and every schema inside it (not the names of its properties)."""
    if not isinstance(schema, dict):
        return
    yield schema
    for key in _SUBSCHEMA_MAPS:
        for inner in schema.get(key, {}).values():
            yield from subschemas(inner)
    for key in _SUBSCHEMA_LISTS:
        for inner in schema.get(key, []):
            yield from subschemas(inner)
    for key in _SUBSCHEMAS:
        yield from subschemas(schema.get(key))


def resolve(document: Document, schema: Document) -> Document:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    return document["components"]["schemas"][ref.removeprefix("#/components/schemas/")]  # type: ignore[no-any-return]


class TestOperationIds:
    def test_every_route_in_the_document_names_its_operation_id(self, app: FastAPI) -> None:
        routers = [router.routes for router in API_ROUTERS]
        routes = [route for group in (app.routes, *routers) for route in group]
        documented = [r for r in routes if isinstance(r, APIRoute) and r.include_in_schema]
        assert all(route.operation_id for route in documented)
        assert {route.operation_id for route in documented} == set(OPERATION_IDS.values())

    def test_the_operation_ids_are_the_agreed_ones(self, document: Document) -> None:
        assert {key: op["operationId"] for key, op in operations(document)} == OPERATION_IDS

    def test_they_are_unique_readable_snake_case_not_derived_from_the_path(
        self, document: Document
    ) -> None:
        ids = [op["operationId"] for _, op in operations(document)]
        assert len(ids) == len(set(ids))
        for key, operation in operations(document):
            method, path = key.lower().split(" ")
            operation_id = operation["operationId"]
            assert re.fullmatch(r"[a-z]+(_[a-z]+)+", operation_id), operation_id
            assert operation_id.startswith(tuple(f"{prefix}_" for prefix in PREFIXES))
            # FastAPI's default is `{function}{path}_{method}`: place_order_api_v1_orders_post.
            slug = re.sub(r"\W", "_", path)
            assert "api_v1" not in operation_id
            assert not operation_id.endswith(f"{slug}_{method}")


class TestErrors:
    def test_every_error_is_declared_as_problem_json_only(self, document: Document) -> None:
        problem = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
        errors = 0
        for key, operation in operations(document):
            for status, response in operation["responses"].items():
                if status[0] in "45" or status == "default":
                    errors += 1
                    assert response["content"] == problem, (key, status)
        assert errors

    def test_every_operation_with_input_declares_its_422(self, document: Document) -> None:
        for key, operation in operations(document):
            if operation.get("parameters") or operation.get("requestBody"):
                assert "422" in operation["responses"], key

    def test_every_operation_with_a_body_declares_400_and_413(self, document: Document) -> None:
        # An undecodable body is FastAPI's 400; one over `max_body_bytes` is the edge's 413.
        for key, operation in operations(document):
            if operation.get("requestBody"):
                assert {"400", "413"} <= set(operation["responses"]), key

    def test_every_operation_that_touches_the_store_declares_its_503(
        self, document: Document
    ) -> None:
        # Only the in-memory catalog and the operations routes answer without the store.
        without_store = {
            "GET /api/v1/inventory/assets",
            "GET /api/v1/inventory/assets/{asset_id}",
            "GET /api/v1/stream/prices",  # the hub in memory; a ticket lives in Redis or memory
            "GET /health",
            "GET /metrics",
        }
        for key, operation in operations(document):
            if key.split()[1].startswith("/api/") or key == "GET /ready":
                assert ("503" in operation["responses"]) == (key not in without_store), key

    def test_fastapis_validation_error_schemas_are_gone(self, document: Document) -> None:
        schemas = document["components"]["schemas"]
        assert "HTTPValidationError" not in schemas
        assert "ValidationError" not in schemas
        assert schemas["Problem"]["properties"]["errors"]["anyOf"][0]["items"] == {
            "$ref": "#/components/schemas/FieldError"
        }


class TestSchemas:
    def test_only_standard_json_schema_keywords(self, document: Document) -> None:
        for name, schema in document["components"]["schemas"].items():
            for inner in subschemas(schema):
                assert set(inner) <= JSON_SCHEMA_KEYWORDS, (name, inner)

    def test_every_reference_resolves(self, document: Document) -> None:
        schemas = document["components"]["schemas"]
        refs = re.findall(r"'\$ref': '#/components/schemas/([^']+)'", repr(document))
        assert refs
        assert set(refs) <= set(schemas)

    def test_every_request_body_has_examples(self, document: Document) -> None:
        bodies = 0
        for key, operation in operations(document):
            for content in operation.get("requestBody", {}).get("content", {}).values():
                bodies += 1
                body = resolve(document, content["schema"])
                by_property = all("examples" in p for p in body["properties"].values())
                assert body.get("examples") or by_property, key
        assert bodies == 12

    @pytest.mark.parametrize(
        ("schema", "fields", "pattern"),
        [
            ("BalanceRead", ["current_balance", "available_balance"], MONEY_PATTERN),
            ("CashReceiptRead", ["amount", "balance", "available_balance"], MONEY_PATTERN),
            ("TransactionRead", ["amount", "balance_after"], MONEY_PATTERN),
            ("OrderRead", ["total_amount", "fee"], MONEY_PATTERN),
            ("EstimateRead", ["total_amount", "fee", "cash_change"], MONEY_PATTERN),
            ("EstimateRead", ["available_cash"], MONEY_PATTERN),
            ("PortfolioRead", ["cash", "total_value", "realized_pnl"], MONEY_PATTERN),
            ("PositionRead", ["market_value", "unrealized_pnl"], MONEY_PATTERN),
            ("OrderRead", ["quantity"], QUANTITY_PATTERN),
            ("EstimateRead", ["quantity", "available_quantity"], QUANTITY_PATTERN),
            ("EstimateRead", ["price"], DECIMAL_PATTERN),
            ("PositionRead", ["quantity", "available"], QUANTITY_PATTERN),
            ("AssetTransactionRead", ["quantity", "quantity_after"], QUANTITY_PATTERN),
            ("AssetRead", ["price_usd"], DECIMAL_PATTERN),
            ("PositionRead", ["average_cost", "percentage"], DECIMAL_PATTERN),
            ("CandleRead", ["open", "high", "low", "close", "volume"], DECIMAL_PATTERN),
        ],
    )
    def test_money_leaves_as_a_string_with_a_pattern_and_an_example(
        self, document: Document, schema: str, fields: list[str], pattern: str
    ) -> None:
        properties = document["components"]["schemas"][schema]["properties"]
        for field in fields:
            prop = properties[field]
            assert (prop["type"], prop["pattern"]) == ("string", pattern), field
            assert re.fullmatch(pattern.strip("^$"), prop["examples"][0]), field

    @pytest.mark.parametrize(
        ("schema", "field"),
        [
            ("CashRequest", "amount"),
            ("OrderCreate", "quantity"),
            ("OrderCreate", "notional"),
            ("OrderCreate", "price"),
            ("OrderCreate", "stop_price"),
            ("AssetCreate", "price_usd"),
        ],
    )
    def test_money_arrives_as_a_pattern_string_or_a_number(
        self, document: Document, schema: str, field: str
    ) -> None:
        prop = money_input(document, schema, field)
        text, number = prop["anyOf"]
        assert text["type"] == "string"
        assert re.fullmatch(r"\^\[0-9\]\+\(\\\.\[0-9\]\{1,[0-9]+\}\)\?\$", text["pattern"])
        assert number["type"] == "number"
        assert number["exclusiveMinimum"] == 0
        assert "maximum" in number or "exclusiveMaximum" in number
        assert prop["description"]
        assert prop["examples"]


def money_input(document: Document, schema: str, field: str) -> Document:
    """A money input's `anyOf [string, number]`, inside the `anyOf [..., null]` of an optional."""
    prop: Document = document["components"]["schemas"][schema]["properties"][field]
    if prop["anyOf"][-1] == {"type": "null"}:
        prop = prop["anyOf"][0]
    return prop


# What the validator makes of every string the document calls a valid money input: accepted,
# unless the number is outside the bounds the document also states.
_INPUTS: list[tuple[type[BaseModel], str, dict[str, Any]]] = [
    (CashRequest, "amount", {}),
    (OrderCreate, "quantity", {"order_type": "market_sell", "asset_id": "BTC"}),
    (OrderCreate, "notional", {"order_type": "market_buy", "asset_id": "BTC"}),
    (AssetCreate, "price_usd", {"asset_id": "DEMO", "name": "Demo", "category": "other"}),
]


@pytest.mark.parametrize(("model", "field", "rest"), _INPUTS)
def test_the_validator_accepts_what_the_document_calls_valid(
    document: Document, model: type[BaseModel], field: str, rest: dict[str, Any]
) -> None:
    schema_name = model.__name__
    text, number = money_input(document, schema_name, field)["anyOf"]
    low = Decimal(str(number["exclusiveMinimum"]))
    high = Decimal(str(number.get("maximum", number.get("exclusiveMaximum"))))

    @given(st.from_regex(text["pattern"].strip("^$"), fullmatch=True))
    def check(value: str) -> None:
        amount = Decimal(value)
        in_bounds = low < amount and (amount <= high if "maximum" in number else amount < high)
        try:
            model.model_validate({**rest, field: value})
        except ValidationError:
            assert not in_bounds, value
        else:
            assert in_bounds, value

    check()


@pytest.mark.parametrize("value", ["1e3", "1_000", "0x10", "1.", ".5", "١٢", "NaN", "", "12,5"])
def test_what_the_pattern_refuses_the_validator_refuses(document: Document, value: str) -> None:
    text, _ = money_input(document, "CashRequest", "amount")["anyOf"]
    assert not re.fullmatch(text["pattern"].strip("^$"), value)
    with pytest.raises(ValidationError):
        CashRequest.model_validate({"amount": value})


@given(st.decimals(min_value=-(10**15), max_value=10**15, places=18, allow_nan=False))
def test_the_formatters_write_what_the_document_promises(value: Decimal) -> None:
    assert re.fullmatch(MONEY_PATTERN.strip("^$"), format_money(value))
    assert re.fullmatch(QUANTITY_PATTERN.strip("^$"), format_quantity(abs(value)))
    assert re.fullmatch(DECIMAL_PATTERN.strip("^$"), format_price(value))
