"""Failed-password throttling over HTTP (issue #11, ASVS 6.1.1): an attacker elsewhere cannot
lock the owner out; 5 failures block one (username, client) pair; past 100 failures an hour
only known devices are evaluated; the password change and the web UI's login count the same;
answers are 429 with `Retry-After` (403 for an address blocked for many usernames)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from orderproc.common.security.devices import DEVICE_COOKIE
from orderproc.gateway.app import create_app
from orderproc.runtime import Runtime
from orderproc.testing import SteppingClock
from tests.api.conftest import user_body

Connect = Callable[[str], httpx.AsyncClient]
PASSWORD = "correct horse battery staple"
OWNER, ATTACKER = "192.0.2.10", "198.51.100.66"


@pytest.fixture
async def connect(runtime: Runtime) -> AsyncIterator[Connect]:
    """Clients of one app, each from its own address (and with its own cookie jar)."""
    app = create_app(runtime.settings, runtime=runtime)
    clients: list[httpx.AsyncClient] = []

    def make(address: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, client=(address, 40000))
        clients.append(httpx.AsyncClient(transport=transport, base_url="http://test"))
        return clients[-1]

    yield make
    for client in clients:
        await client.aclose()


async def register(client: httpx.AsyncClient, username: str) -> None:
    response = await client.post("/api/v1/auth/register", json=user_body(username))
    assert response.status_code == 201, response.text


async def login(
    client: httpx.AsyncClient, username: str = "alice", password: str = PASSWORD
) -> httpx.Response:
    return await client.post(
        "/api/v1/auth/login", json={"username": username, "password": password}
    )


async def statuses(client: httpx.AsyncClient, times: int, username: str = "alice") -> list[int]:
    return [(await login(client, username, f"wrong guess {n}")).status_code for n in range(times)]


def assert_throttled(response: httpx.Response, *, at_most: int) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "LOGIN_THROTTLED"
    assert 1 <= int(response.headers["retry-after"]) <= at_most


class TestPairs:
    async def test_an_attacker_elsewhere_does_not_lock_the_owner_out(self, connect: Connect):
        attacker, owner = connect(ATTACKER), connect(OWNER)
        await register(attacker, "alice")
        attacker.cookies.clear()
        assert await statuses(attacker, 10) == [401] * 5 + [429] * 5
        assert (await login(owner)).status_code == 200

    async def test_five_failures_block_that_pair_only_with_retry_after(self, connect: Connect):
        mallory, owner = connect(ATTACKER), connect(OWNER)
        await register(owner, "alice")
        await register(owner, "bob")
        assert await statuses(mallory, 5) == [401] * 5
        assert_throttled(await login(mallory, "alice", "wrong again"), at_most=900)
        assert_throttled(await login(mallory), at_most=900)  # even the right password
        assert (await login(mallory, "bob")).status_code == 200
        assert (await login(owner)).status_code == 200
        assert (await mallory.get("/api/v1/inventory/assets")).status_code == 200

    async def test_the_block_ends_with_its_window(
        self, connect: Connect, clock: SteppingClock
    ) -> None:
        client = connect(ATTACKER)
        await register(client, "alice")
        client.cookies.clear()
        await statuses(client, 5)
        assert_throttled(await login(client), at_most=900)
        clock.advance(seconds=901)
        assert (await login(client)).status_code == 200

    async def test_the_oauth2_form_counts_with_the_json_login(self, connect: Connect):
        client = connect(ATTACKER)
        await register(client, "alice")
        await statuses(client, 3)
        for _ in range(2):
            form = {"username": "alice", "password": "nope"}
            assert (await client.post("/api/v1/auth/token", data=form)).status_code == 401
        token = await client.post(
            "/api/v1/auth/token", data={"username": "alice", "password": PASSWORD}
        )
        assert_throttled(token, at_most=900)


class TestUsernameUnderAttack:
    async def test_past_100_failures_an_hour_only_a_known_device_is_evaluated(
        self, connect: Connect, clock: SteppingClock
    ) -> None:
        owner = connect(OWNER)
        await register(owner, "alice")
        await register(owner, "mallory")
        assert (await login(owner)).status_code == 200  # the owner's device cookie
        assert DEVICE_COOKIE in owner.cookies
        for n in range(20):
            assert await statuses(connect(f"198.51.100.{n}"), 5) == [401] * 5
        assert await statuses(connect("198.51.100.200"), 1) == [401]  # the 101st failure

        stranger = connect("203.0.113.50")
        assert_throttled(await login(stranger), at_most=3600)
        mallory = connect("203.0.113.51")
        assert (await login(mallory, "mallory")).status_code == 200  # a cookie, not alice's
        assert_throttled(await login(mallory), at_most=3600)

        assert (await login(owner)).status_code == 200
        travelling = connect("203.0.113.99")  # the same device from another network
        travelling.cookies.set(DEVICE_COOKIE, owner.cookies[DEVICE_COOKIE])
        assert (await login(travelling, password="a typo")).status_code == 401
        assert (await login(travelling)).status_code == 200
        api_client = connect("203.0.113.98")  # no cookie jar: the header by hand
        cookie = {"cookie": f"{DEVICE_COOKIE}={owner.cookies[DEVICE_COOKIE]}"}
        answer = await api_client.post(
            "/api/v1/auth/login", json={"username": "alice", "password": PASSWORD}, headers=cookie
        )
        assert answer.status_code == 200

        clock.advance(hours=1)
        assert (await login(stranger)).status_code == 200


class TestAddresses:
    @pytest.mark.parametrize("settings_overrides", [{"login_failure_limit": 2}])
    async def test_the_owner_s_own_typos_never_block_their_address(
        self, connect: Connect, clock: SteppingClock
    ) -> None:
        owner = connect(OWNER)
        await register(owner, "alice")
        owner.cookies.clear()
        for _ in range(3):
            assert await statuses(owner, 6) == [401] * 5 + [429]
            assert (await owner.get("/api/v1/inventory/assets")).status_code == 200
            clock.advance(seconds=901)
        assert (await login(owner)).status_code == 200

    async def test_failures_for_ten_usernames_block_the_address_with_403(self, connect: Connect):
        stuffer, owner = connect(ATTACKER), connect(OWNER)
        await register(owner, "alice")
        for n in range(10):
            await login(stuffer, f"user{n}", "password123")
        for answer in (await login(stuffer), await stuffer.get("/api/v1/inventory/assets")):
            assert answer.status_code == 403
            assert answer.json()["code"] == "CLIENT_BLOCKED"
        assert (await login(owner)).status_code == 200


class TestPasswordChange:
    async def test_wrong_current_passwords_are_throttled_like_logins(self, connect: Connect):
        client, elsewhere = connect(ATTACKER), connect(OWNER)
        await register(client, "alice")
        token = (await login(client)).json()["access_token"]
        auth = {"authorization": f"Bearer {token}"}
        answers = []
        for n in range(25):
            body = {"current_password": f"guess {n}", "new_password": "a much better passphrase"}
            answers.append(await client.post("/api/v1/auth/password", json=body, headers=auth))
        assert [a.status_code for a in answers] == [401] * 5 + [429] * 20
        assert_throttled(answers[-1], at_most=900)
        right = {"current_password": PASSWORD, "new_password": "a much better passphrase"}
        assert_throttled(
            await client.post("/api/v1/auth/password", json=right, headers=auth), at_most=900
        )
        assert_throttled(await login(client), at_most=900)  # the same pair
        assert (await login(elsewhere)).status_code == 200


class TestDeviceCookie:
    async def test_a_login_sets_a_long_lived_http_only_lax_cookie(self, connect: Connect):
        client = connect(OWNER)
        await register(client, "alice")
        answer = await login(client)
        cookie = answer.headers["set-cookie"]
        assert cookie.startswith(f"{DEVICE_COOKIE}=v1.alice.")
        for attribute in ("HttpOnly", "Max-Age=7776000", "Path=/", "SameSite=lax"):
            assert attribute in cookie
        assert "Secure" not in cookie
        failed = await login(client, password="wrong")
        assert "set-cookie" not in failed.headers

    @pytest.mark.parametrize("settings_overrides", [{"trusted_proxies": ["10.0.0.0/8"]}])
    async def test_it_is_secure_behind_a_trusted_https_proxy_only(self, connect: Connect):
        proxy, direct = connect("10.1.2.3"), connect(OWNER)
        await register(direct, "alice")
        https = {"x-forwarded-proto": "https", "x-forwarded-for": OWNER}
        body = {"username": "alice", "password": PASSWORD}
        via_proxy = await proxy.post("/api/v1/auth/login", json=body, headers=https)
        assert "Secure" in via_proxy.headers["set-cookie"]
        spoofed = await direct.post("/api/v1/auth/login", json=body, headers=https)
        assert "Secure" not in spoofed.headers["set-cookie"]


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found is not None
    return found.group(1)


async def web_login(client: httpx.AsyncClient, password: str) -> httpx.Response:
    token = _csrf((await client.get("/login")).text)
    form = {"csrf_token": token, "username": "alice", "password": password, "next": "/portfolio"}
    return await client.post("/login", data=form)


class TestWebUi:
    async def test_the_web_login_is_throttled_and_keeps_the_device_cookie(
        self, connect: Connect
    ) -> None:
        browser = connect(OWNER)
        await register(connect(OWNER), "alice")
        signed_in = await web_login(browser, PASSWORD)
        assert signed_in.status_code == 303
        assert "HttpOnly" in signed_in.headers["set-cookie"]
        assert DEVICE_COOKIE in browser.cookies
        for n in range(20):
            await statuses(connect(f"198.51.100.{n}"), 5)
        await statuses(connect("198.51.100.200"), 1)

        other = connect("203.0.113.50")
        refused = await web_login(other, PASSWORD)
        assert refused.status_code == 429
        assert "Too many wrong passwords" in refused.text
        browser.cookies.delete("op_session")  # signed out, the device cookie kept
        assert (await web_login(browser, PASSWORD)).status_code == 303

    async def test_five_wrong_web_logins_block_that_browser(self, connect: Connect):
        browser = connect(ATTACKER)
        await register(connect(OWNER), "alice")
        assert [(await web_login(browser, "wrong")).status_code for _ in range(5)] == [401] * 5
        assert (await web_login(browser, PASSWORD)).status_code == 429
