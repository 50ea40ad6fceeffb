"""The storage contract for admins: `UserRepository.active_admins`, and the touch (a version
bump with an expected version) that `users.service.admin_update_user` uses as its guard."""

from __future__ import annotations

import asyncio

from orderproc.common.storage.ports import Store, UnitOfWork
from orderproc.errors import ConcurrencyConflict
from tests.contract.test_storage import commit, make_user


async def test_active_admins_lists_only_active_admins_by_id(store: Store) -> None:
    def stage(uow: UnitOfWork) -> None:
        uow.users.add(make_user("u3", role="admin"))
        uow.users.add(make_user("u1", role="admin"))
        uow.users.add(make_user("u2", role="admin", is_active=False))
        uow.users.add(make_user("u4"))

    await commit(store, stage)
    async with store.unit_of_work() as uow:
        admins = await uow.users.active_admins()
    assert [admin.user_id for admin in admins] == ["u1", "u3"]
    assert admins[0] == make_user("u1", role="admin")


async def test_no_admins_is_an_empty_list(store: Store) -> None:
    await commit(store, lambda uow: uow.users.add(make_user("u1")))
    async with store.unit_of_work() as uow:
        assert await uow.users.active_admins() == []


async def test_two_units_that_each_demote_one_admin_and_touch_the_other_cannot_both_commit(
    store: Store,
) -> None:
    """Both read two admins before either commits (the write skew the guard is for)."""
    await commit(
        store,
        lambda uow: [
            uow.users.add(make_user("u1", role="admin")),
            uow.users.add(make_user("u2", role="admin")),
        ],
    )
    both_read = asyncio.Barrier(2)

    async def demote(target: str) -> None:
        async with store.unit_of_work() as uow:
            admins = {a.user_id: a for a in await uow.users.active_admins()}
            await both_read.wait()
            for user_id, admin in sorted(admins.items()):
                role = "customer" if user_id == target else admin.role
                uow.users.update(
                    admin.evolve(role=role, version=admin.version + 1),
                    expected_version=admin.version,
                )
            await uow.commit()

    results = await asyncio.gather(demote("u1"), demote("u2"), return_exceptions=True)

    assert sorted(type(r).__name__ for r in results) == ["ConcurrencyConflict", "NoneType"]
    assert any(isinstance(r, ConcurrencyConflict) for r in results)
    async with store.unit_of_work() as uow:
        assert len(await uow.users.active_admins()) == 1
