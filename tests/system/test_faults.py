"""Faults answer as faults, through a real `orderproc serve`: its disk fills up under a burst of
registrations and deposits, and every answer is a success or a 503 problem with Retry-After
(no 500, no reset connection); once space is back, every acknowledged write is there, nothing
that was refused is, balances equal ledgers (`orderproc reconcile`) and writes work again.

The disk is a 3 MB tmpfs (root can mount one). Where mounting is not allowed, the server's
RLIMIT_FSIZE stands in for it (a write past the limit fails with EFBIG; Python ignores
SIGXFSZ); where neither is possible the test fails in CI and is skipped elsewhere.
"""

from __future__ import annotations

import asyncio
import itertools
import resource
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from orderproc.errors.problem import PROBLEM_JSON
from tests.support.small_disk import Tmpfs, unavailable
from tests.system.harness import PASSWORD, ServerProcess, ledger, register_and_login

pytestmark = pytest.mark.system

DISK_BYTES = 3 << 20
ROOMY_BYTES = 64 << 20
SPARE_BYTES = 384 << 10  # what the filler leaves: the burst takes it within a few hundred writes
DEPOSITORS = 4
ROUND = 96  # requests per round of the burst
ROUNDS = 8  # at most; the burst stops once enough requests were refused
ENOUGH_REFUSALS = 40
STORE_FAULT_CODES = {"STORE_UNAVAILABLE", "STORE_FULL", "STORE_READ_ONLY", "STORE_TIMEOUT"}


@dataclass
class Disk:
    """Where the server's data lives, and how to take its free space and give it back."""

    data_dir: Path
    fill: Callable[[ServerProcess], None]
    free: Callable[[ServerProcess], None]
    how: str


def _files_under(path: Path) -> list[Path]:
    return [p for p in path.rglob("*") if p.is_file()]


def _rlimit_disk(tmp_path: Path) -> Disk:
    """RLIMIT_FSIZE on the running server: no write may reach past a few pages beyond its
    largest file, so the next checkpoint or WAL append that grows a file fails."""
    data_dir = tmp_path / "data"

    def fill(server: ServerProcess) -> None:
        assert server.process is not None
        largest = max(p.stat().st_size for p in _files_under(data_dir))
        _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.prlimit(server.process.pid, resource.RLIMIT_FSIZE, (largest + (16 << 10), hard))

    def free(server: ServerProcess) -> None:
        assert server.process is not None
        _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.prlimit(server.process.pid, resource.RLIMIT_FSIZE, (hard, hard))

    return Disk(data_dir, fill, free, "RLIMIT_FSIZE")


def _tmpfs_disk(mounted: Tmpfs) -> Disk:
    """A filler file takes all but `SPARE_BYTES` of the tmpfs. Freeing deletes it and remounts
    the tmpfs bigger: the WAL may grow to about 16 MB before a RESTART checkpoint (4,000 frames),
    so the retries below could fill 3 MB again on their own."""

    def fill(_: ServerProcess) -> None:
        mounted.fill(leave=SPARE_BYTES)

    def free(_: ServerProcess) -> None:
        mounted.release()
        mounted.grow(ROOMY_BYTES)

    return Disk(mounted.path / "data", fill, free, "tmpfs")


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Disk]:
    mounted = Tmpfs.mount(tmp_path / "disk", DISK_BYTES)
    if mounted is not None:
        try:
            yield _tmpfs_disk(mounted)
        finally:
            mounted.unmount()  # after the server (which depends on this) has stopped
        return
    if sys.platform != "linux" or not hasattr(resource, "prlimit"):
        unavailable(f"no small disk: {Tmpfs.why_not}; and no RLIMIT_FSIZE on a running process")
    yield _rlimit_disk(tmp_path)


