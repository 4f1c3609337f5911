"""The engine's knobs, fully defaulted."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

# Prompt budget when none is set: what a CPU evaluates in a few seconds cold (and a
# few tokens warm, thanks to the KV cache), and what a GPU takes in stride.
DEFAULT_BUDGET_CPU_TOKENS = 4096
DEFAULT_BUDGET_GPU_TOKENS = 16384


def default_snippet_limit(budget_tokens: int) -> int:
    """Snippets offered to a prompt of this budget: 8 up to 4k tokens, then one per 256 tokens
    (64 at 16k, 128 at 32k), so that a large budget is filled with repository context."""
    return max(8, min(budget_tokens // 256, 128)) if budget_tokens > 4096 else 8


# Marks a setting that the loaded model or backend depends on: changing it means loading again.
# `budget_tokens` and `max_tokens` are among them because they size the in-process context window.
RELOAD = {"reload": True}


@dataclass(frozen=True)
class EngineConfig:
    # in-process GGUF; with `endpoint`, only its tokenizer is used
    model_path: str | None = field(default=None, metadata=RELOAD)
    # OpenAI-compatible server (llama.cpp server, vLLM, Ollama) instead
    endpoint: str | None = field(default=None, metadata=RELOAD)
    # infill (llama.cpp server's /infill), completions (/v1/completions), auto: probe
    endpoint_api: str = field(default="auto", metadata=RELOAD)
    # model name sent to the endpoint (default: its first model)
    remote_model: str | None = field(default=None, metadata=RELOAD)
    # FIM family for an endpoint without a local GGUF (default qwen2.5-coder)
    template: str | None = field(default=None, metadata=RELOAD)
    # None: from the model's context length and the hardware
    budget_tokens: int | None = field(default=None, metadata=RELOAD)
    max_tokens: int = field(default=64, metadata=RELOAD)  # generated tokens per completion
    max_lines: int = 8  # lines of a multi-line completion
    timeout_s: float = 10.0  # generation time limit
    snippet_limit: int | None = None  # retrieved snippets offered to the prompt; None: from the budget
    # None: all layers when the build can offload, else 0
    n_gpu_layers: int | None = field(default=None, metadata=RELOAD)
    n_threads: int | None = field(default=None, metadata=RELOAD)  # None: all cores
    # None: on (llama.cpp's CPU kernels are faster with it; q8_0 KV needs it)
    flash_attn: bool | None = field(default=None, metadata=RELOAD)
    # f16, q8_0, or auto: f16 unless it would take over a quarter of RAM
    kv_cache_type: str = field(default="auto", metadata=RELOAD)
    candidates: int = 3  # completions offered in a completion list (inline ghost text shows one)
    # A request that would evaluate more than this (a file just opened, a jump far from the cached
    # prompt) is answered from a quick prompt of about this size while the whole one is evaluated
    # when the model is idle. None: 1024 on CPU, 8192 with GPU offload; 0: always the whole prompt.
    quick_prompt_tokens: int | None = None


def needs_reload(old: EngineConfig, new: EngineConfig) -> bool:
    """Whether going from `old` to `new` needs the model loaded again (a setting marked RELOAD
    changed); if not, `Completer.reconfigured(new)` keeps the loaded one."""
    marked = (f.name for f in dataclasses.fields(EngineConfig) if f.metadata.get("reload"))
    return any(getattr(old, name) != getattr(new, name) for name in marked)


@dataclass(frozen=True)
class NextEditConfig:
    """Next-edit suggestions (engine/next_edit/): a second, separate model."""

    enabled: bool = True  # offer next edits once a next-edit model is configured
    model_path: str | None = (
        None  # GGUF file or catalogue name (e.g. sweep-next-edit-1.5b); None: no next edits
    )
    budget_tokens: int = 3072  # prompt: related context, recent changes and the windows
    max_tokens: int = 1024  # the rewritten window, at most
    timeout_s: float = 10.0  # generation time limit
    speculative: bool = True  # draft with the current window and verify in batches (prompt lookup)
    # OpenAI-compatible server (/v1/completions) that generates next edits; with it `model_path`
    # is optional and only counts tokens exactly
    endpoint: str | None = None
    format: str = "auto"  # auto: from the GGUF's or the server's model name; sweep
