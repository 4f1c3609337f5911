"""Index bookkeeping: incremental updates, repair and locking (hash embedder: counts are what matter)."""

import sqlite3
import threading
from pathlib import Path

import pytest

from retrieval import CodeIndex, IndexConfig, IndexLockedError
from retrieval.lock import write_lock
from retrieval.store import Store
from tests.fixtures.hash_embedder import HashEmbedder

# .gitignore, docs/notes.txt and the five shop modules; not build/, *.log, binary or huge files.
INDEXED_FILES = 7


def make(root: Path, embedder: HashEmbedder) -> CodeIndex:
    return CodeIndex(root, IndexConfig(), embedder=embedder)


def test_first_index_then_unchanged_reindex_embeds_nothing(tiny_repo: Path, hash_embedder: HashEmbedder):
    index = make(tiny_repo, hash_embedder)
    first = index.reindex()
    assert first.files_changed == first.files_seen == INDEXED_FILES
    assert first.chunks_total == len(index) > 0
    assert (tiny_repo / ".code-kb" / "index.sqlite3").is_file()
    assert (tiny_repo / ".code-kb" / "vectors.faiss").is_file()
    embedded = len(hash_embedder.embedded)
    assert embedded == first.chunks_embedded > 0

    again = make(tiny_repo, hash_embedder).reindex()
    assert (again.files_changed, again.chunks_embedded) == (0, 0)
    assert len(hash_embedder.embedded) == embedded


def test_events_about_the_index_itself_write_nothing(tiny_repo: Path, hash_embedder: HashEmbedder):
    # An editor watching every file reports our own writes; answering them with writes loops forever.
    index = make(tiny_repo, hash_embedder)
    index.reindex()
    own = sorted((tiny_repo / ".code-kb").iterdir())
    before = {p.name: (p.stat().st_mtime_ns, p.stat().st_size) for p in own}
    stats = index.update_files(own)
    assert (stats.files_seen, stats.files_changed, stats.files_removed) == (0, 0, 0)
    assert {
        p.name: (p.stat().st_mtime_ns, p.stat().st_size) for p in sorted((tiny_repo / ".code-kb").iterdir())
    } == before
    # Ignored files and unchanged files write nothing to the database either (only the lock file).
    index.update_files([tiny_repo / "build" / "generated.py", tiny_repo / "shop" / "cart.py"])
    after = {p.name: (p.stat().st_mtime_ns, p.stat().st_size) for p in (tiny_repo / ".code-kb").iterdir()}
    assert {k: v for k, v in after.items() if k != "lock"} == {k: v for k, v in before.items() if k != "lock"}


def test_touched_but_identical_file_is_not_reembedded(tiny_repo: Path, hash_embedder: HashEmbedder):
    index = make(tiny_repo, hash_embedder)
    index.reindex()
    before = len(hash_embedder.embedded)
    path = tiny_repo / "shop" / "cart.py"
    path.write_text(path.read_text())  # new mtime, same bytes
    stats = index.reindex()
    assert stats.chunks_embedded == 0
    assert len(hash_embedder.embedded) == before


def test_edit_embeds_only_new_chunks_and_keeps_vectors_consistent(
    tiny_repo: Path, hash_embedder: HashEmbedder
):
    index = make(tiny_repo, hash_embedder)
    index.reindex()
    hash_embedder.embedded.clear()
    path = tiny_repo / "shop" / "inventory.py"
    path.write_text(path.read_text() + "\n\ndef audit(inventory):\n    return sorted(inventory.stock)\n")
    stats = index.reindex()
    assert stats.files_changed == 1 and stats.changed_paths == ["shop/inventory.py"]
    # Only the new function's chunk is new text; the class chunk comes from the cache.
    assert stats.chunks_embedded == 1
    assert "def audit" in hash_embedder.embedded[0]
    assert index.store.vectors.ntotal == len(index)
    hits = index.search("audit inventory stock sorted", k=20)
    assert any(h.name == "audit" for h in hits)


