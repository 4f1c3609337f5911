"""Whether a model's KV cache can be reused from one request to the next, read from its GGUF metadata.

The engine keeps what a keystroke did not change in the KV cache and evaluates only the rest
(kv_plan.py). That holds for models whose every layer attends over the whole context with a plain
KV cache. It does not for:

- recurrent models (Mamba, RWKV): one state per sequence, with no per-token entries to keep a
  common prefix of; llama.cpp can roll a state back only a few tokens (`llm_arch_is_recurrent`);
- hybrid models (Jamba, Falcon-H1, Granite 4.0-H, LFM2, Qwen3-Next and Qwen3-Coder-Next, Nemotron-H,
  ...), whose recurrent layers have the same problem (`llm_arch_is_hybrid`);
- sliding-window attention (Gemma 2/3, Mellum2, Cohere2, gpt-oss, ...): llama.cpp's sliding-window
  cache hands the cells of tokens outside the window to new tokens, so a kept prefix may lack the
  entries that the next tokens' sliding-window layers need, and moving cached runs (the engine's
  shifts) is unsafe for the same reason.

For these the engine evaluates every prompt whole (a keystroke re-evaluates the whole prompt) and
gives them a smaller default budget (completer.auto_budget). The architecture lists are llama.cpp's
(src/llama-arch.cpp and the models' hparams loaders in src/models/, llama-cpp-python 0.3.36); an
unknown architecture is judged by its keys: `ssm.*`, `wkv.*` or `shortconv.*` hyperparameters,
`attention.recurrent_layers` or `full_attention_interval` (recurrent layers), and a positive
`attention.sliding_window` or a `sliding_window_pattern` (sliding-window layers).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Literal

CacheKind = Literal["attention", "sliding-window", "recurrent", "hybrid"]

RECURRENT_ARCHITECTURES = frozenset({"mamba", "mamba2", "rwkv6", "rwkv6qwen2", "rwkv7", "arwkv7"})
HYBRID_ARCHITECTURES = frozenset(
    {
        "jamba",
        "falcon-h1",
        "plamo2",
        "granitehybrid",
        "lfm2",
        "lfm2moe",
        "nemotron_h",
        "nemotron_h_moe",
        "qwen3next",
        "kimi-linear",
        "bailingmoe3",
        "kimi-k3",
        "glm5-next",
        "qwen35",
        "qwen35moe",
        "qwen4exp",
        "deepseek4",
        "minimax-01",
    }
)
# Architectures llama.cpp always runs with sliding-window layers (a default window where the key is absent).
ALWAYS_SLIDING = frozenset(
    {
        "gemma2",
        "gemma3n",
        "gemma4",
        "gemma-embedding",
        "cohere2",
        "cohere2moe",
        "gpt-oss",
        "granite_swa",
        "exaone-moe",
        "maple",
        "mimo2",
        "step35",
        "spark2_5",
        "dots3note",
        "muse-glimmer",
        "modern-bert",
    }
)
# ... and those that have them when `<arch>.attention.sliding_window` is positive.
SLIDING_WHEN_SET = frozenset(
    {"gemma3", "mellum", "olmo2", "smallthinker", "plamo3", "afmoe", "exaone4", "phi3", "llama4", "laguna"}
)
# Every n-th layer attends globally, the others in the window, where the GGUF gives no pattern
# (load_swa_pattern's default per architecture).
DEFAULT_PATTERN = {
    "gemma2": 2,
    "gemma3": 6,
    "gemma3n": 5,
    "cohere2": 4,
    "mellum": 4,
    "exaone4": 4,
    "gpt-oss": 2,
}

COST = "a keystroke re-evaluates the whole prompt"


@dataclass(frozen=True)
class CacheReuse:
    """How a model's cache behaves between requests; `why` names the layers that decide it."""

    kind: CacheKind
    why: str

    @property
    def reusable(self) -> bool:
        return self.kind == "attention"

    @property
    def cost(self) -> str:
        """What it costs a user, for status reports; empty for a reusable cache."""
        return "" if self.reusable else COST

    def summary(self) -> str:
        if self.reusable:
            return f"yes: {self.why}"
        return f"no: {self.why}; {COST}"

    def to_dict(self) -> dict:
        return {**asdict(self), "reusable": self.reusable, "cost": self.cost}


def _int(value: object) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None


def _pattern(value: object) -> list[bool] | int | None:
    """`sliding_window_pattern`: an array of per-layer flags (llama-cpp-python gives it as text) or a period."""
    if value is None:
        return None
    text = str(value).strip()
    if text.startswith("["):
        try:
            flags = json.loads(text.lower())  # [true, false] or Python's [True, False]
        except ValueError:
            return None
        return [bool(f) for f in flags] if isinstance(flags, list) else None
    return _int(text)


def _sliding_layers(arch: str, metadata: Mapping[str, object]) -> str:
    """'on N of M layers', where the metadata says."""
    n_layer = _int(metadata.get(f"{arch}.block_count", ""))
    pattern = _pattern(metadata.get(f"{arch}.attention.sliding_window_pattern"))
    if isinstance(pattern, list) and pattern:
        return f" on {sum(pattern)} of {len(pattern)} layers"
    period = pattern if isinstance(pattern, int) else DEFAULT_PATTERN.get(arch)
    if n_layer and period and period > 1:
        return f" on {n_layer - n_layer // period} of {n_layer} layers"
    return ""


def cache_reuse(metadata: Mapping[str, object]) -> CacheReuse:
    """What the GGUF's metadata says about reusing its cache."""
    arch = str(metadata.get("general.architecture", ""))
    keys = [k for k in metadata if k.startswith(f"{arch}.")]
    recurrent_keys = [
        k
        for k in keys
        if k.startswith((f"{arch}.ssm.", f"{arch}.wkv.", f"{arch}.shortconv."))
        or k in (f"{arch}.attention.recurrent_layers", f"{arch}.full_attention_interval")
    ]
    if arch in RECURRENT_ARCHITECTURES:
        return CacheReuse(
            "recurrent", f"{arch}: recurrent layers keep one state per sequence, no per-token cache"
        )
    if arch in HYBRID_ARCHITECTURES or recurrent_keys:
        found = (
            f" ({', '.join(k.removeprefix(arch + '.') for k in recurrent_keys[:3])})"
            if recurrent_keys
            else ""
        )
        return CacheReuse("hybrid", f"{arch}: hybrid, recurrent layers{found} beside attention ones")
    window = _int(metadata.get(f"{arch}.attention.sliding_window", ""))
    has_pattern = f"{arch}.attention.sliding_window_pattern" in metadata
    if arch in ALWAYS_SLIDING or (window and window > 0 and (arch in SLIDING_WHEN_SET or has_pattern)):
        size = f" ({window} tokens)" if window else ""
        return CacheReuse(
            "sliding-window", f"{arch}: sliding-window attention{size}{_sliding_layers(arch, metadata)}"
        )
    return CacheReuse("attention", f"{arch or 'unknown architecture'}: full attention on every layer")
