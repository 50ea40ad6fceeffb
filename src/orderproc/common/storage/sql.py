"""What SQLite and PostgreSQL share: the schema's DDL and row codecs, the SQL of every read
primitive and write intent (written once with `?` placeholders; a `Dialect` supplies what
differs: types, codecs, the insertion-order column), and the migrator."""

from __future__ import annotations

import builtins
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, NamedTuple, TypeVar

import orjson

from orderproc.common.clock import SystemClock
from orderproc.common.storage.intents import Increment, Insert, Intent, Update, Upsert
from orderproc.common.storage.records import SCAN_ROWS, Page, PageKey
from orderproc.common.storage.repositories import Cond
from orderproc.common.storage.schema import SCHEMA_VERSION, TABLES, Column, Index, Kind, Table
from orderproc.errors import StoreUnavailable

Params = tuple[Any, ...]
R = TypeVar("R")
Codec = Callable[[Any], Any]
DESCRIPTION = "the schema declared in orderproc.common.storage.schema"


@dataclass(frozen=True, slots=True)
class Faults:
    """`with faults:` raises a driver's error that is a fault of the store (as `fault` tells)
    as the store error it stands for; any other error goes on as it is."""

    fault: Callable[[BaseException], StoreUnavailable | None]

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, error: BaseException | None, traceback: object) -> None:
        fault = None if error is None else self.fault(error)
        if fault is not None:
            raise fault from error


def json_text(value: Any) -> str:
    """A dict as JSON text; a Decimal inside goes as its exact text."""
    return orjson.dumps(value, default=str).decode()


class Statement(NamedTuple):
    """One staged write; `expect` is the row count it must affect (None: any count will do).
    With `many`, `params` holds one parameter tuple per row and the statement runs for each.
    (A tuple: one is made per write, on the hot path.)"""

    sql: str
    params: Params
    expect: int | None = 1
    many: bool = False


