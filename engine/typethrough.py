"""Completions already computed, answered again without the model while the user types them.

Two kinds of entry: a suggestion that was shown (typing its first characters leaves the rest
of it), and a speculative one computed for the state right after the user accepts a shown
suggestion. An entry matches a later request when the text after the cursor is unchanged and
the text before it is the entry's plus characters the suggestion begins with.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Shown:
    path: str
    before: str  # the buffer up to the cursor when it was computed
    after: str  # the buffer from the cursor on
    text: str
    alternatives: tuple[str, ...] = field(default_factory=tuple)
    prompt: Any = None  # what it was computed from, for reports

    def accepted(self) -> tuple[str, int]:
        """The buffer and cursor once this suggestion is accepted."""
        return self.before + self.text + self.after, len(self.before) + len(self.text)


class TypeThroughCache:
    def __init__(self, capacity: int = 8) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[tuple[str, str, int], Shown] = OrderedDict()

    def add(self, shown: Shown) -> None:
        if not shown.text:
            return
        key = (shown.path, shown.before[-200:], len(shown.before))
        self._entries[key] = shown
        self._entries.move_to_end(key)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def lookup(self, path: str, source: str, offset: int) -> tuple[str, tuple[str, ...], Shown] | None:
        """What is left of a cached suggestion at this cursor, its alternatives, and the entry; None if none fits."""
        after = source[offset:]
        for shown in reversed(self._entries.values()):
            if shown.path != path or shown.after != after or offset < len(shown.before):
                continue
            typed = source[len(shown.before) : offset]
            if not source.startswith(shown.before) or not shown.text.startswith(typed) or typed == shown.text:
                continue
            rest = tuple(a[len(typed) :] for a in shown.alternatives if a.startswith(typed) and a != typed)
            return shown.text[len(typed) :], rest, shown
        return None

    def newest(self, path: str) -> Shown | None:
        return next((e for e in reversed(self._entries.values()) if e.path == path), None)

    def clear(self) -> None:
        self._entries.clear()
