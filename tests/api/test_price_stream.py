"""The JSON price stream (`GET /api/v1/stream/prices`) and stream tickets
(`POST /api/v1/stream/ticket`), in process: ticks are driven with `tick_once`, events read as
the app sends them."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from fastapi import FastAPI

from orderproc.gateway.app import create_app
from orderproc.inventory.domain import Asset
from orderproc.runtime import Runtime
from orderproc.webui.formatting import price
from orderproc.webui.streams import quote_fragment
from tests.api.conftest import Auth, Client
from tests.api.test_inventory import make_admin
from tests.api.test_users_auth import Signup, assert_problem
from tests.support.sse import Event, OpenStream

STREAM = "/api/v1/stream/prices"
TICKET = "/api/v1/stream/ticket"


@pytest.fixture
def app(runtime: Runtime) -> FastAPI:
    return create_app(runtime.settings, runtime=runtime)


@pytest.fixture
async def streams(app: FastAPI) -> AsyncIterator[list[OpenStream]]:
    """Streams a test opens; each is closed afterwards (the client leaves)."""
    opened: list[OpenStream] = []
    yield opened
    for stream in opened:
        await stream.close()


async def open_stream(
    app: FastAPI, streams: list[OpenStream], target: str = STREAM, **headers: str
) -> OpenStream:
    stream = OpenStream(app, target, headers={k.replace("_", "-"): v for k, v in headers.items()})
    await stream.open()
    streams.append(stream)
    return stream


async def first_event(stream: OpenStream) -> Event:
    retry = await stream.next_event()
    assert retry.name == "retry"
    assert retry.data == "3000"
    return await stream.next_event()


def prices_of(event: Event) -> dict[str, dict[str, Any]]:
    return {item["asset_id"]: item for item in event.json()["prices"]}


class TestEvents:
    async def test_a_snapshot_then_one_event_per_tick_for_the_filter(
        self, app: FastAPI, streams: list[OpenStream], runtime: Runtime
    ) -> None:
        stream = await open_stream(app, streams, f"{STREAM}?assets=btc,ETH")
        assert stream.status == 200
        assert stream.response_headers["content-type"].startswith("text/event-stream")
        assert "content-length" not in stream.response_headers  # a stream has no length
        snapshot = await first_event(stream)
        assert snapshot.name == "snapshot"
        assert set(prices_of(snapshot)) == {"BTC", "ETH"}

        await runtime.ticker.tick_once()
        tick = await stream.next_event()
        assert tick.name == "tick"
        assert tick.id is not None
        assert tick.id != snapshot.id
        moved = prices_of(tick)
        assert set(moved) == {"BTC", "ETH"}
        btc = runtime.catalog.by_id["BTC"]
        assert Decimal(moved["BTC"]["price_usd"]) == btc.price_usd
        assert Decimal(moved["BTC"]["bid"]) == btc.bid
        assert Decimal(moved["BTC"]["ask"]) == btc.ask
        assert btc.bid <= btc.price_usd <= btc.ask
        assert moved["BTC"]["as_of"] == tick.json()["as_of"]

    async def test_without_a_filter_every_active_asset_comes(
        self, app: FastAPI, streams: list[OpenStream], runtime: Runtime
    ) -> None:
        stream = await open_stream(app, streams)
        snapshot = prices_of(await first_event(stream))
        active = {a.asset_id for a in runtime.catalog.assets() if a.is_active}
        assert set(snapshot) == active
        assert len(active) > 90
        await runtime.ticker.tick_once()
        assert set(prices_of(await stream.next_event())) == active

    async def test_every_client_of_a_filter_gets_the_same_bytes_of_a_tick(
        self, app: FastAPI, streams: list[OpenStream], runtime: Runtime
    ) -> None:
        first = await open_stream(app, streams, f"{STREAM}?assets=SOL")
        second = await open_stream(app, streams, f"{STREAM}?assets=sol")
        await first_event(first), await first_event(second)
        await runtime.ticker.tick_once()
        assert await first.next_event() == await second.next_event()

    async def test_unknown_and_malformed_assets_are_refused(
        self, app: FastAPI, streams: list[OpenStream]
    ) -> None:
        unknown = await open_stream(app, streams, f"{STREAM}?assets=BTC,NOPE")
        assert unknown.status == 404
        assert unknown.problem()["code"] == "ASSET_NOT_FOUND"
        assert "NOPE" in unknown.problem()["detail"]
        for bad in ("BTC,$$$", ",", "A" * 16):
            malformed = await open_stream(app, streams, f"{STREAM}?assets={bad}")
            assert malformed.status == 422, bad
            assert malformed.response_headers["content-type"] == "application/problem+json"


class TestResume:
    async def test_last_event_id_resumes_with_the_ticks_missed(
        self, app: FastAPI, streams: list[OpenStream], runtime: Runtime
    ) -> None:
        stream = await open_stream(app, streams, f"{STREAM}?assets=BTC")
        snapshot = await first_event(stream)
        await stream.close()
        await runtime.ticker.tick_once()
        await runtime.ticker.tick_once()
        assert snapshot.id is not None
        again = await open_stream(app, streams, f"{STREAM}?assets=BTC", last_event_id=snapshot.id)
        await again.next_event()  # retry
        missed = [await again.next_event(), await again.next_event()]
        assert [e.name for e in missed] == ["tick", "tick"]
        epoch, seq = snapshot.id.split("-")
        assert [e.id for e in missed] == [f"{epoch}-{int(seq) + 1}", f"{epoch}-{int(seq) + 2}"]
        assert Decimal(prices_of(missed[1])["BTC"]["price_usd"]) == (
            runtime.catalog.by_id["BTC"].price_usd
        )
        assert not again.pending()

    @pytest.mark.parametrize("settings_overrides", [{"stream_resume_ticks": 2}])
    async def test_an_id_too_old_or_unknown_gets_a_fresh_snapshot(
        self, app: FastAPI, streams: list[OpenStream], runtime: Runtime
    ) -> None:
        stream = await open_stream(app, streams, f"{STREAM}?assets=ETH")
        snapshot = await first_event(stream)
        await stream.close()
        for _ in range(3):  # the ring keeps two
            await runtime.ticker.tick_once()
        assert snapshot.id is not None
        for last_id in (snapshot.id, "0badc0de-1", "not an id"):
            again = await open_stream(app, streams, f"{STREAM}?assets=ETH", last_event_id=last_id)
            fresh = await first_event(again)
            assert fresh.name == "snapshot", last_id
            price = Decimal(prices_of(fresh)["ETH"]["price_usd"])
            assert price == runtime.catalog.by_id["ETH"].price_usd


class TestCaps:
    @pytest.mark.parametrize("settings_overrides", [{"stream_connections_per_address": 2}])
    async def test_streams_past_the_cap_per_address_are_429(
        self, app: FastAPI, streams: list[OpenStream]
    ) -> None:
        first = await open_stream(app, streams)
        await open_stream(app, streams)
        refused = await open_stream(app, streams)
        assert refused.status == 429
        assert refused.problem()["code"] == "TOO_MANY_STREAMS"
        assert refused.response_headers["retry-after"]
        other = OpenStream(app, STREAM, client=("198.51.100.9", 5000))
        streams.append(await other.open())
        assert other.status == 200
        await first.close()  # one leaves: room for another
        assert (await open_stream(app, streams)).status == 200

    @pytest.mark.parametrize("settings_overrides", [{"stream_connections_per_user": 1}])
    async def test_streams_past_the_cap_per_user_are_429(
        self, app: FastAPI, streams: list[OpenStream], client: Client, alice: Auth
    ) -> None:
        async def ticket() -> str:
            answer = await client.post(TICKET, headers=alice)
            assert answer.status_code == 201, answer.text
            return str(answer.json()["ticket"])

        first = await open_stream(app, streams, f"{STREAM}?ticket={await ticket()}")
        assert first.status == 200
        refused = await open_stream(app, streams, f"{STREAM}?ticket={await ticket()}")
        assert refused.status == 429
        assert "per user" in refused.problem()["detail"]
        anonymous = await open_stream(app, streams)  # the address has room
        assert anonymous.status == 200


class TestTickets:
    async def test_a_ticket_works_once(
        self, app: FastAPI, streams: list[OpenStream], client: Client, alice: Auth
    ) -> None:
        answer = await client.post(TICKET, headers=alice)
        assert answer.status_code == 201
        body = answer.json()
        assert body["expires_in"] == 30
        assert isinstance(body["expires_in"], int)  # whole seconds, as documented: not 30.0
        ticket = body["ticket"]
        assert (await open_stream(app, streams, f"{STREAM}?ticket={ticket}")).status == 200
        again = await open_stream(app, streams, f"{STREAM}?ticket={ticket}")
        assert again.status == 401
        assert again.problem()["code"] == "INVALID_TICKET"

    async def test_a_ticket_needs_a_logged_in_user(self, client: Client) -> None:
        assert_problem(await client.post(TICKET), 401, "INVALID_TOKEN")

    async def test_a_made_up_ticket_is_refused(
        self, app: FastAPI, streams: list[OpenStream]
    ) -> None:
        refused = await open_stream(app, streams, f"{STREAM}?ticket=made-up")
        assert refused.status == 401


class TestCatalogChanges:
    async def test_an_asset_added_by_an_admin_ticks_from_the_next_tick(
        self,
        app: FastAPI,
        streams: list[OpenStream],
        runtime: Runtime,
        client: Client,
        signup: Signup,
    ) -> None:
        admin = await make_admin(client, signup, runtime)
        body = {"asset_id": "NEWC", "name": "New Coin", "category": "other", "price_usd": "2.5"}
        assert (await client.post("/api/v1/admin/assets", headers=admin, json=body)).is_success
        stream = await open_stream(app, streams, f"{STREAM}?assets=NEWC")
        assert prices_of(await first_event(stream))["NEWC"]["price_usd"] == "2.50"
        await runtime.ticker.tick_once()
        tick = prices_of(await stream.next_event())
        assert Decimal(tick["NEWC"]["price_usd"]) != Decimal("2.5")
        assert runtime.catalog.by_id["NEWC"].price_usd == Decimal(tick["NEWC"]["price_usd"])

    async def test_a_deactivated_asset_stops_and_a_reactivated_one_goes_on(
        self,
        app: FastAPI,
        streams: list[OpenStream],
        runtime: Runtime,
        client: Client,
        signup: Signup,
    ) -> None:
        admin = await make_admin(client, signup, runtime)
        off = await client.patch(
            "/api/v1/admin/assets/DOGE", headers=admin, json={"is_active": False}
        )
        assert off.is_success, off.text
        stopped = runtime.catalog.by_id["DOGE"]
        stream = await open_stream(app, streams)
        assert "DOGE" not in prices_of(await first_event(stream))
        await runtime.ticker.tick_once()
        assert "DOGE" not in prices_of(await stream.next_event())
        assert runtime.catalog.by_id["DOGE"].price_usd == stopped.price_usd
        assert runtime.catalog.by_id["DOGE"].last_updated == stopped.last_updated

        on = await client.patch(
            "/api/v1/admin/assets/DOGE", headers=admin, json={"is_active": True}
        )
        assert on.is_success
        await runtime.ticker.tick_once()
        assert "DOGE" in prices_of(await stream.next_event())
        assert runtime.catalog.by_id["DOGE"].last_updated > stopped.last_updated


class TestHeartbeat:
    @pytest.mark.parametrize("settings_overrides", [{"stream_heartbeat_seconds": 0.01}])
    async def test_a_comment_line_comes_while_ticks_pause(
        self, app: FastAPI, streams: list[OpenStream]
    ) -> None:
        stream = await open_stream(app, streams, f"{STREAM}?assets=BTC")
        await first_event(stream)
        beat = await stream.next_event()  # the hub's timer wakes the stream; nothing is slept
        assert beat.comment
        assert beat.name == "message"


async def test_the_stream_is_in_the_openapi_document(app: FastAPI) -> None:
    operation = app.openapi()["paths"][STREAM]["get"]
    assert set(operation["responses"]["200"]["content"]) == {"text/event-stream"}
    event = operation["responses"]["200"]["content"]["text/event-stream"]["schema"]
    assert event["required"] == ["event", "id", "data"]
    assert {p["name"] for p in operation["parameters"]} == {"assets", "ticket", "Last-Event-ID"}


class TestWebUiLivePrices:
    async def test_the_web_ui_reads_the_same_hub_in_html_fragments(
        self, app: FastAPI, streams: list[OpenStream], runtime: Runtime
    ) -> None:
        page = await open_stream(app, streams, "/live/prices?asset=btc")
        api = await open_stream(app, streams, f"{STREAM}?assets=BTC")
        assert runtime.price_stream.subscribers == 2
        await api.next_event(), await api.next_event()
        assert (await page.next_event()).name == "retry"
        first = [await page.next_event() for _ in range(4)]
        assert [e.name for e in first] == ["p-BTC", "c-BTC", "q-BTC", "tick"]
        assert 'class="px"' in first[0].data  # no previous price: no direction
        assert quote_of(first[2]) == quote_shown(runtime.catalog.by_id["BTC"])

        before = runtime.catalog.by_id["BTC"].price_usd
        await runtime.ticker.tick_once()
        price, change, quote, tick = [await page.next_event() for _ in range(4)]
        btc = runtime.catalog.by_id["BTC"]
        after = btc.price_usd
        direction = "tick-up" if after > before else "tick-down"
        assert direction in price.data
        assert 'data-testid="price-BTC"' in price.data
        assert change.name == "c-BTC"
        assert quote.name == "q-BTC"
        bid, ask = quote_of(quote)
        assert (bid, ask) == quote_shown(btc)
        assert (bid, ask) != quote_of(first[2])  # the quote moved with the price
        assert btc.bid <= btc.ask
        assert parse_price(bid) <= parse_price(ask)
        assert Decimal(tick.json()["price"]) == after
        assert Decimal(prices_of(await api.next_event())["BTC"]["price_usd"]) == after

    async def test_the_market_list_is_sent_only_the_price_and_the_change(
        self, app: FastAPI, streams: list[OpenStream], runtime: Runtime
    ) -> None:
        page = await open_stream(app, streams, "/live/prices")
        assert (await page.next_event()).name == "retry"
        active = [a.asset_id for a in runtime.catalog.assets() if a.is_active]
        snapshot = [await page.next_event() for _ in range(2 * len(active))]
        expected = [name for a in active for name in (f"p-{a}", f"c-{a}")]
        assert sorted(e.name for e in snapshot) == sorted(expected)

        await runtime.ticker.tick_once()
        tick = [await page.next_event() for _ in range(2 * len(active))]
        assert sorted(e.name for e in tick) == sorted(expected)
        await runtime.ticker.tick_once()
        assert (await page.next_event()).name.startswith("p-")  # no quote nor chart tick came

    async def test_the_asset_page_first_shows_the_quote_as_the_stream_swaps_it_in(
        self, client: Client, runtime: Runtime
    ) -> None:
        await runtime.ticker.tick_once()
        page = await client.get("/assets/ETH")
        assert page.status_code == 200
        eth = runtime.catalog.by_id["ETH"]
        assert quote_fragment(eth) in page.text
        assert 'sse-swap="q-ETH"' in page.text


QUOTE = re.compile(r'data-testid="bid-\w+">([^<]+)</dd>.*data-testid="ask-\w+">([^<]+)</dd>')


def quote_of(event: Event) -> tuple[str, str]:
    """The bid and the ask an asset page's `q-<id>` event shows."""
    found = QUOTE.search(event.data)
    assert found is not None, event.data
    return found[1], found[2]


def quote_shown(asset: Asset) -> tuple[str, str]:
    return price(asset.bid), price(asset.ask)


def parse_price(shown: str) -> Decimal:
    return Decimal(shown.removeprefix("$").replace(",", ""))
