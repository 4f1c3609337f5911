"""check_index: what `code-kb doctor` reports about an index, on real indexes (SQLite + FAISS) built with
the 16-dim hash embedder. Each damage it names is one the store repairs on the next open."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from retrieval import CodeIndex, IndexConfig
from retrieval.integrity import check_index
from retrieval.store import SCHEMA_VERSION
from tests.fixtures.hash_embedder import HashEmbedder


def build(root: Path) -> Path:
    index = CodeIndex(root, IndexConfig(), embedder=HashEmbedder())
    index.reindex()
    index.close()
    return root / ".code-kb"


def snapshot(directory: Path) -> dict[str, bytes]:
    """The index's files; SQLite's -wal and -shm side files are left out: a read-only reader of a WAL
    database may create them empty, which changes nothing the index holds."""
    return {
        p.name: p.read_bytes()
        for p in sorted(directory.iterdir())
        if p.is_file() and not p.name.endswith(("-wal", "-shm"))
    }


def reopened_is_repaired(root: Path) -> None:
    """Opening and reindexing repairs what check_index found; afterwards it finds nothing."""
    index = CodeIndex(root, IndexConfig(), embedder=HashEmbedder())
    index.reindex()
    index.close()
    assert check_index(root / ".code-kb", "hash-16") == []


def test_a_healthy_index_has_no_problems_and_is_not_changed(tiny_repo: Path):
    directory = build(tiny_repo)
    before = snapshot(directory)
    assert check_index(directory, "hash-16") == []
    assert check_index(directory) == []  # without a model to compare with
    assert snapshot(directory) == before


def test_no_index_yet(tmp_path: Path):
    assert check_index(tmp_path / ".code-kb") == [f"no index at {tmp_path / '.code-kb'}"]


def test_a_deleted_chunk_row_leaves_one_vector_too_many(tiny_repo: Path):
    directory = build(tiny_repo)
    db = sqlite3.connect(directory / "index.sqlite3")
    with db:
        chunks = db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
        db.execute("DELETE FROM chunks WHERE id = (SELECT MAX(id) FROM chunks)")
    db.close()
    assert chunks > 1
    assert check_index(directory, "hash-16") == [f"{chunks} vectors for {chunks - 1} chunks"]
    reopened_is_repaired(tiny_repo)


def test_a_truncated_vector_file_is_named(tiny_repo: Path):
    directory = build(tiny_repo)
    faiss_file = directory / "vectors.faiss"
    faiss_file.write_bytes(faiss_file.read_bytes()[:100])
    problems = check_index(directory, "hash-16")
    assert problems == [f"vector file unreadable (vector index {faiss_file} does not match what was saved)"]
    assert faiss_file.stat().st_size == 100  # reported, not repaired
    reopened_is_repaired(tiny_repo)


def test_a_missing_vector_file(tiny_repo: Path):
    directory = build(tiny_repo)
    (directory / "vectors.faiss").unlink()
    assert check_index(directory, "hash-16") == ["no vector file"]
    reopened_is_repaired(tiny_repo)


def test_a_changed_byte_in_a_chunk_is_damage(tiny_repo: Path):
    directory = build(tiny_repo)
    db_file = directory / "index.sqlite3"
    data = bytearray(db_file.read_bytes())
    at = data.find(b"def apply_discount")
    assert at > 0
    data[at + 4] = ord("X")
    db_file.write_bytes(bytes(data))
    [problem] = check_index(directory, "hash-16")
    assert problem.startswith("damaged (chunk ") and problem.endswith("does not match its hash)")
    assert "shop/pricing.py" in problem
    reopened_is_repaired(tiny_repo)


def test_another_schema_or_embedding_model_is_named(tiny_repo: Path):
    directory = build(tiny_repo)
    assert check_index(directory, "other-model") == ["embedded with hash-16, configured other-model"]
    db = sqlite3.connect(directory / "index.sqlite3")
    with db:
        db.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    db.close()
    assert check_index(directory, "hash-16") == [f"schema 1, this code-kb uses {SCHEMA_VERSION}"]
    reopened_is_repaired(tiny_repo)
