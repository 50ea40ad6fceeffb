"""Browser sessions: a random id in an HttpOnly, SameSite=Lax cookie; the API bearer token and
the CSRF token stay in this process's memory, keyed by that id. A restart logs everyone out."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field

from fastapi import Request, Response

from orderproc.common.security.devices import set_device_cookie
from orderproc.common.web import request_is_https
from orderproc.webui.runtime import webui_runtime

COOKIE = "op_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
ANONYMOUS_TTL = 2 * 3600.0
MAX_SESSIONS = 50_000


@dataclass
class Session:
    sid: str
    csrf: str
    expires_at: float
    token: str | None = None
    username: str | None = None
    role: str | None = None
    flashes: list[tuple[str, str]] = field(default_factory=list)

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


class SessionStore:
    """Sessions by id, dropped when they expire (a signed-in one when its token would)."""

    def __init__(self) -> None:
        self._sessions: dict[str, Session] = {}

    def get(self, sid: str | None) -> Session | None:
        session = self._sessions.get(sid) if sid else None
        if session is None or session.expires_at < time.monotonic():
            return None
        return session

    def new(self) -> Session:
        if len(self._sessions) >= MAX_SESSIONS:
            self._prune()
        session = Session(
            sid=secrets.token_urlsafe(32),
            csrf=secrets.token_urlsafe(32),
            expires_at=time.monotonic() + ANONYMOUS_TTL,
        )
        self._sessions[session.sid] = session
        return session

    def sign_in(self, old: Session, *, token: str, username: str, role: str, ttl: float) -> Session:
        """A fresh id and CSRF token at sign-in, so an id planted before it is worthless."""
        self.drop(old)
        session = self.new()
        session.token, session.username, session.role = token, username, role
        session.expires_at = time.monotonic() + ttl
        return session

    def drop(self, session: Session) -> None:
        self._sessions.pop(session.sid, None)

    def _prune(self) -> None:
        now = time.monotonic()
        for sid in [sid for sid, s in self._sessions.items() if s.expires_at < now]:
            del self._sessions[sid]
        while len(self._sessions) >= MAX_SESSIONS:  # oldest anonymous ones go first
            del self._sessions[next(iter(self._sessions))]


def store_of(request: Request) -> SessionStore:
    return request.app.state.webui_sessions  # type: ignore[no-any-return]


def current_session(request: Request) -> Session:
    """The request's session; a new anonymous one (cookie set on the way out) when it has none."""
    cached: Session | None = getattr(request.state, "webui_session", None)
    if cached is not None:
        return cached
    store = store_of(request)
    session = store.get(request.cookies.get(COOKIE))
    if session is None:
        session = store.new()
    use_session(request, session)
    return session


def use_session(request: Request, session: Session) -> None:
    request.state.webui_session = session


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
    if store_of(request).get(session.sid) is None:
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
