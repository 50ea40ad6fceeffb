"""A client generated from the served OpenAPI document by `openapi-python-client` works against
a real server: register, log in, deposit, buy and read the portfolio through it, with money
typed and carried as exact strings."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import types
import typing
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from orderproc.common.money import format_money
from tests.system.harness import PASSWORD, ServerProcess

pytestmark = pytest.mark.system

PACKAGE = "orderproc_generated_client"
GENERATOR = Path(sys.executable).with_name("openapi-python-client")
MONEY_PATTERNS = ("^-?[0-9]+\\.[0-9]{2}$", "^[0-9]+\\.[0-9]{8}$", "^-?[0-9]+\\.[0-9]{2,}$")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path_factory.mktemp("client-server")).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def document(server: ServerProcess) -> dict[str, Any]:
    return httpx.get(f"{server.url}/openapi.json").raise_for_status().json()  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def client_package(
    document: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[types.ModuleType]:
    """The generated package, imported. No post-hooks: formatting the output with ruff adds
    nothing to the test."""
    work = tmp_path_factory.mktemp("generated")
    (work / "openapi.json").write_text(json.dumps(document))
    (work / "config.json").write_text(json.dumps({"post_hooks": []}))
    run = subprocess.run(
        [
            str(GENERATOR),
            "generate",
            "--path",
            str(work / "openapi.json"),
            "--output-path",
            str(work / PACKAGE),
            "--meta",
            "none",
            "--config",
            str(work / "config.json"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    assert "warning" not in output.lower(), output
    sys.path.insert(0, str(work))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(work))
        for name in [m for m in sys.modules if m.split(".")[0] == PACKAGE]:
            del sys.modules[name]


def generated(module: str) -> Any:
    return importlib.import_module(f"{PACKAGE}.{module}")


def _hint_types(hint: Any) -> set[Any]:
    """The types a hint allows, without None and the generator's `Unset`."""
    members = set(typing.get_args(hint)) or {hint}
    return {m for m in members if m is not type(None) and getattr(m, "__name__", "") != "Unset"}


def test_money_fields_of_the_generated_models_are_typed_str(
    client_package: types.ModuleType, document: dict[str, Any]
) -> None:
    models = generated("models")
    checked = 0
    for name, schema in document["components"]["schemas"].items():
        for field, prop in schema.get("properties", {}).items():
            branches = prop.get("anyOf", [prop])
            text = [b for b in branches if b.get("pattern") in MONEY_PATTERNS]
            if not text:
                continue
            hints = typing.get_type_hints(getattr(models, name), localns=vars(models))
            hint = hints[field] if field in hints else hints[f"{field}_"]  # open -> open_
            assert _hint_types(hint) == {str}, (name, field, hint)
            checked += 1
    assert checked > 50
    # Requests take a string or a number; the generated type keeps the string.
    request_hints = typing.get_type_hints(models.CashRequest, localns=vars(models))
    assert _hint_types(request_hints["amount"]) == {str, float}


def test_register_login_deposit_buy_and_portfolio_through_the_generated_client(
    client_package: types.ModuleType, server: ServerProcess
) -> None:
    models = generated("models")
    with client_package.Client(base_url=server.url, raise_on_unexpected_status=True) as anonymous:
        registered = generated("api.auth.auth_register").sync(
            client=anonymous,
            body=models.RegisterRequest(
                username="genclient",
                email="genclient@example.com",
                password=PASSWORD,
                first_name="Gen",
                last_name="Client",
            ),
        )
        assert isinstance(registered, models.RegisterResponse)
        assert registered.user.username == "genclient"
        token = generated("api.auth.auth_login").sync(
            client=anonymous, body=models.LoginRequest(username="genclient", password=PASSWORD)
        )
    assert isinstance(token, models.TokenResponse)
    with client_package.AuthenticatedClient(
        base_url=server.url, token=token.access_token, raise_on_unexpected_status=True
    ) as user:
        trade_through(models, user)


def trade_through(models: Any, user: Any) -> None:
    deposit = generated("api.cash.balance_deposit")
    receipt = deposit.sync(
        client=user, body=models.CashRequest(amount="100.00"), idempotency_key="deposit-1"
    )
    assert isinstance(receipt, models.CashReceiptRead)
    assert (receipt.amount, receipt.balance) == ("100.00", "100.00")
    replay = deposit.sync(
        client=user, body=models.CashRequest(amount="100.00"), idempotency_key="deposit-1"
    )
    assert replay.transaction_id == receipt.transaction_id
    refused = deposit.sync_detailed(client=user, body=models.CashRequest(amount="0.001"))
    assert refused.status_code == 422
    assert refused.headers["content-type"] == "application/problem+json"
    assert isinstance(refused.parsed, models.Problem)
    assert refused.parsed.code == "VALIDATION_ERROR"

    placed = generated("api.orders.orders_place").sync(
        client=user,
        body=models.OrderCreate(
            order_type=models.OrderType.MARKET_BUY, asset_id="BTC", notional="40.00"
        ),
    )
    assert isinstance(placed, models.OrderEnvelope)
    order = placed.data
    assert (order.status, order.notional) == (models.OrderReadStatus.FILLED, "40.00")
    assert Decimal(order.quantity) > 0

    balance = generated("api.cash.balance_get").sync(client=user)
    spent = Decimal(order.total_amount) + Decimal(order.fee)
    assert balance.current_balance == format_money(Decimal("100.00") - spent)

    portfolio = generated("api.portfolio.portfolio_get").sync(client=user)
    assert isinstance(portfolio, models.PortfolioRead)
    assert portfolio.cash == balance.current_balance
    [position] = portfolio.assets
    assert (position.asset_id, position.quantity) == ("BTC", order.quantity)
    unpriced = Decimal(portfolio.total_value) - Decimal(portfolio.cash)
    assert abs(unpriced - Decimal(position.market_value)) <= Decimal("0.01")
