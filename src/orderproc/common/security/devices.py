"""Device cookies: proof that this client logged in to this username before.

A successful password check sets `orderproc_device`, an HMAC-signed value naming the username,
the issue time and a random device id. While a username is under attack (past the hourly
failure limit of `common/login_throttle.py`) only clients presenting a valid cookie for that
username have their password checked at all. The cookie grants nothing else: it is not a
credential, only a ticket to be evaluated. API clients without a cookie jar can read it from
the login answer's `Set-Cookie` and send it back as `Cookie: orderproc_device=…`.

Format: `v1.<username>.<issued unix seconds>.<device id>.<mac>`, where the mac is
HMAC-SHA256 over everything before it, keyed by a key derived from the token secret (so a new
secret voids every cookie). Every part is cookie-safe (usernames are `[a-z0-9_]`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable

from starlette.responses import Response

__all__ = ["DEVICE_COOKIE", "DeviceCookies", "set_device_cookie"]

DEVICE_COOKIE = "orderproc_device"
VERSION = "v1"
MAX_LENGTH = 160
CLOCK_SKEW_SECONDS = 300
_SHAPE = re.compile(r"v1\.[a-z0-9_]{1,64}\.[0-9]{1,12}\.[A-Za-z0-9_-]{16,32}\.[A-Za-z0-9_-]{43}")
_KEY_LABEL = b"orderproc/device-cookie/v1"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


class DeviceCookies:
    """Issues and checks device cookies; `clock` gives Unix seconds."""

    def __init__(self, *, secret: str, max_age_seconds: int, clock: Callable[[], float]) -> None:
        self._key = hmac.new(secret.encode(), _KEY_LABEL, hashlib.sha256).digest()
        self.max_age_seconds = max_age_seconds
        self._clock = clock

    def _mac(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode("ascii"), hashlib.sha256).digest())

    def issue(self, username: str) -> str:
        """A fresh cookie value for this (normalized) username, with a new device id."""
        payload = f"{VERSION}.{username}.{int(self._clock())}.{secrets.token_urlsafe(16)}"
        return f"{payload}.{self._mac(payload)}"

    def device_for(self, value: str | None, username: str) -> str | None:
        """The device id of a valid, unexpired cookie issued for this username; else None.
        The mac and the username are compared in constant time."""
        if not value or len(value) > MAX_LENGTH or not _SHAPE.fullmatch(value):
            return None
        payload, _, mac = value.rpartition(".")
        _, name, issued_text, device = payload.split(".")
        mac_ok = hmac.compare_digest(mac, self._mac(payload))
        name_ok = hmac.compare_digest(name.encode(), username.encode("utf-8", "replace"))
        age = self._clock() - int(issued_text)
        if not (mac_ok and name_ok) or not -CLOCK_SKEW_SECONDS <= age <= self.max_age_seconds:
            return None
        return device


def set_device_cookie(response: Response, value: str, *, max_age: int, secure: bool) -> None:
    """HttpOnly, SameSite=Lax, site-wide; Secure when the request came over HTTPS."""
    response.set_cookie(
        DEVICE_COOKIE,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="lax",
        secure=secure,
    )
