from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from orderproc.inventory.domain import load_snapshot
from orderproc.inventory.pricefeed import (
    CoinGeckoFeed,
    FeedError,
    RetryPolicy,
    coingecko_ids,
    retry_after_seconds,
)

FIXTURES = Path(__file__).parent / "fixtures"
NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
IDS = {"BTC": "bitcoin", "ETH": "ethereum", "SHIB": "shiba-inu", "USDT": "tether"}
Handler = Callable[[httpx.Request], httpx.Response]


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def ok(_: httpx.Request) -> httpx.Response:
    return httpx.Response(200, content=fixture("simple_price_ok.json"))


def sequence(*responses: httpx.Response | Exception) -> tuple[Handler, list[httpx.Request]]:
    """A handler answering the given responses in turn (raising the exceptions)."""
    remaining = list(responses)
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = remaining.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return handle, seen


class SleepRecorder:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def make_feed(
    handler: Handler, sleep: SleepRecorder | None = None, **options: object
) -> CoinGeckoFeed:
    return CoinGeckoFeed(
        IDS,
        transport=httpx.MockTransport(handler),
        sleep=sleep or SleepRecorder(),
        **options,  # type: ignore[arg-type]
    )


class TestPrices:
    async def test_maps_coingecko_ids_to_asset_ids_with_exact_decimals(self) -> None:
        prices = await make_feed(ok).next_prices(NOW)
        assert prices == {
            "BTC": Decimal("51618.12"),
            "ETH": Decimal("2794.23000000"),
            "SHIB": Decimal("0.00000970123"),
            "USDT": Decimal("1.0002"),
        }

    async def test_asks_for_usd_prices_of_every_tracked_coin_at_full_precision(self) -> None:
        handler, seen = sequence(ok(httpx.Request("GET", "/")))
        await make_feed(handler).next_prices(NOW)
        params = seen[0].url.params
        assert seen[0].url.path == "/api/v3/simple/price"
        assert params["ids"] == "bitcoin,ethereum,shiba-inu,tether"
        assert params["vs_currencies"] == "usd"
        assert params["precision"] == "full"

    async def test_splits_many_coins_into_batches(self) -> None:
        handler, seen = sequence(*[ok(httpx.Request("GET", "/"))] * 2)
        prices = await make_feed(handler, batch_size=2).next_prices(NOW)
        assert len(seen) == 2
        assert set(prices) == set(IDS)

    async def test_follows_the_catalog_an_admin_changes(self) -> None:
        handler, seen = sequence(*[ok(httpx.Request("GET", "/"))] * 3)
        feed = make_feed(handler)
        btc = next(a for a in load_snapshot() if a.asset_id == "BTC")
        feed.follow(replace(btc, is_active=False))  # deactivated: no longer asked for
        await feed.next_prices(NOW)
        assert seen[-1].url.params["ids"] == "ethereum,shiba-inu,tether"
        feed.follow(btc)  # active again: asked for from the next tick on
        await feed.next_prices(NOW)
        assert "bitcoin" in seen[-1].url.params["ids"].split(",")
        feed.follow(replace(btc, asset_id="NOID", coingecko_id=None))  # CoinGecko cannot price it
        await feed.next_prices(NOW)
        assert seen[-1].url.params["ids"] == "bitcoin,ethereum,shiba-inu,tether"

    def test_builds_its_id_map_from_the_catalog(self) -> None:
        ids = coingecko_ids(load_snapshot())
        assert ids["BTC"] == "bitcoin"
        assert ids["ETHDYDX"] == "dydx"


class TestApiKey:
    async def test_sends_a_demo_key_in_its_header(self) -> None:
        handler, seen = sequence(ok(httpx.Request("GET", "/")))
        await make_feed(handler, api_key="demo-secret").next_prices(NOW)
        assert seen[0].headers["x-cg-demo-api-key"] == "demo-secret"
        assert seen[0].url.host == "api.coingecko.com"

    async def test_sends_a_pro_key_to_the_pro_host(self) -> None:
        handler, seen = sequence(ok(httpx.Request("GET", "/")))
        await make_feed(handler, api_key="pro-secret", plan="pro").next_prices(NOW)
        assert seen[0].headers["x-cg-pro-api-key"] == "pro-secret"
        assert seen[0].url.host == "pro-api.coingecko.com"

    async def test_sends_no_key_header_without_a_key(self) -> None:
        handler, seen = sequence(ok(httpx.Request("GET", "/")))
        await make_feed(handler).next_prices(NOW)
        assert "x-cg-demo-api-key" not in seen[0].headers
        assert "x-cg-pro-api-key" not in seen[0].headers


