"""Order Processor benchmark, by the protocol in bench/README.md ("The protocol").

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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from decimal import Decimal
from importlib import metadata
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
LUA = BENCH / "lua"
API = "/api/v1"
USERS = 50

# The documented limits a benchmark run must raise (bench/README.md, "The protocol"); everything
# else stays at its default, including the access log (the server's stderr goes to a file).
BENCH_SETTINGS = {
    "ORDERPROC_RATE_LIMIT_ENABLED": "false",
    "ORDERPROC_DEPOSIT_DAILY_LIMIT": "1000000000",
    "ORDERPROC_WITHDRAW_DAILY_LIMIT": "1000000000",
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
    kind: str = ""  # "deposit", "withdraw" or "order": what the money check counts (the setup
    # funds the users before "withdraw" and "order")
    max_p99_ms: float | None = None  # a latency target
    zero_non_2xx: bool = False  # a target: no non-2xx answer and no socket error at all
    per_store: bool = False  # runs on each store under --store both
    client: str = "wrk"  # "loadgen" (bench/loadgen.py) for a latency target; see its docstring

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
        "deposit",
        "POST",
        f"{API}/balance/deposit",
        0.20,
        body='{"amount": "1.00"}',
        source="#2",
        kind="deposit",
        per_store=True,
    ),
    Workload(
        "withdraw",
        "POST",
        f"{API}/balance/withdraw",
        None,  # no target of its own: measured beside deposits (#10 compares CPU per request)
        body='{"amount": "1.00"}',
        source="#10",
        kind="withdraw",
    ),
    Workload(
        "inventory_list", "GET", f"{API}/inventory/assets?limit=50", 0.35, auth=False, source="#3"
    ),
    Workload("inventory_btc", "GET", f"{API}/inventory/assets/BTC", 0.60, auth=False, source="#3"),
    Workload(
        "market_buy_c32",
        "POST",
        f"{API}/orders",
        0.15,
        body=SPREAD_BUYS,
        source="#4",
        concurrency=32,
        kind="order",
        per_store=True,
    ),
    Workload(
        "market_buy_c64",
        "POST",
        f"{API}/orders",
        0.15,
        body=SPREAD_BUYS,
        source="#4",
        concurrency=64,
        kind="order",
        per_store=True,
    ),
    Workload(
        "one_user_c64",
        "POST",
        f"{API}/orders",
        None,
        body=SOLO_BODIES,
        source="#4",
        concurrency=64,
        users="solo",
        kind="order",
        max_p99_ms=250,
        zero_non_2xx=True,
        client="loadgen",
    ),
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
    price = Decimal(asset["data"]["price_usd"])
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
    samples: dict[int, str] = field(default_factory=dict)  # the first body of each non-2xx
    concurrency: int = 0
    cpu: dict[str, float] = field(default_factory=dict)  # server CPU over the window

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
    if workload.client == "loadgen":
        assert workload.method == "POST", "bench/loadgen.py sends POSTs"
        cmd = [
            sys.executable, str(BENCH / "loadgen.py"), base, "-c", str(concurrency),
            "-d", str(duration), "--timeout", "5", "--", *args,
        ]  # fmt: skip
    else:
        cmd = [
            "wrk", f"-t{threads}", f"-c{concurrency}", f"-d{max(1, round(duration))}s",
            "--timeout", "5s", "-s", str(workload.lua), base, "--", *args,
        ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=ROOT)
    if done.returncode != 0 or "BENCH " not in done.stdout:
        raise SystemExit(
            f"{workload.client} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
        )
    result = parse_wrk(workload.name, base, done.stdout)
    result.concurrency = concurrency
    return result


def parse_wrk(name: str, base: str, output: str) -> WrkResult:
    summary_line = next(line for line in output.splitlines() if line.startswith("BENCH "))
    summary = {k: float(v) for k, v in (pair.split("=") for pair in summary_line.split()[1:])}
    statuses: dict[int, int] = {}
    for line in output.splitlines():
        if line.startswith("BENCH_STATUS "):
            _, code, count = line.split()
            statuses[int(code)] = int(count)
    samples = {}
    for line in output.splitlines():
        if line.startswith("BENCH_SAMPLE "):
            _, code, body = line.split(" ", 2)
            samples[int(code)] = body
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
        samples=samples,
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
    source = where.stdout.strip()
    if not source.startswith(str(ROOT)):
        # A copy made by `git archive` may leave its commit in a COMMIT file beside src/.
        stamp = Path(source).parent.parent.parent / "COMMIT"
        copied = stamp.read_text().strip() if stamp.is_file() else "unknown"
        state = f" (not what runs: a copy of commit {copied} runs, see where orderproc is from)"
    else:
        state = " + uncommitted changes in src/" if dirty.stdout.strip() else ""
    return f"commit {commit.stdout.strip() or '?'}{state}; orderproc from {source}"


def _codes(codes: dict[int, int]) -> str:
    return ", ".join(f"{code}: {n}" for code, n in codes.items()) or "none"


def _errors(result: WrkResult) -> str:
    return ", ".join(f"{k} {v}" for k, v in result.socket_errors.items() if v) or "0"


@dataclass
class Row:
    workload: Workload
    store: str = "sqlite"
    result: WrkResult | None = None
    hello_before: WrkResult | None = None
    hello_after: WrkResult | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.workload.name + ("" if self.store == "sqlite" else f"@{self.store}")

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
    def failures(self) -> list[str]:
        """Every target this row misses (empty: PASS)."""
        w, r = self.workload, self.result
        if r is None:
            return ["not run"]
        missed = []
        if w.target is not None and self.ratio < w.target:
            missed.append(f"ratio {self.ratio:.3f} < {w.target}")
        if w.max_p99_ms is not None and r.p99_ms >= w.max_p99_ms:
            missed.append(f"p99 {r.p99_ms:.0f} ms >= {w.max_p99_ms:g}")
        if w.zero_non_2xx and (r.non_2xx or r.errors):
            missed.append("non-2xx or socket errors")
        return missed

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def targets(self) -> str:
        w = self.workload
        parts = [f">={w.target:g}" if w.target is not None else ""]
        if w.max_p99_ms is not None:
            parts.append(f"p99<{w.max_p99_ms:g}")
        if w.zero_non_2xx:
            parts.append("0 non-2xx")
        return " ".join(p for p in parts if p)


def print_table(rows: list[Row], hellos: list[WrkResult]) -> None:
    print("\nHello-world windows (A), in run order:")
    for index, hello in enumerate(hellos, 1):
        print(
            f"  A{index} (c{hello.concurrency}): {hello.success_rps:8.0f} req/s  "
            f"p50 {hello.p50_ms:.2f} ms  p99 {hello.p99_ms:.2f} ms  "
            f"non-2xx {_codes(hello.non_2xx)}  socket errors {_errors(hello)}"
        )
    header = (
        f"{'workload':<24} {'conc':>4} {'rps (2xx)':>9} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'hello rps':>9} {'ratio':>6} {'target':<20} {'result':<6} non-2xx / socket errors"
    )
    print("\n" + header)
    print("-" * len(header))
    for row in rows:
        if row.result is None:
            print(f"{row.label:<24} {'':>4} {'skipped':>9}  {row.note}")
            continue
        r = row.result
        print(
            f"{row.label:<24} {r.concurrency:>4} {r.success_rps:9.0f} {r.p50_ms:7.2f} "
            f"{r.p99_ms:7.2f} {row.hello_rps:9.0f} {row.ratio:6.3f} {row.targets:<20} "
            f"{'PASS' if row.passed else 'FAIL':<6} {_codes(r.non_2xx)} / {_errors(r)}"
        )
        for code, body in r.samples.items():
            print(f"{'':<24}   first {code}: {body[:200]}")


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


@dataclass
class Platform:
    """One `orderproc serve` process and its store, with the users registered on it."""

    store: str  # "sqlite" or "postgres"
    server: Server
    env: dict[str, str]
    data_dir: Path
    users: list[tuple[str, str]] = field(default_factory=list)
    tokens_file: Path | None = None
    solo: tuple[str, str] | None = None
    solo_tokens_file: Path | None = None
    funded: bool = False
    acked: dict[str, int] = field(default_factory=lambda: {"deposit": 0, "withdraw": 0, "order": 0})
    solo_info: dict[str, str] = field(default_factory=dict)


def check_money(platform: Platform) -> list[str]:
    """Every balance equals its ledger; the ledgers hold at least every acknowledged deposit and
    order (a few more are fine: wrk stops counting with requests still in flight)."""
    base = platform.server.url
    problems: list[str] = []
    tag = f"[{platform.store}]"
    # An idempotent retry replays the first receipt and moves no money.
    username, token = platform.users[0]
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
        problems.append(f"{tag} idempotent replay differs: {first} then {again}")
    platform.acked["deposit"] += 1

    kinds: dict[str, int] = {}
    everyone = platform.users + ([platform.solo] if platform.solo else [])
    for username, token in everyone:
        balance = _expect(*call("GET", f"{base}{API}/balance", token=token), 200, "balance")
        ledger = ledger_of(base, token)
        for entry in ledger:
            kinds[entry["transaction_type"]] = kinds.get(entry["transaction_type"], 0) + 1
        total = sum((Decimal(e["amount"]) for e in ledger), Decimal(0))
        if Decimal(balance["current_balance"]) != total:
            problems.append(
                f"{tag} {username}: balance {balance['current_balance']} != ledger {total}"
            )
        if ledger and Decimal(ledger[0]["balance_after"]) != total:
            problems.append(f"{tag} {username}: newest balance_after {ledger[0]['balance_after']}")
        if total < 0:
            problems.append(f"{tag} {username}: negative cash {total}")
    print(
        f"  {tag} {len(everyone)} users: every balance equals the sum of its ledger"
        + (" — NO" if any("ledger" in p for p in problems) else "")
    )
    # Funding deposits are acknowledged too: one per user of the spread buys, one for the solo.
    funding = (len(platform.users) if platform.funded else 0) + (1 if platform.solo else 0)
    deposits_seen = kinds.get("deposit", 0)
    orders_seen = kinds.get("order_payment", 0) + kinds.get("order_sale", 0)
    deposits_acked = platform.acked["deposit"] + funding
    orders_acked = platform.acked["order"]
    print(f"  {tag} cash ledger entries by type: {dict(sorted(kinds.items()))}")
    print(
        f"  {tag} deposits in ledgers {deposits_seen} (acknowledged {deposits_acked}); "
        f"order entries {orders_seen} (orders acknowledged to wrk {orders_acked}, "
        f"plus setup orders)"
    )
    if deposits_seen < deposits_acked:
        problems.append(f"{tag} {deposits_acked - deposits_seen} acknowledged deposits missing")
    withdrawals_seen, withdrawals_acked = kinds.get("withdraw", 0), platform.acked["withdraw"]
    if withdrawals_acked:
        print(
            f"  {tag} withdrawals in ledgers {withdrawals_seen} (acknowledged {withdrawals_acked})"
        )
    if withdrawals_seen < withdrawals_acked:
        problems.append(
            f"{tag} {withdrawals_acked - withdrawals_seen} acknowledged withdrawals missing"
        )
    if orders_seen < orders_acked:
        problems.append(f"{tag} {orders_acked - orders_seen} acknowledged orders missing")
    replayed = "yes" if first == again else "NO"
    print(f"  {tag} idempotent replay returns the first receipt: {replayed}")
    if platform.solo:
        _, token = platform.solo
        status, holding = call("GET", f"{base}{API}/balance/asset/{SOLO_ASSET}", token=token)
        print(f"  {tag} one-user {SOLO_ASSET} position after the run: {status} {holding}")
    return problems


def reconcile(platform: Platform) -> list[str]:
    """`orderproc reconcile` on the store, with the platform stopped (issue #4 item 4)."""
    cmd = [
        str(Path(sys.executable).parent / "orderproc"), "reconcile",
        "--data-dir", str(platform.data_dir),
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, env=platform.env, cwd=ROOT)
    output = (done.stdout + done.stderr).strip()
    url = platform.env.get("ORDERPROC_DATABASE_URL")
    shown = f"ORDERPROC_DATABASE_URL={url} " if url else ""
    print(f"  [{platform.store}] $ {shown}orderproc reconcile --data-dir {platform.data_dir}")
    for line in output.splitlines()[-20:]:
        print(f"      {line}")
    print(f"      (exit {done.returncode})")
    if done.returncode != 0 or "checked " not in output:
        return [f"[{platform.store}] reconcile exited {done.returncode}: {output[-300:]}"]
    return []


# --------------------------------------------------------------------------- setup


def setup_users(platform: Platform, workdir: Path) -> None:
    started = time.monotonic()
    names = [f"bench_user_{index:03d}" for index in range(USERS)]
    platform.users = make_users(platform.server.url, names)
    platform.tokens_file = workdir / f"tokens-{platform.store}.txt"
    platform.tokens_file.write_text("".join(f"{token}\n" for _, token in platform.users))
    took = time.monotonic() - started
    count = len(platform.users)
    print(f"[{platform.store}] registered and logged in {count} users in {took:.1f} s")


def fund_users(platform: Platform) -> None:
    """One deposit of FUNDING per user, so the buys never run short of cash."""
    if platform.funded:
        return
    base = platform.server.url
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda user: deposit(base, user[1], FUNDING), platform.users))
    platform.funded = True
    print(f"[{platform.store}] funded {len(platform.users)} users with {FUNDING} USD each")


