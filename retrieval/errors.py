"""Typed, user-fixable retrieval errors: each message says what to do."""


class RetrievalError(Exception):
    """A problem the user can fix (bad path, locked index, missing embedding model)."""


class IndexLockedError(RetrievalError):
    """Another process holds the index's write lock for longer than we wait."""


class IndexWriteError(RetrievalError):
    """The index cannot be written (disk full, read-only folder); the previous one stays in use."""


class EmbeddingModelError(RetrievalError):
    """The configured embedding model cannot be loaded."""


class TooManyFilesError(RetrievalError):
    """A folder brings in more files than the configured cap (maxFiles)."""


class ReindexCancelled(Exception):
    """Indexing stopped because its folder was removed or the index closed; not a problem to report."""
