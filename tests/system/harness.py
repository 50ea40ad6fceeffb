"""Real server processes for system tests: started on a free loopback port, killed for real."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from orderproc.testing import TEST_SECRET

_URL = re.compile(r"on (http://127\.0\.0\.1:\d+)")


class ServerProcess:
    """`orderproc serve` in its own process, on a port the OS picks (`--port 0`)."""

    def __init__(
        self,
        data_dir: Path,
        *,
        service: str | None = None,
        port: int = 0,
        probe: str = "/ready",
        **env: str,
    ) -> None:
        self.data_dir = data_dir
        self.probe = probe  # what answers 200 once it has started
        self.service = service  # one service (`orderproc serve orders`), else embedded
        self.port = port  # 0: the OS picks one
        self.env = {
            **os.environ,
            "ORDERPROC_JWT_SECRET": TEST_SECRET,
            "ORDERPROC_PASSWORD_HASH_PROFILE": "fast-insecure-for-tests",
            "ORDERPROC_RATE_LIMIT_ENABLED": "false",
            "ORDERPROC_LOGIN_BLOCK_ENABLED": "false",
            "ORDERPROC_ACCESS_LOG": "false",
            "ORDERPROC_DEPOSIT_DAILY_LIMIT": "100000000",
            "ORDERPROC_WITHDRAW_DAILY_LIMIT": "100000000",
            # A fresh install's candle history (seconds of CPU in the background) is tested by
            # the unit, API and browser tests; here it would only slow the test's own work.
            "ORDERPROC_CANDLE_BACKFILL": "false",
            **env,
        }
        self.process: subprocess.Popen[str] | None = None
        self.url = ""
        self.log = data_dir / "server.log"

    def start(self, timeout: float = 30) -> ServerProcess:
        return self.launch().wait_ready(timeout)

    def launch(self) -> ServerProcess:
        """Starts the process without waiting for it (`wait_ready` waits): several launched
        together start in parallel."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._start_at = self.log.stat().st_size if self.log.exists() else 0
        self._log_file = log = self.log.open("a")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "orderproc.cli",
                "serve",
                *([self.service] if self.service else []),
                "--port",
                str(self.port),
                "--data-dir",
                str(self.data_dir),
            ],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        return self

    def wait_ready(self, timeout: float = 30) -> ServerProcess:
        assert self.process is not None
        start_at = self._start_at
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.stop()
                raise RuntimeError(f"server exited: {self.log.read_text()[-2000:]}")
            match = _URL.search(self.log.read_text()[start_at:])
            if match and self._ready(match.group(1)):
                self.url = match.group(1)
                return self
            time.sleep(0.05)
        self.stop()  # never left running behind a failed start
        raise TimeoutError(f"server did not start: {self.log.read_text()[-2000:]}")

    def _ready(self, url: str) -> bool:
        try:
            return httpx.get(f"{url}{self.probe}", timeout=1).status_code == 200
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


def every_page(
    client: httpx.Client, path: str, auth: dict[str, str], *, limit: int = 100
) -> list[dict[str, Any]]:
    """Every item of a list (the envelope's `data`), following the cursor."""
    items: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": limit}
    while True:
        page = client.get(path, headers=auth, params=params).json()
        items.extend(page["data"])
        if not page["has_more"]:
            return items
        params["cursor"] = page["next_cursor"]


def ledger(client: httpx.Client, auth: dict[str, str]) -> list[dict[str, Any]]:
    """Every cash ledger entry of the user."""
    return every_page(client, "/api/v1/balance/transactions", auth, limit=250)


# --- retrying a money POST the way a real client does ------------------------------------------

# The connection failed while the request may already have reached the server (or before it
# did: the client cannot tell): a real client sends the same request again, with the same
# Idempotency-Key, so the server applies it once. Not retried: LocalProtocolError,
# UnsupportedProtocol, ProxyError, which are mistakes on the client's side.
DROPPED = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)
# Answers that do not settle whether an earlier, dropped attempt of the same key applied (it
# may still hold the user's lock); after a drop the client asks again until one does.
UNSETTLED_CODES = frozenset(
    {"LOCK_TIMEOUT", "CONCURRENT_UPDATE", "SERVER_BUSY", "RATE_LIMITED", "SERVICE_UNAVAILABLE"}
)
ATTEMPTS = 6
BACKOFF_SECONDS = 0.05  # doubled after each attempt: 0.05, 0.1, 0.2, 0.4, 0.8


