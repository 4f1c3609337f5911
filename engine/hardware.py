"""What this machine offers a model: memory, and what a model's KV cache will take of it."""

from __future__ import annotations

import os

BYTES_PER_VALUE = {"f16": 2.0, "q8_0": 34 / 32}  # q8_0: blocks of 32 int8 plus one f16 scale


def memory_bytes() -> int | None:
    """Physical memory, or None where the platform does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def kv_cache_bytes(metadata: dict[str, str], n_ctx: int, cache_type: str) -> int | None:
    """Bytes of K and V for `n_ctx` tokens, from a GGUF's hyperparameters; None if they are missing."""
    arch = metadata.get("general.architecture")
    try:
        n_layer = int(metadata[f"{arch}.block_count"])
        n_head = int(metadata[f"{arch}.attention.head_count"])
        n_head_kv = int(metadata.get(f"{arch}.attention.head_count_kv", n_head))
        n_embd = int(metadata[f"{arch}.embedding_length"])
    except (KeyError, ValueError):
        return None
    head_k = int(metadata.get(f"{arch}.attention.key_length", n_embd // n_head))
    head_v = int(metadata.get(f"{arch}.attention.value_length", n_embd // n_head))
    per_token = n_layer * n_head_kv * (head_k + head_v) * BYTES_PER_VALUE[cache_type]
    return int(per_token * n_ctx)
