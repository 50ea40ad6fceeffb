"""What one page of a list costs, for a light and a heavy user (issue #12 part 4).

    .venv/bin/python bench/list_pages.py [--rows 200000] [--repeat 50]

Builds a SQLite database with the platform's own composition root, registers a light user (60
cash ledger entries) and a heavy one (`--rows` entries, written straight into the table), and
asks the gateway app, in process, for pages of `GET /api/v1/balance/transactions`: the first
page, a page deep in the ledger by cursor, a page filtered by a type that is rare, and the
legacy `offset=10000`. Prints the process CPU time per request (median of `--repeat`), which is
the time the event loop is busy with it. The same script runs against an older tree (PYTHONPATH
to its `src`) for a before and after; there, the deep page is asked for by offset.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from orderproc.common.clock import to_micros
from orderproc.gateway.app import create_app
from orderproc.runtime import build_runtime
from orderproc.testing import test_settings

LEDGER = "/api/v1/balance/transactions"
PASSWORD = "correct horse battery staple"


async def register(client: httpx.AsyncClient, username: str) -> dict[str, str]:
    body = {
        "username": username,
        "email": f"{username}@example.com",
        "password": PASSWORD,
        "first_name": "Ada",
        "last_name": "Lovelace",
    }
    (await client.post("/api/v1/auth/register", json=body)).raise_for_status()
    credentials = {"username": username, "password": PASSWORD}
    login = await client.post("/api/v1/auth/login", json=credentials)
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


def fill(path: Path, username: str, rows: int) -> None:
    """`rows` ledger entries for the user, one a second back from now, every 500th a fee."""
    conn = sqlite3.connect(path)
    [user_id] = conn.execute("SELECT user_id FROM users WHERE username = ?", (username,)).fetchone()
    now = datetime.now(UTC)
    conn.executemany(
        "INSERT INTO cash_ledger (entry_id, user_id, kind, amount_cents, balance_after_cents, "
        "reference_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            (
                f"{username}-{n:09d}",
                user_id,
                "fee" if n % 500 == 0 else "deposit",
                100,
                100 * (rows - n),
                None,
                to_micros(now - timedelta(seconds=n)),
            )
            for n in range(rows)
        ),
    )
    conn.commit()
    conn.close()


async def cpu_per_request(
    client: httpx.AsyncClient, auth: dict[str, str], params: dict[str, Any], repeat: int
) -> float:
    samples = []
    for _ in range(repeat):
        started = time.process_time()
        response = await client.get(LEDGER, headers=auth, params=params)
        samples.append(time.process_time() - started)
        assert response.status_code == 200, response.text
    return statistics.median(samples) * 1000


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data:
        settings = test_settings(Path(data))
        runtime = await build_runtime(settings)
        app = create_app(settings, runtime=runtime)
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 1))
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            light = await register(client, "light")
            heavy = await register(client, "heavy")
            database = Path(settings.resolved_database_url.removeprefix("sqlite:///"))
            fill(database, "light", 60)
            fill(database, "heavy", args.rows)
            first = (await client.get(LEDGER, headers=heavy, params={"limit": 50})).json()
            keyset = first.get("offset") is None  # an older tree answers offset 0
            deep: dict[str, Any] = {"limit": 50}
            if keyset:  # a cursor near row 100,000: walk to it with big pages
                params: dict[str, Any] = {"limit": 250}
                for _ in range(min(args.rows, 100_000) // 250):
                    page = (await client.get(LEDGER, headers=heavy, params=params)).json()
                    params["cursor"] = page["next_cursor"]
                deep["cursor"] = params["cursor"]
            else:
                deep["offset"] = min(args.rows, 100_000)
            cases = [
                ("light, first page", light, {"limit": 50}),
                ("heavy, first page", heavy, {"limit": 50}),
                (f"heavy, page at row {min(args.rows, 100_000):,}", heavy, deep),
                ("heavy, type=fee (1 in 500)", heavy, {"limit": 50, "transaction_type": "fee"}),
                ("heavy, offset=10000", heavy, {"limit": 50, "offset": 10_000}),
            ]
            print(f"{args.rows:,} rows for the heavy user; CPU ms per request, median of "
                  f"{args.repeat} ({'cursor' if keyset else 'offset'} tree)")  # fmt: skip
            for name, auth, query in cases:
                print(
                    f"  {name:<32} {await cpu_per_request(client, auth, query, args.repeat):8.2f}"
                )
        await runtime.close()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
