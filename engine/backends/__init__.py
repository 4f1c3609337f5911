"""Model backends: where the tokens of a prompt are evaluated and new ones sampled."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass


@dataclass
class Generation:
    text: str
    n_prompt: int
    n_evaluated: int  # prompt tokens that had to be evaluated
    n_reused: int  # prompt tokens found in the KV cache
    n_generated: int
    stop_reason: str  # "eog", "rule", "max_tokens", "timeout", "cancelled"
    ms: float


def interruption(cancel: threading.Event | None, deadline: float) -> str | None:
    """Why generation must stop now ("cancelled", "timeout"), checked once per token; None to go on."""
    if cancel is not None and cancel.is_set():
        return "cancelled"
    if time.perf_counter() > deadline:
        return "timeout"
    return None
