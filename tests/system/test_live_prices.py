"""A fresh install with no network: about a hundred assets, BTC's price moves within seconds,
candles come back for it, and a restart keeps the catalog and its candles."""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from tests.system.harness import ServerProcess

pytestmark = pytest.mark.system


def btc_price(client: httpx.Client) -> str:
    return str(client.get("/api/v1/inventory/assets/BTC").json()["data"]["price_usd"])


def test_prices_move_and_candles_follow_across_a_restart(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, ORDERPROC_PRICE_TICK_SECONDS="0.5").start()
    try:
        with httpx.Client(base_url=server.url) as client:
            listing = client.get("/api/v1/inventory/assets", params={"limit": 250}).json()
            assert 95 <= listing["total_count"] <= 110
            first = btc_price(client)
            deadline = time.monotonic() + 10
            while btc_price(client) == first and time.monotonic() < deadline:
                time.sleep(0.2)
            assert btc_price(client) != first, "BTC did not move within 10 s"
            candles = client.get("/api/v1/inventory/assets/BTC/candles").json()["data"]
            assert candles
            last = {k: Decimal(candles[-1][k]) for k in ("low", "close", "high")}
            assert last["low"] <= last["close"] <= last["high"]
    finally:
        server.stop()
    restarted = ServerProcess(tmp_path, ORDERPROC_PRICE_TICK_SECONDS="0.5").start()
    try:
        with httpx.Client(base_url=restarted.url) as client:
            kept = client.get("/api/v1/inventory/assets/BTC/candles").json()["data"]
            assert kept[0]["t"] == candles[0]["t"]
            total = client.get("/api/v1/inventory/assets").json()["total_count"]
            assert total == listing["total_count"]
    finally:
        restarted.stop()
