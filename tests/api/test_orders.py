"""Orders over HTTP: market buys and sells, rejections that write nothing, idempotency,
client order ids, reads, portfolio and reconcile."""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

import pytest

from orderproc.runtime import Runtime
from orderproc.testing import SteppingClock
from tests.api.conftest import Auth, Client
from tests.api.test_inventory import make_admin
from tests.api.test_users_auth import Signup, assert_problem

ORDERS = "/api/v1/orders"
CENT = Decimal("0.01")


@pytest.fixture
async def trader(client: Client, alice: Auth, runtime: Runtime) -> Auth:
    """Alice with 5,000 USD and fresh prices."""
    await runtime.ticker.tick_once()
    response = await client.post("/api/v1/balance/deposit", headers=alice, json={"amount": "5000"})
    assert response.status_code == 201
    return alice


async def order(client: Client, auth: Auth, **body: Any) -> Any:
    return await client.post(ORDERS, headers=auth, json=body)


async def cash(client: Client, auth: Auth) -> Decimal:
    return Decimal((await client.get("/api/v1/balance", headers=auth)).json()["current_balance"])


async def quote(client: Client, asset_id: str) -> tuple[Decimal, Decimal]:
    """The asset's bid and ask now."""
    data = (await client.get(f"/api/v1/inventory/assets/{asset_id}")).json()["data"]
    return Decimal(data["bid"]), Decimal(data["ask"])


def taker_fee(total: str, bps: int = 10) -> Decimal:
    """The default taker fee (10 bps) of an order's total, rounded up to the cent."""
    return (Decimal(total) * bps / 10_000).quantize(CENT, rounding=ROUND_CEILING)


@pytest.mark.every_store
class TestMarketBuy:
    async def test_fills_at_the_ask_rounds_the_cost_up_and_charges_the_taker_fee(
        self, client: Client, trader: Auth
    ) -> None:
        response = await order(
            client, trader, order_type="market_buy", asset_id="eth", quantity="0.12345678"
        )
        assert response.status_code == 201, response.text
        filled = response.json()["data"]
        assert filled["status"] == "filled"
        assert filled["asset_id"] == "ETH"
        _, ask = await quote(client, "ETH")
        assert Decimal(filled["price"]) == ask  # no slippage set
        exact = ask * Decimal("0.12345678")
        assert Decimal(filled["total_amount"]) == exact.quantize(CENT, rounding=ROUND_CEILING)
        fee = taker_fee(filled["total_amount"])
        assert fee > 0
        assert Decimal(filled["fee"]) == fee
        assert await cash(client, trader) == Decimal(5000) - Decimal(filled["total_amount"]) - fee

    async def test_buys_by_notional_without_spending_more(
        self, client: Client, trader: Auth
    ) -> None:
        response = await order(
            client, trader, order_type="market_buy", asset_id="BTC", notional="100"
        )
        filled = response.json()["data"]
        assert Decimal(filled["total_amount"]) <= Decimal(100)
        assert Decimal(filled["quantity"]) > 0
        assert filled["notional"] == "100.00"

    @pytest.mark.parametrize("settings_overrides", [{"taker_fee_bps": 25}])
    async def test_charges_the_fee_as_its_own_ledger_entry(
        self, client: Client, trader: Auth
    ) -> None:
        response = await order(
            client, trader, order_type="market_buy", asset_id="BTC", notional="1000"
        )
        filled = response.json()["data"]
        fee = (Decimal(filled["total_amount"]) * Decimal("0.0025")).quantize(
            CENT, rounding=ROUND_CEILING
        )
        assert Decimal(filled["fee"]) == fee
        ledger = (await client.get("/api/v1/balance/transactions", headers=trader)).json()
        kinds = [(t["transaction_type"], t["amount"]) for t in ledger["transactions"][:2]]
        assert kinds == [("fee", f"-{fee}"), ("order_payment", f"-{filled['total_amount']}")]


