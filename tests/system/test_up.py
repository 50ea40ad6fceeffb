"""`orderproc up`: every service in a process of its own (and a redis-server of its own), a
journey through the printed gateway URL and through the services' own ports, then SIGTERM
stops every child."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from orderproc.testing import TEST_SECRET
from tests.system.harness import deposit, register_and_login

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server"),
]

GATEWAY = re.compile(r"^Order Processor \(each service its own process\) on (http://\S+)$", re.M)
LISTED = re.compile(r"^  (users|inventory|orders|gateway|webui|redis)\s+(\S+)$", re.M)
NAMES = ("redis", "users", "inventory", "orders", "gateway", "webui")


def _children(pid: int) -> set[int]:
    """Processes whose parent is `pid` (from /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.add(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _events_until(
    client: httpx.Client, path: str, params: dict[str, str], wanted: str
) -> list[str]:
    """The stream's lines up to the first `wanted` one (the read times out if none comes)."""
    lines: list[str] = []
    with client.stream("GET", path, params=params) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        for line in stream.iter_lines():
            lines.append(line)
            if line == wanted:
                return lines
    raise AssertionError(f"{path} ended before {wanted!r}: {lines[-5:]}")


class Up:
    def __init__(self, data_dir: Path) -> None:
        self.log = data_dir / "up.log"
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("ORDERPROC_")  # a developer's own settings stay out
        }
        env.update(
            ORDERPROC_JWT_SECRET=TEST_SECRET,
            ORDERPROC_PASSWORD_HASH_PROFILE="fast-insecure-for-tests",
            ORDERPROC_RATE_LIMIT_ENABLED="false",
            ORDERPROC_LOGIN_BLOCK_ENABLED="false",
            ORDERPROC_PASSWORD_HASH_WORKERS="1",
            ORDERPROC_CANDLE_BACKFILL="false",  # seconds of CPU the journey does not need
        )
        data_dir.mkdir(parents=True, exist_ok=True)
        self._out = self.log.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "orderproc.cli", "up", "--port", "0", "--data-dir", data_dir],
            env=env,
            stdout=self._out,
            stderr=subprocess.STDOUT,
        )
        self.gateway = ""
        self.listed: dict[str, str] = {}

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log.read_text()
            if self.process.poll() is not None:
                raise AssertionError(f"up exited with {self.process.returncode}:\n{text[-4000:]}")
            found = GATEWAY.search(text)
            if found:
                self.gateway = found.group(1)
                self.listed = dict(LISTED.findall(text))
                return
            time.sleep(0.1)
        raise AssertionError(f"up did not start:\n{self.log.read_text()[-4000:]}")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)
        self._out.close()


@pytest.fixture
def up(tmp_path: Path) -> Iterator[Up]:
    started = Up(tmp_path / "data")
    try:
        started.wait_ready()
        yield started
    finally:
        started.close()


def test_up_runs_every_service_in_its_own_process_and_sigterm_stops_them_all(up: Up) -> None:
    assert set(up.listed) == set(NAMES), up.listed
    children = _children(up.process.pid)
    assert len(children) == len(NAMES)
    for name in ("users", "inventory", "orders", "webui"):
        health = httpx.get(f"{up.listed[name]}/health", timeout=5, trust_env=False)
        assert health.json() == {"status": "ok", "service": name}

    with httpx.Client(base_url=up.gateway, timeout=15, trust_env=False) as client:
        ready = client.get("/ready")  # the gateway asks every service
        assert ready.status_code == 200, ready.text
        auth = register_and_login(client, "up_trader")
        deposit(client, auth, "1000.00", "up-deposit-1")
        bought = client.post(
            "/api/v1/orders",
            headers={**auth, "Idempotency-Key": "up-buy-1"},
            json={"asset_id": "BTC", "order_type": "market_buy", "notional": "100.00"},
        )
        assert bought.status_code == 201, bought.text
        balance = client.get("/api/v1/balance", headers=auth).json()
        assert Decimal(balance["current_balance"]) < 1000
        half = str((Decimal(bought.json()["data"]["quantity"]) / 2).quantize(Decimal("1e-8")))

    # Each service answers its own routes on its own port, with the same token and store.
    with httpx.Client(base_url=up.listed["orders"], timeout=15, trust_env=False) as orders:
        sold = orders.post(
            "/api/v1/orders",
            headers={**auth, "Idempotency-Key": "up-sell-1"},
            json={"asset_id": "btc", "order_type": "market_sell", "quantity": half},
        )
        assert sold.status_code == 201, sold.text
        assert orders.get("/api/v1/auth/profile", headers=auth).status_code == 404  # not its
    users = httpx.get(f"{up.listed['users']}/api/v1/balance", headers=auth, trust_env=False)
    assert users.status_code == 200
    assert "/api/v1/orders" not in httpx.get(f"{up.listed['users']}/openapi.json").text
    page = httpx.get(f"{up.gateway}/market", timeout=15, trust_env=False)
    assert page.status_code == 200
    assert "BTC" in page.text  # the gateway asked the web UI, which asked the gateway

    # A ticket from the orders service opens the inventory service's stream (Redis holds it),
    # through the gateway, which passes the events on as they come; the web UI's stream too.
    with httpx.Client(base_url=up.gateway, timeout=15, trust_env=False) as client:
        ticket = client.post("/api/v1/stream/ticket", headers=auth)
        assert ticket.status_code == 201, ticket.text
        params = {"assets": "BTC", "ticket": ticket.json()["ticket"]}
        assert _events_until(client, "/api/v1/stream/prices", params, "event: tick")
        again = client.get("/api/v1/stream/prices", params=params)  # used up
        assert again.status_code == 401
        assert _events_until(client, "/live/prices", {"asset": "BTC"}, "event: p-BTC")

    log = up.log.read_text()
    for name in NAMES[1:]:
        assert re.search(rf"^{name}\s+\| ", log, re.M), f"no line from {name}"

    up.process.send_signal(signal.SIGTERM)
    assert up.process.wait(60) == 0
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in children if _alive(pid)]
