"""Distributed mode: each service its own process behind the gateway, measured by the protocol in
bench/README.md ("The protocol"), beside embedded mode in the same sitting.

    .venv/bin/python bench/distributed.py [--orders-replicas 1] [--only balance,deposit]
                                          [--duration 20] [--warmup 3] [--json out.json] [--keep]
    .venv/bin/python bench/distributed.py --compare [--embedded-postgres]

A distributed platform runs as docs/deploy.md runs one ("Each service on its own host"), on
loopback: a database of its own in a throwaway PostgreSQL cluster (the tests' harness, as
`run.py --store postgres`), a `redis-server` of its own, `orderproc serve users`, `orderproc
serve inventory`, `--orders-replicas` times `orderproc serve orders`, and `orderproc serve
gateway` with `ORDERPROC_GATEWAY_UPSTREAMS` (the orders replicas as a comma-separated list; the
web UI at a dead port, since no page is requested). Every process has `ORDERPROC_MODE=distributed`,
the same JWT secret, `ORDERPROC_TRUSTED_PROXIES` listing loopback (the gateway's address, as
docs/deploy.md says) and `--port 0`. The workloads run through the gateway with run.py's wrk
scripts, raised settings, hello-world interleaving (A B A, a hello window shared by neighbours of
one concurrency) and money checks (balances equal their ledgers, nothing acknowledged missing, an
idempotent replay; `orderproc reconcile` with the platform stopped).

Beside requests/s and the ratio to hello-world, each counted window records the CPU (user +
system, from /proc) of every process of the platform divided by the window's 2xx answers: the
gateway, users, inventory, each orders replica, PostgreSQL (the postmaster and all its children,
plus what children it reaped during the window used) and redis-server, and their total. wrk's
own CPU is not counted.

`--compare` runs, one platform after another (each alone on the machine while it is measured,
each on a store of its own): embedded mode on SQLite (`orderproc serve`, the default), distributed
with one orders replica, distributed with two; then prints distributed / embedded for each
workload and two replicas / one (market buys are the workload more orders replicas are for).
`--embedded-postgres` adds embedded mode on PostgreSQL, which separates what PostgreSQL costs
from what the split into processes costs.

Before the first window of a platform, the run waits for the candle backfill of a fresh install
(seconds of CPU in the inventory's background; on by default) to finish, so that its CPU is not
counted against a workload. The exit status is 1 when a money check or reconcile finds a problem
(run.py's ratio targets are embedded mode's and are not applied here).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from run import (
    BENCH_SETTINGS,
    HELLO,
    ROOT,
    WORKLOADS,
    Platform,
    Row,
    Server,
    Workload,
    WrkResult,
    _codes,
    _errors,
    call,
    check_money,
    code_info,
    fund_users,
    log_counts,
    missing_route,
    postgres_pids,
    print_machine,
    protocol_parser,
    reconcile,
    remove_workdir,
    run_record,
    run_wrk,
    setup_users,
    start_hello,
    start_platform,
    start_postgres,
    start_server,
    stop_server,
    uptime,
)

DEFAULT_WORKLOADS = ("balance", "deposit", "market_buy_c32")
DEAD_WEBUI = "http://127.0.0.1:9"  # the discard port: nothing listens; no page is requested
BACKFILL_WAIT_SECONDS = 300.0


@dataclass(frozen=True)
class Spec:
    """One platform of a run."""

    label: str
    mode: str  # "embedded" or "distributed"
    store: str  # "sqlite" or "postgres" (distributed mode is always on PostgreSQL)
    orders_replicas: int = 1


# --------------------------------------------------------------------------- pure helpers


def gateway_upstreams(replicas: dict[str, list[str]], webui: str = DEAD_WEBUI) -> str:
    """`ORDERPROC_GATEWAY_UPSTREAMS`: each service's replicas as one comma-separated list of base
    URLs; the web UI at `webui` unless given."""
    services = {name: ",".join(urls) for name, urls in replicas.items()}
    services.setdefault("webui", webui)
    return json.dumps(services, sort_keys=True)


def stat_ticks(stat: str, *, reaped: bool = False) -> int:
    """Clock ticks of CPU (user + system) in the text of /proc/PID/stat; with `reaped`, also
    the CPU of the children the process has waited for (cutime + cstime), which is where a
    PostgreSQL backend's CPU goes when it exits."""
    fields = stat.rsplit(")", 1)[1].split()  # fields[0] is the state, field 3 of proc(5)
    ticks = int(fields[11]) + int(fields[12])
    return ticks + (int(fields[13]) + int(fields[14]) if reaped else 0)


