"""Cash over HTTP: balance, deposit, withdraw, daily limits, idempotency, the ledger."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from orderproc.testing import SteppingClock
from tests.api.conftest import Auth, Client
from tests.api.test_users_auth import Signup, assert_problem

DEPOSIT = "/api/v1/balance/deposit"
WITHDRAW = "/api/v1/balance/withdraw"


async def balance(client: Client, auth: Auth) -> dict[str, str]:
    response = await client.get("/api/v1/balance", headers=auth)
    assert response.status_code == 200
    return response.json()  # type: ignore[no-any-return]


class TestBalance:
    async def test_a_new_account_holds_zero(self, client: Client, alice: Auth) -> None:
        body = await balance(client, alice)
        assert body["current_balance"] == "0.00"
        assert body["available_balance"] == "0.00"


class TestDeposit:
    @pytest.mark.every_store
    async def test_adds_exactly_the_amount_and_answers_a_receipt(
        self, client: Client, alice: Auth
    ) -> None:
        response = await client.post(DEPOSIT, headers=alice, json={"amount": "100.10"})
        assert response.status_code == 201
        receipt = response.json()
        assert receipt["balance"] == "100.10"
        assert receipt["transaction_id"]
        assert receipt["timestamp"].endswith("Z")
        await client.post(DEPOSIT, headers=alice, json={"amount": 0.2})
        assert (await balance(client, alice))["current_balance"] == "100.30"

    @pytest.mark.parametrize(
        "amount",
        [
            0,
            -5,
            "0.001",
            "1000000.01",
            "abc",
            "NaN",
            "Infinity",
            None,
            [],
            "1e400",
            "1e2",
            "10_0",
            "\uff11\uff10",
            True,
            " ",
            "1.",
            ".5",
        ],
    )
    async def test_refuses_an_invalid_amount_and_writes_nothing(
        self, client: Client, alice: Auth, amount: object
    ) -> None:
        response = await client.post(DEPOSIT, headers=alice, json={"amount": amount})
        assert_problem(response, 422, "VALIDATION_ERROR")
        assert (await balance(client, alice))["current_balance"] == "0.00"

    @pytest.mark.every_store
    async def test_refuses_beyond_the_daily_limit(self, client: Client, alice: Auth) -> None:
        assert (await client.post(DEPOSIT, headers=alice, json={"amount": "9999.99"})).is_success
        over = await client.post(DEPOSIT, headers=alice, json={"amount": "0.02"})
        problem = assert_problem(over, 422, "DAILY_LIMIT_EXCEEDED")
        assert "0.01 left" in problem["detail"]
        assert (await client.post(DEPOSIT, headers=alice, json={"amount": "0.01"})).is_success

    @pytest.mark.every_store
    async def test_the_limit_starts_again_on_the_next_utc_day(
        self, client: Client, signup: Signup, clock: SteppingClock
    ) -> None:
        clock.set(datetime(2026, 3, 1, 23, 59, tzinfo=UTC))
        alice = await signup("alice")
        assert (await client.post(DEPOSIT, headers=alice, json={"amount": "10000"})).is_success
        clock.set(datetime(2026, 3, 2, 0, 0, 1, tzinfo=UTC))
        assert (await client.post(DEPOSIT, headers=alice, json={"amount": "10000"})).is_success


@pytest.mark.every_store
class TestWithdraw:
    async def test_takes_cash_out(self, client: Client, alice: Auth) -> None:
        await client.post(DEPOSIT, headers=alice, json={"amount": "50"})
        response = await client.post(WITHDRAW, headers=alice, json={"amount": "20.5"})
        assert response.json()["balance"] == "29.50"

    async def test_refuses_more_than_available(self, client: Client, alice: Auth) -> None:
        await client.post(DEPOSIT, headers=alice, json={"amount": "50"})
        response = await client.post(WITHDRAW, headers=alice, json={"amount": "50.01"})
        assert_problem(response, 422, "INSUFFICIENT_FUNDS")
        assert (await balance(client, alice))["current_balance"] == "50.00"

    async def test_refuses_beyond_the_daily_withdrawal_limit(
        self, client: Client, alice: Auth
    ) -> None:
        await client.post(DEPOSIT, headers=alice, json={"amount": "9000"})
        assert (await client.post(WITHDRAW, headers=alice, json={"amount": "5000"})).is_success
        over = await client.post(WITHDRAW, headers=alice, json={"amount": "1"})
        assert_problem(over, 422, "DAILY_LIMIT_EXCEEDED")


class TestIdempotency:
    @pytest.mark.every_store
    async def test_a_retry_with_the_same_key_replays_and_moves_money_once(
        self, client: Client, alice: Auth
    ) -> None:
        headers = {**alice, "Idempotency-Key": "dep-1"}
        first = await client.post(DEPOSIT, headers=headers, json={"amount": "10"})
        second = await client.post(DEPOSIT, headers=headers, json={"amount": "10.00"})
        assert second.status_code == first.status_code == 201
        assert second.json() == first.json()
        assert (await balance(client, alice))["current_balance"] == "10.00"

    @pytest.mark.every_store
    async def test_the_same_key_with_another_body_is_422(self, client: Client, alice: Auth) -> None:
        headers = {**alice, "Idempotency-Key": "dep-2"}
        await client.post(DEPOSIT, headers=headers, json={"amount": "10"})
        other = await client.post(DEPOSIT, headers=headers, json={"amount": "11"})
        assert_problem(other, 422, "IDEMPOTENCY_KEY_REUSED")
        elsewhere = await client.post(WITHDRAW, headers=headers, json={"amount": "10"})
        assert_problem(elsewhere, 422, "IDEMPOTENCY_KEY_REUSED")

    @pytest.mark.every_store
    async def test_a_rejection_is_replayed_too(self, client: Client, alice: Auth) -> None:
        headers = {**alice, "Idempotency-Key": "wd-1"}
        first = await client.post(WITHDRAW, headers=headers, json={"amount": "5"})
        assert_problem(first, 422, "INSUFFICIENT_FUNDS")
        await client.post(DEPOSIT, headers=alice, json={"amount": "100"})
        again = await client.post(WITHDRAW, headers=headers, json={"amount": "5"})
        assert_problem(again, 422, "INSUFFICIENT_FUNDS")
        assert (await balance(client, alice))["current_balance"] == "100.00"

    @pytest.mark.every_store
    async def test_keys_belong_to_one_user(
        self, client: Client, alice: Auth, signup: Signup
    ) -> None:
        bob = await signup("bob")
        await client.post(DEPOSIT, headers={**alice, "Idempotency-Key": "k"}, json={"amount": "1"})
        response = await client.post(
            DEPOSIT, headers={**bob, "Idempotency-Key": "k"}, json={"amount": "2"}
        )
        assert response.status_code == 201
        assert response.json()["balance"] == "2.00"

    @pytest.mark.every_store
    async def test_concurrent_retries_of_one_key_move_money_once(
        self, client: Client, alice: Auth
    ) -> None:
        headers = {**alice, "Idempotency-Key": "burst"}
        answers = await asyncio.gather(
            *(client.post(DEPOSIT, headers=headers, json={"amount": "7"}) for _ in range(10))
        )
        assert {a.status_code for a in answers} == {201}
        assert len({a.json()["transaction_id"] for a in answers}) == 1
        assert (await balance(client, alice))["current_balance"] == "7.00"

    async def test_a_malformed_key_is_422(self, client: Client, alice: Auth) -> None:
        response = await client.post(
            DEPOSIT, headers={**alice, "Idempotency-Key": "x" * 200}, json={"amount": "1"}
        )
        assert_problem(response, 422, "VALIDATION_ERROR")


class TestLedger:
    @pytest.mark.every_store
    async def test_lists_newest_first_with_signed_amounts(
        self, client: Client, alice: Auth
    ) -> None:
        await client.post(DEPOSIT, headers=alice, json={"amount": "30"})
        await client.post(WITHDRAW, headers=alice, json={"amount": "10"})
        page = (await client.get("/api/v1/balance/transactions", headers=alice)).json()
        assert [
            (t["transaction_type"], t["amount"], t["balance_after"]) for t in page["transactions"]
        ] == [("withdraw", "-10.00", "20.00"), ("deposit", "30.00", "30.00")]
        assert page["data"] == page["transactions"]  # the legacy name holds the same rows
        assert page["total_count"] is None  # never counted: a count grows with the ledger
        assert (page["has_more"], page["next_cursor"], page["offset"]) == (False, None, None)

    @pytest.mark.every_store
    async def test_filters_by_type_and_pages(self, client: Client, alice: Auth) -> None:
        for amount in ("1", "2", "3"):
            await client.post(DEPOSIT, headers=alice, json={"amount": amount})
        await client.post(WITHDRAW, headers=alice, json={"amount": "1"})
        first = (
            await client.get(
                "/api/v1/balance/transactions",
                headers=alice,
                params={"transaction_type": "deposit", "limit": 2},
            )
        ).json()
        assert [t["amount"] for t in first["transactions"]] == ["3.00", "2.00"]
        assert first["has_more"] is True
        rest = (
            await client.get(
                "/api/v1/balance/transactions",
                headers=alice,
                params={"transaction_type": "deposit", "limit": 2, "cursor": first["next_cursor"]},
            )
        ).json()
        assert [t["amount"] for t in rest["transactions"]] == ["1.00"]
        assert rest["has_more"] is False

    @pytest.mark.every_store
    async def test_filters_by_time(
        self, client: Client, signup: Signup, clock: SteppingClock
    ) -> None:
        clock.set(datetime(2026, 2, 1, 23, 40, tzinfo=UTC))
        alice = await signup("alice")
        await client.post(DEPOSIT, headers=alice, json={"amount": "1"})
        clock.set(datetime(2026, 2, 2, 0, 10, tzinfo=UTC))
        await client.post(DEPOSIT, headers=alice, json={"amount": "2"})
        page = (
            await client.get(
                "/api/v1/balance/transactions",
                headers=alice,
                params={"start": "2026-02-02T00:00:00Z"},
            )
        ).json()
        assert [t["amount"] for t in page["transactions"]] == ["2.00"]

    @pytest.mark.parametrize("cursor", ["\u00b2", "-1", "abc", "99999999", "1.5"])
    async def test_refuses_a_cursor_it_did_not_make(
        self, client: Client, alice: Auth, cursor: str
    ) -> None:
        response = await client.get(
            "/api/v1/balance/transactions", headers=alice, params={"cursor": cursor}
        )
        assert_problem(response, 422, "VALIDATION_ERROR")

    async def test_refuses_a_reversed_range_and_an_unknown_type(
        self, client: Client, alice: Auth
    ) -> None:
        reversed_range = await client.get(
            "/api/v1/balance/transactions",
            headers=alice,
            params={"start": "2026-02-02T00:00:00Z", "end": "2026-02-01T00:00:00Z"},
        )
        assert_problem(reversed_range, 422, "VALIDATION_ERROR")
        unknown = await client.get(
            "/api/v1/balance/transactions", headers=alice, params={"transaction_type": "gift"}
        )
        assert_problem(unknown, 422, "VALIDATION_ERROR")
