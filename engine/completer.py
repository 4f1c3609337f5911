"""From a cursor to a completion: retrieve, assemble the prompt, generate, cut."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .backends import Generation
from .backends.llama_cpp import LlamaCppModel, gpu_offload_supported
from .config import DEFAULT_BUDGET_CPU_TOKENS, DEFAULT_BUDGET_GPU_TOKENS, EngineConfig
from .errors import ModelNotConfiguredError
from .postprocess import StopRules, finish
from .prompt import ContextSource, EstimateTokenizer, Prompt, PromptBuilder, Tokenizer
from .backends.openai_compat import OpenAICompletionsBackend
from .templates import FimTemplate, detect_template, template_named

log = logging.getLogger(__name__)


@dataclass
class Completion:
    text: str
    prompt: Prompt
    generation: Generation
    retrieval_ms: float
    total_ms: float

    def summary(self) -> str:
        g = self.generation
        return (f"{len(self.text)} chars, {g.n_generated} tokens generated ({g.stop_reason}); prompt "
                f"{g.n_prompt} tokens: {g.n_evaluated} evaluated, {g.n_reused} reused; "
                f"retrieval {self.retrieval_ms:.0f} ms, generation {g.ms:.0f} ms, total {self.total_ms:.0f} ms")


class Completer:
    """Holds the model (or only a tokenizer) and turns cursors into prompts and completions."""

    def __init__(self, config: EngineConfig, model: LlamaCppModel | None = None,
                 tokenizer: Tokenizer | None = None, template: FimTemplate | None = None,
                 remote: OpenAICompletionsBackend | None = None) -> None:
        self.config = config
        self.model = model
        self.remote = remote
        self.tokenizer: Tokenizer = model or tokenizer or EstimateTokenizer()
        if template is None and self.tokenizer.exact:
            template = detect_template(self.tokenizer, getattr(self.tokenizer, "name", "model"))
        self.template = template or template_named(config.template)
        self.builder = PromptBuilder(self.template, self.tokenizer)
        self.last: Completion | None = None  # the latest completion, cancelled ones included
        self.budget_tokens = self._budget()
        self.stop_ids = {i for t in self.template.stops + self.template.specials()
                         if (i := self.tokenizer.special_id(t)) is not None} if self.tokenizer.exact else set()

    @classmethod
    def load(cls, config: EngineConfig, *, vocab_only: bool = False) -> "Completer":
        """Load the configured model; `vocab_only` reads only its tokenizer (for prompts, not completions)."""
        if config.endpoint and not vocab_only:
            # A remote server generates; a local GGUF, if given, only counts tokens exactly.
            tokenizer = LlamaCppModel(config.model_path, vocab_only=True) if config.model_path else None
            return cls(config, tokenizer=tokenizer,
                       remote=OpenAICompletionsBackend(config.endpoint, config.remote_model))
        if not config.model_path:
            raise ModelNotConfiguredError()
        vocab = LlamaCppModel(config.model_path, vocab_only=True)
        if vocab_only:
            return cls(config, tokenizer=vocab)
        # The context window follows the prompt budget, which needs the trained length first.
        budget = _auto_budget(config, vocab.n_ctx_train)
        return cls(config, model=LlamaCppModel(config.model_path, n_ctx=budget + config.max_tokens,
                                               n_gpu_layers=config.n_gpu_layers, n_threads=config.n_threads))

    def describe(self) -> dict:
        """What generates, where, and with which prompt format, for status reports."""
        if self.model is not None:
            m = self.model
            return {"name": m.name, "path": str(m.path), "architecture": m.architecture,
                    "template": self.template.name, "device": "gpu" if m.n_gpu_layers else "cpu",
                    "gpu_layers": m.n_gpu_layers, "context_tokens": m.n_ctx, "budget_tokens": self.budget_tokens}
        if self.remote is not None:
            return {"name": self.remote.name, "template": self.template.name, "device": self.remote.device,
                    "budget_tokens": self.budget_tokens, "exact_token_counts": self.tokenizer.exact}
        return {"name": None, "template": self.template.name, "budget_tokens": self.budget_tokens}

    def _budget(self) -> int:
        return min(_auto_budget(self.config, getattr(self.tokenizer, "n_ctx_train", None)), self._budget_limit())

    def _budget_limit(self) -> int:
        """The largest prompt this model can take and still generate `max_tokens`."""
        if self.model is not None:
            return self.model.n_ctx - self.config.max_tokens
        n_ctx_train = getattr(self.tokenizer, "n_ctx_train", None)
        return n_ctx_train - self.config.max_tokens if n_ctx_train else 1 << 30

    def prompt(self, path: str, source: str, offset: int, context: ContextSource | None,
               repo_name: str = "", budget_tokens: int | None = None) -> tuple[Prompt, float]:
        """The prompt for a cursor, and the milliseconds retrieval took."""
        t0 = time.perf_counter()
        snippets = context.snippets(path, source, offset, self.config.snippet_limit) if context else []
        retrieval_ms = (time.perf_counter() - t0) * 1000
        budget = min(budget_tokens or self.budget_tokens, self._budget_limit())
        return self.builder.build(path, source, offset, snippets, budget, repo_name), retrieval_ms

    def complete(self, path: str, source: str, offset: int, context: ContextSource | None,
                 repo_name: str = "", cancel: threading.Event | None = None) -> Completion:
        if self.model is None and self.remote is None:
            raise ModelNotConfiguredError()
        t0 = time.perf_counter()
        prompt, retrieval_ms = self.prompt(path, source, offset, context, repo_name)
        rules = StopRules.for_cursor(source, offset, self.config.max_lines)
        if self.model is not None:
            generation = self.model.generate(prompt.tokens, max_tokens=self.config.max_tokens,
                                             stop_ids=self.stop_ids, cut=rules.cut,
                                             timeout_s=self.config.timeout_s, cancel=cancel)
        else:
            stops = [s for s in (self.template.file_sep, *self.template.stops) if s]
            generation = self.remote.generate(prompt.text, prompt.n_tokens, max_tokens=self.config.max_tokens,
                                              stop_texts=stops, cut=rules.cut, timeout_s=self.config.timeout_s,
                                              cancel=cancel)
        completion = Completion(finish(generation.text), prompt, generation, retrieval_ms,
                                (time.perf_counter() - t0) * 1000)
        log.info("completion %s:%d: %s", path, offset, completion.summary())
        self.last = completion
        return completion


def _auto_budget(config: EngineConfig, n_ctx_train: int | None) -> int:
    if config.budget_tokens:
        budget = config.budget_tokens
    elif config.endpoint or gpu_offload_supported():
        budget = DEFAULT_BUDGET_GPU_TOKENS
    else:
        budget = DEFAULT_BUDGET_CPU_TOKENS
    if n_ctx_train:
        budget = min(budget, n_ctx_train - config.max_tokens)
    return max(budget, 256)


