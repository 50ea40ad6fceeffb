"""Open the store a database URL names: `sqlite:///abs/path.db`, `sqlite:///:memory:`, `memory://`."""

from __future__ import annotations

from orderproc.common.storage.memory import MemoryStore
from orderproc.common.storage.ports import Store
from orderproc.common.storage.sqlite import SqliteStore

SQLITE_PREFIX = "sqlite:///"
SUPPORTED = "sqlite:///<absolute path>, sqlite:///:memory: or memory://"


def open_store(database_url: str) -> Store:
    """The store for `database_url`; call `await store.migrate()` before first use."""
    if database_url == "memory://":
        return MemoryStore()
    if database_url.startswith(SQLITE_PREFIX):
        return SqliteStore(_sqlite_path(database_url))
    # PostgreSQL (postgresql://) and DynamoDB plug in here when their adapters exist.
    raise ValueError(f"Unsupported database URL {_redacted(database_url)!r}; use {SUPPORTED}.")


def _sqlite_path(database_url: str) -> str:
    rest = database_url[len(SQLITE_PREFIX) :]
    if rest == ":memory:":
        return rest
    if not rest.strip("/") or "?" in rest:
        raise ValueError(f"Unsupported SQLite URL {database_url!r}; use {SUPPORTED}.")
    # Always absolute: `sqlite:///srv/x.db` and `sqlite:////srv/x.db` both name /srv/x.db.
    return "/" + rest.lstrip("/")


def _redacted(database_url: str) -> str:
    """The URL without credentials, so a password never reaches a log line."""
    scheme, separator, rest = database_url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.rsplit("@", 1)[1]
    return scheme + separator + rest
