"""From a cursor to a completion: retrieve, assemble the prompt, generate, cut."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from .backends import Backend, Generation, Stops
from .backends.kv_plan import Plan
from .backends.llama_cpp import LlamaCppModel, gpu_offload_supported
from .backends.llama_server import LlamaServerInfillBackend, is_llama_server
from .backends.openai_compat import OpenAICompletionsBackend
from .cache_reuse import CacheReuse
from .config import DEFAULT_BUDGET_GPU_TOKENS, EngineConfig, default_snippet_limit
from .errors import ModelNotConfiguredError
from .models import local_model_path
from .postprocess import StopRules, finish
from .prompt import (
    CONTEXT_KINDS,
    NEEDS_KINDS,
    ContextSource,
    EstimateTokenizer,
    Part,
    Prompt,
    PromptBuilder,
    Snippet,
    Tokenizer,
    part_key,
)
from .templates import FimTemplate, detect_template, template_named
from .typethrough import Shown, TypeThroughCache

log = logging.getLogger(__name__)


@dataclass
class Completion:
    text: str
    prompt: Prompt
    generation: Generation
    retrieval_ms: float
    total_ms: float
    alternatives: list[str] = field(default_factory=list)  # further candidates, best first
    # Which prompt answered: full; quick (the cursor's window and the definitions it needs, while
    # the full one is evaluated in idle time); steady (the last answer's snippets, while the ones
    # retrieval swapped in are evaluated in idle time); type-through (a suggestion computed before)
    scope: str = "full"

    def summary(self) -> str:
        g = self.generation
        return (
            f"{len(self.text)} chars, {g.n_generated} tokens generated ({g.stop_reason}); prompt "
            f"{g.n_prompt} tokens ({self.scope}): {g.n_evaluated} evaluated, {g.n_reused} reused ({g.n_moved} moved); "
            f"retrieval {self.retrieval_ms:.0f} ms, evaluation {g.eval_ms:.0f} ms, "
            f"generation {g.ms - g.eval_ms:.0f} ms, total {self.total_ms:.0f} ms"
        )


class Completer:
    """Turns cursors into prompts, and prompts into completions with its backend.

    `backend` generates (None: prompts only, with the model's vocabulary or estimated counts, as
    `code-kb context` builds them); `tokenizer` counts the prompt's tokens and, for a backend that
    takes token ids (the in-process model, which is its own tokenizer), makes them."""

    def __init__(
        self,
        config: EngineConfig,
        backend: Backend | None = None,
        tokenizer: Tokenizer | None = None,
        template: FimTemplate | None = None,
    ) -> None:
        self.config = config
        self.backend = backend
        self.tokenizer: Tokenizer = tokenizer or EstimateTokenizer()
        if template is None and self.tokenizer.exact:
            template = detect_template(self.tokenizer, self.tokenizer.name)
        self.template = template or template_named(config.template)
        self.builder = PromptBuilder(self.template, self.tokenizer)
        self.last: Completion | None = None  # the latest completion, cancelled ones included
        self.shown = TypeThroughCache()
        self._previous: dict[str, Prompt] = {}  # the last prompt per file, for cache-aware snippet order
        self.pending: Prompt | None = None  # a full prompt a quick one answered for, to evaluate when idle
        self.budget_tokens = self._budget()
        ids = (
            {
                i
                for t in self.template.stops + self.template.specials()
                if (i := self.tokenizer.special_id(t)) is not None
            }
            if self.tokenizer.exact
            else set()
        )
        texts = (self.template.file_sep, *self.template.stops)
        self.stops = Stops(frozenset(ids), tuple(t for t in texts if t))

    @classmethod
    def load(cls, config: EngineConfig, *, vocab_only: bool = False) -> Completer:
        """Load the configured model; `vocab_only` reads only its tokenizer (for prompts, not completions)."""
        if config.model_path:
            # A catalogue name (`qwen2.5-coder-1.5b`) becomes its pulled file; one place for CLI and server.
            config = dataclasses.replace(config, model_path=local_model_path(config.model_path))
        if config.endpoint and not vocab_only:
            # A remote server generates; a local GGUF, if given, only counts tokens exactly.
            tokenizer = LlamaCppModel(config.model_path, vocab_only=True) if config.model_path else None
            backend = _remote_backend(config)
            if tokenizer is not None and isinstance(backend, OpenAICompletionsBackend):
                backend.agree_on_tokens(tokenizer)  # ids where the server takes ours; else neutralised text
            return cls(config, backend, tokenizer)
        if not config.model_path:
            raise ModelNotConfiguredError()
        vocab = LlamaCppModel(config.model_path, vocab_only=True)
        if vocab_only:
            return cls(config, tokenizer=vocab)
        # The context window follows the prompt budget, which needs the trained length first.
        budget = auto_budget(config, vocab.n_ctx_train, vocab.cache)
        n_ctx = budget + config.max_tokens
        kv_type = kv_cache_type_of(config, vocab, n_ctx)
        model = LlamaCppModel(
            config.model_path,
            n_ctx=n_ctx,
            n_gpu_layers=_gpu_layers(config, vocab, n_ctx, kv_type),
            n_threads=config.n_threads,
            flash_attn=config.flash_attn,
            kv_cache_type=kv_type,
        )
        return cls(config, model, model)  # it takes token ids: its own vocabulary makes them

    def reconfigured(self, config: EngineConfig) -> Completer:
        """A completer for new per-request settings (`max_lines`, `timeout_s`, `snippet_limit`, ...) on
        the same backend, tokenizer and template; where `config.needs_reload(old, new)` says the
        model itself changed, load a new one instead."""
        return Completer(config, self.backend, self.tokenizer, self.template)

    @property
    def warms(self) -> bool:
        """Whether `warm` does anything: the backend keeps a KV cache worth filling ahead."""
        return self.backend is not None and self.backend.warms

    def describe(self) -> dict[str, object]:
        """What generates, where, and with which prompt format, for status reports."""
        generates = self.backend.describe() if self.backend is not None else {"name": None}
        cache = getattr(self.tokenizer, "cache", None)
        return {
            **generates,
            "template": self.template.name,
            "fim_order": self.template.order,
            "budget_tokens": self.budget_tokens,
            "exact_token_counts": self.tokenizer.exact,
            **({"cache_reuse": cache.to_dict()} if isinstance(cache, CacheReuse) else {}),
        }

    def _budget(self) -> int:
        cache = getattr(self.tokenizer, "cache", None)  # an estimate knows no architecture
        return min(auto_budget(self.config, self.tokenizer.n_ctx_train, cache), self._budget_limit())

    def _budget_limit(self) -> int:
        """The largest prompt this model can take and still generate `max_tokens`."""
        n_ctx = (self.backend.n_ctx if self.backend is not None else None) or self.tokenizer.n_ctx_train
        return n_ctx - self.config.max_tokens if n_ctx else 1 << 30

    def prompt(
        self,
        path: str,
        source: str,
        offset: int,
        context: ContextSource | None,
        repo_name: str = "",
        budget_tokens: int | None = None,
    ) -> tuple[Prompt, float]:
        """The prompt for a cursor, and the milliseconds retrieval took."""
        t0 = time.perf_counter()
        budget = min(budget_tokens or self.budget_tokens, self._budget_limit())
        limit = self.config.snippet_limit or default_snippet_limit(budget)
        found = context.snippets(path, source, offset, WINDOW * limit) if context else []
        # Signatures and outlines of what the cursor needs have their own share of the budget; the
        # snippet limit and its stickiness apply to the rest.
        needs = [s for s in found if s.prompt_kind in NEEDS_KINDS]
        others = [s for s in found if s.prompt_kind not in NEEDS_KINDS]
        previous = self._previous.get(path)
        snippets = _sticky_needs(needs, previous) + _sticky(others, previous, limit)
        retrieval_ms = (time.perf_counter() - t0) * 1000
        prompt = self.builder.build(path, source, offset, snippets, budget, repo_name, previous)
        self._previous[path] = prompt
        return prompt, retrieval_ms

    def complete(
        self,
        path: str,
        source: str,
        offset: int,
        context: ContextSource | None,
        repo_name: str = "",
        cancel: threading.Event | None = None,
        n_candidates: int = 1,
        quick: bool = False,
    ) -> Completion:
        """The completion at a cursor: from the type-through cache when the user is typing a suggestion
        already shown (or one computed ahead), else from the backend. ModelNotConfiguredError without one.
        With `quick`, a request whose full prompt the KV cache holds little of is answered from a
        quick prompt, one whose newly retrieved snippets would cost more than a keystroke from a
        steady prompt (the last answer's snippets), and the full one is left `pending` for
        `finish_prompt` (idle time)."""
        if self.backend is None:
            raise ModelNotConfiguredError()
        t0 = time.perf_counter()
        cached = self.shown.lookup(path, source, offset)
        shown_text = ""
        if cached is not None and n_candidates > 1 and not cached[1]:
            # A completion list wants candidates the cached ghost text did not compute; its first
            # item stays the ghost text the user sees (the prompt may have grown since: quick, then full).
            shown_text, cached = cached[0], None
        if cached is not None:
            text, held, shown = cached
            prompt = shown.prompt or Prompt(self.template.name, self.budget_tokens, [])
            generation = Generation(text, 0, 0, 0, 0, "type-through", 0.0)
            completion = Completion(
                text, prompt, generation, 0.0, (time.perf_counter() - t0) * 1000, list(held), "type-through"
            )
            log.info("completion %s:%d: %s", path, offset, completion.summary())
            self.last = completion
            return completion
        before = self._previous.get(path)
        prompt, retrieval_ms = self.prompt(path, source, offset, context, repo_name)
        self.pending = None
        small, scope = None, "full"
        model = self.backend
        if (
            quick
            and isinstance(model, LlamaCppModel)
            and model.cache.reusable
            and self.quick_prompt_tokens > 0
        ):
            n_full = model.to_evaluate(prompt.tokens)  # what answering from the full prompt costs
            small, scope = (
                self._steady_prompt(path, source, offset, prompt, n_full, repo_name, before),
                "steady",
            )
            if small is None:
                small, scope = self._quick_prompt(path, source, offset, prompt, n_full, repo_name), "quick"
        if small is not None:
            self.pending = prompt
            completion = self._generate(
                path, source, offset, small, retrieval_ms, t0, cancel, n_candidates, scope=scope
            )
        else:
            completion = self._generate(path, source, offset, prompt, retrieval_ms, t0, cancel, n_candidates)
        if shown_text and completion.text != shown_text:
            others = [completion.text, *completion.alternatives]
            completion.alternatives = [a for a in others if a and a != shown_text][: max(n_candidates - 1, 0)]
            completion.text = shown_text
        return completion

    @property
    def quick_prompt_tokens(self) -> int:
        """The size of a quick prompt (0: none): the setting, or what the hardware evaluates within
        a keystroke's usual time."""
        if self.config.quick_prompt_tokens is not None:
            return max(self.config.quick_prompt_tokens, 0)
        on_gpu = isinstance(self.backend, LlamaCppModel) and self.backend.hardware.gpu_layers != 0
        return QUICK_PROMPT_GPU_TOKENS if on_gpu else QUICK_PROMPT_CPU_TOKENS

    def _quick_prompt(
        self, path: str, source: str, offset: int, full: Prompt, n_full: int, repo_name: str
    ) -> Prompt | None:
        """A prompt to answer from now when `full` would take more than a quick prompt's worth of
        evaluation (the KV cache holds little of it): the parts of `full` the cache holds already,
        in place, then the definitions the cursor needs (up to half the quick size), then a
        window of the current file (the other half). Evaluating `full` later keeps the parts the
        two share at the front (`n_full`: the tokens answering from `full` would evaluate). None
        when `full` is cheap enough. For a backend with a reusable KV cache (`complete` checks)."""
        model, size = self.backend, self.quick_prompt_tokens
        assert isinstance(model, LlamaCppModel)
        if n_full <= size:
            return None
        cached = model.cached_prefix(full.tokens)
        kept: list[_HeldSnippet] = []
        at, needs = 0, 0
        for segment in full.segments:
            at += len(segment.tokens)
            if segment.kind not in CONTEXT_KINDS:
                continue
            if at <= cached:
                kept.append(_HeldSnippet.of(segment))
            elif segment.kind in NEEDS_KINDS and needs + len(segment.tokens) <= size // 2:
                kept.append(_HeldSnippet.of(segment))
                needs += len(segment.tokens)
        small = self.builder.build(
            path, source, offset, kept, full.budget_tokens, repo_name, full, view_tokens=size // 2
        )
        # What the window and the definitions leave of the quick size goes to the best-ranked of
        # the other snippets (a small file's window leaves most of it).
        room = size - model.to_evaluate(small.tokens)
        extra: list[_HeldSnippet] = []
        held = {(s.path, s.start_line) for s in kept}
        for segment in reversed(full.segments):  # new snippets come best last
            if segment.kind not in CONTEXT_KINDS or (segment.path, segment.start_line) in held:
                continue
            cost = len(segment.tokens) + len(self.builder.file_header_tokens(segment.path, path))
            if cost <= room:
                extra.append(_HeldSnippet.of(segment))
                room -= cost
        if extra:
            fuller = self.builder.build(
                path, source, offset, kept + extra, full.budget_tokens, repo_name, full, view_tokens=size // 2
            )
            if model.to_evaluate(fuller.tokens) <= size:
                small = fuller
        if model.to_evaluate(small.tokens) >= n_full:
            return None
        return small

    def _steady_prompt(
        self,
        path: str,
        source: str,
        offset: int,
        full: Prompt,
        n_full: int,
        repo_name: str,
        before: Prompt | None,
    ) -> Prompt | None:
        """A prompt to answer from now when `full` would cost more than a keystroke's batch
        (STEADY_TOKENS): the last prompt the cache holds (`before`, the file's previous full
        prompt, or the last answer's) with what was typed since, its snippets and definitions
        in place and its view of the file pinned to the same lines, plus `full`'s recent edits
        and the definitions the receiver at the cursor asks for (what this keystroke needs never
        waits). Snippets and definitions that only moved up the ranking, and a view widened or
        moved by them, wait: `full` is evaluated in idle time. At a deep cache each new token is
        dear (a 300-token swap at 16k costs about 10 s on one CPU thread). None when `full` is
        cheap enough, or when the steady prompt would cost as much as `full` or more than a quick
        prompt's size (the cursor moved far). `n_full` and the backend as in `_quick_prompt`."""
        model = self.backend
        assert isinstance(model, LlamaCppModel)
        if n_full <= STEADY_TOKENS:
            return None
        key = part_key
        recent = [_HeldSnippet.of(p) for p in full.parts if p.kind == "recent"]
        sources = [before] if before is not None else []
        last = self.last.prompt if self.last is not None else None
        if (
            last is not None
            and last is not before
            and any(p.kind == "prefix" and p.path == path for p in last.parts)
        ):
            sources.append(last)
        cursor_line = source.count("\n", 0, offset)
        best, cost = None, min(n_full, max(self.quick_prompt_tokens, STEADY_TOKENS))
        for held_from in sources:
            view = next((p for p in held_from.parts if p.kind == "prefix" and p.path == path), None)
            if view is None or view.start_line > cursor_line:
                continue  # another file's prompt, or the cursor went above its view
            held = [p for p in held_from.parts if p.kind in CONTEXT_KINDS and p.kind != "recent"]
            had = {key(p) for p in held}
            urgent = [p for p in full.parts if p.at_cursor and key(p) not in had]
            needs = [p for p in held if p.kind in NEEDS_KINDS]
            others = [p for p in held if p.kind not in NEEDS_KINDS]
            offered = (
                [_HeldSnippet.of(p) for p in urgent + needs] + recent + [_HeldSnippet.of(p) for p in others]
            )
            steady = self.builder.build(
                path,
                source,
                offset,
                offered,
                full.budget_tokens,
                repo_name,
                held_from,
                view_lines=(view.start_line, held_from.suffix_lines),
            )
            if (n := model.to_evaluate(steady.tokens)) < cost:
                best, cost = steady, n
        return best

    def finish_prompt(self, cancel: threading.Event | None = None) -> int:
        """Evaluate into the KV cache the full prompt that a quick prompt stood in for, so that the
        next request can use it; stops at `cancel` (what is evaluated stays). Returns the tokens
        evaluated (0: nothing pending)."""
        prompt = self.pending
        if prompt is None or self.backend is None or not self.backend.warms:
            return 0
        warmed = self.backend.warm(prompt, cancel=cancel, timeout_s=max(self.config.timeout_s, 600.0))
        log.info(
            "full prompt evaluated: %d of %d tokens, %d reused%s",
            warmed.n_evaluated,
            prompt.n_tokens,
            warmed.n_reused,
            f" ({warmed.stopped} part way)" if warmed.stopped else "",
        )
        if warmed.stopped is None and self.pending is prompt:
            self.pending = None
        return warmed.n_evaluated

    def _generate(
        self,
        path: str,
        source: str,
        offset: int,
        prompt: Prompt,
        retrieval_ms: float,
        t0: float,
        cancel: threading.Event | None,
        n_candidates: int = 1,
        max_tokens: int | None = None,
        scope: str = "full",
    ) -> Completion:
        """The backend's answer to `prompt`, cut for the cursor, remembered for type-through."""
        assert self.backend is not None
        rules = StopRules.for_cursor(source, offset, self.config.max_lines)
        generation = self.backend.generate(
            prompt,
            max_tokens=max_tokens or self.config.max_tokens,
            stops=self.stops,
            cut=rules.cut,
            timeout_s=self.config.timeout_s,
            cancel=cancel,
            n_candidates=n_candidates,
        )
        text = finish(generation.text, source, offset)
        alternatives = [
            a
            for a in dict.fromkeys(finish(a, source, offset) for a in generation.alternatives)
            if a and a != text
        ]
        completion = Completion(
            text, prompt, generation, retrieval_ms, (time.perf_counter() - t0) * 1000, alternatives, scope
        )
        log.info("completion %s:%d: %s", path, offset, completion.summary())
        if generation.n_evaluated > STEADY_TOKENS and isinstance(self.backend, LlamaCppModel):
            log.info("  evaluated by part: %s", _evaluated_by_part(prompt, self.backend.last_plan))
        self.last = completion
        if generation.stop_reason not in ("cancelled", "timeout"):
            self.shown.add(Shown(path, source[:offset], source[offset:], text, tuple(alternatives), prompt))
        return completion

    def speculate(
        self,
        path: str,
        context: ContextSource | None,
        repo_name: str = "",
        cancel: threading.Event | None = None,
    ) -> Completion | None:
        """Compute ahead the completion the user will want after accepting the last one shown, so
        that accepting it shows the next one without waiting. None when there is nothing to extend."""
        last = self.last
        if last is None or not last.text or last.generation.stop_reason == "type-through":
            return None
        entry = self.shown.newest(path)
        if entry is None or entry.text != last.text:
            return None
        source, offset = entry.accepted()
        if self.shown.lookup(path, source, offset) is not None:
            return None  # already computed
        try:
            if self.backend is not None and self.backend.warms and last.prompt.segments:
                return self._continue_after(path, source, offset, last, cancel)
            # A remote server keeps its own cache: ask it as the user would after accepting, with
            # the same repository context as the prompt it extends (retrieving again at the cursor
            # after the suggestion would swap snippets that the next real request swaps back).
            same = _SameContext(last.prompt) if last.prompt.parts else context
            return self.complete(path, source, offset, same, repo_name, cancel)
        finally:
            self.last = last  # status reports what the user saw

    def _continue_after(
        self, path: str, source: str, offset: int, last: Completion, cancel: threading.Event | None
    ) -> Completion | None:
        """The completion after `last` is accepted, as the model's continuation of its own answer:
        the prompt it answered, with the suggestion's tokens after the prompt's end, generated on.

        The KV cache holds that prompt, so only the suggestion's tokens are evaluated, and they sit
        after everything a next request shares with it: if the user types something else, dropping
        them costs nothing (putting the suggestion into the prefix instead, as accepting it would,
        moved the suffix and re-cut the view of the file, and the next keystroke paid to undo it).
        The text is what the model expects to follow the suggestion before the suffix: the same
        question the prompt with the suggestion accepted asks. None where the model ended there."""
        if last.generation.stop_reason == "eog":
            return None  # the model closed the middle after the suggestion: nothing follows it
        t0 = time.perf_counter()
        accepted = Part("accepted", last.text, path, tokens=self.tokenizer.encode(last.text))
        prompt = dataclasses.replace(last.prompt, segments=[*last.prompt.segments, accepted])
        n_ctx = self.backend.n_ctx if self.backend is not None else None
        room = (n_ctx - prompt.n_tokens) if n_ctx else self.config.max_tokens
        if room < 1:
            return None
        return self._generate(
            path, source, offset, prompt, 0.0, t0, cancel, 1, min(self.config.max_tokens, room)
        )

    def warm(
        self,
        path: str,
        source: str,
        offset: int,
        context: ContextSource | None,
        repo_name: str = "",
        cancel: threading.Event | None = None,
        whole: bool = True,
    ) -> int:
        """Evaluate the prompt for a cursor into the KV cache without generating, so that the next
        request pays only for what changes: the whole prompt after a pause at a known cursor, or
        (`whole` False, a file just opened) only its repository part, which does not depend on the
        cursor as much. Returns the tokens evaluated; 0 where the backend does not warm (`warms`)."""
        if self.backend is None or not self.backend.warms:
            return 0
        prompt, _ = self.prompt(path, source, offset, context, repo_name)
        part = prompt if whole else prompt.repository_part()
        if not part.n_tokens:
            return 0
        warmed = self.backend.warm(part, cancel=cancel, timeout_s=max(self.config.timeout_s, 60.0))
        log.info(
            "warmed %s:%d: %d of %d prompt tokens, %d to evaluate, %d reused%s",
            path,
            offset,
            warmed.n_tokens,
            prompt.n_tokens,
            warmed.n_evaluated,
            warmed.n_reused,
            f" ({warmed.stopped} part way)" if warmed.stopped else "",
        )
        return warmed.n_evaluated


@dataclass(frozen=True)
class _HeldSnippet:
    path: str
    text: str
    start_line: int
    end_line: int
    prompt_kind: str
    reason: str
    at_cursor: bool = False

    @classmethod
    def of(cls, part: Part) -> _HeldSnippet:
        return cls(
            part.path, part.text, part.start_line, part.end_line, part.kind, part.reason, part.at_cursor
        )


class _SameContext:
    """A ContextSource offering a prompt's repository context again, as it was (signatures stay
    signatures, recent edits stay recent edits)."""

    def __init__(self, prompt: Prompt) -> None:
        self.items = [_HeldSnippet.of(p) for p in prompt.parts if p.kind in CONTEXT_KINDS]

    def snippets(self, path: str, source: str, offset: int, limit: int | None = None) -> Sequence[Snippet]:
        return list(self.items)


# A quick prompt's size, where the full one would cost more than that to evaluate (a cold 1,024
# tokens of the 0.5B shape on 2 CPU cores: about 3 s; see benchmarks/README.md, typing_lsp).
QUICK_PROMPT_CPU_TOKENS = 1024
QUICK_PROMPT_GPU_TOKENS = 8192
# Above this many tokens to evaluate for snippets retrieval swapped in, a keystroke is answered
# with the last answer's snippets and the new ones are evaluated in idle time (a keystroke's
# first decode takes up to 32 tokens in one batch).
STEADY_TOKENS = 32

# Retrieval ranks this many times the snippet limit; a snippet the previous prompt had stays
# while it ranks among them (plan-only replay at 16k with 64 snippets: 94.3% of prompt tokens
# reused with 2, 96.3% with 4; at 4k with 8: 95.4% and 95.8%).
WINDOW = 4


def _sticky(snippets: Sequence[Snippet], previous: Prompt | None, limit: int) -> list[Snippet]:
    """The `limit` snippets to offer: the best ones, plus those the previous prompt had that still
    rank within WINDOW times the limit (leaving two places for new ones). In the order the budget
    takes them: the kept ones, then the new ones, each in rank order, so that where the budget runs
    out (not the snippet limit: signatures and outlines take their share first) the same snippets
    are left out from one keystroke to the next.

    Retrieval's top few change at nearly every pause; each snippet swapped in costs its tokens
    in evaluation and shifts what follows. Keeping a still-relevant snippet costs nothing.
    """
    if previous is None:
        return list(snippets[:limit])
    had = {(p.path, p.start_line) for p in previous.parts if p.kind in CONTEXT_KINDS}
    sticky = [s for s in snippets if (s.path, s.start_line) in had][: max(limit - 2, 0)]
    kept = {id(s) for s in sticky}
    fresh = [s for s in snippets if id(s) not in kept][: limit - len(sticky)]
    return sticky + fresh


# The best few signatures and outlines always come first; after them, those the previous prompt
# had, then the rest. The ranking of needed definitions moves with every keystroke (mentions,
# the words before the cursor); without this, the parts at the edge of their budget share were
# swapped at most requests (plan-only replay at 16k: 93.5% of prompt tokens reused).
FRESH_NEEDS = 8


def _sticky_needs(needs: Sequence[Snippet], previous: Prompt | None) -> list[Snippet]:
    """Needed definitions in the order the budget takes them: the FRESH_NEEDS best, then those the
    previous prompt showed (the KV cache holds them), then the others, each in rank order."""
    if previous is None:
        return list(needs)
    had = {(p.path, p.start_line, p.text) for p in previous.parts if p.kind in NEEDS_KINDS}
    best = list(needs[:FRESH_NEEDS])
    rest = needs[FRESH_NEEDS:]
    kept = [s for s in rest if (s.path, s.start_line, s.text) in had]
    return best + kept + [s for s in rest if (s.path, s.start_line, s.text) not in had]


def _evaluated_by_part(prompt: Prompt, plan: Plan | None) -> str:
    """Which parts of `prompt` a request evaluated, for the log: `kind path:line tokens`, largest
    first (why a keystroke cost more than its typing)."""
    if plan is None:
        return "?"
    spent = prompt.tokens_in(
        plan.evaluate, lambda s: f"{s.kind} {s.path}:{s.start_line + 1}" if s.path else s.kind
    )
    return ", ".join(f"{name} {n}" for name, n in sorted(spent.items(), key=lambda kv: -kv[1])[:8])


def _remote_backend(config: EngineConfig) -> Backend:
    """llama.cpp's `/infill` where the endpoint is llama.cpp's server (or asked for), else `/v1/completions`."""
    assert config.endpoint
    api = config.endpoint_api
    if api == "auto":
        api = "infill" if is_llama_server(config.endpoint) else "completions"
    if api == "infill":
        return LlamaServerInfillBackend(config.endpoint)
    return OpenAICompletionsBackend(config.endpoint, config.remote_model)


def kv_cache_type_of(config: EngineConfig, vocab: LlamaCppModel, n_ctx: int) -> str:
    """f16 unless asked otherwise or its cache would take more than a quarter of the memory it lives in."""
    if config.kv_cache_type != "auto":
        return config.kv_cache_type
    from .hardware import detect, kv_cache_bytes, kv_cache_type_for

    on_gpu = config.n_gpu_layers != 0 and gpu_offload_supported()
    return kv_cache_type_for(kv_cache_bytes(vocab.metadata, n_ctx, "f16"), detect(), on_gpu)


def _gpu_layers(config: EngineConfig, vocab: LlamaCppModel, n_ctx: int, kv_type: str) -> int:
    """As configured; else every layer when the weights and the KV cache fit the GPU, else those that do."""
    if config.n_gpu_layers is not None:
        return config.n_gpu_layers
    from .hardware import detect, gpu_layers_for, kv_cache_bytes

    n_layer = vocab.metadata.get(f"{vocab.architecture}.block_count")
    return gpu_layers_for(
        vocab.path.stat().st_size,
        int(n_layer) if n_layer else None,
        kv_cache_bytes(vocab.metadata, n_ctx, kv_type),
        detect(),
    )


# A model whose cache cannot be reused evaluates its whole prompt at every keystroke; without a budget
# setting it gets this share of the default (1,024 tokens on a CPU, 4,096 on a GPU). On the 2-core
# machine of benchmarks/README.md a cold 4k prompt took 14 s (0.5B) and 27 s (1.5B): a quarter of
# it is 3.5 and 7 s, within the default 10 s timeout.
NO_REUSE_BUDGET_DIVISOR = 4


def auto_budget(config: EngineConfig, n_ctx_train: int | None, cache: CacheReuse | None = None) -> int:
    """The prompt budget a model gets: the setting, else the hardware's choice (a server's default for
    an endpoint), a quarter of it for a model that cannot reuse its cache (`cache`, from its GGUF),
    within what the model was trained on less the tokens it generates. `Completer.load` sizes the
    context window as this plus `max_tokens`."""
    if config.budget_tokens:
        budget = config.budget_tokens
    else:
        if config.endpoint:
            budget = DEFAULT_BUDGET_GPU_TOKENS
        else:  # the hardware's choice, as `code-kb status` explains it
            from .hardware import choose, detect

            budget = choose(detect()).budget_tokens
        if cache is not None and not cache.reusable:
            budget //= NO_REUSE_BUDGET_DIVISOR
    if n_ctx_train:
        budget = min(budget, n_ctx_train - config.max_tokens)
    return max(budget, 256)