def group_seconds(pids: Iterable[int], reaper: int | None = None) -> float:
    """CPU seconds used so far by these processes (gone ones count 0), and by the children
    `reaper` has reaped."""
    ticks = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        ticks += stat_ticks(stat, reaped=pid == reaper)
    return ticks / os.sysconf("SC_CLK_TCK")


def cpu_per_request(
    before: dict[str, float], after: dict[str, float], successes: int
) -> dict[str, float]:
    """Microseconds of CPU per successful request of each process group over a window, and
    their `total`."""
    used = {name: max(after[name] - before.get(name, 0.0), 0.0) for name in after}
    per = {name: seconds / max(successes, 1) * 1e6 for name, seconds in used.items()}
    per["total"] = sum(per.values())
    return per


def compare(
    ratios: dict[str, dict[str, float]], numerator: str, denominator: str
) -> dict[str, float]:
    """Per workload, the ratio to hello-world of one platform over another's (for the workloads
    both ran)."""
    top, bottom = ratios.get(numerator, {}), ratios.get(denominator, {})
    return {name: top[name] / bottom[name] for name in top if bottom.get(name)}


# --------------------------------------------------------------------------- platforms


@dataclass
class Running:
    """A started platform: run.py's `Platform` (base URL, users, acknowledged counts) and the
    processes behind it, by name."""

    spec: Spec
    platform: Platform
    servers: dict[str, Server]
    redis: Any | None = None  # tests.support.redis_server.RedisServer
    backfill_log: Path | None = None  # the log that says when the candle backfill is done
    logs: list[Path] = field(default_factory=list)

    def cpu_groups(self, postgres: Any | None) -> Callable[[], dict[str, float]]:
        """A sampler: CPU seconds so far of each process of the platform (and of PostgreSQL
        and Redis when it uses them)."""

        def sample() -> dict[str, float]:
            seconds = {name: group_seconds([s.process.pid]) for name, s in self.servers.items()}
            if self.spec.store == "postgres" and postgres is not None:
                pids = postgres_pids(postgres)
                seconds["postgres"] = group_seconds(pids, pids[0] if pids else None)
            if self.redis is not None and self.redis.pid is not None:
                seconds["redis"] = group_seconds([self.redis.pid])
            return seconds

        return sample

    def stop(self) -> None:
        for server in self.servers.values():
            stop_server(server)
        if self.redis is not None:
            self.redis.close()


def bench_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, **BENCH_SETTINGS, "PYTHONUNBUFFERED": "1", **extra}
    env.pop("ORDERPROC_ACCESS_LOG", None)  # stays at its default (on)
    return env


def create_database(postgres: Any, name: str) -> str:
    """A database of its own for one platform in the shared throwaway cluster; its DSN."""
    import asyncpg

    async def create() -> None:
        conn = await asyncpg.connect(postgres.dsn("postgres"))
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(create())
    return str(postgres.dsn(name))