@pytest.mark.every_store
class TestMarketSell:
    async def test_sells_rounding_proceeds_down_and_books_realized_pnl(
        self, client: Client, trader: Auth
    ) -> None:
        await order(client, trader, order_type="market_buy", asset_id="SOL", quantity="3")
        sold = (
            await order(client, trader, order_type="market_sell", asset_id="SOL", quantity="1")
        ).json()["data"]
        bid, ask = await quote(client, "SOL")
        assert Decimal(sold["price"]) == bid < ask
        assert Decimal(sold["total_amount"]) == bid.quantize(CENT, rounding=ROUND_FLOOR)
        assert Decimal(sold["fee"]) == taker_fee(sold["total_amount"])
        holding = (await client.get("/api/v1/balance/asset/sol", headers=trader)).json()
        assert holding["quantity"] == "2.00000000"
        assert holding["available"] == "2.00000000"

    async def test_refuses_to_sell_more_than_held(self, client: Client, trader: Auth) -> None:
        await order(client, trader, order_type="market_buy", asset_id="SOL", quantity="1")
        response = await order(
            client, trader, order_type="market_sell", asset_id="SOL", quantity="1.00000001"
        )
        assert_problem(response, 422, "INSUFFICIENT_HOLDINGS")
        never = await order(
            client, trader, order_type="market_sell", asset_id="ADA", quantity="100"
        )
        assert_problem(never, 422, "INSUFFICIENT_HOLDINGS")


# Refused from the request alone (shape, catalog, order type), before any unit of work.
REQUEST_REFUSALS = [
    ({"asset_id": "NOPE1", "quantity": "1"}, 404, "ASSET_NOT_FOUND"),
    ({"asset_id": "BT-C", "quantity": "1"}, 422, "VALIDATION_ERROR"),
    ({"asset_id": "BTC", "quantity": "0"}, 422, "VALIDATION_ERROR"),
    ({"asset_id": "BTC", "quantity": "-1"}, 422, "VALIDATION_ERROR"),
    ({"asset_id": "BTC", "quantity": "0.000000001"}, 422, "VALIDATION_ERROR"),
    ({"asset_id": "BTC", "quantity": "1", "notional": "5"}, 422, "VALIDATION_ERROR"),
    ({"asset_id": "BTC"}, 422, "VALIDATION_ERROR"),
    ({"asset_id": "BTC", "quantity": "1", "order_type": "market_hold"}, 422, "VALIDATION_ERROR"),
    (
        {"asset_id": "BTC", "quantity": "1", "order_type": "limit_buy", "price": "1"},
        422,
        "ORDER_TYPE_NOT_SUPPORTED",
    ),
    ({"asset_id": "BTC", "quantity": "1", "price": "5"}, 422, "VALIDATION_ERROR"),
]
# Refused by the trading rules against the price and the account.
RULE_REFUSALS = [
    ({"asset_id": "BTC", "notional": "0.50"}, 422, "NOTIONAL_OUT_OF_RANGE"),
    ({"asset_id": "BTC", "notional": "10000.01"}, 422, "NOTIONAL_OUT_OF_RANGE"),
    ({"asset_id": "BTC", "quantity": "1000"}, 422, "NOTIONAL_OUT_OF_RANGE"),
    ({"asset_id": "USDT", "quantity": "5100"}, 422, "INSUFFICIENT_FUNDS"),
]


async def assert_refused_and_nothing_written(
    client: Client, trader: Auth, body: dict[str, Any], status: int, code: str
) -> None:
    with_deposit = await cash(client, trader)
    response = await order(client, trader, **{"order_type": "market_buy", **body})
    assert_problem(response, status, code)
    assert await cash(client, trader) == with_deposit
    assert (await client.get(ORDERS, headers=trader)).json()["data"] == []


