"""What a price tick costs, and what the price streams cost per client.

    python bench/ticks.py                        # every part
    python bench/ticks.py --only ticks           # tick CPU and event-loop holds only
    python bench/ticks.py --only stream --clients 500 --window 20
    PYTHONPATH=/tmp/before/src python bench/ticks.py   # the same figures of another tree

Everything is CPU time (`time.thread_time`, or a process's utime + stime from /proc), never
wall time: the box is shared, and a tick's wall time says more about the neighbours than about
the tick.

1. **Tick CPU** at 101 assets (the packaged catalog) and at 1,000 (the catalog plus 899 copies
   under other ids), in process, with the composition the inventory service uses: a SQLite file
   store (the embedded default), the seeded simulator, `PriceTicker.tick_once` and, where the
   tree has it, the price-stream hub listening, and a day of hourly candles in the store for
   every asset (where the tree reads them, its 24 h windows are full, as a day of running
   leaves them). `--ticks` ticks after 5 of warm-up, each on a
   clock 2 s later, from 23:57: the default 200 pass midnight, where every asset's minute, hour
   and day close in one tick. The same seeded ticks run `--runs` times (5), and each tick counts
   with its least CPU over the runs: on a shared box a neighbour's burst doubles a run's
   median, and the least of five runs is the tick's own cost. Prints the minimum, p10, median,
   p90 and max over the ticks, and the same of the ticks that wrote the most candle rows
   (`most_rows`: more than twice the median; the turns after a close).
2. **The longest event-loop hold** during those ticks: every callback the loop runs is timed
   (thread CPU), and the longest one of each tick is kept; prints the median and the max over
   the ticks.
3. **Stream CPU per client per tick**: a real server (`orderproc serve`, every service in one
   process, ticks every `--tick` seconds), and `--clients` real connections from this process
   reading the stream. The server's CPU over a window with the clients connected, minus its CPU
   over a window of the same length without them, divided by ticks and clients. The ticks are
   counted from what one client receives. Run for the API's JSON stream
   (`/api/v1/stream/prices`, when the tree has it) and for the web UI's (`/live/prices`). The
   server runs with default settings except the connection caps raised for 500 clients from
   one address (`ORDERPROC_MAX_CONNECTIONS_PER_ADDRESS=0`,
   `ORDERPROC_STREAM_CONNECTIONS_PER_ADDRESS=100000`), the rate limit off, the access log off,
   no candle backfill at start, and the tick interval; all printed. With 1,000 assets a tick
   is about 150 KB per client: this process, reading 500 streams on one core, falls behind
   and receives fewer ticks than the server makes (it prints how many it got).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import inspect
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

SECRET = "bench-secret-0123456789-abcdefghijklmnopqrstuvwxyz"
URL = re.compile(r"on (http://127\.0\.0\.1:\d+)")


def cpu_of(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- 1 and 2: ticks in process ---------------------------------------------------------------


def catalog_of(size: int) -> list[Any]:
    from orderproc.inventory.domain import load_snapshot

    base = load_snapshot()
    assets = list(base)
    copy = 0
    while len(assets) < size:
        asset = base[copy % len(base)]
        asset_id = f"X{copy:04d}{asset.asset_id}"[:15]
        assets.append(replace(asset, asset_id=asset_id, symbol=asset_id.lower()))
        copy += 1
    return assets[:size]


class LoopHolds:
    """The CPU each event-loop callback takes (`asyncio.Handle._run`, patched while active)."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._original = asyncio.events.Handle._run

    def __enter__(self) -> LoopHolds:
        original, holds = self._original, self

        def timed(handle: asyncio.events.Handle) -> None:
            started = time.thread_time()
            try:
                original(handle)
            finally:
                holds.longest = max(holds.longest, time.thread_time() - started)

        asyncio.events.Handle._run = timed  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.events.Handle._run = self._original  # type: ignore[method-assign]