def start_distributed(spec: Spec, workdir: Path, postgres: Any) -> Running:
    """PostgreSQL database, redis-server, users, inventory, orders x N, then the gateway, as
    docs/deploy.md runs them; each service's stderr (its log) in WORKDIR/<label>-<name>.log."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from tests.support.redis_server import RedisServer

    redis = RedisServer().start()
    dsn = create_database(postgres, spec.label.replace("-", "_"))
    data_dir = workdir / f"db-{spec.label}"
    env = bench_env(
        ORDERPROC_MODE="distributed",
        ORDERPROC_DATABASE_URL=dsn,
        ORDERPROC_REDIS_URL=redis.url,
        ORDERPROC_JWT_SECRET=secrets.token_urlsafe(48),
        ORDERPROC_TRUSTED_PROXIES='["127.0.0.1/32"]',
    )
    orderproc = str(Path(sys.executable).parent / "orderproc")
    logs: list[Path] = []
    started: list[Server] = []

    def serve(name: str, service: str, extra: dict[str, str] | None = None) -> Server:
        log = workdir / f"{spec.label}-{name}.log"
        logs.append(log)
        cmd = [orderproc, "serve", service, "--port", "0", "--data-dir", str(data_dir)]
        pattern = rf"Order Processor {service} on (http://\S+)"
        server = start_server(name, cmd, {**env, **(extra or {})}, log, pattern)
        started.append(server)
        return server

    try:
        services = {"users": serve("users", "users"), "inventory": serve("inventory", "inventory")}
        for n in range(1, spec.orders_replicas + 1):
            services[f"orders-{n}"] = serve(f"orders-{n}", "orders")
        replicas = {
            "users": [services["users"].url],
            "inventory": [services["inventory"].url],
            "orders": [s.url for name, s in services.items() if name.startswith("orders-")],
        }
        upstreams = gateway_upstreams(replicas)
        gateway = serve("gateway", "gateway", {"ORDERPROC_GATEWAY_UPSTREAMS": upstreams})
    except BaseException:
        for server in reversed(started):
            stop_server(server)
        redis.close()
        raise
    print(f"[{spec.label}] ORDERPROC_GATEWAY_UPSTREAMS={upstreams}")
    print(f"[{spec.label}] redis {redis.url}, database {dsn}")
    return Running(
        spec,
        Platform(spec.label, gateway, env, data_dir),
        {"gateway": gateway, **services},  # stopped in this order: the gateway first
        redis,
        backfill_log=workdir / f"{spec.label}-inventory.log",
        logs=logs,
    )


def start_embedded(spec: Spec, workdir: Path, postgres: Any | None) -> Running:
    """`orderproc serve` (every service in one process), as run.py starts it."""
    server, env, data_dir = start_platform(spec.store, workdir, postgres)
    log = workdir / f"orderproc-{spec.store}.log"
    platform = Platform(spec.label, server, env, data_dir)
    return Running(spec, platform, {"orderproc": server}, backfill_log=log, logs=[log])


def wait_until_settled(running: Running) -> None:
    """The platform answers `/ready`, and the candle backfill of a fresh install has finished
    (its CPU would otherwise count against the first windows)."""
    base, label = running.platform.server.url, running.spec.label
    started = time.monotonic()
    deadline = started + BACKFILL_WAIT_SECONDS
    while call("GET", base + "/ready")[0] != 200:
        if time.monotonic() > deadline:
            raise SystemExit(f"[{label}] /ready did not answer 200; logs in {running.logs}")
        time.sleep(0.2)
    backfill_off = running.platform.env.get("ORDERPROC_CANDLE_BACKFILL", "").lower() in (
        "false",
        "0",
        "no",
    )
    log = running.backfill_log
    while not backfill_off and log is not None:
        text = log.read_text(errors="replace")
        if "candle backfill" in text:
            line = next(line for line in text.splitlines() if "candle backfill" in line)
            print(f"[{label}] {line.strip()[:200]}")
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"[{label}] no candle backfill line in {log} after 5 minutes")
        time.sleep(0.5)
    print(f"[{label}] ready and settled after {time.monotonic() - started:.1f} s")


# --------------------------------------------------------------------------- windows


@dataclass
class Measured:
    """One platform's rows (run.py's `Row`: the workload window and its hello-world windows)
    with the CPU per 2xx request of each process."""

    spec: Spec
    rows: list[Row] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def ratios(self) -> dict[str, float]:
        return {row.workload.name: row.ratio for row in self.rows if row.result}


class Windows:
    """Counted windows under run.py's wrk (a warm-up first), and the hello-world windows around
    each workload."""

    def __init__(self, args: argparse.Namespace, hello: Server, postgres: Any | None) -> None:
        self.args = args
        self.hello = hello
        self.postgres = postgres
        self.hellos: list[WrkResult] = []
        self._last_hello: WrkResult | None = None

    def measure(
        self, workload: Workload, base: str, tokens: Path, sample: Callable[[], dict[str, float]]
    ) -> tuple[WrkResult, WrkResult]:
        concurrency = workload.concurrency or self.args.concurrency
        load = {"concurrency": concurrency, "threads": self.args.threads, "tokens_file": tokens}
        warm = run_wrk(workload, base, duration=self.args.warmup, **load)
        before = sample()
        result = run_wrk(workload, base, duration=self.args.duration, **load)
        result.cpu = cpu_per_request(before, sample(), result.ok)
        shares = "  ".join(f"{name} {us:.0f}" for name, us in result.cpu.items())
        print(
            f"  {workload.name:<15} c{concurrency:<3} {result.success_rps:8.0f} req/s (2xx)  "
            f"p50 {result.p50_ms:.2f} ms  p99 {result.p99_ms:.2f} ms  non-2xx "
            f"{_codes(result.non_2xx)}  socket errors {_errors(result)}  CPU µs/2xx: {shares}",
            flush=True,
        )
        return warm, result

    def hello_window(self, concurrency: int, *, reuse: bool) -> WrkResult:
        last = self._last_hello
        if reuse and last is not None and last.concurrency == concurrency:
            return last
        pid = self.hello.process.pid
        hello = replace(HELLO, concurrency=concurrency)
        result = self.measure(
            hello, self.hello.url, Path("none"), lambda: {"hello": group_seconds([pid])}
        )
        self._last_hello = result[1]
        self.hellos.append(result[1])
        return result[1]

    def forget_hello(self) -> None:
        """A new platform starts with a hello window of its own."""
        self._last_hello = None


def run_platform(running: Running, chosen: list[Workload], windows: Windows) -> Measured:
    platform, label = running.platform, running.spec.label
    measured = Measured(running.spec)
    sample = running.cpu_groups(windows.postgres)
    windows.forget_hello()
    for workload in chosen:
        row = Row(workload, label)
        measured.rows.append(row)
        row.note = missing_route(workload, platform)
        if row.note:
            continue
        if workload.kind in ("order", "withdraw"):
            fund_users(platform)
        concurrency = workload.concurrency or windows.args.concurrency
        assert platform.tokens_file is not None
        row.hello_before = windows.hello_window(concurrency, reuse=True)
        warm, row.result = windows.measure(
            workload, platform.server.url, platform.tokens_file, sample
        )
        if workload.kind:
            platform.acked[workload.kind] += warm.ok + row.result.ok
        row.hello_after = windows.hello_window(concurrency, reuse=False)
    return measured


# --------------------------------------------------------------------------- report


def print_platform(measured: Measured) -> None:
    print(f"\n[{measured.spec.label}]")
    header = (
        f"  {'workload':<16} {'rps (2xx)':>9} {'p50 ms':>7} {'p99 ms':>7} {'hello rps':>9} "
        f"{'ratio':>6}  CPU µs per 2xx request, by process"
    )
    print(header)
    for row in measured.rows:
        if row.result is None:
            print(f"  {row.workload.name:<16} skipped: {row.note}")
            continue
        r = row.result
        cpu = "  ".join(f"{name} {us:.0f}" for name, us in r.cpu.items())
        print(
            f"  {row.workload.name:<16} {r.success_rps:9.0f} {r.p50_ms:7.2f} {r.p99_ms:7.2f} "
            f"{row.hello_rps:9.0f} {row.ratio:6.3f}  {cpu}"
        )
        if r.non_2xx or r.errors:
            print(f"  {'':<16} non-2xx {_codes(r.non_2xx)}; socket errors {_errors(r)}")
        for code, body in r.samples.items():
            print(f"  {'':<16} first {code}: {body[:200]}")


def print_comparisons(results: list[Measured]) -> dict[str, dict[str, float]]:
    """Distributed over embedded (SQLite) per workload, and each distributed platform over the
    one with one orders replica; the ratios are of each side's ratio to hello-world, so drift of
    the machine between platforms cancels. Also total CPU per request, the steadier figure."""
    ratios = {m.spec.label: m.ratios() for m in results}
    cpu = {
        m.spec.label: {r.workload.name: r.result.cpu["total"] for r in m.rows if r.result}
        for m in results
    }
    wanted = [
        ("distributed-1", "embedded-sqlite"),
        ("distributed-2", "embedded-sqlite"),
        ("embedded-postgres", "embedded-sqlite"),
        ("distributed-1", "embedded-postgres"),
        ("distributed-2", "embedded-postgres"),
        ("distributed-2", "distributed-1"),
    ]
    found: dict[str, dict[str, float]] = {}
    for top, bottom in wanted:
        throughput = compare(ratios, top, bottom)
        if not throughput:
            continue
        print(f"\n{top} / {bottom}:")
        for name, value in throughput.items():
            cpu_ratio = cpu[top][name] / cpu[bottom][name]
            print(
                f"  {name:<16} throughput (ratio to hello) {value:6.3f}   total CPU per "
                f"request {cpu[top][name]:7.0f} / {cpu[bottom][name]:7.0f} µs = {cpu_ratio:.2f}"
            )
        found[f"{top}/{bottom}"] = throughput
    return found


def log_summary(running: Running) -> dict[str, int]:
    summary = log_counts("\n".join(log.read_text(errors="replace") for log in running.logs))
    print(
        f"  [{running.spec.label}] logs: {summary['lines']} lines, {summary['error_lines']} at "
        f"error, {summary['warning_lines']} at warning"
    )
    return summary


def platform_record(measured: Measured, logs: dict[str, dict[str, int]]) -> dict[str, Any]:
    """One platform's part of the JSON record."""
    return {
        "label": measured.spec.label,
        "mode": measured.spec.mode,
        "store": measured.spec.store,
        "orders_replicas": measured.spec.orders_replicas,
        "problems": measured.problems,
        "logs": logs.get(measured.spec.label),
        "workloads": [
            {
                "name": r.workload.name,
                "note": r.note,
                "ratio": r.ratio if r.result else None,
                "hello_rps": r.hello_rps if r.result else None,
                "success_rps": r.result.success_rps if r.result else None,
                "result": r.result.__dict__ if r.result else None,
            }
            for r in measured.rows
        ],
    }


