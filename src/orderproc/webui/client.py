"""The web UI's way to the services: their public HTTP API (so validation, errors,
idempotency, limits and the audit all apply). Embedded, it is called in-process through the
gateway app, by one long-lived client per app (`InProcessApi`, made at mount, closed at
shutdown) whose calls each reach the app as from the browser's own address; the web UI on its
own calls the gateway over HTTP through one pooled client (`WebuiRuntime.upstream`), naming the
browser in `X-Forwarded-For`."""

from __future__ import annotations

import logging
from contextvars import ContextVar
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any

import httpx
from fastapi import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from orderproc.common.context import request_id_var
from orderproc.common.security.devices import DEVICE_COOKIE
from orderproc.webui.runtime import webui_runtime
from orderproc.webui.session import Session, SignInRequired

API = "/api/v1"
INTERNAL_HOST = "webui.internal"
UNREACHABLE = "The service cannot be reached right now. Try again in a moment."


class QuietInProcessCalls(logging.Filter):
    """Drops httpx's line per request for the UI's in-process API calls: the access log
    already has each of them once."""

    def filter(self, record: logging.LogRecord) -> bool:
        return f"//{INTERNAL_HOST}/" not in record.getMessage()


# The API's codes in plain words; anything else shows the API's own `detail`.
PLAIN_WORDS = {
    "INVALID_CREDENTIALS": "Wrong username or password.",
    "INSUFFICIENT_FUNDS": "You don't have enough cash available for this.",
    "INSUFFICIENT_HOLDINGS": "You don't hold that much of this asset.",
    "DAILY_LIMIT_EXCEEDED": "That would go over today's limit.",
    "USERNAME_TAKEN": "That username is taken. Try another one.",
    "EMAIL_TAKEN": "An account with that email already exists.",
    "RATE_LIMITED": "Too many requests. Wait a moment and try again.",
    "CLIENT_BLOCKED": "Too many failed sign-ins from here. Try again later.",
    "LOGIN_THROTTLED": "Too many wrong passwords. Wait a while (up to an hour) and try again.",
    "STALE_PRICE": "The price is out of date right now. Try again in a moment.",
    "ASSET_INACTIVE": "This asset cannot be traded at the moment.",
    "LOCK_TIMEOUT": "Your account is busy with another operation. Try again.",
    "CONCURRENT_UPDATE": "Your account changed meanwhile. Try again.",
}


class ApiError(Exception):
    """A refusal from the API, with a plain message and per-field messages for forms."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.code = str(problem.get("code") or "")
        self.fields = _field_messages(problem.get("errors"))
        detail = str(problem.get("detail") or problem.get("title") or "Something went wrong.")
        self.message = PLAIN_WORDS.get(self.code, _sentence(detail))
        super().__init__(self.message)

    def field(self, name: str) -> str | None:
        return self.fields.get(name)


def _sentence(text: str) -> str:
    text = text.replace("Input should be", "Must be").replace("String should", "Must")
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else f"{text}."


def _field_messages(errors: object) -> dict[str, str]:
    messages: dict[str, str] = {}
    for error in errors if isinstance(errors, list) else []:
        loc = error.get("loc") or []
        if loc:
            messages.setdefault(str(loc[-1]), _sentence(str(error.get("msg", "Invalid."))))
    return messages


# The browser's address for the in-process call under way (set around each call, read by
# `_AsBrowser` in the same task): one shared transport, each call's own ASGI peer.
_browser: ContextVar[tuple[str, int] | None] = ContextVar("webui_browser", default=None)


class _AsBrowser:
    """The app, shown each in-process call as coming from the browser the page serves (the
    ASGI `client`), which the rate limits and login blocking key on, as for a direct call."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        peer = _browser.get()
        if peer is not None and scope["type"] == "http":
            scope["client"] = peer  # the transport builds a fresh scope per request
        await self.app(scope, receive, send)


