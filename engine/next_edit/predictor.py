"""From a document, its recent changes and related snippets to the user's likely next edit.

Greedy generation through a `Backend`. On the in-process llama.cpp model
(`LlamaCppModel.generate_tokens`), which keeps the KV cache between calls and plans what of a new
prompt it already holds, the format puts what changes between keystrokes (the last change, the
windows) at the end, so a keystroke evaluates few tokens, and the current window is the draft of
speculative decoding. A remote server (`OpenAICompletionsBackend`, `/v1/completions`) gets the
prompt's text: it tokenises it itself, parsing special tokens, so the user text in it is
neutralised first (`neutralise`). One model thread: the caller serialises requests, a newer one
cancelling the older through its `threading.Event`, as for completions.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from ..backends import Backend, Generation, Stops
from ..backends.llama_cpp import LlamaCppModel
from ..errors import NextEditFormatError
from ..prompt import EstimateTokenizer, Prompt, Snippet, Tokenizer
from ..recent import EditSnippet
from .edits import TextEdit, Verdict, verdict, window_edits
from .formats import NextEditFormat, NextEditRequest, Window, detect_next_edit_format
from .history import Change, EditHistory

log = logging.getLogger(__name__)

# A server tokenises the text it is sent with special-token parsing (llama.cpp's server does, and
# llama-cpp-python's), so user code that spells `<|file_sep|>` would become that token there and
# end a block early. Sweep's models have Qwen2.5-Coder's vocabulary, whose special tokens are all
# spelled `<|...|>`: a ZERO WIDTH SPACE between `<` and `|` of every `<|` in user text (paths,
# changes, related files, windows) spells none of them, and is taken out of the model's answer
# again (text that holds `<` U+200B `|` itself comes back without the U+200B).
SPECIAL_OPEN = "<|"
SPECIAL_OPEN_BROKEN = "<\u200b|"


def neutralise(text: str) -> str:
    """User text as it is sent to a server that parses special tokens: no `<|` left in it."""
    return text.replace(SPECIAL_OPEN, SPECIAL_OPEN_BROKEN)


def restore(text: str) -> str:
    """The model's answer with what `neutralise` inserted taken out."""
    return text.replace(SPECIAL_OPEN_BROKEN, SPECIAL_OPEN)


def neutralised(request: NextEditRequest) -> NextEditRequest:
    """`request` with every piece of user text neutralised, for a backend that is sent text."""
    snippets = [
        EditSnippet(neutralise(s.path), neutralise(s.text), s.start_line, s.end_line, s.prompt_kind, s.reason)
        for s in request.snippets
    ]
    changes = [
        Change(neutralise(c.path), neutralise(c.original), neutralise(c.updated)) for c in request.changes
    ]
    return NextEditRequest(
        neutralise(request.path),
        replace(request.window, text=neutralise(request.window.text)),
        neutralise(request.original_window),
        changes,
        snippets,
    )


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
        backend: Backend,
        fmt: NextEditFormat | None = None,
        *,
        tokenizer: Tokenizer | None = None,
        budget_tokens: int = 3072,
        max_tokens: int = 1024,
        timeout_s: float = 10.0,
        speculative: bool = True,
        max_draft_tokens: int = 16,
    ) -> None:
        """`tokenizer` counts and makes the prompt's tokens: by default the in-process model itself,
        else an estimate (a remote backend with no local GGUF of the model)."""
        if tokenizer is None:
            tokenizer = backend if isinstance(backend, LlamaCppModel) else EstimateTokenizer()
        if fmt is None and tokenizer.exact:
            fmt = detect_next_edit_format(tokenizer)
        if fmt is None:
            raise NextEditFormatError(
                f"{tokenizer.name} is not recognised as a next-edit model; use sweep-next-edit-1.5b or "
                "sweep-next-edit-0.5b, or name the format (sweep) for this model"
            )
        self.backend = backend
        self.tokenizer = tokenizer
        self.format = fmt
        # The in-process model takes the prompt's token ids (and a draft); any other backend its text.
        self.in_process = isinstance(backend, LlamaCppModel) and backend is tokenizer
        n_ctx = backend.n_ctx or tokenizer.n_ctx_train
        self.budget_tokens = min(budget_tokens, max(n_ctx - max_tokens, 256)) if n_ctx else budget_tokens
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
        sent = request if self.in_process else neutralised(request)
        prompt = self.format.build(self.tokenizer, sent, self.budget_tokens)
        build_ms = (time.perf_counter() - t0) * 1000
        stops = self.format.stops(self.tokenizer, request)
        window_tokens = self.tokenizer.encode(sent.window.text)
        max_tokens = min(self.max_tokens, 2 * len(window_tokens) + 64)
        generation = self._generate(prompt, window_tokens, max_tokens, stops, cancel)
        new_window = self.format.parse(generation.text if self.in_process else restore(generation.text))
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

    def _generate(
        self,
        prompt: Prompt,
        window_tokens: list[int],
        max_tokens: int,
        stops: Stops,
        cancel: threading.Event | None,
    ) -> Generation:
        cut = self.format.cutter(stops)
        backend = self.backend
        if self.in_process and isinstance(backend, LlamaCppModel):
            return backend.generate_tokens(
                prompt.tokens,
                max_tokens=max_tokens,
                stop_ids=stops.ids,
                cut=cut,
                timeout_s=self.timeout_s,
                cancel=cancel,
                draft=window_tokens if self.speculative else (),
                max_draft_tokens=self.max_draft_tokens,
            )
        return backend.generate(
            prompt, max_tokens=max_tokens, stops=stops, cut=cut, timeout_s=self.timeout_s, cancel=cancel
        )

    def describe(self) -> dict[str, object]:
        """Where next edits are generated, in which format, with what token counts."""
        return {
            **self.backend.describe(),
            "format": self.format.name,
            "budget_tokens": self.budget_tokens,
            "exact_token_counts": self.tokenizer.exact,
            "speculative": self.speculative and self.in_process,
        }