def tick_costs(size: int, ticks: int, runs: int) -> dict[str, Any]:
    """`runs` runs of the same seeded ticks; each tick's least CPU (and hold) over them."""
    measured = [asyncio.run(_tick_run(size, ticks)) for _ in range(runs)]
    cpu = [min(run[0][n] for run in measured) for n in range(ticks)]
    holds = [min(run[1][n] for run in measured) for n in range(ticks)]
    rows = measured[0][2]
    heavy = [n for n in range(ticks) if rows[n] > 2 * statistics.median(rows)]
    return {
        "assets": size,
        "hub": measured[0][3],
        "runs": runs,
        "cpu_ms": _summary(cpu),
        "hold_ms": _summary(holds),
        # The ticks that wrote the most candle rows (the turns after a close), on their own.
        "most_rows": {
            "rows": f"{min(rows[n] for n in heavy)}-{max(rows)}" if heavy else max(rows),
            "ticks": len(heavy),
            "cpu_ms": _summary([cpu[n] for n in heavy]) if heavy else None,
        },
    }


async def _tick_run(size: int, ticks: int) -> tuple[list[float], list[float], list[int], bool]:
    from orderproc.common.clock import FixedClock
    from orderproc.common.prices import PriceCache
    from orderproc.common.storage.sqlite import SqliteStore
    from orderproc.inventory.pricefeed import SimulatedFeed
    from orderproc.inventory.service import PriceTicker, Retention, load_catalog, seed_catalog

    directory = tempfile.mkdtemp(prefix="bench-ticks-")
    store = SqliteStore(f"{directory}/bench.db")
    await store.migrate()
    await seed_catalog(store, assets=catalog_of(size))
    # Past midnight within the ticks: minutes, an hour and a day close (the most rows written).
    clock = FixedClock(datetime(2026, 5, 1, 23, 57, tzinfo=UTC))
    await _day_of_hours(store, clock.now())
    if "now" in inspect.signature(load_catalog).parameters:
        catalog = await load_catalog(store, PriceCache(), now=clock.now())
    else:
        catalog = await load_catalog(store, PriceCache())
    if hasattr(catalog, "load_hours"):  # each asset's 24 h window, full (inventory/day_window.py)
        await catalog.load_hours(store)
    ticker = PriceTicker(
        feed=SimulatedFeed.from_assets(catalog.assets(), seed=20240218),
        catalog=catalog,
        store=store,
        clock=clock,
        interval=2.0,
        retention=Retention(timedelta(hours=48), timedelta(days=90), timedelta(days=3650)),
    )
    hub = _hub_for(catalog)
    if hub is not None:
        ticker.listeners.append(hub.publish)
    await ticker.resume()
    gc.collect()
    gc.freeze()  # as the server does once started (gateway/app.py)
    cpu: list[float] = []
    holds: list[float] = []
    rows: list[int] = []  # the candle rows each tick wrote
    due, written = ticker.candles.due, []

    def counting(**kwargs: Any) -> Any:
        turn = due(**kwargs)
        written.append(len(turn.rows))
        return turn

    ticker.candles.due = counting  # type: ignore[method-assign]
    for number in range(5 + ticks):
        written.clear()
        clock.advance(seconds=2)
        with LoopHolds() as loop:
            started = time.thread_time()
            # A task of its own, so that each of its steps is a callback the loop runs (and
            # times); this coroutine's own step began before the timing did.
            await asyncio.create_task(ticker.tick_once())
            await asyncio.sleep(0)  # callbacks the tick left behind run here
            spent = time.thread_time() - started
        if number >= 5:
            cpu.append(spent)
            holds.append(loop.longest)
            rows.append(sum(written))
    await store.close()
    return cpu, holds, rows, hub is not None


