"""HTTP route of the JSON price stream, `GET /api/v1/stream/prices` (server-sent events).

The events come from the process's `PriceStreamHub` (`common/price_stream.py`), which the price
ticker feeds; this module checks the request (the asset filter, the optional ticket, the
connection caps) and hands the connection to the hub."""

from __future__ import annotations

from typing import Annotated, Any, Protocol, cast

from fastapi import APIRouter, Depends, Header, Query, Request

from orderproc.common.price_stream import JSON_EVENTS, EventStreamResponse, PriceStreamHub
from orderproc.common.stream_tickets import StreamTickets, redeem_ticket
from orderproc.common.vocabulary import ASSET_ID_PATTERN
from orderproc.common.web import ClientIP
from orderproc.errors import AssetNotFound, ValidationFailed
from orderproc.errors.problem import problem_responses
from orderproc.inventory import service

MAX_FILTER = 250  # asset ids in one filter, as many as one catalog page


class PriceStreamRuntime(Protocol):
    @property
    def catalog(self) -> service.Catalog: ...
    @property
    def price_stream(self) -> PriceStreamHub: ...
    @property
    def stream_tickets(self) -> StreamTickets: ...


async def _runtime(request: Request) -> PriceStreamRuntime:
    return cast(PriceStreamRuntime, request.app.state.runtime)


Runtime = Annotated[PriceStreamRuntime, Depends(_runtime)]
stream_router = APIRouter(prefix="/stream", tags=["streams"])

EVENTS_DOC = """Server-sent events. The first event is a `snapshot` of every asset asked for
(every active asset without `assets`); then one `tick` event per price tick, holding the assets
of the filter that moved. Each event's `data` is one line of JSON:
`{"as_of": "...", "prices": [{"asset_id": "BTC", "price_usd": "64123.5", "bid": "64117.08",
"ask": "64129.92", "as_of": "2026-01-15T12:00:02.000Z"}, ...]}`; each has an `id`, which a
reconnecting client sends back as `Last-Event-ID`. A comment line (`: keep-alive`) comes when
ticks pause."""

# One event of the stream (comments and the `retry` line aside), as event-stream parsers and
# schema checkers read it: its name, its id, and its data, one line of JSON.
EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "event": {"type": "string", "enum": ["snapshot", "tick"]},
        "id": {"type": "string", "description": "Send it back as Last-Event-ID to resume"},
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "description": '{"as_of": time, "prices": [{"asset_id", "price_usd", "bid", "ask", '
            '"as_of"}]}, prices as decimal strings',
        },
    },
    "required": ["event", "id", "data"],
}

_STREAM_200: dict[int | str, dict[str, Any]] = {
    200: {
        "description": EVENTS_DOC,
        "content": {"text/event-stream": {"schema": EVENT_SCHEMA}},
    }
}


@stream_router.get(
    "/prices",
    operation_id="stream_prices",
    status_code=200,
    response_class=EventStreamResponse,
    responses={**_STREAM_200, **problem_responses(401, 404, 422, 429, store=False)},
)
async def stream_prices(
    rt: Runtime,
    ip: ClientIP,
    assets: Annotated[
        str | None,
        Query(
            max_length=4000,
            description="Comma-separated asset ids (case-insensitive); every active asset "
            "when absent",
            examples=["BTC,ETH"],
        ),
    ] = None,
    ticket: Annotated[
        str | None,
        Query(
            max_length=64,
            description="A ticket from POST /api/v1/stream/ticket, so the stream counts "
            "towards its user's limit (single use)",
        ),
    ] = None,
    last_event_id: Annotated[
        str | None,
        Header(
            alias="Last-Event-ID",
            max_length=64,
            description="The id of the last event received: the stream resumes after it (a "
            "snapshot when it is too old)",
        ),
    ] = None,
) -> EventStreamResponse:
    """Live prices: a snapshot, then every tick, resumable with `Last-Event-ID`. Open streams
    are limited per client address and, with a `ticket`, per user (429 beyond)."""
    only = asset_filter(assets, rt.catalog)
    user = None
    if ticket is not None:
        user = (await redeem_ticket(rt.stream_tickets, ticket)).user_id
    hub = rt.price_stream
    release = hub.admit(user=user, address=ip)
    after = hub.resume_point(last_event_id)
    return EventStreamResponse(hub.events(JSON_EVENTS, only=only, after=after), release=release)


def asset_filter(raw: str | None, catalog: service.Catalog) -> tuple[str, ...] | None:
    """`"btc, eth"` → `("BTC", "ETH")`; a malformed id or list is a 422, an unknown id a 404
    (as the catalog answers an unknown asset)."""
    if raw is None:
        return None
    ids = list(dict.fromkeys(part.strip().upper() for part in raw.split(",") if part.strip()))
    malformed = [i for i in ids if not ASSET_ID_PATTERN.fullmatch(i)]
    if not ids or malformed or len(ids) > MAX_FILTER:
        message = f"comma-separated asset ids (1 to 15 letters or digits each), 1 to {MAX_FILTER}"
        raise ValidationFailed(
            f"assets: {message}",
            errors=[{"loc": ["query", "assets"], "msg": message, "type": "value_error"}],
        )
    unknown = [i for i in ids if i not in catalog.by_id]
    if unknown:
        raise AssetNotFound(f"no asset {', '.join(unknown)}")
    return tuple(ids)
