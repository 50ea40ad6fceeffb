"""Order Processor benchmark, by DESIGN.md's protocol ("Speed").

    .venv/bin/python bench/run.py [--duration 20] [--warmup 3] [--concurrency 32]
                                  [--only balance,deposit] [--store sqlite|postgres|both]
                                  [--json results.json] [--keep]

Starts the platform (`orderproc serve --port 0`, a fresh data dir or a throwaway PostgreSQL,
default settings except the documented limits a benchmark must raise) and a bare hello-world
FastAPI app under the same server and flags (bench/hello.py), registers and logs in 50 users,
then loads each workload with wrk, interleaved with the hello-world baseline in the same run:
A, B1, A, B2, A, ... Every window has a warm-up that is not counted. Only successful (2xx)
requests count; every non-2xx status and socket error is reported. Each workload's ratio is its
successful requests/s over the mean of the two hello-world windows around it, which run at the
workload's concurrency. Order workloads first fund their users (and give the one-user workload a
stock of the asset it sells). Afterwards it checks the money: every balance equals the sum of
its ledger, no acknowledged deposit or order is missing, and, with the servers stopped,
`orderproc reconcile` sweeps every account and position of each store.

`--store both` runs the store-sensitive workloads (deposit and market buys; `--only` to choose)
on SQLite and on PostgreSQL in one run, each store its own platform process, next to each other.

A workload is one entry in WORKLOADS; a route that answers 404 (not built yet) is skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from importlib import metadata
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
LUA = BENCH / "lua"
API = "/api/v1"
USERS = 50

# The documented limits a benchmark run must raise (DESIGN.md "Speed"); everything else stays at
# its default, including the access log (the server's stderr goes to a file).
BENCH_SETTINGS = {
    "ORDERPROC_RATE_LIMIT_ENABLED": "false",
    "ORDERPROC_DEPOSIT_DAILY_LIMIT": "1000000000",
}


@dataclass(frozen=True)
class Workload:
    """One benchmarked request. `lua` is get.lua (GET, tokens optional) or post.lua (POST with
    a fresh idempotency key per request); `body` may contain %KEY% (replaced by that key) and
    several bodies, one per line, sent in turn by each wrk thread."""

    name: str
    method: str
    path: str
    target: float | None  # minimum ratio of successful requests/s to hello-world's
    auth: bool = True
    body: str = ""
    key_header: str = "Idempotency-Key"
    source: str = ""  # which issue sets the target
    concurrency: int | None = None  # None: --concurrency
    users: str = "all"  # "all": round-robin over the 50 users; "solo": one user's token
    kind: str = ""  # "deposit" or "order": what the money check counts and the setup funds
    max_p99_ms: float | None = None  # a latency target
    zero_non_2xx: bool = False  # a target: no non-2xx answer and no socket error at all
    per_store: bool = False  # runs on each store under --store both

    @property
    def lua(self) -> Path:
        return LUA / ("get.lua" if self.method == "GET" else "post.lua")


def _buy(asset: str) -> str:
    return f'{{"order_type": "market_buy", "asset_id": "{asset}", "notional": "1.00"}}'


# Market buys rotate over three assets, USD 1.00 each (the minimum order value).
SPREAD_BUYS = "\n".join(_buy(asset) for asset in ("BTC", "ETH", "SOL"))
SOLO_ASSET = "ETH"
# %QTY% becomes the quantity chosen from the catalog price at setup (0.001 ETH normally).
SOLO_BODIES = "\n".join(
    f'{{"order_type": "{side}", "asset_id": "{SOLO_ASSET}", "quantity": "%QTY%"}}'
    for side in ("market_buy", "market_sell")
)

WORKLOADS: list[Workload] = [
    Workload("balance", "GET", f"{API}/balance", 0.33, source="#2"),
    Workload(
        "deposit", "POST", f"{API}/balance/deposit", 0.20, body='{"amount": "1.00"}',
        source="#2", kind="deposit", per_store=True,
    ),  # fmt: skip
    Workload(
        "inventory_list", "GET", f"{API}/inventory/assets?limit=50", 0.35, auth=False, source="#3"
    ),
    Workload("inventory_btc", "GET", f"{API}/inventory/assets/BTC", 0.60, auth=False, source="#3"),
    Workload(
        "market_buy_c32", "POST", f"{API}/orders", 0.15, body=SPREAD_BUYS, source="#4",
        concurrency=32, kind="order", per_store=True,
    ),  # fmt: skip
    Workload(
        "market_buy_c64", "POST", f"{API}/orders", 0.15, body=SPREAD_BUYS, source="#4",
        concurrency=64, kind="order", per_store=True,
    ),  # fmt: skip
    Workload(
        "one_user_c64", "POST", f"{API}/orders", None, body=SOLO_BODIES, source="#4",
        concurrency=64, users="solo", kind="order", max_p99_ms=250, zero_non_2xx=True,
    ),  # fmt: skip
]
# What `--store both` runs unless --only says otherwise (issue #5: deposit and market orders).
COMPARE_DEFAULT = ("deposit", "market_buy_c32")
HELLO = Workload("hello", "GET", "/hello", 1.0, auth=False)


# --------------------------------------------------------------------------- processes


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    url: str
    log: Path


def _wait_for_url(process: subprocess.Popen[bytes], log: Path, pattern: str) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace") if log.exists() else ""
        if match := re.search(pattern, text):
            return match.group(1)
        if process.poll() is not None:
            raise SystemExit(f"server exited with {process.returncode}:\n{text}")
        time.sleep(0.05)
    raise SystemExit(f"server did not start in 30 s; see {log}")


def start_server(name: str, cmd: list[str], env: dict[str, str], log: Path, pattern: str) -> Server:
    with log.open("wb") as err:
        process = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, env=env, cwd=ROOT
        )
    url = _wait_for_url(process, log, pattern)
    return Server(name, process, url, log)


def stop_server(server: Server) -> None:
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGINT)
        try:
            server.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


# --------------------------------------------------------------------------- HTTP client


def call(
    method: str,
    url: str,
    body: Any = None,
    *,
    token: str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError(f"benchmark calls stay on loopback: {url}")
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 (checked above)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            raw = response.read()
            status = response.status
    except urllib.error.HTTPError as error:
        raw, status = error.read(), error.code
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode(errors="replace")


def _expect(status: int, payload: Any, wanted: int, what: str) -> Any:
    if status != wanted:
        raise SystemExit(f"{what}: HTTP {status} {payload}")
    return payload


def make_users(base: str, names: list[str]) -> list[tuple[str, str]]:
    """Register and log in these users; (username, token) each. Argon2id runs at the default
    (OWASP) cost, so this takes a couple of seconds."""
    password = f"Bench-{secrets.token_urlsafe(12)}-pw"

    def one(index: int) -> tuple[str, str]:
        username = names[index]
        _expect(
            *call(
                "POST",
                f"{base}{API}/auth/register",
                {
                    "username": username,
                    "email": f"{username}@example.com",
                    "password": password,
                    "first_name": "Bench",
                    "last_name": f"User{index}",
                },
            ),
            201,
            f"register {username}",
        )
        login = _expect(
            *call("POST", f"{base}{API}/auth/login", {"username": username, "password": password}),
            200,
            f"login {username}",
        )
        return username, login["access_token"]

    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(one, range(len(names))))


FUNDING = Decimal("1000000.00")  # one deposit per user before the order workloads (the maximum)


def deposit(base: str, token: str, amount: Decimal) -> None:
    _expect(
        *call(
            "POST", f"{base}{API}/balance/deposit", {"amount": str(amount)}, token=token,
            headers={"Idempotency-Key": f"bench-fund-{secrets.token_hex(8)}"},
        ),
        201,
        "funding deposit",
    )  # fmt: skip


def place(base: str, token: str, order: dict[str, str]) -> dict[str, Any]:
    return _expect(
        *call(
            "POST", f"{base}{API}/orders", order, token=token,
            headers={"Idempotency-Key": f"bench-setup-{secrets.token_hex(8)}"},
        ),
        201,
        f"setup order {order}",
    )["data"]  # fmt: skip


def solo_quantity(base: str) -> tuple[str, Decimal]:
    """0.001 of SOLO_ASSET, or more if that is worth less than 2.00 (the minimum order value is
    1.00, and the price moves during the run). Returns (quantity, price)."""
    asset = _expect(*call("GET", f"{base}{API}/inventory/assets/{SOLO_ASSET}"), 200, "asset")
    price = Decimal(str(asset.get("current_price") or asset.get("price")))
    quantity = Decimal("0.001")
    while quantity * price < 2:
        quantity *= 10
    return f"{quantity:f}", price


# --------------------------------------------------------------------------- wrk


@dataclass
class WrkResult:
    workload: str
    base: str
    duration_s: float
    requests: int
    statuses: dict[int, int]
    socket_errors: dict[str, int]
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    wrk_rps: float  # wrk's own "Requests/sec" (every response), for cross-checking

    @property
    def non_2xx(self) -> dict[int, int]:
        return {code: n for code, n in sorted(self.statuses.items()) if not 200 <= code < 300}

    @property
    def errors(self) -> int:
        return sum(self.socket_errors.values())

    @property
    def ok(self) -> int:
        return sum(n for code, n in self.statuses.items() if 200 <= code < 300)

    @property
    def success_rps(self) -> float:
        successes = self.requests - sum(self.non_2xx.values()) - self.errors
        return max(successes, 0) / self.duration_s


def run_wrk(
    workload: Workload,
    base: str,
    *,
    duration: float,
    concurrency: int,
    threads: int,
    tokens_file: Path,
) -> WrkResult:
    args = [workload.path]
    if workload.method == "GET":
        args.append(str(tokens_file) if workload.auth else "")
    else:
        args += [str(tokens_file), secrets.token_hex(4), workload.body, workload.key_header]
    cmd = [
        "wrk", f"-t{threads}", f"-c{concurrency}", f"-d{max(1, round(duration))}s",
        "--timeout", "5s", "-s", str(workload.lua), base, "--", *args,
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=ROOT)
    if done.returncode != 0 or "BENCH " not in done.stdout:
        raise SystemExit(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return parse_wrk(workload.name, base, done.stdout)


def parse_wrk(name: str, base: str, output: str) -> WrkResult:
    summary_line = next(line for line in output.splitlines() if line.startswith("BENCH "))
    summary = {k: float(v) for k, v in (pair.split("=") for pair in summary_line.split()[1:])}
    statuses: dict[int, int] = {}
    for line in output.splitlines():
        if line.startswith("BENCH_STATUS "):
            _, code, count = line.split()
            statuses[int(code)] = int(count)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    return WrkResult(
        workload=name,
        base=base,
        duration_s=summary["duration_us"] / 1e6,
        requests=int(summary["requests"]),
        statuses=statuses,
        socket_errors={k: int(summary[k]) for k in ("connect", "read", "write", "timeout")},
        p50_ms=summary["p50_us"] / 1000,
        p90_ms=summary["p90_us"] / 1000,
        p99_ms=summary["p99_us"] / 1000,
        max_ms=summary["max_us"] / 1000,
        wrk_rps=float(rps.group(1)) if rps else 0.0,
    )


# --------------------------------------------------------------------------- report


def machine_info() -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
    versions = {}
    for dist in ("uvicorn", "fastapi", "starlette", "pydantic", "uvloop", "httptools"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "absent"
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "wrk": (wrk_version.stdout or wrk_version.stderr).split("[")[0].strip(),
        **versions,
    }


def code_info(env: dict[str, str]) -> str:
    """Which code the platform runs: the git commit (and whether the tree differs from it) and
    where `orderproc` is imported from (PYTHONPATH may point elsewhere)."""
    git = ["git", "-C", str(ROOT)]
    commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run([*git, "status", "--porcelain", "src"], capture_output=True, text=True)
    where = subprocess.run(
        [sys.executable, "-c", "import orderproc; print(orderproc.__file__)"],
        capture_output=True, text=True, env=env, cwd="/",
    )  # fmt: skip
    state = " + uncommitted changes in src/" if dirty.stdout.strip() else ""
    return f"commit {commit.stdout.strip() or '?'}{state}; orderproc from {where.stdout.strip()}"


def _codes(codes: dict[int, int]) -> str:
    return ", ".join(f"{code}: {n}" for code, n in codes.items()) or "none"


def _errors(result: WrkResult) -> str:
    return ", ".join(f"{k} {v}" for k, v in result.socket_errors.items() if v) or "0"


@dataclass
class Row:
    workload: Workload
    result: WrkResult | None = None
    hello_before: WrkResult | None = None
    hello_after: WrkResult | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def hello_rps(self) -> float:
        assert self.hello_before is not None
        assert self.hello_after is not None
        return statistics.mean([self.hello_before.success_rps, self.hello_after.success_rps])

    @property
    def ratio(self) -> float:
        assert self.result
        return self.result.success_rps / self.hello_rps

    @property
    def passed(self) -> bool:
        return self.result is not None and self.ratio >= self.workload.target


def print_table(rows: list[Row], hellos: list[WrkResult]) -> None:
    print("\nHello-world windows (A), in run order:")
    for index, hello in enumerate(hellos, 1):
        print(
            f"  A{index}: {hello.success_rps:8.0f} req/s  p50 {hello.p50_ms:.2f} ms  "
            f"p99 {hello.p99_ms:.2f} ms  non-2xx {_codes(hello.non_2xx)}  "
            f"socket errors {_errors(hello)}"
        )
    header = (
        f"{'workload':<15} {'rps (2xx)':>9} {'p50 ms':>7} {'p99 ms':>7} {'hello rps':>9} "
        f"{'ratio':>6} {'target':>6}  {'result':<6} non-2xx / socket errors"
    )
    print("\n" + header)
    print("-" * len(header))
    for row in rows:
        if row.result is None:
            print(f"{row.workload.name:<15} {'skipped':>9}  {row.note}")
            continue
        r = row.result
        print(
            f"{row.workload.name:<15} {r.success_rps:9.0f} {r.p50_ms:7.2f} {r.p99_ms:7.2f} "
            f"{row.hello_rps:9.0f} {row.ratio:6.3f} {row.workload.target:6.2f}  "
            f"{'PASS' if row.passed else 'FAIL':<6} {_codes(r.non_2xx)} / {_errors(r)}"
        )


# --------------------------------------------------------------------------- correctness


def ledger_of(base: str, token: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query = "?limit=250" + (f"&cursor={cursor}" if cursor else "")
        page = _expect(
            *call("GET", f"{base}{API}/balance/transactions{query}", token=token), 200, "ledger"
        )
        entries += page["transactions"]
        if not page["has_more"]:
            return entries
        cursor = page["next_cursor"]


def check_money(base: str, users: list[tuple[str, str]], acked_deposits: int) -> list[str]:
    """Every balance equals its ledger; the ledger holds at least every acknowledged deposit
    (a few more are fine: wrk stops counting with requests still in flight)."""
    problems: list[str] = []
    # An idempotent retry replays the first receipt and moves no money.
    username, token = users[0]
    key = f"bench-replay-{secrets.token_hex(4)}"
    first = call(
        "POST", f"{base}{API}/balance/deposit", {"amount": "1.00"},
        token=token, headers={"Idempotency-Key": key},
    )  # fmt: skip
    again = call(
        "POST", f"{base}{API}/balance/deposit", {"amount": "1.00"},
        token=token, headers={"Idempotency-Key": key},
    )  # fmt: skip
    if first[0] != 201 or again != first:
        problems.append(f"idempotent replay differs: {first} then {again}")
    acked_deposits += 1

    entries_total = 0
    for username, token in users:
        balance = _expect(*call("GET", f"{base}{API}/balance", token=token), 200, "balance")
        ledger = ledger_of(base, token)
        entries_total += len(ledger)
        total = sum((Decimal(e["amount"]) for e in ledger), Decimal(0))
        if Decimal(balance["current_balance"]) != total:
            problems.append(f"{username}: balance {balance['current_balance']} != ledger {total}")
        if ledger and Decimal(ledger[0]["balance_after"]) != total:
            problems.append(f"{username}: newest balance_after {ledger[0]['balance_after']}")
    print(
        f"  {len(users)} users: every balance equals the sum of its ledger"
        + (" — NO" if any("ledger" in p for p in problems) else "")
    )
    print(f"  ledger entries {entries_total}, deposits acknowledged to wrk {acked_deposits}")
    if entries_total < acked_deposits:
        problems.append(f"{acked_deposits - entries_total} acknowledged deposits are missing")
    print(f"  idempotent replay returns the first receipt: {'yes' if first == again else 'NO'}")
    return problems


# --------------------------------------------------------------------------- main


@contextmanager
def servers(workdir: Path) -> Iterator[tuple[Server, Server, dict[str, str]]]:
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, **BENCH_SETTINGS}
    env.pop("ORDERPROC_ACCESS_LOG", None)  # stays at its default (on)
    started: list[Server] = []
    try:
        platform_server = start_server(
            "orderproc",
            [str(bin_dir / "orderproc"), "serve", "--port", "0", "--data-dir", str(workdir / "db")],
            env,
            workdir / "orderproc.log",
            r"Order Processor on (http://\S+)",
        )
        started.append(platform_server)
        hello_server = start_server(
            "hello",
            [sys.executable, str(BENCH / "hello.py"), "--port", "0"],
            env,
            workdir / "hello.log",
            r"hello on (http://\S+)",
        )
        started.append(hello_server)
        yield platform_server, hello_server, env
    finally:
        for server in started:
            stop_server(server)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=20, help="measured seconds per window")
    parser.add_argument("--warmup", type=float, default=3, help="uncounted seconds before each")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--only", help="comma-separated workload names (default: all)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, database)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install -y wrk)")

    chosen = WORKLOADS
    if args.only:
        names = [name.strip() for name in args.only.split(",") if name.strip()]
        unknown = set(names) - {w.name for w in WORKLOADS}
        if unknown:
            have = [w.name for w in WORKLOADS]
            raise SystemExit(f"unknown workloads {sorted(unknown)}; have {have}")
        chosen = [w for w in WORKLOADS if w.name in names]

    info = machine_info()
    print("Machine: " + ", ".join(f"{k} {v}" for k, v in info.items()))
    print(
        f"Protocol: wrk -t{args.threads} -c{args.concurrency}, warm-up {args.warmup:g} s + "
        f"{args.duration:g} s per window, A B A per workload (hello-world A, shared between "
        f"neighbours), one uvicorn worker each, the same flags as `orderproc serve`"
    )
    print("Settings raised: " + " ".join(f"{k}={v}" for k, v in BENCH_SETTINGS.items()))
    print("Other settings: defaults (access log on, to a file; password profile owasp)")

    workdir = Path(tempfile.mkdtemp(prefix="orderproc-bench-"))
    rows: list[Row] = []
    hellos: list[WrkResult] = []
    problems: list[str] = []
    log_summary: dict[str, int] = {}
    try:
        with servers(workdir) as (app, hello, _env):
            print(f"Code: {code_info(_env)}")
            print(f"Platform {app.url}, hello-world {hello.url}, work dir {workdir}")
            started = time.monotonic()
            users = make_users(app.url, USERS)
            took = time.monotonic() - started
            print(f"Registered and logged in {len(users)} users in {took:.1f} s")
            tokens_file = workdir / "tokens.txt"
            tokens_file.write_text("".join(f"{token}\n" for _, token in users))
            token = users[0][1]

            def window(workload: Workload, base: str) -> tuple[WrkResult, WrkResult]:
                common = {
                    "concurrency": args.concurrency,
                    "threads": args.threads,
                    "tokens_file": tokens_file,
                }
                warm = run_wrk(workload, base, duration=args.warmup, **common)
                measured = run_wrk(workload, base, duration=args.duration, **common)
                print(
                    f"  {workload.name:<15} {measured.success_rps:8.0f} req/s (2xx)  "
                    f"p50 {measured.p50_ms:.2f} ms  p99 {measured.p99_ms:.2f} ms  "
                    f"non-2xx {_codes(measured.non_2xx)}  socket errors {_errors(measured)}",
                    flush=True,
                )
                return warm, measured

            acked_deposits = 0
            for workload in chosen:
                row = Row(workload)
                rows.append(row)
                # A POST probe sends an empty object: 422 means the route exists; nothing moves.
                probe_status, _ = call(
                    workload.method,
                    app.url + workload.path,
                    {} if workload.method == "POST" else None,
                    token=token if workload.auth else None,
                )
                if probe_status in (404, 405):
                    row.note = f"route answered {probe_status}: not built yet"
                    continue
                if not hellos:
                    hellos.append(window(HELLO, hello.url)[1])
                row.hello_before = hellos[-1]
                warm, row.result = window(workload, app.url)
                if workload.name == "deposit":
                    acked_deposits += warm.ok + row.result.ok
                hellos.append(window(HELLO, hello.url)[1])
                row.hello_after = hellos[-1]

            print_table(rows, hellos)
            if any(w.name == "deposit" for w in chosen):
                print("\nCorrectness after the run:")
                problems = check_money(app.url, users, acked_deposits)
            status, health = call("GET", app.url + "/health")
            print(f"  /health after the run: {status} {health}")
        log = (workdir / "orderproc.log").read_text(errors="replace").splitlines()
        log_summary = {
            "lines": len(log),
            "error_lines": sum('"level":"error"' in line for line in log),
            "warning_lines": sum('"level":"warning"' in line for line in log),
        }
        print(
            f"  server log: {log_summary['lines']} lines, {log_summary['error_lines']} at error, "
            f"{log_summary['warning_lines']} at warning"
        )
        for problem in problems:
            print(f"  PROBLEM: {problem}")
        if args.json:
            args.json.write_text(
                json.dumps(
                    {
                        "machine": info,
                        "settings": BENCH_SETTINGS,
                        "args": {k: str(v) for k, v in vars(args).items()},
                        "hello": [h.__dict__ for h in hellos],
                        "workloads": [
                            {
                                "name": r.workload.name,
                                "note": r.note,
                                "target": r.workload.target,
                                "ratio": r.ratio if r.result else None,
                                "passed": r.passed,
                                "result": r.result.__dict__ if r.result else None,
                                "success_rps": r.result.success_rps if r.result else None,
                            }
                            for r in rows
                        ],
                        "problems": problems,
                        "server_log": log_summary,
                    },
                    indent=2,
                    default=str,
                )
            )
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    measured = [row for row in rows if row.result is not None]
    if problems or not all(row.passed for row in measured):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
