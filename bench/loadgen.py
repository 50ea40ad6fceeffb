"""A closed-loop HTTP/1.1 load generator for latency targets, printing what bench/run.py reads.

    python bench/loadgen.py URL -c 64 -d 20 -- PATH TOKENS_FILE NONCE BODIES [KEY_HEADER]

The arguments after `--` are post.lua's: connection i sends POST PATH with token i of
TOKENS_FILE (round-robin), a fresh idempotency key per request ("g<NONCE>-<conn>-<n>",
also replacing %KEY% in a body), and the BODIES (one per line) in turn, connection i starting
at body i, so at any moment half the connections of a buy/sell pair are buying.

Why not wrk for latency: on this 2-core box wrk shares the cores with the server and its tail
latencies are its own. Measured on the same server in one sitting: hello-world at 128
connections, p99 231 ms under `wrk -t1`, 784 ms under `wrk -t2`, 69 ms under `hey` and 35 ms
here; market orders at 64 connections, p99 1.4-2.0 s under wrk while the server's own timing
(headers parsed to response written) had p99 130 ms. wrk stays the tool for throughput.

Latency is measured from writing a request to reading the end of its response; every status and
every socket error is counted. Output: the BENCH lines of bench/lua/counting.lua and
"Requests/sec:".
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import uvloop


class Run:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.statuses: Counter[int] = Counter()
        self.errors: Counter[str] = Counter()
        self.samples: dict[int, str] = {}


async def connection(
    number: int, host: str, port: int, token: str, bodies: list[str], args: argparse.Namespace,
    until: float, run: Run,
) -> None:  # fmt: skip
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError:
        run.errors["connect"] += 1
        return
    sent = 0
    try:
        while time.perf_counter() < until:
            body = bodies[(number + sent) % len(bodies)]
            key = f"g{args.nonce}-{number}-{sent}"
            payload = body.replace("%KEY%", key).encode()
            head = (
                f"POST {args.path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(payload)}\r\n"
            )
            if args.key_header != "-":
                head += f"{args.key_header}: {key}\r\n"
            started = time.perf_counter()
            writer.write(head.encode() + b"\r\n" + payload)
            try:
                status, answer = await asyncio.wait_for(read_response(reader), args.timeout)
            except TimeoutError:
                run.errors["timeout"] += 1
                return
            run.latencies.append(time.perf_counter() - started)
            run.statuses[status] += 1
            if status >= 300 and status not in run.samples:
                run.samples[status] = answer.decode(errors="replace").replace("\n", " ")[:300]
            sent += 1
    except (OSError, asyncio.IncompleteReadError):
        run.errors["read"] += 1
    finally:
        writer.close()


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return status, await reader.readexactly(length)


def percentile(ordered: list[float], share: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))] if ordered else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("-c", "--connections", type=int, default=64)
    parser.add_argument("-d", "--duration", type=float, default=20)
    parser.add_argument("--timeout", type=float, default=5)
    parser.add_argument("path")
    parser.add_argument("tokens")
    parser.add_argument("nonce")
    parser.add_argument("bodies")
    parser.add_argument("key_header", nargs="?", default="Idempotency-Key")
    args = parser.parse_args()
    tokens = [line.strip() for line in Path(args.tokens).read_text().splitlines() if line.strip()]
    bodies = [line for line in args.bodies.splitlines() if line]
    uvloop.run(drive(args, tokens, bodies))


async def drive(args: argparse.Namespace, tokens: list[str], bodies: list[str]) -> None:
    target = urlsplit(args.url)
    run = Run()
    started = time.perf_counter()
    until = started + args.duration
    await asyncio.gather(
        *(
            connection(n, target.hostname or "127.0.0.1", target.port or 80,
                       tokens[n % len(tokens)], bodies, args, until, run)
            for n in range(args.connections)
        )
    )  # fmt: skip
    elapsed = time.perf_counter() - started
    ordered = sorted(run.latencies)
    total = len(ordered)
    mean = sum(ordered) / total if total else 0.0
    e = run.errors
    print(
        f"BENCH requests={total} duration_us={int(elapsed * 1e6)} bytes=0 "
        f"connect={e['connect']} read={e['read']} write={e['write']} timeout={e['timeout']} "
        f"status_errors=0 p50_us={int(percentile(ordered, 0.5) * 1e6)} "
        f"p90_us={int(percentile(ordered, 0.9) * 1e6)} "
        f"p99_us={int(percentile(ordered, 0.99) * 1e6)} "
        f"max_us={int((ordered[-1] if ordered else 0) * 1e6)} mean_us={mean * 1e6:.1f}"
    )
    for code, count in sorted(run.statuses.items()):
        print(f"BENCH_STATUS {code} {count}")
    for code, body in run.samples.items():
        print(f"BENCH_SAMPLE {code} {body}")
    print(f"Requests/sec: {total / elapsed:.2f}")


if __name__ == "__main__":
    main()
