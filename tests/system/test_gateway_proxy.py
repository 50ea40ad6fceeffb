"""The gateway of distributed mode (gateway/proxy.py) in front of real upstream servers on
loopback: every path of the routing table reaches the service it names with its method, path,
query and body; identity headers from clients never reach a service; tokens and the admin role
are checked before any upstream hears of the request; rate limits and blocked addresses answer
429 and 403; an upstream that is down, silent or not speaking HTTP gives 503 or 502
problem+json; streams pass through at once; request ids follow the services' rule."""

from __future__ import annotations

import http.client
import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from orderproc.common.clock import Clock, SystemClock
from orderproc.common.login_throttle import DisabledLoginThrottle, LoginThrottle
from orderproc.common.metrics import Metrics
from orderproc.common.security.tokens import TokenService
from orderproc.common.settings import Settings
from orderproc.common.throttle import Allowance, RateLimiter
from orderproc.errors import TokenRevoked
from orderproc.gateway.proxy import (
    PROXIED,
    GatewayDeps,
    create_proxy_app,
    upstreams_from_settings,
)
from orderproc.gateway.routes import API_PREFIX, ROUTES, Service, service_for
from orderproc.gateway.upstream import UpstreamTimeouts
from tests.support.proxy_upstreams import EchoServer, GarbageServer, Gateway
from tests.support.redis_server import RedisServer, free_loopback_port

pytestmark = pytest.mark.system
SECRET = "a-test-secret-that-is-long-enough-for-hs256-0123456789"


class FixedClock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at


class Revoked:
    """Revocations: the ids in `jtis` are revoked."""

    def __init__(self) -> None:
        self.jtis: set[str] = set()

    async def ensure_valid(self, *, user_id: str, jti: str, issued_at: datetime) -> None:
        if jti in self.jtis:
            raise TokenRevoked()


class RecordingLimits:
    def __init__(self, per_minute: int) -> None:
        self.keys: list[str] = []
        self._inner = RateLimiter(per_minute=per_minute)

    async def admit(
        self, client: str, throttle: LoginThrottle, *, count: bool
    ) -> tuple[int, Allowance | None]:
        self.keys.append(client)
        return await self._inner.admit(client, throttle, count=count)


class Blocked:
    async def address_blocked(self, address: str) -> int:
        return 900

    async def check(self, attempt: Any) -> Any:
        raise AssertionError("not used by the gateway")

    async def record_failure(self, attempt: Any) -> Any:
        raise AssertionError("not used by the gateway")

    async def record_success(self, attempt: Any) -> None:
        raise AssertionError("not used by the gateway")


def tokens(clock: Clock | None = None) -> TokenService:
    """Tokens on the real clock, as the gateway's own are (a clock fixed when the module's
    gateway started refused, as not valid yet, the tokens of tests that ran over 5 s later)."""
    return TokenService(
        secret=SECRET,
        algorithm="HS256",
        issuer="orderproc",
        audience="orderproc-api",
        ttl_seconds=3600,
        clock=clock or SystemClock(),
    )


def settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "mode": "distributed",
        "jwt_secret": SECRET,
        "access_log": False,
        "database_url": "memory://",
    }
    values.update(overrides)
    return Settings(**values)


def deps(
    *,
    revocations: Revoked | None = None,
    limits: RecordingLimits | None = None,
    throttle: LoginThrottle | None = None,
) -> GatewayDeps:
    return GatewayDeps(
        tokens=tokens(),
        revocations=revocations or Revoked(),
        login_throttle=throttle or DisabledLoginThrottle(),
        rate_limits=limits or RecordingLimits(10_000),
        metrics=Metrics("gateway"),
    )


@pytest.fixture(scope="module")
def echoes() -> Iterator[dict[Service, EchoServer]]:
    servers = {service: EchoServer(service.value) for service in PROXIED}
    yield servers
    for server in servers.values():
        server.stop()


