"""Stream tickets in memory (the embedded mode's, and every process's fallback) and in a real
Redis (every process of the platform): single use, expiry, and the fallback when Redis is away."""

from __future__ import annotations

import pytest

from orderproc.common.redis_shared import SharedRedis
from orderproc.common.resp import LeanRedis
from orderproc.common.stream_tickets import (
    MemoryTickets,
    RedisTickets,
    TicketHolder,
    redeem_ticket,
)
from orderproc.errors import InvalidTicket
from tests.support.redis_server import RedisServer

ALICE = TicketHolder("u-alice", "customer")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class TestInMemory:
    async def test_a_ticket_is_redeemed_once(self) -> None:
        tickets = MemoryTickets(ttl=30)
        issued = await tickets.issue(ALICE)
        assert issued.expires_in == 30
        assert len(issued.ticket) >= 32
        assert await redeem_ticket(tickets, issued.ticket) == ALICE
        with pytest.raises(InvalidTicket):
            await redeem_ticket(tickets, issued.ticket)

    async def test_a_ticket_expires(self) -> None:
        clock = Clock()
        tickets = MemoryTickets(ttl=30, clock=clock)
        early, late = (await tickets.issue(ALICE)).ticket, (await tickets.issue(ALICE)).ticket
        clock.now += 29.9
        assert await tickets.redeem(early) == ALICE
        clock.now += 0.1
        assert await tickets.redeem(late) is None

    async def test_expired_tickets_are_dropped_as_new_ones_come(self) -> None:
        clock = Clock()
        tickets = MemoryTickets(ttl=30, clock=clock)
        for _ in range(100):
            await tickets.issue(ALICE)
        clock.now += 31
        fresh = await tickets.issue(ALICE)
        assert len(tickets._tickets) == 1
        assert await tickets.redeem(fresh.ticket) == ALICE

    @pytest.mark.parametrize("made_up", ["", "x" * 65, "not-a-ticket"])
    async def test_anything_else_is_refused(self, made_up: str) -> None:
        with pytest.raises(InvalidTicket):
            await redeem_ticket(MemoryTickets(ttl=30), made_up)


def redis_tickets(server: RedisServer, *, ttl: int = 30) -> RedisTickets:
    client = LeanRedis.from_url(server.url, timeout=1.0)
    return RedisTickets(SharedRedis(client, "tickets"), local=MemoryTickets(ttl=ttl))


@pytest.mark.usefixtures("redis")  # an empty database
class TestInRedis:
    async def test_a_ticket_from_one_process_is_redeemed_once_by_another(
        self, redis_server: RedisServer
    ) -> None:
        orders, inventory = redis_tickets(redis_server), redis_tickets(redis_server)
        try:
            issued = await orders.issue(ALICE)
            assert await redeem_ticket(inventory, issued.ticket) == ALICE
            with pytest.raises(InvalidTicket):
                await redeem_ticket(orders, issued.ticket)
        finally:
            await orders.aclose()
            await inventory.aclose()

    async def test_redis_holds_a_hash_of_the_ticket_until_it_expires(
        self, redis_server: RedisServer
    ) -> None:
        tickets = redis_tickets(redis_server, ttl=30)
        try:
            issued = await tickets.issue(ALICE)
            client = tickets.shared.client
            keys = await client.execute(b"KEYS", b"orderproc:stream-ticket:*")
            assert keys
            assert all(issued.ticket.encode() not in key for key in keys)
            ttls = [await client.execute(b"PTTL", key) for key in keys]
            assert all(0 < ttl <= 30_000 for ttl in ttls)
            assert await tickets.redeem(issued.ticket) == ALICE
            assert await client.execute(b"EXISTS", *keys) == len(keys) - 1
        finally:
            await tickets.aclose()

    async def test_a_ticket_past_its_life_is_gone(self, redis_server: RedisServer) -> None:
        tickets = redis_tickets(redis_server, ttl=30)
        try:
            issued = await tickets.issue(ALICE)
            client = tickets.shared.client
            for key in await client.execute(b"KEYS", b"orderproc:stream-ticket:*"):
                await client.execute(b"PEXPIREAT", key, 1)  # its life ended long ago
            assert await tickets.redeem(issued.ticket) is None
        finally:
            await tickets.aclose()

    async def test_with_redis_away_the_process_issues_and_redeems_its_own(
        self, private_redis_server: RedisServer
    ) -> None:
        tickets = redis_tickets(private_redis_server)
        try:
            private_redis_server.stop()
            issued = await tickets.issue(ALICE)
            assert await tickets.redeem(issued.ticket) == ALICE
            assert await tickets.redeem(issued.ticket) is None
            assert tickets.shared.fallbacks >= 2
        finally:
            await tickets.aclose()