def setup_solo(platform: Platform, workdir: Path) -> dict[str, str]:
    """The one-user workload's user: cash and a stock of SOLO_ASSET so that sells never fail for
    lack of holdings (at most 64 requests are in flight; the stock covers thousands of sells)."""
    if platform.solo:
        return platform.solo_info
    base = platform.server.url
    platform.solo = make_users(base, ["bench_solo"])[0]
    token = platform.solo[1]
    platform.solo_tokens_file = workdir / f"solo-{platform.store}.txt"
    platform.solo_tokens_file.write_text(token + "\n")
    deposit(base, token, FUNDING)
    quantity, price = solo_quantity(base)
    bought = [
        place(base, token, {"order_type": "market_buy", "asset_id": SOLO_ASSET,
                             "notional": "10000.00"})
        for _ in range(3)
    ]  # fmt: skip
    stock = sum((Decimal(order["quantity"]) for order in bought), Decimal(0))
    platform.solo_info = {"quantity": quantity, "price": f"{price}", "stock": f"{stock}"}
    print(
        f"[{platform.store}] one-user workload: bench_solo holds {stock} {SOLO_ASSET} "
        f"(price {price}), orders of {quantity} {SOLO_ASSET} "
        f"(about {Decimal(quantity) * price:.2f} USD), cash {FUNDING} USD before the stock"
    )
    return platform.solo_info


