"""The catalog over HTTP: listing with every filter, one asset, candles, admin routes."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest

from orderproc.runtime import Runtime
from orderproc.testing import SteppingClock
from tests.api.conftest import Auth, Client
from tests.api.test_input_and_roles import admin_events
from tests.api.test_users_auth import Signup, assert_problem

ASSETS = "/api/v1/inventory/assets"


async def make_admin(client: Client, signup: Signup, runtime: Runtime) -> Auth:
    from orderproc.users import service

    await signup("root_admin")
    await service.admin_update_user(
        "root_admin", role="admin", is_active=None, actor_id="test", deps=runtime.users
    )
    login = await client.post(
        "/api/v1/auth/login",
        json={"username": "root_admin", "password": "correct horse battery staple"},
    )
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


async def add_coin(client: Client, admin: Auth, asset_id: str, **fields: Any) -> httpx.Response:
    """POST an asset at 2 USD, with `fields` besides."""
    body = {"asset_id": asset_id, "name": f"{asset_id} Coin", "category": "other"}
    return await client.post(
        "/api/v1/admin/assets", headers=admin, json=body | {"price_usd": "2"} | fields
    )


class TestCatalog:
    @pytest.mark.every_store
    async def test_a_fresh_install_lists_about_a_hundred_assets(self, client: Client) -> None:
        page = (await client.get(ASSETS, params={"limit": 250})).json()
        assert 95 <= page["total_count"] <= 110
        assert page["active_count"] == page["total_count"]
        assert page["has_more"] is False
        first = page["data"][0]
        assert first["asset_id"] == "BTC"
        assert Decimal(first["price_usd"]) > 0

    async def test_pages_with_has_more_and_a_cursor(self, client: Client) -> None:
        first = (await client.get(ASSETS, params={"limit": 10})).json()
        assert len(first["data"]) == 10
        assert first["has_more"] is True
        second = (await client.get(ASSETS, params={"limit": 10, "offset": 10})).json()
        assert {a["asset_id"] for a in first["data"]}.isdisjoint(
            {a["asset_id"] for a in second["data"]}
        )
        # The catalog pages by offset; its cursor holds one, signed.
        by_cursor = (
            await client.get(ASSETS, params={"limit": 10, "cursor": first["next_cursor"]})
        ).json()
        assert by_cursor["data"] == second["data"]
        assert (by_cursor["offset"], second["offset"]) == (10, 10)

    @pytest.mark.parametrize(
        ("params", "check"),
        [
            ({"search": "bit"}, lambda a: "bit" in (a["asset_id"] + a["name"]).lower()),
            ({"category": "stablecoin"}, lambda a: a["category"] == "stablecoin"),
            ({"category": "meme", "search": "o"}, lambda a: a["category"] == "meme"),
        ],
    )
    async def test_filters(self, client: Client, params: dict[str, str], check: Any) -> None:
        page = (await client.get(ASSETS, params={**params, "limit": 250})).json()
        assert page["data"]
        assert all(check(a) for a in page["data"])

    @pytest.mark.parametrize(
        ("sort_by", "order", "field", "kind"),
        [
            ("price", "asc", "price_usd", Decimal),
            ("price", "desc", "price_usd", Decimal),
            ("name", "asc", "name", str.casefold),
            ("market_cap_rank", "desc", "market_cap_rank", int),
            ("volume", "desc", "total_volume_24h", Decimal),
            ("change_24h", "asc", "price_change_percentage_24h", Decimal),
        ],
    )
    async def test_sorts(
        self, client: Client, sort_by: str, order: str, field: str, kind: Any
    ) -> None:
        params = {"sort_by": sort_by, "sort_order": order, "limit": 250}
        data = (await client.get(ASSETS, params=params)).json()["data"]
        values = [kind(a[field]) for a in data if a[field] is not None]
        assert values == sorted(values, reverse=order == "desc")

    @pytest.mark.parametrize(
        "params",
        [
            {"limit": 0},
            {"limit": 251},
            {"offset": -1},
            {"category": "nope"},
            {"sort_by": "colour"},
            {"sort_order": "sideways"},
            {"search": "x" * 65},
        ],
    )
    async def test_refuses_bad_parameters(self, client: Client, params: dict[str, Any]) -> None:
        assert_problem(await client.get(ASSETS, params=params), 422, "VALIDATION_ERROR")


class TestOneAsset:
    async def test_ids_are_case_insensitive(self, client: Client) -> None:
        lower = (await client.get(f"{ASSETS}/btc")).json()["data"]
        upper = (await client.get(f"{ASSETS}/BTC")).json()["data"]
        assert lower == upper
        assert set(lower) >= {"symbol", "market_cap", "ath", "atl_date", "circulating_supply"}

    async def test_malformed_is_422_and_unknown_is_404(self, client: Client) -> None:
        assert_problem(await client.get(f"{ASSETS}/BT-C"), 422, "VALIDATION_ERROR")
        assert_problem(await client.get(f"{ASSETS}/NOPE123"), 404, "ASSET_NOT_FOUND")


class TestMarketCap:
    async def test_follows_the_price_where_the_supply_is_known(
        self, client: Client, runtime: Runtime, clock: SteppingClock
    ) -> None:
        for _ in range(3):
            clock.advance(seconds=20)
            await runtime.ticker.tick_once()
        btc = (await client.get(f"{ASSETS}/BTC")).json()["data"]
        supply = Decimal(btc["circulating_supply"])
        cap = (Decimal(btc["price_usd"]) * supply).quantize(Decimal("0.01"))
        assert Decimal(btc["market_cap"]) == cap
        stored = runtime.catalog.by_id["BTC"].market_cap
        assert stored is not None
        assert cap != stored  # the snapshot's, at its own price
        assert abs(cap - stored) / stored < Decimal("0.5")

    def test_without_a_supply_is_the_stored_one(self) -> None:
        from dataclasses import replace

        from orderproc.inventory.domain import load_snapshot
        from orderproc.inventory.schemas import market_cap

        btc = next(a for a in load_snapshot() if a.asset_id == "BTC")
        assert market_cap(replace(btc, circulating_supply=None)) == btc.market_cap


class TestPricesAndCandles:
    @pytest.mark.every_store
    async def test_a_tick_moves_prices_and_writes_candles(
        self, client: Client, runtime: Runtime, clock: SteppingClock
    ) -> None:
        before = (await client.get(f"{ASSETS}/BTC")).json()["data"]["price_usd"]
        for _ in range(3):
            clock.advance(seconds=20)
            assert await runtime.ticker.tick_once() > 90
        after = (await client.get(f"{ASSETS}/BTC")).json()["data"]
        assert after["price_usd"] != before
        candles = (await client.get(f"{ASSETS}/BTC/candles", params={"interval": "1m"})).json()
        assert 2 <= len(candles["data"]) <= 3
        last = candles["data"][-1]
        assert last["close"] == after["price_usd"]
        assert Decimal(last["low"]) <= Decimal(last["close"]) <= Decimal(last["high"])
        hourly = (await client.get(f"{ASSETS}/BTC/candles", params={"interval": "1h"})).json()
        assert len(hourly["data"]) == 1
        assert hourly["data"][0]["close"] == after["price_usd"]

    async def test_a_failing_feed_keeps_prices(self, client: Client, runtime: Runtime) -> None:
        class Broken:
            async def next_prices(self, now: object) -> dict[str, Decimal]:
                raise ConnectionError("price API down")

        runtime.ticker.feed = Broken()
        before = (await client.get(f"{ASSETS}/ETH")).json()["data"]
        assert await runtime.ticker.tick_once() == 0
        assert (await client.get(f"{ASSETS}/ETH")).json()["data"] == before

    async def test_refuses_a_bad_interval(self, client: Client) -> None:
        response = await client.get(f"{ASSETS}/BTC/candles", params={"interval": "5m"})
        assert_problem(response, 422, "VALIDATION_ERROR")


class TestAdminAssets:
    async def test_customers_cannot_add_assets(self, client: Client, alice: Auth) -> None:
        body = {"asset_id": "NEWC", "name": "New Coin", "category": "other", "price_usd": "1.5"}
        assert_problem(
            await client.post("/api/v1/admin/assets", headers=alice, json=body),
            403,
            "ADMIN_REQUIRED",
        )
        assert_problem(await client.post("/api/v1/admin/assets", json=body), 401, "INVALID_TOKEN")

    @pytest.mark.every_store
    async def test_admin_adds_deactivates_and_reactivates(
        self, client: Client, signup: Signup, runtime: Runtime
    ) -> None:
        admin = await make_admin(client, signup, runtime)
        body = {
            "asset_id": "newc",
            "name": "New Coin",
            "category": "other",
            "price_usd": "0.000001234567890123",
        }
        created = await client.post("/api/v1/admin/assets", headers=admin, json=body)
        assert created.status_code == 201
        assert created.json()["data"]["price_usd"] == "0.000001234567890123"
        again = await client.post("/api/v1/admin/assets", headers=admin, json=body)
        assert_problem(again, 409, "ASSET_EXISTS")
        off = await client.patch(
            "/api/v1/admin/assets/NEWC", headers=admin, json={"is_active": False}
        )
        assert off.json()["data"]["is_active"] is False
        listed = (await client.get(ASSETS, params={"search": "newc"})).json()
        assert listed["data"] == []
        everything = await client.get(ASSETS, params={"search": "newc", "active_only": False})
        assert [a["asset_id"] for a in everything.json()["data"]] == ["NEWC"]
        on = await client.patch(
            "/api/v1/admin/assets/newc", headers=admin, json={"is_active": True, "name": "Renamed"}
        )
        assert on.json()["data"]["name"] == "Renamed"

    async def test_an_added_asset_trades_with_the_volume_it_was_given(
        self, client: Client, signup: Signup, runtime: Runtime, clock: SteppingClock
    ) -> None:
        admin = await make_admin(client, signup, runtime)
        created = await add_coin(client, admin, "VOLC", total_volume_24h="8640000")
        assert created.status_code == 201, created.text
        assert created.json()["data"]["total_volume_24h"] == "8640000.00"
        for _ in range(3):
            clock.advance(seconds=20)
            await runtime.ticker.tick_once()
        minutes = await client.get(f"{ASSETS}/VOLC/candles", params={"interval": "1m"})
        volumes = [Decimal(c["volume"]) for c in minutes.json()["data"]]
        assert volumes
        assert all(v > 0 for v in volumes)
        # 8,640,000 a day is 100 a second: a tick brings 0.5x to 1.5x of its seconds' share
        share = Decimal(100) * Decimal(str(runtime.settings.price_tick_seconds))
        assert share / 2 <= min(volumes)
        changed = await client.patch(
            "/api/v1/admin/assets/VOLC", headers=admin, json={"total_volume_24h": "0"}
        )
        assert changed.json()["data"]["total_volume_24h"] == "0.00"
        events = await admin_events(client, admin, "admin_asset_update")
        assert events[0]["details"]["total_volume_24h"] == {"from": "8640000", "to": "0"}

    @pytest.mark.parametrize(
        ("rank", "like"), [(1, "BTC"), (2, "ETH"), (None, None)], ids=["rank-1", "rank-2", "none"]
    )
    async def test_an_asset_added_without_volume_gets_a_usual_one(
        self, client: Client, signup: Signup, runtime: Runtime, rank: int | None, like: str | None
    ) -> None:
        admin = await make_admin(client, signup, runtime)
        created = await add_coin(client, admin, "USUAL", market_cap_rank=rank)
        assert created.status_code == 201, created.text
        volume = created.json()["data"]["total_volume_24h"]
        others = [a for a in runtime.catalog.assets() if a.asset_id != "USUAL"]
        if like is not None:
            assert runtime.catalog.by_id[like].market_cap_rank == rank
            assert Decimal(volume) == runtime.catalog.by_id[like].total_volume_24h
        else:
            below = [a for a in others if (a.total_volume_24h or 0) < Decimal(volume)]
            above = [a for a in others if (a.total_volume_24h or 0) > Decimal(volume)]
            assert abs(len(below) - len(above)) <= 1  # the median
        assert Decimal(volume) > 0

    @pytest.mark.parametrize("volume", ["-1", "1.234", "1e15", "lots"])
    async def test_a_bad_volume_is_refused(
        self, client: Client, signup: Signup, runtime: Runtime, volume: str
    ) -> None:
        admin = await make_admin(client, signup, runtime)
        created = await add_coin(client, admin, "BADV", total_volume_24h=volume)
        assert_problem(created, 422, "VALIDATION_ERROR")
        assert "BADV" not in runtime.catalog.by_id
        patched = await client.patch(
            "/api/v1/admin/assets/BTC", headers=admin, json={"total_volume_24h": volume}
        )
        assert_problem(patched, 422, "VALIDATION_ERROR")

    async def test_patching_an_unknown_asset_is_404(
        self, client: Client, signup: Signup, runtime: Runtime
    ) -> None:
        admin = await make_admin(client, signup, runtime)
        response = await client.patch(
            "/api/v1/admin/assets/NOPE9", headers=admin, json={"is_active": False}
        )
        assert_problem(response, 404, "ASSET_NOT_FOUND")


class TestCatalogCache:
    async def test_a_repeated_read_is_the_same_bytes_until_the_next_tick(
        self, client: Client, runtime: Runtime, clock: SteppingClock
    ) -> None:
        first = await client.get(f"{ASSETS}/ETH")
        again = await client.get(f"{ASSETS}/ETH")
        assert again.content == first.content
        assert again.headers["x-content-type-options"] == "nosniff"
        assert again.headers["x-request-id"] != first.headers["x-request-id"]
        clock.advance(seconds=5)
        await runtime.ticker.tick_once()
        moved = await client.get(f"{ASSETS}/ETH")
        assert moved.json()["data"]["price_usd"] != first.json()["data"]["price_usd"]

    async def test_errors_are_never_cached(self, client: Client) -> None:
        assert (await client.get(f"{ASSETS}/NOPE1")).status_code == 404
        assert (await client.get(f"{ASSETS}/NOPE1")).status_code == 404
        assert (await client.get(ASSETS, params={"limit": 0})).status_code == 422
        assert (await client.get(ASSETS, params={"limit": 1})).status_code == 200
