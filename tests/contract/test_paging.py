"""The storage contract for paging (every adapter): a list is newest first by (time, insertion
order) and pages by key (`after`, `next_key`), never by counting; a walk from key to key
neither repeats nor skips a row, even when rows arrive between two pages; a filter no index
holds looks at no more than `SCAN_ROWS` rows a page; the legacy `offset` skips matching rows;
`total_count` is exact or None."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

import pytest

from orderproc.common.storage.memory import MemoryStore
from orderproc.common.storage.ports import Store, UnitOfWork
from orderproc.common.storage.records import SCAN_ROWS, CashEntry, CashEntryKind, Page, PageKey
from tests.contract.test_storage import at, commit, make_entry, make_event, make_user
from tests.contract.test_trading_storage import make_asset_entry, make_order

Fetch = Callable[[UnitOfWork, int, PageKey | None], Awaitable[Page[Any]]]


def row_id(row: Any) -> str:
    for name in ("entry_id", "event_id", "order_id", "user_id"):
        if hasattr(row, name):
            return str(getattr(row, name))
    raise AssertionError(row)


def ids(page: Page[Any]) -> list[str]:
    return [row_id(row) for row in page.items]


async def walk(store: Store, fetch: Fetch, *, limit: int) -> list[str]:
    """Every row of a list, page by page from `next_key` to `next_key`."""
    seen: list[str] = []
    after: PageKey | None = None
    for _ in range(10_000):
        async with store.unit_of_work() as uow:
            page = await fetch(uow, limit, after)
        assert len(page.items) <= limit
        seen += ids(page)
        if page.next_key is None:
            return seen
        after = page.next_key
    raise AssertionError("the walk never ended")


def newest_first(rows: Sequence[Any], key: str) -> list[str]:
    """The contract's order: newest first; among equal times, the later insert first."""
    ordered = sorted(enumerate(rows), key=lambda pair: (pair[1].created_at, pair[0]), reverse=True)
    return [getattr(row, key) for _, row in ordered]


def ledger_pages(kind: CashEntryKind | None, start: datetime | None, end: datetime | None) -> Fetch:
    def fetch(uow: UnitOfWork, limit: int, after: PageKey | None) -> Awaitable[Page[Any]]:
        return uow.cash_ledger.list_for_user(
            "u1", kind=kind, start=start, end=end, limit=limit, after=after
        )

    return fetch


def audit_pages(user_id: str | None, event_type: str | None) -> Fetch:
    def fetch(uow: UnitOfWork, limit: int, after: PageKey | None) -> Awaitable[Page[Any]]:
        return uow.audit.list(user_id=user_id, event_type=event_type, limit=limit, after=after)

    return fetch


async def add_entries(store: Store, rows: list[CashEntry]) -> None:
    def stage(uow: UnitOfWork) -> None:
        for row in rows:
            uow.cash_ledger.add(row)

    await commit(store, stage)


# Ten distinct times, so that many rows tie.
def some_time(rng: random.Random) -> datetime:
    return at(seconds=rng.randrange(10))


