"""On-disk index: SQLite for files, chunks and cached embeddings; FAISS for vector search.

SQLite is the source of truth and is written in transactions: its schema and rows live here. The
FAISS file (vectors.py) is derived from it and replaced atomically (temp file + rename); when it is
missing, unreadable or out of step with SQLite it is rebuilt from the cached embeddings, which costs
no model call. A store from another schema version or embedding model, or one that fails the checks
of integrity.py, is discarded and rebuilt. The folder and its write lock are lock.py's.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from . import integrity, vectors
from .chunking import Chunk
from .errors import IndexWriteError
from .graph import Definition, FileGraph, Import
from .lexical import FTS_TOKENIZER, identifier_tokens, match_query
from .lock import ELSEWHERE, private_dir
from .symbols import definitions

log = logging.getLogger(__name__)

DB_NAME = "index.sqlite3"
SCHEMA_VERSION = 4  # 2: the lexical (FTS5) table; 3: the symbol table; 4: the symbol graph

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY, hash TEXT NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT, path TEXT NOT NULL,
    start_line INTEGER NOT NULL, end_line INTEGER NOT NULL,
    start_byte INTEGER NOT NULL, end_byte INTEGER NOT NULL,
    kind TEXT NOT NULL, name TEXT NOT NULL, text TEXT NOT NULL, text_hash TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS chunks_path ON chunks(path);
CREATE VIRTUAL TABLE IF NOT EXISTS lexical USING fts5(tokens, tokenize="{tokenizer}");
CREATE TABLE IF NOT EXISTS symbols (
    name TEXT NOT NULL, qualified TEXT NOT NULL, kind TEXT NOT NULL, path TEXT NOT NULL,
    line INTEGER NOT NULL, signature TEXT NOT NULL, chunk_id INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS symbols_name ON symbols(name);
CREATE INDEX IF NOT EXISTS symbols_chunk ON symbols(chunk_id);
CREATE TABLE IF NOT EXISTS graph_files (
    path TEXT PRIMARY KEY, language TEXT NOT NULL, package TEXT NOT NULL,
    has_exports INTEGER NOT NULL, exports TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS graph_definitions (
    path TEXT NOT NULL, name TEXT NOT NULL, container TEXT NOT NULL, kind TEXT NOT NULL,
    start_line INTEGER NOT NULL, end_line INTEGER NOT NULL, signature TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS graph_definitions_path ON graph_definitions(path);
CREATE INDEX IF NOT EXISTS graph_definitions_name ON graph_definitions(name);
CREATE TABLE IF NOT EXISTS graph_imports (
    path TEXT NOT NULL, kind TEXT NOT NULL, module TEXT NOT NULL, name TEXT NOT NULL,
    alias TEXT NOT NULL, line INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS graph_imports_path ON graph_imports(path);
CREATE TABLE IF NOT EXISTS embeddings (
    model TEXT NOT NULL, text_hash TEXT NOT NULL, vector BLOB NOT NULL,
    PRIMARY KEY (model, text_hash));
"""


# What is derived from the files (all but the embedding cache and meta).
_DERIVED_TABLES = (
    "files",
    "chunks",
    "lexical",
    "symbols",
    "graph_files",
    "graph_definitions",
    "graph_imports",
)


@dataclass(frozen=True)
class FileRecord:
    path: str
    hash: str
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class StoredChunk:
    id: int
    path: str
    start_line: int
    end_line: int
    kind: str
    name: str
    text: str


def schema_sql() -> str:
    """The schema as this code writes it (what `integrity.schema_check` compares a stored one with)."""
    return _SCHEMA.replace("{tokenizer}", FTS_TOKENIZER)


