"""The circuit breaker in front of Redis, on a clock the test moves."""

from __future__ import annotations

import pytest

from orderproc.common.breaker import CircuitBreaker


class ManualClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def breaker(clock: ManualClock) -> CircuitBreaker:
    return CircuitBreaker(failure_threshold=3, cool_down=10, clock=clock)


def open_it(breaker: CircuitBreaker) -> None:
    for _ in range(breaker.failure_threshold):
        breaker.record_failure()


class TestClosed:
    def test_a_new_breaker_is_closed_and_lets_calls_through(self, breaker: CircuitBreaker) -> None:
        assert breaker.state == "closed"
        assert breaker.allow()

    def test_it_opens_on_the_nth_consecutive_failure_and_says_so_once(
        self, breaker: CircuitBreaker
    ) -> None:
        assert [breaker.record_failure() for _ in range(3)] == [False, False, True]
        assert breaker.state == "open"
        assert breaker.openings == 1

    def test_a_success_resets_the_count_of_failures(self, breaker: CircuitBreaker) -> None:
        breaker.record_failure()
        breaker.record_failure()
        assert not breaker.record_success()
        breaker.record_failure()
        breaker.record_failure()
        assert breaker.state == "closed"


class TestOpen:
    def test_an_open_breaker_refuses_calls_until_the_cool_down_is_over(
        self, breaker: CircuitBreaker, clock: ManualClock
    ) -> None:
        open_it(breaker)
        clock.now += 9.9
        assert not breaker.allow()
        clock.now += 0.1
        assert breaker.state == "half_open"

    def test_a_late_failure_does_not_extend_the_cool_down(
        self, breaker: CircuitBreaker, clock: ManualClock
    ) -> None:
        open_it(breaker)
        clock.now += 5
        assert not breaker.record_failure()
        clock.now += 5
        assert breaker.allow()


class TestHalfOpen:
    def test_one_probe_at_a_time_is_let_through(
        self, breaker: CircuitBreaker, clock: ManualClock
    ) -> None:
        open_it(breaker)
        clock.now += 10
        assert breaker.allow()
        assert not breaker.allow()

    def test_a_successful_probe_closes_the_breaker(
        self, breaker: CircuitBreaker, clock: ManualClock
    ) -> None:
        open_it(breaker)
        clock.now += 10
        assert breaker.allow()
        assert breaker.record_success()
        assert breaker.state == "closed"
        assert breaker.allow()
        assert breaker.allow()

    def test_a_failed_probe_opens_it_for_another_cool_down_without_a_new_opening(
        self, breaker: CircuitBreaker, clock: ManualClock
    ) -> None:
        open_it(breaker)
        clock.now += 10
        assert breaker.allow()
        assert not breaker.record_failure()
        assert breaker.state == "open"
        assert breaker.openings == 1
        clock.now += 9
        assert not breaker.allow()
        clock.now += 1
        assert breaker.allow()

    def test_a_probe_that_never_reports_is_given_up_after_a_cool_down(
        self, breaker: CircuitBreaker, clock: ManualClock
    ) -> None:
        open_it(breaker)
        clock.now += 10
        assert breaker.allow()
        clock.now += 10
        assert breaker.allow()


def test_nonsense_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="failure_threshold"):
        CircuitBreaker(failure_threshold=0)
    with pytest.raises(ValueError, match="cool_down"):
        CircuitBreaker(cool_down=-1)
