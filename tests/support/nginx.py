"""A real `nginx` (Debian's package; build.sh installs it) as our own child process, for tests.

`nginx_binary()` finds it: missing, the test fails in CI (`CI=true`) and is skipped elsewhere.
`Nginx(site_conf, workdir)` wraps a site configuration (the text `orderproc.deploy.nginx` renders,
which belongs in nginx's http context) in a main configuration of its own, with every path that
nginx writes under `workdir`; `check()` runs `nginx -t` on it, `start()` serves it in the
foreground and `stop()` ends it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

import pytest

MISSING = (
    "nginx is missing; build.sh installs it (apt-get install -y --no-install-recommends nginx)"
)


def nginx_binary() -> str:
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        if os.environ.get("CI", "").lower() in {"true", "1", "yes"}:
            pytest.fail(MISSING, pytrace=False)
        pytest.skip(MISSING)
    return found


class Nginx:
    def __init__(self, site_conf: str, workdir: Path, *, port: int) -> None:
        self.binary = nginx_binary()
        self.workdir = workdir
        self.port = port
        workdir.mkdir(parents=True, exist_ok=True)
        workdir.chmod(0o755)  # workers run as an unprivileged user when the tests run as root
        self.error_log = workdir / "error.log"
        (workdir / "orderproc.conf").write_text(site_conf)
        self.conf = workdir / "nginx.conf"
        temp = "".join(
            f"    {kind}_temp_path {workdir / kind};\n"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        self.conf.write_text(
            "worker_processes 1;\n"
            f"pid {workdir / 'nginx.pid'};\n"
            f"error_log {self.error_log} info;\n"
            "events { worker_connections 256; }\n"
            "http {\n"
            "    access_log off;\n"
            f"{temp}"
            f"    include {workdir / 'orderproc.conf'};\n"
            "}\n"
        )
        self._process: subprocess.Popen[bytes] | None = None

    def _command(self, *extra: str) -> list[str]:
        return [
            self.binary,
            "-c",
            str(self.conf),
            "-p",
            str(self.workdir),
            "-e",
            str(self.error_log),
            *extra,
        ]

    def check(self) -> subprocess.CompletedProcess[str]:
        """`nginx -t`: the configuration parses and every name in it resolves."""
        return subprocess.run(self._command("-t"), capture_output=True, text=True, timeout=60)

    def start(self, timeout: float = 10.0) -> Nginx:
        self._process = subprocess.Popen(
            self._command("-g", "daemon off;"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"nginx exited at start:\n{self.log()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"nginx did not listen on {self.port}:\n{self.log()}")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()  # SIGTERM: fast shutdown of the master and its workers
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def log(self) -> str:
        return self.error_log.read_text() if self.error_log.exists() else ""

    def __enter__(self) -> Nginx:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
