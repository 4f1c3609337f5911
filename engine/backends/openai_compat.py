"""A remote inference server through the OpenAI-compatible `/v1/completions` API.

Works with llama.cpp's server, vLLM, Ollama and llama-cpp-python's own server. The prompt is
sent as text (not every server takes token ids), streamed back, and cut by the same stop
rules as the in-process model; closing the stream stops the server's generation.
"""

from __future__ import annotations

import logging
import threading
import time
import urllib.error
import urllib.request
from typing import Any

from ..errors import EngineError
from ..prompt import Prompt
from . import Cut, Generation, Stops, Warmed
from .sse import get_json, headers, post_stream, stream_completion

log = logging.getLogger(__name__)


def completions_url(endpoint: str) -> str:
    base = endpoint.rstrip("/")
    if base.endswith("/completions"):
        return base
    return base + ("/completions" if base.endswith("/v1") else "/v1/completions")


def _choice(event: dict[str, Any]) -> dict[str, Any]:
    return (event.get("choices") or [{}])[0]


class OpenAICompletionsBackend:
    """A `Backend`: any server with `/v1/completions`. The API does not tell its context length,
    nor what the server keeps cached (nothing for us to warm)."""

    warms = False
    n_ctx: int | None = None

    def __init__(
        self,
        endpoint: str,
        model: str | None = None,
        api_key: str | None = None,
        connect_timeout_s: float = 5.0,
    ) -> None:
        self.endpoint = endpoint
        self.url = completions_url(endpoint)
        self.api_key = api_key
        self.connect_timeout_s = connect_timeout_s
        self.model = model or self._first_model()
        self.name = f"{self.model or 'default model'} at {endpoint}"
        self.device = f"remote {endpoint}"

    def _first_model(self) -> str | None:
        """The server's first model, and proof that the endpoint answers at all."""
        url = self.url.rsplit("/completions", 1)[0] + "/models"
        try:
            data = get_json(url, headers(self.api_key), self.connect_timeout_s).get("data") or []
        except urllib.error.HTTPError as exc:
            log.info("%s answered %d; sending requests without a model name", url, exc.code)
            return None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise EngineError(
                f"cannot reach the inference server at {self.endpoint} ({exc}); is it running? "
                "Check the endpoint (--endpoint, or the editor's endpoint setting)"
            ) from exc
        return str(data[0]["id"]) if data and "id" in data[0] else None

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "device": self.device}

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
        """Generate from the prompt's text. One candidate only."""
        t0 = time.perf_counter()
        body: dict[str, Any] = {
            "prompt": prompt.text,
            "max_tokens": max_tokens,
            "temperature": 0,
            "stream": True,
            "stop": list(stops.texts[:4]),
        }  # OpenAI allows four stop sequences
        if self.model:
            body["model"] = self.model
        events = post_stream(
            self.url, body, headers(self.api_key), max(timeout_s, self.connect_timeout_s), self.endpoint
        )
        out = stream_completion(
            events,
            piece=lambda e: _choice(e).get("text") or "",
            end=lambda e: "eog" if _choice(e).get("finish_reason") == "stop" else None,
            cut=cut,
            cancel=cancel,
            deadline=t0 + timeout_s,
        )
        usage = next((e["usage"] for e in reversed(out.events) if e.get("usage")), None)
        n_prompt = int(usage.get("prompt_tokens", prompt.n_tokens)) if usage else prompt.n_tokens
        generated = int(usage.get("completion_tokens", out.n_pieces)) if usage else out.n_pieces
        # The API does not say how much of the prompt the server found in its cache.
        return Generation(
            out.text, n_prompt, n_prompt, 0, generated, out.stop_reason, (time.perf_counter() - t0) * 1000
        )