class TestWalks:
    @pytest.mark.parametrize("limit", [1, 3, 250])
    async def test_the_cash_ledger_walks_whole_with_every_filter(
        self, store: Store, limit: int
    ) -> None:
        rng = random.Random(limit)
        kinds = ("deposit", "withdraw", "fee")
        rows = [
            make_entry(f"e{n:03d}", kind=rng.choice(kinds), created_at=some_time(rng))
            for n in range(60)
        ]
        others = [make_entry(f"x{n}", user_id="u2", created_at=some_time(rng)) for n in range(5)]

        def stage(uow: UnitOfWork) -> None:
            for row in rows + others:
                uow.cash_ledger.add(row)

        await commit(store, stage)
        cases: list[tuple[CashEntryKind | None, datetime | None, datetime | None]] = [
            (None, None, None),
            ("fee", None, None),
            (None, at(seconds=3), at(seconds=7)),
            ("withdraw", at(seconds=2), None),
        ]
        for kind, start, end in cases:
            chosen = [
                row
                for row in rows
                if (kind is None or row.kind == kind)
                and (start is None or row.created_at >= start)
                and (end is None or row.created_at < end)
            ]
            fetch = ledger_pages(kind, start, end)
            assert await walk(store, fetch, limit=limit) == newest_first(chosen, "entry_id")

    @pytest.mark.parametrize("limit", [1, 4])
    async def test_orders_users_audit_and_the_asset_ledger_walk_whole(
        self, store: Store, limit: int
    ) -> None:
        rng = random.Random(limit)
        orders = [
            make_order(
                f"o{n:02d}",
                status=rng.choice(("filled", "open")),
                asset_id=rng.choice(("BTC", "ETH")),
                created_at=some_time(rng),
            )
            for n in range(25)
        ]
        users = [make_user(f"u{n:02d}", created_at=some_time(rng)) for n in range(15)]
        events = [
            make_event(
                f"a{n:02d}",
                user_id=rng.choice(("u1", "u2")),
                event_type=rng.choice(("login_success", "logout")),
                created_at=some_time(rng),
            )
            for n in range(25)
        ]
        entries = [
            make_asset_entry(f"b{n:02d}", asset_id=rng.choice(("BTC", "ETH")), created_at=t)
            for n, t in enumerate(some_time(rng) for _ in range(20))
        ]

        def stage(uow: UnitOfWork) -> None:
            for order in orders:
                uow.orders.add(order)
            for user in users:
                uow.users.add(user)
            for event in events:
                uow.audit.add(event)
            for entry in entries:
                uow.asset_ledger.add(entry)

        await commit(store, stage)

        open_eth = [o for o in orders if o.status == "open" and o.asset_id == "ETH"]
        assert await walk(
            store,
            lambda uow, n, after: uow.orders.list_for_user(
                "u1", status="open", asset_id="ETH", limit=n, after=after
            ),
            limit=limit,
        ) == newest_first(open_eth, "order_id")
        assert await walk(
            store, lambda uow, n, after: uow.users.list(limit=n, after=after), limit=limit
        ) == newest_first(users, "user_id")
        for user_id, event_type in [(None, None), ("u2", None), (None, "logout"), ("u1", "logout")]:
            chosen = [
                e
                for e in events
                if (user_id is None or e.user_id == user_id)
                and (event_type is None or e.event_type == event_type)
            ]
            audit = audit_pages(user_id, event_type)
            assert await walk(store, audit, limit=limit) == newest_first(chosen, "event_id")
        btc = [e for e in entries if e.asset_id == "BTC"]
        assert await walk(
            store,
            lambda uow, n, after: uow.asset_ledger.list_for_user(
                "u1", asset_id="BTC", limit=n, after=after
            ),
            limit=limit,
        ) == newest_first(btc, "entry_id")

    async def test_rows_arriving_between_pages_are_neither_repeated_nor_skipped(
        self, store: Store
    ) -> None:
        first_rows = [make_entry(f"e{n}", created_at=at(seconds=n)) for n in range(5)]
        await add_entries(store, first_rows)
        async with store.unit_of_work() as uow:
            first = await uow.cash_ledger.list_for_user("u1", limit=2)
        # Newer rows, and one at the very time of the last row shown (a later insert).
        arriving = [make_entry(f"n{n}", created_at=at(seconds=10 + n)) for n in range(3)]
        arriving.append(make_entry("tie", created_at=at(seconds=3)))
        await add_entries(store, arriving)
        seen = ids(first)
        after = first.next_key
        while after is not None:
            async with store.unit_of_work() as uow:
                page = await uow.cash_ledger.list_for_user("u1", limit=2, after=after)
            seen += ids(page)
            after = page.next_key
        assert seen == ["e4", "e3", "e2", "e1", "e0"]


