from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import jwt
import pytest

from orderproc.common.clock import FixedClock
from orderproc.common.security.tokens import Claims, TokenService
from orderproc.errors import InvalidToken

SECRET = "k" * 64
OTHER_SECRET = "q" * 64
TTL = 3600
START = datetime(2026, 1, 15, 12, 0, 0, 123_457, tzinfo=UTC)


def make_service(clock: FixedClock, **overrides: Any) -> TokenService:
    settings: dict[str, Any] = {
        "secret": SECRET,
        "algorithm": "HS256",
        "issuer": "orderproc",
        "audience": "orderproc-api",
        "ttl_seconds": TTL,
        "clock": clock,
    }
    return TokenService(**(settings | overrides))


def b64(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unverified_claims(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(START)


@pytest.fixture
def service(clock: FixedClock) -> TokenService:
    return make_service(clock)


class TestIssue:
    def test_a_token_carries_every_required_claim(self, service: TokenService) -> None:
        issued = service.issue(user_id="u-1", role="customer")

        claims = unverified_claims(issued.token)

        assert set(claims) == {"sub", "role", "jti", "iat", "nbf", "exp", "iss", "aud"}
        assert (claims["sub"], claims["role"]) == ("u-1", "customer")
        assert (claims["iss"], claims["aud"]) == ("orderproc", "orderproc-api")
        assert claims["jti"] == issued.jti
        assert len(issued.jti) == 32
        assert int(issued.jti, 16) >= 0

    def test_iat_and_nbf_keep_microseconds(self, service: TokenService) -> None:
        claims = unverified_claims(service.issue(user_id="u-1", role="customer").token)

        assert claims["iat"] == pytest.approx(START.timestamp(), abs=1e-6)
        assert claims["iat"] != int(claims["iat"])
        assert claims["nbf"] == claims["iat"]

    def test_exp_is_the_ttl_after_issue(self, service: TokenService) -> None:
        issued = service.issue(user_id="u-1", role="customer")

        assert unverified_claims(issued.token)["exp"] == int(START.timestamp()) + TTL
        assert issued.issued_at == START
        assert 0 <= (START.timestamp() + TTL) - issued.expires_at.timestamp() < 1

    def test_each_token_has_its_own_jti(self, service: TokenService) -> None:
        first = service.issue(user_id="u-1", role="customer")
        second = service.issue(user_id="u-1", role="customer")

        assert first.jti != second.jti


class TestDecode:
    def test_a_fresh_token_decodes_to_its_claims(self, service: TokenService) -> None:
        issued = service.issue(user_id="u-1", role="admin")

        claims = service.decode(issued.token)

        assert claims == Claims(
            user_id="u-1",
            role="admin",
            jti=issued.jti,
            issued_at=issued.issued_at,
            expires_at=issued.expires_at,
        )

    def test_issued_at_survives_the_round_trip_to_the_microsecond(
        self, service: TokenService
    ) -> None:
        issued = service.issue(user_id="u-1", role="customer")

        assert service.decode(issued.token).issued_at == START

    def test_a_cached_token_decodes_to_the_same_claims(self, service: TokenService) -> None:
        token = service.issue(user_id="u-1", role="customer").token

        assert service.decode(token) == service.decode(token)

    def test_an_expired_token_is_refused(self, service: TokenService, clock: FixedClock) -> None:
        issued = service.issue(user_id="u-1", role="customer")
        clock.set(issued.expires_at)

        with pytest.raises(InvalidToken, match="expired"):
            service.decode(issued.token)

    def test_an_expired_token_is_refused_even_when_cached(
        self, service: TokenService, clock: FixedClock
    ) -> None:
        token = service.issue(user_id="u-1", role="customer").token
        service.decode(token)
        clock.advance(seconds=TTL + 1)

        with pytest.raises(InvalidToken, match="expired"):
            service.decode(token)

    def test_a_token_not_valid_yet_is_refused(self, clock: FixedClock) -> None:
        future_clock = FixedClock(START)
        future_clock.advance(minutes=1)
        token = make_service(future_clock).issue(user_id="u-1", role="customer").token

        with pytest.raises(InvalidToken, match="not valid yet"):
            make_service(clock).decode(token)

    def test_a_small_clock_skew_between_services_is_tolerated(self, clock: FixedClock) -> None:
        ahead = FixedClock(START)
        ahead.advance(seconds=2)
        token = make_service(ahead).issue(user_id="u-1", role="customer").token

        assert make_service(clock).decode(token).user_id == "u-1"

    @pytest.mark.parametrize(
        "other",
        [
            {"audience": "someone-else"},
            {"issuer": "someone-else"},
            {"secret": OTHER_SECRET},
        ],
        ids=["audience", "issuer", "secret"],
    )
    def test_a_token_from_another_configuration_is_refused(
        self, service: TokenService, clock: FixedClock, other: dict[str, Any]
    ) -> None:
        token = make_service(clock, **other).issue(user_id="u-1", role="customer").token

        with pytest.raises(InvalidToken):
            service.decode(token)

    def test_an_unsigned_alg_none_token_is_refused(self, service: TokenService) -> None:
        claims = unverified_claims(service.issue(user_id="u-1", role="admin").token)
        unsigned = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}."

        with pytest.raises(InvalidToken):
            service.decode(unsigned)

    def test_an_hs256_token_is_refused_by_an_hs512_service(self, clock: FixedClock) -> None:
        token = make_service(clock, algorithm="HS256").issue(user_id="u-1", role="admin").token

        with pytest.raises(InvalidToken):
            make_service(clock, algorithm="HS512").decode(token)

    def test_a_tampered_payload_is_refused(self, service: TokenService) -> None:
        header, _, signature = service.issue(user_id="u-1", role="customer").token.split(".")
        claims = unverified_claims(service.issue(user_id="u-1", role="customer").token)
        forged = f"{header}.{b64(claims | {'role': 'admin'})}.{signature}"

        with pytest.raises(InvalidToken):
            service.decode(forged)

    @pytest.mark.parametrize("missing", ["sub", "role", "jti", "iat", "nbf", "exp", "iss", "aud"])
    def test_a_signed_token_missing_a_claim_is_refused(
        self, service: TokenService, missing: str
    ) -> None:
        claims = unverified_claims(service.issue(user_id="u-1", role="customer").token)
        del claims[missing]
        token = jwt.encode(claims, SECRET, algorithm="HS256")

        with pytest.raises(InvalidToken):
            service.decode(token)

    @pytest.mark.parametrize(
        "bad", [{"sub": 42}, {"role": ""}, {"iat": "yesterday"}, {"exp": True}, {"nbf": None}]
    )
    def test_a_signed_token_with_a_claim_of_the_wrong_type_is_refused(
        self, service: TokenService, bad: dict[str, Any]
    ) -> None:
        claims = unverified_claims(service.issue(user_id="u-1", role="customer").token)
        token = jwt.encode(claims | bad, SECRET, algorithm="HS256")

        with pytest.raises(InvalidToken):
            service.decode(token)

    @pytest.mark.parametrize("garbage", ["", "garbage", "a.b.c", "a.b", "...", "é.é.é"])
    def test_garbage_is_refused(self, service: TokenService, garbage: str) -> None:
        with pytest.raises(InvalidToken):
            service.decode(garbage)

    def test_a_refusal_reveals_no_internals(self, service: TokenService) -> None:
        with pytest.raises(InvalidToken) as refused:
            service.decode("garbage")

        assert refused.value.detail == InvalidToken.default_detail


class TestConstruction:
    @pytest.mark.parametrize("algorithm", ["none", "RS256", "ES256", "hs256"])
    def test_refuses_an_algorithm_outside_the_hmac_family(
        self, clock: FixedClock, algorithm: str
    ) -> None:
        with pytest.raises(ValueError, match="unsupported"):
            make_service(clock, algorithm=algorithm)

    def test_refuses_a_secret_shorter_than_the_digest(self, clock: FixedClock) -> None:
        with pytest.raises(ValueError, match="too short"):
            make_service(clock, algorithm="HS512", secret="k" * 32)
