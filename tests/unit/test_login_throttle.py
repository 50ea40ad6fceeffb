"""The failed-password throttle (ASVS 6.1.1) and the device cookies it trusts, on a clock the
tests move."""

from __future__ import annotations

import pytest

from orderproc.common.login_throttle import (
    DisabledLoginThrottle,
    InMemoryLoginThrottle,
    LoginAttempt,
    LoginVerdict,
)
from orderproc.common.security.devices import DeviceCookies

WINDOW, USER_WINDOW, BLOCK = 900.0, 3600.0, 900.0


class Clock:
    def __init__(self, now: float = 1_768_478_400.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


def throttle_on(clock: Clock, **overrides: int) -> InMemoryLoginThrottle:
    limits = {"pair_limit": 5, "user_limit": 100, "address_limit": 10, "max_keys": 100_000}
    limits.update(overrides)
    return InMemoryLoginThrottle(
        window=WINDOW, user_window=USER_WINDOW, block_seconds=BLOCK, clock=clock, **limits
    )


@pytest.fixture
def throttle(clock: Clock) -> InMemoryLoginThrottle:
    return throttle_on(clock)


def attempt(
    address: str = "198.51.100.1", username: str = "alice", device: str | None = None
) -> LoginAttempt:
    return LoginAttempt(username=username, address=address, device=device)


async def fail(throttle: InMemoryLoginThrottle, times: int, **who: str) -> list[tuple[str, ...]]:
    return [await throttle.record_failure(attempt(**who)) for _ in range(times)]


class TestPairs:
    async def test_five_failures_block_that_pair_only(self, throttle: InMemoryLoginThrottle):
        started = await fail(throttle, 5)
        assert started == [(), (), (), (), ("pair",)]
        assert await throttle.check(attempt()) == LoginVerdict("pair", 900)
        assert await throttle.check(attempt(address="198.51.100.2")) == LoginVerdict()
        assert await throttle.check(attempt(username="bob")) == LoginVerdict()
        assert await throttle.address_blocked("198.51.100.1") == 0

    async def test_the_block_ends_and_retry_after_counts_down(
        self, throttle: InMemoryLoginThrottle, clock: Clock
    ):
        await fail(throttle, 5)
        clock.advance(600.5)
        assert await throttle.check(attempt()) == LoginVerdict("pair", 300)
        clock.advance(300)
        assert await throttle.check(attempt()) == LoginVerdict()
        assert await fail(throttle, 4) == [(), (), (), ()]  # a fresh count after the block

    async def test_failures_in_an_expired_window_are_forgotten(
        self, throttle: InMemoryLoginThrottle, clock: Clock
    ):
        await fail(throttle, 4)
        clock.advance(WINDOW)
        assert await fail(throttle, 4) == [(), (), (), ()]
        assert await throttle.check(attempt()) == LoginVerdict()

    async def test_a_right_password_clears_the_pair(self, throttle: InMemoryLoginThrottle):
        await fail(throttle, 4)
        await throttle.record_success(attempt())
        assert await fail(throttle, 4) == [(), (), (), ()]

    async def test_a_device_is_its_own_client_even_at_the_attacker_s_address(
        self, throttle: InMemoryLoginThrottle
    ):
        await fail(throttle, 5)  # someone behind the same NAT, without the owner's cookie
        assert (await throttle.check(attempt())).refused == "pair"
        assert await throttle.check(attempt(device="owners-laptop")) == LoginVerdict()
        await fail(throttle, 5, device="stolen")
        assert (await throttle.check(attempt(device="stolen"))).refused == "pair"


class TestUsernames:
    async def test_past_the_hourly_limit_only_known_devices_are_evaluated(
        self, throttle: InMemoryLoginThrottle, clock: Clock
    ):
        for n in range(20):
            await fail(throttle, 5, address=f"198.51.100.{n}")
            clock.advance(60)
        assert await throttle.check(attempt(address="203.0.113.9")) == LoginVerdict()
        assert await fail(throttle, 1, address="198.51.100.99") == [("user",)]  # the 101st
        refused = await throttle.check(attempt(address="203.0.113.9"))
        assert refused == LoginVerdict("user", int(USER_WINDOW - 20 * 60))
        assert await throttle.check(attempt(address="203.0.113.9", device="d1")) == LoginVerdict()
        assert await throttle.check(attempt(username="bob")) == LoginVerdict()
        clock.advance(USER_WINDOW - 20 * 60)
        assert await throttle.check(attempt(address="203.0.113.9")) == LoginVerdict()

    async def test_a_success_does_not_reset_the_username_s_count(
        self, throttle: InMemoryLoginThrottle
    ):
        for n in range(21):
            await fail(throttle, 5 if n < 20 else 1, address=f"198.51.100.{n}")
        await throttle.record_success(attempt(device="d1"))
        assert (await throttle.check(attempt(address="203.0.113.9"))).refused == "user"


class TestAddresses:
    async def test_failures_for_many_usernames_block_the_address(
        self, throttle: InMemoryLoginThrottle
    ):
        started = [await throttle.record_failure(attempt(username=f"u{n}")) for n in range(10)]
        assert started[-1] == ("address",)
        assert not any(started[:-1])
        assert await throttle.address_blocked("198.51.100.1") == 900
        assert await throttle.check(attempt(username="someone")) == LoginVerdict("address", 900)
        assert await throttle.address_blocked("198.51.100.2") == 0

    async def test_an_owner_s_own_typos_never_block_their_address(self, clock: Clock):
        throttle = throttle_on(clock, address_limit=2)
        for _ in range(10):  # ten rounds of five typos, each waiting out its block
            await fail(throttle, 5)
            assert (await throttle.check(attempt())).refused == "pair"
            clock.advance(BLOCK)
        assert await throttle.address_blocked("198.51.100.1") == 0

    async def test_repeated_failures_for_one_username_count_once(
        self, throttle: InMemoryLoginThrottle
    ):
        for n in range(9):
            await fail(throttle, 4, username=f"u{n}")
        assert await throttle.address_blocked("198.51.100.1") == 0
        await fail(throttle, 1, username="u9")
        assert await throttle.address_blocked("198.51.100.1") == 900


class TestBoundedMemory:
    async def test_a_flood_of_fresh_keys_does_not_evict_a_victim_s_count(self, clock: Clock):
        throttle = throttle_on(clock, max_keys=50, user_limit=1000)
        await fail(throttle, 4)
        for n in range(500):
            await throttle.record_failure(attempt(address=f"10.0.{n // 250}.{n % 250}"))
        assert await fail(throttle, 1) == [("pair",)]
        assert len(throttle._pairs) <= 50
        assert len(throttle._users) <= 50


async def test_the_disabled_throttle_refuses_nothing() -> None:
    throttle = DisabledLoginThrottle()
    for _ in range(50):
        assert await throttle.record_failure(attempt()) == ()
    assert await throttle.check(attempt()) == LoginVerdict()
    assert await throttle.address_blocked("198.51.100.1") == 0


class TestDeviceCookies:
    SECRET = "x" * 48

    def cookies(self, clock: Clock, secret: str = SECRET) -> DeviceCookies:
        return DeviceCookies(secret=secret, max_age_seconds=90 * 86400, clock=clock)

    def test_a_cookie_names_its_username_and_a_device(self, clock: Clock) -> None:
        cookies = self.cookies(clock)
        value = cookies.issue("alice")
        device = cookies.device_for(value, "alice")
        assert device is not None
        assert device == value.split(".")[3]
        assert cookies.device_for(cookies.issue("alice"), "alice") != device
        assert cookies.device_for(value, "bob") is None
        assert self.cookies(clock, secret="y" * 48).device_for(value, "alice") is None

    def test_a_changed_or_malformed_value_is_refused(self, clock: Clock) -> None:
        cookies = self.cookies(clock)
        value = cookies.issue("alice")
        head, _, mac = value.rpartition(".")
        swapped = "A" if mac[0] != "A" else "B"
        for bad in (
            f"{head}.{swapped}{mac[1:]}",
            value.replace(".alice.", ".alicf."),
            value.replace(value.split(".")[2], str(int(value.split(".")[2]) + 1)),
            value + "x",
            "",
            "v1.alice",
            "v1.alice.1.2.3.4",
            "é" * 100,
            value * 3,
        ):
            assert cookies.device_for(bad, "alice") is None, bad

    def test_it_expires_and_cannot_come_from_the_future(self, clock: Clock) -> None:
        cookies = self.cookies(clock)
        value = cookies.issue("alice")
        clock.advance(90 * 86400)
        assert cookies.device_for(value, "alice") is not None
        clock.advance(1)
        assert cookies.device_for(value, "alice") is None
        clock.advance(-90 * 86400 - 1 - 3600)
        assert cookies.device_for(value, "alice") is None
