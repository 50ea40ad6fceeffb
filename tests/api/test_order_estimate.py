"""The order estimate over HTTP: what a market order would do now, by the rules of the fill,
refused as the order would be, writing nothing; and the web UI's ticket showing it."""

from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from orderproc.runtime import Runtime
from orderproc.testing import SteppingClock
from tests.api.conftest import Auth, Client
from tests.api.test_inventory import make_admin
from tests.api.test_login_abuse import web_login
from tests.api.test_orders import REQUEST_REFUSALS, order
from tests.api.test_users_auth import Signup, assert_problem

ESTIMATE = "/api/v1/orders/estimate"
ORDERS = "/api/v1/orders"
FEES = {"taker_fee_bps": 25}
FILLED = ("order_type", "asset_id", "quantity", "notional", "price", "total_amount", "fee")


def freeze(runtime: Runtime, clock: SteppingClock, **prices: str) -> None:
    """Set these assets' prices now; nothing moves them until the next tick."""
    runtime.catalog.apply_prices({a: Decimal(p) for a, p in prices.items()}, clock.now())


async def estimate(client: Client, auth: Auth, **body: Any) -> Any:
    return await client.post(ESTIMATE, headers=auth, json=body)


async def estimated(client: Client, auth: Auth, **body: Any) -> dict[str, Any]:
    response = await estimate(client, auth, **body)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


async def available(client: Client, auth: Auth, asset_id: str) -> tuple[str, str]:
    """Available cash and available units of the asset."""
    cash = (await client.get("/api/v1/balance", headers=auth)).json()["available_balance"]
    position = await client.get(f"/api/v1/balance/asset/{asset_id}", headers=auth)
    units = position.json()["available"] if position.status_code == 200 else "0.00000000"
    return cash, units


async def account_state(client: Client, auth: Auth) -> list[Any]:
    """Everything an order writes: balance, cash ledger, orders, positions, asset ledger."""
    reads = (
        "/balance",
        "/balance/transactions",
        "/orders",
        "/portfolio",
        "/assets/BTC/transactions",
    )
    return [(await client.get(f"/api/v1{path}", headers=auth)).json() for path in reads]


@pytest.fixture
async def funded(client: Client, alice: Auth, runtime: Runtime, clock: SteppingClock) -> Auth:
    """Alice with 5,000 USD; BTC at 64,000, ETH at 3,000, SOL at 150.50 (mids; each spread 2
    bps wide by the model, so BTC asks 64,006.40 and bids 63,993.60, ETH asks 3,000.30, SOL
    bids 150.48495)."""
    freeze(runtime, clock, BTC="64000", ETH="3000", SOL="150.50")
    response = await client.post("/api/v1/balance/deposit", headers=alice, json={"amount": "5000"})
    assert response.status_code == 201
    return alice


