"""Background loops and their stop: a stop waits until the loop's task has ended, and a stop
that is itself cancelled ends there instead of carrying on as if it had not been."""

from __future__ import annotations

import asyncio
import logging

import pytest

from orderproc.common.periodic import Periodic, cancel_and_wait

log = logging.getLogger(__name__)


async def slow_to_end() -> None:
    """A task whose end takes a moment after it is cancelled (its clean-up awaits)."""
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        await asyncio.sleep(0.05)
        raise


async def test_a_stop_waits_for_the_loop_to_end() -> None:
    stepped = asyncio.Event()

    async def step() -> None:
        stepped.set()
        await slow_to_end()

    loop = Periodic("test", interval=0.001, step=step, log=log)
    loop.start()
    await stepped.wait()
    task = loop._task
    assert task is not None
    await loop.stop()
    assert task.done()
    assert not loop.running


async def test_a_stop_that_is_cancelled_ends_there() -> None:
    task = asyncio.create_task(slow_to_end())
    await asyncio.sleep(0)
    stopping = asyncio.create_task(cancel_and_wait(task))
    await asyncio.sleep(0)  # the stop waits for the task's clean-up...
    stopping.cancel()  # ...and is cancelled itself meanwhile
    with pytest.raises(asyncio.CancelledError):
        await stopping
    assert task.cancelled()


async def test_a_stop_cancelled_while_it_waits_leaves_no_task_uncancelled() -> None:
    first, second = asyncio.create_task(slow_to_end()), asyncio.create_task(slow_to_end())
    await asyncio.sleep(0)
    stopping = asyncio.create_task(cancel_and_wait(first, second))
    await asyncio.sleep(0)  # waiting for the first's clean-up...
    stopping.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stopping
    await asyncio.wait([first, second], timeout=1)  # the first's clean-up: 50 ms
    assert first.cancelled()
    assert second.cancelled()  # cancelled before the wait began, not left running


async def test_a_task_that_failed_or_ended_already_is_waited_for_quietly() -> None:
    async def fails() -> None:
        raise RuntimeError("its own failure, which it logs")

    failed = asyncio.create_task(fails())
    await asyncio.sleep(0)
    await cancel_and_wait(failed)  # no error: it ended
    done = asyncio.create_task(asyncio.sleep(0))
    await done
    await cancel_and_wait(done)
    assert failed.done()
