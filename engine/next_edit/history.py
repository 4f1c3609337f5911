"""Edit history for next-edit prompts: each document's recent changes, coalesced per typing burst.

The caller (the LSP layer, on every `didChange`) hands in the document's full text before and
after the change; nothing here reads files. Consecutive changes of one document that land within
`grouping_lines` lines of each other and within `burst_gap_s` seconds of the previous one merge into
one burst, so a word typed key by key is one change, not one per key. A burst is shown to the model
as a single hunk: the lines from its first to its last changed line in the text before and after,
with `context_lines` unchanged lines on either side, each side capped at `max_lines` (the middle
replaced by `...`), as Zed does for Sweep's model (crates/edit_prediction: CHANGE_GROUPING_LINE_SPAN
= 8, LAST_CHANGE_GROUPING_TIME = 1 s, 3 context lines; sweep_prompt.rs: at most 3 blocks of 40
lines). Only the last `max_bursts` bursts are kept, oldest dropped first.

Secrets: this module stores whatever text it is given. The caller must never record a document it
refuses to complete (secret files by name, link target or content); `forget(path)` drops a
document's history when it closes or turns out to be secret.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Change:
    """One recent change as the prompt shows it: the same lines before (`original`) and after
    (`updated`), joined by newlines with no final newline, context lines included."""

    path: str
    original: str
    updated: str


@dataclass
class _Burst:
    path: str
    before: str  # the document's text when the burst began
    after: str  # its text after the burst's latest change
    first_line: int  # changed lines of `after` (0-based, inclusive), for grouping the next change
    last_line: int
    at_s: float  # when its latest change was recorded


def changed_lines(old: str, new: str) -> tuple[int, int, int, int] | None:
    """The span of lines that differ: (first, old_end, new_end, n_suffix) with `first` the first
    differing line and `old_end`/`new_end` one past the last differing line of each text; None
    when the texts are equal. One span covers every change, as a burst is one hunk."""
    if old == new:
        return None
    a = old.split("\n")
    b = new.split("\n")
    first = 0
    while first < len(a) and first < len(b) and a[first] == b[first]:
        first += 1
    suffix = 0
    while suffix < len(a) - first and suffix < len(b) - first and a[-1 - suffix] == b[-1 - suffix]:
        suffix += 1
    return first, len(a) - suffix, len(b) - suffix, suffix


def cap_lines(lines: list[str], max_lines: int) -> str:
    """`lines` joined by newlines; past `max_lines`, the first half, `...`, and the last ones."""
    if len(lines) <= max_lines:
        return "\n".join(lines)
    head = max_lines // 2
    tail = max(max_lines - head - 1, 0)
    return "\n".join([*lines[:head], "...", *(lines[len(lines) - tail :] if tail else [])])


class EditHistory:
    """Recent changes of all open documents, in the order they were made.

    Thread-safe: the LSP layer records on its event loop while predictions read on the model thread."""

    def __init__(
        self,
        *,
        grouping_lines: int = 8,
        burst_gap_s: float = 1.0,
        context_lines: int = 3,
        max_lines: int = 40,
        max_blocks: int = 3,
        max_bursts: int = 10,
    ) -> None:
        self.grouping_lines = grouping_lines
        self.burst_gap_s = burst_gap_s
        self.context_lines = context_lines
        self.max_lines = max_lines
        self.max_blocks = max_blocks
        self.max_bursts = max_bursts
        self._bursts: list[_Burst] = []  # oldest first
        self._lock = threading.Lock()

    def record(self, path: str, old_text: str, new_text: str, now_s: float | None = None) -> None:
        """A change of `path` from `old_text` to `new_text` (full texts). `now_s`: a monotonic time
        in seconds (default `time.monotonic()`), given by tests."""
        span = changed_lines(old_text, new_text)
        if span is None:
            return
        now = time.monotonic() if now_s is None else now_s
        with self._lock:
            self._record(path, old_text, new_text, span, now)

    def _record(
        self, path: str, old_text: str, new_text: str, span: tuple[int, int, int, int], now: float
    ) -> None:
        first, _, new_end, _ = span
        last = max(new_end - 1, first)
        latest = self._bursts[-1] if self._bursts else None
        if latest is not None and self._joins(latest, path, old_text, first, last, now):
            latest.after = new_text
            latest.first_line = min(latest.first_line, first)
            latest.last_line = max(latest.last_line, last)
            latest.at_s = now
            if latest.before == latest.after:  # typed and taken back: nothing happened
                self._bursts.pop()
            return
        self._bursts.append(_Burst(path, old_text, new_text, first, last, now))
        del self._bursts[: -self.max_bursts]

    def _joins(self, burst: _Burst, path: str, old_text: str, first: int, last: int, now: float) -> bool:
        if burst.path != path or burst.after != old_text or now - burst.at_s > self.burst_gap_s:
            return False
        # Lines between the new change and the burst's changed lines (0 when they overlap).
        gap = max(first - burst.last_line, burst.first_line - last, 0)
        return gap <= self.grouping_lines

    def forget(self, path: str) -> None:
        """Drop everything recorded for `path` (closed, deleted, or found to be secret)."""
        with self._lock:
            self._bursts = [b for b in self._bursts if b.path != path]

    def clear(self) -> None:
        with self._lock:
            self._bursts.clear()

    def changes(self, path: str | None = None) -> list[Change]:
        """The last `max_blocks` changes, oldest first: of every document, or of `path` only."""
        out: list[Change] = []
        with self._lock:  # texts as they are now: a burst grows while the user types
            bursts = [(b.path, b.before, b.after) for b in self._bursts]
        for burst_path, before, after in reversed(bursts):
            if len(out) == self.max_blocks:
                break
            if path is not None and burst_path != path:
                continue
            change = self._hunk(burst_path, before, after)
            if change is not None:
                out.append(change)
        return out[::-1]

    def _hunk(self, path: str, before: str, after: str) -> Change | None:
        span = changed_lines(before, after)
        if span is None:
            return None
        first, old_end, new_end, _ = span
        a = before.split("\n")
        b = after.split("\n")
        start = max(first - self.context_lines, 0)
        original = a[start : min(old_end + self.context_lines, len(a))]
        updated = b[start : min(new_end + self.context_lines, len(b))]
        return Change(path, cap_lines(original, self.max_lines), cap_lines(updated, self.max_lines))

    def last_before(self, path: str, source: str) -> str | None:
        """The text of `path` before its most recent change, if `source` is the text after it
        (the history is up to date); None otherwise."""
        with self._lock:
            for burst in reversed(self._bursts):
                if burst.path == path:
                    return burst.before if burst.after == source else None
        return None

    def window_before_last_change(self, path: str, source: str, first_line: int, last_line: int) -> str:
        """What lines `first_line`..`last_line` (inclusive) of `source` showed before the most
        recent change of `path`: the same lines where the change is elsewhere, the lines it
        replaced where it is inside. The window itself when there is no such change."""
        lines = source.split("\n")
        window = "\n".join(lines[first_line : last_line + 1])
        before = self.last_before(path, source)
        if before is None:
            return window
        span = changed_lines(before, source)
        if span is None:
            return window
        first, old_end, new_end, _ = span
        shift = old_end - new_end

        def to_old(line: int, end: bool) -> int:
            if line < first:
                return line
            if line >= new_end:
                return line + shift
            return old_end - 1 if end else first  # inside the change: all the lines it replaced

        old = before.split("\n")
        start, stop = to_old(first_line, False), to_old(last_line, True)
        if stop < start:  # the window is wholly inside an insertion: it showed nothing of it
            start, stop = first, first - 1
        return "\n".join(old[start : stop + 1])