@pytest.mark.every_store
@pytest.mark.parametrize("settings_overrides", [FEES])
class TestEstimate:
    async def test_a_buy_by_quantity_rounds_its_cost_and_fee_up_as_the_fill_does(
        self, client: Client, funded: Auth
    ) -> None:
        body = {"order_type": "market_buy", "asset_id": "btc", "quantity": "0.01234567"}
        quote = await estimated(client, funded, **body)
        assert quote == {
            "order_type": "market_buy",
            "side": "buy",
            "asset_id": "BTC",
            "quantity": "0.01234567",
            "notional": None,
            "price": "64006.40",  # the ask
            "price_as_of": quote["price_as_of"],
            "total_amount": "790.21",  # 790.201892288 up
            "fee": "1.98",  # 25 bps of 790.21 is 1.975525, up
            "cash_change": "-792.19",
            "available_cash": "5000.00",
            "available_cash_after": "4207.81",
            "available_quantity": "0.00000000",
            "available_quantity_after": "0.01234567",
            "sufficient": True,
            "reason": None,
        }
        filled = (await order(client, funded, **body)).json()["data"]
        assert {k: filled[k] for k in FILLED} == {k: quote[k] for k in FILLED}
        assert await available(client, funded, "BTC") == ("4207.81", "0.01234567")

    async def test_a_buy_by_notional_buys_whole_units_without_spending_more(
        self, client: Client, funded: Auth
    ) -> None:
        body = {"order_type": "market_buy", "asset_id": "ETH", "notional": "100"}
        quote = await estimated(client, funded, **body)
        assert (quote["notional"], quote["quantity"]) == ("100.00", "0.03333000")  # at 3,000.30
        assert (quote["total_amount"], quote["fee"], quote["cash_change"]) == (
            "100.00",  # 99.999999 up
            "0.25",
            "-100.25",
        )
        assert quote["available_cash_after"] == "4899.75"
        filled = (await order(client, funded, **body)).json()["data"]
        assert {k: filled[k] for k in FILLED} == {k: quote[k] for k in FILLED}

    async def test_a_sale_rounds_its_proceeds_down_and_its_fee_up(
        self, client: Client, funded: Auth
    ) -> None:
        await order(client, funded, order_type="market_buy", asset_id="SOL", quantity="2")
        cash, units = await available(client, funded, "SOL")
        body = {"order_type": "market_sell", "asset_id": "SOL", "quantity": "0.33333333"}
        quote = await estimated(client, funded, **body)
        assert (quote["side"], quote["price"]) == ("sell", "150.48495")  # the bid
        # 50.1616494... down; 25 bps of 50.16 is 0.1254, up
        assert (quote["total_amount"], quote["fee"], quote["cash_change"]) == (
            "50.16",
            "0.13",
            "50.03",
        )
        assert (quote["available_cash"], quote["available_quantity"]) == (cash, units)
        after = (quote["available_cash_after"], quote["available_quantity_after"])
        assert after == (str(Decimal(cash) + Decimal("50.03")), "1.66666667")
        filled = (await order(client, funded, **body)).json()["data"]
        assert {k: filled[k] for k in FILLED} == {k: quote[k] for k in FILLED}
        assert await available(client, funded, "SOL") == after

    async def test_too_little_cash_is_an_answer_with_the_reason_the_order_would_get(
        self, client: Client, funded: Auth
    ) -> None:
        body = {"order_type": "market_buy", "asset_id": "BTC", "quantity": "0.078"}
        quote = await estimated(client, funded, **body)
        assert (quote["total_amount"], quote["fee"]) == ("4992.50", "12.49")  # at 64,006.40
        assert quote["sufficient"] is False
        assert quote["available_cash_after"] is None
        assert quote["available_quantity_after"] is None
        refused = assert_problem(await order(client, funded, **body), 422, "INSUFFICIENT_FUNDS")
        assert quote["reason"] == {"code": "INSUFFICIENT_FUNDS", "detail": refused["detail"]}

    async def test_too_few_units_is_an_answer_with_the_reason_the_order_would_get(
        self, client: Client, funded: Auth
    ) -> None:
        body = {"order_type": "market_sell", "asset_id": "ETH", "quantity": "0.5"}
        quote = await estimated(client, funded, **body)
        assert (quote["sufficient"], quote["available_quantity"]) == (False, "0.00000000")
        refused = assert_problem(await order(client, funded, **body), 422, "INSUFFICIENT_HOLDINGS")
        assert quote["reason"] == {"code": "INSUFFICIENT_HOLDINGS", "detail": refused["detail"]}

    async def test_writes_nothing_and_keeps_no_idempotency_key(
        self, client: Client, funded: Auth
    ) -> None:
        await order(client, funded, order_type="market_buy", asset_id="BTC", notional="100")
        before = await account_state(client, funded)
        keyed = {**funded, "Idempotency-Key": "estimate-then-order"}
        bodies = [
            {"order_type": "market_buy", "asset_id": "BTC", "notional": "250"},
            {"order_type": "market_sell", "asset_id": "BTC", "quantity": "0.001"},
            {
                "order_type": "market_buy",
                "asset_id": "BTC",
                "quantity": "0.1",
                "client_order_id": "c1",
            },
            {"order_type": "market_sell", "asset_id": "BTC", "quantity": "0.1"},
        ]
        answers = [await client.post(ESTIMATE, headers=keyed, json=body) for body in bodies]
        assert [a.json()["data"]["sufficient"] for a in answers] == [True, True, False, False]
        assert await account_state(client, funded) == before
        # Neither the key nor the client order id was taken by the estimates.
        placed = await client.post(ORDERS, headers=keyed, json={**bodies[0], "notional": "20"})
        assert placed.status_code == 201, placed.text
        tagged = await order(client, funded, **{**bodies[0], "client_order_id": "c1"})
        assert tagged.status_code == 201, tagged.text