class TestRejections:
    @pytest.mark.parametrize(("body", "status", "code"), REQUEST_REFUSALS)
    async def test_refuses_a_malformed_request_and_writes_nothing(
        self, client: Client, trader: Auth, body: dict[str, Any], status: int, code: str
    ) -> None:
        await assert_refused_and_nothing_written(client, trader, body, status, code)

    @pytest.mark.every_store
    @pytest.mark.parametrize(("body", "status", "code"), RULE_REFUSALS)
    async def test_refuses_by_the_rules_and_writes_nothing(
        self, client: Client, trader: Auth, body: dict[str, Any], status: int, code: str
    ) -> None:
        await assert_refused_and_nothing_written(client, trader, body, status, code)

    async def test_refuses_a_stale_price(
        self, client: Client, trader: Auth, clock: SteppingClock
    ) -> None:
        clock.advance(seconds=31)
        response = await order(
            client, trader, order_type="market_buy", asset_id="BTC", notional="10"
        )
        assert_problem(response, 422, "STALE_PRICE")

    @pytest.mark.every_store
    async def test_a_stale_price_refusal_is_not_remembered_for_the_key(
        self, client: Client, trader: Auth, clock: SteppingClock, runtime: Runtime
    ) -> None:
        headers = {**trader, "Idempotency-Key": "stale-then-fresh"}
        body = {"order_type": "market_buy", "asset_id": "BTC", "notional": "10"}
        clock.advance(seconds=31)
        assert_problem(await client.post(ORDERS, headers=headers, json=body), 422, "STALE_PRICE")
        await runtime.ticker.tick_once()
        retried = await client.post(ORDERS, headers=headers, json=body)
        assert retried.status_code == 201

    async def test_refuses_an_inactive_asset(
        self, client: Client, trader: Auth, signup: Signup, runtime: Runtime
    ) -> None:
        admin = await make_admin(client, signup, runtime)
        await client.patch("/api/v1/admin/assets/DOGE", headers=admin, json={"is_active": False})
        response = await order(
            client, trader, order_type="market_buy", asset_id="DOGE", notional="10"
        )
        assert_problem(response, 422, "ASSET_INACTIVE")


@pytest.mark.every_store
class TestExactlyOnce:
    async def test_an_idempotency_key_replays_the_first_order(
        self, client: Client, trader: Auth
    ) -> None:
        headers = {**trader, "Idempotency-Key": "order-1"}
        body = {"order_type": "market_buy", "asset_id": "BTC", "notional": "50"}
        first = await client.post(ORDERS, headers=headers, json=body)
        second = await client.post(ORDERS, headers=headers, json={**body, "notional": 50.0})
        assert first.json() == second.json()
        assert len((await client.get(ORDERS, headers=trader)).json()["data"]) == 1
        other = await client.post(ORDERS, headers=headers, json={**body, "notional": "51"})
        assert_problem(other, 422, "IDEMPOTENCY_KEY_REUSED")

    async def test_a_client_order_id_is_unique_per_user_for_good(
        self, client: Client, trader: Auth
    ) -> None:
        body = {
            "order_type": "market_buy",
            "asset_id": "BTC",
            "notional": "50",
            "client_order_id": "my-1",
        }
        first = await order(client, trader, **body)
        again = await order(client, trader, **body)
        assert again.json()["data"]["order_id"] == first.json()["data"]["order_id"]
        reused = await order(client, trader, **{**body, "notional": "60"})
        assert_problem(reused, 409, "CLIENT_ORDER_ID_REUSED")
        paid = Decimal(first.json()["data"]["total_amount"]) + Decimal(first.json()["data"]["fee"])
        assert await cash(client, trader) == Decimal(5000) - paid


