"""A remote inference server through the OpenAI-compatible `/v1/completions` API.

Works with llama.cpp's server, vLLM, Ollama and llama-cpp-python's own server. The prompt is
sent as text (not every server takes token ids), streamed back, and cut by the same stop
rules as the in-process model; closing the stream stops the server's generation.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable

from ..errors import EngineError
from . import Generation, interruption
from .sse import post_stream

log = logging.getLogger(__name__)


def completions_url(endpoint: str) -> str:
    base = endpoint.rstrip("/")
    if base.endswith("/completions"):
        return base
    return base + ("/completions" if base.endswith("/v1") else "/v1/completions")


class OpenAICompletionsBackend:
    def __init__(self, endpoint: str, model: str | None = None, api_key: str | None = None,
                 connect_timeout_s: float = 5.0) -> None:
        self.endpoint = endpoint
        self.url = completions_url(endpoint)
        self.api_key = api_key
        self.connect_timeout_s = connect_timeout_s
        self.model = model or self._first_model()
        self.name = f"{self.model or 'default model'} at {endpoint}"
        self.device = f"remote {endpoint}"

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers

    def _first_model(self) -> str | None:
        """The server's first model, and proof that the endpoint answers at all."""
        url = self.url.rsplit("/completions", 1)[0] + "/models"
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=self._headers()),
                                        timeout=self.connect_timeout_s) as response:
                data = json.load(response).get("data") or []
        except urllib.error.HTTPError as exc:
            log.info("%s answered %d; sending requests without a model name", url, exc.code)
            return None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise EngineError(f"cannot reach the inference server at {self.endpoint} ({exc}); is it running? "
                              "Check the endpoint (--endpoint, or the editor's endpoint setting)") from exc
        return str(data[0]["id"]) if data and "id" in data[0] else None

    def generate(self, prompt: str, n_prompt: int, *, max_tokens: int, stop_texts: list[str],
                 cut: Callable[[str], tuple[str, bool]], timeout_s: float,
                 cancel: threading.Event | None = None) -> Generation:
        t0 = time.perf_counter()
        deadline = t0 + timeout_s
        body = {"prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "stream": True,
                "stop": stop_texts[:4]}  # OpenAI allows four stop sequences
        if self.model:
            body["model"] = self.model
        text, reason, pieces, usage = "", "max_tokens", 0, None
        events = post_stream(self.url, body, self._headers(), max(timeout_s, self.connect_timeout_s), self.endpoint)
        try:
            for event in events:
                usage = event.get("usage") or usage
                choice = (event.get("choices") or [{}])[0]
                piece = choice.get("text") or ""
                if piece:
                    pieces += 1
                    text, stop = cut(text + piece)
                    if stop:
                        reason = "rule"
                        break
                if choice.get("finish_reason") == "stop":
                    reason = "eog"
                    break
                if stopped := interruption(cancel, deadline):
                    reason = stopped
                    break
        finally:
            events.close()
        n_prompt = int(usage.get("prompt_tokens", n_prompt)) if usage else n_prompt
        generated = int(usage.get("completion_tokens", pieces)) if usage else pieces
        # The API does not say how much of the prompt the server found in its cache.
        return Generation(text, n_prompt, n_prompt, 0, generated, reason, (time.perf_counter() - t0) * 1000)