class InProcessApi:
    """The embedded web UI's one client to the API, which is the same app: one `httpx`
    client over one ASGI transport, made on first use and kept for the app's life (a client
    per call cost CPU on every page: docs/PERFORMANCE.md). Like the pooled client of the web
    UI on its own, it keeps no cookies: each call carries its own person's."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app
        self._client: httpx.AsyncClient | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=_AsBrowser(self._app)),
                base_url=f"http://{INTERNAL_HOST}",
                cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
                trust_env=False,
            )
        return self._client

    async def request(
        self, peer: tuple[str, int], method: str, url: str, **options: Any
    ) -> httpx.Response:
        """`method url` through the app, as from `peer` (the browser's address and port)."""
        token = _browser.set(peer)
        try:
            return await self.client.request(method, url, **options)
        finally:
            _browser.reset(token)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()


def in_process_api(request: Request) -> InProcessApi:
    """The app's in-process client (`mount_webui` makes it)."""
    api: InProcessApi = request.app.state.webui_api
    return api


class Api:
    """One request's view of the API, as the signed-in user (or anonymously)."""

    def __init__(self, request: Request, session: Session) -> None:
        self._request = request
        self._session = session

    def _headers(self, *, over_http: bool) -> dict[str, str]:
        headers = {"x-request-id": request_id_var.get() or ""}
        forwarded = self._request.headers.get("x-forwarded-for")
        if over_http:  # the gateway sees this process: name the browser after any proxies
            peer = self._request.client.host if self._request.client else None
            forwarded = ", ".join(hop for hop in (forwarded, peer) if hop)
        if forwarded:  # the gateway trusts it only from its configured proxies, as for the API
            headers["x-forwarded-for"] = forwarded
        if self._session.token:
            headers["authorization"] = f"Bearer {self._session.token}"
        device = self._request.cookies.get(DEVICE_COOKIE)
        if device and device.isascii() and device.isprintable() and ";" not in device:
            headers["cookie"] = f"{DEVICE_COOKIE}={device}"  # the API checks it
        return headers

    async def call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        idempotency_key: str | None = None,
    ) -> Any:
        extra = {"idempotency-key": idempotency_key} if idempotency_key else {}
        clean = {k: v for k, v in (params or {}).items() if v not in (None, "")}
        upstream = webui_runtime(self._request).upstream
        if upstream is None:  # embedded: through this very app, as from the browser
            peer = self._request.client
            response = await in_process_api(self._request).request(
                (peer.host, peer.port) if peer else ("127.0.0.1", 0),
                method,
                f"{API}{path}",
                params=clean,
                json=json,
                headers={**self._headers(over_http=False), **extra},
            )
        else:
            headers = {**self._headers(over_http=True), **extra}
            try:
                response = await upstream.request(
                    method, f"{API}{path}", params=clean, json=json, headers=headers
                )
            except httpx.TransportError:  # the gateway is down or too slow: say so, as a 503
                raise ApiError(503, {"detail": UNREACHABLE}) from None
        _keep_device_cookie(self._request, response)
        if response.status_code >= 400:
            error = ApiError(response.status_code, _problem(response))
            if error.status == 401 and self._session.token and error.code != "INVALID_CREDENTIALS":
                raise SignInRequired  # the token expired or was revoked
            raise error
        return response.json() if response.content else None

    async def get(self, path: str, **params: Any) -> Any:
        return await self.call("GET", path, params=params)

    async def post(self, path: str, json: Any = None, *, idempotency_key: str | None = None) -> Any:
        return await self.call("POST", path, json=json, idempotency_key=idempotency_key)


def _keep_device_cookie(request: Request, response: httpx.Response) -> None:
    """A device cookie the API set (at login) goes on to the browser (`attach_cookie`)."""
    for header in response.headers.get_list("set-cookie"):
        name, _, rest = header.partition("=")
        if name.strip() == DEVICE_COOKIE:
            request.state.device_cookie = rest.split(";", 1)[0].strip()


def _problem(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {"detail": f"The server answered {response.status_code}."}
    return body if isinstance(body, dict) else {"detail": str(body)}
