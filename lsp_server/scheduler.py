"""One model worker, newest request per document wins: no queue builds up while the user types.

A request first waits out the debounce; a newer request for the same key ends that wait at
once (the older one is answered empty). A request whose work already runs on the model
thread is told to stop through its cancel event, which the engine checks every token; work
still queued behind it returns without touching the model. `$/cancelRequest` cancels the
awaiting coroutine, and that too sets the cancel event.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class SchedulerStats:
    requests: int = 0
    superseded: int = 0  # answered empty because a newer request for the same document came
    cancelled: int = 0  # $/cancelRequest
    ran: int = 0  # reached the model thread and did the work


@dataclass
class _Ticket:
    number: int
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    cancel: threading.Event = field(default_factory=threading.Event)


class Scheduler:
    def __init__(self) -> None:
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="code-kb-model")
        self.stats = SchedulerStats()
        self._latest: dict[str, _Ticket] = {}
        self._counter = 0
        self.running: str | None = None  # key whose work is on the model thread now

    async def offload(self, fn: Callable[..., T], *args: Any) -> T:
        """Run plain code on the model thread (for work that is not a per-document request)."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def latest(self, key: str, debounce_s: float, work: Callable[[threading.Event], T]) -> T | None:
        """Run `work(cancel)` on the model thread unless a newer request for `key` supersedes this one."""
        self.stats.requests += 1
        self._counter += 1
        ticket = _Ticket(self._counter)
        previous = self._latest.get(key)
        self._latest[key] = ticket
        if previous is not None:
            previous.wake.set()
            previous.cancel.set()
        try:
            if debounce_s > 0:
                try:
                    await asyncio.wait_for(ticket.wake.wait(), debounce_s)
                except asyncio.TimeoutError:
                    pass
            if self._latest.get(key) is not ticket:
                self.stats.superseded += 1
                return None

            def run() -> T | None:
                if self._latest.get(key) is not ticket or ticket.cancel.is_set():
                    return None  # superseded while queued: never touch the model
                self.running = key
                try:
                    self.stats.ran += 1
                    return work(ticket.cancel)
                finally:
                    self.running = None

            result = await self.offload(run)
            if self._latest.get(key) is not ticket:
                self.stats.superseded += 1
                return None
            return result
        except asyncio.CancelledError:
            ticket.cancel.set()
            self.stats.cancelled += 1
            raise
        finally:
            if self._latest.get(key) is ticket:
                del self._latest[key]

    def shutdown(self) -> None:
        for ticket in self._latest.values():
            ticket.cancel.set()
        self.executor.shutdown(wait=False, cancel_futures=True)