# --------------------------------------------------------------------------- main


def plan_of(args: argparse.Namespace) -> list[Spec]:
    if not args.compare:
        n = args.orders_replicas
        return [Spec(f"distributed-{n}", "distributed", "postgres", n)]
    specs = [Spec("embedded-sqlite", "embedded", "sqlite")]
    if args.embedded_postgres:
        specs.append(Spec("embedded-postgres", "embedded", "postgres"))
    return [
        *specs,
        Spec("distributed-1", "distributed", "postgres", 1),
        Spec("distributed-2", "distributed", "postgres", 2),
    ]


def parse_args() -> argparse.Namespace:
    parser = protocol_parser(__doc__)
    parser.add_argument(
        "--only",
        default=",".join(DEFAULT_WORKLOADS),
        help=f"comma-separated workloads (default {','.join(DEFAULT_WORKLOADS)})",
    )
    parser.add_argument(
        "--orders-replicas", type=int, default=1, help="orders processes (without --compare)"
    )
    parser.add_argument(
        "--compare",
        action="store_true",
        help="embedded (SQLite), distributed with 1 orders replica, with 2; one after another",
    )
    parser.add_argument(
        "--embedded-postgres",
        action="store_true",
        help="with --compare: also embedded mode on PostgreSQL",
    )
    args = parser.parse_args()
    if args.orders_replicas < 1:
        parser.error("--orders-replicas must be at least 1")
    return args


