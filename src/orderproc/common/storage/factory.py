"""Open the store a database URL names: `sqlite:///abs/path.db`, `sqlite:///:memory:`,
`memory://`, or `postgresql://user:password@host:port/database` (also `postgres://`)."""

from __future__ import annotations

from orderproc.common.storage.memory import MemoryStore
from orderproc.common.storage.ports import Store
from orderproc.common.storage.sqlite import SqliteStore

SQLITE_PREFIX = "sqlite:///"
POSTGRES_PREFIXES = ("postgresql://", "postgres://")
SUPPORTED = (
    "postgresql://user:password@host:port/database, sqlite:///<absolute path>, "
    "sqlite:///:memory: or memory://"
)


def open_store(database_url: str, *, pool_size: int = 10, timeout_seconds: float = 5.0) -> Store:
    """The store for `database_url`; call `await store.migrate()` before first use.
    Nothing connects here: a PostgreSQL store opens its pool on first use. `timeout_seconds`
    bounds one statement on PostgreSQL and one wait for SQLite's write lock; past it the
    request answers 503 `STORE_TIMEOUT`."""
    if database_url == "memory://":
        return MemoryStore()
    if database_url.startswith(SQLITE_PREFIX):
        return SqliteStore(_sqlite_path(database_url), busy_timeout_ms=int(timeout_seconds * 1000))
    if database_url.startswith(POSTGRES_PREFIXES):
        return _postgres(database_url, pool_size, timeout_seconds)
    # DynamoDB plugs in here when its adapter exists.
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


def _postgres(database_url: str, pool_size: int, timeout_seconds: float) -> Store:
    try:
        from orderproc.common.storage.postgres import PostgresStore
    except ImportError:
        raise ValueError(
            f"{_redacted(database_url)!r} needs the PostgreSQL driver: "
            "install order-processor[postgres]."
        ) from None
    return PostgresStore(database_url, max_size=pool_size, command_timeout=timeout_seconds)
