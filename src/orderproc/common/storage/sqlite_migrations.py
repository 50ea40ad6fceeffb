"""The SQLite schema, as numbered migrations applied in order by `SqliteStore.migrate()`.

To change the schema, append a `Migration` to `MIGRATIONS` with the next version number and the
statements that take the previous schema to the new one (never edit one that has shipped: an
existing database has already applied it and will not run it again). Each migration runs in its
own transaction together with its row in `schema_migrations`, so it applies fully or not at all.

Conventions: money and quantities are INTEGER (cents, 10^-8 units), timestamps INTEGER
microseconds since the epoch (UTC), dates ISO text, dict payloads JSON text.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]


BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     INTEGER PRIMARY KEY,
    description TEXT    NOT NULL,
    applied_at  INTEGER NOT NULL
)
"""

_INITIAL = (
    """
    CREATE TABLE users (
        user_id            TEXT    PRIMARY KEY,
        username           TEXT    NOT NULL UNIQUE,
        email              TEXT    NOT NULL UNIQUE,
        password_hash      TEXT    NOT NULL,
        first_name         TEXT    NOT NULL,
        last_name          TEXT    NOT NULL,
        phone              TEXT,
        date_of_birth      TEXT,
        role               TEXT    NOT NULL,
        is_active          INTEGER NOT NULL,
        created_at         INTEGER NOT NULL,
        updated_at         INTEGER NOT NULL,
        tokens_valid_after INTEGER,
        version            INTEGER NOT NULL
    )
    """,
    "CREATE INDEX users_created_at ON users (created_at DESC)",
    """
    CREATE TABLE accounts (
        user_id         TEXT    PRIMARY KEY,
        balance_cents   INTEGER NOT NULL CHECK (balance_cents >= 0),
        reserved_cents  INTEGER NOT NULL CHECK (reserved_cents >= 0),
        available_cents INTEGER NOT NULL CHECK (available_cents >= 0),
        version         INTEGER NOT NULL,
        updated_at      INTEGER NOT NULL,
        CHECK (available_cents = balance_cents - reserved_cents)
    )
    """,
    """
    CREATE TABLE cash_ledger (
        entry_id            TEXT    PRIMARY KEY,
        user_id             TEXT    NOT NULL,
        kind                TEXT    NOT NULL,
        amount_cents        INTEGER NOT NULL,
        balance_after_cents INTEGER NOT NULL,
        reference_id        TEXT,
        created_at          INTEGER NOT NULL
    )
    """,
    "CREATE INDEX cash_ledger_user_time ON cash_ledger (user_id, created_at DESC)",
    """
    CREATE TABLE daily_limits (
        user_id    TEXT    NOT NULL,
        day        TEXT    NOT NULL,
        kind       TEXT    NOT NULL,
        used_cents INTEGER NOT NULL CHECK (used_cents >= 0),
        PRIMARY KEY (user_id, day, kind)
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE idempotency (
        user_id     TEXT    NOT NULL,
        key         TEXT    NOT NULL,
        fingerprint TEXT    NOT NULL,
        outcome     TEXT    NOT NULL,
        payload     TEXT    NOT NULL,
        created_at  INTEGER NOT NULL,
        expires_at  INTEGER NOT NULL,
        PRIMARY KEY (user_id, key)
    ) WITHOUT ROWID
    """,
    "CREATE INDEX idempotency_expires_at ON idempotency (expires_at)",
    """
    CREATE TABLE revoked_tokens (
        jti        TEXT    PRIMARY KEY,
        user_id    TEXT    NOT NULL,
        expires_at INTEGER NOT NULL
    ) WITHOUT ROWID
    """,
    "CREATE INDEX revoked_tokens_expires_at ON revoked_tokens (expires_at)",
    """
    CREATE TABLE audit_events (
        event_id   TEXT    PRIMARY KEY,
        event_type TEXT    NOT NULL,
        created_at INTEGER NOT NULL,
        user_id    TEXT,
        actor_id   TEXT,
        ip         TEXT,
        details    TEXT    NOT NULL
    )
    """,
    "CREATE INDEX audit_events_user_time ON audit_events (user_id, created_at DESC)",
    "CREATE INDEX audit_events_type_time ON audit_events (event_type, created_at DESC)",
    "CREATE INDEX audit_events_time ON audit_events (created_at DESC)",
)

