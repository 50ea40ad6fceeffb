"""`gateway.docs.merge`, on small documents: each service keeps only the paths the routing table
sends to it; a component two services define differently is renamed in the second, with its
references and security requirements; a service without a document is named, not guessed."""

from __future__ import annotations

from typing import Any

from orderproc.gateway.docs import GATEWAY_PATHS, merge
from orderproc.gateway.routes import Service


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def operation(schema: dict[str, Any], *, secured: bool = False) -> dict[str, Any]:
    found: dict[str, Any] = {
        "operationId": "x",
        "responses": {
            "200": {"description": "ok", "content": {"application/json": {"schema": schema}}}
        },
    }
    if secured:
        found["security"] = [{"Bearer": []}]
    return {"get": found}


USERS = {
    "openapi": "3.1.0",
    "paths": {
        "/api/v1/balance": operation(ref("Money"), secured=True),
        "/api/v1/orders": operation(ref("Money")),  # not the users service's: dropped
        "/health": operation({"type": "object"}),  # the gateway's own here
    },
    "components": {
        "schemas": {"Money": {"type": "string"}, "Problem": {"type": "object"}},
        "securitySchemes": {"Bearer": {"type": "http", "scheme": "bearer"}},
    },
}
ORDERS = {
    "openapi": "3.1.0",
    "paths": {
        "/api/v1/orders": operation({"type": "array", "items": ref("Money")}, secured=True),
    },
    "components": {
        "schemas": {"Money": {"type": "number"}, "Problem": {"type": "object"}},
        "securitySchemes": {"Bearer": {"type": "oauth2", "flows": {}}},
    },
}


def test_each_service_keeps_its_routed_paths_and_a_clash_is_renamed_with_its_references() -> None:
    document = merge(
        {Service.USERS: USERS, Service.INVENTORY: "cannot connect", Service.ORDERS: ORDERS}
    )
    assert set(document["paths"]) == {"/api/v1/balance", "/api/v1/orders", *GATEWAY_PATHS}
    assert document["paths"]["/health"] == GATEWAY_PATHS["/health"]
    schemas = document["components"]["schemas"]
    assert schemas == {
        "Money": {"type": "string"},
        "OrdersMoney": {"type": "number"},
        "Problem": {"type": "object"},  # the same in both: once
    }
    orders = document["paths"]["/api/v1/orders"]["get"]
    assert orders["responses"]["200"]["content"]["application/json"]["schema"] == {
        "type": "array",
        "items": ref("OrdersMoney"),
    }
    assert orders["security"] == [{"OrdersBearer": []}]
    balance = document["paths"]["/api/v1/balance"]["get"]
    assert balance["security"] == [{"Bearer": []}]
    assert set(document["components"]["securitySchemes"]) == {"Bearer", "OrdersBearer"}
    assert document["info"]["x-orderproc-services"] == {
        "users": {"status": "ok", "paths": 1},
        "inventory": {"status": "missing", "detail": "cannot connect"},
        "orders": {"status": "ok", "paths": 1},
    }
    assert "no document from inventory (cannot connect)" in document["info"]["description"]
    assert USERS["components"]["schemas"]["Money"] == {"type": "string"}  # inputs untouched
    assert ORDERS["paths"]["/api/v1/orders"]["get"]["security"] == [{"Bearer": []}]


def test_with_no_service_answering_the_gateways_own_operations_remain() -> None:
    document = merge({s: "down" for s in (Service.USERS, Service.INVENTORY, Service.ORDERS)})
    assert set(document["paths"]) == set(GATEWAY_PATHS)
    assert document["openapi"] == "3.1.0"
    assert document["components"] == {}