class TestRetries:
    async def test_retries_a_server_error_after_a_backoff(self) -> None:
        sleep = SleepRecorder()
        handler, seen = sequence(httpx.Response(500), ok(httpx.Request("GET", "/")))
        prices = await make_feed(handler, sleep).next_prices(NOW)
        assert prices["BTC"] == Decimal("51618.12")
        assert len(seen) == 2
        assert sleep.waits == [0.5]

    async def test_retries_network_errors_and_timeouts(self) -> None:
        sleep = SleepRecorder()
        handler, _ = sequence(
            httpx.ConnectError("refused"),
            httpx.ReadTimeout("slow"),
            ok(httpx.Request("GET", "/")),
        )
        assert await make_feed(handler, sleep).next_prices(NOW)
        assert sleep.waits == [0.5, 1.0]

    async def test_gives_up_with_a_feed_error_when_the_server_keeps_failing(self) -> None:
        sleep = SleepRecorder()
        handler, seen = sequence(*[httpx.Response(503)] * 4)
        with pytest.raises(FeedError) as caught:
            await make_feed(handler, sleep).next_prices(NOW)
        assert caught.value.status == 503
        assert len(seen) == 4
        assert sleep.waits == [0.5, 1.0, 2.0]

    async def test_gives_up_when_the_network_stays_down(self) -> None:
        handler, _ = sequence(*[httpx.ConnectError("down")] * 4)
        with pytest.raises(FeedError):
            await make_feed(handler).next_prices(NOW)

    async def test_caps_the_backoff(self) -> None:
        policy = RetryPolicy(attempts=8, backoff=1.0, max_backoff=4.0)
        assert [policy.delay(attempt) for attempt in range(1, 6)] == [1.0, 2.0, 4.0, 4.0, 4.0]

    async def test_does_not_retry_a_client_error(self) -> None:
        sleep = SleepRecorder()
        handler, seen = sequence(httpx.Response(401, json={"error": "invalid key"}))
        with pytest.raises(FeedError) as caught:
            await make_feed(handler, sleep).next_prices(NOW)
        assert caught.value.status == 401
        assert len(seen) == 1
        assert sleep.waits == []


class TestRateLimits:
    async def test_waits_as_long_as_retry_after_says_then_retries(self) -> None:
        sleep = SleepRecorder()
        limited = httpx.Response(
            429, headers={"Retry-After": "7"}, content=fixture("rate_limited.json")
        )
        handler, seen = sequence(limited, ok(httpx.Request("GET", "/")))
        assert await make_feed(handler, sleep).next_prices(NOW)
        assert sleep.waits == [7.0]
        assert len(seen) == 2

    async def test_backs_off_when_a_429_has_no_retry_after(self) -> None:
        sleep = SleepRecorder()
        handler, _ = sequence(
            httpx.Response(429, content=fixture("rate_limited.json")), ok(httpx.Request("GET", "/"))
        )
        assert await make_feed(handler, sleep).next_prices(NOW)
        assert sleep.waits == [0.5]

    async def test_gives_up_this_tick_when_asked_to_wait_too_long(self) -> None:
        sleep = SleepRecorder()
        handler, seen = sequence(httpx.Response(429, headers={"Retry-After": "3600"}))
        with pytest.raises(FeedError) as caught:
            await make_feed(handler, sleep).next_prices(NOW)
        assert caught.value.status == 429
        assert sleep.waits == []
        assert len(seen) == 1

    def test_reads_retry_after_as_seconds_or_an_http_date(self) -> None:
        assert retry_after_seconds("12") == 12.0
        assert retry_after_seconds("Thu, 15 Jan 2026 12:00:30 GMT", now=NOW) == 30.0
        assert retry_after_seconds("Thu, 15 Jan 2026 11:00:00 GMT", now=NOW) == 0.0
        assert retry_after_seconds("soon") is None
        assert retry_after_seconds(None) is None


class TestMalformedBodies:
    @pytest.mark.parametrize(
        "body",
        [
            b"<html>Bad gateway</html>",
            b"[1, 2, 3]",
            fixture("simple_price_missing_usd.json"),
            b'{"bitcoin": {"usd": -1}}',
            b'{"bitcoin": {"usd": "51618"}}',
            b'{"bitcoin": 51618}',
        ],
    )
    async def test_raise_a_feed_error(self, body: bytes) -> None:
        handler, _ = sequence(httpx.Response(200, content=body))
        with pytest.raises(FeedError):
            await make_feed(handler).next_prices(NOW)