class Dialect:
    """How one SQL database spells the schema. Subclasses fill in the class attributes."""

    seq = ""  # the insertion-order column
    types: dict[Kind, str] = {}
    encoders: dict[Kind, Codec] = {}  # Python value -> parameter; identity where absent
    decoders: dict[Kind, Codec] = {}  # column value -> Python value; identity where absent
    # How a filtered page keeps its subquery's order: SQLite yields the rows in that order as
    # they come, and sorting would read the whole subquery first (measured: 5x the CPU); on
    # PostgreSQL the planner sees the order carry through and sorts nothing.
    reorder = ""
    columns_query = ""  # (table, column) for every column of every table
    indexes_query = ""  # (index, table) for every index we made (not a key's or a UNIQUE's)
    functions: tuple[str, ...] = ()  # (re)created whenever a migration runs
    identity = ""  # a listed table's insertion-order column, where the store has none built in
    clustered = ""  # what follows the definition of a table clustered by its key

    def column_type(self, table: Table[Any], name: str) -> str:
        return self.types[table.kinds[name]]

    def value(self, table: Table[Any], name: str, value: Any) -> Any:
        encode = self.encoders.get(table.kinds[name])
        return value if encode is None or value is None else encode(value)

    # --- DDL ----------------------------------------------------------------------------------

    def create_table(self, table: Table[Any]) -> str:
        lines = [
            f"{c.name} {self.column_type(table, c.name)}{'' if c.nullable else ' NOT NULL'}"
            for c in table.columns
        ]
        if table.listed and self.identity:
            lines.append(self.identity)
        lines.append(f"PRIMARY KEY ({', '.join(table.key)})")
        lines += [f"UNIQUE ({name})" for name in table.unique]
        lines += [f"CHECK ({check})" for check in table.checks]
        body = ",\n    ".join(lines)
        suffix = self.clustered if table.clustered else ""
        return f"CREATE TABLE {table.name} (\n    {body}\n){suffix}"

    def create_index(self, table: Table[Any], index: Index) -> str:
        columns = builtins.list(index.columns)
        if table.listed and self.identity and columns[-1].startswith("created_at"):
            columns.append(columns[-1].replace("created_at", self.seq))  # ties, newest first
        unique = "UNIQUE " if index.unique else ""
        where = f" WHERE {index.where}" if index.where else ""
        return f"CREATE {unique}INDEX {index.name} ON {table.name} ({', '.join(columns)}){where}"

    # --- row codecs -------------------------------------------------------------------------

    @cache  # noqa: B019 - one per (dialect, table), for the life of the process
    def encoder(self, table: Table[Any]) -> Callable[[Any], Params]:
        """record -> the parameters of every column, in `table.names` order."""
        return _compiled([(f"r.{c.name}", c) for c in table.columns], self.encoders)

    @cache  # noqa: B019
    def update_encoder(self, table: Table[Any]) -> Callable[[Any], Params]:
        """record -> the parameters of `_update`: the columns it sets, then the key."""
        ordered = sorted(table.columns, key=lambda c: c.name in table.key)  # stable
        return _compiled([(f"r.{c.name}", c) for c in ordered], self.encoders)

    @cache  # noqa: B019
    def decoder(self, table: Table[Any]) -> Callable[[Any], Any]:
        """a row of `table.read_names` -> the record."""
        read = [column for column in table.columns if not column.derived]
        return _compiled([(f"r[{i}]", c) for i, c in enumerate(read)], self.decoders, table.record)

    # --- reads --------------------------------------------------------------------------------

    def where(self, table: Table[Any], where: Sequence[Cond]) -> tuple[str, builtins.list[Any]]:
        """`a = ? AND b < ?` and its encoded parameters."""
        sql = " AND ".join(f"{name} {op} ?" for name, op, _ in where)
        return sql, [self.value(table, name, value) for name, _, value in where]

    @cache  # noqa: B019
    def point(
        self, table: Table[Any]
    ) -> tuple[str, tuple[Codec | None, ...], Callable[[Any], Any]]:
        """The point read of one row by its key: the statement, the key's encoders, the decoder."""
        shape = tuple((name, "=") for name in table.key)
        encoders = tuple(self.encoders.get(table.kinds[name]) for name in table.key)
        return self.select(table, shape, (), False), encoders, self.decoder(table)

    @cache  # noqa: B019
    def select(
        self,
        table: Table[Any],
        where: tuple[tuple[str, str], ...],
        order: tuple[str, ...],
        limited: bool,
    ) -> str:
        sql = f"SELECT {', '.join(table.read_names)} FROM {table.name}"
        if where:
            sql += " WHERE " + " AND ".join(f"{name} {op} ?" for name, op in where)
        if order:
            sql += " ORDER BY " + ", ".join(
                self.seq + term[3:] if term.split()[0] == "seq" else term for term in order
            )
        return sql + (" LIMIT ?" if limited else "")

    # --- writes -------------------------------------------------------------------------------

    def compile(self, intents: Sequence[Intent]) -> builtins.list[Statement]:
        """The statements of a unit's intents, in order."""
        statements = []
        for intent in intents:
            table = intent.table
            if type(intent) is Insert:
                sql = self._insert(table, intent.if_absent)
                expect = None if intent.if_absent else 1
                statements.append(Statement(sql, self.encoder(table)(intent.row), expect))
            elif type(intent) is Update:
                params = (*self.update_encoder(table)(intent.row), intent.expected_version)
                statements.append(Statement(self._update(table), params))
            elif type(intent) is Upsert:
                statements += self.upsert(intent)
            else:
                assert isinstance(intent, Increment)
                values = self.encoder(table)(intent.row)
                amount = getattr(intent.row, intent.column)
                params = (*values, amount, intent.limit, intent.limit)
                statements.append(Statement(self._increment(table, intent.column), params))
        return statements

    def upsert(self, intent: Upsert) -> builtins.list[Statement]:
        encode, sql = self.encoder(intent.table), self._upsert(intent.table, intent.stale)
        rows = tuple([encode(row) for row in intent.rows])
        if intent.stale is not None or len(rows) == 1:
            expect = 1 if intent.stale is not None else None
            return [Statement(sql, row, expect) for row in rows]
        return [Statement(sql, rows, expect=None, many=True)]

    @cache  # noqa: B019
    def _insert(self, table: Table[Any], if_absent: bool) -> str:
        absent = " ON CONFLICT DO NOTHING" if if_absent else ""
        return (
            f"INSERT INTO {table.name} ({', '.join(table.names)}) VALUES ({_marks(table)}){absent}"
        )

    @cache  # noqa: B019
    def _update(self, table: Table[Any]) -> str:
        # The key is not SET: naming a column there makes SQLite rewrite the indexes that hold it.
        assignments = ", ".join(f"{name} = ?" for name in table.names if name not in table.key)
        return f"UPDATE {table.name} SET {assignments} WHERE {_key_match(table)} AND version = ?"

    @cache  # noqa: B019
    def _upsert(self, table: Table[Any], stale: tuple[str, str] | None, rows: str = "") -> str:
        """`rows`: where the rows come from (one row's VALUES if not given)."""
        replaced = [name for name in table.names if name not in table.key]
        assignments = ", ".join(f"{name} = excluded.{name}" for name in replaced)
        rows = rows or f"VALUES ({_marks(table)})"
        sql = f"INSERT INTO {table.name} ({', '.join(table.names)}) {rows}"
        sql += f" ON CONFLICT ({', '.join(table.key)}) DO UPDATE SET {assignments}"
        if stale is not None:
            sql += f" WHERE {table.name}.{stale[0]} <= excluded.{stale[1]}"
        return sql

    @cache  # noqa: B019
    def _increment(self, table: Table[Any], column: str) -> str:
        # The SELECT's WHERE refuses a first row over the limit; the upsert's WHERE a later one.
        values = ", ".join(f"?{self.cast(table, name)}" for name in table.names)
        amount, limit = self.cast(table, column), self.cast(table, column)
        return (
            f"INSERT INTO {table.name} ({', '.join(table.names)}) SELECT {values} "
            f"WHERE ?{amount} <= ?{limit} ON CONFLICT ({', '.join(table.key)}) DO UPDATE "
            f"SET {column} = {table.name}.{column} + excluded.{column} "
            f"WHERE {table.name}.{column} + excluded.{column} <= ?{limit}"
        )

    def cast(self, table: Table[Any], name: str) -> str:
        """A cast for a parameter whose type the statement does not fix (none in SQLite)."""
        return ""