@pytest.mark.every_store
class TestReads:
    async def test_lists_newest_first_with_filters_and_paging(
        self, client: Client, trader: Auth
    ) -> None:
        for asset in ("BTC", "ETH", "BTC"):
            await order(client, trader, order_type="market_buy", asset_id=asset, notional="20")
        await order(client, trader, order_type="market_sell", asset_id="ETH", quantity="0.001")
        everything = (await client.get(ORDERS, headers=trader)).json()
        assert everything["data"][0]["order_type"] == "market_sell"
        btc = (await client.get(ORDERS, headers=trader, params={"asset_id": "btc"})).json()
        assert [o["asset_id"] for o in btc["data"]] == ["BTC", "BTC"]
        page = (await client.get(ORDERS, headers=trader, params={"limit": 3})).json()
        assert page["has_more"] is True
        rest = (
            await client.get(
                ORDERS, headers=trader, params={"limit": 3, "cursor": page["next_cursor"]}
            )
        ).json()
        assert len(rest["data"]) == 1
        sells = (
            await client.get(ORDERS, headers=trader, params={"order_type": "market_sell"})
        ).json()
        assert [o["order_type"] for o in sells["data"]] == ["market_sell"]

    async def test_another_users_order_is_404_and_a_filled_order_cannot_be_cancelled(
        self, client: Client, trader: Auth, signup: Signup
    ) -> None:
        placed = (
            await order(client, trader, order_type="market_buy", asset_id="BTC", notional="20")
        ).json()["data"]
        bob = await signup("bob")
        assert_problem(
            await client.get(f"{ORDERS}/{placed['order_id']}", headers=bob), 404, "ORDER_NOT_FOUND"
        )
        mine = await client.get(f"{ORDERS}/{placed['order_id']}", headers=trader)
        assert mine.json()["data"] == placed
        assert_problem(
            await client.delete(f"{ORDERS}/{placed['order_id']}", headers=trader),
            409,
            "ORDER_NOT_OPEN",
        )

    async def test_the_portfolio_adds_up(self, client: Client, trader: Auth) -> None:
        bought = (
            await order(client, trader, order_type="market_buy", asset_id="ETH", quantity="0.5")
        ).json()["data"]
        folio = (await client.get("/api/v1/portfolio", headers=trader)).json()
        [eth] = folio["assets"]
        assert eth["quantity"] == "0.50000000"
        paid = Decimal(bought["total_amount"]) + Decimal(bought["fee"])  # the cost holds the fee
        assert Decimal(eth["average_cost"]) * Decimal("0.5") == paid
        expected_total = Decimal(folio["cash"]) + Decimal(eth["market_value"])
        assert Decimal(folio["total_value"]) == expected_total
        assert Decimal(eth["unrealized_pnl"]) == Decimal(eth["market_value"]) - paid
        assert eth["percentage"] == str(
            (Decimal(eth["market_value"]) / expected_total * 100).quantize(CENT)
        )

    async def test_no_position_is_404_and_the_asset_ledger_lists_trades(
        self, client: Client, trader: Auth
    ) -> None:
        assert_problem(
            await client.get("/api/v1/balance/asset/BTC", headers=trader), 404, "POSITION_NOT_FOUND"
        )
        bought = await order(client, trader, order_type="market_buy", asset_id="BTC", notional="30")
        await order(client, trader, order_type="market_sell", asset_id="BTC", quantity="0.0001")
        ledger = (await client.get("/api/v1/assets/btc/transactions", headers=trader)).json()
        assert [t["transaction_type"] for t in ledger["data"]] == ["SELL", "BUY"]
        rest = Decimal(bought.json()["data"]["quantity"]) - Decimal("0.0001")
        await order(client, trader, order_type="market_sell", asset_id="BTC", quantity=str(rest))
        emptied = await client.get("/api/v1/balance/asset/BTC", headers=trader)
        assert_problem(emptied, 404, "POSITION_NOT_FOUND")


@pytest.mark.every_store
class TestReconcile:
    async def test_admin_reconciles_a_trading_account_clean(
        self, client: Client, trader: Auth, signup: Signup, runtime: Runtime
    ) -> None:
        await order(client, trader, order_type="market_buy", asset_id="BTC", notional="30")
        await order(client, trader, order_type="market_sell", asset_id="BTC", quantity="0.0001")
        admin = await make_admin(client, signup, runtime)
        report = (
            await client.get("/api/v1/admin/reconcile", headers=admin, params={"username": "alice"})
        ).json()
        assert report == {
            "username": "alice",
            "clean": True,
            "positions_checked": 1,
            "mismatches": [],
        }
        assert_problem(
            await client.get(
                "/api/v1/admin/reconcile", headers=trader, params={"username": "alice"}
            ),
            403,
            "ADMIN_REQUIRED",
        )
