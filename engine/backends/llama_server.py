"""llama.cpp's own server through its `/infill` endpoint, as llama.vim and llama.vscode use it.

We send the parts of our prompt rather than its text: the retrieved snippets as `input_extra`
chunks, the current file's prefix and suffix as `input_prefix` / `input_suffix`. The server lays
them out in the model's FIM format itself, tokenising user text without special tokens (so
code that spells `<|fim_prefix|>` stays text), and reuses its KV cache across requests
(`cache_prompt`; start it with `--cache-reuse 256` to shift moved chunks too). Unlike
`/v1/completions` it reports how many prompt tokens it found in its cache.
"""

from __future__ import annotations

import logging
import threading
import time
import urllib.error
from collections.abc import Callable
from typing import Any

from ..errors import EngineError
from ..prompt import CONTEXT_KINDS
from . import Generation, interruption
from .sse import get_json, post_stream

log = logging.getLogger(__name__)


def is_llama_server(endpoint: str, timeout_s: float = 5.0) -> bool:
    """Whether `endpoint` is llama.cpp's server (it answers `/props` with its generation settings)."""
    try:
        props = get_json(endpoint.rstrip("/") + "/props", {}, timeout_s)
    except (urllib.error.URLError, OSError, ValueError):
        return False
    return isinstance(props, dict) and "default_generation_settings" in props


class LlamaServerInfillBackend:
    def __init__(self, endpoint: str, api_key: str | None = None, connect_timeout_s: float = 5.0) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.url = self.endpoint + "/infill"
        self.api_key = api_key
        self.connect_timeout_s = connect_timeout_s
        headers = self._headers()
        try:
            props = get_json(self.endpoint + "/props", headers, connect_timeout_s)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise EngineError(f"cannot reach llama.cpp's server at {endpoint} ({exc}); is it running? "
                              "Check the endpoint (--endpoint, or the editor's endpoint setting)") from exc
        settings = props.get("default_generation_settings") or {}
        self.n_ctx = int(settings.get("n_ctx") or props.get("n_ctx") or 0) or None
        model = str(props.get("model_path") or "").rsplit("/", 1)[-1]
        self.name = f"{model or 'model'} at {endpoint} (/infill)"
        self.device = f"remote {endpoint}"

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers

    def generate(self, prompt: Any, *, max_tokens: int, stop_texts: list[str],
                 cut: Callable[[str], tuple[str, bool]], timeout_s: float,
                 cancel: threading.Event | None = None) -> Generation:
        """Generate for an assembled `engine.prompt.Prompt`, from its parts."""
        t0 = time.perf_counter()
        deadline = t0 + timeout_s
        parts = prompt.parts
        body = {
            "input_extra": [{"filename": p.path, "text": p.text} for p in parts if p.kind in CONTEXT_KINDS],
            "input_prefix": next((p.text for p in parts if p.kind == "prefix"), ""),
            "input_suffix": next((p.text for p in parts if p.kind == "suffix"), ""),
            "prompt": "", "n_predict": max_tokens, "temperature": 0, "top_k": 1, "stream": True,
            "cache_prompt": True, "stop": stop_texts, "t_max_predict_ms": int(timeout_s * 1000),
        }
        text, reason, pieces, final = "", "max_tokens", 0, {}
        events = post_stream(self.url, body, self._headers(), max(timeout_s, self.connect_timeout_s), self.endpoint)
        try:
            for event in events:
                piece = event.get("content") or ""
                if piece:
                    pieces += 1
                    text, stop = cut(text + piece)
                    if stop:
                        reason = "rule"
                        break
                if event.get("stop"):
                    final = event
                    reason = "eog" if event.get("stop_type") in ("eos", "word") else reason
                    break
                if stopped := interruption(cancel, deadline):
                    reason = stopped
                    break
        finally:
            events.close()
        timings = final.get("timings") or {}
        n_prompt = int(final.get("tokens_evaluated") or prompt.n_tokens)
        evaluated = int(timings.get("prompt_n", n_prompt))
        reused = int(timings.get("cache_n", 0))
        generated = int(timings.get("predicted_n") or final.get("tokens_predicted") or pieces)
        return Generation(text, n_prompt, evaluated, reused, generated, reason, (time.perf_counter() - t0) * 1000)
