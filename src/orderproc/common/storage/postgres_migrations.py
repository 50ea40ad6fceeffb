"""The PostgreSQL schema, as numbered migrations applied in order by `PostgresStore.migrate()`.

The same tables, keys, constraints and indexes as `sqlite_migrations`, version for version (a
change to one is a change to both). Never edit a migration that has shipped: append one. Each runs
in its own transaction with its row in `schema_migrations`, under an advisory lock, so concurrent
processes migrating at start neither race nor apply a migration twice.

Conventions: money and quantities BIGINT (cents, 10^-8 units); prices, cost basis and realized
P&L NUMERIC(38,18); timestamps TIMESTAMPTZ (microsecond precision); dicts JSONB, except the
idempotency payload, kept as JSON so a replayed body keeps its key order. Where SQLite orders
ties by `rowid`, the tables carry a `seq` identity column.
"""

from __future__ import annotations

from orderproc.common.storage.sqlite_migrations import Migration

# Any fixed 64-bit number of our own; taken by `migrate()` with pg_advisory_xact_lock.
MIGRATION_LOCK_KEY = 0x0D_E2_0C_E5_50_12_00_01

BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     INTEGER     PRIMARY KEY,
    description TEXT        NOT NULL,
    applied_at  TIMESTAMPTZ NOT NULL
)
"""

_INITIAL = (
    """
    CREATE TABLE users (
        user_id            TEXT        PRIMARY KEY,
        username           TEXT        NOT NULL UNIQUE,
        email              TEXT        NOT NULL UNIQUE,
        password_hash      TEXT        NOT NULL,
        first_name         TEXT        NOT NULL,
        last_name          TEXT        NOT NULL,
        phone              TEXT,
        date_of_birth      DATE,
        role               TEXT        NOT NULL,
        is_active          BOOLEAN     NOT NULL,
        created_at         TIMESTAMPTZ NOT NULL,
        updated_at         TIMESTAMPTZ NOT NULL,
        tokens_valid_after TIMESTAMPTZ,
        version            INTEGER     NOT NULL,
        seq                BIGINT      GENERATED ALWAYS AS IDENTITY
    )
    """,
    "CREATE INDEX users_created_at ON users (created_at DESC, seq DESC)",
    """
    CREATE TABLE accounts (
        user_id         TEXT        PRIMARY KEY,
        balance_cents   BIGINT      NOT NULL CHECK (balance_cents >= 0),
        reserved_cents  BIGINT      NOT NULL CHECK (reserved_cents >= 0),
        available_cents BIGINT      NOT NULL CHECK (available_cents >= 0),
        version         INTEGER     NOT NULL,
        updated_at      TIMESTAMPTZ NOT NULL,
        CHECK (available_cents = balance_cents - reserved_cents)
    )
    """,
    """
    CREATE TABLE cash_ledger (
        entry_id            TEXT        PRIMARY KEY,
        user_id             TEXT        NOT NULL,
        kind                TEXT        NOT NULL,
        amount_cents        BIGINT      NOT NULL,
        balance_after_cents BIGINT      NOT NULL,
        reference_id        TEXT,
        created_at          TIMESTAMPTZ NOT NULL,
        seq                 BIGINT      GENERATED ALWAYS AS IDENTITY
    )
    """,
    "CREATE INDEX cash_ledger_user_time ON cash_ledger (user_id, created_at DESC, seq DESC)",
    """
    CREATE TABLE daily_limits (
        user_id    TEXT   NOT NULL,
        day        DATE   NOT NULL,
        kind       TEXT   NOT NULL,
        used_cents BIGINT NOT NULL CHECK (used_cents >= 0),
        PRIMARY KEY (user_id, day, kind)
    )
    """,
    """
    CREATE TABLE idempotency (
        user_id     TEXT        NOT NULL,
        key         TEXT        NOT NULL,
        fingerprint TEXT        NOT NULL,
        outcome     TEXT        NOT NULL,
        payload     JSON        NOT NULL,
        created_at  TIMESTAMPTZ NOT NULL,
        expires_at  TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (user_id, key)
    )
    """,
    "CREATE INDEX idempotency_expires_at ON idempotency (expires_at)",
    """
    CREATE TABLE revoked_tokens (
        jti        TEXT        PRIMARY KEY,
        user_id    TEXT        NOT NULL,
        expires_at TIMESTAMPTZ NOT NULL
    )
    """,
    "CREATE INDEX revoked_tokens_expires_at ON revoked_tokens (expires_at)",
    """
    CREATE TABLE audit_events (
        event_id   TEXT        PRIMARY KEY,
        event_type TEXT        NOT NULL,
        created_at TIMESTAMPTZ NOT NULL,
        user_id    TEXT,
        actor_id   TEXT,
        ip         TEXT,
        details    JSONB       NOT NULL,
        seq        BIGINT      GENERATED ALWAYS AS IDENTITY
    )
    """,
    "CREATE INDEX audit_events_user_time ON audit_events (user_id, created_at DESC, seq DESC)",
    "CREATE INDEX audit_events_type_time ON audit_events (event_type, created_at DESC, seq DESC)",
    "CREATE INDEX audit_events_time ON audit_events (created_at DESC, seq DESC)",
)

_TRADING = (
    """
    CREATE TABLE assets (
        asset_id         TEXT           PRIMARY KEY,
        name             TEXT           NOT NULL,
        category         TEXT           NOT NULL,
        is_active        BOOLEAN        NOT NULL,
        price            NUMERIC(38,18) NOT NULL,
        price_updated_at TIMESTAMPTZ    NOT NULL,
        metadata         JSONB          NOT NULL,
        version          INTEGER        NOT NULL
    )
    """,
    """
    CREATE TABLE candles (
        asset_id  TEXT           NOT NULL,
        interval  TEXT           NOT NULL,
        open_time TIMESTAMPTZ    NOT NULL,
        open      NUMERIC(38,18) NOT NULL,
        high      NUMERIC(38,18) NOT NULL,
        low       NUMERIC(38,18) NOT NULL,
        close     NUMERIC(38,18) NOT NULL,
        PRIMARY KEY (asset_id, interval, open_time)
    )
    """,
    "CREATE INDEX candles_interval_time ON candles (interval, open_time)",
    """
    CREATE TABLE orders (
        order_id        TEXT           PRIMARY KEY,
        user_id         TEXT           NOT NULL,
        order_type      TEXT           NOT NULL,
        asset_id        TEXT           NOT NULL,
        status          TEXT           NOT NULL,
        quantity_units  BIGINT         NOT NULL,
        created_at      TIMESTAMPTZ    NOT NULL,
        updated_at      TIMESTAMPTZ    NOT NULL,
        client_order_id TEXT,
        fingerprint     TEXT           NOT NULL,
        price           NUMERIC(38,18),
        limit_price     NUMERIC(38,18),
        stop_price      NUMERIC(38,18),
        notional_cents  BIGINT,
        total_cents     BIGINT         NOT NULL,
        fee_cents       BIGINT         NOT NULL,
        reserved_cents  BIGINT         NOT NULL,
        reserved_units  BIGINT         NOT NULL,
        time_in_force   TEXT           NOT NULL,
        expires_at      TIMESTAMPTZ,
        filled_at       TIMESTAMPTZ,
        version         INTEGER        NOT NULL,
        seq             BIGINT         GENERATED ALWAYS AS IDENTITY
    )
    """,
    "CREATE UNIQUE INDEX orders_user_client_id ON orders (user_id, client_order_id) "
    "WHERE client_order_id IS NOT NULL",
    "CREATE INDEX orders_user_time ON orders (user_id, created_at DESC, seq DESC)",
    "CREATE INDEX orders_user_status_time ON orders (user_id, status, created_at DESC, seq DESC)",
    "CREATE INDEX orders_user_asset_time ON orders (user_id, asset_id, created_at DESC, seq DESC)",
    "CREATE INDEX orders_user_type_time ON orders (user_id, order_type, created_at DESC, seq DESC)",
    "CREATE INDEX orders_open ON orders (asset_id, created_at, seq) WHERE status = 'open'",
    """
    CREATE TABLE positions (
        user_id         TEXT           NOT NULL,
        asset_id        TEXT           NOT NULL,
        quantity_units  BIGINT         NOT NULL CHECK (quantity_units >= 0),
        reserved_units  BIGINT         NOT NULL CHECK (reserved_units >= 0),
        available_units BIGINT         NOT NULL CHECK (available_units >= 0),
        cost_basis      NUMERIC(38,18) NOT NULL,
        realized_pnl    NUMERIC(38,18) NOT NULL,
        version         INTEGER        NOT NULL,
        updated_at      TIMESTAMPTZ    NOT NULL,
        PRIMARY KEY (user_id, asset_id),
        CHECK (available_units = quantity_units - reserved_units)
    )
    """,
    """
    CREATE TABLE asset_ledger (
        entry_id             TEXT           PRIMARY KEY,
        user_id              TEXT           NOT NULL,
        asset_id             TEXT           NOT NULL,
        order_id             TEXT           NOT NULL,
        kind                 TEXT           NOT NULL,
        quantity_units       BIGINT         NOT NULL,
        price                NUMERIC(38,18) NOT NULL,
        total_cents          BIGINT         NOT NULL,
        fee_cents            BIGINT         NOT NULL,
        quantity_after_units BIGINT         NOT NULL,
        created_at           TIMESTAMPTZ    NOT NULL,
        seq                  BIGINT         GENERATED ALWAYS AS IDENTITY
    )
    """,
    "CREATE INDEX asset_ledger_user_asset_time "
    "ON asset_ledger (user_id, asset_id, created_at DESC, seq DESC)",
    "CREATE INDEX asset_ledger_user_time ON asset_ledger (user_id, created_at DESC, seq DESC)",
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
