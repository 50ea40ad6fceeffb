"""Browser sessions: a random id in an HttpOnly, SameSite=Lax cookie; the API bearer token, the
CSRF token and the flash messages are kept server-side under that id, in Redis when
`ORDERPROC_REDIS_URL` is set (so a session survives a restart and works on any web UI replica),
else in this process's memory (a restart logs everyone out).

A request's session is loaded once, before its page runs (`SessionMiddleware`), and written
back when the answer starts, if the page changed it: pages read and change it as a plain
object (`current_session`). Keys are `orderproc:session:<SHA-256 of the id>` (a Redis reader
cannot use a key as a cookie), with the session's own time to live. With Redis down, sessions
are kept by each process on its own until it answers again: a signed-in browser may have to
sign in again, never the other way round (a session cannot outlive its expiry or its drop).
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson
from fastapi import Request, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orderproc.common.redis_shared import RedisUnavailable, SharedRedis
from orderproc.common.security.devices import set_device_cookie
from orderproc.common.settings import Settings
from orderproc.common.web import request_is_https
from orderproc.webui.runtime import webui_runtime

COOKIE = "op_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
ANONYMOUS_TTL = 2 * 3600.0
MAX_SESSIONS = 50_000
KEY_PREFIX = b"orderproc:session:"
# Paths that are never pages: their requests neither load nor save a session.
_NOT_PAGES = ("/api/", "/static/", "/health", "/ready", "/metrics", "/docs", "/openapi.json")


@dataclass
class Session:
    sid: str
    csrf: str
    expires_at: float  # wall-clock seconds, so another process or a restart reads it the same
    token: str | None = None
    username: str | None = None
    role: str | None = None
    flashes: list[tuple[str, str]] = field(default_factory=list)
    dropped: bool = False

    @property
    def signed_in(self) -> bool:
        return self.token is not None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def flash(self, message: str, kind: str = "ok") -> None:
        self.flashes.append((kind, message))

    def take_flashes(self) -> list[tuple[str, str]]:
        taken, self.flashes = self.flashes, []
        return taken

    def dump(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def load(cls, data: bytes) -> Session:
        values: dict[str, Any] = orjson.loads(data)
        values["flashes"] = [tuple(pair) for pair in values.get("flashes", [])]
        return cls(**values)


class SessionStore:
    """Sessions by id: in Redis when given one (falling back to memory while it fails), else
    in memory; each expires when it would (a signed-in one when its token would)."""

    def __init__(self, redis: SharedRedis | None = None) -> None:
        self.redis = redis
        self._memory: dict[str, bytes] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> SessionStore:
        redis = SharedRedis.from_settings(settings, "sessions") if settings.redis_url else None
        return cls(redis)

    async def get(self, sid: str | None) -> Session | None:
        if not sid:
            return None
        data: bytes | None = None
        if self.redis is not None:
            with contextlib.suppress(RedisUnavailable):
                data = await self.redis.call(self.redis.client.execute, b"GET", _key(sid))
                return _alive(data)
        return _alive(self._memory.get(sid))

    async def save(self, session: Session) -> None:
        """Writes the session back, or deletes it when it was dropped or has expired."""
        ttl = session.expires_at - time.time()
        if session.dropped or ttl <= 0:
            self._memory.pop(session.sid, None)
            if self.redis is not None:
                with contextlib.suppress(RedisUnavailable):
                    await self.redis.call(self.redis.client.execute, b"DEL", _key(session.sid))
            return
        data = session.dump()
        if self.redis is not None:
            command = (b"SET", _key(session.sid), data, b"PX", max(1, int(ttl * 1000)))
            with contextlib.suppress(RedisUnavailable):
                await self.redis.call(self.redis.client.execute, *command)
                return
        if len(self._memory) >= MAX_SESSIONS and session.sid not in self._memory:
            self._prune()
        self._memory[session.sid] = data

    def new(self) -> Session:
        return Session(
            sid=secrets.token_urlsafe(32),
            csrf=secrets.token_urlsafe(32),
            expires_at=time.time() + ANONYMOUS_TTL,
        )

    def sign_in(self, old: Session, *, token: str, username: str, role: str, ttl: float) -> Session:
        """A fresh id and CSRF token at sign-in, so an id planted before it is worthless."""
        self.drop(old)
        session = self.new()
        session.token, session.username, session.role = token, username, role
        session.expires_at = time.time() + ttl
        return session

    def drop(self, session: Session) -> None:
        session.dropped = True

    def _prune(self) -> None:
        now = time.time()
        for sid in [sid for sid, data in self._memory.items() if _alive(data, now) is None]:
            del self._memory[sid]
        while len(self._memory) >= MAX_SESSIONS:  # the oldest go first
            del self._memory[next(iter(self._memory))]

    async def aclose(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()


def _key(sid: str) -> bytes:
    return KEY_PREFIX + hashlib.sha256(sid.encode()).hexdigest().encode()


def _alive(data: bytes | None, now: float | None = None) -> Session | None:
    if data is None:
        return None
    session = Session.load(data)
    return session if session.expires_at > (now or time.time()) else None


class SessionMiddleware:
    """Loads a page request's session before the page runs, and writes back every session the
    page used (the one it loaded, and any it made or dropped) when the answer starts."""

    def __init__(self, app: ASGIApp, *, store: SessionStore | None = None) -> None:
        self.app = app
        self.store = store

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] == "lifespan":
            await self.app(scope, receive, self._closing_at_shutdown(send))
            return
        if scope["type"] != "http" or path.startswith(_NOT_PAGES):
            await self.app(scope, receive, send)
            return
        store = self._store(scope)
        request = Request(scope)
        loaded = await store.get(request.cookies.get(COOKIE))
        state = scope.setdefault("state", {})
        state["webui_loaded"] = loaded
        used: list[Session] = [loaded] if loaded is not None else []
        state["webui_used"] = used
        before = loaded.dump() if loaded is not None else None

        async def send_after_saving(message: Message) -> None:
            if message["type"] == "http.response.start":
                for session in used:
                    if session is not loaded or session.dropped or session.dump() != before:
                        await store.save(session)
                used.clear()
            await send(message)

        await self.app(scope, receive, send_after_saving)

    def _closing_at_shutdown(self, send: Send) -> Send:
        async def send_after_closing(message: Message) -> None:
            if message["type"] == "lifespan.shutdown.complete" and self.store is not None:
                await self.store.aclose()
            await send(message)

        return send_after_closing

    def _store(self, scope: Scope) -> SessionStore:
        if self.store is None:
            app_state = scope["app"].state
            self.store = SessionStore.from_settings(app_state.runtime.settings)
            app_state.webui_sessions = self.store
        return self.store


def store_of(request: Request) -> SessionStore:
    return request.app.state.webui_sessions  # type: ignore[no-any-return]


def current_session(request: Request) -> Session:
    """The request's session; a new anonymous one (cookie set on the way out) when it has none."""
    cached: Session | None = getattr(request.state, "webui_session", None)
    if cached is not None:
        return cached
    loaded: Session | None = getattr(request.state, "webui_loaded", None)
    session = loaded if loaded is not None else store_of(request).new()
    use_session(request, session)
    return session


