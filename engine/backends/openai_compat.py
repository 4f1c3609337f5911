"""A remote inference server through the OpenAI-compatible `/v1/completions` API.

Works with llama.cpp's server, vLLM, Ollama and llama-cpp-python's own server. The answer is
streamed back and cut by the same stop rules as the in-process model; closing the stream stops the
server's generation.

The prompt goes as token ids where the server takes them and tokenises as we do: llama.cpp's
server and vLLM take ids, and `agree_on_tokens` checks with their `/tokenize` that the local
tokenizer (`modelPath`, for exact counts) is the server's. Otherwise it goes as text, which such
servers tokenise with special tokens parsed: user code that spells one (`<|fim_prefix|>` in a
completion tool's own source) would become that token. There every special-token text inside the
code and snippets is broken with a zero-width space after its first character (`neutralised`);
the template's own markers stay whole.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import urllib.error
import urllib.request
from typing import Any

from ..errors import EngineError
from ..prompt import Prompt, Tokenizer
from ..templates import FAMILIES
from . import Cut, Generation, Stops, Warmed
from .sse import get_json, headers, post_json, post_stream, stream_completion

log = logging.getLogger(__name__)

TOKEN_ID_SERVERS = ("llamacpp", "vllm")  # `owned_by` in /v1/models of servers whose prompt takes ids
_PROBE = "def fetch(url, retries=3):\n    return client.get(url, timeout=30.5)  # über\n"
# Special-token text of every known family (markers and end tokens) and of chat formats.
SPECIAL_TEXTS = tuple(
    sorted(
        {t for f in FAMILIES for t in (*f.specials(), *f.stops)}
        | {"<|im_start|>", "<|im_end|>", "<|endoftext|>", "<s>", "</s>", "<|begin_of_text|>", "<|eot_id|>"},
        key=len,
        reverse=True,
    )
)
_SPECIAL = re.compile("|".join(re.escape(t) for t in SPECIAL_TEXTS))
ZERO_WIDTH_SPACE = "\u200b"
_BROKEN = re.compile("|".join(re.escape(t[0] + ZERO_WIDTH_SPACE + t[1:]) for t in SPECIAL_TEXTS))


def restored(text: str) -> str:
    """A model's answer with the breaks `neutralised` put into special-token text taken out, should
    it have copied some from the prompt."""
    return (
        _BROKEN.sub(lambda m: m[0].replace(ZERO_WIDTH_SPACE, "", 1), text)
        if ZERO_WIDTH_SPACE in text
        else text
    )


def neutralised(prompt: Prompt) -> str:
    """The prompt's text with each special-token text inside its content (code, snippets, paths)
    broken by a zero-width space after its first character; the template's markers stay whole."""
    return "".join(
        s.text
        if s.kind == "template"
        else _SPECIAL.sub(lambda m: m[0][0] + ZERO_WIDTH_SPACE + m[0][1:], s.text)
        for s in prompt.segments
    )


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
        self.owned_by = ""  # who /v1/models says serves the model: "llamacpp", "vllm", ...
        self.model = model or self._first_model()
        self.name = f"{self.model or 'default model'} at {endpoint}"
        self.device = f"remote {endpoint}"
        self.token_ids = False  # send prompts as ids: set by agree_on_tokens

    def agree_on_tokens(self, tokenizer: Tokenizer) -> bool:
        """Send token ids from now on if the server takes them (llama.cpp's server, vLLM) and its
        `/tokenize` splits a probe exactly as `tokenizer` does; else prompts go as neutralised text."""
        if not tokenizer.exact or self.owned_by not in TOKEN_ID_SERVERS:
            return False
        base = self.url.split("/v1/", 1)[0]
        body = {"content": _PROBE, "prompt": _PROBE, "add_special": False, "add_special_tokens": False}
        if self.model:
            body["model"] = self.model
        try:
            answer = post_json(base + "/tokenize", body, headers(self.api_key), self.connect_timeout_s)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            log.info("%s/tokenize did not answer (%s): prompts go as text", base, exc)
            return False
        theirs = answer.get("tokens") if isinstance(answer, dict) else None
        ours = tokenizer.encode(_PROBE)
        if theirs != ours:
            log.warning(
                "the server at %s tokenises differently from the local model file (modelPath): prompts "
                "go as text, and token counts are the local file's; point modelPath at the server's model",
                self.endpoint,
            )
            return False
        self.token_ids = True
        log.info(
            "the server at %s takes token ids and tokenises as modelPath does: prompts go as ids",
            self.endpoint,
        )
        return True

    def _first_model(self) -> str | None:
        """The server's first model, and proof that the endpoint answers at all."""
        url = self.url.rsplit("/completions", 1)[0] + "/models"
        try:
            data = get_json(url, headers(self.api_key), self.connect_timeout_s).get("data") or []
            self.owned_by = str(data[0].get("owned_by") or "") if data and isinstance(data[0], dict) else ""
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
        """Generate from the prompt's ids or neutralised text. One candidate only."""
        t0 = time.perf_counter()
        body: dict[str, Any] = {
            "prompt": prompt.tokens if self.token_ids and prompt.tokens else neutralised(prompt),
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
            out.text if self.token_ids else restored(out.text),
            n_prompt,
            n_prompt,
            0,
            generated,
            out.stop_reason,
            (time.perf_counter() - t0) * 1000,
        )
