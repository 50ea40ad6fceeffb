"""CPU per request of the hot routes inside one process, with no HTTP and no network.

    .venv/bin/python bench/inprocess.py [--requests 3000] [--rounds 3]

Builds the embedded app on a temporary SQLite database (the real settings, except cheap password
hashing and no rate limits or daily limits in the way), then calls the ASGI app directly, one
request at a time, and prints the process CPU time per request (user + system) for `GET
/balance`, deposits, withdrawals and market buys (and `/health` and a catalog read for the
router's share, and BTC's 1 m and 1 h candles), best and worst of the rounds. It isolates the
framework and application cost from the HTTP server and the load generator, so two versions of
the code (say, two FastAPI releases) can be compared in one sitting: run it under each
interpreter/venv in turn, A, B, A. The end-to-end figures come from `bench/run.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

import orderproc
from orderproc.gateway.app import create_app
from orderproc.testing import test_settings

Scope = dict[str, Any]


async def call(app: Any, method: str, path: str, headers: list[tuple[bytes, bytes]], body: bytes):
    status, _, answer = await exchange(app, method, path, headers, body)
    return status, answer


async def exchange(
    app: Any,
    method: str,
    path: str,
    headers: list[tuple[bytes, bytes]],
    body: bytes = b"",
    *,
    client: tuple[str, int] = ("127.0.0.1", 50000),
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """One request straight into the ASGI app: (status, headers, body)."""
    path, _, query = path.partition("?")
    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"bench"), *headers],
        "client": client,
        "server": ("127.0.0.1", 8080),
        "state": {},
    }
    sent = False
    status = 0
    answer_headers: list[tuple[bytes, bytes]] = []
    chunks: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status, answer_headers
        if message["type"] == "http.response.start":
            status = message["status"]
            answer_headers = list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, answer_headers, b"".join(chunks)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    import fastapi
    import starlette

    print(
        f"orderproc from {Path(orderproc.__file__).parent}; FastAPI {fastapi.__version__}, "
        f"Starlette {starlette.__version__}, Python {sys.version.split()[0]}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        settings = test_settings(
            Path(tmp),
            deposit_daily_limit="1000000000",
            withdraw_daily_limit="1000000000",
            login_block_enabled=False,
        )
        # Built as `orderproc serve` builds it: the lifespan makes the runtime and starts the
        # price ticker (a tick every 2 s goes on during the measurement, as in a server).
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            await run(app, args.requests, args.rounds)


async def run(app: Any, requests: int, rounds: int) -> None:
    json_headers = [(b"content-type", b"application/json")]
    user = {
        "username": "bench",
        "email": "bench@example.com",
        "password": "correct horse battery staple",
        "first_name": "Bench",
        "last_name": "Mark",
    }
    status, body = await call(
        app, "POST", "/api/v1/auth/register", json_headers, orjson.dumps(user)
    )
    assert status == 201, body
    login = orjson.dumps({"username": "bench", "password": user["password"]})
    status, body = await call(app, "POST", "/api/v1/auth/login", json_headers, login)
    assert status == 200, body
    auth = [(b"authorization", f"Bearer {orjson.loads(body)['access_token']}".encode())]
    big = orjson.dumps({"amount": "1000000.00"})
    for _ in range(20):
        status, body = await call(app, "POST", "/api/v1/balance/deposit", auth + json_headers, big)
        assert status == 201, body

    def keyed() -> list[tuple[bytes, bytes]]:
        return [*auth, *json_headers, (b"idempotency-key", secrets.token_hex(8).encode())]

    workloads: dict[str, tuple[str, str, Any, bytes, int]] = {
        "health": ("GET", "/health", list, b"", 200),
        "inventory_btc": ("GET", "/api/v1/inventory/assets/BTC", list, b"", 200),
        "candles_1m": ("GET", "/api/v1/inventory/assets/BTC/candles", list, b"", 200),
        "candles_1h": ("GET", "/api/v1/inventory/assets/BTC/candles?interval=1h", list, b"", 200),
        "balance": ("GET", "/api/v1/balance", lambda: auth, b"", 200),
        "deposit": ("POST", "/api/v1/balance/deposit", keyed, b'{"amount":"1.00"}', 201),
        "withdraw": ("POST", "/api/v1/balance/withdraw", keyed, b'{"amount":"1.00"}', 201),
        "market_buy": (
            "POST",
            "/api/v1/orders",
            keyed,
            b'{"order_type":"market_buy","asset_id":"BTC","notional":"1.00"}',
            201,
        ),
    }
    print(f"{requests} requests a round, {rounds} rounds; CPU µs per request")
    for name, (method, path, headers, body, expected) in workloads.items():
        figures = []
        for _ in range(rounds):
            prepared = [headers() for _ in range(requests)]
            gc.collect()
            start = time.process_time()
            for hdrs in prepared:
                status, answer = await call(app, method, path, hdrs, body)
                if status != expected:
                    raise SystemExit(f"{name}: {status} {answer[:200]!r}")
            figures.append((time.process_time() - start) / requests * 1e6)
        shown = " ".join(f"{f:.0f}" for f in figures)
        print(f"{name:12} min {min(figures):6.0f}  max {max(figures):6.0f}   ({shown})")


if __name__ == "__main__":
    asyncio.run(main())