def urls(echoes: dict[Service, EchoServer]) -> dict[Service, str]:
    return {service: server.url for service, server in echoes.items()}


@pytest.fixture(scope="module")
def revoked() -> Revoked:
    return Revoked()


@pytest.fixture(scope="module")
def gateway(echoes: dict[Service, EchoServer], revoked: Revoked) -> Iterator[Gateway]:
    app = create_proxy_app(settings(), urls(echoes), deps=deps(revocations=revoked))
    with Gateway(app) as running:
        yield running


def request(
    port: int,
    path: str,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> tuple[http.client.HTTPResponse, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response, response.read()
    finally:
        connection.close()


def echoed(port: int, path: str, **kwargs: Any) -> dict[str, Any]:
    response, body = request(port, path, **kwargs)
    assert response.status == 200, (path, response.status, body[:300])
    answer: dict[str, Any] = json.loads(body)
    return answer


def problem(response: http.client.HTTPResponse, body: bytes, status: int) -> dict[str, Any]:
    assert response.status == status, body[:300]
    assert response.getheader("content-type") == "application/problem+json"
    document: dict[str, Any] = json.loads(body)
    assert document["status"] == status
    return document


def bearer(role: str = "customer", user_id: str = "u-1") -> tuple[str, str]:
    issued = tokens().issue(user_id=user_id, role=role)
    return f"Bearer {issued.token}", issued.jti


PROXIED_PATHS = [
    *(route.path for route in ROUTES if route.service is not Service.GATEWAY),
    *(
        f"{route.path}/x/y"
        for route in ROUTES
        if not route.exact and route.path != "/" and route.service is not Service.GATEWAY
    ),
    f"{API_PREFIX}/balance/asset/BTC",
    f"{API_PREFIX}/assets/BTC/transactions",
    f"{API_PREFIX}/orders/",
    "/assets/BTC",
    "/apix",
]


@pytest.mark.parametrize("path", PROXIED_PATHS)
def test_each_path_reaches_the_service_the_table_names(gateway: Gateway, path: str) -> None:
    auth, _ = bearer(role="admin")
    answer = echoed(
        gateway.port,
        path + "?q=1&r=%20x",
        method="POST",
        body=b'{"a":1}',
        headers={"Authorization": auth, "Content-Type": "application/json"},
    )
    assert answer["service"] == service_for(path).value
    assert answer["method"] == "POST"
    assert answer["path"] == path + "?q=1&r=%20x"
    assert answer["body"] == '{"a":1}'
    assert answer["headers"]["content-type"] == "application/json"


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
def test_methods_are_kept(gateway: Gateway, method: str) -> None:
    assert echoed(gateway.port, f"{API_PREFIX}/inventory", method=method)["method"] == method


def test_unknown_api_paths_are_the_gateways_own_404(gateway: Gateway, echoes: dict) -> None:
    before = sum(e.requests for e in echoes.values())
    for path in ("/api", f"{API_PREFIX}/nothing", f"{API_PREFIX}/ordersx", "/api/v2/orders"):
        response, body = request(gateway.port, path)
        assert problem(response, body, 404)["code"] == "ROUTE_NOT_FOUND"
    assert sum(e.requests for e in echoes.values()) == before


def test_identity_headers_from_the_client_never_reach_a_service(gateway: Gateway) -> None:
    auth, _ = bearer()
    sent = {
        "X-User-Id": "1",
        "X-User-Role": "admin",
        "X-Username": "alice",
        "X-Remote-User": "alice",
        "X-Forwarded-For": "203.0.113.9",
        "X-Forwarded-Host": "evil.example",
        "X-Real-IP": "203.0.113.9",
        "Forwarded": "for=203.0.113.9",
        "X-Forwarded-Proto": "https",
        "Authorization": auth,
        "Connection": "keep-alive, X-Secret-Hop",
        "X-Secret-Hop": "1",
        "Keep-Alive": "timeout=5",
    }
    headers = echoed(gateway.port, f"{API_PREFIX}/balance", headers=sent)["headers"]
    for name in ("x-user-id", "x-user-role", "x-username", "x-remote-user", "x-real-ip"):
        assert name not in headers
    assert "forwarded" not in headers
    assert "x-secret-hop" not in headers  # named by the client's Connection header
    assert "keep-alive" not in headers
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert headers["x-forwarded-proto"] == "http"
    assert headers["x-forwarded-host"] == f"127.0.0.1:{gateway.port}"
    assert headers["host"] == f"127.0.0.1:{gateway.port}"
    assert headers["authorization"] == auth  # the token is how a service knows the user


def test_behind_a_trusted_proxy_the_client_is_its_forwarded_address(
    echoes: dict[Service, EchoServer],
) -> None:
    limits = RecordingLimits(per_minute=100)
    trusting = settings(trusted_proxies=["127.0.0.1/32"])
    app = create_proxy_app(trusting, urls(echoes), deps=deps(limits=limits))
    with Gateway(app) as gateway:
        sent = {"X-Forwarded-For": "198.51.100.7, 203.0.113.9"}
        headers = echoed(gateway.port, f"{API_PREFIX}/inventory", headers=sent)["headers"]
    assert headers["x-forwarded-for"] == "203.0.113.9"  # the first untrusted hop, alone
    assert limits.keys == ["203.0.113.9"]


def test_answers_carry_security_headers_and_the_upstreams_own(gateway: Gateway) -> None:
    response, _ = request(gateway.port, f"{API_PREFIX}/inventory")
    assert response.status == 200
    assert response.getheader("x-echo") == "inventory"
    assert response.getheader("x-content-type-options") == "nosniff"
    assert response.getheader("x-frame-options") == "DENY"
    assert response.getheader("cache-control") == "no-store"
    assert response.getheader("x-ratelimit-limit") == "10000"
    assert len(response.headers.get_all("date") or []) == 1


@pytest.mark.parametrize(
    ("sent", "kept"),
    [("req-1234.abc:X_y", True), ("x" * 129, False), ("a b", False), ("a;b", False), (None, False)],
)
def test_request_ids_follow_the_services_rule(
    gateway: Gateway, sent: str | None, kept: bool
) -> None:
    headers = {"X-Request-ID": sent} if sent is not None else {}
    response, body = request(gateway.port, f"{API_PREFIX}/orders", headers=headers)
    got = json.loads(body)["headers"]["x-request-id"]
    assert response.getheader("x-request-id") == got  # the service echoes the id it was sent
    if kept:
        assert got == sent
    else:
        assert re.fullmatch(r"[0-9a-f]{16}", got)


def test_a_chunked_request_body_is_streamed_to_the_service(gateway: Gateway) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
    try:
        connection.request(
            "POST",
            f"{API_PREFIX}/orders",
            body=iter([b"abc", b"def" * 1000, b"ghi"]),
            headers={"Transfer-Encoding": "chunked"},
            encode_chunked=True,
        )
        answer = json.loads(connection.getresponse().read())
    finally:
        connection.close()
    assert answer["body"] == "abc" + "def" * 1000 + "ghi"


def test_a_body_over_the_limit_is_refused_before_forwarding(
    gateway: Gateway, echoes: dict[Service, EchoServer]
) -> None:
    before = echoes[Service.ORDERS].requests
    connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
    try:  # the head alone: refused on its Content-Length, before any body is read
        connection.putrequest("POST", f"{API_PREFIX}/orders")
        connection.putheader("Content-Length", str(64 * 1024 + 1))
        connection.endheaders()
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    assert problem(response, body, 413)["code"] == "PAYLOAD_TOO_LARGE"
    assert echoes[Service.ORDERS].requests == before


def test_connections_to_a_service_are_pooled(echoes: dict[Service, EchoServer]) -> None:
    echo = EchoServer("users")
    try:
        app = create_proxy_app(settings(), {**urls(echoes), Service.USERS: echo.url}, deps=deps())
        with Gateway(app) as gateway:
            for _ in range(20):
                echoed(gateway.port, f"{API_PREFIX}/auth/me")
        assert echo.requests == 20
        assert echo.connections == 1
    finally:
        echo.stop()


# -- tokens and roles, before any upstream call


@pytest.mark.parametrize(
    "authorization",
    ["Bearer nonsense", "Bearer ", "bearer a.b.c"],
)
def test_an_invalid_token_is_401_before_forwarding(
    gateway: Gateway, echoes: dict[Service, EchoServer], authorization: str
) -> None:
    before = echoes[Service.ORDERS].requests
    response, body = request(
        gateway.port, f"{API_PREFIX}/orders", headers={"Authorization": authorization}
    )
    assert problem(response, body, 401)["code"] == "INVALID_TOKEN"
    assert response.getheader("www-authenticate") == "Bearer"
    assert echoes[Service.ORDERS].requests == before


def test_an_expired_token_is_401(gateway: Gateway, echoes: dict[Service, EchoServer]) -> None:
    old = tokens(FixedClock(datetime.now(UTC) - timedelta(hours=2))).issue(
        user_id="u", role="admin"
    )
    before = echoes[Service.ORDERS].requests
    response, body = request(
        gateway.port, f"{API_PREFIX}/orders", headers={"Authorization": f"Bearer {old.token}"}
    )
    assert problem(response, body, 401)["code"] == "INVALID_TOKEN"
    assert echoes[Service.ORDERS].requests == before


def test_a_revoked_token_is_401(
    gateway: Gateway, echoes: dict[Service, EchoServer], revoked: Revoked
) -> None:
    auth, jti = bearer()
    assert echoed(gateway.port, f"{API_PREFIX}/portfolio", headers={"Authorization": auth})
    revoked.jtis.add(jti)
    before = echoes[Service.ORDERS].requests
    response, body = request(
        gateway.port, f"{API_PREFIX}/portfolio", headers={"Authorization": auth}
    )
    assert problem(response, body, 401)["code"] == "TOKEN_REVOKED"
    assert echoes[Service.ORDERS].requests == before


def test_admin_routes_need_an_admin_token(
    gateway: Gateway, echoes: dict[Service, EchoServer]
) -> None:
    users = echoes[Service.USERS]
    before = users.requests
    response, body = request(gateway.port, f"{API_PREFIX}/admin/users")
    assert problem(response, body, 401)["code"] == "INVALID_TOKEN"
    customer, _ = bearer(role="customer")
    response, body = request(
        gateway.port, f"{API_PREFIX}/admin/users", headers={"Authorization": customer}
    )
    assert problem(response, body, 403)["code"] == "ADMIN_REQUIRED"
    assert users.requests == before
    admin, _ = bearer(role="admin")
    answer = echoed(gateway.port, f"{API_PREFIX}/admin/users", headers={"Authorization": admin})
    assert answer["service"] == "users"


def test_requests_without_a_token_reach_the_service(gateway: Gateway) -> None:
    """Which routes are public is the service's to say (it answers 401 itself)."""
    assert echoed(gateway.port, f"{API_PREFIX}/auth/token", method="POST", body=b"u=1")


# -- rate limits and blocked addresses


def test_past_the_rate_limit_429_with_retry_after(echoes: dict[Service, EchoServer]) -> None:
    limits = RecordingLimits(per_minute=3)
    app = create_proxy_app(settings(), urls(echoes), deps=deps(limits=limits))
    orders = echoes[Service.ORDERS]
    with Gateway(app) as gateway:
        before = orders.requests
        for remaining in (2, 1, 0):
            response, _ = request(gateway.port, f"{API_PREFIX}/orders")
            assert response.status == 200
            assert response.getheader("x-ratelimit-remaining") == str(remaining)
        response, body = request(gateway.port, f"{API_PREFIX}/orders")
        assert problem(response, body, 429)["code"] == "RATE_LIMITED"
        assert 1 <= int(response.getheader("retry-after") or 0) <= 60
        assert orders.requests == before + 3
        health, _ = request(gateway.port, "/health")  # never limited
        assert health.status == 200


def test_rate_limits_count_per_address_and_per_user(echoes: dict[Service, EchoServer]) -> None:
    limits = RecordingLimits(per_minute=100)
    app = create_proxy_app(settings(), urls(echoes), deps=deps(limits=limits))
    auth, _ = bearer(user_id="u-42")
    with Gateway(app) as gateway:
        echoed(gateway.port, f"{API_PREFIX}/orders", headers={"Authorization": auth})
        echoed(gateway.port, f"{API_PREFIX}/inventory")
    assert limits.keys == ["127.0.0.1", "user:u-42", "127.0.0.1"]


def test_a_blocked_address_gets_403_before_forwarding(
    echoes: dict[Service, EchoServer],
) -> None:
    app = create_proxy_app(settings(), urls(echoes), deps=deps(throttle=Blocked()))
    users = echoes[Service.USERS]
    with Gateway(app) as gateway:
        before = users.requests
        response, body = request(gateway.port, f"{API_PREFIX}/auth/token", method="POST")
        assert problem(response, body, 403)["code"] == "CLIENT_BLOCKED"
        assert users.requests == before


# -- upstreams that fail


def test_an_upstream_that_stops_gives_503_problem_json(
    echoes: dict[Service, EchoServer],
) -> None:
    echo = EchoServer("orders")
    app = create_proxy_app(settings(), {**urls(echoes), Service.ORDERS: echo.url}, deps=deps())
    with Gateway(app) as gateway:
        echoed(gateway.port, f"{API_PREFIX}/orders")  # a pooled connection now exists
        echo.stop()
        response, body = request(
            gateway.port, f"{API_PREFIX}/orders", headers={"X-Request-ID": "r-1"}
        )
        document = problem(response, body, 503)
        assert document["code"] == "SERVICE_UNAVAILABLE"
        assert document["request_id"] == "r-1"
        assert response.getheader("retry-after") == "5"
        assert response.getheader("x-request-id") == "r-1"
        # Other services still answer.
        assert echoed(gateway.port, f"{API_PREFIX}/inventory")["service"] == "inventory"


def test_an_upstream_that_was_never_there_gives_503(echoes: dict[Service, EchoServer]) -> None:
    dead = f"http://127.0.0.1:{free_loopback_port()}"
    app = create_proxy_app(settings(), {**urls(echoes), Service.USERS: dead}, deps=deps())
    with Gateway(app) as gateway:
        response, body = request(gateway.port, f"{API_PREFIX}/auth/me")
        problem(response, body, 503)
        assert response.getheader("retry-after") == "5"


def test_an_upstream_that_times_out_gives_503(echoes: dict[Service, EchoServer]) -> None:
    app = create_proxy_app(
        settings(), urls(echoes), deps=deps(), timeouts=UpstreamTimeouts(head=0.3)
    )
    with Gateway(app) as gateway:
        started = time.monotonic()
        response, body = request(gateway.port, f"{API_PREFIX}/orders?slow=1.5")
        assert time.monotonic() - started < 1.4
        problem(response, body, 503)


def test_an_upstream_that_answers_garbage_gives_502(echoes: dict[Service, EchoServer]) -> None:
    garbage = GarbageServer()
    try:
        app = create_proxy_app(
            settings(), {**urls(echoes), Service.INVENTORY: garbage.url}, deps=deps()
        )
        with Gateway(app) as gateway:
            response, body = request(gateway.port, f"{API_PREFIX}/inventory")
            assert problem(response, body, 502)["code"] == "BAD_GATEWAY"
    finally:
        garbage.stop()


def test_an_upstream_that_stops_before_its_body_ends_gives_503(
    echoes: dict[Service, EchoServer],
) -> None:
    """A head with Content-Length 100, three bytes of body, then the end: nothing has gone to
    the client yet, so it gets a clean 503."""
    cut = GarbageServer(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc")
    try:
        app = create_proxy_app(settings(), {**urls(echoes), Service.ORDERS: cut.url}, deps=deps())
        with Gateway(app) as gateway:
            response, body = request(gateway.port, f"{API_PREFIX}/orders")
            problem(response, body, 503)
    finally:
        cut.stop()


# -- streams


def _first_event_after(port: int, path: str) -> tuple[float, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        started = time.monotonic()
        connection.request("GET", path + "?stream")
        response = connection.getresponse()
        assert response.status == 200
        assert response.getheader("content-type") == "text/event-stream"
        first = response.read1(64)
        return time.monotonic() - started, first
    finally:
        connection.close()


@pytest.mark.parametrize("path", [r.path for r in ROUTES if r.stream])
def test_the_first_event_of_a_stream_arrives_at_once(gateway: Gateway, path: str) -> None:
    """Within 1 s while the service keeps the stream open for 2 s more."""
    elapsed, first = _first_event_after(gateway.port, path + "/x")
    assert first.startswith(b"data: ")
    assert elapsed < 1.0


# -- the gateway's own paths


def test_health_is_the_gateways_own(gateway: Gateway) -> None:
    response, body = request(gateway.port, "/health")
    assert response.status == 200
    assert json.loads(body)["status"] == "ok"


def test_ready_summarizes_every_upstream(gateway: Gateway) -> None:
    response, body = request(gateway.port, "/ready")
    assert response.status == 200
    document = json.loads(body)
    assert document["status"] == "ready"
    assert {s: v["status"] for s, v in document["services"].items()} == {
        s.value: "ready" for s in PROXIED
    }


def test_ready_is_503_when_a_required_upstream_is_down(
    echoes: dict[Service, EchoServer],
) -> None:
    dead = f"http://127.0.0.1:{free_loopback_port()}"
    app = create_proxy_app(settings(), {**urls(echoes), Service.ORDERS: dead}, deps=deps())
    with Gateway(app) as gateway:
        response, body = request(gateway.port, "/ready")
    assert response.status == 503
    assert response.getheader("retry-after") == "5"
    document = json.loads(body)
    assert document["status"] == "unavailable"
    assert document["services"]["orders"]["status"] == "down"
    assert document["services"]["users"]["status"] == "ready"


def test_metrics_count_proxied_requests(gateway: Gateway) -> None:
    echoed(gateway.port, f"{API_PREFIX}/inventory")
    response, body = request(gateway.port, "/metrics")
    assert response.status == 200
    assert f'route="{API_PREFIX}/inventory"' in body.decode()


# -- CORS


def test_no_cors_by_default(gateway: Gateway) -> None:
    response, _ = request(
        gateway.port, f"{API_PREFIX}/inventory", headers={"Origin": "https://shop.example"}
    )
    assert response.status == 200
    assert response.getheader("access-control-allow-origin") is None
    preflight, body = request(
        gateway.port,
        f"{API_PREFIX}/orders",
        method="OPTIONS",
        headers={"Origin": "https://shop.example", "Access-Control-Request-Method": "POST"},
    )
    problem(preflight, body, 403)


def test_cors_for_allowed_origins(echoes: dict[Service, EchoServer]) -> None:
    app = create_proxy_app(
        settings(cors_allow_origins=["https://shop.example"]), urls(echoes), deps=deps()
    )
    with Gateway(app) as gateway:
        preflight, _ = request(
            gateway.port,
            f"{API_PREFIX}/orders",
            method="OPTIONS",
            headers={"Origin": "https://shop.example", "Access-Control-Request-Method": "POST"},
        )
        assert preflight.status == 204
        assert preflight.getheader("access-control-allow-origin") == "https://shop.example"
        assert "Authorization" in (preflight.getheader("access-control-allow-headers") or "")
        response, _ = request(
            gateway.port, f"{API_PREFIX}/inventory", headers={"Origin": "https://shop.example"}
        )
        assert response.getheader("access-control-allow-origin") == "https://shop.example"
        assert response.getheader("vary") == "Origin"
        other, _ = request(
            gateway.port, f"{API_PREFIX}/inventory", headers={"Origin": "https://evil.example"}
        )
        assert other.getheader("access-control-allow-origin") is None


# -- configuration and start-up


def test_upstreams_come_from_settings() -> None:
    configured = settings(gateway_upstreams={"users": "http://10.0.0.5:8081"})
    assert upstreams_from_settings(configured) == {Service.USERS: "http://10.0.0.5:8081"}
    with pytest.raises(ValueError, match="no upstream URL"):
        create_proxy_app(configured, upstreams_from_settings(configured))
    with pytest.raises(ValueError, match="http://host:port"):
        create_proxy_app(configured, {s: "https://x.example" for s in PROXIED})


def test_without_deps_it_builds_its_own_at_start_up(echoes: dict[Service, EchoServer]) -> None:
    app = create_proxy_app(settings(), urls(echoes))
    with Gateway(app) as gateway:
        response, _ = request(gateway.port, "/health")
        assert response.status == 200
        response, body = request(
            gateway.port, f"{API_PREFIX}/inventory", headers={"Authorization": "Bearer x"}
        )
        problem(response, body, 401)


# -- connection edge cases


def test_a_head_request_gets_the_head_alone(gateway: Gateway) -> None:
    for _ in range(2):  # the connection a HEAD used is not reused with a body pending
        response, body = request(gateway.port, f"{API_PREFIX}/inventory", method="HEAD")
        assert response.status == 200
        assert body == b""
        assert int(response.getheader("content-length") or 0) > 0
    assert echoed(gateway.port, f"{API_PREFIX}/inventory")["method"] == "GET"


def test_a_pooled_connection_the_upstream_closed_is_not_used(
    echoes: dict[Service, EchoServer],
) -> None:
    echo = EchoServer("orders", idle_timeout=0.3)
    try:
        app = create_proxy_app(settings(), {**urls(echoes), Service.ORDERS: echo.url}, deps=deps())
        with Gateway(app) as gateway:
            for _ in range(3):
                echoed(gateway.port, f"{API_PREFIX}/orders", method="POST", body=b"{}")
                time.sleep(0.6)  # the upstream closes the idle connection meanwhile
        assert echo.requests == 3
        assert echo.connections == 3
    finally:
        echo.stop()


def test_an_upstream_that_dies_mid_stream_cuts_the_clients_connection(
    echoes: dict[Service, EchoServer],
) -> None:
    """Never a short body passed off as whole: the client sees the stream break."""
    echo = EchoServer("inventory", hold=5.0)
    app = create_proxy_app(settings(), {**urls(echoes), Service.INVENTORY: echo.url}, deps=deps())
    with Gateway(app) as gateway:
        connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
        try:
            connection.request("GET", f"{API_PREFIX}/stream/prices?stream")
            response = connection.getresponse()
            assert response.read1(64).startswith(b"data: ")
            started = time.monotonic()
            echo.stop()
            with pytest.raises(http.client.IncompleteRead):
                response.read()
            assert time.monotonic() - started < 3.0
        finally:
            connection.close()


# -- two gateway replicas sharing Redis


def test_two_gateways_share_the_rate_limit_through_redis(
    echoes: dict[Service, EchoServer], private_redis_server: RedisServer
) -> None:
    """Built from settings (no deps handed in): with ORDERPROC_REDIS_URL, one count for both."""
    shared = settings(redis_url=private_redis_server.url, rate_limit_per_minute=4)
    first = Gateway(create_proxy_app(shared, urls(echoes)))
    second = Gateway(create_proxy_app(shared, urls(echoes)))
    with first, second:
        statuses = [
            request(gateway.port, f"{API_PREFIX}/inventory")[0].status
            for gateway in (first, second, first, second, first, second)
        ]
    assert statuses == [200, 200, 200, 200, 429, 429]