@pytest.fixture
def server(disk: Disk, tmp_path: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(disk.data_dir)
    process.log = tmp_path / "server.log"  # off the small disk: the log must not fill it
    process.start()
    try:
        yield process
    finally:
        process.stop()


@dataclass
class Burst:
    """What the clients were told."""

    deposits: dict[str, tuple[int, Decimal, httpx.Response]] = field(default_factory=dict)
    registrations: dict[str, httpx.Response] = field(default_factory=dict)
    lost: list[BaseException] = field(default_factory=list)

    def answers(self) -> list[httpx.Response]:
        return [r for _, _, r in self.deposits.values()] + list(self.registrations.values())

    def refused(self) -> int:
        return sum(1 for r in self.answers() if r.status_code == 503)


async def burst(url: str, auths: list[dict[str, str]], tally: Burst) -> None:
    """Rounds of deposits (each with its own key and amount) and registrations, 32 at a time,
    until the store has refused enough of them."""
    numbers = itertools.count(1)
    limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        gate = asyncio.Semaphore(32)

        async def deposit(auth: dict[str, str], user: int, n: int) -> None:
            key, amount = f"burst-{n}", Decimal(n) / 100 + 1
            async with gate:
                try:
                    response = await client.post(
                        "/api/v1/balance/deposit",
                        headers={**auth, "Idempotency-Key": key},
                        json={"amount": str(amount)},
                    )
                except httpx.HTTPError as lost:
                    tally.lost.append(lost)
                    return
            tally.deposits[key] = (user, amount, response)

        async def register(n: int) -> None:
            username = f"newcomer{n}"
            body = {
                "username": username,
                "email": f"{username}@example.com",
                "password": PASSWORD,
                "first_name": "New",
                "last_name": "Comer",
            }
            async with gate:
                try:
                    response = await client.post("/api/v1/auth/register", json=body)
                except httpx.HTTPError as lost:
                    tally.lost.append(lost)
                    return
            tally.registrations[username] = response

        for _ in range(ROUNDS):
            work = []
            for _ in range(ROUND):
                n = next(numbers)
                if n % 6 == 0:
                    work.append(register(n))
                else:
                    user = n % DEPOSITORS
                    work.append(deposit(auths[user], user, n))
            await asyncio.gather(*work)
            if tally.refused() >= ENOUGH_REFUSALS:
                return


def assert_fault_answer(response: httpx.Response) -> None:
    assert response.headers["content-type"] == PROBLEM_JSON, response.text
    assert int(response.headers["retry-after"]) > 0
    problem = response.json()
    assert problem["status"] == 503
    assert problem["code"] in STORE_FAULT_CODES, problem
    assert problem["request_id"] == response.headers["x-request-id"]


def test_a_full_disk_answers_503_and_loses_nothing(disk: Disk, server: ServerProcess) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        auths = [register_and_login(client, f"depositor{i}") for i in range(DEPOSITORS)]

        disk.fill(server)
        tally = Burst()
        asyncio.run(burst(server.url, auths, tally))

        # Under the fault: successes and 503 problems only, every connection answered.
        assert tally.lost == [], f"{len(tally.lost)} requests got no answer: {tally.lost[:3]}"
        statuses = Counter(r.status_code for r in tally.answers())
        assert set(statuses) <= {201, 503}, statuses
        assert statuses[503] >= ENOUGH_REFUSALS, f"the disk never filled ({disk.how}): {statuses}"
        for response in tally.answers():
            if response.status_code == 503:
                assert_fault_answer(response)

        disk.free(server)

        # Every acknowledged deposit is in its user's ledger once, under its key, as the receipt
        # said; no refused one is.
        for user, auth in enumerate(auths):
            mine = {k: v for k, v in tally.deposits.items() if v[0] == user}
            acked = {
                key: response.json()["transaction_id"]
                for key, (_, _, response) in mine.items()
                if response.status_code == 201
            }
            entries = [e for e in ledger(client, auth) if e["transaction_type"] == "deposit"]
            assert {e["reference_id"]: e["transaction_id"] for e in entries} == acked
            assert len(entries) == len(acked)

        # Acknowledged registrations can log in; refused ones left nothing behind.
        for username, response in tally.registrations.items():
            login = client.post(
                "/api/v1/auth/login", json={"username": username, "password": PASSWORD}
            )
            assert login.status_code == (200 if response.status_code == 201 else 401), username

        # Writes work again: each refused deposit, sent again with its key, now applies.
        expected = [Decimal(0)] * DEPOSITORS
        for key, (owner, amount, response) in tally.deposits.items():
            if response.status_code == 503:
                retried = client.post(
                    "/api/v1/balance/deposit",
                    headers={**auths[owner], "Idempotency-Key": key},
                    json={"amount": str(amount)},
                )
                assert retried.status_code == 201, retried.text
            expected[owner] += amount
        for user, auth in enumerate(auths):
            balance = client.get("/api/v1/balance", headers=auth).json()
            assert Decimal(balance["current_balance"]) == expected[user]

    reconcile = subprocess.run(
        [sys.executable, "-m", "orderproc.cli", "reconcile", "--data-dir", str(disk.data_dir)],
        capture_output=True,
        text=True,
        env=server.env,
        check=False,
        timeout=60,
    )
    assert reconcile.returncode == 0, reconcile.stdout + reconcile.stderr
    log = server.log.read_text()
    assert "unexpected error" not in log  # no 500 was rendered
    assert "STORE_FULL" in log or "STORE_UNAVAILABLE" in log  # the operator is told


@pytest.mark.parametrize(
    ("ci", "outcome"), [("true", pytest.fail.Exception), ("", pytest.skip.Exception)]
)
def test_a_fault_that_cannot_be_made_fails_in_ci_and_skips_elsewhere(
    monkeypatch: pytest.MonkeyPatch, ci: str, outcome: type[BaseException]
) -> None:
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome):
        unavailable("no small disk here")
