"""From the model's new window to edits of the document, and when to suggest nothing.

Edits are `TextEdit(start, end, text)`: `str` offsets (code points) into the whole document, as
everything below the LSP layer uses; the LSP layer converts them to UTF-16 positions. The two
windows are compared line by line (difflib), and each changed run of lines is narrowed to the
characters that differ, so a rename inside a line is an edit of the name alone, and changes above
and below the cursor are separate edits, in document order.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from .formats import Window

log = logging.getLogger(__name__)

# Why a prediction suggests nothing: the window came back unchanged, the model undid the user's
# last change, generation stopped before the window's end (token limit, time limit, cancel).
Verdict = Literal["edit", "unchanged", "undo", "max_tokens", "timeout", "cancelled"]
CUT_OFF: dict[str, Verdict] = {"max_tokens": "max_tokens", "timeout": "timeout", "cancelled": "cancelled"}


@dataclass(frozen=True)
class TextEdit:
    """Replace `source[start:end]` with `text` (offsets in the document before any edit)."""

    start: int
    end: int
    text: str


def apply_edits(source: str, edits: Sequence[TextEdit]) -> str:
    """`source` with `edits` (non-overlapping, offsets into `source`) applied."""
    out: list[str] = []
    at = 0
    for e in sorted(edits, key=lambda e: e.start):
        out += [source[at : e.start], e.text]
        at = e.end
    return "".join(out) + source[at:]


def _narrow(start: int, old: str, new: str) -> TextEdit:
    """The edit from `old` (at `start`) to `new`, less their common prefix and suffix."""
    p = 0
    while p < len(old) and p < len(new) and old[p] == new[p]:
        p += 1
    s = 0
    while s < len(old) - p and s < len(new) - p and old[-1 - s] == new[-1 - s]:
        s += 1
    return TextEdit(start + p, start + len(old) - s, new[p : len(new) - s])


def window_edits(window: Window, new_text: str) -> list[TextEdit]:
    """The minimal edits that turn `window.text` into `new_text`, in document offsets."""
    a = window.text.split("\n")
    b = new_text.split("\n")
    starts = [0]
    for line in a:
        starts.append(starts[-1] + len(line) + 1)  # starts[i]: offset of line i in the window
    edits: list[TextEdit] = []
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        new = "\n".join(b[j1:j2])
        if i1 < i2:  # replace or delete lines i1..i2-1
            lo, hi = starts[i1], starts[i2] - 1  # without the last line's line break
            if j1 == j2:  # deleted: take one line break with them
                if i2 < len(a):
                    hi += 1
                elif i1 > 0:
                    lo -= 1
            old = window.text[lo:hi]
        elif i1 < len(a):  # inserted before line i1
            lo = hi = starts[i1]
            old, new = "", new + "\n"
        else:  # inserted after the last line
            lo = hi = len(window.text)
            old, new = "", "\n" + new
        edit = _narrow(lo, old, new)
        if edit.start != edit.end or edit.text:
            edits.append(TextEdit(window.start + edit.start, window.start + edit.end, edit.text))
    return edits


def verdict(window: Window, original_window: str, new_text: str, stop_reason: str) -> Verdict:
    """Whether the model's new window is worth suggesting, and if not, why."""
    cut_off = CUT_OFF.get(stop_reason)
    if cut_off is not None:
        return cut_off
    if new_text == window.text:
        return "unchanged"
    if original_window != window.text and new_text == original_window:
        return "undo"
    return "edit"