class TestRefusals:
    """The same body gets the same problem from the estimate as from `POST /orders`."""

    @pytest.mark.parametrize(
        ("body", "status", "code"),
        [
            *REQUEST_REFUSALS,
            ({"asset_id": "BTC", "notional": "0.50"}, 422, "NOTIONAL_OUT_OF_RANGE"),
            ({"asset_id": "BTC", "notional": "10000.01"}, 422, "NOTIONAL_OUT_OF_RANGE"),
            ({"asset_id": "BTC", "quantity": "1000"}, 422, "NOTIONAL_OUT_OF_RANGE"),
            (
                {"order_type": "market_sell", "asset_id": "BTC", "notional": "5"},
                422,
                "VALIDATION_ERROR",
            ),
            ({"asset_id": "BTC", "quantity": "1", "extra": "x"}, 422, "VALIDATION_ERROR"),
        ],
    )
    async def test_refuses_what_the_order_refuses(
        self, client: Client, funded: Auth, body: dict[str, Any], status: int, code: str
    ) -> None:
        body = {"order_type": "market_buy", **body}
        assert_problem(await estimate(client, funded, **body), status, code)
        assert_problem(await order(client, funded, **body), status, code)

    async def test_refuses_a_stale_price(
        self, client: Client, funded: Auth, clock: SteppingClock
    ) -> None:
        clock.advance(seconds=31)
        body = {"order_type": "market_buy", "asset_id": "BTC", "notional": "10"}
        stale = assert_problem(await estimate(client, funded, **body), 422, "STALE_PRICE")
        assert (
            stale["detail"]
            == assert_problem(await order(client, funded, **body), 422, "STALE_PRICE")["detail"]
        )

    async def test_refuses_an_inactive_asset(
        self, client: Client, funded: Auth, signup: Signup, runtime: Runtime
    ) -> None:
        admin = await make_admin(client, signup, runtime)
        await client.patch("/api/v1/admin/assets/DOGE", headers=admin, json={"is_active": False})
        body = {"order_type": "market_buy", "asset_id": "DOGE", "notional": "10"}
        assert_problem(await estimate(client, funded, **body), 422, "ASSET_INACTIVE")

    @pytest.mark.parametrize(
        ("content", "status", "code"),
        [(b"{not json", 422, "VALIDATION_ERROR"), (b'{"asset_id": "\xff"}', 400, "HTTP_ERROR")],
    )
    async def test_refuses_an_unreadable_body(
        self, client: Client, funded: Auth, content: bytes, status: int, code: str
    ) -> None:
        headers = {**funded, "content-type": "application/json"}
        for path in (ESTIMATE, ORDERS):
            assert_problem(await client.post(path, headers=headers, content=content), status, code)

    @pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer not-a-token"}])
    async def test_needs_a_signed_in_user(self, client: Client, headers: dict[str, str]) -> None:
        body = {"order_type": "market_buy", "asset_id": "BTC", "notional": "10"}
        response = await client.post(ESTIMATE, headers=headers, json=body)
        assert response.status_code == 401
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.headers["www-authenticate"].startswith("Bearer")


# --- the estimate is the fill: a property ----------------------------------------------------

RICH = {"taker_fee_bps": 25, "order_slippage_bps": 17, "deposit_daily_limit": "1000000"}
# From 0.0001 to 100,000 USD with 4 to 10 places, spread over the magnitudes.
market_prices = st.builds(
    lambda digits, places: Decimal(digits).scaleb(-places),
    st.integers(min_value=10**6, max_value=10**9),
    st.integers(min_value=4, max_value=10),
)
# Order values about the limits (1 to 10,000 USD) and well inside them.
values = st.one_of(
    st.decimals(min_value=Decimal("0.95"), max_value=Decimal(10_050), places=2),
    st.decimals(min_value=Decimal(5), max_value=Decimal(5_000), places=2),
)


@st.composite
def market_orders(draw: st.DrawFn) -> tuple[Decimal, dict[str, str], bool]:
    """A price, an order for BTC at about a drawn value (by quantity, by notional, or a sale),
    and whether a sale first buys what it sells."""
    price = draw(market_prices)
    value = draw(values)
    units = max(value / price, Decimal("0.00000001")).quantize(
        Decimal("0.00000001"), rounding=ROUND_FLOOR
    )
    kind = draw(st.sampled_from(["quantity", "notional", "sell"]))
    if kind == "notional":
        body = {"order_type": "market_buy", "notional": str(value)}
    else:
        side = "market_sell" if kind == "sell" else "market_buy"
        body = {"order_type": side, "quantity": str(units)}
    return price, {"asset_id": "BTC", **body}, kind == "sell" and draw(st.booleans())


