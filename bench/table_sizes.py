"""Bytes per million rows of the tables the background purge keeps small, and what purging
them costs.

    .venv/bin/python bench/table_sizes.py [--rows 200000] [--payload mix|deposit|order]
                                          [--batch 500] [--keep DIR]

Builds a fresh SQLite database with the platform's own schema and writes `--rows` idempotency
records and as many token revocations through the store's own write path (`SqliteStore`, units
of work of 1,000 rows, the group commit), shaped as the platform writes them: a UUIDv7 user id,
a key like the load generator's, the request's SHA-256 fingerprint, and the stored answer (a
deposit's receipt, an order's id, or the two alternating); a 32-hex `jti` and its user id.
Then it runs VACUUM and reads each table's and each index's pages from the `dbstat` virtual
table (falling back to the file size before and after a table's rows, if this SQLite lacks
`dbstat`), and prints bytes per row and per million rows.

Last, it purges both tables the way the background purge does (every row was written already
expired), batch by batch, and prints the time per batch: how long one batch holds SQLite's
write lock, so how long a request's commit may wait behind it.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import secrets
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from orderproc.common.clock import isoformat_z
from orderproc.common.ids import new_id
from orderproc.common.storage.records import IdempotencyRecord
from orderproc.common.storage.sqlite import SqliteStore

UNIT = 1000  # rows per unit of work while filling
TABLES = ("idempotency", "revoked_tokens")


def _payload(kind: str, n: int, now: datetime) -> dict[str, Any]:
    if kind == "order" or (kind == "mix" and n % 2):
        return {"order_id": new_id()}
    return {
        "transaction_id": new_id(),
        "transaction_type": "deposit",
        "amount": "100.00",
        "balance": f"{1000 + n}.00",
        "available_balance": f"{1000 + n}.00",
        "timestamp": isoformat_z(now),
    }


async def fill(path: Path, rows: int, payload: str) -> None:
    """Every row already expired (created two days ago, valid one), so the purge takes all."""
    store = SqliteStore(path)
    await store.migrate()
    created = datetime.now(UTC) - timedelta(days=2)
    expired = created + timedelta(days=1)
    users = [new_id() for _ in range(max(rows // 20, 1))]  # twenty keys per user
    nonce = secrets.token_hex(4)
    try:
        for start in range(0, rows, UNIT):
            async with store.unit_of_work() as uow:
                for n in range(start, min(start + UNIT, rows)):
                    user = users[n % len(users)]
                    fingerprint = hashlib.sha256(f"{user}{n}".encode()).hexdigest()
                    uow.idempotency.add(
                        IdempotencyRecord(
                            user, f"g{nonce}-{n % 64}-{n}", fingerprint, "ok",
                            _payload(payload, n, created), created, expired,
                        )
                    )  # fmt: skip
                    uow.revocations.add(secrets.token_hex(16), user_id=user, expires_at=expired)
                await uow.commit()
    finally:
        await store.close()


def sizes(path: Path) -> dict[str, dict[str, int]]:
    """Per table: its own b-tree's bytes, its indexes' bytes, and its rows (after VACUUM)."""
    db = sqlite3.connect(path)
    try:
        db.execute("VACUUM")
        owner = dict(
            db.execute(
                "SELECT name, tbl_name FROM sqlite_schema WHERE tbl_name IN (?, ?)", TABLES
            ).fetchall()
        )
        found: dict[str, dict[str, int]] = {t: {"table": 0, "indexes": 0} for t in TABLES}
        for name, size in db.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name"):
            table = owner.get(name)
            if table is not None:
                found[table]["table" if name == table else "indexes"] += int(size)
        for table in TABLES:
            found[table]["rows"] = db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        return found
    finally:
        db.close()


def sizes_by_file(path: Path) -> dict[str, dict[str, int]]:
    """Without `dbstat`: the file shrinks by each table's pages when its rows go and it is
    vacuumed (tables and indexes together)."""
    db = sqlite3.connect(path)
    try:
        db.execute("VACUUM")
        found: dict[str, dict[str, int]] = {}
        for table in TABLES:
            rows = db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            before = os.path.getsize(path)
            db.execute(f"DELETE FROM {table}")
            db.commit()
            db.execute("VACUUM")
            found[table] = {"table": before - os.path.getsize(path), "indexes": 0, "rows": rows}
        return found
    finally:
        db.close()


def has_dbstat() -> bool:
    try:
        sqlite3.connect(":memory:").execute("SELECT count(*) FROM dbstat").fetchone()
    except sqlite3.OperationalError:
        return False
    return True


async def purge(path: Path, batch: int) -> dict[str, list[float]]:
    """Seconds per batch for each table, batches as the background purge runs them."""
    store = SqliteStore(path)
    now = datetime.now(UTC)
    timings: dict[str, list[float]] = {}
    try:
        for table in ("idempotency", "revocations"):
            spent = timings.setdefault(table, [])
            while True:
                started = time.perf_counter()
                async with store.unit_of_work() as uow:
                    repository = getattr(uow, table)
                    removed = await repository.purge_expired(now=now, limit=batch)
                spent.append(time.perf_counter() - started)
                if removed < batch:
                    break
                await asyncio.sleep(0)
    finally:
        await store.close()
    return timings


def report(found: dict[str, dict[str, int]], *, method: str) -> None:
    print(f"\nsizes after VACUUM ({method}):")
    print("(bytes per row = MB per million rows)")
    print(f"{'table':<16}{'rows':>10}{'table B':>14}{'indexes B':>13}{'B/row':>8}{'MB/1M':>8}")
    for table, got in found.items():
        total = got["table"] + got["indexes"]
        per_row = total / got["rows"] if got["rows"] else 0.0
        print(
            f"{table:<16}{got['rows']:>10,}{got['table']:>14,}{got['indexes']:>13,}"
            f"{per_row:>8.1f}{per_row:>8.0f}"
        )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--payload", choices=("mix", "deposit", "order"), default="mix")
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--keep", type=Path, help="build the database in this directory")
    args = parser.parse_args()
    print(
        f"python {sys.version.split()[0]}, sqlite {sqlite3.sqlite_version}, rows {args.rows:,} "
        f"per table, payload {args.payload}, purge batch {args.batch}"
    )
    with tempfile.TemporaryDirectory() as scratch:
        path = (args.keep or Path(scratch)) / "table_sizes.db"
        path.unlink(missing_ok=True)
        started = time.perf_counter()
        await fill(path, args.rows, args.payload)
        print(f"filled in {time.perf_counter() - started:.1f} s through the store's write path")
        if has_dbstat():
            report(sizes(path), method="dbstat: each table's b-tree and its indexes")
        else:
            report(sizes_by_file(path), method="file size deltas: no dbstat in this build")
            return
        timings = await purge(path, args.batch)
        print(f"\npurge in batches of {args.batch} (each its own transaction, group commit):")
        for table, spent in timings.items():
            ms = sorted(s * 1000 for s in spent)
            print(
                f"{table:<16}{len(ms):>5} batches, {sum(ms) / 1000:.2f} s: per batch median "
                f"{statistics.median(ms):.2f} ms, p99 {ms[int(len(ms) * 0.99) - 1]:.2f} ms, "
                f"max {ms[-1]:.2f} ms"
            )


if __name__ == "__main__":
    asyncio.run(main())
