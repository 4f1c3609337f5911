"""In-process GGUF models through llama-cpp-python, keeping the evaluated tokens between requests.

llama-cpp-python's `Llama.generate` reuses the longest common prefix of the previous
token sequence, so a prompt that grew by a few tokens costs only those tokens.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import logging
import os
import threading
import time
from pathlib import Path
from typing import Callable

from ..errors import ModelLoadError, ModelNotFoundError
from . import Generation, interruption

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
            native_log.log(levels.get(level, logging.DEBUG), "%s", message)

    _callback = forward  # keep the ctypes callback alive
    llama_cpp.llama_log_set(forward, ctypes.c_void_p(0))


def gpu_offload_supported() -> bool:
    import llama_cpp

    return bool(llama_cpp.llama_supports_gpu_offload())


class LlamaCppModel:
    """A GGUF model (or only its vocabulary, `vocab_only=True`, for counting tokens)."""

    exact = True

    def __init__(self, path: str | os.PathLike, *, n_ctx: int = 4096, vocab_only: bool = False,
                 n_gpu_layers: int | None = None, n_threads: int | None = None) -> None:
        path = Path(path).expanduser()
        if not path.is_file():
            raise ModelNotFoundError(str(path))
        from llama_cpp import Llama

        if n_gpu_layers is None:
            n_gpu_layers = -1 if gpu_offload_supported() else 0
        threads = n_threads or os.cpu_count() or 1
        _route_native_logs()
        t0 = time.perf_counter()
        chatter = io.StringIO()  # what llama-cpp-python prints itself (system info, metadata)
        try:
            with contextlib.redirect_stderr(chatter):
                self.llm = Llama(str(path), n_ctx=512 if vocab_only else n_ctx, vocab_only=vocab_only,
                                 n_gpu_layers=n_gpu_layers, n_threads=threads, n_threads_batch=threads, verbose=True)
            self.llm.verbose = False  # no per-request prints from generate()
        except ValueError as exc:
            raise ModelLoadError(
                f"cannot load model {path}: {exc}; is it a complete GGUF file for a llama.cpp-supported "
                "architecture? Re-download it or pick another model") from exc
        finally:
            log.debug("llama-cpp-python: %s", chatter.getvalue().strip()[:2000])
        self.path = path
        self.vocab_only = vocab_only
        self.n_gpu_layers = n_gpu_layers
        self.name = str(self.llm.metadata.get("general.name") or path.name)
        self.architecture = str(self.llm.metadata.get("general.architecture", "?"))
        self._special_cache: dict[str, int | None] = {}
        self._lock = threading.Lock()
        log.info("model %s (%s) loaded in %.2f s%s, n_ctx %d, gpu layers %d", path.name, self.architecture,
                 time.perf_counter() - t0, " (vocabulary only)" if vocab_only else "", n_ctx, n_gpu_layers)

    @property
    def n_ctx(self) -> int:
        return self.llm.n_ctx()

    @property
    def n_ctx_train(self) -> int:
        # A vocabulary-only load reports 0; the metadata has the trained length either way.
        value = self.llm.metadata.get(f"{self.architecture}.context_length")
        return int(value) if value else int(self.llm._model.n_ctx_train())

    def encode(self, text: str) -> list[int]:
        if not text:
            return []
        return self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)

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
        """How many leading tokens of `tokens` are already in the KV cache."""
        held = self.llm._input_ids[: self.llm.n_tokens]
        n = 0
        for a, b in zip(held, tokens):
            if a != b:
                break
            n += 1
        # llama-cpp-python re-evaluates the last token of a fully cached prompt for its logits.
        return min(n, len(tokens) - 1)

    def generate(self, tokens: list[int], *, max_tokens: int, stop_ids: set[int],
                 cut: Callable[[str], tuple[str, bool]], timeout_s: float,
                 cancel: threading.Event | None = None) -> Generation:
        """Greedy generation after `tokens`, ending at an end token, a stop rule, a limit or `cancel`."""
        if self.vocab_only:
            raise ModelLoadError(f"{self.path} was loaded for its vocabulary only; it cannot generate")
        with self._lock:
            t0 = time.perf_counter()
            deadline = t0 + timeout_s
            reused = self.cached_prefix(tokens)
            out: list[int] = []
            text, reason = "", "max_tokens"
            vocab = self.llm._model.vocab
            import llama_cpp

            for token in self.llm.generate(tokens, temp=0.0, top_k=1, repeat_penalty=1.0):
                if llama_cpp.llama_vocab_is_eog(vocab, token) or token in stop_ids:
                    reason = "eog"
                    break
                out.append(token)
                text, stop = cut(self.llm.detokenize(out).decode("utf-8", errors="ignore"))
                if stop:
                    reason = "rule"
                    break
                if len(out) >= max_tokens:
                    break
                if stopped := interruption(cancel, deadline):
                    reason = stopped
                    break
            ms = (time.perf_counter() - t0) * 1000
        return Generation(text, len(tokens), len(tokens) - reused, reused, len(out), reason, ms)
