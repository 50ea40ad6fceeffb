"""The users service over HTTP: registration, login, logout, profile, password, admin."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from orderproc.gateway.app import create_app
from orderproc.runtime import build_runtime
from orderproc.testing import SteppingClock
from tests.api.conftest import Auth, Client, user_body

Signup = Callable[..., Awaitable[Auth]]
PROBLEM = "application/problem+json"


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["code"] == code
    assert body["request_id"] == response.headers["x-request-id"]
    return body


class TestRegister:
    async def test_creates_a_customer_and_answers_the_profile(self, client: Client) -> None:
        response = await client.post("/api/v1/auth/register", json=user_body("Bob_1"))
        assert response.status_code == 201
        user = response.json()["user"]
        assert user["username"] == "bob_1"
        assert user["role"] == "customer"
        assert "password" not in str(response.json())

    @pytest.mark.every_store
    async def test_refuses_a_taken_username_in_any_case(self, client: Client) -> None:
        await client.post("/api/v1/auth/register", json=user_body("carol"))
        again = user_body("CAROL", email="other@example.com")
        assert_problem(
            await client.post("/api/v1/auth/register", json=again), 409, "USERNAME_TAKEN"
        )

    @pytest.mark.every_store
    async def test_refuses_a_taken_email(self, client: Client) -> None:
        await client.post("/api/v1/auth/register", json=user_body("dave"))
        again = user_body("dave2", email="DAVE@example.com")
        assert_problem(await client.post("/api/v1/auth/register", json=again), 409, "EMAIL_TAKEN")

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("username", "ab"),
            ("username", "has space"),
            ("username", "x" * 31),
            ("email", "not-an-email"),
            ("first_name", ""),
            ("phone", "call me"),
            ("date_of_birth", "1800-01-01"),
            ("date_of_birth", "2999-01-01"),
        ],
    )
    async def test_refuses_an_invalid_field_naming_it(
        self, client: Client, field: str, value: str
    ) -> None:
        body = {**user_body("erin"), field: value}
        problem = assert_problem(
            await client.post("/api/v1/auth/register", json=body), 422, "VALIDATION_ERROR"
        )
        assert problem["errors"][0]["loc"] == ["body", field]

    @pytest.mark.parametrize("password", ["short", "password1", "x" * 129, "frank_is_me_123"])
    async def test_refuses_a_weak_password(self, client: Client, password: str) -> None:
        body = {**user_body("frank_is_me"), "password": password}
        assert_problem(await client.post("/api/v1/auth/register", json=body), 422, "WEAK_PASSWORD")

    async def test_accepts_a_128_character_password_without_truncating_it(
        self, client: Client
    ) -> None:
        password = "Zq9!" * 31 + "Wx7#"  # not one piece repeated
        await client.post("/api/v1/auth/register", json={**user_body("gina"), "password": password})
        ok = await client.post(
            "/api/v1/auth/login", json={"username": "gina", "password": password}
        )
        cut = await client.post(
            "/api/v1/auth/login", json={"username": "gina", "password": password[:72]}
        )
        assert ok.status_code == 200
        assert cut.status_code == 401

    async def test_refuses_unknown_fields_and_malformed_json(self, client: Client) -> None:
        extra = {**user_body("hank"), "role": "admin"}
        assert_problem(
            await client.post("/api/v1/auth/register", json=extra), 422, "VALIDATION_ERROR"
        )
        broken = await client.post(
            "/api/v1/auth/register",
            content=b"{not json",
            headers={"content-type": "application/json"},
        )
        assert_problem(broken, 422, "VALIDATION_ERROR")

    async def test_refuses_an_oversized_body(self, client: Client) -> None:
        body = {**user_body("ivan"), "first_name": "x" * 100_000}
        assert_problem(
            await client.post("/api/v1/auth/register", json=body), 413, "PAYLOAD_TOO_LARGE"
        )


class TestLogin:
    async def test_answers_a_bearer_token_and_the_profile(
        self, client: Client, alice: Auth
    ) -> None:
        response = await client.post(
            "/api/v1/auth/login",
            json={"username": "ALICE", "password": "correct horse battery staple"},
        )
        body = response.json()
        assert body["token_type"] == "bearer"
        assert body["expires_in"] == 3600
        assert body["user"]["username"] == "alice"

    async def test_answers_the_same_401_for_a_wrong_password_and_an_unknown_user(
        self, client: Client, alice: Auth
    ) -> None:
        wrong = await client.post(
            "/api/v1/auth/login", json={"username": "alice", "password": "nope"}
        )
        unknown = await client.post(
            "/api/v1/auth/login", json={"username": "nobody", "password": "nope"}
        )
        first = assert_problem(wrong, 401, "INVALID_CREDENTIALS")
        second = assert_problem(unknown, 401, "INVALID_CREDENTIALS")
        assert first["detail"] == second["detail"]

    async def test_oauth2_form_login_works_for_the_docs(self, client: Client, alice: Auth) -> None:
        response = await client.post(
            "/api/v1/auth/token",
            data={"username": "alice", "password": "correct horse battery staple"},
        )
        assert response.status_code == 200
        token = response.json()["access_token"]
        profile = await client.get(
            "/api/v1/auth/profile", headers={"Authorization": f"Bearer {token}"}
        )
        assert profile.status_code == 200

    @pytest.mark.parametrize(
        "settings_overrides", [{"login_failure_limit": 3, "rate_limit_enabled": True}]
    )
    async def test_blocks_an_address_after_failures_for_many_usernames(
        self, client: Client, alice: Auth
    ) -> None:
        for n in range(3):
            await client.post("/api/v1/auth/login", json={"username": f"x{n}", "password": "y"})
        blocked = await client.post(
            "/api/v1/auth/login",
            json={"username": "alice", "password": "correct horse battery staple"},
        )
        assert_problem(blocked, 403, "CLIENT_BLOCKED")
        assert_problem(await client.get("/api/v1/balance", headers=alice), 403, "CLIENT_BLOCKED")


class TestLoginBlockingCannotBeReset:
    @pytest.mark.parametrize(
        "settings_overrides", [{"login_pair_failure_limit": 4, "rate_limit_enabled": True}]
    )
    async def test_logging_in_to_an_own_account_does_not_clear_failures_against_another(
        self, client: Client, signup: Signup
    ) -> None:
        await signup("mallory")
        await signup("victim1")
        client.cookies.clear()
        mine = {"username": "mallory", "password": "correct horse battery staple"}
        answers = []
        for guess in range(6):
            answers.append(
                await client.post(
                    "/api/v1/auth/login", json={"username": "victim1", "password": f"guess{guess}"}
                )
            )
            await client.post("/api/v1/auth/login", json=mine)
            client.cookies.clear()  # guesses come without a device cookie
        assert [a.status_code for a in answers] == [401, 401, 401, 401, 429, 429]
        assert answers[-1].json()["code"] == "LOGIN_THROTTLED"


class TestTokens:
    async def test_a_missing_or_garbage_token_is_401(self, client: Client) -> None:
        assert_problem(await client.get("/api/v1/auth/profile"), 401, "INVALID_TOKEN")
        bad = await client.get("/api/v1/auth/profile", headers={"Authorization": "Bearer abc"})
        assert_problem(bad, 401, "INVALID_TOKEN")

    async def test_logout_revokes_the_token(self, client: Client, alice: Auth) -> None:
        assert (await client.post("/api/v1/auth/logout", headers=alice)).status_code == 200
        assert_problem(await client.get("/api/v1/balance", headers=alice), 401, "TOKEN_REVOKED")

    @pytest.mark.every_store
    async def test_a_revoked_token_stays_revoked_after_a_restart(
        self, client: Client, alice: Auth, settings: Any
    ) -> None:
        await client.post("/api/v1/auth/logout", headers=alice)
        restarted = await build_runtime(settings, clock=SteppingClock())
        try:
            app = create_app(settings, runtime=restarted)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as fresh:
                response = await fresh.get("/api/v1/balance", headers=alice)
        finally:
            await restarted.close()
        assert_problem(response, 401, "TOKEN_REVOKED")


class TestProfile:
    async def test_reads_the_profile(self, client: Client, alice: Auth) -> None:
        profile = (await client.get("/api/v1/auth/profile", headers=alice)).json()
        assert profile["email"] == "alice@example.com"
        assert set(profile) >= {
            "username",
            "first_name",
            "last_name",
            "phone",
            "date_of_birth",
            "role",
            "created_at",
            "updated_at",
        }

    @pytest.mark.every_store
    async def test_updates_only_the_fields_sent(self, client: Client, alice: Auth) -> None:
        response = await client.put(
            "/api/v1/auth/profile", headers=alice, json={"phone": "+44 20 7946 0000"}
        )
        assert response.json()["phone"] == "+44 20 7946 0000"
        assert response.json()["first_name"] == "Ada"

    @pytest.mark.every_store
    async def test_refuses_an_email_another_user_has(
        self, client: Client, alice: Auth, signup: Signup
    ) -> None:
        await signup("bob")
        response = await client.put(
            "/api/v1/auth/profile", headers=alice, json={"email": "bob@example.com"}
        )
        assert_problem(response, 409, "EMAIL_TAKEN")


class TestPasswordChange:
    @pytest.mark.every_store
    async def test_revokes_earlier_tokens_and_answers_a_working_one(
        self, client: Client, alice: Auth
    ) -> None:
        second_session = await client.post(
            "/api/v1/auth/login",
            json={"username": "alice", "password": "correct horse battery staple"},
        )
        other = {"Authorization": f"Bearer {second_session.json()['access_token']}"}
        response = await client.post(
            "/api/v1/auth/password",
            headers=alice,
            json={
                "current_password": "correct horse battery staple",
                "new_password": "a much better passphrase",
            },
        )
        assert response.status_code == 200
        fresh = {"Authorization": f"Bearer {response.json()['access_token']}"}
        assert_problem(await client.get("/api/v1/balance", headers=other), 401, "TOKEN_REVOKED")
        assert_problem(await client.get("/api/v1/balance", headers=alice), 401, "TOKEN_REVOKED")
        assert (await client.get("/api/v1/balance", headers=fresh)).status_code == 200
        relogin = await client.post(
            "/api/v1/auth/login", json={"username": "alice", "password": "a much better passphrase"}
        )
        assert relogin.status_code == 200

    async def test_refuses_a_wrong_current_password(self, client: Client, alice: Auth) -> None:
        response = await client.post(
            "/api/v1/auth/password",
            headers=alice,
            json={"current_password": "wrong", "new_password": "a much better passphrase"},
        )
        assert_problem(response, 401, "INVALID_CREDENTIALS")


class TestAdmin:
    async def make_admin(self, client: Client, signup: Signup, runtime: Any) -> Auth:
        await signup("root_admin")
        from orderproc.users import service

        await service.admin_update_user(
            "root_admin", role="admin", is_active=None, actor_id="test", deps=runtime.users
        )
        login = await client.post(
            "/api/v1/auth/login",
            json={"username": "root_admin", "password": "correct horse battery staple"},
        )
        return {"Authorization": f"Bearer {login.json()['access_token']}"}

    async def test_customers_get_403_on_admin_routes(self, client: Client, alice: Auth) -> None:
        assert_problem(
            await client.get("/api/v1/admin/users", headers=alice), 403, "ADMIN_REQUIRED"
        )
        assert_problem(
            await client.get("/api/v1/admin/audit", headers=alice), 403, "ADMIN_REQUIRED"
        )

    @pytest.mark.every_store
    async def test_admin_lists_users_and_reads_the_audit_log(
        self, client: Client, alice: Auth, signup: Signup, runtime: Any
    ) -> None:
        admin = await self.make_admin(client, signup, runtime)
        users = (await client.get("/api/v1/admin/users", headers=admin)).json()
        assert {u["username"] for u in users["data"]} == {"alice", "root_admin"}
        audit = await client.get("/api/v1/admin/audit", headers=admin, params={"username": "alice"})
        kinds = [e["event_type"] for e in audit.json()["data"]]
        assert kinds == ["login_success", "register"]

    @pytest.mark.every_store
    async def test_disabling_a_user_revokes_their_tokens(
        self, client: Client, alice: Auth, signup: Signup, runtime: Any
    ) -> None:
        admin = await self.make_admin(client, signup, runtime)
        response = await client.patch(
            "/api/v1/admin/users/alice", headers=admin, json={"is_active": False}
        )
        assert response.json()["is_active"] is False
        assert (await client.get("/api/v1/balance", headers=alice)).status_code in (401, 403)
        login = await client.post(
            "/api/v1/auth/login",
            json={"username": "alice", "password": "correct horse battery staple"},
        )
        assert_problem(login, 403, "ACCOUNT_DISABLED")

    async def test_unknown_user_is_404(self, client: Client, signup: Signup, runtime: Any) -> None:
        admin = await self.make_admin(client, signup, runtime)
        response = await client.patch(
            "/api/v1/admin/users/ghost", headers=admin, json={"role": "admin"}
        )
        assert_problem(response, 404, "USER_NOT_FOUND")


class TestEdge:
    async def test_unknown_routes_and_methods_are_problems(self, client: Client) -> None:
        assert_problem(await client.get("/api/v1/nowhere"), 404, "ROUTE_NOT_FOUND")
        assert_problem(await client.delete("/api/v1/auth/login"), 405, "METHOD_NOT_ALLOWED")

    async def test_a_405_names_the_allowed_methods(self, client: Client) -> None:
        response = await client.delete("/api/v1/auth/login")
        assert_problem(response, 405, "METHOD_NOT_ALLOWED")
        assert response.headers["allow"] == "POST"  # RFC 9110 requires it

    async def test_keeps_a_safe_request_id_and_replaces_an_unsafe_one(self, client: Client) -> None:
        kept = await client.get("/health", headers={"X-Request-ID": "abc-123"})
        replaced = await client.get("/health", headers={"X-Request-ID": "<script>"})
        assert kept.headers["x-request-id"] == "abc-123"
        assert replaced.headers["x-request-id"] != "<script>"

    async def test_sends_security_headers(self, client: Client) -> None:
        response = await client.get("/health")
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"

    async def test_the_docs_work_offline_from_vendored_files(self, client: Client) -> None:
        page = await client.get("/docs")
        assert page.status_code == 200
        assert "/docs/static/swagger-ui-bundle.js" in page.text
        script = await client.get("/docs/static/swagger-ui-bundle.js")
        assert script.status_code == 200
        assert len(script.content) > 100_000
        spec = (await client.get("/openapi.json")).json()
        assert "/api/v1/orders" in spec["paths"]
        assert "Problem" in spec["components"]["schemas"]

    async def test_health_ready_and_metrics_answer(self, client: Client) -> None:
        assert (await client.get("/health")).json()["status"] == "ok"
        assert (await client.get("/ready")).json()["status"] == "ready"
        metrics = await client.get("/metrics")
        assert "orderproc_http_requests_total" in metrics.text

    @pytest.mark.parametrize(
        "settings_overrides", [{"rate_limit_enabled": True, "rate_limit_per_minute": 3}]
    )
    async def test_rate_limits_with_retry_after(self, client: Client) -> None:
        answers = [await client.get("/api/v1/auth/profile") for _ in range(4)]
        assert answers[0].headers["x-ratelimit-limit"] == "3"
        assert answers[2].headers["x-ratelimit-remaining"] == "0"
        limited = assert_problem(answers[3], 429, "RATE_LIMITED")
        assert limited["status"] == 429
        assert int(answers[3].headers["retry-after"]) >= 1

    async def test_an_unexpected_error_is_a_500_without_internals(self, runtime: Any) -> None:
        app = create_app(runtime.settings, runtime=runtime)

        @app.get("/boom")
        async def boom() -> None:
            raise RuntimeError("secret internals")

        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.get("/boom")
        assert response.status_code == 500
        assert "secret" not in response.text
        assert response.json()["code"] == "INTERNAL_ERROR"
        assert response.json()["request_id"]