def chosen_workloads(only: str) -> list[Workload]:
    names = [name.strip() for name in only.split(",") if name.strip()]
    usable = {w.name: w for w in WORKLOADS if w.users == "all" and w.client == "wrk"}
    unknown = [name for name in names if name not in usable]
    if unknown:
        raise SystemExit(f"unknown or unsupported workloads {unknown}; have {sorted(usable)}")
    return [usable[name] for name in names]


def main() -> None:
    args = parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install -y wrk)")
    if shutil.which("redis-server") is None:
        raise SystemExit("redis-server is not installed (apt-get install -y redis-server)")
    chosen = chosen_workloads(args.only)
    specs = plan_of(args)
    info = print_machine()
    print(
        f"Protocol: wrk -t{args.threads} -c{args.concurrency} (or the workload's own), warm-up "
        f"{args.warmup:g} s + {args.duration:g} s per window, A B A per workload; platforms, one "
        f"after another: {', '.join(s.label for s in specs)}"
    )
    print("Settings raised: " + " ".join(f"{k}={v}" for k, v in BENCH_SETTINGS.items()))
    print(
        "Other settings: defaults (access log on, to a file; password profile owasp); "
        "distributed: ORDERPROC_MODE=distributed, one JWT secret, ORDERPROC_TRUSTED_PROXIES "
        "loopback"
    )
    workdir = Path(tempfile.mkdtemp(prefix="orderproc-bench-dist-"))
    postgres: Any | None = None
    hello: Server | None = None
    current: Running | None = None
    results: list[Measured] = []
    logs: dict[str, dict[str, int]] = {}
    try:
        if any(spec.store == "postgres" for spec in specs):
            postgres = start_postgres()
        hello = start_hello(workdir)
        print(f"Code: {code_info(bench_env())}")
        print(f"Hello-world {hello.url}, work dir {workdir}")
        windows = Windows(args, hello, postgres)
        for spec in specs:
            print(f"\n== {spec.label} ==", flush=True)
            if spec.mode == "distributed":
                current = start_distributed(spec, workdir, postgres)
            else:
                current = start_embedded(spec, workdir, postgres)
            for name, server in current.servers.items():
                print(f"[{spec.label}] {name} {server.url} (pid {server.process.pid})")
            setup_users(current.platform, workdir)
            wait_until_settled(current)
            measured = run_platform(current, chosen, windows)
            results.append(measured)
            print(f"\n[{spec.label}] correctness after the windows:")
            if any(row.result for row in measured.rows):
                measured.problems += check_money(current.platform)
            status, health = call("GET", current.platform.server.url + "/health")
            print(f"  [{spec.label}] /health after the run: {status} {health}")
            current.stop()
            measured.problems += reconcile(current.platform)
            logs[spec.label] = log_summary(current)
            current = None
        for measured in results:
            print_platform(measured)
        print("\nHello-world windows (A), in run order:")
        for index, window in enumerate(windows.hellos, 1):
            print(
                f"  A{index} (c{window.concurrency}): {window.success_rps:8.0f} req/s  "
                f"hello CPU {window.cpu.get('hello', 0):.0f} µs/2xx  "
                f"non-2xx {_codes(window.non_2xx)}  socket errors {_errors(window)}"
            )
        comparisons = print_comparisons(results)
        load_after = uptime()
        print(f"\nLoad after: {load_after}")
        problems = [problem for m in results for problem in m.problems]
        for problem in problems:
            print(f"  PROBLEM: {problem}")
        if args.json:
            record = run_record(info, args, load_after, windows.hellos)
            record |= {"platforms": [platform_record(m, logs) for m in results]}
            record |= {"comparisons": comparisons, "problems": problems}
            args.json.write_text(json.dumps(record, indent=2, default=str))
    finally:
        if current is not None:
            current.stop()
        if hello is not None:
            stop_server(hello)
        if postgres is not None:
            postgres.close()
        remove_workdir(workdir, keep=args.keep)
    if problems:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