@pytest.mark.parametrize("settings_overrides", [RICH])
class TestTheEstimateIsTheFill:
    @pytest.fixture
    async def rich(self, client: Client, alice: Auth) -> Auth:
        response = await client.post(
            "/api/v1/balance/deposit", headers=alice, json={"amount": "1000000"}
        )
        assert response.status_code == 201
        return alice

    @settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(case=market_orders())
    async def test_placing_right_after_estimating_does_what_the_estimate_said(
        self,
        client: Client,
        rich: Auth,
        runtime: Runtime,
        clock: SteppingClock,
        case: tuple[Decimal, dict[str, str], bool],
    ) -> None:
        price, body, buy_first = case
        freeze(runtime, clock, BTC=str(price))
        if buy_first:
            await order(client, rich, **{**body, "order_type": "market_buy"})
        answer = await client.post(ESTIMATE, headers=rich, json=body)
        placed = await client.post(ORDERS, headers=rich, json=body)
        if answer.status_code != 200:  # refused by the rules: the order is refused alike
            refusal = assert_problem(answer, 422, answer.json()["code"])
            event(f"refused: {refusal['code']}")
            refused = assert_problem(placed, 422, refusal["code"])
            assert refused["detail"] == refusal["detail"]
            return
        quote = answer.json()["data"]
        if not quote["sufficient"]:
            event(f"insufficient: {quote['reason']['code']}")
            refused = assert_problem(placed, 422, quote["reason"]["code"])
            assert refused["detail"] == quote["reason"]["detail"]
            return
        assert placed.status_code == 201, placed.text
        event(f"filled: {quote['side']}")
        filled = placed.json()["data"]
        assert {k: filled[k] for k in FILLED} == {k: quote[k] for k in FILLED}
        after = (quote["available_cash_after"], quote["available_quantity_after"])
        assert await available(client, rich, "BTC") == after


# --- the web UI's ticket ----------------------------------------------------------------------


@pytest.mark.parametrize("settings_overrides", [FEES])
class TestTicket:
    """The ticket on an asset page shows the API's estimate of the order it would place."""

    @pytest.fixture
    async def browser(self, client: Client, funded: Auth) -> Client:
        assert (await web_login(client, "correct horse battery staple")).status_code == 303
        return client

    @pytest.mark.parametrize(
        ("side", "mode", "amount", "body"),
        [
            ("buy", "amount", "1,000", {"order_type": "market_buy", "notional": "1000"}),
            ("buy", "quantity", "0.0123", {"order_type": "market_buy", "quantity": "0.0123"}),
            ("sell", "quantity", "0.02", {"order_type": "market_sell", "quantity": "0.02"}),
        ],
    )
    async def test_shows_what_the_api_estimates_for_the_same_order(
        self,
        browser: Client,
        funded: Auth,
        side: str,
        mode: str,
        amount: str,
        body: dict[str, str],
    ) -> None:
        await order(browser, funded, order_type="market_buy", asset_id="BTC", quantity="0.05")
        quote = await estimated(browser, funded, asset_id="BTC", **body)
        params = {"side": side, "mode": mode, "amount": amount}
        page = await browser.get("/assets/btc/estimate", params=params)
        assert page.status_code == 200
        assert f"${Decimal(quote['fee']):,.2f}</dd>" in page.text
        assert f"${Decimal(quote['total_amount']):,.2f}</dd>" in page.text
        net = abs(Decimal(quote["cash_change"]))
        assert f'data-testid="estimate-total">${net:,.2f}</dd>' in page.text
        assert "estimate-shortfall" not in page.text

    async def test_a_sale_by_amount_asks_for_the_units_that_amount_is_worth(
        self, browser: Client, funded: Auth
    ) -> None:
        await order(browser, funded, order_type="market_buy", asset_id="ETH", quantity="1")
        params = {"side": "sell", "mode": "amount", "amount": "100"}
        page = await browser.get("/assets/ETH/estimate", params=params)
        assert "0.03333666 ETH" in page.text  # 100 USD at the bid, 2,999.70
        quote = await estimated(
            browser, funded, order_type="market_sell", asset_id="ETH", quantity="0.03333666"
        )
        assert f'data-testid="estimate-total">${Decimal(quote["cash_change"]):,.2f}' in page.text

    async def test_says_when_the_cash_is_short_and_what_the_api_refuses(
        self, browser: Client
    ) -> None:
        short = await browser.get(
            "/assets/BTC/estimate", params={"side": "buy", "mode": "amount", "amount": "9000"}
        )
        assert "You pay" in short.text
        assert "You don&#39;t have enough cash available for this." in short.text
        too_small = await browser.get(
            "/assets/BTC/estimate", params={"side": "buy", "mode": "amount", "amount": "0.5"}
        )
        assert "below the minimum" in too_small.text
        assert "You pay" not in too_small.text
