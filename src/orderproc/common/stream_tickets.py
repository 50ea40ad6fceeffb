"""Stream tickets: short-lived, single-use stand-ins for a bearer token, for browsers, whose
`EventSource` cannot send an `Authorization` header.

`POST /api/v1/stream/ticket` (the orders service) issues one to a logged-in user; a stream that
needs to know its user takes it as `?ticket=` and calls `redeem_ticket`, which answers who it
was issued to and forgets it, so a ticket seen in a log or a browser's history is worth nothing.

Tickets live where every process can find them: in Redis when `ORDERPROC_REDIS_URL` is set
(`SET key value NX PX ttl` to issue, `GETDEL` to redeem, so two redemptions of one ticket
cannot both succeed), in this process's memory otherwise. Keys hold a hash of the ticket, never
the ticket. When Redis fails (or its breaker is open), tickets are issued to and redeemed from
this process's memory, as without Redis: a ticket issued during an outage works on the process
that issued it, which is the embedded mode's whole platform.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from orderproc.common.metrics import Metrics
from orderproc.common.redis_shared import PREFIX, RedisUnavailable, SharedRedis
from orderproc.common.settings import Settings
from orderproc.errors import InvalidTicket

__all__ = [
    "IssuedTicket",
    "MemoryTickets",
    "RedisTickets",
    "StreamTickets",
    "TicketHolder",
    "redeem_ticket",
    "stream_tickets_for",
]

TICKET_BYTES = 24  # 32 URL-safe characters
MAX_TICKET_LENGTH = 64  # longer is not one of ours: refused without a look-up


@dataclass(frozen=True, slots=True)
class TicketHolder:
    """Who a ticket was issued to."""

    user_id: str
    role: str


@dataclass(frozen=True, slots=True)
class IssuedTicket:
    ticket: str
    expires_in: int  # seconds


class StreamTickets(Protocol):
    async def issue(self, holder: TicketHolder) -> IssuedTicket: ...

    async def redeem(self, ticket: str) -> TicketHolder | None:
        """Who the ticket was issued to, once; None when it is unknown, used or expired."""
        ...

    async def aclose(self) -> None: ...


def _key(ticket: str) -> str:
    digest = hashlib.sha256(ticket.encode()).hexdigest()[:40]
    return f"{PREFIX}stream-ticket:{digest}"


def _encode(holder: TicketHolder) -> str:
    return f"{holder.role}:{holder.user_id}"


def _decode(value: bytes) -> TicketHolder:
    role, _, user_id = value.decode().partition(":")
    return TicketHolder(user_id=user_id, role=role)


class MemoryTickets:
    """Tickets in this process. Expired ones go as new ones come (every ticket lives as long,
    so the oldest is the first to expire), which bounds memory by what one lifetime issues."""

    def __init__(self, *, ttl: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._tickets: dict[str, tuple[TicketHolder, float]] = {}

    async def issue(self, holder: TicketHolder) -> IssuedTicket:
        now = self._clock()
        self._drop_expired(now)
        ticket = secrets.token_urlsafe(TICKET_BYTES)
        self._tickets[_key(ticket)] = (holder, now + self.ttl)
        return IssuedTicket(ticket, self.ttl)

    async def redeem(self, ticket: str) -> TicketHolder | None:
        found = self._tickets.pop(_key(ticket), None)
        if found is None:
            return None
        holder, expires = found
        return holder if self._clock() < expires else None

    def _drop_expired(self, now: float) -> None:
        tickets = self._tickets
        while tickets:
            key = next(iter(tickets))
            if tickets[key][1] > now:
                return
            del tickets[key]

    async def aclose(self) -> None:
        self._tickets.clear()


class RedisTickets:
    """Tickets in Redis, for every process of the platform; `local` when Redis cannot answer
    (and, on redemption, for tickets `local` issued while Redis was away)."""

    def __init__(self, shared: SharedRedis, *, local: MemoryTickets) -> None:
        self.shared = shared
        self.local = local
        self._ttl_ms = local.ttl * 1000

    async def issue(self, holder: TicketHolder) -> IssuedTicket:
        ticket = secrets.token_urlsafe(TICKET_BYTES)
        try:
            stored = await self.shared.call(
                self.shared.client.execute,
                b"SET",
                _key(ticket),
                _encode(holder),
                b"NX",
                b"PX",
                self._ttl_ms,
            )
        except RedisUnavailable:
            return await self.local.issue(holder)
        if stored is None:  # 192 random bits met an existing key: never, but never reuse one
            return await self.issue(holder)
        return IssuedTicket(ticket, self.local.ttl)

    async def redeem(self, ticket: str) -> TicketHolder | None:
        try:
            value = await self.shared.call(self.shared.client.execute, b"GETDEL", _key(ticket))
        except RedisUnavailable:
            return await self.local.redeem(ticket)
        if value is None:
            return await self.local.redeem(ticket)
        return _decode(value)

    async def aclose(self) -> None:
        await self.shared.aclose()


def stream_tickets_for(settings: Settings, *, metrics: Metrics | None = None) -> StreamTickets:
    """In Redis when `ORDERPROC_REDIS_URL` is set, in this process otherwise."""
    local = MemoryTickets(ttl=settings.stream_ticket_seconds)
    if not settings.redis_url:
        return local
    return RedisTickets(
        SharedRedis.from_settings(settings, "tickets", metrics=metrics), local=local
    )


async def redeem_ticket(tickets: StreamTickets, ticket: str) -> TicketHolder:
    """The holder of `ticket` (which is then used up), or `InvalidTicket` (401): what a stream
    that needs a user calls with its `?ticket=`."""
    if not ticket or len(ticket) > MAX_TICKET_LENGTH:
        raise InvalidTicket()
    holder = await tickets.redeem(ticket)
    if holder is None:
        raise InvalidTicket()
    return holder
