"""Work for the model's idle time: filling the KV cache when a file opens and when the user pauses
typing, and computing the completion after a shown one. Any request stops it (Scheduler.when_idle).

Runs on the event loop; the work itself runs on the scheduler's model thread."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

from engine import EngineError

from .memory import release_free_memory
from .scheduler import Scheduler
from .session import Buffer, IdleWork, Session

log = logging.getLogger(__name__)

# Completions and idle work allocate and free prompts, token lists, logits and query batches on
# several threads, each with its own C heap; once idle work ends undisturbed, what is free goes
# back to the system (a few ms to some tens of ms), at most this often.
GIVE_BACK_EVERY_S = 30.0


class Idle:
    def __init__(self, session: Session, scheduler: Scheduler) -> None:
        self.session = session
        self.scheduler = scheduler
        self._pause_timers: dict[str, asyncio.TimerHandle] = {}  # document -> warm-up after a pause
        self._given_back_at = float("-inf")  # the model thread's: only it reads and sets this

    def run(self, work: IdleWork) -> None:
        """Run `work(cancel)` when the model is idle; a user-fixable problem only skips it."""

        def guarded(cancel: threading.Event) -> None:
            try:
                work(cancel)
            except EngineError as exc:
                log.info("idle work skipped: %s", exc)
            if not cancel.is_set() and time.monotonic() - self._given_back_at >= GIVE_BACK_EVERY_S:
                self._given_back_at = time.monotonic()
                release_free_memory()

        self.scheduler.when_idle(guarded)

    def warm(self, buffer: Buffer, offset: int | None) -> None:
        """Fill the KV cache for a document: its repository part on open (`offset` None), the whole
        prompt at the last edit after a pause."""
        if (work := self.session.warm_up(buffer, offset)) is not None:
            self.run(work)

    def edited(self, key: str, buffer: Buffer, offset: int) -> None:
        """An edit at `offset`: a recent edit for other prompts; once the user pauses (no request for a
        while), warm the cache there."""
        if self.session.edited(buffer, offset) is None:
            return
        if (handle := self._pause_timers.pop(key, None)) is not None:
            handle.cancel()
        delay = max(self.session.settings.server.debounce_ms * 3, 300) / 1000
        self._pause_timers[key] = asyncio.get_running_loop().call_later(
            delay, self._paused, key, buffer, offset
        )

    def _paused(self, key: str, buffer: Buffer, offset: int) -> None:
        self._pause_timers.pop(key, None)
        if self.scheduler.running is None and not self.scheduler.pending():
            self.warm(buffer, offset)

    def close(self) -> None:
        for handle in self._pause_timers.values():
            handle.cancel()
        self._pause_timers.clear()
