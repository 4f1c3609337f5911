"""Damage detection for an index: is the database intact, is it the schema this code writes, do its
rows hold what they claim, and does the vector file hold exactly the stored chunks' vectors.

The store runs these checks when it opens an index and repairs what they find (it rebuilds);
`check_index` runs them read-only and says what it found (`code-kb doctor`).
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
from pathlib import Path

# store opens an index through these checks and these checks read store's schema: both import the
# module rather than its names, so either can be imported first.
from . import store, vectors

log = logging.getLogger(__name__)


def check_index(directory: Path, embedding_model: str | frozenset[str] | None = None) -> list[str]:
    """What is wrong with the index at `directory`, read without changing anything; [] when healthy.

    The checks the store runs when it opens an index and loads its vectors: the database's integrity,
    schema and rows, its schema version and embedding model (when `embedding_model` is given), and
    whether the vector file holds the vectors of exactly the stored chunks. Reports the first thing
    that would make the store rebuild the index."""
    db_path = directory / store.DB_NAME
    if not db_path.is_file():
        return [f"no index at {directory}"]
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        meta = store.read_meta(db)
        version = meta.get("schema_version")
        if version != str(store.SCHEMA_VERSION):
            problems = [f"schema {version}, this code-kb uses {store.SCHEMA_VERSION}"]
        else:
            problems = []
        wanted = {embedding_model} if isinstance(embedding_model, str) else embedding_model
        if wanted is not None and meta.get("embedding_model") not in wanted:
            problems.append(
                f"embedded with {meta.get('embedding_model')}, configured {' or '.join(sorted(wanted))}"
            )
        if problems:  # the store rebuilds such an index whole; its tables are not this schema's
            return problems
        try:
            check_database(db, writable=False)
        except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
            if is_damage(exc):
                return [f"damaged ({exc})"]
            return [f"could not be checked ({exc})"]
        ids = [r[0] for r in db.execute("SELECT id FROM chunks ORDER BY id")]
    except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
        return [f"unreadable ({exc})"]
    finally:
        db.close()
    return _vector_problems(directory, meta, ids)


def _vector_problems(directory: Path, meta: dict[str, str], ids: list[int]) -> list[str]:
    path = vectors.vector_path(directory)
    if not path.is_file():
        return ["no vector file"]
    try:
        index = vectors.read_vectors(path, meta.get("vectors_sha1"))
    except vectors.VectorFileError as exc:
        return [f"vector file unreadable ({exc})"]
    dim = int(meta["dim"]) if "dim" in meta else None
    if vectors.holds(index, ids, meta.get("vector_ids"), dim):
        return []
    if dim is not None and index.d != dim:
        return [f"vector file has {index.d} dimensions, the cached embeddings {dim}"]
    if index.ntotal != len(ids):
        return [f"{index.ntotal} vectors for {len(ids)} chunks"]
    return [f"the vector file's {index.ntotal} vectors are not those of the {len(ids)} stored chunks"]


def check_database(db: sqlite3.Connection, writable: bool = True) -> None:
    """Raise sqlite3.DatabaseError (or UnicodeDecodeError) when the index database is damaged:
    every check the store runs when it opens one (`code-kb doctor` runs them too)."""
    integrity_check(db)
    schema_check(db)
    content_check(db, writable)


def integrity_check(db: sqlite3.Connection) -> None:
    """Raise on a damaged database (integrity_check reports damage as rows, not always as an error).

    integrity_check rather than quick_check: it also finds an index that disagrees with its table
    (the fuzz tests damaged the meta table's key index; quick_check passed and a later lookup failed).
    It took 17-20 ms on pip's 6,560 chunks, quick_check 14."""
    rows = db.execute("PRAGMA integrity_check(3)").fetchall()
    if rows != [("ok",)]:
        raise sqlite3.DatabaseError(f"integrity check failed: {'; '.join(str(r[0]) for r in rows[:3])}")


def _reference_schema() -> dict[str, tuple[str, str, str | None]]:
    """Every object the schema creates, as this SQLite writes it: name -> (type, table, sql)."""
    db = sqlite3.connect(":memory:")
    try:
        db.executescript(store.schema_sql())
        return {
            name: (kind, table, sql)
            for kind, name, table, sql in db.execute("SELECT type, name, tbl_name, sql FROM sqlite_master")
        }
    finally:
        db.close()


def schema_check(db: sqlite3.Connection) -> None:
    """Raise when the stored schema differs from the one this code writes.

    A changed byte in the schema's SQL can still parse (a column renamed) and pass integrity_check;
    queries then fail later with "no such column". The full-text index's own tables are compared
    by name only: another SQLite version may word their SQL differently, and the FTS5 check reads
    through them."""
    want = _reference_schema()
    have = {
        name: (kind, table, sql)
        for kind, name, table, sql in db.execute("SELECT type, name, tbl_name, sql FROM sqlite_master")
    }
    if set(have) != set(want):
        raise sqlite3.DatabaseError(f"schema objects differ: {sorted(set(have) ^ set(want))}")
    for name, found in have.items():
        if found != want[name] and not name.startswith("lexical_"):
            raise sqlite3.DatabaseError(f"schema of {name!r} differs: {found[2]!r}")


# OperationalErrors that say something about the machine (permissions, space, another process),
# not about the index's bytes: the index is kept. Every other error reading it means damage.
_ENVIRONMENT_ERRORS = (
    "unable to open",
    "readonly",
    "read-only",
    "locked",
    "busy",
    "disk i/o",
    "full",
    "permission",
    "out of memory",
    "interrupted",
)


def is_damage(exc: Exception) -> bool:
    """Whether an error reading the index means its bytes are damaged (rather than unwritable)."""
    if isinstance(exc, UnicodeDecodeError) or not isinstance(exc, sqlite3.OperationalError):
        return True
    message = str(exc).lower()
    return not any(word in message for word in _ENVIRONMENT_ERRORS)


# The storage class every column must have; a changed byte in a record's header can turn a text
# into a blob or an integer into a float without SQLite noticing.
_COLUMN_TYPES = {
    "meta": {"key": "text", "value": "text"},
    "files": {"path": "text", "hash": "text", "size": "integer", "mtime_ns": "integer"},
    "chunks": {
        "id": "integer",
        "path": "text",
        "start_line": "integer",
        "end_line": "integer",
        "start_byte": "integer",
        "end_byte": "integer",
        "kind": "text",
        "name": "text",
        "text": "text",
        "text_hash": "text",
    },
    "symbols": {
        "name": "text",
        "qualified": "text",
        "kind": "text",
        "path": "text",
        "line": "integer",
        "signature": "text",
        "chunk_id": "integer",
    },
    "embeddings": {"model": "text", "text_hash": "text", "vector": "blob"},
    "graph_files": {
        "path": "text",
        "language": "text",
        "package": "text",
        "has_exports": "integer",
        "exports": "text",
    },
    "graph_definitions": {
        "path": "text",
        "name": "text",
        "container": "text",
        "kind": "text",
        "start_line": "integer",
        "end_line": "integer",
        "signature": "text",
    },
    "graph_imports": {
        "path": "text",
        "kind": "text",
        "module": "text",
        "name": "text",
        "alias": "text",
        "line": "integer",
    },
}


_INTEGER_META = ("dim", "ivf_trained_on")  # meta values the store and index parse as integers
_SHA1_COLUMNS = {"files": "hash", "chunks": "text_hash", "embeddings": "text_hash"}  # 40 hex digits each


def content_check(db: sqlite3.Connection, writable: bool = True) -> None:
    """Raise when a stored row is damaged in a way SQLite's own checks cannot see.

    SQLite keeps no checksums of its pages: a byte changed inside a row passes integrity_check (the
    fuzz tests overwrote single bytes of chunk texts, hashes, kinds and record headers). So at open:
    every column has its storage class, every text decodes, every chunk's text matches its sha1,
    every stored sha1 is 40 hex digits, every cached vector has one length that matches the stored
    dimension, numbers in meta parse, and the full-text index agrees with itself. On pip's 6,560
    chunks this took 66 ms (median of 9), the whole open of the store 82 ms."""
    for table, columns in _COLUMN_TYPES.items():
        wrong = " OR ".join(f"typeof({col}) != '{kind}'" for col, kind in columns.items())
        row = db.execute(f"SELECT rowid FROM {table} WHERE {wrong} LIMIT 1").fetchone()
        if row is not None:
            raise sqlite3.DatabaseError(f"a row of {table} has a column of the wrong type")
        if table in _SHA1_COLUMNS:  # a damaged file hash would otherwise stand until the file changes
            col = _SHA1_COLUMNS[table]
            if db.execute(
                f"SELECT 1 FROM {table} WHERE length({col}) != 40 OR {col} GLOB '*[^0-9a-f]*' LIMIT 1"
            ).fetchone():
                raise sqlite3.DatabaseError(f"a hash in {table} is not a sha1")
        if table != "chunks":  # the hash pass below decodes every text of chunks
            text_columns = [col for col, kind in columns.items() if kind == "text"]
            for _ in db.execute(f"SELECT {', '.join(text_columns)} FROM {table}"):
                pass  # decoding every text raises on bytes that are not UTF-8
    for chunk_id, path, _kind, _name, text, text_hash in db.execute(
        "SELECT id, path, kind, name, text, text_hash FROM chunks"
    ):
        if hashlib.sha1(text.encode("utf-8")).hexdigest() != text_hash:
            raise sqlite3.DatabaseError(f"chunk {chunk_id} of {path!r} does not match its hash")
    lengths = [n for (n,) in db.execute("SELECT DISTINCT length(vector) FROM embeddings")]
    if len(lengths) > 1:
        raise sqlite3.DatabaseError("cached vectors differ in length")
    meta = store.read_meta(db)
    for key in _INTEGER_META:
        if not meta.get(key, "0").isdecimal():
            raise sqlite3.DatabaseError(f"meta {key!r} is not a number: {meta[key]!r}")
    if "dim" in meta and lengths and lengths[0] != 4 * int(meta["dim"]):  # float32 vectors
        raise sqlite3.DatabaseError(f"meta 'dim' {meta['dim']} does not match the cached vectors")
    if writable:  # a command written as an INSERT; it changes nothing but needs a writable database
        with db:  # and its own transaction: left open, it would hold the write lock against other processes
            db.execute("INSERT INTO lexical(lexical) VALUES ('integrity-check')")
