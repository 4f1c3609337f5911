"""What a next-edit prompt format is, and which one a model speaks.

A format picks the window the model may rewrite, lays out the prompt as token segments, says what
ends the model's answer and reads the new window out of it. Sweep's next-edit models are the first
(`sweep.SweepFormat`); Zed's Zeta 2.x (the cursor's suffix first, the editable span between marker
tokens) would be a second class with the same methods.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from ..backends import Cut, Stops
from ..errors import NextEditFormatError
from ..prompt import Prompt, Snippet, Tokenizer
from .history import Change

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Window:
    """Whole lines `start_line`..`end_line` (0-based, inclusive) of a document: `text` is
    `source[start:end]`, from the start of the first line to the end of the last one, without
    its line break."""

    start_line: int
    end_line: int
    start: int  # str offsets in the document
    end: int
    text: str


def line_window(source: str, cursor_offset: int, above: int, below: int) -> Window:
    """The cursor's line with up to `above` lines before it and `below` after it."""
    cursor_offset = max(0, min(cursor_offset, len(source)))
    lines = source.split("\n")
    row = source.count("\n", 0, cursor_offset)
    first = max(row - above, 0)
    last = min(row + below, len(lines) - 1)
    start = sum(len(line) + 1 for line in lines[:first])
    end = start + sum(len(line) + 1 for line in lines[first : last + 1]) - 1
    return Window(first, last, start, end, source[start:end])


@dataclass(frozen=True)
class NextEditRequest:
    """Everything a format lays out: the file, its window now and before the last change, the
    recent changes (oldest first) and related snippets (best first)."""

    path: str
    window: Window
    original_window: str
    changes: Sequence[Change]
    snippets: Sequence[Snippet]


class NextEditFormat(Protocol):
    @property
    def name(self) -> str: ...

    def window(self, source: str, cursor_offset: int) -> Window:
        """The part of the document the model rewrites."""
        ...

    def build(self, tokenizer: Tokenizer, request: NextEditRequest, budget_tokens: int) -> Prompt:
        """The prompt, segment by segment, user text tokenised without special tokens."""
        ...

    def stops(self, tokenizer: Tokenizer, request: NextEditRequest) -> Stops:
        """Token ids and texts that end the model's answer to `request`."""
        ...

    def cutter(self, stops: Stops) -> Cut:
        """The stop rule: the answer so far up to a stop text, and whether one was found."""
        ...

    def parse(self, text: str) -> str:
        """The new window text in the model's answer (stops already cut)."""
        ...


class Vocabulary(Protocol):
    def special_id(self, text: str) -> int | None: ...


V2_NAME = re.compile(r"next[-_ ]?edit[-_ ]?v\d")
NEXT_EDIT_WORDS = ("next-edit", "next_edit", "nextedit", "next edit")
_NAME_KEYS = (
    "general.name",
    "general.basename",
    "general.finetune",
    "general.base_model.0.name",
    "general.source.url",
    "general.source.repo_url",
    "general.url",
    "general.tags",
)


def model_names(model: object) -> str:
    """What a model calls itself, lower case: its GGUF metadata's name fields and its file name."""
    metadata: Mapping[str, object] = getattr(model, "metadata", None) or {}
    names = [str(metadata[k]) for k in _NAME_KEYS if k in metadata]
    names += [
        str(getattr(model, "name", "") or ""),
        str(getattr(getattr(model, "path", None), "name", "") or ""),
    ]
    return " ".join(names).lower()


def detect_next_edit_format(model: Vocabulary) -> NextEditFormat | None:
    """The next-edit format the model was trained on, None for a model that is no next-edit model
    or speaks a format we do not have.

    Sweep's models have Qwen2.5-Coder's vocabulary unchanged, so the vocabulary alone cannot tell
    them from a plain Qwen2.5-Coder: the GGUF's name (or file name) must say "sweep" and
    "next-edit", and `<|file_sep|>` must be one token. Sweep's v2 models (sweep-next-edit-v2-7B)
    take another layout (line ranges in the window headers, a cursor marker): not recognised."""
    from .sweep import SweepFormat

    names = model_names(model)
    if "sweep" not in names or not any(w in names for w in NEXT_EDIT_WORDS):
        return None
    if V2_NAME.search(names):
        log.warning(
            "%s: Sweep's v2 next-edit format is not supported yet; use sweep-next-edit-1.5B or -0.5B", names
        )
        return None
    if model.special_id("<|file_sep|>") is None:
        log.warning("%s is named as a Sweep next-edit model but has no <|file_sep|> token", names)
        return None
    return SweepFormat()


def format_named(name: str) -> NextEditFormat:
    """A format by name (for a remote model or a file whose name does not tell)."""
    from .sweep import SweepFormat

    if name in ("sweep", SweepFormat.name):
        return SweepFormat()
    raise NextEditFormatError(f"unknown next-edit format {name!r}; use sweep")