def _marks(table: Table[Any]) -> str:
    return ", ".join("?" * len(table.names))


def _key_match(table: Table[Any]) -> str:
    return " AND ".join(f"{name} = ?" for name in table.key)


def _compiled(
    fields: Sequence[tuple[str, Column]], codecs: dict[Kind, Codec], record: Any = None
) -> Callable[[Any], Any]:
    """A function of a row `r` built from source once, as `dataclasses` builds `__init__`: it
    runs on every row, so it reads each field (where in `r`, and its column) with its codec
    inline, and no loop; it returns them as a tuple, or as the `record` they make."""
    namespace: dict[str, Any] = {"Record": record}
    parts = []
    for index, (value, column) in enumerate(fields):
        codec = codecs.get(column.kind)
        if codec is not None:
            namespace[f"c{index}"] = codec
            coded = f"c{index}({value})"
            value = f"(None if {value} is None else {coded})" if column.nullable else coded
        parts.append(value)  # positional: the columns read are the record's fields, in order
    joined = ", ".join(parts)
    body = f"Record({joined})" if record is not None else f"({joined},)"
    exec(f"def compiled(r):\n    return {body}", namespace)  # noqa: S102 - our own text
    function: Callable[[Any], Any] = namespace["compiled"]
    return function


class SqlReads:
    """The read primitives both SQL stores share (see `repositories.Reads`); a store supplies
    `_rows`."""

    dialect: Dialect
    overflow: tuple[type[Exception], ...] = ()  # what a sum past the column's range raises

    async def _rows(self, statement: str, params: Sequence[Any]) -> builtins.list[Any]:
        raise NotImplementedError

    def _key(self, stored: Any) -> PageKey:
        """The `PageKey` of a row from its (created_at, insertion order) columns."""
        decode = self.dialect.decoders.get("time")
        return PageKey(stored[0] if decode is None else decode(stored[0]), stored[1])

    def _listed(
        self, table: Table[Any], where: Sequence[Cond], after: PageKey | None
    ) -> tuple[str, builtins.list[Any]]:
        """The WHERE clause of a list: `where`, and past `after`, the keyset condition."""
        conditions, params = self.dialect.where(table, where)
        if after is not None:
            at = self.dialect.value(table, "created_at", after.at)
            keyset = f"created_at <= ? AND (created_at < ? OR {self.dialect.seq} < ?)"
            conditions = f"{conditions} AND {keyset}" if conditions else keyset
            params += [at, at, after.seq]
        return (f" WHERE {conditions}" if conditions else ""), params

    async def get(self, table: Table[R], key: Sequence[Any]) -> R | None:
        statement, encoders, decode = self.dialect.point(table)
        if any(encoders):
            key = [v if e is None else e(v) for e, v in zip(encoders, key, strict=True)]
        rows = await self._rows(statement, key)
        return decode(rows[0]) if rows else None

    async def select(
        self, table: Table[R], where: Sequence[Cond] = (), *, order: Sequence[str] = (),
        limit: int | None = None,
    ) -> builtins.list[R]:  # fmt: skip
        shape = tuple([(name, op) for name, op, _ in where])
        params = [self.dialect.value(table, name, value) for name, _, value in where]
        if limit is not None:
            params.append(limit)
        statement = self.dialect.select(table, shape, tuple(order), limit is not None)
        decode = self.dialect.decoder(table)
        rows = await self._rows(statement, params)
        return [decode(row) for row in rows]

    async def page(
        self, table: Table[R], where: Sequence[Cond], *, residual: Sequence[Cond], limit: int,
        after: PageKey | None, offset: int,
    ) -> Page[R]:  # fmt: skip
        """Newest first by (created_at, insertion order), never counted: the index gives the
        rows in order and the page reads `offset + limit + 1` of them. `residual` applies outside
        a subquery that takes at most `offset + SCAN_ROWS` rows in index order (its LIMIT keeps
        the filter from steering the planner to another index); a page that stops there goes
        on, next time, from the last row the subquery took."""
        where_sql, params = self._listed(table, where, after)
        seq = self.dialect.seq
        select = (
            f"SELECT {', '.join(table.read_names)}, created_at AS page_at, {seq} AS page_seq "
            f"FROM {table.name}{where_sql} ORDER BY page_at DESC, page_seq DESC"
        )
        statement, values = select, params
        if residual:
            matching, first = self.dialect.where(table, residual)
            statement = (
                f"SELECT * FROM ({select} LIMIT ?) AS page WHERE {matching}{self.dialect.reorder}"
            )
            values = [*params, offset + SCAN_ROWS, *first]
        rows = await self._rows(f"{statement} LIMIT ? OFFSET ?", (*values, limit + 1, offset))
        decode = self.dialect.decoder(table)  # reads its columns; the key's come after
        items = [decode(row) for row in rows[:limit]]
        if len(rows) > limit:
            return Page(items, None, self._key(rows[limit - 1][-2:]))
        if not residual:
            return Page(items, None, None)
        # Short: did the subquery stop at its bound with rows left? Then go on from its last.
        ends = await self._rows(f"{select} LIMIT 2 OFFSET ?", (*params, offset + SCAN_ROWS - 1))
        return Page(items, None, self._key(ends[0][-2:]) if len(ends) == 2 else None)

    async def sum(
        self, table: Table[Any], column: str, where: Sequence[Cond], *,
        after: PageKey | None, limit: int,
    ) -> tuple[int, PageKey | None]:  # fmt: skip
        where_sql, params = self._listed(table, where, after)
        seq = self.dialect.seq
        chunk = (
            f"SELECT {column} AS v, created_at AS at, {seq} AS s FROM {table.name}{where_sql} "
            f"ORDER BY created_at DESC, {seq} DESC LIMIT ?"
        )
        try:
            found = await self._rows(
                f"SELECT sum(v), count(*) FROM ({chunk}) AS c", (*params, limit)
            )
            total, count = found[0]
        except self.overflow:  # SQLite's integers stop at 2**63: add this chunk in Python
            values = await self._rows(chunk, (*params, limit))
            total, count = sum(row[0] for row in values), len(values)
        if count < limit:
            return int(total or 0), None
        last = await self._rows(
            f"SELECT at, s FROM ({chunk}) AS c LIMIT 1 OFFSET ?", (*params, limit, limit - 1)
        )
        return int(total or 0), self._key(last[0])


