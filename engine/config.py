"""The engine's knobs, fully defaulted."""

from __future__ import annotations

from dataclasses import dataclass

# Prompt budget when none is set: what a CPU evaluates in a few seconds cold (and a
# few tokens warm, thanks to the KV cache), and what a GPU takes in stride.
DEFAULT_BUDGET_CPU_TOKENS = 4096
DEFAULT_BUDGET_GPU_TOKENS = 16384


def default_snippet_limit(budget_tokens: int) -> int:
    """Snippets offered to a prompt of this budget: 8 up to 4k tokens, then one per 256 tokens
    (64 at 16k, 128 at 32k), so that a large budget is filled with repository context."""
    return max(8, min(budget_tokens // 256, 128)) if budget_tokens > 4096 else 8


@dataclass(frozen=True)
class EngineConfig:
    model_path: str | None = None  # in-process GGUF; with `endpoint`, only its tokenizer is used
    endpoint: str | None = None  # OpenAI-compatible server (llama.cpp server, vLLM, Ollama) instead
    endpoint_api: str = "auto"  # infill (llama.cpp server's /infill), completions (/v1/completions), auto: probe
    remote_model: str | None = None  # model name sent to the endpoint (default: its first model)
    template: str | None = None  # FIM family for an endpoint without a local GGUF (default qwen2.5-coder)
    budget_tokens: int | None = None  # None: from the model's context length and the hardware
    max_tokens: int = 64  # generated tokens per completion
    max_lines: int = 8  # lines of a multi-line completion
    timeout_s: float = 10.0  # generation time limit
    snippet_limit: int | None = None  # retrieved snippets offered to the prompt; None: from the budget
    n_gpu_layers: int | None = None  # None: all layers when the build can offload, else 0
    n_threads: int | None = None  # None: all cores
    flash_attn: bool | None = None  # None: on (llama.cpp's CPU kernels are faster with it; q8_0 KV needs it)
    kv_cache_type: str = "auto"  # f16, q8_0, or auto: f16 unless it would take over a quarter of RAM
    candidates: int = 3  # completions offered in a completion list (inline ghost text shows one)
