"""HTTP route of stream tickets, `POST /api/v1/stream/ticket`: a logged-in user's short-lived,
single-use ticket for a stream that needs to know its user, passed as `?ticket=` (a browser's
`EventSource` cannot send an `Authorization` header). Kept by `common/stream_tickets.py`."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Protocol, cast

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from orderproc.common.clock import Clock, isoformat_z
from orderproc.common.stream_tickets import StreamTickets, TicketHolder
from orderproc.common.web import CurrentUser, model_response
from orderproc.errors.problem import problem_responses


class TicketRuntime(Protocol):
    @property
    def clock(self) -> Clock: ...
    @property
    def stream_tickets(self) -> StreamTickets: ...


async def _runtime(request: Request) -> TicketRuntime:
    return cast(TicketRuntime, request.app.state.runtime)


Runtime = Annotated[TicketRuntime, Depends(_runtime)]
ticket_router = APIRouter(prefix="/stream", tags=["streams"])


class StreamTicketRead(BaseModel):
    ticket: str = Field(description="Pass as `?ticket=` to a stream; it works once")
    expires_in: int = Field(description="Seconds it stays valid", examples=[30])
    expires_at: str = Field(description="When it stops being valid (UTC)")


@ticket_router.post(
    "/ticket",
    operation_id="stream_create_ticket",
    status_code=201,
    response_model=StreamTicketRead,
    responses=problem_responses(401, 429),
)
async def create_stream_ticket(principal: CurrentUser, rt: Runtime) -> Response:
    """A single-use ticket, valid for a short while (30 s by default), that stands for your
    token on a stream (`?ticket=`), for browsers whose EventSource cannot send headers."""
    issued = await rt.stream_tickets.issue(TicketHolder(principal.user_id, principal.role))
    expires_at: datetime = rt.clock.now() + timedelta(seconds=issued.expires_in)
    model = StreamTicketRead(
        ticket=issued.ticket, expires_in=issued.expires_in, expires_at=isoformat_z(expires_at)
    )
    return model_response(model, status_code=201)
