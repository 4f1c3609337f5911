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
from typing import Any

from ..errors import EngineError
from ..prompt import CONTEXT_KINDS, Prompt
from . import Cut, Generation, Stops, Warmed
from .sse import get_json, headers, post_stream, stream_completion

log = logging.getLogger(__name__)


def is_llama_server(endpoint: str, timeout_s: float = 5.0) -> bool:
    """Whether `endpoint` is llama.cpp's server (it answers `/props` with its generation settings)."""
    try:
        props = get_json(endpoint.rstrip("/") + "/props", {}, timeout_s)
    except (urllib.error.URLError, OSError, ValueError):
        return False
    return isinstance(props, dict) and "default_generation_settings" in props


def _end(event: dict[str, Any]) -> str | None:
    """The server's last event says why it stopped: an end token or stop text, else the token limit."""
    if not event.get("stop"):
        return None
    return "eog" if event.get("stop_type") in ("eos", "word") else "max_tokens"


class LlamaServerInfillBackend:
    """A `Backend`: llama.cpp's server, which keeps its own KV cache (nothing for us to warm)."""

    warms = False

    def __init__(self, endpoint: str, api_key: str | None = None, connect_timeout_s: float = 5.0) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.url = self.endpoint + "/infill"
        self.api_key = api_key
        self.connect_timeout_s = connect_timeout_s
        try:
            props = get_json(self.endpoint + "/props", headers(api_key), connect_timeout_s)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise EngineError(
                f"cannot reach llama.cpp's server at {endpoint} ({exc}); is it running? "
                "Check the endpoint (--endpoint, or the editor's endpoint setting)"
            ) from exc
        settings = props.get("default_generation_settings") or {}
        self.n_ctx: int | None = int(settings.get("n_ctx") or props.get("n_ctx") or 0) or None
        model = str(props.get("model_path") or "").rsplit("/", 1)[-1]
        self.name = f"{model or 'model'} at {endpoint} (/infill)"
        self.device = f"remote {endpoint}"

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "device": self.device, "context_tokens": self.n_ctx}

    def warm(
        self, prompt: Prompt, *, cancel: threading.Event | None = None, timeout_s: float = 60.0
    ) -> Warmed:
        return Warmed()

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
        """Generate from the prompt's parts; the server knows its model's end tokens, the stop texts
        (the file separator first) end a completion too. One candidate only."""
        t0 = time.perf_counter()
        parts = prompt.parts
        body = {
            "input_extra": [{"filename": p.path, "text": p.text} for p in parts if p.kind in CONTEXT_KINDS],
            "input_prefix": next((p.text for p in parts if p.kind == "prefix"), ""),
            "input_suffix": next((p.text for p in parts if p.kind == "suffix"), ""),
            "prompt": "",
            "n_predict": max_tokens,
            "temperature": 0,
            "top_k": 1,
            "stream": True,
            "cache_prompt": True,
            "stop": list(stops.texts),
            "t_max_predict_ms": int(timeout_s * 1000),
        }
        events = post_stream(
            self.url, body, headers(self.api_key), max(timeout_s, self.connect_timeout_s), self.endpoint
        )
        out = stream_completion(
            events,
            piece=lambda e: e.get("content") or "",
            end=_end,
            cut=cut,
            cancel=cancel,
            deadline=t0 + timeout_s,
        )
        final: dict[str, Any] = next((e for e in reversed(out.events) if e.get("stop")), {})
        timings = final.get("timings") or {}
        n_prompt = int(final.get("tokens_evaluated") or prompt.n_tokens)
        evaluated = int(timings.get("prompt_n", n_prompt))
        reused = int(timings.get("cache_n", 0))
        generated = int(timings.get("predicted_n") or final.get("tokens_predicted") or out.n_pieces)
        return Generation(
            out.text,
            n_prompt,
            evaluated,
            reused,
            generated,
            out.stop_reason,
            (time.perf_counter() - t0) * 1000,
        )
