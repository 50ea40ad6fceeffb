"""A real `redis-server` on a free loopback port, for tests. Nothing is mocked.

Memory only (`--save "" --appendonly no`), in the foreground, as our own child process, so it can
be stopped and started again on the same port mid-test (to take Redis away from a running client).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

MISSING_BINARY = (
    "redis-server is not on PATH. The Redis tests need a real server; install it "
    "(`apt-get install -y redis-server`, which the README's test command does when it is missing)."
)


class RedisServerMissing(RuntimeError):
    pass


def free_loopback_port() -> int:
    """A port the OS considers free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


class RedisServer:
    """`redis-server` as a child process. `start()` picks a free port the first time and keeps
    it across `stop()`/`start()`, so clients reconnect to the same address after a restart."""

    def __init__(self, binary: str | None = None, *, start_timeout: float = 10.0) -> None:
        found = binary or shutil.which("redis-server")
        if found is None:
            raise RedisServerMissing(MISSING_BINARY)
        self.binary = found
        self.start_timeout = start_timeout
        self.host = "127.0.0.1"
        self.port = 0
        self._dir = Path(tempfile.mkdtemp(prefix="orderproc-redis-"))
        self.log_path = self._dir / "redis.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs (bench/distributed.py reads its CPU)."""
        return self._process.pid if self.running and self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> RedisServer:
        if self.running:
            return self
        if not self.port:
            self.port = free_loopback_port()
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                self._argv(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        self._wait_for_ping()
        return self

    def _argv(self) -> list[str]:
        options = {
            "port": str(self.port),
            "bind": self.host,
            "save": "",
            "appendonly": "no",
            "daemonize": "no",
            "dir": str(self._dir),
            "loglevel": "warning",
            "enable-debug-command": "local",
        }
        argv = [self.binary]
        for name, value in options.items():
            argv += [f"--{name}", value]
        return argv

    def stop(self, timeout: float = 10.0) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)

    def restart(self) -> RedisServer:
        self.stop()
        return self.start()

    def close(self) -> None:
        """Stop the server and remove its working directory."""
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)

    def ping(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def _wait_for_ping(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._process = None
                raise RuntimeError(
                    f"redis-server exited at start on port {self.port}:\n{self.log_tail()}"
                )
            if self.ping():
                return
            time.sleep(0.01)
        self.stop()
        raise TimeoutError(
            f"redis-server did not answer PING on port {self.port} within "
            f"{self.start_timeout}s:\n{self.log_tail()}"
        )

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
