"""bench/distributed.py's pure helpers: the gateway's upstreams built from the replicas' URLs (read
back the way `orderproc serve gateway` reads them), and the CPU attribution from /proc/PID/stat."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from orderproc.common.settings import Settings
from orderproc.gateway.proxy import upstreams_from_settings
from orderproc.gateway.routes import Service
from orderproc.gateway.upstream import Replicas

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """bench/distributed.py, which imports its sibling run.py; both leave sys.modules after."""
    monkeypatch.syspath_prepend(str(BENCH))
    fresh = [name for name in ("distributed", "run") if name not in sys.modules]
    import distributed

    yield distributed
    for name in fresh:
        sys.modules.pop(name, None)


def test_the_upstreams_list_each_replica_and_the_gateway_reads_them_back(
    bench: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    orders = ["http://127.0.0.1:8103", "http://127.0.0.1:8104"]
    text = bench.gateway_upstreams(
        {
            "users": ["http://127.0.0.1:8101"],
            "inventory": ["http://127.0.0.1:8102"],
            "orders": orders,
        }
    )
    monkeypatch.setenv("ORDERPROC_GATEWAY_UPSTREAMS", text)
    upstreams = upstreams_from_settings(Settings())
    assert upstreams == {
        Service.USERS: "http://127.0.0.1:8101",
        Service.INVENTORY: "http://127.0.0.1:8102",
        Service.ORDERS: ",".join(orders),
        Service.WEBUI: bench.DEAD_WEBUI,
    }
    assert [member.base_url for member in Replicas.parse(upstreams[Service.ORDERS]).members] == (
        orders
    )


def test_a_given_web_ui_is_kept(bench: ModuleType) -> None:
    text = bench.gateway_upstreams({"users": ["http://a:1"]}, webui="http://b:2")
    assert text == '{"users": "http://a:1", "webui": "http://b:2"}'


def test_cpu_ticks_are_read_after_the_command_name_and_reaped_children_count_on_request(
    bench: ModuleType,
) -> None:
    # pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime
    # stime cutime cstime ...; a command name may hold spaces and parentheses.
    stat = "4242 (postgres: a (b) c) S 1 4242 4242 0 -1 4194560 10 0 0 0 70 30 500 25 20 0 1"
    assert bench.stat_ticks(stat) == 100
    assert bench.stat_ticks(stat, reaped=True) == 625


def test_this_process_is_read_and_a_gone_one_counts_zero(bench: ModuleType) -> None:
    own = Path(f"/proc/{os.getpid()}/stat").read_text()
    ticks = os.sysconf("SC_CLK_TCK")
    assert bench.group_seconds([os.getpid()]) >= bench.stat_ticks(own) / ticks
    assert bench.group_seconds([2**22 + 1]) == 0  # above Linux's largest pid


def test_cpu_per_request_per_group_and_in_total(bench: ModuleType) -> None:
    before = {"gateway": 1.0, "orders": 2.0, "postgres": 5.0}
    after = {"gateway": 1.5, "orders": 2.25, "postgres": 4.0, "redis": 0.25}
    per = bench.cpu_per_request(before, after, 1000)
    # A group that shrank (a process gone unreaped) counts 0; a new one from 0.
    assert per == {"gateway": 500, "orders": 250, "postgres": 0, "redis": 250, "total": 1000}


def test_platforms_are_compared_on_their_ratios_to_hello_world(bench: ModuleType) -> None:
    ratios = {
        "embedded-sqlite": {"balance": 0.6, "deposit": 0.25},
        "distributed-1": {"balance": 0.3, "market_buy_c32": 0.1},
    }
    assert bench.compare(ratios, "distributed-1", "embedded-sqlite") == {"balance": 0.5}
    assert bench.compare(ratios, "distributed-2", "distributed-1") == {}