@dataclass(frozen=True)
class Delivery:
    """The answer that settles one operation, and what the transport lost on the way."""

    response: httpx.Response
    attempts: int
    lost: tuple[type[Exception], ...]  # one per dropped attempt

    @property
    def dropped(self) -> int:
        return len(self.lost)


class Unsettled(AssertionError):
    """Every attempt was lost, or after a lost one no answer said whether it applied."""


def _key_of(headers: dict[str, str]) -> str:
    key = headers.get("Idempotency-Key")
    assert key, "retrying a POST without an Idempotency-Key could apply it twice"
    return key


def _settles(response: httpx.Response, dropped: int) -> bool:
    if dropped == 0 or response.status_code not in (409, 429, 503):
        return True
    try:
        code = response.json().get("code")
    except ValueError:
        code = None
    return code not in UNSETTLED_CODES


def _pause(attempt: int) -> float:
    return float(BACKOFF_SECONDS * 2 ** (attempt - 1))


async def post_until_settled(
    client: httpx.AsyncClient,
    path: str,
    *,
    headers: dict[str, str],
    json: Any,
    first_timeout: float | None = None,
) -> Delivery:
    """POST with retries on a dropped connection, the same Idempotency-Key every time.
    `first_timeout` gives the first attempt a time-out of its own (a client that gives up)."""
    key = _key_of(headers)
    lost: list[type[Exception]] = []
    for attempt in range(1, ATTEMPTS + 1):
        timeout = first_timeout if attempt == 1 and first_timeout else httpx.USE_CLIENT_DEFAULT
        try:
            response = await client.post(path, headers=headers, json=json, timeout=timeout)
        except DROPPED as error:
            lost.append(type(error))
            last: BaseException = error
        else:
            if _settles(response, dropped=len(lost)):
                return Delivery(response, attempt, tuple(lost))
            last = Unsettled(f"{response.status_code} {response.text}")
        if attempt < ATTEMPTS:
            await asyncio.sleep(_pause(attempt))
    raise Unsettled(f"{path} {key}: {ATTEMPTS} attempts, {len(lost)} dropped") from last


def post_until_settled_sync(
    client: httpx.Client, path: str, *, headers: dict[str, str], json: Any
) -> Delivery:
    """`post_until_settled` for a synchronous client."""
    key = _key_of(headers)
    lost: list[type[Exception]] = []
    for attempt in range(1, ATTEMPTS + 1):
        try:
            response = client.post(path, headers=headers, json=json)
        except DROPPED as error:
            lost.append(type(error))
            last: BaseException = error
        else:
            if _settles(response, dropped=len(lost)):
                return Delivery(response, attempt, tuple(lost))
            last = Unsettled(f"{response.status_code} {response.text}")
        if attempt < ATTEMPTS:
            time.sleep(_pause(attempt))
    raise Unsettled(f"{path} {key}: {ATTEMPTS} attempts, {len(lost)} dropped") from last


def deposit(client: httpx.Client, auth: dict[str, str], amount: str, key: str) -> dict[str, Any]:
    """A deposit that must succeed (test set-up), retried like any money POST, and, as a client
    should, again with the same key after a 503 once its Retry-After has passed (a set-up
    step on a loaded machine is no test of overload)."""
    for _ in range(3):
        delivery = post_until_settled_sync(
            client,
            "/api/v1/balance/deposit",
            headers={**auth, "Idempotency-Key": key},
            json={"amount": amount},
        )
        if delivery.response.status_code != 503:
            break
        time.sleep(min(float(delivery.response.headers.get("retry-after", "1")), 2.0))
    answer = delivery.response
    assert answer.is_success, f"deposit {key}: {answer.status_code} {answer.text}"
    return answer.json()  # type: ignore[no-any-return]
