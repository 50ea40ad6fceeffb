"""Prometheus metrics, one registry per app so tests and services never collide.

What the hot paths record is resolved once: the money counter's children by kind, and lock
waits as plain integers (an uncontended lock, the common case, adds one to a list item). What
can be read when Prometheus scrapes is read then: the process, the interpreter, the age of the
newest price and each circuit breaker's state. The list of metrics is in docs/operations.md.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any, Literal

from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from orderproc.common.breaker import BreakerState, CircuitBreaker

__all__ = ["CONTENT_TYPE_LATEST", "LockWaits", "Metrics", "MoneyKind", "MoneyOperations"]

MoneyKind = Literal["deposit", "withdraw", "buy", "sell", "fee"]
MONEY_KINDS: tuple[MoneyKind, ...] = ("deposit", "withdraw", "buy", "sell", "fee")

BREAKER_STATES: dict[BreakerState, int] = {"closed": 0, "half_open": 1, "open": 2}


class MoneyOperations:
    """`orderproc_money_operations_total` by kind, each child resolved once: `count(kind)` is a
    dict lookup and a counter increment (about 0.4 µs). Without a counter (the use cases' default,
    for tests that build them by hand) it counts into one that no registry exposes."""

    def __init__(self, counter: Counter | None = None) -> None:
        if counter is None:
            counter = _money_counter(registry=None)
        self._children = {kind: counter.labels(kind) for kind in MONEY_KINDS}

    def count(self, kind: MoneyKind) -> None:
        """One committed money movement of `kind` (never for a replay or a rejection)."""
        self._children[kind].inc()


def _money_counter(registry: CollectorRegistry | None) -> Counter:
    return Counter(
        "orderproc_money_operations_total",
        "Committed money movements by kind: deposits, withdrawals, filled buys and sells, "
        "and the fees charged on them; replays of an idempotent retry and rejections not counted",
        ["kind"],
        registry=registry,
    )


class LockWaits:
    """Time spent waiting for the per-user lock, and the waits that ended in a timeout.

    Kept as integers and exposed as a histogram when scraped: an uncontended lock (no wait at
    all, the common case) costs one list increment instead of a `Histogram.observe` (~0.7 µs).
    Only the event loop's thread records, so no lock is needed."""

    BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

    def __init__(self) -> None:
        self._counts = [0] * (len(self.BUCKETS) + 1)  # the last one is +Inf
        self.seconds = 0.0
        """Every wait added up."""
        self.timeouts = 0

    def at_once(self) -> None:
        """A lock taken without waiting."""
        self._counts[0] += 1

    def waited(self, seconds: float) -> None:
        """A lock taken after waiting `seconds`."""
        self._counts[bisect_left(self.BUCKETS, seconds)] += 1
        self.seconds += seconds

    def timed_out(self, seconds: float) -> None:
        """A wait of `seconds` given up with `LockTimeout`; it counts as a wait too."""
        self.waited(seconds)
        self.timeouts += 1

    @property
    def count(self) -> int:
        """Waits recorded, timed out or not."""
        return sum(self._counts)

    def describe(self) -> Iterable[Metric]:
        return self._families(with_samples=False)

    def collect(self) -> Iterable[Metric]:
        return self._families(with_samples=True)

    def _families(self, *, with_samples: bool) -> Iterator[Metric]:
        wait = HistogramMetricFamily(
            "orderproc_lock_wait_seconds",
            "Time spent waiting for a per-user lock (deposits, withdrawals, orders), "
            "including waits that timed out",
        )
        timeouts = CounterMetricFamily(
            "orderproc_lock_timeouts_total",
            "Waits for a per-user lock given up after the lock timeout (answered 409)",
        )
        if with_samples:
            cumulative, buckets = 0, []
            for bound, hits in zip((*self.BUCKETS, float("inf")), self._counts, strict=True):
                cumulative += hits
                buckets.append((_le(bound), cumulative))
            wait.add_metric([], buckets, self.seconds)
            timeouts.add_metric([], self.timeouts)
        yield wait
        yield timeouts


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


class _Breakers:
    """Each watched circuit breaker's state and openings, read when scraped."""

    def __init__(self) -> None:
        self.watched: dict[str, CircuitBreaker] = {}

    def describe(self) -> Iterable[Metric]:
        return self._families(())

    def collect(self) -> Iterable[Metric]:
        return self._families(self.watched.items())

    def _families(self, breakers: Iterable[tuple[str, CircuitBreaker]]) -> Iterator[Metric]:
        state = GaugeMetricFamily(
            "orderproc_circuit_breaker_state",
            "Circuit breaker state: 0 closed, 1 half-open (probing), 2 open (calls skipped)",
            labels=["breaker"],
        )
        openings = CounterMetricFamily(
            "orderproc_circuit_breaker_openings_total",
            "Times a circuit breaker went from closed to open",
            labels=["breaker"],
        )
        for name, breaker in breakers:
            state.add_metric([name], BREAKER_STATES[breaker.state])
            openings.add_metric([name], breaker.openings)
        yield state
        yield openings


class _PriceAge:
    """Seconds since the newest price, as of the scrape."""

    def __init__(self, newest: Callable[[], datetime | None], now: Callable[[], datetime]) -> None:
        self._newest, self._now = newest, now

    def describe(self) -> Iterable[Metric]:
        yield self._family()

    def collect(self) -> Iterable[Metric]:
        family = self._family()
        newest = self._newest()
        if newest is not None:
            family.add_metric([], max(0.0, (self._now() - newest).total_seconds()))
        yield family

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "orderproc_price_age_seconds",
            "Seconds since the newest price tick (orders refuse prices older than "
            "ORDERPROC_PRICE_STALE_SECONDS)",
        )


class Metrics:
    def __init__(self, service: str) -> None:
        self.registry = CollectorRegistry()
        # The process (CPU, memory, file descriptors), the interpreter (python_info) and its
        # garbage collector: what prometheus_client's global registry has, on this one.
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.requests = Counter(
            "orderproc_http_requests",
            "HTTP requests by route and status",
            ["service", "method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "orderproc_http_request_seconds",
            "HTTP request latency by route",
            ["service", "method", "route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry,
        )
        self.money = MoneyOperations(_money_counter(self.registry))
        self.lock_waits = LockWaits()
        self.registry.register(self.lock_waits)
        self._breakers = _Breakers()
        self.registry.register(self._breakers)
        self.service = service
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def watch_breaker(self, name: str, breaker: CircuitBreaker) -> None:
        """Expose `breaker`'s state as `orderproc_circuit_breaker_state{breaker=name}`."""
        self._breakers.watched[name] = breaker

    def watch_prices(
        self, newest: Callable[[], datetime | None], now: Callable[[], datetime]
    ) -> None:
        """Expose `orderproc_price_age_seconds`: `now() - newest()` at each scrape."""
        self.registry.register(_PriceAge(newest, now))

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:  # label lookups cost more than the observation itself
            children = (
                self.requests.labels(self.service, method, route, str(status)),
                self.latency.labels(self.service, method, route),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
