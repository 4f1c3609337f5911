"""A shared embedding cache: an index's vectors written to one file and read into other indexes.

Entries are keyed by content: (embedding model, chunk text hash) -> vector, as the index's own cache
is. An index built once (in CI, on a GPU box) is exported; another checkout, at any commit, imports
the file and its next reindex embeds only the chunk texts the file lacks. The file is SQLite, written
to a temporary name and renamed into place, so a reader never sees half of one.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .errors import RetrievalError
from .store import Store

log = logging.getLogger(__name__)

FORMAT = "code-kb-embeddings"
FORMAT_VERSION = "1"


class SharedFileError(RetrievalError):
    """A shared embeddings file that cannot be read or does not fit this index."""


@dataclass(frozen=True)
class ExportStats:
    model: str
    vectors: int
    dim: int
    bytes: int


@dataclass(frozen=True)
class ImportStats:
    models: dict[str, int]  # model -> vectors the file holds
    added: int  # vectors of this index's model not cached before
    matching: int  # vectors of this index's model in the file


def export_vectors(store: Store, out: Path) -> ExportStats:
    """The vectors of the chunks the index holds now (its model's), into `out`."""
    # Each vector looked up by its key from the set of chunk hashes: a join scanned every chunk per
    # vector (84k chunks: minutes instead of under a second).
    rows = store.db.execute(
        "SELECT text_hash, vector FROM embeddings WHERE model = ? AND text_hash IN (SELECT text_hash FROM chunks)",
        (store.embedding_model,),
    ).fetchall()
    dim = len(rows[0][1]) // 4 if rows else int(store.meta("dim") or 0)
    out = out.resolve()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}-", dir=out.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        db = sqlite3.connect(tmp)
        with db:
            db.executescript(
                "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
                "CREATE TABLE embeddings (model TEXT NOT NULL, text_hash TEXT NOT NULL, vector BLOB NOT NULL,"
                " PRIMARY KEY (model, text_hash));"
            )
            db.executemany(
                "INSERT INTO meta VALUES (?, ?)",
                [
                    ("format", FORMAT),
                    ("format_version", FORMAT_VERSION),
                    ("created_at", datetime.now(timezone.utc).isoformat(timespec="seconds")),
                    (f"dim:{store.embedding_model}", str(dim)),
                ],
            )
            db.executemany(
                "INSERT INTO embeddings VALUES (?, ?, ?)", [(store.embedding_model, h, v) for h, v in rows]
            )
        db.close()
        tmp.chmod(0o644)  # meant to be shared: the vectors of chunks, no text
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    log.info("exported %d vectors of %s to %s", len(rows), store.embedding_model, out)
    return ExportStats(store.embedding_model, len(rows), dim, out.stat().st_size)


def import_vectors(store: Store, path: Path) -> ImportStats:
    """The file's vectors into the index's cache (all models: each stays under its own name). Vectors
    of the index's model but of another size are refused: they are of another model."""
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        models = dict(db.execute("SELECT model, COUNT(*) FROM embeddings GROUP BY model").fetchall())
    except sqlite3.DatabaseError as exc:
        raise SharedFileError(
            f"{path} is no code-kb embeddings file ({exc}); make one with code-kb index export"
        ) from exc
    if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
        db.close()
        raise SharedFileError(
            f"{path} is a {meta.get('format')} file of version {meta.get('format_version')}, not "
            f"{FORMAT} {FORMAT_VERSION}; export it again with this code-kb"
        )
    model = store.embedding_model
    theirs = meta.get(f"dim:{model}")
    ours = store.meta("dim")
    if theirs and ours and theirs != ours:
        db.close()
        raise SharedFileError(
            f"{path} holds {theirs}-dimensional vectors of {model}, this index {ours}-dimensional ones: "
            "they come from different models under one name; export it again from an index of this model"
        )
    before = store.db.execute("SELECT COUNT(*) FROM embeddings WHERE model = ?", (model,)).fetchone()[0]
    with store.db:
        for part in _chunks(db.execute("SELECT model, text_hash, vector FROM embeddings")):
            store.db.executemany("INSERT OR IGNORE INTO embeddings VALUES (?, ?, ?)", part)
    db.close()
    after = store.db.execute("SELECT COUNT(*) FROM embeddings WHERE model = ?", (model,)).fetchone()[0]
    if not models.get(model):
        log.warning(
            "%s holds vectors of %s, none of %s, the model this index embeds with; set the embedding "
            "model and backend the file was made with (embeddingModel, embeddingBackend) to use them",
            path,
            ", ".join(models) or "no model",
            model,
        )
    return ImportStats(models, after - before, int(models.get(model, 0)))


def _chunks(cursor: sqlite3.Cursor, size: int = 5000) -> Iterator[list[Any]]:
    while rows := cursor.fetchmany(size):
        yield rows
