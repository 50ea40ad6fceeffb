"""What a fresh install's candle history costs (inventory/backfill.py, history.py), in process.

    .venv/bin/python -m bench.backfill [--store sqlite|memory] [--repeat 3] [--no-freeze]

For the packaged catalog on a fresh store: the start-up step before the first tick
(`prepare`: which assets lack history, their current candles) in wall and CPU time; then the
background step (`run`: every other candle) in wall and CPU time, the rows written, and the
longest the event loop went without running a 1 ms probe meanwhile (what a request waiting
behind the backfill would wait, at most), in wall time and in the loop thread's CPU time (on a
loaded machine the wall figure mostly measures the scheduler), and the garbage collector's full
passes during `run` (how many, the longest in CPU time). The median of `--repeat` runs, each on
a new store. As the server does once started, the objects made before `run` (imports, the
catalog) are frozen first (`gc.freeze()`), so full passes walk only what came after;
`--no-freeze` leaves them to the collector, as the first versions of this script did.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from orderproc.common.storage.memory import MemoryStore
from orderproc.common.storage.ports import Store
from orderproc.common.storage.sqlite import SqliteStore
from orderproc.inventory.candles import Interval
from orderproc.inventory.domain import load_snapshot
from orderproc.inventory.history import SimulatedBackfill
from orderproc.inventory.service import seed_catalog

KEEP = {
    Interval.MINUTE: timedelta(hours=48),
    Interval.HOUR: timedelta(days=90),
    Interval.DAY: timedelta(days=3650),
}


async def probe(stop: asyncio.Event, gaps: list[float], cpu_gaps: list[float]) -> None:
    """How long the loop took to come back to a 1 ms sleep: in wall time (which a loaded
    machine's scheduler inflates), and in this thread's CPU time (the loop's own work alone)."""
    while not stop.is_set():
        began, cpu = time.perf_counter(), time.thread_time()
        await asyncio.sleep(0.001)
        gaps.append(time.perf_counter() - began - 0.001)
        cpu_gaps.append(time.thread_time() - cpu)


async def once(store: Store, freeze: bool) -> dict[str, float]:
    assets = load_snapshot()
    await seed_catalog(store, assets=assets)
    backfill = SimulatedBackfill(store=store, seed=20240218, keep=KEEP)
    now = datetime.now(UTC)
    wall, cpu = time.perf_counter(), time.process_time()
    await backfill.prepare(assets, now)
    prepare = (time.perf_counter() - wall, time.process_time() - cpu)
    if freeze:  # as the server does once started, before the background `run` goes on
        gc.collect()
        gc.freeze()
    passes: list[float] = []
    started = [0.0]

    def timed_pass(phase: str, info: dict[str, int]) -> None:
        if info["generation"] == 2:
            if phase == "start":
                started[0] = time.thread_time()
            else:
                passes.append(time.thread_time() - started[0])

    gc.callbacks.append(timed_pass)
    stop, gaps, cpu_gaps = asyncio.Event(), list[float](), list[float]()
    prober = asyncio.create_task(probe(stop, gaps, cpu_gaps))
    wall, cpu = time.perf_counter(), time.process_time()
    rows = await backfill.run()
    run = (time.perf_counter() - wall, time.process_time() - cpu)
    stop.set()
    await prober
    gc.callbacks.remove(timed_pass)
    gc.unfreeze()
    return {
        "assets": len(assets),
        "rows": rows,
        "prepare_wall_s": prepare[0],
        "prepare_cpu_s": prepare[1],
        "run_wall_s": run[0],
        "run_cpu_s": run[1],
        "longest_loop_hold_wall_ms": max(gaps) * 1000,
        "longest_loop_hold_cpu_ms": max(cpu_gaps) * 1000,
        "loop_hold_cpu_p99_ms": statistics.quantiles(cpu_gaps, n=100)[98] * 1000,
        "full_collections": len(passes),
        "longest_full_collection_cpu_ms": max(passes, default=0.0) * 1000,
    }


async def main(store_kind: str, repeat: int, freeze: bool) -> None:
    runs = []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as tmp:
            store: Store = (
                MemoryStore() if store_kind == "memory" else SqliteStore(Path(tmp) / "b.db")
            )
            await store.migrate()
            try:
                runs.append(await once(store, freeze))
            finally:
                await store.close()
    frozen = "frozen after prepare, as the server" if freeze else "not frozen"
    print(f"store: {store_kind}, runs: {repeat} (median), start-up objects {frozen}")
    for key in runs[0]:
        value = statistics.median(r[key] for r in runs)
        print(f"  {key}: {value:,.3f}" if isinstance(value, float) else f"  {key}: {value:,}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", choices=("sqlite", "memory"), default="sqlite")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--no-freeze",
        action="store_true",
        help="leave the start-up objects to the collector (the server freezes them)",
    )
    args = parser.parse_args()
    asyncio.run(main(args.store, args.repeat, not args.no_freeze))