def use_session(request: Request, session: Session) -> None:
    """Makes `session` the request's own; it is written back when the answer starts."""
    request.state.webui_session = session
    used: list[Session] | None = getattr(request.state, "webui_used", None)
    if used is not None and all(other is not session for other in used):
        used.append(session)


def attach_cookie(request: Request, response: Response) -> Response:
    """Sets the cookie when the session id differs from what the browser sent, and passes on
    a device cookie the API set at login."""
    device: str | None = getattr(request.state, "device_cookie", None)
    if device:
        settings = webui_runtime(request).settings
        secure = request_is_https(request)
        max_age = settings.login_device_cookie_days * 86400
        set_device_cookie(response, device, max_age=max_age, secure=secure)
    session: Session | None = getattr(request.state, "webui_session", None)
    if session is None:
        return response
    # Secure over HTTPS, to this server or to a trusted proxy that says so (X-Forwarded-Proto).
    if session.dropped:
        secure = request_is_https(request)
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="lax", secure=secure)
    elif request.cookies.get(COOKIE) != session.sid:
        secure = request_is_https(request)
        response.set_cookie(
            COOKIE, session.sid, path="/", httponly=True, samesite="lax", secure=secure
        )
    return response


async def check_csrf(request: Request, session: Session) -> None:
    """The per-session token must come back in the form or the `X-CSRF-Token` header."""
    sent = request.headers.get(CSRF_HEADER)
    if sent is None:
        form = await request.form()
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    if not sent or not secrets.compare_digest(sent, session.csrf):
        raise CsrfRejected


class CsrfRejected(Exception):
    """A POST without this session's CSRF token (a forged or very old form)."""


class SignInRequired(Exception):
    """The page needs a signed-in user (or the API no longer accepts the session's token)."""


class AdminOnly(Exception):
    """The page is for admins."""
