"""The schema, declared once: every table, its columns, keys, uniqueness, guards and indexes.

A table's columns are its record's fields (`records`), in order, each with the kind its Python
type names: `int` for cents, 10^-8 units and versions; `Decimal` for prices, cost basis and P&L
(exact, up to 18 places); `datetime` for UTC times (kept to the microsecond); `date`; `bool`;
`dict` for JSON; `str` (and `Literal`) for text. `X | None` is a nullable column. A `derived`
column is stored but not read back: it is a property of the record (the available amount), there
for the CHECK that guards it. Each backend turns this into what it needs: `sql` into DDL and row
codecs for SQLite and PostgreSQL, `memory` into dictionaries with the same keys and guards.

`SCHEMA_VERSION` names this declaration. Change a table and bump it: `migrate()` then brings an
older database to it in place (new tables, columns and indexes are created, indexes no longer
declared are dropped; see `sql.migrate`), and the version that shipped before is frozen under
tests/fixtures/db/ for the upgrade test. A change that cannot be made that way (a column's type,
a rename) needs a step of its own in `sql.upgrade`.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Generic, Literal, TypeVar

from orderproc.common.storage import records as r

SCHEMA_VERSION = 7
R = TypeVar("R")

Kind = Literal["text", "int", "bool", "time", "date", "decimal", "json"]
_KINDS: dict[Any, Kind] = {
    str: "text", int: "int", bool: "bool", datetime: "time", date: "date", Decimal: "decimal",
    dict: "json",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    kind: Kind
    nullable: bool = False
    derived: bool = False  # stored (for a guard), not read back: a property of the record


@dataclass(frozen=True, slots=True)
class Index:
    name: str
    columns: tuple[str, ...]  # "created_at DESC" where the order matters
    unique: bool = False
    where: str | None = None  # a partial index: SQL both dialects accept


@dataclass(frozen=True, slots=True, eq=False)  # one object per table: hashed by identity, fast
class Table(Generic[R]):
    name: str
    record: type[R]
    key: tuple[str, ...]
    columns: tuple[Column, ...]
    unique: tuple[str, ...] = ()  # columns unique on their own
    checks: tuple[str, ...] = ()  # guards: SQL both dialects accept; `memory` evaluates them too
    indexes: tuple[Index, ...] = ()
    # Lists page newest first by (created_at, insertion order): SQLite's rowid, a `seq` identity
    # column on PostgreSQL. A table without lists is clustered by its key (WITHOUT ROWID).
    listed: bool = False
    clustered: bool = False
    ordered_json: tuple[str, ...] = ()  # JSON kept as written (PostgreSQL JSON, not JSONB)
    names: tuple[str, ...] = field(init=False)  # every column
    read_names: tuple[str, ...] = field(init=False)  # those read back (not derived)
    kinds: dict[str, Kind] = field(init=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "names", tuple(column.name for column in self.columns))
        set_(self, "read_names", tuple(c.name for c in self.columns if not c.derived))
        set_(self, "kinds", {column.name: column.kind for column in self.columns})


def _columns(record: type[Any], derived: tuple[str, ...]) -> tuple[Column, ...]:
    hints = typing.get_type_hints(record)
    columns = []
    for declared in dataclasses.fields(record):
        hint, nullable = hints[declared.name], False
        if isinstance(hint, types.UnionType):
            (hint,) = (arg for arg in typing.get_args(hint) if arg is not type(None))
            nullable = True
        origin = typing.get_origin(hint)
        kind = "text" if origin is Literal else _KINDS[origin or hint]
        columns.append(Column(declared.name, kind, nullable))
    return (*columns, *(Column(name, "int", derived=True) for name in derived))


def table(
    name: str, record: type[R], key: tuple[str, ...], *, derived: tuple[str, ...] = (), **rest: Any
) -> Table[R]:
    return Table(name, record, key, _columns(record, derived), **rest)


def _non_negative(*columns: str) -> tuple[str, ...]:
    return tuple(f"{column} >= 0" for column in columns)


USERS = table(
    "users", r.UserRecord, ("user_id",), unique=("username", "email"), listed=True,
    indexes=(Index("users_created_at", ("created_at DESC",)),),
)  # fmt: skip
ACCOUNTS = table(
    "accounts", r.AccountRecord, ("user_id",), derived=("available_cents",),
    checks=(*_non_negative("balance_cents", "reserved_cents", "available_cents"),
            "available_cents = balance_cents - reserved_cents"),
)  # fmt: skip
CASH_LEDGER = table(
    "cash_ledger", r.CashEntry, ("entry_id",), listed=True,
    indexes=(Index("cash_ledger_user_time", ("user_id", "created_at DESC")),),
)  # fmt: skip
DAILY_LIMITS = table(
    "daily_limits", r.LimitUsage, ("user_id", "day", "kind"), clustered=True,
    checks=_non_negative("used_cents"),
)  # fmt: skip
IDEMPOTENCY = table(
    "idempotency", r.IdempotencyRecord, ("user_id", "key"), clustered=True,
    ordered_json=("payload",),  # a replayed answer keeps its key order
    indexes=(Index("idempotency_expires_at", ("expires_at",)),),
)  # fmt: skip
REVOCATIONS = table(
    "revoked_tokens", r.Revocation, ("jti",), clustered=True,
    indexes=(Index("revoked_tokens_expires_at", ("expires_at",)),),
)  # fmt: skip
AUDIT = table(
    "audit_events", r.AuditEvent, ("event_id",), listed=True,
    indexes=(
        Index("audit_events_user_time", ("user_id", "created_at DESC")),
        Index("audit_events_type_time", ("event_type", "created_at DESC")),
        Index("audit_events_time", ("created_at DESC",)),
    ),
)  # fmt: skip
ASSETS = table("assets", r.AssetRecord, ("asset_id",))
# The feed's prices, apart from the assets' rows since schema 6 (a tick rewrote every asset's
# metadata with its price); an asset's price is the newer of the two (`AssetRepository`).
PRICES = table("prices", r.PriceUpdate, ("asset_id",), clustered=True)
# An open hour's or day's row holds its closed minutes (`rolled_until`, schema 7): the ticker
# writes it once a minute, not on every turn, and a reader merges the minutes after it.
CANDLES = table(
    "candles", r.CandleRecord, ("asset_id", "interval", "open_time"), clustered=True,
    indexes=(Index("candles_interval_time", ("interval", "open_time")),),
)  # fmt: skip
ORDERS = table(
    "orders", r.OrderRecord, ("order_id",), listed=True,
    indexes=(
        Index("orders_user_client_id", ("user_id", "client_order_id"), unique=True,
              where="client_order_id IS NOT NULL"),
        Index("orders_user_time", ("user_id", "created_at DESC")),
        Index("orders_open", ("asset_id", "created_at"), where="status = 'open'"),
    ),
)  # fmt: skip
POSITIONS = table(
    "positions", r.PositionRecord, ("user_id", "asset_id"), derived=("available_units",),
    clustered=True,
    checks=(*_non_negative("quantity_units", "reserved_units", "available_units"),
            "available_units = quantity_units - reserved_units"),
)  # fmt: skip
ASSET_LEDGER = table(
    "asset_ledger", r.AssetEntry, ("entry_id",), listed=True,
    indexes=(Index("asset_ledger_user_asset_time", ("user_id", "asset_id", "created_at DESC")),),
)  # fmt: skip

TABLES: tuple[Table[Any], ...] = (
    USERS, ACCOUNTS, CASH_LEDGER, DAILY_LIMITS, IDEMPOTENCY, REVOCATIONS, AUDIT, ASSETS, PRICES,
    CANDLES, ORDERS, POSITIONS, ASSET_LEDGER,
)  # fmt: skip
