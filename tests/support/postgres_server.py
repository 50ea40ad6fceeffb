"""A real, throwaway PostgreSQL cluster on a free loopback port, for tests. Nothing is mocked.

`initdb` makes a cluster in a temporary directory and `pg_ctl` runs it with durability off
(fsync, full-page writes and synchronous commit: a test database that dies with the run need not
survive a crash). When we are root the binaries run as the `postgres` OS user, since `initdb`
refuses root. `pg_ctl stop -m immediate` and removing the directory end it.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

from tests.support.redis_server import free_loopback_port

MISSING_BINARIES = (
    "PostgreSQL server binaries (initdb, pg_ctl) are neither on PATH nor under "
    "/usr/lib/postgresql/*/bin. The PostgreSQL tests need a real server; install it "
    "(`apt-get install -y postgresql`, which the README's test command does when it is missing)."
)
SERVER_OPTIONS = (
    "-c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off "
    "-c synchronous_commit=off -c max_connections=200 -c shared_buffers=64MB"
)
SUPERUSER = "postgres"


class PostgresServerMissing(RuntimeError):
    pass


def find_bindir() -> Path:
    """The directory holding `initdb` and `pg_ctl`: PATH first, then the newest Debian version."""
    on_path = shutil.which("initdb")
    if on_path is not None and shutil.which("pg_ctl") is not None:
        return Path(os.path.realpath(on_path)).parent
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda found: int(Path(found).parts[-3]) if Path(found).parts[-3].isdigit() else 0,
    )
    if not versions:
        raise PostgresServerMissing(MISSING_BINARIES)
    return Path(versions[-1]).parent


class PostgresServer:
    """One cluster; `dsn(database)` names a database on it as the superuser, without password
    (the cluster trusts local and loopback connections)."""

    def __init__(self, *, start_timeout: float = 30.0) -> None:
        self.bindir = find_bindir()
        self.start_timeout = start_timeout
        self.host = "127.0.0.1"
        self.port = 0
        self._dir = Path(tempfile.mkdtemp(prefix="orderproc-pg-"))
        self.data_dir = self._dir / "data"
        self.socket_dir = self._dir / "sock"
        self.log_path = self._dir / "postgres.log"
        self._as_postgres = os.geteuid() == 0
        self._started = False

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@{self.host}:{self.port}/{database}"

    def start(self) -> PostgresServer:
        self.socket_dir.mkdir()
        if self._as_postgres:
            account = pwd.getpwnam("postgres")
            for path in (self._dir, self.socket_dir):
                os.chown(path, account.pw_uid, account.pw_gid)
        self._run(
            "initdb", "-D", str(self.data_dir), "-U", SUPERUSER, "--auth=trust",
            "--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions",
        )  # fmt: skip
        self.port = free_loopback_port()
        options = f"-p {self.port} -k {self.socket_dir} {SERVER_OPTIONS}"
        self._run(
            "pg_ctl", "-D", str(self.data_dir), "-l", str(self.log_path), "-o", options,
            "-w", "-t", str(int(self.start_timeout)), "start",
        )  # fmt: skip
        self._started = True
        return self

    def stop(self) -> None:
        if self._started:
            self._started = False
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "-w", "stop")

    def close(self) -> None:
        """Stop the cluster and remove its directory."""
        try:
            self.stop()
        finally:
            shutil.rmtree(self._dir, ignore_errors=True)

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def _run(self, program: str, *args: str) -> None:
        argv = [str(self.bindir / program), *args]
        if self._as_postgres:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        done = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=self._dir)
        if done.returncode != 0:
            raise RuntimeError(
                f"{program} failed ({done.returncode}): {done.stderr.strip() or done.stdout}\n"
                f"{self.log_tail()}"
            )

    def __enter__(self) -> PostgresServer:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