# Prices, cost basis and realized P&L are exact decimal TEXT (`str(Decimal)`): read, never compared.
_TRADING = (
    """
    CREATE TABLE assets (
        asset_id         TEXT    PRIMARY KEY,
        name             TEXT    NOT NULL,
        category         TEXT    NOT NULL,
        is_active        INTEGER NOT NULL,
        price            TEXT    NOT NULL,
        price_updated_at INTEGER NOT NULL,
        metadata         TEXT    NOT NULL,
        version          INTEGER NOT NULL
    )
    """,
    """
    CREATE TABLE candles (
        asset_id  TEXT    NOT NULL,
        interval  TEXT    NOT NULL,
        open_time INTEGER NOT NULL,
        open      TEXT    NOT NULL,
        high      TEXT    NOT NULL,
        low       TEXT    NOT NULL,
        close     TEXT    NOT NULL,
        PRIMARY KEY (asset_id, interval, open_time)
    ) WITHOUT ROWID
    """,
    "CREATE INDEX candles_interval_time ON candles (interval, open_time)",
    """
    CREATE TABLE orders (
        order_id        TEXT    PRIMARY KEY,
        user_id         TEXT    NOT NULL,
        order_type      TEXT    NOT NULL,
        asset_id        TEXT    NOT NULL,
        status          TEXT    NOT NULL,
        quantity_units  INTEGER NOT NULL,
        created_at      INTEGER NOT NULL,
        updated_at      INTEGER NOT NULL,
        client_order_id TEXT,
        fingerprint     TEXT    NOT NULL,
        price           TEXT,
        limit_price     TEXT,
        stop_price      TEXT,
        notional_cents  INTEGER,
        total_cents     INTEGER NOT NULL,
        fee_cents       INTEGER NOT NULL,
        reserved_cents  INTEGER NOT NULL,
        reserved_units  INTEGER NOT NULL,
        time_in_force   TEXT    NOT NULL,
        expires_at      INTEGER,
        filled_at       INTEGER,
        version         INTEGER NOT NULL
    )
    """,
    "CREATE UNIQUE INDEX orders_user_client_id ON orders (user_id, client_order_id) "
    "WHERE client_order_id IS NOT NULL",
    "CREATE INDEX orders_user_time ON orders (user_id, created_at DESC)",
    "CREATE INDEX orders_user_status_time ON orders (user_id, status, created_at DESC)",
    "CREATE INDEX orders_user_asset_time ON orders (user_id, asset_id, created_at DESC)",
    "CREATE INDEX orders_user_type_time ON orders (user_id, order_type, created_at DESC)",
    "CREATE INDEX orders_open ON orders (asset_id, created_at) WHERE status = 'open'",
    """
    CREATE TABLE positions (
        user_id         TEXT    NOT NULL,
        asset_id        TEXT    NOT NULL,
        quantity_units  INTEGER NOT NULL CHECK (quantity_units >= 0),
        reserved_units  INTEGER NOT NULL CHECK (reserved_units >= 0),
        available_units INTEGER NOT NULL CHECK (available_units >= 0),
        cost_basis      TEXT    NOT NULL,
        realized_pnl    TEXT    NOT NULL,
        version         INTEGER NOT NULL,
        updated_at      INTEGER NOT NULL,
        PRIMARY KEY (user_id, asset_id),
        CHECK (available_units = quantity_units - reserved_units)
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE asset_ledger (
        entry_id             TEXT    PRIMARY KEY,
        user_id              TEXT    NOT NULL,
        asset_id             TEXT    NOT NULL,
        order_id             TEXT    NOT NULL,
        kind                 TEXT    NOT NULL,
        quantity_units       INTEGER NOT NULL,
        price                TEXT    NOT NULL,
        total_cents          INTEGER NOT NULL,
        fee_cents            INTEGER NOT NULL,
        quantity_after_units INTEGER NOT NULL,
        created_at           INTEGER NOT NULL
    )
    """,
    "CREATE INDEX asset_ledger_user_asset_time "
    "ON asset_ledger (user_id, asset_id, created_at DESC)",
    "CREATE INDEX asset_ledger_user_time ON asset_ledger (user_id, created_at DESC)",
)

# Every index is another b-tree written by each order; these served only filters that the
# per-user index narrows to one user's rows anyway (measured: the commit is most of an order's
# database time).
_LEANER_ORDER_WRITES: tuple[str, ...] = (
    "DROP INDEX IF EXISTS orders_user_status_time",
    "DROP INDEX IF EXISTS orders_user_asset_time",
    "DROP INDEX IF EXISTS orders_user_type_time",
    "DROP INDEX IF EXISTS asset_ledger_user_time",
)

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1, "users, cash accounts and ledger, limits, idempotency, revocations, audit", _INITIAL
    ),
    Migration(2, "assets, candles, orders, positions, asset ledger", _TRADING),
    Migration(3, "fewer indexes on the order path", _LEANER_ORDER_WRITES),
)
