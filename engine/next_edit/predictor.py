"""From a document, its recent changes and related snippets to the user's likely next edit.

Greedy generation on the in-process llama.cpp model (`LlamaCppModel.generate_tokens`), which keeps
the KV cache between calls and plans what of a new prompt it already holds: the format puts what
changes between keystrokes (the last change, the windows) at the end, so a keystroke evaluates
few tokens. One model thread: the caller serialises requests, a newer one cancelling the older
through its `threading.Event`, as for completions.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..backends import Generation
from ..backends.llama_cpp import LlamaCppModel
from ..errors import NextEditFormatError
from ..prompt import Prompt, Snippet
from .edits import TextEdit, Verdict, verdict, window_edits
from .formats import NextEditFormat, NextEditRequest, Window, detect_next_edit_format
from .history import EditHistory

log = logging.getLogger(__name__)


@dataclass
class NextEdit:
    """A prediction: its edits (empty when `verdict` says why there are none), the window the
    model rewrote and its new text, and what it cost."""

    edits: list[TextEdit]
    verdict: Verdict
    window: Window
    new_window: str
    prompt: Prompt
    generation: Generation
    build_ms: float
    total_ms: float
    original_window: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def n_prompt(self) -> int:
        return self.generation.n_prompt

    @property
    def n_evaluated(self) -> int:
        """Prompt tokens evaluated for this request (the rest came from the KV cache)."""
        return self.generation.n_evaluated

    @property
    def n_reused(self) -> int:
        return self.generation.n_reused

    @property
    def stop_reason(self) -> str:
        return self.generation.stop_reason

    def summary(self) -> str:
        g = self.generation
        return (
            f"{self.verdict}: {len(self.edits)} edits; prompt {g.n_prompt} tokens: {g.n_evaluated} evaluated, "
            f"{g.n_reused} reused ({g.n_moved} moved); {g.n_generated} tokens generated ({g.stop_reason}) in "
            f"{g.n_decodes} decodes, {g.n_draft_accepted} of {g.n_drafted} drafted accepted; "
            f"build {self.build_ms:.0f} ms, evaluation {g.eval_ms:.0f} ms, "
            f"generation {g.ms - g.eval_ms:.0f} ms, total {self.total_ms:.0f} ms"
        )


class NextEditPredictor:
    """Predicts next edits with one model in one format.

    `budget_tokens` bounds the prompt (related files are dropped first, then the oldest changes);
    `max_tokens` bounds the answer, which must hold the whole window: the limit used is the
    smaller of it and twice the current window's tokens plus 64. With `speculative`, the current
    window is the draft the model's answer is verified against in batches of up to
    `max_draft_tokens` (the answer is mostly a copy of it); the answer is greedy decoding's either
    way, up to batched and single decodes rounding differently on some hardware (the same tokens on
    the test model)."""

    def __init__(
        self,
        model: LlamaCppModel,
        fmt: NextEditFormat | None = None,
        *,
        budget_tokens: int = 3072,
        max_tokens: int = 1024,
        timeout_s: float = 10.0,
        speculative: bool = True,
        max_draft_tokens: int = 16,
    ) -> None:
        if fmt is None:
            fmt = detect_next_edit_format(model)
        if fmt is None:
            raise NextEditFormatError(
                f"{model.name} is not recognised as a next-edit model; use sweep-next-edit-1.5b or "
                "sweep-next-edit-0.5b, or name the format (sweep) for this model"
            )
        self.model = model
        self.format = fmt
        self.budget_tokens = (
            min(budget_tokens, max(model.n_ctx - max_tokens, 256)) if model.n_ctx else budget_tokens
        )
        self.max_tokens = max_tokens
        self.timeout_s = timeout_s
        self.speculative = speculative
        self.max_draft_tokens = max_draft_tokens
        self.last: NextEdit | None = None  # the latest prediction, those with no edits included

    def predict(
        self,
        path: str,
        source: str,
        cursor_offset: int,
        history: EditHistory,
        context_snippets: Sequence[Snippet] = (),
        cancel: threading.Event | None = None,
    ) -> NextEdit | None:
        """The next edit for a cursor in `source` (the document `path` as it is now, its changes
        recorded in `history`); None when the model suggests nothing worth showing (`self.last`
        says why) or `cancel` was set."""
        if cancel is not None and cancel.is_set():
            return None
        t0 = time.perf_counter()
        window = self.format.window(source, cursor_offset)
        original = history.window_before_last_change(path, source, window.start_line, window.end_line)
        request = NextEditRequest(path, window, original, history.changes(), context_snippets)
        prompt = self.format.build(self.model, request, self.budget_tokens)
        build_ms = (time.perf_counter() - t0) * 1000
        stops = self.format.stops(self.model, request)
        window_tokens = self.model.encode(window.text)
        max_tokens = min(self.max_tokens, 2 * len(window_tokens) + 64)
        generation = self.model.generate_tokens(
            prompt.tokens,
            max_tokens=max_tokens,
            stop_ids=stops.ids,
            cut=self.format.cutter(stops),
            timeout_s=self.timeout_s,
            cancel=cancel,
            draft=window_tokens if self.speculative else (),
            max_draft_tokens=self.max_draft_tokens,
        )
        new_window = self.format.parse(generation.text)
        judged = verdict(window, original, new_window, generation.stop_reason)
        edits = window_edits(window, new_window) if judged == "edit" else []
        if judged == "edit" and not edits:
            judged = "unchanged"
        result = NextEdit(
            edits,
            judged,
            window,
            new_window,
            prompt,
            generation,
            build_ms,
            (time.perf_counter() - t0) * 1000,
            original,
        )
        self.last = result
        log.info("next edit for %s:%d: %s", path, source.count("\n", 0, cursor_offset) + 1, result.summary())
        return result if judged == "edit" else None
