"""Model backends: where the tokens of a prompt are evaluated and new ones sampled.

One `Backend` Protocol, three implementations: the in-process llama.cpp model
(`llama_cpp.LlamaCppModel`, which takes the prompt's token ids), llama.cpp's server through
`/infill` (`llama_server.LlamaServerInfillBackend`, the prompt's parts) and any OpenAI-compatible
server through `/v1/completions` (`openai_compat.OpenAICompletionsBackend`, the prompt's text).
Each takes from the `Prompt` what it sends; the completer does not know which it holds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from ..prompt import Prompt

# A stop rule (`postprocess.StopRules.cut`): the text to keep of what was generated so far, and
# whether generation ends there.
Cut = Callable[[str], tuple[str, bool]]


@dataclass
class Generation:
    text: str
    n_prompt: int
    n_evaluated: int  # prompt tokens that had to be evaluated
    n_reused: int  # prompt tokens found in the KV cache
    n_generated: int
    stop_reason: str  # "eog", "rule", "max_tokens", "timeout", "cancelled", "type-through"
    ms: float
    n_moved: int = 0  # of the reused tokens, those shifted to a new position in the KV cache
    eval_ms: float = 0.0  # of `ms`, spent evaluating the prompt
    alternatives: list[str] = field(default_factory=list)  # further candidates, best first
    n_drafted: int = 0  # draft tokens verified in batches (speculative decoding from a given draft)
    n_draft_accepted: int = 0  # of them, those the model agreed with
    n_decodes: int = 0  # llama_decode calls while generating (0 where the backend does not say)


@dataclass(frozen=True)
class Stops:
    """What ends a completion besides the model's own end-of-generation tokens, from the prompt's
    FIM template: its end and FIM tokens as ids in the prompt's vocabulary (for a backend that
    samples tokens itself; empty where token counts are estimates) and as text, the file
    separator first (for a server, which matches text)."""

    ids: frozenset[int] = frozenset()
    texts: tuple[str, ...] = ()


@dataclass(frozen=True)
class Warmed:
    """What warming did: prompt tokens offered, evaluated and found in the KV cache, and why it
    stopped early ("cancelled", "timeout") if it did."""

    n_tokens: int = 0
    n_evaluated: int = 0
    n_reused: int = 0
    stopped: str | None = None


class Backend(Protocol):
    """Generates the completion of an assembled prompt."""

    @property
    def n_ctx(self) -> int | None:
        """The context window in tokens (prompt and generated ones); None where unknown."""
        ...

    @property
    def warms(self) -> bool:
        """Whether `warm` does anything: the backend keeps a KV cache that we manage."""
        ...

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
        """Greedy generation after `prompt`, ending at an end token, a stop, the `cut` rule, `max_tokens`,
        `timeout_s` or `cancel`. Up to `n_candidates` - 1 further candidates in `alternatives`
        where the backend can sample them (the others return none)."""
        ...

    def warm(
        self, prompt: Prompt, *, cancel: threading.Event | None = None, timeout_s: float = 60.0
    ) -> Warmed:
        """Evaluate `prompt` into the KV cache without generating; nothing where `warms` is False."""
        ...

    def describe(self) -> dict[str, object]:
        """What generates and where (name, device, context), for status reports."""
        ...


def interruption(cancel: threading.Event | None, deadline: float) -> str | None:
    """Why generation must stop now ("cancelled", "timeout"), checked once per token; None to go on."""
    if cancel is not None and cancel.is_set():
        return "cancelled"
    if time.perf_counter() > deadline:
        return "timeout"
    return None
