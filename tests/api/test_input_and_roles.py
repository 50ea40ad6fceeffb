"""Input and roles over HTTP (docs/security.md, "Input and roles"): common passwords, names
without control or bidirectional-override characters, the last active admin, the audit of
every admin action, and `Secure` session cookies behind a trusted TLS proxy."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from tests.api.conftest import Auth, Client, user_body

Signup = Callable[..., Awaitable[Auth]]
PROBLEM = "application/problem+json"


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["code"] == code
    return body


class TestCommonPasswords:
    @pytest.mark.parametrize("password", ["password123", "Password123!", "alice1alice1"])
    async def test_registration_refuses_them(self, client: Client, password: str) -> None:
        body = {**user_body("alice"), "password": password}
        problem = assert_problem(
            await client.post("/api/v1/auth/register", json=body), 422, "WEAK_PASSWORD"
        )
        assert "password" in problem["detail"].lower()

    async def test_a_repeated_short_piece_is_refused_for_any_user(self, client: Client) -> None:
        body = {**user_body("bob"), "password": "alice1alice1"}
        problem = assert_problem(
            await client.post("/api/v1/auth/register", json=body), 422, "WEAK_PASSWORD"
        )
        assert "repeated" in problem["detail"]

    @pytest.mark.parametrize("password", ["password123", "Password123!", "alice1alice1"])
    async def test_a_password_change_refuses_them(
        self, client: Client, alice: Auth, password: str
    ) -> None:
        response = await client.post(
            "/api/v1/auth/password",
            headers=alice,
            json={"current_password": "correct horse battery staple", "new_password": password},
        )
        assert_problem(response, 422, "WEAK_PASSWORD")