def test_deleted_file_leaves_index_and_search(tiny_repo: Path, hash_embedder: HashEmbedder):
    index = make(tiny_repo, hash_embedder)
    index.reindex()
    (tiny_repo / "shop" / "pricing.py").unlink()
    stats = index.reindex()
    assert stats.files_removed == 1
    assert index.store.vectors.ntotal == len(index)
    assert all(h.path != "shop/pricing.py" for h in index.search("apply discount percent tax", k=50))


def test_corrupt_vector_file_is_rebuilt_without_embedding(
    tiny_repo: Path, hash_embedder: HashEmbedder, caplog
):
    make(tiny_repo, hash_embedder).reindex()
    (tiny_repo / ".code-kb" / "vectors.faiss").write_bytes(b"garbage")
    hash_embedder.embedded.clear()
    index = make(tiny_repo, hash_embedder)
    assert index.store.vectors.ntotal == len(index) > 0
    assert hash_embedder.embedded == []  # rebuilt from the cached embeddings
    assert any("rebuilding" in r.message for r in caplog.records)


def test_corrupt_database_is_rebuilt(tiny_repo: Path, hash_embedder: HashEmbedder, caplog):
    first = make(tiny_repo, hash_embedder)
    first.reindex()
    first.close()  # SQLite shares open files within a process: damage it as another process would
    db = tiny_repo / ".code-kb" / "index.sqlite3"
    for extra in ("-wal", "-shm"):
        Path(str(db) + extra).unlink(missing_ok=True)
    db.write_bytes(b"this is not a database" * 100)
    index = make(tiny_repo, hash_embedder)
    stats = index.reindex()
    assert stats.files_changed == INDEXED_FILES and len(index) > 0
    assert any("unreadable" in r.message for r in caplog.records)


def test_other_embedding_model_or_schema_rebuilds(tiny_repo: Path, caplog):
    make(tiny_repo, HashEmbedder("model-a")).reindex()
    other = HashEmbedder("model-b")
    stats = make(tiny_repo, other).reindex()
    assert stats.files_changed == INDEXED_FILES and stats.chunks_embedded > 0
    db = sqlite3.connect(tiny_repo / ".code-kb" / "index.sqlite3")
    with db:
        db.execute("UPDATE meta SET value = '0' WHERE key = 'schema_version'")
    db.close()
    stats = make(tiny_repo, other).reindex()
    assert stats.files_changed == INDEXED_FILES
    assert any("schema 0" in r.message for r in caplog.records)


def test_write_lock_keeps_a_second_writer_out(tmp_path: Path):
    held = threading.Event()
    release = threading.Event()

    def holder():
        with write_lock(tmp_path):
            held.set()
            release.wait(10)

    t = threading.Thread(target=holder)
    t.start()
    held.wait(10)
    try:
        # flock is per open file description, so a second open in this process contends too.
        with pytest.raises(IndexLockedError, match="being written by pid"):
            with write_lock(tmp_path, wait_s=0.3):
                pass
    finally:
        release.set()
        t.join()
    with write_lock(tmp_path, wait_s=0.3):
        pass


def test_store_keeps_the_index_out_of_git(tmp_path: Path):
    Store(tmp_path / ".code-kb", "hash-16").close()
    assert (tmp_path / ".code-kb" / ".gitignore").read_text().strip().endswith("*")


