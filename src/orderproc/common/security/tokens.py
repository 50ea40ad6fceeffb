"""Access tokens: HMAC-signed JWTs issued at login and checked on every request, with a small
cache so a known token skips the signature check but never the expiry check."""

from __future__ import annotations

import functools
import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import jwt

from orderproc.common.clock import EPOCH, Clock, from_micros, to_micros
from orderproc.errors import InvalidToken

if TYPE_CHECKING:
    from orderproc.common.settings import Settings

__all__ = ["Claims", "IssuedToken", "TokenService"]

_HASHES = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
_REQUIRED = ["sub", "role", "jti", "iat", "nbf", "exp", "iss", "aud"]
# exp and nbf are checked against the injected clock below, not the wall clock.
_OPTIONS: Any = {
    "require": _REQUIRED,
    "verify_exp": False,
    "verify_nbf": False,
    "verify_iat": False,
    "enforce_minimum_key_length": True,
}


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    jti: str
    issued_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Claims:
    user_id: str
    role: str
    jti: str
    issued_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class _Verified:
    claims: Claims
    usable_from: datetime  # nbf less the allowed clock skew


class TokenService:
    @classmethod
    def from_settings(cls, settings: Settings, *, secret: str, clock: Clock) -> TokenService:
        """The service as the settings configure it (algorithm, issuer, audience, lifetime)."""
        return cls(
            secret=secret,
            algorithm=settings.jwt_algorithm,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            ttl_seconds=settings.access_token_ttl_seconds,
            clock=clock,
        )

    def __init__(
        self,
        *,
        secret: str,
        algorithm: str,
        issuer: str,
        audience: str,
        ttl_seconds: int,
        clock: Clock,
        cache_size: int = 10_000,
        leeway_seconds: float = 5.0,
    ) -> None:
        digest = _HASHES.get(algorithm)
        if digest is None:
            raise ValueError(f"unsupported JWT algorithm {algorithm!r}; use HS256, HS384 or HS512")
        if len(secret.encode()) < digest().digest_size:
            raise ValueError(f"the JWT secret is too short for {algorithm}")
        self._secret = secret
        self._algorithm = algorithm
        self._issuer = issuer
        self._audience = audience
        self._ttl = ttl_seconds
        self._clock = clock
        self._leeway = timedelta(seconds=leeway_seconds)
        self._jwt = jwt.PyJWT(options=_OPTIONS)
        self._verified = functools.lru_cache(maxsize=cache_size)(self._verify_signed)

    def issue(self, *, user_id: str, role: str) -> IssuedToken:
        issued_micros = to_micros(self._clock.now())
        # Sub-second iat: revocation compares it with a per-user cut-off time.
        iat = issued_micros / 1_000_000
        exp = issued_micros // 1_000_000 + self._ttl
        jti = uuid.uuid4().hex
        claims = {
            "sub": user_id,
            "role": role,
            "jti": jti,
            "iat": iat,
            "nbf": iat,
            "exp": exp,
            "iss": self._issuer,
            "aud": self._audience,
        }
        token = self._jwt.encode(claims, self._secret, algorithm=self._algorithm)
        expires_at = EPOCH + timedelta(seconds=exp)
        return IssuedToken(token, jti, from_micros(issued_micros), expires_at)

    def decode(self, token: str) -> Claims:
        """The claims of a valid token; `InvalidToken` for anything else."""
        verified = self._verified(token)
        now = self._clock.now()
        if now >= verified.claims.expires_at:
            raise InvalidToken("The access token has expired.")
        if now < verified.usable_from:
            raise InvalidToken("The access token is not valid yet.")
        return verified.claims

    def _verify_signed(self, token: str) -> _Verified:
        try:
            payload = self._jwt.decode(
                token,
                self._secret,
                algorithms=[self._algorithm],
                audience=self._audience,
                issuer=self._issuer,
            )
            return _to_verified(payload, self._leeway)
        except (jwt.PyJWTError, TypeError, ValueError, OverflowError) as error:
            raise InvalidToken() from error


def _to_verified(payload: dict[str, Any], leeway: timedelta) -> _Verified:
    claims = Claims(
        user_id=_text(payload["sub"]),
        role=_text(payload["role"]),
        jti=_text(payload["jti"]),
        issued_at=_moment(payload["iat"]),
        expires_at=_moment(payload["exp"]),
    )
    return _Verified(claims, _moment(payload["nbf"]) - leeway)


def _text(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("claim is not a non-empty string")
    return value


def _moment(value: object) -> datetime:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("claim is not a NumericDate")
    return from_micros(round(value * 1_000_000))
