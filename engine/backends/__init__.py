"""Model backends: where the tokens of a prompt are evaluated and new ones sampled."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field


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


def interruption(cancel: threading.Event | None, deadline: float) -> str | None:
    """Why generation must stop now ("cancelled", "timeout"), checked once per token; None to go on."""
    if cancel is not None and cancel.is_set():
        return "cancelled"
    if time.perf_counter() > deadline:
        return "timeout"
    return None
