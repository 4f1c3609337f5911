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
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class SchedulerStats:
    requests: int = 0
    superseded: int = 0  # answered empty because a newer request for the same document came
    cancelled: int = 0  # $/cancelRequest
    ran: int = 0  # reached the model thread and did the work
    background: int = 0  # work done while idle (warming the KV cache, speculating), to the end
    background_cancelled: int = 0  # idle work stopped part way or skipped because a request came


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
        self._idle: _Ticket | None = None  # the one piece of idle work queued or running

    async def offload(self, fn: Callable[..., T], *args: Any) -> T:
        """Run plain code on the model thread (for work that is not a per-document request)."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def latest(
        self, key: str, debounce_s: float, work: Callable[[threading.Event], T], label: str | None = None
    ) -> T | None:
        """Run `work(cancel)` on the model thread unless a newer request for `key` supersedes this one.
        `label` (default `key`) is what `running` shows meanwhile."""
        self.stats.requests += 1
        self._counter += 1
        ticket = _Ticket(self._counter)
        previous = self._latest.get(key)
        self._latest[key] = ticket
        self._stop_idle()
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
                self.running = label or key
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

    def pending(self) -> bool:
        """Whether a request waits out its debounce or runs."""
        return bool(self._latest)

    def when_idle(self, work: Callable[[threading.Event], Any]) -> None:
        """Run `work(cancel)` on the model thread unless a request comes first; a request that comes
        while it runs sets its cancel event (the model stops within a decode step). Newer idle work
        replaces older."""
        self._stop_idle()
        ticket = self._idle = _Ticket(0)

        def run() -> None:
            if ticket.cancel.is_set() or self._latest:
                self.stats.background_cancelled += 1
                return
            self.running = "(idle)"
            try:
                work(ticket.cancel)
            finally:
                self.running = None
            if ticket.cancel.is_set():
                self.stats.background_cancelled += 1
            else:
                self.stats.background += 1

        future = asyncio.get_running_loop().run_in_executor(self.executor, run)
        future.add_done_callback(_log_failure)

    def _stop_idle(self) -> None:
        if self._idle is not None:
            self._idle.cancel.set()
            self._idle = None

    def shutdown(self) -> None:
        self._stop_idle()
        for ticket in self._latest.values():
            ticket.cancel.set()
        self.executor.shutdown(wait=False, cancel_futures=True)


def _log_failure(future: asyncio.Future[Any]) -> None:
    if not future.cancelled() and (exc := future.exception()) is not None:
        log.error("idle work failed", exc_info=exc)
