"""The scheduler on its own: latest wins per key, cancellation reaches running work, idle work gives
way to requests. Plain work functions stand in for the model; they block on events, not on time."""

from __future__ import annotations

import asyncio
import threading

from lsp_server.scheduler import Scheduler


async def test_a_newer_request_for_the_same_key_supersedes_the_older_one():
    scheduler = Scheduler()
    ran: list[str] = []

    def work(name: str):
        def run(cancel: threading.Event) -> str:
            ran.append(name)
            return name

        return run

    first = asyncio.ensure_future(scheduler.latest("doc", 0.2, work("first")))
    await asyncio.sleep(0.01)
    second = await scheduler.latest("doc", 0.01, work("second"))
    assert await first is None and second == "second" and ran == ["second"]
    assert scheduler.stats.superseded == 1 and scheduler.stats.ran == 1
    scheduler.shutdown()


async def test_requests_for_different_keys_both_run():
    scheduler = Scheduler()
    results = await asyncio.gather(
        scheduler.latest("a", 0, lambda cancel: 1), scheduler.latest("b", 0, lambda c: 2)
    )
    assert results == [1, 2] and scheduler.stats.ran == 2
    scheduler.shutdown()


async def test_a_superseded_request_stops_its_running_work_and_queued_work_never_starts():
    scheduler = Scheduler()
    started, stopped = threading.Event(), threading.Event()

    def long_work(cancel: threading.Event) -> str:
        started.set()
        assert cancel.wait(10), "the newer request never cancelled this one"
        stopped.set()
        return "stale"

    first = asyncio.ensure_future(scheduler.latest("doc", 0, long_work, label="doc"))
    await asyncio.get_running_loop().run_in_executor(None, started.wait, 10)
    assert scheduler.running == "doc"
    second = await scheduler.latest("doc", 0, lambda cancel: "fresh")
    assert second == "fresh" and await first is None and stopped.is_set()
    scheduler.shutdown()


async def test_cancelling_the_awaiting_request_sets_the_cancel_event_of_its_work():
    scheduler = Scheduler()
    started, seen = threading.Event(), threading.Event()

    def work(cancel: threading.Event) -> None:
        started.set()
        if cancel.wait(10):
            seen.set()

    task = asyncio.ensure_future(scheduler.latest("doc", 0, work))
    await asyncio.get_running_loop().run_in_executor(None, started.wait, 10)
    task.cancel()
    await asyncio.get_running_loop().run_in_executor(None, seen.wait, 10)
    assert seen.is_set() and scheduler.stats.cancelled == 1
    scheduler.shutdown()


async def test_idle_work_gives_way_to_a_request():
    scheduler = Scheduler()
    started, gave_way = threading.Event(), threading.Event()

    def idle(cancel: threading.Event) -> None:
        started.set()
        if cancel.wait(10):
            gave_way.set()

    scheduler.when_idle(idle)
    await asyncio.get_running_loop().run_in_executor(None, started.wait, 10)
    assert await scheduler.latest("doc", 0, lambda cancel: "answer") == "answer"
    assert gave_way.is_set() and scheduler.stats.background_cancelled == 1 and scheduler.stats.background == 0
    scheduler.shutdown()


async def test_newer_idle_work_replaces_older_idle_work_that_has_not_started():
    scheduler = Scheduler()
    gate, done = threading.Event(), []
    # Submitted at once (not a coroutine waiting for the loop): it holds the one model thread.
    blocker = asyncio.get_running_loop().run_in_executor(scheduler.executor, gate.wait, 10)
    scheduler.when_idle(lambda cancel: done.append("old"))
    scheduler.when_idle(lambda cancel: done.append("new"))
    gate.set()
    await blocker
    await scheduler.offload(lambda: None)  # after both idle runs
    assert done == ["new"] and scheduler.stats.background == 1 and scheduler.stats.background_cancelled == 1
    scheduler.shutdown()
