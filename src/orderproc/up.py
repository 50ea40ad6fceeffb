"""`orderproc up`: the whole platform on this machine, each service in a process of its own.

It starts a local `redis-server` on a free loopback port when `ORDERPROC_REDIS_URL` is not set
(shared locks between the processes), then `orderproc serve users`, `inventory`, `orders`,
the gateway and `webui`, one after another (each waits for the one before to answer `/health`,
so the store is migrated and the catalog seeded once), each on a free loopback port, the gateway
on `--port` (8080 by default). It prints where each listens, streams every line each one
writes prefixed with its name, and on Ctrl-C or SIGTERM stops them all (SIGTERM, then SIGKILL
after a grace period). If one exits on its own, the rest are stopped and `up` fails.

Every process shares the data dir, the database (`ORDERPROC_DATABASE_URL`, or the data dir's
SQLite file) and the JWT secret (`ORDERPROC_JWT_SECRET`, or the data dir's own). The gateway is
the routing proxy (`orderproc.gateway.proxy`), told where each service listens through
`ORDERPROC_GATEWAY_UPSTREAMS`; the web UI finds the API at the gateway (`ORDERPROC_API_URL`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO

import httpx

from orderproc.common.runtime import jwt_secret_for
from orderproc.common.settings import Settings

SERVICES = ("users", "inventory", "orders", "gateway", "webui")  # in start order
START_TIMEOUT = 60.0
STOP_GRACE = 10.0
_NAME_WIDTH = max(len(n) for n in (*SERVICES, "redis"))


class UpFailed(Exception):
    """A process of the platform could not start, or stopped on its own."""


@dataclass
class Child:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    pump: threading.Thread = field(init=False)


def free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
    return port


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class Platform:
    """The children of one `orderproc up`, started and stopped together."""

    def __init__(self, settings: Settings, *, out: IO[str] | None = None) -> None:
        self.settings = settings
        self.out = out or sys.stdout
        self.children: list[Child] = []
        self._print_lock = threading.Lock()
        self._stopping = threading.Event()

    # --- output ----------------------------------------------------------------------------

    def say(self, line: str) -> None:
        with self._print_lock:
            self.out.write(line + "\n")
            self.out.flush()

    def _pump(self, name: str, stream: IO[bytes]) -> None:
        prefix = f"{name:<{_NAME_WIDTH}} | "
        for raw in iter(stream.readline, b""):
            self.say(prefix + raw.decode(errors="replace").rstrip("\n"))
        stream.close()

    # --- starting --------------------------------------------------------------------------

    def _spawn(self, name: str, url: str, argv: list[str], env: dict[str, str]) -> Child:
        process = subprocess.Popen(  # noqa: S603 (our own interpreter, or redis-server, and flags)
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            # A group of its own: Ctrl-C reaches `up` alone, which stops the children in order.
            start_new_session=True,
        )
        child = Child(name, url, process)
        assert process.stdout is not None
        child.pump = threading.Thread(
            target=self._pump, args=(name, process.stdout), name=f"log {name}", daemon=True
        )
        child.pump.start()
        self.children.append(child)
        return child

    def start_redis(self, host: str) -> str:
        binary = shutil.which("redis-server")
        if binary is None:
            raise UpFailed(
                "redis-server is not on PATH: install it (apt-get install redis-server) or set "
                "ORDERPROC_REDIS_URL"
            )
        port = free_port(host)
        where = Path(self.settings.data_dir) / "redis"
        where.mkdir(parents=True, exist_ok=True)
        argv = [binary, "--bind", host, "--port", str(port), "--save", "", "--appendonly", "no"]
        argv += ["--dir", str(where.resolve())]
        child = self._spawn("redis", f"redis://{host}:{port}/0", argv, dict(os.environ))
        self._wait(child, lambda: _redis_answers(host, port))
        return child.url

    def start_service(self, name: str, host: str, port: int, env: dict[str, str]) -> Child:
        url = _url(host, port)
        argv = [sys.executable, "-m", "orderproc.cli", "serve", name, "--host", host]
        argv += ["--port", str(port)]
        child = self._spawn(name, url, argv, env)
        self._wait(child, lambda: _healthy(url))
        return child

    def _wait(self, child: Child, answers: Callable[[], bool]) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._stopping.is_set():
                raise UpFailed("stopped while starting")
            if child.process.poll() is not None:
                raise UpFailed(f"{child.name} exited with {child.process.returncode} at start")
            if answers():
                return
            time.sleep(0.05)
        raise UpFailed(f"{child.name} did not answer within {START_TIMEOUT:.0f} s")

    # --- stopping --------------------------------------------------------------------------

    def request_stop(self, signum: int, frame: FrameType | None) -> None:
        self._stopping.set()

    def stop(self) -> None:
        self._stopping.set()
        for child in reversed(self.children):
            if child.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        for child in reversed(self.children):
            try:
                child.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()
        for child in self.children:
            child.pump.join(timeout=2)

    def watch(self) -> None:
        """Until a signal asks to stop, or a child stops on its own."""
        while not self._stopping.wait(0.2):
            for child in self.children:
                if child.process.poll() is not None:
                    raise UpFailed(f"{child.name} exited with {child.process.returncode}")


def run(settings: Settings, *, out: IO[str] | None = None) -> None:
    """Start the platform, serve until Ctrl-C or SIGTERM, stop it. Raises `UpFailed`."""
    host = settings.host
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per start-up probe
    platform = Platform(settings, out=out)
    previous = {
        sig: signal.signal(sig, platform.request_stop) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "ORDERPROC_DATA_DIR": str(Path(settings.data_dir).resolve()),
            "ORDERPROC_JWT_SECRET": jwt_secret_for(settings),
            "ORDERPROC_DATABASE_URL": settings.resolved_database_url,
        }
        redis_url = settings.redis_url or platform.start_redis(host)
        env["ORDERPROC_REDIS_URL"] = redis_url
        ports = {name: free_port(host) for name in SERVICES}
        ports["gateway"] = settings.port or free_port(host)
        gateway_url = _url(host, ports["gateway"])
        env["ORDERPROC_API_URL"] = gateway_url  # where the web UI on its own finds the API
        upstreams = {name: _url(host, ports[name]) for name in SERVICES if name != "gateway"}
        env["ORDERPROC_GATEWAY_UPSTREAMS"] = json.dumps(upstreams)
        for name in SERVICES:
            platform.start_service(name, host, ports[name], env)
        platform.say("")
        for child in platform.children:
            platform.say(f"  {child.name:<{_NAME_WIDTH}}  {child.url}")
        platform.say(f"Order Processor (each service its own process) on {gateway_url}")
        platform.say("")
        platform.watch()
    finally:
        platform.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=1.0, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False


def _redis_answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False
