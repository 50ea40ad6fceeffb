"""What the gateway's proxy costs: the same hello-world request direct and through the gateway.

    python bench/proxy.py                      # 3 s warm-up + 20 s windows, 8 connections
    python bench/proxy.py --duration 10 --warmup 2 --connections 8

Starts `bench/hello.py` (the protocol's bare hello-world app) as the upstream of every service,
and the gateway (`orderproc.gateway.proxy.create_proxy_app`) in front of it under the same
uvicorn flags, then runs windows A (direct to hello), B (through the gateway), A again, with a
closed-loop client of its own at `--connections` (keep-alive, `GET /hello`, which the routing
table gives to the web UI's upstream; no token, so no token check). For each window it prints
2xx requests per second, latency p50/p90/p99 and every non-2xx, and each server's CPU per 2xx
request (from /proc). The figures the targets are about:

- gateway CPU per proxied request / hello CPU per direct request (target: at most 1.5);
- added p50 latency: p50 through the gateway - mean p50 of the direct windows (target: at most
  1 ms at 8 connections).

The gateway runs with default settings except these, printed with the figures: the rate limit
raised (so a window never meets it), the JWT secret (a random one) and an in-memory store (only
revocation checks would use it). Its access log is on, as by default, into a file.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import uvloop

HERE = Path(__file__).resolve().parent
PATH = "/hello"
RATE_LIMIT = 100_000_000


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start(
    cmd: list[str], env: dict[str, str], log: Path, pattern: str
) -> tuple[subprocess.Popen[bytes], str]:
    handle = log.open("wb")
    process = subprocess.Popen(cmd, stdout=handle, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = re.search(pattern + r" on (http://\S+)", log.read_text(errors="replace"))
        if found:
            return process, found.group(1)
        if process.poll() is not None:
            break
        time.sleep(0.05)
    process.kill()
    raise SystemExit(f"{cmd} did not start:\n{log.read_text(errors='replace')[-3000:]}")


@dataclass
class Window:
    name: str
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: int = 0
    seconds: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> int:
        return sum(n for s, n in self.statuses.items() if 200 <= s < 300)

    def p(self, share: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * share))] if ordered else 0.0

    def cpu_us(self, server: str) -> float:
        return self.cpu[server] / max(1, self.ok) * 1e6


async def _client(host: str, port: int, until: float, window: Window, record: bool) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    request = f"GET {PATH} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
    try:
        while time.perf_counter() < until:
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            status = int(lines[0].split()[1])
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            if record:
                window.latencies.append(time.perf_counter() - started)
                window.statuses[status] += 1
    except (OSError, asyncio.IncompleteReadError):
        window.errors += 1
    finally:
        writer.close()


async def _load(url: str, connections: int, seconds: float, window: Window, record: bool) -> None:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    until = time.perf_counter() + seconds
    await asyncio.gather(
        *(_client(host, int(port), until, window, record) for _ in range(connections))
    )


def run_window(name: str, url: str, pids: dict[str, int], args: argparse.Namespace) -> Window:
    window = Window(name)
    uvloop.run(_load(url, args.connections, args.warmup, window, record=False))
    before = {server: cpu_seconds(pid) for server, pid in pids.items()}
    started = time.perf_counter()
    uvloop.run(_load(url, args.connections, args.duration, window, record=True))
    window.seconds = time.perf_counter() - started
    window.cpu = {server: cpu_seconds(pid) - before[server] for server, pid in pids.items()}
    return window


def serve_gateway(upstream: str) -> None:
    """The gateway in this process, every service behind `upstream` (`--serve-gateway`)."""
    import socket

    import uvicorn

    from orderproc.common.logging import configure_logging
    from orderproc.common.settings import Settings
    from orderproc.gateway.proxy import PROXIED, create_proxy_app

    settings = Settings(
        mode="distributed",
        jwt_secret=secrets.token_urlsafe(48),
        database_url="memory://",
        rate_limit_per_minute=RATE_LIMIT,
    )
    configure_logging(service="gateway", level=settings.log_level)
    app = create_proxy_app(settings, dict.fromkeys(PROXIED, upstream))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    print(f"gateway on http://127.0.0.1:{sock.getsockname()[1]}", file=sys.stderr, flush=True)
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=5,
        server_header=False,
        proxy_headers=False,
        lifespan="on",
    )
    uvicorn.Server(config).run(sockets=[sock])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=20)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--serve-gateway", metavar="UPSTREAM", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_gateway:
        serve_gateway(args.serve_gateway)
        return
    workdir = Path(tempfile.mkdtemp(prefix="bench-proxy-"))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    hello, hello_url = start(
        [sys.executable, str(HERE / "hello.py"), "--port", "0"], env, workdir / "hello.log", "hello"
    )
    gateway, gateway_url = start(
        [sys.executable, str(HERE / "proxy.py"), "--serve-gateway", hello_url],
        env,
        workdir / "gateway.log",
        "gateway",
    )
    pids = {"hello": hello.pid, "gateway": gateway.pid}
    try:
        print(
            f"cpus: {os.cpu_count()}; connections: {args.connections}; "
            f"windows: {args.warmup:g} s warm-up + {args.duration:g} s; "
            f"gateway settings raised: rate_limit_per_minute={RATE_LIMIT}; logs: {workdir}"
        )
        windows = [
            run_window("direct A", hello_url, pids, args),
            run_window("through", gateway_url, pids, args),
            run_window("direct A'", hello_url, pids, args),
        ]
    finally:
        for process in (gateway, hello):
            process.terminate()
            process.wait(timeout=10)
    print(
        f"{'window':<10} {'2xx/s':>8} {'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7} "
        f"{'hello cpu/2xx':>14} {'gateway cpu/2xx':>16}  non-2xx, errors"
    )
    for w in windows:
        bad = {s: n for s, n in w.statuses.items() if not 200 <= s < 300}
        print(
            f"{w.name:<10} {w.ok / w.seconds:8.0f} {w.p(0.5) * 1e3:7.3f} {w.p(0.9) * 1e3:7.3f} "
            f"{w.p(0.99) * 1e3:7.3f} {w.cpu_us('hello'):11.1f} µs {w.cpu_us('gateway'):13.1f} µs"
            f"  {bad or '-'}, {w.errors}"
        )
    direct = [windows[0], windows[2]]
    hello_cpu = sum(w.cpu_us("hello") for w in direct) / 2
    through = windows[1]
    ratio = through.cpu_us("gateway") / hello_cpu
    added = through.p(0.5) - sum(w.p(0.5) for w in direct) / 2
    rps = sum(w.ok / w.seconds for w in direct) / 2
    print(
        f"gateway CPU per proxied request / hello CPU per request: {ratio:.2f} (target <= 1.5)\n"
        f"added p50 latency: {added * 1e3:.3f} ms (target <= 1 ms)\n"
        f"through/direct throughput: {through.ok / through.seconds / rps:.2f}"
    )


if __name__ == "__main__":
    main()
