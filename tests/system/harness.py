"""Real server processes for system tests: started on a free loopback port, killed for real."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from orderproc.testing import TEST_SECRET

_URL = re.compile(r"on (http://127\.0\.0\.1:\d+)")


class ServerProcess:
    """`orderproc serve` in its own process, on a port the OS picks (`--port 0`)."""

    def __init__(self, data_dir: Path, **env: str) -> None:
        self.data_dir = data_dir
        self.env = {
            **os.environ,
            "ORDERPROC_JWT_SECRET": TEST_SECRET,
            "ORDERPROC_PASSWORD_HASH_PROFILE": "fast-insecure-for-tests",
            "ORDERPROC_RATE_LIMIT_ENABLED": "false",
            "ORDERPROC_LOGIN_BLOCK_ENABLED": "false",
            "ORDERPROC_ACCESS_LOG": "false",
            "ORDERPROC_DEPOSIT_DAILY_LIMIT": "100000000",
            "ORDERPROC_WITHDRAW_DAILY_LIMIT": "100000000",
            **env,
        }
        self.process: subprocess.Popen[str] | None = None
        self.url = ""
        self.log = data_dir / "server.log"

    def start(self, timeout: float = 30) -> ServerProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        start_at = self.log.stat().st_size if self.log.exists() else 0
        self._log_file = log = self.log.open("a")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "orderproc.cli",
                "serve",
                "--port",
                "0",
                "--data-dir",
                str(self.data_dir),
            ],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-2000:]}")
            match = _URL.search(self.log.read_text()[start_at:])
            if match and self._ready(match.group(1)):
                self.url = match.group(1)
                return self
            time.sleep(0.05)
        raise TimeoutError(f"server did not start: {self.log.read_text()[-2000:]}")

    def _ready(self, url: str) -> bool:
        try:
            return httpx.get(f"{url}/ready", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def kill_hard(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
        self._log_file.close()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill_hard()
        if self.process:
            self._log_file.close()


PASSWORD = "correct horse battery staple"


def register_and_login(client: httpx.Client, username: str) -> dict[str, str]:
    client.post(
        "/api/v1/auth/register",
        json={
            "username": username,
            "email": f"{username}@example.com",
            "password": PASSWORD,
            "first_name": "Test",
            "last_name": "User",
        },
    ).raise_for_status()
    login = client.post("/api/v1/auth/login", json={"username": username, "password": PASSWORD})
    login.raise_for_status()
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


def ledger(client: httpx.Client, auth: dict[str, str]) -> list[dict[str, Any]]:
    """Every cash ledger entry of the user, following the cursor."""
    entries: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 250}
    while True:
        page = client.get("/api/v1/balance/transactions", headers=auth, params=params).json()
        entries.extend(page["transactions"])
        if not page["has_more"]:
            return entries
        params["cursor"] = page["next_cursor"]
