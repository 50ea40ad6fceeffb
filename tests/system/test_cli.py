"""The `orderproc` command as a person runs it: one clear line for start-up problems, admin
creation from a script, migrate, seed and reconcile."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from orderproc.testing import TEST_SECRET
from tests.system.harness import ServerProcess

pytestmark = pytest.mark.system

ENV = {
    **os.environ,
    "ORDERPROC_PASSWORD_HASH_PROFILE": "fast-insecure-for-tests",
    "ORDERPROC_JWT_SECRET": TEST_SECRET,
}


def orderproc(*args: str, stdin: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orderproc.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**ENV, **env},
        timeout=60,
        check=False,
    )


class TestStartupProblems:
    def test_a_taken_port_is_one_line(self, tmp_path: Path) -> None:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            result = orderproc("serve", "--port", str(port), "--data-dir", str(tmp_path))
        assert result.returncode == 2
        assert result.stderr.strip() == (
            f"orderproc: cannot listen on 127.0.0.1:{port}: Address already in use"
        )

    def test_an_unwritable_data_dir_is_one_line(self, tmp_path: Path) -> None:
        blocker = tmp_path / "file"
        blocker.write_text("not a directory")
        result = orderproc("serve", "--port", "0", "--data-dir", str(blocker / "data"))
        assert result.returncode == 2
        assert result.stderr.count("\n") == 1
        assert "is not writable" in result.stderr

    def test_a_bad_setting_names_the_variable(self, tmp_path: Path) -> None:
        result = orderproc("serve", "--data-dir", str(tmp_path), ORDERPROC_PORT="eighty")
        assert result.returncode == 2
        assert result.stderr.startswith("orderproc: bad setting: ORDERPROC_PORT")
        assert "Traceback" not in result.stderr

    def test_the_web_ui_alone_needs_the_api_url(self, tmp_path: Path) -> None:
        result = orderproc("serve", "webui", "--port", "0", "--data-dir", str(tmp_path))
        assert result.returncode == 2
        assert result.stderr.strip() == (
            "orderproc: serve webui needs the API's URL: --api-url or ORDERPROC_API_URL"
        )

    def test_the_gateway_alone_needs_the_services_urls(self, tmp_path: Path) -> None:
        result = orderproc("serve", "gateway", "--port", "0", "--data-dir", str(tmp_path))
        assert result.returncode == 2
        assert result.stderr.count("\n") == 1
        assert "ORDERPROC_GATEWAY_UPSTREAMS" in result.stderr
        partial = orderproc(
            "serve",
            "gateway",
            "--port",
            "0",
            "--data-dir",
            str(tmp_path),
            ORDERPROC_GATEWAY_UPSTREAMS='{"users": "http://127.0.0.1:1"}',
        )
        assert partial.returncode == 2
        assert partial.stderr.startswith("orderproc: ORDERPROC_GATEWAY_UPSTREAMS: ")
        assert "Traceback" not in partial.stderr

    def test_a_service_alone_is_one_of_the_five(self, tmp_path: Path) -> None:
        result = orderproc("serve", "billing", "--data-dir", str(tmp_path))
        assert result.returncode == 2
        assert "invalid choice: 'billing'" in result.stderr

    def test_distributed_mode_refuses_a_weak_secret(self, tmp_path: Path) -> None:
        result = orderproc(
            "serve",
            "--port",
            "0",
            "--data-dir",
            str(tmp_path),
            ORDERPROC_MODE="distributed",
            ORDERPROC_JWT_SECRET="secret",
        )
        assert result.returncode == 2
        assert "ORDERPROC_JWT_SECRET" in result.stderr
        assert "Traceback" not in result.stderr


class TestAdminsAndMaintenance:
    def test_a_script_creates_an_admin_who_can_use_admin_routes(self, tmp_path: Path) -> None:
        made = orderproc(
            "create-admin",
            "Boss",
            "--password-stdin",
            "--data-dir",
            str(tmp_path),
            stdin="a long admin passphrase\n",
        )
        assert made.returncode == 0, made.stderr
        assert made.stdout.strip() == "created admin boss"
        again = orderproc(
            "create-admin",
            "boss",
            "--password-stdin",
            "--data-dir",
            str(tmp_path),
            stdin="a long admin passphrase\n",
        )
        assert again.stdout.strip() == "promoted boss to admin"
        weak = orderproc(
            "create-admin",
            "weakling",
            "--password-stdin",
            "--data-dir",
            str(tmp_path),
            stdin="123456\n",
        )
        assert weak.returncode == 2
        assert "common" in weak.stderr.lower() or "password" in weak.stderr.lower()
        server = ServerProcess(tmp_path).start()
        try:
            with httpx.Client(base_url=server.url) as client:
                token = client.post(
                    "/api/v1/auth/login",
                    json={"username": "boss", "password": "a long admin passphrase"},
                ).json()
                headers = {"Authorization": f"Bearer {token['access_token']}"}
                users = client.get("/api/v1/admin/users", headers=headers)
            assert users.status_code == 200
            assert [u["role"] for u in users.json()["data"]] == ["admin"]
        finally:
            server.stop()

    def test_migrate_seed_and_reconcile_are_repeatable(self, tmp_path: Path) -> None:
        assert orderproc("migrate", "--data-dir", str(tmp_path)).returncode == 0
        assert orderproc("migrate", "--data-dir", str(tmp_path)).returncode == 0
        seeded = orderproc("seed", "--data-dir", str(tmp_path))
        assert seeded.stdout.startswith("added 1")  # about a hundred the first time
        assert orderproc("seed", "--data-dir", str(tmp_path)).stdout.startswith("added 0 ")
        clean = orderproc("reconcile", "--data-dir", str(tmp_path))
        assert clean.returncode == 0
        assert "all clean" in clean.stdout

    def test_migrate_status_shows_the_version_and_what_is_pending(self, tmp_path: Path) -> None:
        from orderproc.common.storage.schema import SCHEMA_VERSION as latest

        before = orderproc("migrate", "--status", "--data-dir", str(tmp_path))
        assert before.returncode == 0, before.stderr
        assert before.stdout.splitlines()[:4] == [
            f"store: sqlite {(tmp_path / 'orderproc.db').resolve()}",
            "current version: 0",
            f"latest version: {latest}",
            f"pending: upgrade 0 -> {latest}",
        ]
        assert orderproc("migrate", "--data-dir", str(tmp_path)).returncode == 0
        after = orderproc("migrate", "--status", "--data-dir", str(tmp_path))
        assert after.returncode == 0, after.stderr
        assert after.stdout.splitlines()[1:] == [
            f"current version: {latest}",
            f"latest version: {latest}",
            "pending: none",
        ]

    def test_reconcile_sweeps_every_account_and_names_each_mismatch(self, tmp_path: Path) -> None:
        """More accounts than one page of the sweep (500); one balance a cent off its ledger."""
        assert orderproc("migrate", "--data-dir", str(tmp_path)).returncode == 0
        with sqlite3.connect(tmp_path / "orderproc.db") as db:
            for n in range(1203):
                user, balance = f"u{n:05d}", 1001 if n == 777 else 1000
                db.execute(
                    "INSERT INTO accounts (user_id, balance_cents, reserved_cents, "
                    "available_cents, version, updated_at) VALUES (?, ?, 0, ?, 1, 0)",
                    (user, balance, balance),
                )
                db.execute(
                    "INSERT INTO cash_ledger (entry_id, user_id, kind, amount_cents, "
                    "balance_after_cents, reference_id, created_at) "
                    "VALUES (?, ?, 'deposit', 1000, 1000, NULL, 0)",
                    (f"e{n}", user),
                )
        db.close()
        result = orderproc("reconcile", "--data-dir", str(tmp_path))
        assert result.returncode == 1
        assert result.stdout.splitlines() == [
            "user u00777: cash: balance differs from its ledger (stored 10.01, ledger 10.00)",
            "checked 1203 accounts and 0 positions: 1 with mismatches",
        ]


class TestForwardedFor:
    def test_a_local_peer_cannot_pick_its_address_with_x_forwarded_for(
        self, tmp_path: Path
    ) -> None:
        """No trusted proxy is configured, so the address that failed-login blocking counts is
        the TCP peer's, whatever `X-Forwarded-For` says (uvicorn's own rewrite would trust any
        local peer)."""
        server = ServerProcess(
            tmp_path, ORDERPROC_LOGIN_BLOCK_ENABLED="true", ORDERPROC_LOGIN_FAILURE_LIMIT="3"
        ).start()
        try:
            with httpx.Client(base_url=server.url) as client:
                statuses = [
                    client.post(
                        "/api/v1/auth/login",
                        json={"username": f"nobody{n}", "password": "wrong password!"},
                        headers={"X-Forwarded-For": f"198.51.100.{n}"},
                    ).status_code
                    for n in range(5)
                ]
        finally:
            server.stop()
        assert statuses == [401, 401, 401, 403, 403]