class Store:
    """One index directory. Not thread-safe by itself: `CodeIndex` serialises access."""

    def __init__(self, directory: Path, embedding_model: str, ivf_threshold: int = 50_000) -> None:
        self.directory = directory
        self.embedding_model = embedding_model
        self.ivf_threshold = ivf_threshold
        self.read_only = False  # set when the folder or database cannot be written: searches only
        private_dir(directory)
        ignore = directory / ".gitignore"
        if not ignore.exists():
            try:
                ignore.write_text("# code-kb index: derived data, never commit it\n*\n")
            except OSError as exc:
                log.warning("cannot write %s: %s", ignore, exc)
        self.db = self._open_db()
        self.vectors: faiss.Index | None = None

    # -- SQLite -----------------------------------------------------------------
    def _open_db(self) -> sqlite3.Connection:
        path = self.directory / DB_NAME
        try:
            db = self._connect(path)
            found = read_meta(db)
        except (sqlite3.DatabaseError, UnicodeDecodeError, OSError) as exc:
            # Damage (e.g. a schema whose text no longer decodes, or names a column wrongly): rebuild.
            if not isinstance(exc, OSError) and integrity.is_damage(exc):
                log.warning("index at %s is unreadable (%s); rebuilding it", path, exc)
                return self._fresh_db(path)
            # Cannot open or write (a read-only folder or file, no space for the journal): not damage.
            # Keep the index and serve it read-only; writing it later reports what to do.
            read_only = self._connect_read_only(path, exc)
            if read_only is not None:
                return read_only
            raise IndexWriteError(
                f"cannot open the index at {self.directory} ({exc}); make the folder "
                f"writable, free disk space, or {ELSEWHERE}"
            ) from exc
        if not found:
            return self._init_meta(db)
        if found.get("schema_version") == "3" and found.get("embedding_model") == self.embedding_model:
            db = self._migrate_from_3(db)
            found = read_meta(db)
        if (
            found.get("schema_version") == str(SCHEMA_VERSION)
            and found.get("embedding_model") != self.embedding_model
        ):
            return self._switch_model(db, found.get("embedding_model"))
        if found.get("schema_version") != str(SCHEMA_VERSION):
            log.warning(
                "index at %s is schema %s with embedding model %s; this code-kb wants schema %d with %s: rebuilding",
                self.directory,
                found.get("schema_version"),
                found.get("embedding_model"),
                SCHEMA_VERSION,
                self.embedding_model,
            )
            db.close()
            return self._fresh_db(path)
        try:
            integrity.schema_check(db)
            integrity.content_check(db)
        except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
            if isinstance(exc, sqlite3.OperationalError) and not integrity.is_damage(exc):
                # Busy past the timeout (another process writing) or the like: the checks are skipped
                # this time rather than an intact index thrown away.
                log.warning("index at %s could not be checked (%s); using it unchecked", path, exc)
                return db
            log.warning("index at %s is damaged (%s); rebuilding it", path, exc)
            db.close()
            return self._fresh_db(path)
        return db

    def reset_vectors(self, dim: int) -> None:
        """Vectors of a new size under the same model name: every row derived from them goes, with
        that model's cached vectors (they are of the old size); the files are indexed again."""
        with self.db:
            for table in _DERIVED_TABLES:
                self.db.execute(f"DELETE FROM {table}")  # noqa: S608  (names from a constant)
            self.db.execute("DELETE FROM embeddings WHERE model = ?", (self.embedding_model,))
            self.db.execute("DELETE FROM meta WHERE key NOT IN ('schema_version', 'embedding_model')")
        vectors.vector_path(self.directory).unlink(missing_ok=True)
        self.vectors = None
        self.load_vectors(dim)

    def _switch_model(self, db: sqlite3.Connection, old: str | None) -> sqlite3.Connection:
        """Another embedding model (or a backend whose vectors differ, which has its own name): every
        chunk is embedded again, but the embedding cache stays, keyed by model, so switching back, or
        to a model whose vectors it holds, costs no model call."""
        try:
            integrity.schema_check(db)
            with db:
                for table in (*_DERIVED_TABLES, "meta"):
                    db.execute(f"DELETE FROM {table}")  # noqa: S608  (names from a constant)
                db.executemany(
                    "INSERT INTO meta VALUES (?, ?)",
                    [("schema_version", str(SCHEMA_VERSION)), ("embedding_model", self.embedding_model)],
                )
        except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
            log.warning("index at %s could not switch models (%s); rebuilding it", self.directory, exc)
            db.close()
            return self._fresh_db(self.directory / DB_NAME)
        vectors.vector_path(self.directory).unlink(missing_ok=True)
        cached = db.execute(
            "SELECT COUNT(*) FROM embeddings WHERE model = ?", (self.embedding_model,)
        ).fetchone()[0]
        log.warning(
            "index at %s was embedded with %s; this code-kb embeds with %s: indexing it again "
            "(%d embeddings of %s are cached)",
            self.directory,
            old,
            self.embedding_model,
            cached,
            self.embedding_model,
        )
        return db

    def _migrate_from_3(self, db: sqlite3.Connection) -> sqlite3.Connection:
        """Schema 3 lacks the symbol graph: add its tables and forget the files' stat records, so the
        next reindex reads every file again (its embeddings stay cached: no model call)."""
        try:
            with db:
                db.executescript(
                    "BEGIN;"
                    + _SCHEMA.replace("{tokenizer}", FTS_TOKENIZER)
                    + f"DELETE FROM files; UPDATE meta SET value = '{SCHEMA_VERSION}' "
                    + "WHERE key = 'schema_version';"
                    + "COMMIT;"
                )
        except sqlite3.DatabaseError as exc:
            log.warning("index at %s could not be upgraded (%s); it will be rebuilt", self.directory, exc)
            return db
        log.info(
            "index at %s upgraded to schema %d (the symbol graph); every file is read again on the "
            "next reindex, embeddings come from the cache",
            self.directory,
            SCHEMA_VERSION,
        )
        return db

    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        if not path.exists():
            # Created readable by the user only; SQLite gives its -wal and -shm files the same mode.
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        db = sqlite3.connect(path, check_same_thread=False, timeout=30)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            # Deleted rows are overwritten, not left in free pages: text replaced because it held a
            # secret (or a file deleted) does not linger in the database file.
            db.execute("PRAGMA secure_delete=ON")
            db.execute("PRAGMA synchronous=NORMAL")
            integrity.integrity_check(db)
        except (sqlite3.DatabaseError, UnicodeDecodeError):
            db.close()
            raise
        return db

    def _connect_read_only(self, path: Path, why: Exception) -> sqlite3.Connection | None:
        """The existing index opened for reading only (immutable: a read-only folder cannot hold the
        WAL's shared-memory file), or None when there is none or it is damaged."""
        if not path.is_file() or path.stat().st_size == 0:
            return None
        try:
            db = sqlite3.connect(f"file:{path}?immutable=1", uri=True, check_same_thread=False)
            integrity.check_database(db, writable=False)
            found = read_meta(db)
        except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
            log.warning("index at %s cannot be opened read-only either: %s", path, exc)
            return None
        if (
            found.get("schema_version") != str(SCHEMA_VERSION)
            or found.get("embedding_model") != self.embedding_model
        ):
            db.close()
            return None
        log.warning("index at %s cannot be written (%s); searching it read-only", self.directory, why)
        self.read_only = True
        return db

    def check_writable(self) -> None:
        if self.read_only:
            raise IndexWriteError(
                f"the index at {self.directory} is read-only; make the folder writable "
                f"or {ELSEWHERE} (searches use the index as it is)"
            )

    def _fresh_db(self, path: Path) -> sqlite3.Connection:
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
        vectors.vector_path(self.directory).unlink(missing_ok=True)
        return self._init_meta(self._connect(path))

    def _init_meta(self, db: sqlite3.Connection) -> sqlite3.Connection:
        with db:
            db.executescript(_SCHEMA.replace("{tokenizer}", FTS_TOKENIZER))
            db.executemany(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                [("schema_version", str(SCHEMA_VERSION)), ("embedding_model", self.embedding_model)],
            )
        return db

    def meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def disk_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.directory.iterdir() if p.is_file())

    def files(self) -> dict[str, FileRecord]:
        rows = self.db.execute("SELECT path, hash, size, mtime_ns FROM files").fetchall()
        return {r[0]: FileRecord(*r) for r in rows}

    def chunk_ids(self, path: str) -> list[int]:
        return [r[0] for r in self.db.execute("SELECT id FROM chunks WHERE path = ?", (path,))]

    def chunk_count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]

    def cached_vectors(self, text_hashes: Iterable[str]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for part, marks in _batches(list(dict.fromkeys(text_hashes))):
            for h, blob in self.db.execute(
                f"SELECT text_hash, vector FROM embeddings WHERE model = ? AND text_hash IN ({marks})",
                [self.embedding_model, *part],
            ):
                out[h] = np.frombuffer(blob, dtype=np.float32)
        return out

    def replace_file(
        self,
        record: FileRecord,
        chunks: list[Chunk],
        new_vectors: dict[str, np.ndarray],
        graph: FileGraph | None = None,
    ) -> tuple[list[int], list[int]]:
        """Swap one file's chunks and its part of the symbol graph in one transaction; returns
        (removed ids, added ids)."""
        with self.db:
            removed = self._drop_chunks(record.path)
            self._drop_graph(record.path)
            if graph is not None:
                self._insert_graph(record.path, graph)
            self.db.executemany(
                "INSERT OR IGNORE INTO embeddings VALUES (?, ?, ?)",
                [(self.embedding_model, h, v.astype(np.float32).tobytes()) for h, v in new_vectors.items()],
            )
            added = []
            for c in chunks:
                cur = self.db.execute(
                    "INSERT INTO chunks (path, start_line, end_line, start_byte, end_byte, kind, name, text, text_hash)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        c.path,
                        c.start_line,
                        c.end_line,
                        c.start_byte,
                        c.end_byte,
                        c.kind,
                        c.name,
                        c.text,
                        c.text_hash,
                    ),
                )
                assert cur.lastrowid is not None  # an INSERT sets it
                added.append(cur.lastrowid)
                self.db.execute(
                    "INSERT INTO lexical (rowid, tokens) VALUES (?, ?)",
                    (cur.lastrowid, " ".join(identifier_tokens(f"{c.path} {c.name}\n{c.text}"))),
                )
                self.db.executemany(
                    "INSERT INTO symbols VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(*d, cur.lastrowid) for d in definitions(c)],
                )
            self.db.execute(
                "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?)",
                (record.path, record.hash, record.size, record.mtime_ns),
            )
        return removed, added

    def replace_graph(self, path: str, graph: FileGraph | None) -> None:
        """Swap one file's part of the symbol graph alone (its chunks unchanged)."""
        with self.db:
            self._drop_graph(path)
            if graph is not None:
                self._insert_graph(path, graph)

    def touch_file(self, record: FileRecord) -> None:
        with self.db:
            self.db.execute(
                "UPDATE files SET size = ?, mtime_ns = ? WHERE path = ?",
                (record.size, record.mtime_ns, record.path),
            )

    def remove_file(self, path: str) -> list[int]:
        with self.db:
            removed = self._drop_chunks(path)
            self._drop_graph(path)
            self.db.execute("DELETE FROM files WHERE path = ?", (path,))
        return removed

    def _drop_chunks(self, path: str) -> list[int]:
        """Delete a file's chunks with their lexical and symbol rows (inside the caller's transaction)."""
        ids = self.chunk_ids(path)
        self.db.execute("DELETE FROM chunks WHERE path = ?", (path,))
        for part, marks in _batches(ids):
            self.db.execute(f"DELETE FROM lexical WHERE rowid IN ({marks})", part)
            self.db.execute(f"DELETE FROM symbols WHERE chunk_id IN ({marks})", part)
        return ids

    def _drop_graph(self, path: str) -> None:
        for table in ("graph_files", "graph_definitions", "graph_imports"):
            self.db.execute(f"DELETE FROM {table} WHERE path = ?", (path,))

    def _insert_graph(self, path: str, graph: FileGraph) -> None:
        exports = graph.exports
        self.db.execute(
            "INSERT INTO graph_files VALUES (?, ?, ?, ?, ?)",
            (path, graph.language, graph.package, int(exports is not None), " ".join(exports or ())),
        )
        self.db.executemany(
            "INSERT INTO graph_definitions VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (path, d.name, d.container, d.kind, d.start_line, d.end_line, d.signature)
                for d in graph.definitions
            ],
        )
        self.db.executemany(
            "INSERT INTO graph_imports VALUES (?, ?, ?, ?, ?, ?)",
            [(path, i.kind, i.module, i.name, i.alias, i.line) for i in graph.imports],
        )

    def graph_file(self, path: str) -> FileGraph | None:
        """One file's graph as indexed (definitions, imports, exports, package), or None."""
        row = self.db.execute(
            "SELECT language, package, has_exports, exports FROM graph_files WHERE path = ?", (path,)
        ).fetchone()
        if row is None:
            return None
        language, package, has_exports, exports = row
        return FileGraph(
            language,
            self.graph_definitions([path]).get(path, []),
            self.graph_imports(path),
            tuple(exports.split()) if has_exports else None,
            package,
        )

    def graph_definitions(self, paths: Iterable[str]) -> dict[str, list[Definition]]:
        """Definitions of these files, in source order."""
        out: dict[str, list[Definition]] = {}
        for part, marks in _batches(list(dict.fromkeys(paths))):
            rows = self.db.execute(
                "SELECT path, name, container, kind, start_line, end_line, signature FROM graph_definitions "
                f"WHERE path IN ({marks}) ORDER BY rowid",
                part,
            )
            for path, *fields in rows:
                out.setdefault(path, []).append(Definition(*fields))
        return out

    def graph_imports(self, path: str) -> list[Import]:
        return [
            Import(*r)
            for r in self.db.execute(
                "SELECT kind, module, name, alias, line FROM graph_imports WHERE path = ? ORDER BY rowid",
                (path,),
            )
        ]

    def graph_containers_with(self, names: Iterable[str], limit: int = 5000) -> dict[tuple[str, str], int]:
        """(path, container) -> how many of `names` it has as members: the types that could be an
        untyped receiver, judged by the attributes the code uses on it."""
        out: dict[tuple[str, str], int] = {}
        for part, marks in _batches(sorted(set(names))):
            for path, container, n in self.db.execute(
                "SELECT path, container, COUNT(DISTINCT name) FROM graph_definitions "
                f"WHERE name IN ({marks}) AND container != '' GROUP BY path, container LIMIT ?",
                [*part, limit],
            ):
                out[(path, container)] = out.get((path, container), 0) + n
        return out

    def definitions_of(self, names: list[str]) -> list[tuple[str, int, str]]:
        """(name, chunk id, signature) of every definition named one of `names`, in the order of `names`."""
        out: list[tuple[str, int, str]] = []
        for part, marks in _batches(names):
            rows = self.db.execute(
                f"SELECT name, chunk_id, signature FROM symbols WHERE name IN ({marks})", part
            ).fetchall()
            order = {n: j for j, n in enumerate(part)}
            out += sorted(rows, key=lambda r: order[r[0]])
        return out

    def token_counts(self, tokens: Iterable[str]) -> dict[str, int]:
        """How many chunks hold each of these lexical tokens (lowercased identifiers): how much the
        repository uses a name. Read from FTS5's own term statistics, through a per-connection
        fts5vocab table (nothing is stored for it)."""
        wanted = sorted({t for t in tokens if t})
        if not wanted:
            return {}
        try:
            if getattr(self, "_vocab_db", None) is not self.db:
                self.db.execute(
                    "CREATE VIRTUAL TABLE IF NOT EXISTS temp.lexical_vocab "
                    "USING fts5vocab(main, lexical, row)"
                )
                self._vocab_db = self.db
            out: dict[str, int] = {}
            for part, marks in _batches(wanted):
                out.update(
                    self.db.execute(
                        f"SELECT term, doc FROM temp.lexical_vocab WHERE term IN ({marks})", part
                    ).fetchall()
                )
            return out
        except sqlite3.Error as e:  # an SQLite without fts5vocab: no usage counts, nothing else lost
            log.debug("token counts unavailable: %s", e)
            return {}

    def lexical_search(self, text: str, limit: int) -> list[tuple[int, float]]:
        """(chunk id, BM25 score; higher is better) for chunks sharing identifiers with `text`."""
        query = match_query(text)
        if query is None:
            return []
        rows = self.db.execute(
            "SELECT rowid, bm25(lexical) FROM lexical WHERE lexical MATCH ? ORDER BY bm25(lexical) LIMIT ?",
            (query, limit),
        ).fetchall()
        return [(int(r[0]), -float(r[1])) for r in rows]

    def chunks_by_id(self, ids: Iterable[int]) -> dict[int, StoredChunk]:
        ids = list(ids)
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self.db.execute(
            f"SELECT id, path, start_line, end_line, kind, name, text FROM chunks WHERE id IN ({marks})", ids
        )
        return {r[0]: StoredChunk(*r) for r in rows}

    def vectors_for(self, ids: list[int]) -> np.ndarray:
        rows = (
            dict(
                self.db.execute(
                    "SELECT c.id, e.vector FROM chunks c JOIN embeddings e ON e.text_hash = c.text_hash AND e.model = ?"
                    f" WHERE c.id IN ({','.join('?' * len(ids))})",
                    [self.embedding_model, *ids],
                ).fetchall()
            )
            if ids
            else {}
        )
        return (
            np.stack([np.frombuffer(rows[i], dtype=np.float32) for i in ids])
            if ids
            else np.zeros((0, 0), np.float32)
        )

    # -- FAISS --------------------------------------------------------------------
    @property
    def loaded(self) -> faiss.Index:
        """The vector index; `load_vectors` has run (CodeIndex.store runs it when it opens the store)."""
        if self.vectors is None:
            raise RuntimeError(f"the vectors of {self.directory} are not loaded")
        return self.vectors

    def remove_vectors(self, ids: list[int]) -> None:
        """Drop these rows' vectors (the ids of removed chunks)."""
        self.loaded.remove_ids(np.asarray(ids, dtype=np.int64))  # type: ignore[arg-type]  # faiss takes arrays

    def load_vectors(self, dim: int) -> faiss.Index:
        """The FAISS index, rebuilt from SQLite when missing, corrupt, inconsistent or of the wrong kind."""
        path = vectors.vector_path(self.directory)
        ids = self._chunk_ids_sorted()
        index = None
        if path.exists():
            try:
                index = vectors.read_vectors(path, self.meta("vectors_sha1"))
            except vectors.VectorFileError as exc:
                log.warning("%s; rebuilding it from the cached embeddings", exc)
        if index is not None and not vectors.holds(index, ids, self.meta("vector_ids"), dim):
            log.warning(
                "vector index %s holds %d vectors of dim %d, expected %d of dim %d; rebuilding it",
                path,
                index.ntotal,
                index.d,
                len(ids),
                dim,
            )
            index = None
        if index is None or self.wants_rebuild(index):
            self.vectors = self._rebuild_vectors(dim, ids)
            if self.read_only:
                return self.vectors
            try:
                self.save_vectors()
            except IndexWriteError as exc:  # the rebuilt index serves from memory; the next load retries
                log.warning("%s", exc)
        else:
            self.vectors = index
        return self.vectors

    def _chunk_ids_sorted(self) -> list[int]:
        return [r[0] for r in self.db.execute("SELECT id FROM chunks ORDER BY id")]

    def wants_rebuild(self, index: faiss.Index) -> bool:
        """Exact search below the threshold; IVF above it, retrained when the index outgrew its training."""
        return vectors.wants_rebuild(index, self.ivf_threshold, int(self.meta("ivf_trained_on") or 0))

    def rebuild_vectors(self) -> None:
        """Re-derive the FAISS index from the cached embeddings (no model call)."""
        assert self.vectors is not None
        self.vectors = self._rebuild_vectors(self.vectors.d, self._chunk_ids_sorted())
        self.save_vectors()

    def _rebuild_vectors(self, dim: int, ids: list[int]) -> faiss.Index:
        index = vectors.build_vectors(dim, ids, self.vectors_for, self.ivf_threshold)
        if vectors.is_ivf(index):
            self.set_meta("ivf_trained_on", str(len(ids)))
        return index

    def describe_vectors(self) -> str:
        return vectors.describe_vectors(self.vectors)

    def save_vectors(self) -> None:
        """Write the FAISS file whole or not at all: a temp file, then an atomic rename."""
        assert self.vectors is not None
        digest = vectors.write_vectors(self.vectors, vectors.vector_path(self.directory))
        self.set_meta("dim", str(self.vectors.d))
        # What the file holds, so a crash between a SQLite commit and this save is noticed on load.
        self.set_meta("vector_ids", vectors.ids_digest(self._chunk_ids_sorted()))
        self.set_meta("vectors_sha1", digest)

    def close(self) -> None:
        self.db.close()


@dataclass(frozen=True)
class IndexCounts:
    files: int
    chunks: int


def read_counts(directory: Path) -> IndexCounts:
    """How many files and chunks the index at `directory` holds, read without changing anything."""
    db = sqlite3.connect(f"file:{directory / DB_NAME}?mode=ro", uri=True)
    try:
        files = db.execute("SELECT COUNT(*) FROM files").fetchone()[0]
        chunks = db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
    finally:
        db.close()
    return IndexCounts(files, chunks)


def _batches(items: list, size: int = 500) -> Iterator[tuple[list, str]]:
    """Slices of `items` small enough for one `IN (...)`, each with its placeholders."""
    for i in range(0, len(items), size):
        part = items[i : i + size]
        yield part, ",".join("?" * len(part))


def read_meta(db: sqlite3.Connection) -> dict[str, str]:
    """The meta table as a dict; empty for a new database that has none yet."""
    if db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").fetchone() is None:
        return {}
    return dict(db.execute("SELECT key, value FROM meta").fetchall())
