"""Input and roles over HTTP (docs/security.md, "Input and roles"): common passwords, names
without control or bidirectional-override characters, the last active admin, the audit of
every admin action, and `Secure` session cookies behind a trusted TLS proxy."""

from __future__ import annotations

import asyncio
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


async def make_admin(
    client: Client, signup: Signup, runtime: Any, name: str = "root_admin"
) -> Auth:
    """A signed-up user promoted by the CLI's path (actor `cli`), logged in again so the
    token carries the role."""
    from orderproc.users import service

    await signup(name)
    await service.admin_update_user(
        name, role="admin", is_active=None, actor_id="cli", deps=runtime.users
    )
    login = await client.post(
        "/api/v1/auth/login", json={"username": name, "password": "correct horse battery staple"}
    )
    assert login.status_code == 200, login.text
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


BAD_CHARACTERS = {
    "NUL": "\x00",
    "newline": "\n",
    "right-to-left override": "\u202e",
    "left-to-right isolate": "\u2066",
    "zero-width space": "\u200b",
}


class TestNames:
    @pytest.mark.parametrize("field", ["first_name", "last_name"])
    @pytest.mark.parametrize("char", BAD_CHARACTERS.values(), ids=BAD_CHARACTERS.keys())
    async def test_registration_refuses_them_naming_the_field(
        self, client: Client, field: str, char: str
    ) -> None:
        body = {**user_body("erin"), field: f"Ev{char}il"}
        problem = assert_problem(
            await client.post("/api/v1/auth/register", json=body), 422, "VALIDATION_ERROR"
        )
        assert problem["errors"][0]["loc"] == ["body", field]
        assert f"U+{ord(char):04X}" in problem["errors"][0]["msg"]

    async def test_registration_keeps_names_of_any_script(self, client: Client) -> None:
        body = {**user_body("erin"), "first_name": "Zoë", "last_name": "محمد"}
        response = await client.post("/api/v1/auth/register", json=body)
        assert response.status_code == 201, response.text
        assert response.json()["user"]["last_name"] == "محمد"

    @pytest.mark.parametrize("char", BAD_CHARACTERS.values(), ids=BAD_CHARACTERS.keys())
    async def test_a_profile_update_refuses_them(
        self, client: Client, alice: Auth, char: str
    ) -> None:
        response = await client.put(
            "/api/v1/auth/profile", headers=alice, json={"last_name": f"Lid{char}dell"}
        )
        problem = assert_problem(response, 422, "VALIDATION_ERROR")
        assert problem["errors"][0]["loc"] == ["body", "last_name"]

    @pytest.mark.parametrize("char", BAD_CHARACTERS.values(), ids=BAD_CHARACTERS.keys())
    async def test_asset_names_refuse_them_on_create_and_update(
        self, client: Client, signup: Signup, runtime: Any, char: str
    ) -> None:
        admin = await make_admin(client, signup, runtime)
        body = {
            "asset_id": "EVIL",
            "name": f"Evil{char}Coin",
            "category": "other",
            "price_usd": "1",
        }
        created = await client.post("/api/v1/admin/assets", headers=admin, json=body)
        assert assert_problem(created, 422, "VALIDATION_ERROR")["errors"][0]["loc"] == [
            "body",
            "name",
        ]
        updated = await client.patch(
            "/api/v1/admin/assets/BTC", headers=admin, json={"name": f"Bit{char}coin"}
        )
        assert assert_problem(updated, 422, "VALIDATION_ERROR")["errors"][0]["loc"] == [
            "body",
            "name",
        ]

    async def test_an_asset_description_keeps_line_breaks_but_not_overrides(
        self, client: Client, signup: Signup, runtime: Any
    ) -> None:
        admin = await make_admin(client, signup, runtime)
        fine = await client.patch(
            "/api/v1/admin/assets/BTC", headers=admin, json={"description": "One.\nTwo."}
        )
        assert fine.status_code == 200, fine.text
        spoof = await client.patch(
            "/api/v1/admin/assets/BTC", headers=admin, json={"description": "txt\u202egpj.exe"}
        )
        loc = assert_problem(spoof, 422, "VALIDATION_ERROR")["errors"][0]["loc"]
        assert loc == ["body", "description"]


async def admin_events(client: Client, admin: Auth, event_type: str) -> list[dict[str, Any]]:
    response = await client.get(
        "/api/v1/admin/audit", headers=admin, params={"event_type": event_type}
    )
    assert response.status_code == 200, response.text
    # Leaves out the promotions `make_admin` makes (actor `cli`).
    events = [e for e in response.json()["data"] if e["actor_id"] != "cli"]
    return events


def user_id_of(token: Auth) -> str:
    import base64
    import json

    payload = token["Authorization"].split()[1].split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return str(claims["sub"])