# --------------------------------------------------------------------------- main


def start_platform(
    store: str, workdir: Path, postgres: Any | None
) -> tuple[Server, dict[str, str], Path]:
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, **BENCH_SETTINGS}
    env.pop("ORDERPROC_ACCESS_LOG", None)  # stays at its default (on)
    env.pop("ORDERPROC_DATABASE_URL", None)
    data_dir = workdir / f"db-{store}"
    if store == "postgres":
        assert postgres is not None
        env["ORDERPROC_DATABASE_URL"] = postgres.dsn("postgres")
    server = start_server(
        f"orderproc-{store}",
        [str(bin_dir / "orderproc"), "serve", "--port", "0", "--data-dir", str(data_dir)],
        env,
        workdir / f"orderproc-{store}.log",
        r"Order Processor on (http://\S+)",
    )
    return server, env, data_dir


def start_postgres() -> Any:
    """A throwaway PostgreSQL through the tests' harness (tests/support/postgres_server.py)."""
    needed = [
        ROOT / "src/orderproc/common/storage/postgres.py",
        ROOT / "tests/support/postgres_server.py",
    ]
    missing = [str(path.relative_to(ROOT)) for path in needed if not path.exists()]
    if missing:
        raise SystemExit(f"--store postgres needs {', '.join(missing)} (not built yet)")
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from tests.support.postgres_server import SERVER_OPTIONS, PostgresServer

    server = PostgresServer().start()
    print(f"PostgreSQL: {server.bindir}, port {server.port}, options: {SERVER_OPTIONS}")
    return server


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds these processes have used so far (gone ones count 0)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / os.sysconf("SC_CLK_TCK")