async def _day_of_hours(store: Any, now: datetime) -> None:
    """The 24 hourly candles before `now`'s hour for every asset, as a day of ticks leaves
    them: a tree that reads them into its 24 h windows rolls full ones at the hour's close."""
    from orderproc.common.storage.records import CandleRecord

    async with store.unit_of_work() as uow:
        assets = await uow.assets.list_all()
    hour = now.replace(minute=0, second=0, microsecond=0)
    rng = random.Random(7)
    rows = []
    for asset in assets:
        price = float(asset.price)
        for back in range(24, 0, -1):
            walk = [price * (1 + rng.gauss(0, 0.004)) for _ in range(4)]
            o, h, lo, c = (Decimal(f"{p:.6g}") for p in (walk[0], max(walk), min(walk), walk[3]))
            rows.append(
                CandleRecord(asset.asset_id, "1h", hour - timedelta(hours=back), o, h, lo, c)
            )
    for first in range(0, len(rows), 5000):
        async with store.unit_of_work() as uow:
            uow.candles.upsert(rows[first : first + 5000])
            await uow.commit()


def _hub_for(catalog: Any) -> Any:
    try:
        from orderproc.common.price_stream import PriceStreamHub
    except ImportError:
        return None
    return PriceStreamHub(assets=catalog.assets)


def _summary(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    return {
        "min": round(ordered[0] * 1000, 2),  # the tick's own cost, least disturbed by the box
        "p10": round(ordered[int(len(ordered) * 0.1)] * 1000, 2),
        "median": round(statistics.median(ordered) * 1000, 2),
        "p90": round(ordered[int(len(ordered) * 0.9)] * 1000, 2),
        "max": round(ordered[-1] * 1000, 2),
    }


# --- 3: streams against a real server --------------------------------------------------------


def start_server(
    data_dir: Path, tick: float
) -> tuple[subprocess.Popen[bytes], str, dict[str, str]]:
    settings = {
        "ORDERPROC_JWT_SECRET": SECRET,
        "ORDERPROC_PRICE_TICK_SECONDS": str(tick),
        "ORDERPROC_PRICE_STALE_SECONDS": str(max(30.0, tick * 4)),
        "ORDERPROC_RATE_LIMIT_ENABLED": "false",
        "ORDERPROC_ACCESS_LOG": "false",
        "ORDERPROC_MAX_CONNECTIONS_PER_ADDRESS": "0",
        "ORDERPROC_STREAM_CONNECTIONS_PER_ADDRESS": "100000",
        # A fresh install backfills years of candles for every asset, minutes of CPU for 1,000
        # assets, which would be counted as the streams' (the quiet window runs after it).
        "ORDERPROC_CANDLE_BACKFILL": "false",
    }
    log = data_dir / "server.log"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "orderproc.cli",
            "serve",
            "--port",
            "0",
            "--data-dir",
            str(data_dir),
        ],
        env={**os.environ, **settings},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = URL.search(log.read_text(errors="replace"))
        if found and _ready(found.group(1)):
            _settle(process.pid)
            return process, found.group(1), settings
        if process.poll() is not None:
            break
        time.sleep(0.1)
    process.kill()
    raise SystemExit(f"the server did not start:\n{log.read_text(errors='replace')[-3000:]}")


def _ready(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"{url}/ready", timeout=2) as answer:  # noqa: S310
            return bool(answer.status == 200)
    except OSError:
        return False


