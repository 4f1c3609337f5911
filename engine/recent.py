"""Recently edited code as prompt context: where the user has just been working, in other files.

Retrieval finds what is similar to the cursor; the places the user edited a minute ago are often
what the next line needs (the function just changed, the field just added) whether or not they
look similar. The most recent edit of each of the last few files enters the prompt as a snippet,
a few lines either side, ahead of retrieved ones.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from .prompt import ContextSource, Snippet


@dataclass(frozen=True)
class EditSnippet:
    path: str
    text: str
    start_line: int  # 0-based, inclusive
    end_line: int
    prompt_kind: str = "recent"  # how the prompt labels it
    reason: str = "recent"


class RecentEdits:
    """The last edit position of the last `max_files` edited files."""

    def __init__(self, max_files: int = 3, radius_lines: int = 8) -> None:
        self.max_files = max_files
        self.radius_lines = radius_lines
        self._edits: OrderedDict[str, tuple[str, int]] = OrderedDict()  # path -> (source, line)

    def record(self, path: str, source: str, offset: int) -> None:
        self._edits[path] = (source, source.count("\n", 0, max(0, min(offset, len(source)))))
        self._edits.move_to_end(path)
        while len(self._edits) > self.max_files + 1:  # +1: the current file is never shown
            self._edits.popitem(last=False)

    def forget(self, path: str) -> None:
        self._edits.pop(path, None)

    def snippets_for(self, path: str) -> list[EditSnippet]:
        """Around the last edit of each other recently edited file, most recent first."""
        out: list[EditSnippet] = []
        for other, (source, line) in reversed(self._edits.items()):
            if other == path or len(out) == self.max_files:
                continue
            lines = source.split("\n")
            first = max(0, line - self.radius_lines)
            last = min(len(lines) - 1, line + self.radius_lines)
            text = "\n".join(lines[first : last + 1]).strip("\n")
            if text.strip():
                out.append(EditSnippet(other, text + "\n", first, last))
        return out


class WithRecentEdits:
    """A ContextSource: recent edits first, then what `inner` retrieves (minus chunks they cover)."""

    def __init__(self, inner: ContextSource | None, recent: RecentEdits) -> None:
        self.inner = inner
        self.recent = recent

    def snippets(self, path: str, source: str, offset: int, limit: int | None = None) -> Sequence[Snippet]:
        edits: list[Snippet] = list(self.recent.snippets_for(path))
        found = list(self.inner.snippets(path, source, offset, limit)) if self.inner is not None else []

        def covered(s: Snippet) -> bool:
            return any(
                e.path == s.path and e.start_line <= s.start_line and s.end_line <= e.end_line for e in edits
            )

        return [*edits, *(s for s in found if not covered(s))]