class TestBounds:
    async def test_a_filter_no_index_holds_looks_at_a_bounded_number_of_rows(
        self, store: Store
    ) -> None:
        """The one fee is older than SCAN_ROWS + 2 deposits: the first page looks at SCAN_ROWS
        rows, finds nothing and says where to go on; the second finds it."""

        def stage(uow: UnitOfWork) -> None:
            uow.cash_ledger.add(make_entry("fee", kind="fee", created_at=at(seconds=-1)))
            for n in range(SCAN_ROWS + 2):
                uow.cash_ledger.add(make_entry(f"d{n:04d}", created_at=at(seconds=n)))

        await commit(store, stage)
        async with store.unit_of_work() as uow:
            first = await uow.cash_ledger.list_for_user("u1", kind="fee", limit=10)
            assert first.items == []
            assert first.next_key is not None
            second = await uow.cash_ledger.list_for_user(
                "u1", kind="fee", limit=10, after=first.next_key
            )
            assert ids(second) == ["fee"]
            assert second.next_key is None
            # Without the filter the index gives the rows in order: full pages.
            plain = await uow.cash_ledger.list_for_user("u1", limit=250)
            assert len(plain.items) == 250

    async def test_a_page_that_fills_before_its_bound_goes_on_from_its_last_row(
        self, store: Store
    ) -> None:
        def stage(uow: UnitOfWork) -> None:
            for n in range(30):
                kind = "fee" if n % 3 == 0 else "deposit"
                uow.cash_ledger.add(make_entry(f"e{n:02d}", kind=kind, created_at=at(seconds=n)))

        await commit(store, stage)
        async with store.unit_of_work() as uow:
            page = await uow.cash_ledger.list_for_user("u1", kind="fee", limit=3)
            more = await uow.cash_ledger.list_for_user(
                "u1", kind="fee", limit=3, after=page.next_key
            )
        assert ids(page) == ["e27", "e24", "e21"]
        assert page.next_key is not None
        assert page.next_key.at == at(seconds=21)
        assert ids(more) == ["e18", "e15", "e12"]


class TestLegacyOffset:
    async def test_an_offset_skips_matching_rows_and_the_page_goes_on_by_key(
        self, store: Store
    ) -> None:
        def stage(uow: UnitOfWork) -> None:
            for n in range(12):
                kind = "fee" if n % 2 else "deposit"
                uow.cash_ledger.add(make_entry(f"e{n:02d}", kind=kind, created_at=at(seconds=n)))
                uow.orders.add(make_order(f"o{n:02d}", created_at=at(seconds=n)))

        await commit(store, stage)
        async with store.unit_of_work() as uow:
            plain = await uow.cash_ledger.list_for_user("u1", limit=3, offset=4)
            fees = await uow.cash_ledger.list_for_user("u1", kind="fee", limit=2, offset=2)
            rest = await uow.cash_ledger.list_for_user(
                "u1", kind="fee", limit=10, after=fees.next_key
            )
            beyond = await uow.cash_ledger.list_for_user("u1", limit=3, offset=12)
            orders = await uow.orders.list_for_user("u1", limit=2, offset=10)
        assert ids(plain) == ["e07", "e06", "e05"]
        assert ids(fees) == ["e07", "e05"]
        assert ids(rest) == ["e03", "e01"]
        assert (beyond.items, beyond.next_key) == ([], None)
        assert (ids(orders), orders.next_key) == (["o01", "o00"], None)


async def test_total_count_is_exact_where_the_store_counts_and_none_elsewhere(
    store: Store,
) -> None:
    def stage(uow: UnitOfWork) -> None:
        for n in range(5):
            uow.cash_ledger.add(make_entry(f"e{n}", kind="fee" if n % 2 else "deposit"))

    await commit(store, stage)
    async with store.unit_of_work() as uow:
        page = await uow.cash_ledger.list_for_user("u1", kind="fee", limit=1)
    expected = 2 if isinstance(store, MemoryStore) else None
    assert page.total_count == expected
