"""Each adapter's one mapping of its driver's errors to the store's fault errors, code by code,
including the faults the contract suite cannot cause for real (an I/O error, a server
shutting down, too many connections)."""

from __future__ import annotations

import sqlite3

import asyncpg
import pytest

from orderproc.common.storage import postgres as postgres_core
from orderproc.common.storage import sqlite as sqlite_core
from orderproc.errors import StoreFull, StoreReadOnly, StoreTimeout, StoreUnavailable


def sqlite_error(code: int, message: str = "failed") -> sqlite3.Error:
    error = sqlite3.OperationalError(message)
    error.sqlite_errorcode = code
    error.sqlite_errorname = f"CODE_{code}"
    return error


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (sqlite3.SQLITE_FULL, StoreFull),
        (sqlite3.SQLITE_READONLY, StoreReadOnly),
        (sqlite3.SQLITE_READONLY_DBMOVED, StoreReadOnly),  # extended codes by their low byte
        (sqlite3.SQLITE_BUSY, StoreTimeout),
        (sqlite3.SQLITE_BUSY_SNAPSHOT, StoreTimeout),
        (sqlite3.SQLITE_IOERR, StoreUnavailable),
        (sqlite3.SQLITE_IOERR_WRITE, StoreUnavailable),
        (sqlite3.SQLITE_IOERR_FSYNC, StoreUnavailable),
        (sqlite3.SQLITE_CANTOPEN, StoreUnavailable),
    ],
)
def test_sqlite_faults_by_code(code: int, kind: type[StoreUnavailable]) -> None:
    driver_error = sqlite_error(code, "disk I/O error")
    fault = sqlite_core.store_fault(driver_error, where="/srv/orderproc.db")
    assert type(fault) is kind
    assert fault.__cause__ is driver_error
    assert str(fault) == f"SQLite at /srv/orderproc.db: disk I/O error (CODE_{code})"


@pytest.mark.parametrize(
    "error",
    [
        sqlite_error(sqlite3.SQLITE_CONSTRAINT_UNIQUE),  # a conflict, classified elsewhere
        sqlite_error(sqlite3.SQLITE_CORRUPT),  # no retry repairs it
        sqlite_error(sqlite3.SQLITE_ERROR),  # the code's own mistake
        sqlite3.ProgrammingError("Cannot operate on a closed database."),  # no code
        OSError("not from SQLite"),
    ],
)
def test_what_is_not_a_sqlite_fault_stays_as_it_is(error: BaseException) -> None:
    assert sqlite_core.store_fault(error) is None
    with pytest.raises(type(error)) as raised, sqlite_core.FAULTS:
        raise error
    assert raised.value is error  # goes on as it is


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (asyncpg.DiskFullError("could not extend file"), StoreFull),
        (asyncpg.ReadOnlySQLTransactionError("read-only transaction"), StoreReadOnly),
        (asyncpg.QueryCanceledError("statement timeout"), StoreTimeout),
        (asyncpg.LockNotAvailableError("lock timeout"), StoreTimeout),
        (TimeoutError(), StoreTimeout),
        (asyncpg.CannotConnectNowError("the database system is starting up"), StoreUnavailable),
        (asyncpg.AdminShutdownError("terminating connection"), StoreUnavailable),
        (asyncpg.TooManyConnectionsError("too many clients"), StoreUnavailable),
        (asyncpg.ConnectionDoesNotExistError("connection was closed"), StoreUnavailable),
        (asyncpg.PostgresIOError("could not read block"), StoreUnavailable),
        (ConnectionRefusedError(111, "Connection refused"), StoreUnavailable),
        (ConnectionResetError(104, "Connection reset by peer"), StoreUnavailable),
    ],
)
def test_postgres_faults_by_sqlstate_and_kind(
    error: BaseException, kind: type[StoreUnavailable]
) -> None:
    fault = postgres_core.store_fault(error)
    assert type(fault) is kind
    assert fault.__cause__ is error
    with pytest.raises(kind) as raised, postgres_core.FAULTS:
        raise error
    assert raised.value.__cause__ is error


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.UniqueViolationError("duplicate key"),  # a conflict
        asyncpg.SerializationError("could not serialize"),  # a conflict
        asyncpg.UndefinedColumnError("no such column"),  # the code's own mistake
        asyncpg.InterfaceError("cannot perform operation: another operation is in progress"),
    ],
)
def test_what_is_not_a_postgres_fault_stays_as_it_is(error: BaseException) -> None:
    assert postgres_core.store_fault(error) is None
    with pytest.raises(type(error)) as raised, postgres_core.FAULTS:
        raise error
    assert raised.value is error