class TestLastAdmin:
    @pytest.mark.every_store
    @pytest.mark.parametrize("change", [{"role": "customer"}, {"is_active": False}])
    async def test_the_last_admin_cannot_demote_or_disable_themselves(
        self, client: Client, signup: Signup, runtime: Any, change: dict[str, Any]
    ) -> None:
        admin = await make_admin(client, signup, runtime)
        response = await client.patch("/api/v1/admin/users/root_admin", headers=admin, json=change)
        assert_problem(response, 409, "LAST_ADMIN")
        users = (await client.get("/api/v1/admin/users", headers=admin)).json()["data"]
        assert [(u["role"], u["is_active"]) for u in users] == [("admin", True)]
        assert await admin_events(client, admin, "admin_user_update") == []

    @pytest.mark.every_store
    async def test_with_two_admins_one_may_step_down_and_a_disabled_admin_does_not_count(
        self, client: Client, signup: Signup, runtime: Any
    ) -> None:
        first = await make_admin(client, signup, runtime, "first_admin")
        await make_admin(client, signup, runtime, "second_admin")
        await make_admin(client, signup, runtime, "third_admin")
        disabled = await client.patch(
            "/api/v1/admin/users/third_admin", headers=first, json={"is_active": False}
        )
        assert disabled.status_code == 200, disabled.text
        stepped_down = await client.patch(
            "/api/v1/admin/users/first_admin", headers=first, json={"role": "customer"}
        )
        assert stepped_down.json()["role"] == "customer"
        # second_admin is the only active admin now (third is disabled, still an admin).
        second = await client.post(
            "/api/v1/auth/login",
            json={"username": "second_admin", "password": "correct horse battery staple"},
        )
        token = {"Authorization": f"Bearer {second.json()['access_token']}"}
        alone = await client.patch(
            "/api/v1/admin/users/second_admin", headers=token, json={"role": "customer"}
        )
        assert_problem(alone, 409, "LAST_ADMIN")
        # Re-enabling the disabled admin makes a second active admin again.
        enabled = await client.patch(
            "/api/v1/admin/users/third_admin", headers=token, json={"is_active": True}
        )
        assert enabled.status_code == 200, enabled.text
        now_fine = await client.patch(
            "/api/v1/admin/users/second_admin", headers=token, json={"role": "customer"}
        )
        assert now_fine.status_code == 200, now_fine.text

    @pytest.mark.every_store
    async def test_two_admins_demoting_each_other_at_once_leave_one(
        self, client: Client, signup: Signup, runtime: Any
    ) -> None:
        ann = await make_admin(client, signup, runtime, "ann_admin")
        bob = await make_admin(client, signup, runtime, "bob_admin")

        answers = await asyncio.gather(
            client.patch("/api/v1/admin/users/bob_admin", headers=ann, json={"role": "customer"}),
            client.patch("/api/v1/admin/users/ann_admin", headers=bob, json={"role": "customer"}),
        )

        # The loser is refused: LAST_ADMIN if it was authenticated before the winner's demotion
        # of it committed, or 401 TOKEN_REVOKED if after (a demotion ends the user's tokens).
        [won] = [a for a in answers if a.status_code == 200]
        [lost] = [a for a in answers if a.status_code != 200]
        assert won.json()["role"] == "customer"
        assert lost.json()["code"] in ("LAST_ADMIN", "TOKEN_REVOKED"), lost.text
        async with runtime.store.unit_of_work() as uow:
            assert len(await uow.users.active_admins()) == 1

    @pytest.mark.every_store
    async def test_the_guard_holds_when_both_have_counted_before_either_commits(
        self, client: Client, signup: Signup, runtime: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Forces the write skew: each request has read two active admins when the other
        commits. The later commit must fail its guard, retry, and be refused."""
        ann = await make_admin(client, signup, runtime, "ann_admin")
        bob = await make_admin(client, signup, runtime, "bob_admin")
        async with runtime.store.unit_of_work() as uow:
            repository = type(uow.users)
        real = repository.active_admins
        both_counted = asyncio.Barrier(2)
        counts: list[int] = []

        async def counted_together(self: Any) -> list[Any]:
            admins: list[Any] = await real(self)
            counts.append(len(admins))
            if len(counts) <= 2:
                await asyncio.wait_for(both_counted.wait(), timeout=5)
            return admins

        monkeypatch.setattr(repository, "active_admins", counted_together)

        answers = await asyncio.gather(
            client.patch("/api/v1/admin/users/bob_admin", headers=ann, json={"role": "customer"}),
            client.patch("/api/v1/admin/users/ann_admin", headers=bob, json={"role": "customer"}),
        )

        assert counts[:2] == [2, 2]  # both counted two admins
        assert counts[2:] == [1]  # the loser's retry counted one
        assert sorted(a.status_code for a in answers) == [200, 409]
        monkeypatch.undo()
        async with runtime.store.unit_of_work() as uow:
            assert len(await uow.users.active_admins()) == 1


class TestAdminAudit:
    @pytest.mark.every_store
    async def test_a_user_change_names_actor_target_and_change(
        self, client: Client, alice: Auth, signup: Signup, runtime: Any
    ) -> None:
        admin = await make_admin(client, signup, runtime)
        await client.patch("/api/v1/admin/users/alice", headers=admin, json={"is_active": False})
        [event] = await admin_events(client, admin, "admin_user_update")
        assert event["actor_id"] == user_id_of(admin)
        assert event["user_id"] == user_id_of(alice)
        assert event["ip"] == "203.0.113.7"
        assert event["details"] == {"username": "alice", "is_active": {"from": True, "to": False}}

    @pytest.mark.every_store
    async def test_asset_creation_and_changes_are_audited(
        self, client: Client, signup: Signup, runtime: Any
    ) -> None:
        admin = await make_admin(client, signup, runtime)
        body = {
            "asset_id": "audt", "name": "Audit Coin", "category": "other", "price_usd": "0.5",
            "total_volume_24h": "125000.50",
        }  # fmt: skip
        assert (await client.post("/api/v1/admin/assets", headers=admin, json=body)).is_success
        changed = await client.patch(
            "/api/v1/admin/assets/AUDT", headers=admin, json={"is_active": False, "name": "Au"}
        )
        assert changed.status_code == 200, changed.text

        [created] = await admin_events(client, admin, "admin_asset_create")
        [updated] = await admin_events(client, admin, "admin_asset_update")
        for event in (created, updated):
            assert event["actor_id"] == user_id_of(admin)
            assert event["user_id"] is None
            assert event["ip"] == "203.0.113.7"
        assert created["details"] == {
            "asset_id": "AUDT",
            "name": "Audit Coin",
            "category": "other",
            "price_usd": "0.5",
            "is_active": True,
            "market_cap_rank": None,
            "total_volume_24h": "125000.50",
        }
        assert updated["details"] == {
            "asset_id": "AUDT",
            "is_active": {"from": True, "to": False},
            "name": {"from": "Audit Coin", "to": "Au"},
        }

    async def test_a_refused_asset_change_writes_no_event(
        self, client: Client, signup: Signup, runtime: Any
    ) -> None:
        admin = await make_admin(client, signup, runtime)
        body = {"asset_id": "BTC", "name": "Again", "category": "other", "price_usd": "1"}
        assert_problem(
            await client.post("/api/v1/admin/assets", headers=admin, json=body), 409, "ASSET_EXISTS"
        )
        assert await admin_events(client, admin, "admin_asset_create") == []


def session_cookie(response: httpx.Response) -> str:
    [cookie] = [c for c in response.headers.get_list("set-cookie") if c.startswith("op_session=")]
    return cookie


class TestSecureSessionCookie:
    """The web UI's session cookie is `Secure` when the browser's connection was HTTPS: to this
    server, or to a trusted proxy that says so in `X-Forwarded-Proto`."""

    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {"trusted_proxies": ["10.0.0.0/8"]}

    @pytest.fixture
    def connect(self, runtime: Any) -> Callable[..., httpx.AsyncClient]:
        from orderproc.gateway.app import create_app

        app = create_app(runtime.settings, runtime=runtime)

        def make(peer: str, scheme: str = "http") -> httpx.AsyncClient:
            transport = httpx.ASGITransport(app=app, client=(peer, 40000))
            return httpx.AsyncClient(transport=transport, base_url=f"{scheme}://test")

        return make

    @pytest.mark.parametrize(
        ("peer", "headers", "secure"),
        [
            ("10.1.2.3", {"x-forwarded-proto": "https"}, True),
            ("10.1.2.3", {"x-forwarded-proto": "HTTPS"}, True),
            ("10.1.2.3", {"x-forwarded-proto": "http"}, False),
            ("10.1.2.3", {}, False),
            ("198.51.100.9", {"x-forwarded-proto": "https"}, False),  # not a trusted proxy
        ],
        ids=["trusted-https", "trusted-HTTPS", "trusted-http", "trusted-silent", "untrusted"],
    )
    async def test_behind_a_proxy(
        self,
        connect: Callable[..., httpx.AsyncClient],
        peer: str,
        headers: dict[str, str],
        secure: bool,
    ) -> None:
        async with connect(peer) as client:
            page = await client.get("/login", headers=headers)
        assert page.status_code == 200
        cookie = session_cookie(page)
        assert ("; secure" in cookie.lower()) is secure, cookie
        assert "httponly" in cookie.lower()

    async def test_direct_https(self, connect: Callable[..., httpx.AsyncClient]) -> None:
        async with connect("198.51.100.9", scheme="https") as client:
            page = await client.get("/login")
        assert "; secure" in session_cookie(page).lower()