# --- migrations -------------------------------------------------------------------------------

Run = Callable[[str, Params], Awaitable[builtins.list[Any]]]


async def migrate(dialect: Dialect, run: Run) -> None:
    """Bring the database `run` reaches to the declared schema in place, inside the caller's
    transaction and under its lock: two processes migrating at once take turns, and the second
    finds nothing to do."""
    await run(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
        f"description TEXT NOT NULL, applied_at {dialect.types['time']} NOT NULL)",
        (),
    )
    columns: dict[str, set[str]] = {}
    for table, column in await run(dialect.columns_query, ()):
        columns.setdefault(table, set()).add(column)
    indexes = {row[0]: row[1] for row in await run(dialect.indexes_query, ())}
    found = await run("SELECT coalesce(max(version), 0) FROM schema_migrations", ())
    if found[0][0] >= SCHEMA_VERSION:
        return
    for statement in [*upgrade(dialect, columns, indexes), *dialect.functions]:
        await run(statement, ())
    now, encode = SystemClock().now(), dialect.encoders.get("time")
    await run(
        "INSERT INTO schema_migrations (version, description, applied_at) VALUES (?, ?, ?)",
        (SCHEMA_VERSION, DESCRIPTION, now if encode is None else encode(now)),
    )


def upgrade(
    dialect: Dialect, columns: dict[str, set[str]], indexes: dict[str, str]
) -> builtins.list[str]:
    """The statements that bring the tables' `columns` and our `indexes` (by name, with their
    table) to the declared schema in place, keeping every row: missing tables, columns and
    indexes are created, indexes no longer declared dropped. Anything else (a column's type, a
    rename) is a change this cannot make: it needs a step written for it, and raises here until
    there is one."""
    statements: builtins.list[str] = []
    for table in TABLES:
        present = columns.get(table.name)
        if present is None:
            statements.append(dialect.create_table(table))
            statements += [dialect.create_index(table, index) for index in table.indexes]
            continue
        for column in table.columns:
            if column.name not in present:
                if not column.nullable:
                    raise RuntimeError(
                        f"{table.name}.{column.name} is new and NOT NULL: write a step for it"
                    )
                kind = dialect.column_type(table, column.name)
                statements.append(f"ALTER TABLE {table.name} ADD COLUMN {column.name} {kind}")
        declared = {index.name for index in table.indexes}
        for index in table.indexes:
            if index.name not in indexes:
                statements.append(dialect.create_index(table, index))
        for index_name, on in sorted(indexes.items()):
            if on == table.name and index_name not in declared:
                statements.append(f"DROP INDEX IF EXISTS {index_name}")
    return statements
