"""Two versions of the platform, window by window: server CPU per request, A against B.

    .venv/bin/python bench/ab.py --baseline-bin /tmp/old/.venv/bin [--rounds 3] [--duration 8]
                                 [--only balance,deposit,withdraw,market_buy_c32]

Starts `orderproc serve` twice on fresh SQLite databases: A from `--baseline-bin` (the `bin`
directory of another virtual environment, whose `orderproc` runs the other code) and B from this
interpreter's environment. Both run at once, each pinned to CPU 0 (with `taskset`, when there is
more than one CPU), with wrk pinned to the other CPUs, so the two never compete for a core and a
window of one is never shared with the other's load. Each workload then alternates windows A, B,
A, B, ... (`--rounds` of each, with a warm-up before every window), and the table gives each
side's median server CPU per successful request and B/A. Interleaving in one sitting is what
makes the comparison fair on a shared machine: a slow minute slows both sides.

Only CPU per request is compared; requests per second are shown but depend on wrk. The
settings are `bench/run.py`'s (rate limits off, daily limits raised); workloads come from its
table.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from run import (
    BENCH_SETTINGS,
    WORKLOADS,
    Platform,
    cpu_seconds,
    fund_users,
    run_wrk,
    setup_users,
    start_server,
    stop_server,
)

DEFAULT = "balance,deposit,withdraw,market_buy_c32"


def start(name: str, bin_dir: Path, workdir: Path, pin: list[str]) -> Platform:
    env = {**os.environ, **BENCH_SETTINGS}
    env.pop("ORDERPROC_ACCESS_LOG", None)
    env.pop("ORDERPROC_DATABASE_URL", None)
    env.pop("PYTHONPATH", None)
    data_dir = workdir / f"db-{name}"
    server = start_server(
        f"orderproc-{name}",
        [*pin, str(bin_dir / "orderproc"), "serve", "--port", "0", "--data-dir", str(data_dir)],
        env,
        workdir / f"orderproc-{name}.log",
        r"Order Processor on (http://\S+)",
    )
    return Platform(name, server, env, data_dir)


def version_of(bin_dir: Path) -> str:
    import subprocess

    probe = (
        "import fastapi, starlette, orderproc, pathlib; "
        "print(pathlib.Path(orderproc.__file__).parent, 'FastAPI', fastapi.__version__, "
        "'Starlette', starlette.__version__)"
    )
    out = subprocess.run(
        [str(bin_dir / "python"), "-c", probe], capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--baseline-bin", type=Path, required=True, help="A's venv bin dir")
    parser.add_argument("--rounds", type=int, default=3, help="windows per side and workload")
    parser.add_argument("--duration", type=float, default=8, help="measured seconds per window")
    parser.add_argument("--warmup", type=float, default=2, help="uncounted seconds before each")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--only", default=DEFAULT, help="comma-separated workload names")
    args = parser.parse_args()
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    chosen = [w for w in WORKLOADS if w.name in names]
    cpus = os.cpu_count() or 1
    pinned = cpus > 1 and shutil.which("taskset") is not None
    server_pin = ["taskset", "-c", "0"] if pinned else []
    wrk_cpus = f"1-{cpus - 1}" if pinned else ""

    sides = {"A": args.baseline_bin.resolve(), "B": Path(sys.executable).parent}
    for side, bin_dir in sides.items():
        print(f"{side}: {version_of(bin_dir)}")
    print(
        f"Protocol: {args.rounds} windows per side, interleaved A B A B ..., warm-up "
        f"{args.warmup:g} s + {args.duration:g} s, wrk -t2 -c{args.concurrency}; servers "
        + ("pinned to CPU 0, wrk to CPUs " + wrk_cpus if pinned else "not pinned")
    )
    workdir = Path(tempfile.mkdtemp(prefix="orderproc-ab-"))
    platforms: dict[str, Platform] = {}
    if pinned:
        os.sched_setaffinity(0, set(range(1, cpus)))  # wrk and this script: never CPU 0
    try:
        for side, bin_dir in sides.items():
            platforms[side] = start(side, bin_dir, workdir, server_pin)
            setup_users(platforms[side], workdir)
        print(f"\n{'workload':16} {'A µs/req':>9} {'B µs/req':>9} {'B/A':>6}   windows (µs, rps)")
        for workload in chosen:
            figures: dict[str, list[float]] = {"A": [], "B": []}
            shown: list[str] = []
            for _ in range(args.rounds):
                for side in ("A", "B"):
                    platform = platforms[side]
                    if workload.kind in ("order", "withdraw"):
                        fund_users(platform)
                    assert platform.tokens_file is not None
                    common = {
                        "concurrency": workload.concurrency or args.concurrency,
                        "threads": 2,
                        "tokens_file": platform.tokens_file,
                    }
                    run_wrk(workload, platform.server.url, duration=args.warmup, **common)
                    pid = platform.server.process.pid
                    before = cpu_seconds([pid])
                    result = run_wrk(
                        workload, platform.server.url, duration=args.duration, **common
                    )
                    used = cpu_seconds([pid]) - before
                    if result.non_2xx or result.errors:
                        print(f"  {side} {workload.name}: non-2xx {result.non_2xx}")
                    per = used / max(result.ok, 1) * 1e6
                    figures[side].append(per)
                    shown.append(f"{side} {per:.0f} {result.ok / result.duration_s:.0f}")
            a, b = statistics.median(figures["A"]), statistics.median(figures["B"])
            print(f"{workload.name:16} {a:9.0f} {b:9.0f} {b / a:6.3f}   " + ", ".join(shown))
    finally:
        for platform in platforms.values():
            stop_server(platform.server)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
