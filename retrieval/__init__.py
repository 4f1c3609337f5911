"""Repository knowledge base: files, chunks, embeddings and search. Knows nothing of LSP or models."""

from .chunking import Chunk, ChunkingConfig, chunk_file
from .embedding import DEFAULT_EMBEDDING_MODEL, Embedder, SentenceTransformerEmbedder
from .errors import IndexLockedError, RetrievalError
from .index import CodeIndex, IndexConfig, ReindexStats, Snippet

__all__ = [
    "Chunk", "ChunkingConfig", "chunk_file", "DEFAULT_EMBEDDING_MODEL", "Embedder",
    "SentenceTransformerEmbedder", "IndexLockedError", "RetrievalError", "CodeIndex",
    "IndexConfig", "ReindexStats", "Snippet",
]
