"""Paging over HTTP (docs/api.md, "Lists and paging"): every list answers one envelope; a
cursor is signed and bound to the user, the route, the filters and the sort; pages neither
repeat nor skip rows when rows arrive between two requests; `offset` remains, capped, on the
lists the original platform's clients page with it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from orderproc.runtime import Runtime
from orderproc.testing import SteppingClock
from tests.api.conftest import Auth, Client
from tests.api.test_inventory import make_admin
from tests.api.test_users_auth import Signup, assert_problem

LEDGER = "/api/v1/balance/transactions"
ORDERS = "/api/v1/orders"
ENVELOPE = {"data", "has_more", "next_cursor", "total_count", "limit", "offset"}
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


async def deposit(client: Client, auth: Auth, amount: int) -> None:
    response = await client.post("/api/v1/balance/deposit", headers=auth, json={"amount": amount})
    assert response.status_code == 201, response.text


async def get(client: Client, path: str, auth: Auth | None, **params: Any) -> dict[str, Any]:
    response = await client.get(path, headers=auth or {}, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body.keys() >= ENVELOPE
    assert len(body["data"]) <= body["limit"]
    assert body["has_more"] is (body["next_cursor"] is not None)
    return body


async def walk(
    client: Client, path: str, auth: Auth | None, cursor: str | None = None, **params: Any
) -> list[Any]:
    """Every row of a list (from `cursor`, if given), following `next_cursor` with the same
    query."""
    rows: list[Any] = []
    for _ in range(1000):
        page = await get(client, path, auth, **params, **({"cursor": cursor} if cursor else {}))
        rows += page["data"]
        cursor = page["next_cursor"]
        if cursor is None:
            return rows
    raise AssertionError("the walk never ended")


def amounts(rows: list[dict[str, Any]]) -> list[str]:
    return [row["amount"] for row in rows]


@pytest.mark.every_store
class TestWalks:
    async def test_every_stored_list_walks_by_cursor_to_what_one_page_holds(
        self, client: Client, signup: Signup, runtime: Runtime
    ) -> None:
        admin = await make_admin(client, signup, runtime)
        alice = await signup("alice")
        await runtime.ticker.tick_once()
        for amount in (100, 200, 300):
            await deposit(client, alice, amount)
        for body in (
            {"order_type": "market_buy", "asset_id": "BTC", "notional": "20"},
            {"order_type": "market_buy", "asset_id": "ETH", "notional": "20"},
            {"order_type": "market_buy", "asset_id": "BTC", "notional": "30"},
            {"order_type": "market_sell", "asset_id": "BTC", "quantity": "0.0001"},
        ):
            assert (await client.post(ORDERS, headers=alice, json=body)).status_code == 201
        lists: list[tuple[str, Auth, dict[str, Any], int]] = [
            (LEDGER, alice, {}, 3 + 4 + 4),  # deposits, then per order a payment or sale, a fee
            (LEDGER, alice, {"transaction_type": "deposit"}, 3),
            (ORDERS, alice, {}, 4),
            (ORDERS, alice, {"asset_id": "BTC", "order_type": "market_buy"}, 2),
            ("/api/v1/assets/btc/transactions", alice, {}, 3),
            ("/api/v1/admin/users", admin, {}, 2),
            ("/api/v1/admin/audit", admin, {"event_type": "login_success"}, 3),
            ("/api/v1/admin/audit", admin, {"username": "alice"}, 2),
        ]
        for path, auth, params, expected in lists:
            whole = await get(client, path, auth, **params, limit=250)
            assert len(whole["data"]) == expected, (path, params)
            assert whole["total_count"] is None
            assert await walk(client, path, auth, **params, limit=1) == whole["data"]
            assert await walk(client, path, auth, **params, limit=2) == whole["data"]
        ledger = await get(client, LEDGER, alice, limit=2)
        assert ledger["transactions"] == ledger["data"]  # the legacy name, on this list only
        assert "transactions" not in await get(client, "/api/v1/assets/btc/transactions", alice)

    async def test_rows_arriving_between_two_pages_are_neither_repeated_nor_skipped(
        self, client: Client, signup: Signup, clock: SteppingClock
    ) -> None:
        clock.set(T0)
        alice = await signup("alice")
        same = T0 + timedelta(minutes=5)
        for amount in (1, 2, 3, 4, 5):
            clock.set(same)  # every deposit at the same instant: the insertion order decides
            await deposit(client, alice, amount)
        first = await get(client, LEDGER, alice, limit=2)
        assert amounts(first["data"]) == ["5.00", "4.00"]
        for amount in (6, 7):  # at that same instant again, then later
            clock.set(same)
            await deposit(client, alice, amount)
        clock.set(same + timedelta(minutes=5))
        await deposit(client, alice, 8)
        rest = await walk(client, LEDGER, alice, limit=2, cursor=first["next_cursor"])
        assert amounts(first["data"] + rest) == ["5.00", "4.00", "3.00", "2.00", "1.00"]
        # What the legacy offset does instead: the new rows push the old ones down.
        shifted = await get(client, LEDGER, alice, limit=2, offset=2)
        assert amounts(shifted["data"]) == ["6.00", "5.00"]

    async def test_a_legacy_offset_starts_a_page_and_its_cursor_goes_on(
        self, client: Client, alice: Auth
    ) -> None:
        for amount in (1, 2, 3, 4, 5):
            await deposit(client, alice, amount)
        page = await get(client, LEDGER, alice, limit=2, offset=1)
        assert (amounts(page["data"]), page["offset"]) == (["4.00", "3.00"], 1)
        rest = await get(client, LEDGER, alice, limit=2, cursor=page["next_cursor"])
        assert (amounts(rest["data"]), rest["offset"], rest["has_more"]) == (
            ["2.00", "1.00"],
            None,
            False,
        )
        last = await get(client, LEDGER, alice, offset=10_000)
        assert (last["data"], last["has_more"]) == ([], False)


def assert_refused(response: Any, parameter: str = "cursor") -> None:
    body = assert_problem(response, 422, "VALIDATION_ERROR")
    assert [error["loc"] for error in body["errors"]] == [["query", parameter]]


class TestCursorRefusals:
    @pytest.fixture
    async def cursor(self, client: Client, alice: Auth) -> str:
        for amount in (1, 2, 3):
            await deposit(client, alice, amount)
        page = await get(client, LEDGER, alice, limit=1)
        assert isinstance(page["next_cursor"], str)
        return page["next_cursor"]

    async def test_the_same_query_with_another_limit_takes_it(
        self, client: Client, alice: Auth, cursor: str
    ) -> None:
        page = await get(client, LEDGER, alice, limit=5, cursor=cursor)
        assert amounts(page["data"]) == ["2.00", "1.00"]

    @pytest.mark.parametrize(
        "spoil",
        [
            lambda c: c[:-1] + ("A" if c[-1] != "A" else "B"),  # forged tag
            lambda c: c.split(".")[0][:-2] + "." + c.split(".")[1],  # payload changed
            lambda c: c[:-10],  # truncated
            lambda c: c.split(".")[0],  # no tag
            lambda c: "abc",
            lambda c: "40",  # what an offset cursor used to look like
            lambda c: c + "." + c,
        ],
    )
    async def test_a_forged_or_broken_cursor_is_422(
        self, client: Client, alice: Auth, cursor: str, spoil: Any
    ) -> None:
        assert_refused(await client.get(LEDGER, headers=alice, params={"cursor": spoil(cursor)}))

    async def test_another_users_cursor_is_422(
        self, client: Client, signup: Signup, cursor: str
    ) -> None:
        bob = await signup("bob")
        assert_refused(await client.get(LEDGER, headers=bob, params={"cursor": cursor}))

    async def test_a_cursor_on_another_route_is_422(
        self, client: Client, alice: Auth, cursor: str
    ) -> None:
        assert_refused(await client.get(ORDERS, headers=alice, params={"cursor": cursor}))
        assert_refused(
            await client.get(
                "/api/v1/assets/BTC/transactions", headers=alice, params={"cursor": cursor}
            )
        )

    @pytest.mark.parametrize(
        "filters",
        [
            {"transaction_type": "deposit"},
            {"start": "2026-01-01T00:00:00Z"},
            {"end": "2030-01-01T00:00:00Z"},
        ],
    )
    async def test_a_cursor_with_other_filters_is_422(
        self, client: Client, alice: Auth, cursor: str, filters: dict[str, str]
    ) -> None:
        response = await client.get(LEDGER, headers=alice, params={**filters, "cursor": cursor})
        assert_refused(response)

    async def test_a_cursor_with_an_offset_is_422(
        self, client: Client, alice: Auth, cursor: str
    ) -> None:
        for offset in ("0", "1"):
            response = await client.get(
                LEDGER, headers=alice, params={"cursor": cursor, "offset": offset}
            )
            assert_refused(response)

    async def test_a_catalog_cursor_with_another_sort_is_422(self, client: Client) -> None:
        assets = "/api/v1/inventory/assets"
        page = await get(client, assets, None, limit=5, sort_by="price")
        again = await get(
            client, assets, None, limit=5, sort_by="price", cursor=page["next_cursor"]
        )
        assert again["offset"] == 5
        for other in ({"sort_by": "volume"}, {"sort_by": "price", "sort_order": "asc"}):
            response = await client.get(assets, params={**other, "cursor": page["next_cursor"]})
            assert_refused(response)

    async def test_a_cursor_from_another_path_is_422(
        self, client: Client, trader_with_trades: Auth
    ) -> None:
        btc = await get(client, "/api/v1/assets/BTC/transactions", trader_with_trades, limit=1)
        response = await client.get(
            "/api/v1/assets/ETH/transactions",
            headers=trader_with_trades,
            params={"cursor": btc["next_cursor"]},
        )
        assert_refused(response)

    @pytest.fixture
    async def trader_with_trades(self, client: Client, alice: Auth, runtime: Runtime) -> Auth:
        await runtime.ticker.tick_once()
        await deposit(client, alice, 500)
        for _ in range(2):
            body = {"order_type": "market_buy", "asset_id": "BTC", "notional": "20"}
            assert (await client.post(ORDERS, headers=alice, json=body)).status_code == 201
        return alice


class TestOffsets:
    async def test_offset_is_capped_at_ten_thousand_on_the_legacy_lists(
        self, client: Client, alice: Auth
    ) -> None:
        for path in (LEDGER, ORDERS, "/api/v1/assets/BTC/transactions"):
            assert (await client.get(path, headers=alice, params={"offset": 10_000})).is_success
            assert_refused(
                await client.get(path, headers=alice, params={"offset": 10_001}), "offset"
            )

    async def test_the_admin_lists_page_by_cursor_only(
        self, client: Client, signup: Signup, runtime: Runtime
    ) -> None:
        admin = await make_admin(client, signup, runtime)
        for path in ("/api/v1/admin/users", "/api/v1/admin/audit"):
            response = await client.get(path, headers=admin, params={"offset": 0})
            assert_refused(response, "offset")

    async def test_the_openapi_document_shows_one_envelope_and_offset_only_where_it_stays(
        self, client: Client
    ) -> None:
        document = (await client.get("/openapi.json")).json()
        schemas = document["components"]["schemas"]
        legacy = {"/balance/transactions", "/orders", "/assets/{asset_id}/transactions"}
        cursor_only = {"/admin/users", "/admin/audit"}
        for path in legacy | cursor_only | {"/inventory/assets"}:
            get_operation = document["paths"][f"/api/v1{path}"]["get"]
            parameters = {p["name"]: p for p in get_operation["parameters"]}
            assert {"limit", "cursor"} <= parameters.keys(), path
            assert ("offset" in parameters) is (path not in cursor_only), path
            if path in legacy:
                assert parameters["offset"]["schema"]["anyOf"][0]["maximum"] == 10_000
            ref = get_operation["responses"]["200"]["content"]["application/json"]["schema"]
            schema = schemas[ref["$ref"].rsplit("/", 1)[1]]
            assert schema["properties"].keys() >= ENVELOPE, path