def postgres_pids(postgres: Any | None) -> list[int]:
    """The postmaster of our throwaway cluster and its children (backends, writers)."""
    if postgres is None:
        return []
    try:
        postmaster = int((postgres.data_dir / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return []
    pids = [postmaster]
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == postmaster:
                pids.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return pids


def pg_xacts(postgres: Any | None) -> float:
    """Committed + rolled-back transactions of the benchmark's database so far (each read
    outside a transaction is one)."""
    if postgres is None:
        return 0.0
    import asyncio

    import asyncpg

    async def read() -> float:
        conn = await asyncpg.connect(postgres.dsn("postgres"))
        try:
            value = await conn.fetchval(
                "SELECT xact_commit + xact_rollback FROM pg_stat_database "
                "WHERE datname = 'postgres'"
            )
        finally:
            await conn.close()
        return float(value)

    return asyncio.run(read())


def protocol_parser(doc: str | None) -> argparse.ArgumentParser:
    """The options of the protocol's windows and of a run's output, shared by the drivers."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--duration", type=float, default=20, help="measured seconds per window")
    parser.add_argument("--warmup", type=float, default=3, help="uncounted seconds before each")
    parser.add_argument(
        "--concurrency", type=int, default=32, help="wrk connections (unless a workload sets it)"
    )
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, database)")
    return parser


def main() -> None:
    parser = protocol_parser(__doc__)
    parser.add_argument("--only", help="comma-separated workload names (default: all)")
    parser.add_argument(
        "--store", choices=("sqlite", "postgres", "both"), default="sqlite",
        help="the platform's store; both: the per-store workloads on each, in one run",
    )  # fmt: skip
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install -y wrk)")

    stores = ["sqlite", "postgres"] if args.store == "both" else [args.store]
    known = {w.name for w in WORKLOADS}
    if args.only:
        names = [name.strip() for name in args.only.split(",") if name.strip()]
    elif args.store == "both":
        names = list(COMPARE_DEFAULT)
    else:
        names = [w.name for w in WORKLOADS]
    unknown = set(names) - known
    if unknown:
        raise SystemExit(f"unknown workloads {sorted(unknown)}; have {sorted(known)}")
    chosen = [w for w in WORKLOADS if w.name in names]
    # (workload, store) in run order: under --store both each per-store workload runs on each
    # store back to back; the others on the first store only.
    plan = [(w, store) for w in chosen for store in (stores if w.per_store else stores[:1])]

    info = print_machine()
    print(
        f"Protocol: wrk -t{args.threads} -c{args.concurrency} (or the workload's own), warm-up "
        f"{args.warmup:g} s + {args.duration:g} s per window, A B A per workload (hello-world A "
        f"at the workload's concurrency, shared between neighbours), one uvicorn worker each, "
        f"the same flags as `orderproc serve`; stores: {', '.join(stores)}"
    )
    print("Settings raised: " + " ".join(f"{k}={v}" for k, v in BENCH_SETTINGS.items()))
    print("Other settings: defaults (access log on, to a file; password profile owasp)")

    workdir = Path(tempfile.mkdtemp(prefix="orderproc-bench-"))
    rows: list[Row] = []
    hellos: list[WrkResult] = []
    problems: list[str] = []
    log_summary: dict[str, dict[str, int]] = {}
    platforms: dict[str, Platform] = {}
    started: list[Server] = []
    postgres: Any | None = None
    load_after = ""
    try:
        if "postgres" in stores:
            postgres = start_postgres()
        for store in stores:
            server, env, data_dir = start_platform(store, workdir, postgres)
            started.append(server)
            platforms[store] = Platform(store, server, env, data_dir)
        hello = start_hello(workdir)
        started.append(hello)
        print(f"Code: {code_info(platforms[stores[0]].env)}")
        for platform in platforms.values():
            print(f"Platform [{platform.store}] {platform.server.url}")
        print(f"Hello-world {hello.url}, work dir {workdir}")
        for platform in platforms.values():
            setup_users(platform, workdir)

        def window(
            workload: Workload, base: str, tokens: Path, watch: Platform | None = None
        ) -> tuple[WrkResult, WrkResult]:
            common = {
                "concurrency": workload.concurrency or args.concurrency,
                "threads": args.threads,
                "tokens_file": tokens,
            }
            warm = run_wrk(workload, base, duration=args.warmup, **common)
            server_pid = (watch.server if watch else hello).process.pid
            pg_pids = postgres_pids(postgres) if watch and watch.store == "postgres" else []
            before = (cpu_seconds([server_pid]), cpu_seconds(pg_pids), pg_xacts(postgres))
            measured = run_wrk(workload, base, duration=args.duration, **common)
            after = (cpu_seconds([server_pid]), cpu_seconds(pg_pids), pg_xacts(postgres))
            ok = max(measured.ok, 1)
            measured.cpu = {
                "server_cpu_us_per_2xx": (after[0] - before[0]) / ok * 1e6,
                "server_cpu_share": (after[0] - before[0]) / measured.duration_s,
            }
            if pg_pids:
                measured.cpu["postgres_cpu_us_per_2xx"] = (after[1] - before[1]) / ok * 1e6
                measured.cpu["postgres_xacts_per_2xx"] = (after[2] - before[2]) / ok
            cpu = "  ".join(f"{k} {v:.2f}" for k, v in measured.cpu.items())
            print(
                f"  {workload.name:<15} c{measured.concurrency:<3} {measured.success_rps:8.0f} "
                f"req/s (2xx)  p50 {measured.p50_ms:.2f} ms  p99 {measured.p99_ms:.2f} ms  "
                f"non-2xx {_codes(measured.non_2xx)}  socket errors {_errors(measured)}  "
                f"[{cpu}]",
                flush=True,
            )
            return warm, measured

        def hello_at(concurrency: int) -> WrkResult:
            if not hellos or hellos[-1].concurrency != concurrency:
                hello_load = replace(HELLO, concurrency=concurrency)
                hellos.append(window(hello_load, hello.url, workdir / "none")[1])
            return hellos[-1]

        for workload, store in plan:
            platform = platforms[store]
            base = platform.server.url
            row = Row(workload, store)
            rows.append(row)
            row.note = missing_route(workload, platform)
            if row.note:
                continue
            assert platform.tokens_file is not None
            tokens = platform.tokens_file
            if workload.kind in ("order", "withdraw") and workload.users == "all":
                fund_users(platform)
            if workload.users == "solo":
                solo = setup_solo(platform, workdir)
                workload = replace(workload, body=workload.body.replace("%QTY%", solo["quantity"]))
                assert platform.solo_tokens_file is not None
                tokens = platform.solo_tokens_file
                row.extra = dict(solo)
            concurrency = workload.concurrency or args.concurrency
            row.hello_before = hello_at(concurrency)
            warm, row.result = window(workload, base, tokens, platform)
            if workload.kind:
                platform.acked[workload.kind] += warm.ok + row.result.ok
            hellos.append(window(replace(HELLO, concurrency=concurrency), hello.url, tokens)[1])
            row.hello_after = hellos[-1]

        print_table(rows, hellos)
        load_after = uptime()
        print(f"\nLoad after the windows: {load_after}")
        print("\nCorrectness after the run:")
        for platform in platforms.values():
            if any(row.store == platform.store and row.result for row in rows):
                problems += check_money(platform)
            status, health = call("GET", platform.server.url + "/health")
            print(f"  [{platform.store}] /health after the run: {status} {health}")
        for server in started:
            stop_server(server)
        for platform in platforms.values():
            problems += reconcile(platform)
            log = (workdir / f"orderproc-{platform.store}.log").read_text(errors="replace")
            log_summary[platform.store] = s = log_counts(log)
            print(
                f"  [{platform.store}] server log: {s['lines']} lines, {s['error_lines']} at "
                f"error, {s['warning_lines']} at warning"
            )
        for problem in problems:
            print(f"  PROBLEM: {problem}")
        if args.json:
            args.json.write_text(
                json.dumps(
                    {
                        **run_record(info, args, load_after, hellos),
                        "workloads": [
                            {
                                "name": r.workload.name,
                                "store": r.store,
                                "note": r.note,
                                "target": r.workload.target,
                                "targets": r.targets,
                                "ratio": r.ratio if r.result else None,
                                "hello_rps": r.hello_rps if r.result else None,
                                "passed": r.passed,
                                "failures": r.failures,
                                "result": r.result.__dict__ if r.result else None,
                                "success_rps": r.result.success_rps if r.result else None,
                                "extra": r.extra,
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
        for server in started:
            stop_server(server)
        if postgres is not None:
            postgres.close()
        remove_workdir(workdir, keep=args.keep)
    measured = [row for row in rows if row.result is not None]
    if problems or not all(row.passed for row in measured):
        raise SystemExit(1)


def print_machine() -> dict[str, str]:
    """Print the machine, versions and load before a run; the machine's facts."""
    info = machine_info()
    print("Machine: " + ", ".join(f"{k} {v}" for k, v in info.items()))
    print(f"Load before: {uptime()}")
    return info


def start_hello(workdir: Path) -> Server:
    """The hello-world baseline (bench/hello.py) under the same server and flags."""
    return start_server(
        "hello",
        [sys.executable, str(BENCH / "hello.py"), "--port", "0"],
        {**os.environ, **BENCH_SETTINGS},
        workdir / "hello.log",
        r"hello on (http://\S+)",
    )


def missing_route(workload: Workload, platform: Platform) -> str:
    """A note when the workload's route answers 404 or 405 (not built yet), else "". A POST
    probe sends an empty object: 422 means the route exists; nothing moves."""
    status, _ = call(
        workload.method,
        platform.server.url + workload.path,
        {} if workload.method == "POST" else None,
        token=platform.users[0][1] if workload.auth else None,
    )
    return f"route answered {status}: not built yet" if status in (404, 405) else ""


def log_counts(log: str) -> dict[str, int]:
    """A server log's lines, and how many of them are at error and at warning."""
    lines = log.splitlines()
    return {
        "lines": len(lines),
        "error_lines": sum('"level":"error"' in line for line in lines),
        "warning_lines": sum('"level":"warning"' in line for line in lines),
    }


def run_record(
    info: dict[str, str], args: argparse.Namespace, load_after: str, hellos: list[WrkResult]
) -> dict[str, Any]:
    """What every JSON record of a run starts with: machine, settings, arguments, load after,
    the hello-world windows."""
    return {
        "machine": info,
        "settings": BENCH_SETTINGS,
        "args": {k: str(v) for k, v in vars(args).items()},
        "load_after": load_after,
        "hello": [h.__dict__ for h in hellos],
    }


def remove_workdir(workdir: Path, *, keep: bool) -> None:
    if keep:
        print(f"kept {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)


def uptime() -> str:
    try:
        one, five, fifteen = Path("/proc/loadavg").read_text().split()[:3]
    except OSError:
        return "unknown"
    return f"load average {one}, {five}, {fifteen} (1, 5, 15 min)"


if __name__ == "__main__":
    main()
