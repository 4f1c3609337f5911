"""The index's knobs, fully defaulted. Imports nothing heavy: the server reads it before anything loads."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

DEFAULT_EMBEDDING_MODEL = "all-MiniLM-L6-v2"
# How the embedding model runs: auto (the fastest measured here whose vectors agree with torch's),
# torch (sentence-transformers), onnx (onnxruntime, fp32), onnx-int8 (onnxruntime, int8 weights),
# openvino (OpenVINO, the same fp32 graph as onnx).
EmbeddingBackend = Literal["auto", "torch", "onnx", "onnx-int8", "openvino"]
EMBEDDING_BACKENDS: tuple[str, ...] = get_args(EmbeddingBackend)
INT8_SUFFIX = "+int8"  # int8 vectors differ from torch's beyond float noise: their own cache key
# Chunk texts are embedded from their first this many tokens: all-MiniLM-L6-v2 was trained on
# 128-token texts (its sentence-transformers limit is 256), and embedding at most 128 tokens takes
# half the time on code chunks, with the same definition recall (benchmarks/README.md).
DEFAULT_EMBEDDING_MAX_TOKENS = 128


def embedding_key(model: str, max_tokens: int) -> str:
    """The cache key of a local model's vectors: `MODEL@N` for texts cut at N tokens (0: at the
    model's own limit, the plain name)."""
    return f"{model}@{max_tokens}" if max_tokens > 0 else model


@dataclass(frozen=True)
class IndexConfig:
    index_dir: Path | None = None  # default: ROOT/.code-kb
    embedding_model: str = DEFAULT_EMBEDDING_MODEL
    embedding_backend: str = "auto"  # one of EMBEDDING_BACKENDS
    embedding_max_tokens: int = DEFAULT_EMBEDDING_MAX_TOKENS  # per text, for a local model; 0: its own limit
    embedding_endpoint: str | None = None  # an OpenAI-compatible /v1/embeddings server instead
    embedding_endpoint_model: str | None = None  # the model asked of it (default: its first)
    max_file_bytes: int = 1_000_000
    window_lines: int = 40
    max_chunk_lines: int = 80
    top_k: int = 8
    query_lines: int = 4  # lines above the cursor's line that, with it, make the dense query
    cursor_margin_lines: int = 30  # the current file's chunks this close to the cursor are not retrieved
    extra_ignores: tuple[str, ...] = ()
    deny_patterns: tuple[str, ...] = ()  # gitignore patterns treated as secrets: never indexed nor prompted
    secret_patterns: tuple[str, ...] = ()  # regular expressions masked like detected inline secrets
    ivf_threshold: int = 50_000  # vectors; below it search is exact, above it approximate (IVF)
    max_files: int = 25_000  # a folder with more indexable files is refused, with a message saying so

    def directory_for(self, root: Path) -> Path:
        """ROOT/.code-kb, or the user's cache folder for a folder code-kb cannot or should not write
        into (read-only, system or home folder), unless `index_dir` says where."""
        if self.index_dir is not None:
            return self.index_dir.resolve()
        from .folders import cache_index_dir, writable_here

        root = root.resolve()
        return (root / ".code-kb").resolve() if writable_here(root) else cache_index_dir(root)
