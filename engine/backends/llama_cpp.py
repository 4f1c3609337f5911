"""In-process GGUF models through llama-cpp-python, keeping the evaluated tokens between requests.

We load with `llama_cpp.Llama` and then drive the context through the low-level API
ourselves: `Llama.generate` reuses only the longest common prefix, whereas a keystroke
also moves everything after the cursor (the suffix, the FIM markers) by a token or two.
`kv_plan` decides what stays, what shifts and what must be evaluated; this module applies
it to the KV cache, evaluates, and samples greedily with cancellation inside a decode.

A model whose cache cannot be reused between requests (recurrent, hybrid or sliding-window layers:
engine/cache_reuse.py) gets none of that: every prompt is evaluated whole from an empty cache, it is
not warmed, and it generates one candidate (a second would continue from a state that cannot be
rolled back to the prompt's end).
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import itertools
import logging
import os
import threading
import time
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..cache_reuse import cache_reuse
from ..errors import GenerationError, ModelLoadError, ModelNotFoundError
from ..prompt import Prompt
from . import Cut, Generation, Stops, Warmed, interruption
from .kv_plan import ABSENT, Plan, after, plan

log = logging.getLogger(__name__)
native_log = logging.getLogger("llama_cpp.native")
_callback = None


def _route_native_logs() -> None:
    """Send llama.cpp's own log lines to Python logging instead of the process's stderr.

    We construct `Llama` with verbose=True because verbose=False makes llama-cpp-python
    point file descriptors 1 and 2 at /dev/null while a model loads: in `code-kb serve`
    fd 1 carries the protocol, and messages written by the event loop meanwhile would be lost.
    """
    global _callback
    if _callback is not None:
        return
    import llama_cpp

    # ggml levels: 1 debug, 2 info, 3 warn, 4 error, 5 continuation. Its warnings are
    # about tuning (context shorter than trained), not for the user: keep them at INFO.
    levels = {4: logging.ERROR, 3: logging.INFO}

    @llama_cpp.llama_log_callback
    def forward(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        message = text.decode("utf-8", errors="replace").rstrip()
        if message:
            # A cancelled evaluation is reported by llama.cpp as failures with status 1 or 2.
            aborted = message.endswith(("failed with error 1", "compute status: 1", "ret = 2"))
            native_log.log(logging.DEBUG if aborted else levels.get(level, logging.DEBUG), "%s", message)

    _callback = forward  # keep the ctypes callback alive
    llama_cpp.llama_log_set(forward, ctypes.c_void_p(0))


def gpu_offload_supported() -> bool:
    import llama_cpp

    return bool(llama_cpp.llama_supports_gpu_offload())


KV_CACHE_TYPES = {"f16": 1, "q8_0": 8}  # GGML_TYPE_F16, GGML_TYPE_Q8_0


@dataclass(frozen=True)
class Hardware:
    """How a model runs, as chosen at load time (reported by `code-kb status`)."""

    gpu_layers: int
    threads: int
    flash_attn: bool
    kv_cache_type: str
    n_batch: int

    def to_dict(self) -> dict:
        return {
            "gpu_layers": self.gpu_layers,
            "threads": self.threads,
            "flash_attn": self.flash_attn,
            "kv_cache_type": self.kv_cache_type,
            "batch_tokens": self.n_batch,
        }


def _head_size(metadata: dict[str, str]) -> int | None:
    arch = metadata.get("general.architecture")
    try:
        return int(
            metadata.get(f"{arch}.attention.key_length")
            or int(metadata[f"{arch}.embedding_length"]) // int(metadata[f"{arch}.attention.head_count"])
        )
    except (KeyError, ValueError, ZeroDivisionError):
        return None


class LlamaCppModel:
    """A GGUF model (or only its vocabulary, `vocab_only=True`, for counting tokens).

    Both a `Tokenizer` and a `Backend`: it generates from the prompt's token ids, so the prompt
    must be built with it as the tokenizer. `generate_tokens` and `warm_tokens` are the same at the
    level of token ids (tests and benchmarks drive the KV cache with them)."""

    exact = True

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        n_ctx: int = 4096,
        vocab_only: bool = False,
        n_gpu_layers: int | None = None,
        n_threads: int | None = None,
        flash_attn: bool | None = None,
        kv_cache_type: str = "f16",
        n_batch: int = 512,
        min_reuse_tokens: int = 32,
        max_stale_tokens: int = 32768,
        refresh_stale_tokens: int = 2048,
    ) -> None:
        path = Path(path).expanduser()
        if not path.is_file():
            raise ModelNotFoundError(str(path))
        if kv_cache_type not in KV_CACHE_TYPES:
            raise ModelLoadError(
                f"unknown KV cache type {kv_cache_type!r}; use one of {', '.join(KV_CACHE_TYPES)}"
            )
        from llama_cpp import Llama

        if n_gpu_layers is None:
            n_gpu_layers = -1 if gpu_offload_supported() else 0
        threads = n_threads or os.cpu_count() or 1
        # llama.cpp needs flash attention for a quantized V cache; on CPU it is also the faster path.
        flash_attn = True if flash_attn is None else flash_attn
        if kv_cache_type != "f16" and not flash_attn:
            raise ModelLoadError(f"a {kv_cache_type} KV cache needs flash attention; enable it or use f16")
        _route_native_logs()
        t0 = time.perf_counter()
        chatter = io.StringIO()  # what llama-cpp-python prints itself (system info, metadata)
        kv_type = KV_CACHE_TYPES[kv_cache_type]
        try:
            with contextlib.redirect_stderr(chatter):
                # Llama's own context stays small: generation runs in ours (_setup_decoding).
                self.llm = Llama(
                    str(path),
                    n_ctx=256,
                    vocab_only=vocab_only,
                    n_gpu_layers=n_gpu_layers,
                    n_threads=threads,
                    n_threads_batch=threads,
                    n_batch=n_batch,
                    n_ubatch=n_batch,
                    flash_attn=flash_attn,
                    type_k=kv_type,
                    type_v=kv_type,
                    verbose=True,
                )
            self.llm.verbose = False  # no per-request prints
        except ValueError as exc:
            raise ModelLoadError(
                f"cannot load model {path}: {exc}; is it a complete GGUF file for a llama.cpp-supported "
                "architecture? Re-download it or pick another model"
            ) from exc
        finally:
            log.debug("llama-cpp-python: %s", chatter.getvalue().strip()[:2000])
        self.path = path
        self.vocab_only = vocab_only
        self.n_gpu_layers = n_gpu_layers
        self.hardware = Hardware(n_gpu_layers, threads, flash_attn, kv_cache_type, n_batch)
        self.metadata: dict[str, str] = dict(self.llm.metadata)  # GGUF key-value pairs, as strings
        self.name = str(self.llm.metadata.get("general.name") or path.name)
        self.architecture = str(self.llm.metadata.get("general.architecture", "?"))
        self.cache = cache_reuse(self.metadata)
        self.min_reuse_tokens = min_reuse_tokens
        # A request reuses moved runs up to `max_stale_tokens` of changes before them (latency
        # first); warming, which runs while the user pauses, evaluates afresh any run past
        # `refresh_stale_tokens`, so that staleness stays small without a keystroke paying for it.
        self.max_stale_tokens = max_stale_tokens
        self.refresh_stale_tokens = min(refresh_stale_tokens, max_stale_tokens)
        self._special_cache: dict[str, int | None] = {}
        self._protected_ids: frozenset[int] | None = None
        self._lock = threading.Lock()
        self._held: list[int] = []  # the token at each KV position (ABSENT where removed)
        self._stale: list[int] = []  # per position: tokens changed before it since it was evaluated
        self.last_plan: Plan | None = None
        self.can_shift = False  # set by _setup_decoding: whether llama.cpp can move cached tokens
        if not vocab_only:
            self._setup_decoding(n_ctx, n_batch)
        log.info(
            "model %s (%s) loaded in %.2f s%s, n_ctx %d, %s",
            path.name,
            self.architecture,
            time.perf_counter() - t0,
            " (vocabulary only)" if vocab_only else "",
            n_ctx,
            self.hardware.to_dict(),
        )

    def _setup_decoding(self, n_ctx: int, n_batch: int) -> None:
        """Our own context over the loaded weights: one KV buffer shared by two sequences, so a run
        of cached tokens can wait in sequence 1 while the tokens before it are evaluated (llama.cpp
        only appends to a sequence at its end)."""
        import llama_cpp

        params = llama_cpp.llama_context_params.from_buffer_copy(self.llm.context_params)
        params.n_ctx = n_ctx
        params.n_batch = params.n_ubatch = n_batch
        params.n_seq_max = 2
        params.kv_unified = True
        ctx = llama_cpp.llama_init_from_model(self.llm._model.model, params)
        if not ctx:
            raise ModelLoadError(
                f"cannot create a {n_ctx}-token context for {self.path}: out of memory? "
                "Lower the prompt budget (--budget, budget_tokens in the config file, or the "
                "editor's budgetTokens setting) or use a q8_0 KV cache (kv_cache_type, or the "
                "editor's kvCacheType setting)"
            )
        self.llm._stack.callback(llama_cpp.llama_free, ctx)  # freed before the model
        self._ctx = ctx
        self._memory = llama_cpp.llama_get_memory(ctx)
        self._vocab = self.llm._model.vocab
        self._n_vocab = llama_cpp.llama_vocab_n_tokens(self._vocab)
        self.can_shift = bool(llama_cpp.llama_memory_can_shift(self._memory)) and self.cache.reusable
        if not self.cache.reusable:
            log.info("KV cache not reused between requests: %s", self.cache.summary())
        head = _head_size(self.metadata)
        if self.hardware.kv_cache_type != "f16" and head is not None and head < 64:
            # llama.cpp 0.3.36's K-shift of a quantized cache crashes on heads this small (seen
            # with 32); real code models have 64 or 128. Such a model reuses only the common prefix.
            log.info("KV shifting off: %s cache with %d-value heads", self.hardware.kv_cache_type, head)
            self.can_shift = False
        self._n_batch = n_batch
        self._batch = llama_cpp.llama_batch_init(n_batch, 0, 1)
        self.llm._stack.callback(llama_cpp.llama_batch_free, self._batch)
        self._abort_at: tuple[threading.Event | None, float] = (None, float("inf"))

        @llama_cpp.ggml_abort_callback
        def should_abort(_data: ctypes.c_void_p) -> bool:
            cancel, deadline = self._abort_at
            return bool((cancel is not None and cancel.is_set()) or time.perf_counter() > deadline)

        self._should_abort = should_abort  # keep the ctypes callback alive

    @property
    def n_ctx(self) -> int:
        import llama_cpp

        return 0 if self.vocab_only else int(llama_cpp.llama_n_ctx(self._ctx))

    @property
    def warms(self) -> bool:
        return not self.vocab_only and self.cache.reusable

    def describe(self) -> dict[str, object]:
        return {
            "name": self.name,
            "path": str(self.path),
            "architecture": self.architecture,
            "device": "gpu" if self.n_gpu_layers else "cpu",
            "gpu_layers": self.n_gpu_layers,
            "context_tokens": self.n_ctx,
            **self.hardware.to_dict(),
            "kv_shift": self.can_shift,
            "cache_reuse": self.cache.to_dict(),
        }

    @property
    def n_ctx_train(self) -> int:
        # A vocabulary-only load reports 0; the metadata has the trained length either way.
        value = self.llm.metadata.get(f"{self.architecture}.context_length")
        return int(value) if value else int(self.llm._model.n_ctx_train())

    def encode(self, text: str) -> list[int]:
        """Tokens of user text. Text that spells a special token never becomes that token: llama.cpp
        matches user-defined tokens (DeepSeek's `<|EOT|>`) even without special parsing, and a
        SentencePiece merge can land on a control token (CodeLlama's `▁<PRE>`)."""
        if not text:
            return []
        tokens = self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)
        for _ in range(4):
            found = self._protected().intersection(tokens)
            if not found:
                return tokens
            tokens = self._encode_split(text, found)
        raise GenerationError(f"cannot tokenise text without special tokens for {self.path}")

    def _protected(self) -> frozenset[int]:
        """Ids of control and user-defined tokens (FIM markers, end-of-text and the like)."""
        if self._protected_ids is None:
            import llama_cpp

            special = llama_cpp.LLAMA_TOKEN_ATTR_CONTROL | llama_cpp.LLAMA_TOKEN_ATTR_USER_DEFINED
            vocab = self.llm._model.vocab
            self._protected_ids = frozenset(
                i
                for i in range(llama_cpp.llama_vocab_n_tokens(vocab))
                if llama_cpp.llama_vocab_get_attr(vocab, i) & special
            )
        return self._protected_ids

    def _encode_split(self, text: str, found: frozenset[int]) -> list[int]:
        """Encode `text` in pieces cut through the middle of every spelling of the `found` tokens."""
        cuts: set[int] = set()
        for token in found:
            raw = self.llm.detokenize([token], special=True).decode("utf-8", errors="ignore")
            # SentencePiece spells a leading space ▁, byte-level BPE Ġ.
            for spelled in {raw, raw.strip(), raw.replace("▁", " ").strip(), raw.replace("Ġ", " ").strip()}:
                start = text.find(spelled) if spelled else -1
                while start != -1:
                    cuts.add(start + max(len(spelled) // 2, 1))
                    start = text.find(spelled, start + 1)
        if not cuts:
            raise GenerationError(f"cannot tokenise text without special tokens for {self.path}")
        bounds = [0, *sorted(cuts), len(text)]
        return [
            t
            for a, b in itertools.pairwise(bounds)
            if a < b
            for t in self.llm.tokenize(text[a:b].encode("utf-8"), add_bos=False, special=False)
        ]

    def decode(self, tokens: list[int]) -> str:
        return self.llm.detokenize(tokens).decode("utf-8", errors="ignore")

    def special_id(self, text: str) -> int | None:
        """The id of a special token written as `text`, if the vocabulary has it as one token."""
        if text not in self._special_cache:
            ids = self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
            found = None
            if len(ids) == 1 and self.llm._model.token_get_text(ids[0]) == text:
                found = ids[0]
            self._special_cache[text] = found
        return self._special_cache[text]

    def cached_prefix(self, tokens: list[int]) -> int:
        """How many leading tokens of `tokens` are already in the KV cache, in place."""
        return plan(self._held, tokens, can_shift=False).keep

    def to_evaluate(self, tokens: list[int]) -> int:
        """How many tokens of `tokens` a request would evaluate, the KV cache as it is."""
        if not self.cache.reusable:
            return len(tokens)
        return plan(
            self._held,
            tokens,
            staleness=self._stale,
            can_shift=self.can_shift,
            min_run=self.min_reuse_tokens,
            max_stale=self.max_stale_tokens,
        ).n_evaluated

    def reset(self) -> None:
        """Empty the KV cache (benchmarks use it for a cold start)."""
        import llama_cpp

        with self._lock:
            llama_cpp.llama_memory_clear(self._memory, True)
            self._held, self._stale = [], []

    # -- evaluation ------------------------------------------------------------------------

    def _decode(self, entries: list[tuple[int, int]], want_logits: bool, all_logits: bool = False) -> int:
        """One llama_decode of (position, token) entries; logits for the last one if wanted, or
        for every one with `all_logits` (verifying a draft)."""
        import llama_cpp

        batch = self._batch
        batch.n_tokens = len(entries)
        for i, (pos, token) in enumerate(entries):
            batch.token[i] = token
            batch.pos[i] = pos
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = 0
            batch.logits[i] = all_logits
        batch.logits[len(entries) - 1] = want_logits or all_logits
        return llama_cpp.llama_decode(self._ctx, batch)

    def _logits(self, i: int = -1) -> np.ndarray:
        """The logits of the last decode's `i`-th batch entry (-1: the last one with logits)."""
        import llama_cpp

        return np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(self._ctx, i), shape=(self._n_vocab,))

    def _evaluate(
        self, tokens: list[int], cancel: threading.Event | None, deadline: float, max_stale: int
    ) -> tuple[Plan, str | None]:
        """Bring the KV cache to `tokens` along the plan; the reason it stopped early, if it did.

        Moved runs wait in sequence 1 at their new positions; then, in position order, each
        gap is evaluated in sequence 0 and the run after it handed back to sequence 0.
        """
        import llama_cpp

        mem = self._memory
        if not self.cache.reusable:  # nothing of an earlier request can stand: start from an empty cache
            llama_cpp.llama_memory_clear(mem, True)
            self._held, self._stale = [], []
        p = plan(
            self._held,
            tokens,
            staleness=self._stale,
            can_shift=self.can_shift,
            min_run=self.min_reuse_tokens,
            max_stale=max_stale,
        )
        for m in p.moves:
            llama_cpp.llama_memory_seq_cp(mem, 0, 1, m.src, m.src + m.length)
        for start, end in [(m.src, m.src + m.length) for m in p.moves] + p.removed(len(self._held)):
            llama_cpp.llama_memory_seq_rm(mem, 0, start, end)
        for m in p.shift_order():
            if m.delta:
                llama_cpp.llama_memory_seq_add(mem, 1, m.src, m.src + m.length, m.delta)
        self._held, self._stale = after(p, self._held, self._stale, tokens)
        steps = sorted(
            [(s, e, None) for s, e in p.evaluate] + [(m.dst, m.dst + m.length, m) for m in p.moves],
            key=lambda step: step[0],
        )
        # llama.cpp applies the shifts inside the next llama_decode, in a graph of its own; aborting
        # that graph part-way leaves the shift pending with some layers already rotated, and the
        # retry rotates them twice. So the first decode after a shift is not abortable and takes at
        # most 32 tokens (a keystroke's gap whole: splitting it would cost a decode over the cache).
        shift_pending = any(m.delta for m in p.moves)
        llama_cpp.llama_set_abort_callback(self._ctx, self._should_abort, None)
        try:
            for start, end, move in steps:
                if move is not None:
                    llama_cpp.llama_memory_seq_cp(mem, 1, 0, start, end)
                    llama_cpp.llama_memory_seq_rm(mem, 1, start, end)
                    continue
                b = start
                while b < end:
                    stop = min(b + (min(32, self._n_batch) if shift_pending else self._n_batch), end)
                    self._abort_at = (None, float("inf")) if shift_pending else (cancel, deadline)
                    shift_pending = False
                    status = self._decode(
                        [(pos, tokens[pos]) for pos in range(b, stop)], want_logits=stop == len(tokens)
                    )
                    if status == 2:  # aborted: drop this batch and the gaps after it, keep the runs
                        llama_cpp.llama_memory_seq_rm(mem, 0, b, -1)
                        kept = [m for m in p.moves if m.dst >= end]
                        for m in kept:  # waiting in sequence 1 at their new places: hand them over
                            llama_cpp.llama_memory_seq_cp(mem, 1, 0, m.dst, m.dst + m.length)
                        llama_cpp.llama_memory_seq_rm(mem, 1, -1, -1)
                        held = [ABSENT] * (len(tokens) - b)
                        for m in kept:
                            held[m.dst - b : m.dst - b + m.length] = tokens[m.dst : m.dst + m.length]
                        self._held[b:] = held
                        while self._held and self._held[-1] == ABSENT:
                            self._held.pop()
                        del self._stale[len(self._held) :]
                        return p, interruption(cancel, deadline) or "cancelled"
                    if status != 0:
                        llama_cpp.llama_memory_clear(mem, True)
                        self._held, self._stale = [], []
                        raise GenerationError(
                            f"llama_decode failed with status {status} (context of "
                            f"{self.n_ctx} tokens full?); lower the prompt budget"
                        )
                    b = stop
        finally:
            llama_cpp.llama_set_abort_callback(self._ctx, llama_cpp.ggml_abort_callback(), None)
            self._abort_at = (None, float("inf"))
        return p, None

    def warm(
        self, prompt: Prompt, *, cancel: threading.Event | None = None, timeout_s: float = 60.0
    ) -> Warmed:
        tokens = prompt.tokens
        p, stopped = self.warm_tokens(tokens, cancel, timeout_s)
        return Warmed(len(tokens), p.n_evaluated, p.n_reused, stopped)

    def generate(
        self,
        prompt: Prompt,
        *,
        max_tokens: int,
        stops: Stops,
        cut: Cut,
        timeout_s: float,
        cancel: threading.Event | None = None,
        n_candidates: int = 1,
    ) -> Generation:
        return self.generate_tokens(
            prompt.tokens,
            max_tokens=max_tokens,
            stop_ids=stops.ids,
            cut=cut,
            timeout_s=timeout_s,
            cancel=cancel,
            n_candidates=n_candidates,
        )

    def warm_tokens(
        self, tokens: list[int], cancel: threading.Event | None = None, timeout_s: float = 60.0
    ) -> tuple[Plan, str | None]:
        """Evaluate `tokens` into the KV cache without generating, so that a later prompt that
        starts with them pays only for the rest. The plan, and why it stopped early if it did
        (the batches evaluated before a cancel stay in the cache)."""
        if self.vocab_only:
            raise GenerationError(f"{self.path} was loaded for its vocabulary only; it cannot evaluate")
        with self._lock:
            p, stopped = self._evaluate(
                tokens, cancel, time.perf_counter() + timeout_s, self.refresh_stale_tokens
            )
            self.last_plan = p
            return p, stopped

    def generate_tokens(
        self,
        tokens: list[int],
        *,
        max_tokens: int,
        stop_ids: AbstractSet[int],
        cut: Cut,
        timeout_s: float,
        cancel: threading.Event | None = None,
        n_candidates: int = 1,
        draft: Sequence[int] = (),
        max_draft_tokens: int = 16,
    ) -> Generation:
        """Greedy generation after `tokens`, ending at an end token, a stop rule, a limit or `cancel`.

        With `n_candidates` > 1, further candidates start from the next most likely first tokens.
        With a `draft` (text the answer is expected to copy, such as the window a next-edit model
        rewrites), each step looks the last generated tokens up in it and verifies up to
        `max_draft_tokens` of what follows there in one batch (prompt lookup decoding), keeping the
        longest run the model agrees with: the same tokens as without a draft, in fewer decodes.
        """
        if self.vocab_only:
            raise GenerationError(f"{self.path} was loaded for its vocabulary only; it cannot generate")
        import llama_cpp

        if not self.cache.reusable:
            n_candidates = 1  # a second candidate would start from the first one's state, not the prompt's
        with self._lock:
            t0 = time.perf_counter()
            deadline = t0 + timeout_s
            p, stopped = self._evaluate(tokens, cancel, deadline, self.max_stale_tokens)
            self.last_plan = p
            eval_ms = (time.perf_counter() - t0) * 1000
            text, reason, n_out, alternatives = "", stopped or "max_tokens", 0, []
            counts = _DraftCounts()
            if stopped is None:
                first = self._logits().copy()
                order = np.argsort(-first)[: max(n_candidates, 1) * 4]
                starts = [int(t) for t in order if not self._ends(int(t), stop_ids)][:n_candidates] or [
                    int(order[0])
                ]
                for k, start in enumerate(starts):
                    if k and (interruption(cancel, deadline) or time.perf_counter() - t0 > timeout_s / 2):
                        break  # alternatives only while there is time to spare
                    out_text, out_reason, out_n = self._continue(
                        len(tokens),
                        start,
                        max_tokens,
                        stop_ids,
                        cut,
                        cancel,
                        deadline,
                        draft,
                        max_draft_tokens,
                        counts,
                    )
                    if k == 0:
                        text, reason, n_out = out_text, out_reason, out_n
                    elif out_text.strip() and out_text != text and out_text not in alternatives:
                        alternatives.append(out_text)
                # Generated tokens never help the next prompt (it puts accepted text in the prefix).
                llama_cpp.llama_memory_seq_rm(self._memory, 0, len(tokens), -1)
            ms = (time.perf_counter() - t0) * 1000
        return Generation(
            text,
            len(tokens),
            p.n_evaluated,
            p.n_reused,
            n_out,
            reason,
            ms,
            n_moved=p.n_moved,
            eval_ms=eval_ms,
            alternatives=alternatives,
            n_drafted=counts.drafted,
            n_draft_accepted=counts.accepted,
            n_decodes=counts.decodes,
        )

    def _ends(self, token: int, stop_ids: AbstractSet[int]) -> bool:
        import llama_cpp

        return bool(llama_cpp.llama_vocab_is_eog(self._vocab, token)) or token in stop_ids

    def _continue(
        self,
        pos: int,
        token: int,
        max_tokens: int,
        stop_ids: AbstractSet[int],
        cut: Cut,
        cancel: threading.Event | None,
        deadline: float,
        draft: Sequence[int] = (),
        max_draft_tokens: int = 16,
        counts: _DraftCounts | None = None,
    ) -> tuple[str, str, int]:
        """Greedy decoding from `token` at `pos`: the kept text, why it stopped, tokens generated.

        `token` is the next token, not yet in the KV cache; each step decodes it (with the draft
        tokens that may follow it) and picks the next one from the logits."""
        import llama_cpp

        llama_cpp.llama_memory_seq_rm(self._memory, 0, pos, -1)
        counts = counts if counts is not None else _DraftCounts()
        out: list[int] = []
        text = ""
        pending = [token]  # tokens chosen by the model, to be checked against the stops in order
        hint = 0  # where in the draft the answer is thought to be
        while True:
            for token in pending:
                if self._ends(token, stop_ids):
                    return text, "eog", len(out)
                out.append(token)
                text, stop = cut(self.decode(out))
                if stop:
                    return text, "rule", len(out)
                if len(out) >= max_tokens:
                    return text, "max_tokens", len(out)
            if stopped := interruption(cancel, deadline):
                return text, stopped, len(out)
            at = pos + len(out) - 1  # where the last chosen token goes
            room = min(max_draft_tokens, max_tokens - len(out), self._n_batch - 1, self.n_ctx - at - 1)
            found, guess = lookup(out, draft, room, hint) if draft and room > 0 else (0, [])
            status = self._decode(
                [(at + i, t) for i, t in enumerate([out[-1], *guess])],
                want_logits=True,
                all_logits=bool(guess),
            )
            counts.decodes += 1
            if status != 0:
                raise GenerationError(
                    f"llama_decode failed with status {status} while generating "
                    f"(context of {self.n_ctx} tokens full?); lower the prompt budget or max tokens"
                )
            if not guess:
                pending = [int(self._logits().argmax())]
                continue
            # The model's choice after each entry; the draft holds while it agrees with them.
            chosen = [int(self._logits(i).argmax()) for i in range(len(guess) + 1)]
            kept = 0
            while kept < len(guess) and chosen[kept] == guess[kept]:
                kept += 1
            counts.drafted += len(guess)
            counts.accepted += kept
            hint = found + kept + 1  # past the model's own choice, where it agreed all along
            if kept < len(guess):  # the rejected draft tokens leave the cache
                llama_cpp.llama_memory_seq_rm(self._memory, 0, at + 1 + kept, -1)
            # The agreed draft tokens are in the cache; the last choice is not yet.
            pending = [*guess[:kept], chosen[kept]]


@dataclass
class _DraftCounts:
    drafted: int = 0  # draft tokens verified
    accepted: int = 0  # of them, those the model agreed with
    decodes: int = 0  # llama_decode calls while generating


def lookup(
    out: Sequence[int], draft: Sequence[int], k: int, hint: int = 0, max_ngram: int = 3
) -> tuple[int, list[int]]:
    """Where in `draft` the answer `out` goes on, and up to `k` draft tokens from there: after an
    occurrence of the last tokens of `out` (the longest such n-gram first, down to one token),
    the one ending at `hint` (where the previous lookup left off) if there is one, else the first
    after it, else the last. (0, []) where they occur nowhere."""
    for n in range(min(max_ngram, len(out)), 0, -1):
        tail = list(out[-n:])
        ends = [s + n for s in range(len(draft) - n) if list(draft[s : s + n]) == tail]
        if ends:
            at = hint if hint in ends else next((e for e in ends if e > hint), ends[-1])
            return at, list(draft[at : at + k])
    return 0, []
