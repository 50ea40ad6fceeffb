"""Rate limiting and blocked-client refusal as pure-ASGI middleware."""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orderproc.common.login_throttle import LoginThrottle
from orderproc.common.settings import Settings
from orderproc.common.throttle import RateLimiter
from orderproc.common.web import client_ip_from
from orderproc.errors import ClientBlocked, RateLimited
from orderproc.errors.problem import render

EXEMPT_PATHS = frozenset({"/health", "/ready", "/metrics"})


class RateLimitMiddleware:
    """403 for an address blocked after failed logins; 429 with `Retry-After` past the limit;
    `X-RateLimit-*` headers on the rest."""

    def __init__(self, app: ASGIApp, *, state: Any) -> None:
        self.app = app
        self._state = state  # app.state; its runtime is built at start-up

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        runtime = self._state.runtime
        settings: Settings = runtime.settings
        throttle: LoginThrottle = runtime.login_throttle
        limiter: RateLimiter = runtime.rate_limiter
        ip = self._client_ip(scope, settings) or "unknown"
        # One question for both (with Redis, one round trip): the address's block, the count.
        blocked, allowance = await limiter.admit(ip, throttle, count=settings.rate_limit_enabled)
        if blocked:
            await render(ClientBlocked(), scope["path"])(scope, receive, send)
            return
        if allowance is None:
            await self.app(scope, receive, send)
            return
        headers = [
            (b"x-ratelimit-limit", str(allowance.limit).encode()),
            (b"x-ratelimit-remaining", str(allowance.remaining).encode()),
            (b"x-ratelimit-reset", str(allowance.reset_after).encode()),
        ]
        if not allowance.allowed:
            response = render(RateLimited(retry_after=allowance.reset_after), scope["path"])
            response.raw_headers.extend(headers)
            await response(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *headers]
            await send(message)

        await self.app(scope, receive, send_with_headers)

    @staticmethod
    def _client_ip(scope: Scope, settings: Settings) -> str | None:
        client = scope.get("client")
        peer = client[0] if client else None
        if not settings.trusted_proxies:
            return peer
        forwarded = None
        for key, value in scope["headers"]:
            if key == b"x-forwarded-for":
                forwarded = value.decode("latin-1")
        return client_ip_from(peer, forwarded, settings.trusted_proxies)