def test_update_files_handles_changed_new_deleted_and_ignored_paths(
    tiny_repo: Path, hash_embedder: HashEmbedder
):
    index = make(tiny_repo, hash_embedder)
    index.reindex()
    (tiny_repo / "shop" / "refunds.py").write_text("def refund(order):\n    return order.total\n")
    (tiny_repo / "shop" / "pricing.py").unlink()
    (tiny_repo / "build" / "out.py").write_text("def generated():\n    pass\n")  # ignored by .gitignore
    cart = tiny_repo / "shop" / "cart.py"
    cart.write_text(cart.read_text().replace("def subtotal", "def sub_total"))
    stats = index.update_files(
        [
            "shop/refunds.py",
            tiny_repo / "shop" / "pricing.py",
            "build/out.py",
            str(cart),
            "/elsewhere/outside.py",
        ]
    )
    assert sorted(stats.changed_paths) == ["shop/cart.py", "shop/pricing.py", "shop/refunds.py"]
    assert (stats.files_changed, stats.files_removed) == (2, 1)
    paths = {h.path for h in index.search("refund order total cart subtotal", k=50)}
    assert "shop/refunds.py" in paths and "shop/pricing.py" not in paths and "build/out.py" not in paths
    assert index.store.vectors.ntotal == len(index)


class GatedEmbedder(HashEmbedder):
    """Blocks the indexing thread inside embed() until released, after the first batch."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self.entered = threading.Event()
        self.release = threading.Event()

    def embed(self, texts):
        self.calls += 1
        if self.calls == 2 and len(texts) > 1:  # call 1 is the search below; 2 the indexing batch
            self.entered.set()
            self.release.wait(30)
        return super().embed(texts)


def test_search_answers_while_a_long_index_is_embedding(tiny_repo: Path):
    embedder = GatedEmbedder()
    index = make(tiny_repo, embedder)
    assert index.search("anything at all", k=3) == []  # empty index, store opened
    worker = threading.Thread(target=index.reindex)
    worker.start()
    try:
        assert embedder.entered.wait(30)
        assert index.search("discount", k=3) == []  # nothing committed yet
        # The search returned while the indexer is still held inside embed(): it did not wait for it.
        assert worker.is_alive() and not embedder.release.is_set()
    finally:
        embedder.release.set()
        worker.join()
    assert index.search("discount price", k=3)


def test_large_index_switches_to_ivf_and_back(tiny_repo: Path, hash_embedder: HashEmbedder):
    for i in range(30):  # enough chunks to cross a low threshold
        (tiny_repo / "shop" / f"gen_{i}.py").write_text(
            f"def generated_{i}(value):\n    return value * {i}\n"
        )
    index = CodeIndex(tiny_repo, IndexConfig(ivf_threshold=30), embedder=hash_embedder)
    stats = index.reindex()
    assert stats.chunks_total >= 30
    info = index.describe()
    assert info["faiss"].startswith("IVF") and info["vectors"] == info["chunks"]
    hits = index.search("shop gen py function generated_ def generated_(value):\n    return value *", k=5)
    assert len(hits) == 5 and hits[0].path.startswith("shop/gen_")
    # Deleting most files shrinks it below half the threshold: exact search again.
    for i in range(30):
        (tiny_repo / "shop" / f"gen_{i}.py").unlink()
    index.reindex()
    assert index.describe()["faiss"] == "flat inner product (exact)"
    assert index.store.vectors.ntotal == len(index)
    # Reopened from disk, it is consistent and not rebuilt.
    index.close()
    again = CodeIndex(tiny_repo, IndexConfig(ivf_threshold=30), embedder=hash_embedder)
    assert again.describe()["vectors"] == again.describe()["chunks"]


def test_rename_reuses_the_cached_embeddings(tiny_repo: Path, hash_embedder: HashEmbedder):
    index = make(tiny_repo, hash_embedder)
    index.reindex()
    hash_embedder.embedded.clear()
    (tiny_repo / "shop" / "pricing.py").rename(tiny_repo / "shop" / "prices.py")
    stats = index.reindex()
    assert (stats.files_removed, stats.files_changed, stats.chunks_embedded) == (1, 1, 0)
    assert hash_embedder.embedded == []
    assert {h.path for h in index.lexical_search("apply_discount", 5)} == {"shop/prices.py", "shop/cart.py"}
