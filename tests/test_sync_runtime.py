"""The worker runtime's one hop: a task thread runs a coroutine on the process loop and waits for it."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import TimeoutError as FutureTimeout

import pytest

from pmsops.sync.config import SyncSettings
from pmsops.sync.runtime import Runtime


@pytest.fixture
def runtime():
    rt = Runtime(SyncSettings())
    yield rt
    rt.close()


def test_run_returns_the_result_and_raises_the_coroutines_exception(runtime):
    async def answer():
        return threading.get_ident()

    async def fail():
        raise ValueError("no such listing")

    assert runtime.run(answer(), timeout=5) == runtime._thread.ident  # ran on the loop's thread
    with pytest.raises(ValueError, match="no such listing"):
        runtime.run(fail(), timeout=5)


def test_a_caller_that_times_out_cancels_the_coroutine_on_the_loop(runtime):
    cancelled = threading.Event()

    async def hang():
        try:
            await asyncio.sleep(30)  # the fault: a coroutine that hangs until cancelled
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with pytest.raises(FutureTimeout):
        runtime.run(hang(), timeout=0.2)
    assert cancelled.wait(5)


def test_many_task_threads_share_the_loop(runtime):
    async def double(x):
        await asyncio.sleep(0)
        return 2 * x

    results: list[int] = []

    def task_thread(base: int) -> None:
        results.extend(runtime.run(double(base + i), timeout=5) for i in range(100))

    threads = [threading.Thread(target=task_thread, args=(k * 100,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results) == [2 * i for i in range(400)]
