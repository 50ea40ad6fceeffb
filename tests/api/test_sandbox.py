"""Quotes and the sandbox over HTTP: bid and ask in every asset answer; with
`ORDERPROC_SANDBOX=true`, an admin pauses the feed, sets a price and a spread, steps a tick, and
fills and P&L come out exactly as chosen; off, the routes do not exist."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest

from orderproc.common.prices import Quote, QuoteView
from orderproc.common.quotes import bid_ask, spread_for
from orderproc.errors.problem import PROBLEM_JSON
from orderproc.inventory import sandbox as sandbox_service
from orderproc.runtime import Runtime
from orderproc.testing import SteppingClock
from tests.api.conftest import Auth, Client
from tests.api.test_input_and_roles import admin_events, make_admin, user_id_of
from tests.api.test_openapi import JSON_SCHEMA_KEYWORDS, operations, resolve, subschemas
from tests.api.test_orders import order
from tests.api.test_users_auth import Signup, assert_problem

ASSETS = "/api/v1/inventory/assets"
SANDBOX = "/api/v1/admin/sandbox"
ON = {"sandbox": True}


async def asset(client: Client, asset_id: str) -> dict[str, Any]:
    data: dict[str, Any] = (await client.get(f"{ASSETS}/{asset_id}")).json()["data"]
    return data


class TestQuotes:
    async def test_every_asset_answer_carries_a_bid_below_and_an_ask_above_the_mid(
        self, client: Client, runtime: Runtime
    ) -> None:
        await runtime.ticker.tick_once()
        page = (await client.get(ASSETS, params={"limit": 250})).json()["data"]
        assert len(page) > 90
        for listed in page:
            assert (
                0 < Decimal(listed["bid"]) < Decimal(listed["price_usd"]) < Decimal(listed["ask"])
            )
            assert await asset(client, listed["asset_id"]) == listed

    async def test_a_large_cap_trades_tighter_than_a_small_one_and_a_stablecoin_tightest(
        self, client: Client
    ) -> None:
        def width(a: dict[str, Any]) -> Decimal:
            return (Decimal(a["ask"]) - Decimal(a["bid"])) / Decimal(a["price_usd"])

        btc, tusd = await asset(client, "BTC"), await asset(client, "USDT")
        page = (await client.get(ASSETS, params={"limit": 250})).json()["data"]
        last = max(page, key=lambda a: a["market_cap_rank"] or 0)
        assert width(tusd) < width(btc) < width(last)

    async def test_the_tick_tells_its_listeners_the_moved_assets_quotes(
        self, runtime: Runtime
    ) -> None:
        heard: list[tuple[str, Decimal, Decimal, Decimal]] = []
        runtime.ticker.listeners.append(
            lambda moved, _now: heard.extend((a.asset_id, a.bid, a.price_usd, a.ask) for a in moved)
        )
        moved = await runtime.ticker.tick_once()
        assert len(heard) == moved > 90
        assert all(bid < mid < ask for _, bid, mid, ask in heard)
        quote = runtime.prices.quote("BTC")
        assert quote is not None
        assert ("BTC", quote.bid, quote.price, quote.ask) in heard

    async def test_the_asset_page_shows_the_bid_and_the_ask(self, client: Client) -> None:
        btc = await asset(client, "BTC")
        page = await client.get("/assets/BTC")
        assert page.status_code == 200
        for side in ("bid", "ask"):
            shown = f"${Decimal(btc[side]):,.2f}"
            assert f'data-testid="{side}-BTC">{shown}</dd>' in page.text


class TestSandboxOff:
    async def test_the_routes_do_not_exist(
        self, client: Client, signup: Signup, runtime: Runtime
    ) -> None:
        admin = await make_admin(client, signup, runtime)
        for method, path in [
            ("POST", f"{SANDBOX}/pause"),
            ("POST", f"{SANDBOX}/resume"),
            ("POST", f"{SANDBOX}/tick"),
            ("PUT", f"{SANDBOX}/prices/BTC"),
        ]:
            response = await client.request(method, path, headers=admin, json={"price_usd": "1"})
            assert_problem(response, 404, "ROUTE_NOT_FOUND")
        document = (await client.get("/openapi.json")).json()
        assert not [p for p in document["paths"] if "sandbox" in p]
        assert "sandbox" not in [tag["name"] for tag in document["tags"]]
        assert runtime.catalog.paused is False


def live(runtime: Runtime, asset_id: str) -> QuoteView:
    """The quote this process trades on."""
    quote = runtime.prices.quote(asset_id)
    assert quote is not None
    return quote


@pytest.fixture
async def admin(client: Client, signup: Signup, runtime: Runtime) -> Auth:
    return await make_admin(client, signup, runtime)


@pytest.fixture
async def trader(client: Client, alice: Auth, runtime: Runtime) -> Auth:
    await runtime.ticker.tick_once()
    response = await client.post("/api/v1/balance/deposit", headers=alice, json={"amount": "9000"})
    assert response.status_code == 201
    return alice


async def sandbox(client: Client, admin: Auth, action: str) -> dict[str, Any]:
    response = await client.post(f"{SANDBOX}/{action}", headers=admin)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


async def set_price(
    client: Client, admin: Auth, asset_id: str, **body: str | None
) -> dict[str, Any]:
    response = await client.put(f"{SANDBOX}/prices/{asset_id}", headers=admin, json=body)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


@pytest.mark.parametrize("settings_overrides", [ON])
class TestSandbox:
    async def test_the_routes_are_in_the_document_when_on(self, client: Client) -> None:
        document = (await client.get("/openapi.json")).json()
        assert sorted(p for p in document["paths"] if "sandbox" in p) == [
            f"{SANDBOX}/pause",
            f"{SANDBOX}/prices/{{asset_id}}",
            f"{SANDBOX}/resume",
            f"{SANDBOX}/tick",
        ]
        tags = [tag["name"] for tag in document["tags"]]
        assert tags.index("admin") + 1 == tags.index("sandbox")  # in reading order

    async def test_the_routes_follow_the_documents_conventions(self, client: Client) -> None:
        document = (await client.get("/openapi.json")).json()
        mine = {key: op for key, op in operations(document) if "/sandbox/" in key}
        assert {op["operationId"] for op in mine.values()} == {
            "sandbox_pause",
            "sandbox_resume",
            "sandbox_set_price",
            "sandbox_tick",
        }
        problem = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
        for key, operation in mine.items():
            assert {"401", "403", "409", "429"} <= set(operation["responses"]), key
            for status, response in operation["responses"].items():
                if status[0] in "45":
                    assert response["content"] == problem, (key, status)
        put = mine[f"PUT {SANDBOX}/prices/{{asset_id}}"]
        assert {"400", "404", "413", "422"} <= set(put["responses"])
        body = resolve(document, put["requestBody"]["content"]["application/json"]["schema"])
        assert body["examples"]
        for name in ("SandboxPriceSet", "SandboxStateRead", "SandboxStateEnvelope"):
            for inner in subschemas(document["components"]["schemas"][name]):
                assert set(inner) <= JSON_SCHEMA_KEYWORDS, (name, inner)
        spread, absent = body["properties"]["spread_bps"]["anyOf"]  # nullable: may be omitted
        assert absent == {"type": "null"}
        spread = spread["anyOf"]
        assert {"type": "string", "pattern": "^[0-9]+(\\.[0-9]{1,2})?$"} in spread
        assert {"type": "number", "minimum": 0, "maximum": 1000} in spread

    @pytest.mark.every_store
    async def test_a_round_trip_at_prices_the_admin_set_fills_and_books_pnl_exactly(
        self, client: Client, admin: Auth, trader: Auth, clock: SteppingClock
    ) -> None:
        assert (await sandbox(client, admin, "pause"))["paused"] is True
        btc = await set_price(client, admin, "btc", price_usd="50000", spread_bps="10")
        assert (btc["bid"], btc["price_usd"], btc["ask"]) == ("49975.00", "50000.00", "50025.00")
        clock.advance(minutes=10)  # frozen prices are never stale
        bought = (
            await order(client, trader, order_type="market_buy", asset_id="BTC", quantity="0.1")
        ).json()["data"]
        # At the ask: 5,002.50; the default taker fee, 10 bps of it, is 5.0025, up to 5.01.
        assert (bought["price"], bought["total_amount"], bought["fee"]) == (
            "50025.00",
            "5002.50",
            "5.01",
        )
        await set_price(client, admin, "BTC", price_usd="55000")  # the spread stays 10 bps
        sold = (
            await order(client, trader, order_type="market_sell", asset_id="BTC", quantity="0.1")
        ).json()["data"]
        # At the bid, 54,972.50: 5,497.25; the fee 5.49725, up to 5.50.
        assert (sold["price"], sold["total_amount"], sold["fee"]) == ("54972.50", "5497.25", "5.50")
        folio = (await client.get("/api/v1/portfolio", headers=trader)).json()
        # 5,497.25 - 5.50 - (5,002.50 + 5.01)
        assert Decimal(folio["realized_pnl"]) == Decimal("484.24")
        assert Decimal(folio["cash"]) == Decimal(9000) + Decimal("484.24")
        ledger = (await client.get("/api/v1/balance/transactions", headers=trader)).json()
        assert [(t["transaction_type"], t["amount"]) for t in ledger["data"][:4]] == [
            ("fee", "-5.50"),
            ("order_sale", "5497.25"),
            ("fee", "-5.01"),
            ("order_payment", "-5002.50"),
        ]

    async def test_a_chosen_spread_stays_until_set_again_or_back_to_the_models(
        self, client: Client, admin: Auth
    ) -> None:
        await set_price(client, admin, "ETH", price_usd="2000", spread_bps="100")
        kept = await set_price(client, admin, "ETH", price_usd="3000")
        assert (kept["bid"], kept["ask"]) == ("2985.00", "3015.00")  # still 100 bps
        model = await set_price(client, admin, "ETH", price_usd="3000", spread_bps=None)
        assert (model["bid"], model["ask"]) == ("2999.70", "3000.30")  # the model's 2 bps

    async def test_the_estimate_while_paused_is_the_fill(
        self, client: Client, admin: Auth, trader: Auth
    ) -> None:
        await sandbox(client, admin, "pause")
        await set_price(client, admin, "ETH", price_usd="2000", spread_bps="0")
        body = {"order_type": "market_buy", "asset_id": "ETH", "notional": "1000"}
        estimate = (await client.post("/api/v1/orders/estimate", headers=trader, json=body)).json()[
            "data"
        ]
        filled = (await order(client, trader, **body)).json()["data"]
        assert (estimate["price"], estimate["quantity"]) == ("2000.00", "0.50000000")
        for key in ("price", "quantity", "total_amount", "fee"):
            assert filled[key] == estimate[key]

    async def test_resuming_restores_the_staleness_check_until_the_next_tick(
        self, client: Client, admin: Auth, trader: Auth, clock: SteppingClock, runtime: Runtime
    ) -> None:
        body = {"order_type": "market_buy", "asset_id": "SOL", "notional": "50"}
        await sandbox(client, admin, "pause")
        clock.advance(seconds=31)
        assert (await order(client, trader, **body)).status_code == 201
        assert (await sandbox(client, admin, "resume"))["paused"] is False
        assert_problem(await order(client, trader, **body), 422, "STALE_PRICE")
        await runtime.ticker.tick_once()
        assert (await order(client, trader, **body)).status_code == 201

    async def test_a_step_moves_every_price_once_and_the_feed_stays_paused(
        self, client: Client, admin: Auth, runtime: Runtime
    ) -> None:
        await sandbox(client, admin, "pause")
        before = await asset(client, "BTC")
        stepped = await sandbox(client, admin, "tick")
        assert stepped["paused"] is True
        assert stepped["moved"] == len(runtime.catalog.assets())
        after = await asset(client, "BTC")
        assert after["price_usd"] != before["price_usd"]
        assert after["last_updated"] == stepped["as_of"]
        candles = (await client.get(f"{ASSETS}/BTC/candles")).json()["data"]
        assert Decimal(candles[-1]["close"]) == Decimal(after["price_usd"])
        quote = runtime.prices.quote("BTC")
        assert quote is not None
        assert quote.frozen

    async def test_a_step_writes_every_price_though_the_assets_take_turns(
        self, client: Client, admin: Auth, runtime: Runtime
    ) -> None:
        """With more assets than a write takes, a tick writes one turn's prices; a step, after
        which no tick comes while paused, writes them all (a process reading the store's
        prices trades on the step's)."""
        runtime.ticker.candles.assets_per_write = 10  # the packaged 101: 11 turns
        await sandbox(client, admin, "pause")
        await sandbox(client, admin, "tick")
        assert runtime.ticker.candles.turns > 1
        async with runtime.store.unit_of_work() as uow:
            stored = {r.asset_id: Quote.from_record(r) for r in await uow.assets.list_all()}
        assert stored == {a.asset_id: Quote.of(a) for a in runtime.catalog.assets()}

    async def test_the_scheduled_ticks_skip_while_paused(
        self, client: Client, admin: Auth, runtime: Runtime
    ) -> None:
        await sandbox(client, admin, "pause")
        before = await asset(client, "ETH")
        await runtime.ticker._step()  # what the ticker's loop runs every interval
        assert await asset(client, "ETH") == before
        await sandbox(client, admin, "resume")
        await runtime.ticker._step()
        assert (await asset(client, "ETH"))["price_usd"] != before["price_usd"]

    async def test_a_set_price_moves_the_asset_as_a_tick_does_and_the_feed_walks_on_from_it(
        self, client: Client, admin: Auth, runtime: Runtime
    ) -> None:
        heard: list[str] = []
        runtime.ticker.listeners.append(lambda moved, _now: heard.extend(a.asset_id for a in moved))
        moved = await set_price(client, admin, "DOGE", price_usd="0.123456789012345678")
        assert moved["price_usd"] == "0.123456789012345678"
        assert heard == ["DOGE"]
        candles = (await client.get(f"{ASSETS}/DOGE/candles")).json()["data"]
        assert candles[-1]["close"] == "0.123456789012345678"
        await runtime.ticker.tick_once()  # not paused: the simulator moves on from the set price
        walked = Decimal((await asset(client, "DOGE"))["price_usd"])
        assert abs(walked / Decimal("0.123456789012345678") - 1) < Decimal("0.01")

    @pytest.mark.every_store
    async def test_the_pause_reaches_a_process_that_reads_prices_from_the_store(
        self, client: Client, admin: Auth, runtime: Runtime
    ) -> None:
        await sandbox(client, admin, "pause")
        await set_price(client, admin, "BTC", price_usd="40000", spread_bps="20")
        async with runtime.store.unit_of_work() as uow:
            stored = {r.asset_id: Quote.from_record(r) for r in await uow.assets.list_all()}
        assert stored["BTC"] == Quote.of(live(runtime, "BTC"))
        assert (stored["BTC"].bid, stored["BTC"].ask) == (Decimal(39960), Decimal(40040))
        assert all(quote.frozen for quote in stored.values())
        await sandbox(client, admin, "resume")
        async with runtime.store.unit_of_work() as uow:
            records = await uow.assets.list_all()
        assert not any(Quote.from_record(r).frozen for r in records)

    @pytest.mark.every_store
    async def test_a_pause_never_writes_back_an_older_price_than_the_catalogs(
        self, client: Client, admin: Auth, runtime: Runtime, clock: SteppingClock
    ) -> None:
        # A tick that has moved the catalog and not yet written the store.
        runtime.catalog.apply_prices({"BTC": Decimal("12345.5")}, clock.now())
        await sandbox(client, admin, "pause")
        async with runtime.store.unit_of_work() as uow:
            record = await uow.assets.get("BTC")
        assert record is not None
        assert record.price == Decimal("12345.5")
        assert Quote.from_record(record) == Quote.of(live(runtime, "BTC"))

    @pytest.mark.every_store
    async def test_every_action_is_audited_with_who_and_what(
        self, client: Client, admin: Auth, runtime: Runtime
    ) -> None:
        await sandbox(client, admin, "pause")
        await set_price(client, admin, "ETH", price_usd="2500.5", spread_bps="7.25")
        await sandbox(client, admin, "tick")
        await sandbox(client, admin, "resume")
        assets = len(runtime.catalog.assets())
        [paused] = await admin_events(client, admin, "admin_sandbox_pause")
        [priced] = await admin_events(client, admin, "admin_sandbox_price")
        [ticked] = await admin_events(client, admin, "admin_sandbox_tick")
        [resumed] = await admin_events(client, admin, "admin_sandbox_resume")
        for event in (paused, priced, ticked, resumed):
            assert event["actor_id"] == user_id_of(admin)
            assert event["ip"] == "203.0.113.7"
        assert paused["details"] == {"was_paused": False, "assets_changed": assets}
        assert resumed["details"] == {"was_paused": True, "assets_changed": assets}
        assert ticked["details"] == {"moved": assets}
        assert priced["details"]["asset_id"] == "ETH"
        assert priced["details"]["price_usd"]["to"] == "2500.5"
        assert priced["details"]["spread_bps"] == {"from": "2", "to": "7.25"}
        times = [datetime.fromisoformat(e["created_at"]) for e in (paused, priced, ticked)]
        assert times == sorted(times)

    async def test_a_process_that_does_not_lead_the_feed_refuses_and_changes_nothing(
        self, client: Client, admin: Auth, runtime: Runtime
    ) -> None:
        runtime.ticker.leading = lambda: False  # another inventory process holds the lease
        before = await asset(client, "BTC")
        for method, path in [
            ("POST", f"{SANDBOX}/pause"),
            ("POST", f"{SANDBOX}/resume"),
            ("POST", f"{SANDBOX}/tick"),
            ("PUT", f"{SANDBOX}/prices/BTC"),
        ]:
            response = await client.request(method, path, headers=admin, json={"price_usd": "1"})
            assert_problem(response, 409, "NOT_FEED_LEADER")
        assert runtime.catalog.paused is False
        assert await asset(client, "BTC") == before
        for event in ("pause", "resume", "tick", "price"):
            assert await admin_events(client, admin, f"admin_sandbox_{event}") == []

    async def test_a_process_taking_the_feed_over_refuses_until_it_has_resumed(
        self, client: Client, admin: Auth, runtime: Runtime
    ) -> None:
        lead = runtime.ticker.forget()  # it gained the lease; its candles are not resumed yet
        before = await asset(client, "BTC")
        for method, path in [("POST", f"{SANDBOX}/tick"), ("PUT", f"{SANDBOX}/prices/BTC")]:
            response = await client.request(method, path, headers=admin, json={"price_usd": "1"})
            assert_problem(response, 409, "NOT_FEED_LEADER")
            assert "taking the price feed over" in response.json()["detail"]
        assert await asset(client, "BTC") == before
        for event in ("tick", "price"):  # refused before anything is written
            assert await admin_events(client, admin, f"admin_sandbox_{event}") == []
        await runtime.ticker.resume()
        runtime.ticker.unblock(lead)
        put = await client.put(f"{SANDBOX}/prices/BTC", headers=admin, json={"price_usd": "1"})
        assert put.status_code == 200, put.text

    async def test_the_audited_price_from_is_the_one_after_the_leader_check(
        self, client: Client, admin: Auth, runtime: Runtime, clock: SteppingClock
    ) -> None:
        ready, ticked = runtime.ticker.ready, list[Decimal]()

        async def ready_after_a_tick() -> int | None:  # a tick lands while it resumes
            del runtime.ticker.ready  # once
            clock.advance(seconds=2)
            await runtime.ticker.tick_once()
            ticked.append(runtime.catalog.by_id["BTC"].price_usd)
            return await ready()

        runtime.ticker.ready = ready_after_a_tick  # type: ignore[method-assign]
        before = runtime.catalog.by_id["BTC"].price_usd
        await set_price(client, admin, "BTC", price_usd="12345")
        [priced] = await admin_events(client, admin, "admin_sandbox_price")
        assert ticked[0] != before
        assert priced["details"]["price_usd"] == {"from": str(ticked[0]), "to": "12345"}

    async def test_the_audited_price_from_is_the_one_when_the_audit_is_written(
        self, client: Client, admin: Auth, runtime: Runtime, clock: SteppingClock,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:  # fmt: skip
        retry, ticked = sandbox_service.retry_on_conflict, list[Decimal]()

        async def tick_lands_first(attempt: Callable[[], Awaitable[None]]) -> None:
            clock.advance(seconds=2)  # a tick lands as the audit's unit of work begins
            await runtime.ticker.tick_once()
            ticked.append(runtime.catalog.by_id["BTC"].price_usd)
            await retry(attempt)

        monkeypatch.setattr(sandbox_service, "retry_on_conflict", tick_lands_first)
        await set_price(client, admin, "BTC", price_usd="12345")
        [priced] = await admin_events(client, admin, "admin_sandbox_price")
        assert priced["details"]["price_usd"] == {"from": str(ticked[0]), "to": "12345"}

    async def test_a_customer_is_refused_and_nothing_changes(
        self, client: Client, alice: Auth, runtime: Runtime
    ) -> None:
        for path in ("pause", "resume", "tick"):
            assert_problem(
                await client.post(f"{SANDBOX}/{path}", headers=alice), 403, "ADMIN_REQUIRED"
            )
            assert_problem(await client.post(f"{SANDBOX}/{path}"), 401, "INVALID_TOKEN")
        put = await client.put(f"{SANDBOX}/prices/BTC", headers=alice, json={"price_usd": "1"})
        assert_problem(put, 403, "ADMIN_REQUIRED")
        assert runtime.catalog.paused is False
        assert (await asset(client, "BTC"))["price_usd"] != "1.00"

    @pytest.mark.parametrize(
        ("asset_id", "body", "status", "code"),
        [
            ("NOPE1", {"price_usd": "1"}, 404, "ASSET_NOT_FOUND"),
            ("BT-C", {"price_usd": "1"}, 422, "VALIDATION_ERROR"),
            ("BTC", {"price_usd": "0"}, 422, "VALIDATION_ERROR"),
            ("BTC", {"price_usd": "-5"}, 422, "VALIDATION_ERROR"),
            ("BTC", {"price_usd": "0.0000000000000000001"}, 422, "VALIDATION_ERROR"),
            ("BTC", {"price_usd": "1e3"}, 422, "VALIDATION_ERROR"),
            ("BTC", {"price_usd": "1000000000000"}, 422, "VALIDATION_ERROR"),
            ("BTC", {}, 422, "VALIDATION_ERROR"),
            ("BTC", {"price_usd": "1", "spread_bps": "-1"}, 422, "VALIDATION_ERROR"),
            ("BTC", {"price_usd": "1", "spread_bps": "1000.01"}, 422, "VALIDATION_ERROR"),
            ("BTC", {"price_usd": "1", "spread_bps": "1.001"}, 422, "VALIDATION_ERROR"),
            ("BTC", {"price_usd": "1", "bid": "0.9"}, 422, "VALIDATION_ERROR"),
        ],
    )
    async def test_bad_input_is_a_problem_and_changes_nothing(
        self,
        client: Client,
        admin: Auth,
        asset_id: str,
        body: dict[str, str],
        status: int,
        code: str,
    ) -> None:
        before = await asset(client, "BTC")
        response = await client.put(f"{SANDBOX}/prices/{asset_id}", headers=admin, json=body)
        assert_problem(response, status, code)
        assert await asset(client, "BTC") == before
        assert await admin_events(client, admin, "admin_sandbox_price") == []

    async def test_an_asset_added_while_paused_is_frozen_as_the_others(
        self, client: Client, admin: Auth, clock: SteppingClock, trader: Auth
    ) -> None:
        await sandbox(client, admin, "pause")
        body = {"asset_id": "NEWC", "name": "New Coin", "category": "other", "price_usd": "2"}
        assert (await client.post("/api/v1/admin/assets", headers=admin, json=body)).is_success
        clock.advance(minutes=5)
        bought = await order(client, trader, order_type="market_buy", asset_id="NEWC", quantity="1")
        assert bought.status_code == 201, bought.text
        assert bought.json()["data"]["price"] == (await asset(client, "NEWC"))["ask"]

    async def test_an_inactive_asset_is_refused_and_keeps_its_price(
        self, client: Client, admin: Auth
    ) -> None:
        off = await client.patch(
            "/api/v1/admin/assets/DOGE", headers=admin, json={"is_active": False}
        )
        assert off.status_code == 200, off.text
        before = await asset(client, "DOGE")
        put = await client.put(f"{SANDBOX}/prices/DOGE", headers=admin, json={"price_usd": "2"})
        assert_problem(put, 422, "ASSET_INACTIVE")
        assert await asset(client, "DOGE") == before
        assert await admin_events(client, admin, "admin_sandbox_price") == []

    async def test_the_widest_spread_and_the_smallest_price_are_accepted(
        self, client: Client, admin: Auth
    ) -> None:
        tiny = await set_price(
            client, admin, "SHIB", price_usd="0.000000000000000001", spread_bps="1000"
        )
        assert (tiny["bid"], tiny["ask"]) == ("0.000000000000000001", "0.000000000000000002")

    async def test_a_restart_comes_back_paused(
        self, client: Client, admin: Auth, runtime: Runtime, settings: Any, clock: SteppingClock
    ) -> None:
        from orderproc.runtime import build_runtime

        await sandbox(client, admin, "pause")
        again = await build_runtime(settings, clock=clock)
        try:
            assert again.catalog.paused is True
            quote = again.prices.quote("BTC")
            assert quote is not None
            assert quote.frozen
        finally:
            await again.close()

    async def test_a_restart_with_the_sandbox_off_unfreezes_every_price(
        self, client: Client, admin: Auth, settings: Any, clock: SteppingClock
    ) -> None:
        from orderproc.runtime import build_runtime

        await sandbox(client, admin, "pause")
        off = await build_runtime(settings.model_copy(update={"sandbox": False}), clock=clock)
        try:
            assert off.catalog.paused is False
            assert not any(asset.frozen for asset in off.catalog.assets())
            async with off.store.unit_of_work() as uow:
                records = await uow.assets.list_all()
            assert not any(Quote.from_record(r).frozen for r in records)
        finally:
            await off.close()

    async def test_a_restart_with_the_sandbox_off_gives_back_the_models_spread(
        self, client: Client, admin: Auth, settings: Any, clock: SteppingClock
    ) -> None:
        from orderproc.runtime import build_runtime

        wide = await set_price(client, admin, "ETH", price_usd="3000", spread_bps="50")
        assert (wide["bid"], wide["ask"]) == ("2992.50", "3007.50")
        await set_price(client, admin, "BTC", price_usd="50000", spread_bps="0")  # not paused
        off = await build_runtime(settings.model_copy(update={"sandbox": False}), clock=clock)
        try:
            for asset_id in ("ETH", "BTC"):
                live = off.catalog.by_id[asset_id]
                model = spread_for(live.category, live.market_cap_rank, None)
                assert live.spread_bps is None
                assert (live.spread, live.bid, live.ask) == (model, *bid_ask(live.price_usd, model))
                assert 0 < model < 50
                assert off.prices.quote(asset_id) is live
            assert off.catalog.by_id["ETH"].price_usd == Decimal("3000")  # the price is kept
            async with off.store.unit_of_work() as uow:
                records = {r.asset_id: r for r in await uow.assets.list_all()}
            assert records["ETH"].metadata.get("spread_bps") is None
            assert records["BTC"].metadata.get("spread_bps") is None
        finally:
            await off.close()
