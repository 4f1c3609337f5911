"""Repository knowledge base: files, chunks, embeddings and search. Knows nothing of LSP or models.

Names load on first use: FAISS, NumPy and tree-sitter cost a tenth of a second to import, which
a language server should not spend before it answers `initialize`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "Chunk": "chunking",
    "ChunkingConfig": "chunking",
    "chunk_file": "chunking",
    "DEFAULT_EMBEDDING_MODEL": "config",
    "IndexConfig": "config",
    "Embedder": "embedding",
    "SentenceTransformerEmbedder": "embedding",
    "IndexLockedError": "errors",
    "RetrievalError": "errors",
    "CodeIndex": "index",
    "ReindexStats": "index",
    "Snippet": "index",
}
__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from .chunking import Chunk, ChunkingConfig, chunk_file
    from .config import DEFAULT_EMBEDDING_MODEL, IndexConfig
    from .embedding import Embedder, SentenceTransformerEmbedder
    from .errors import IndexLockedError, RetrievalError
    from .index import CodeIndex, ReindexStats, Snippet


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value