def _settle(pid: int) -> None:
    """Wait until the server is done starting (a fresh install backfills candles): its CPU over
    two seconds under a tenth of a core, for at most a minute."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        before = cpu_of(pid)
        time.sleep(2)
        if cpu_of(pid) - before < 0.2:
            return


# One line per tick in each stream: its tick event, or BTC's price fragment.
TICK_MARKERS = {"/api/v1/stream/prices": b"event: tick\n", "/live/prices": b"event: p-BTC\n"}


class Reader:
    """One stream connection: reads and drops what comes, counting ticks (`marker`s)."""

    def __init__(self, marker: bytes) -> None:
        self.marker = marker
        self.events = 0
        self.bytes = 0
        self._tail = b""

    async def run(self, host: str, port: int, path: str, opened: asyncio.Event) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n\r\n".encode()
        )
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        if b" 200 " not in head.split(b"\r\n", 1)[0]:
            raise SystemExit(f"{path}: {head.decode(errors='replace')}")
        opened.set()
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    return
                self.bytes += len(data)
                seen = self._tail + data  # a marker may straddle two reads
                self.events += seen.count(self.marker)
                self._tail = seen[-(len(self.marker) - 1) :]
        finally:
            writer.close()


async def stream_cost(url: str, pid: int, path: str, clients: int, window: float) -> dict[str, Any]:
    host, port = url.removeprefix("http://").split(":")
    quiet_before = cpu_of(pid)
    await asyncio.sleep(window)
    quiet = cpu_of(pid) - quiet_before
    readers = [Reader(TICK_MARKERS[path]) for _ in range(clients)]
    opened = [asyncio.Event() for _ in readers]
    tasks = [
        asyncio.create_task(r.run(host, int(port), path, o))
        for r, o in zip(readers, opened, strict=True)
    ]
    for event in opened:
        await event.wait()
    await asyncio.sleep(3)  # snapshots sent; the next windows hold ticks only
    counted = readers[0]
    events_before, cpu_before = counted.events, cpu_of(pid)
    await asyncio.sleep(window)
    busy = cpu_of(pid) - cpu_before
    ticks = counted.events - events_before
    received = sum(r.events for r in readers)
    sent = sum(r.bytes for r in readers)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    per_client_tick = (busy - quiet) / max(ticks, 1) / clients
    return {
        "path": path,
        "clients": clients,
        "window_s": window,
        "ticks": ticks,
        "ticks_received_by_all": received,
        "bytes_received_by_all": sent,
        "server_cpu_quiet_s": round(quiet, 3),
        "server_cpu_with_clients_s": round(busy, 3),
        "server_cores_with_clients": round(busy / window, 3),
        "cpu_us_per_client_per_tick": round(per_client_tick * 1e6, 1),
    }


async def seed(data_dir: Path, size: int) -> None:
    """The catalog of `size` assets in the server's database before it starts."""
    from orderproc.common.storage.sqlite import SqliteStore
    from orderproc.inventory.service import seed_catalog

    store = SqliteStore(str(data_dir / "orderproc.db"))
    await store.migrate()
    await seed_catalog(store, assets=catalog_of(size))
    await store.close()


async def streams(clients: int, window: float, tick: float, size: int) -> list[dict[str, Any]]:
    data_dir = Path(tempfile.mkdtemp(prefix="bench-streams-"))
    if size > 101:
        await seed(data_dir, size)
    process, url, settings = start_server(data_dir, tick)
    print("server settings:", settings, "assets:", size)
    results = []
    try:
        paths = ["/live/prices"]
        if _has_json_stream():
            paths.insert(0, "/api/v1/stream/prices")
        for path in paths:
            results.append(await stream_cost(url, process.pid, path, clients, window))
            print(results[-1], flush=True)
    finally:
        process.terminate()
        process.wait(30)
    return results


def _has_json_stream() -> bool:
    try:
        import orderproc.common.price_stream  # noqa: F401
    except ImportError:
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=["ticks", "stream"])
    parser.add_argument("--ticks", type=int, default=200)
    parser.add_argument("--runs", type=int, default=5, help="runs of the same ticks (least CPU)")
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--window", type=float, default=20.0)
    parser.add_argument("--tick", type=float, default=1.0, help="the server's tick interval")
    parser.add_argument("--assets", type=int, default=101, help="the streams' catalog size")
    args = parser.parse_args()
    import orderproc

    print("orderproc from", Path(orderproc.__file__).parent)
    if args.only in (None, "ticks"):
        for size in (101, 1000):
            print(tick_costs(size, args.ticks, args.runs), flush=True)
    if args.only in (None, "stream"):
        asyncio.run(streams(args.clients, args.window, args.tick, args.assets))


if __name__ == "__main__":
    main()
