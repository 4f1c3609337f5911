"""Faults while the index is written or read: kill -9, corrupt files, a full disk, a read-only folder.

Each ends with the same audit (tests/fixtures/consistency.py): every file the index records holds
exactly the chunks of the content it records, the vectors cover exactly the stored chunks, and,
once a reindex completes, no chunk of an indexable file is missing.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import faiss
import pytest

from retrieval import CodeIndex, IndexConfig, RetrievalError
from retrieval.errors import IndexWriteError
from tests.fixtures.consistency import audit, make_repo, write_module
from tests.fixtures.hash_embedder import HashEmbedder

REPO_ROOT = Path(__file__).resolve().parents[2]


def make(root: Path) -> CodeIndex:
    return CodeIndex(root, IndexConfig(), embedder=HashEmbedder())


def vectors_match_chunks(root: Path) -> None:
    """Opening the index after the fault: FAISS holds one vector per stored chunk, ids and all."""
    index = make(root)
    store = index.store
    ids = sorted(r[0] for r in store.db.execute("SELECT id FROM chunks"))
    held = faiss.downcast_index(store.vectors)
    held_ids = sorted(faiss.vector_to_array(held.id_map).tolist()) if hasattr(held, "id_map") else None
    assert store.vectors.ntotal == len(ids)
    if held_ids is not None:
        assert held_ids == ids
    index.close()


def worker(root: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.fixtures.index_worker", str(root), *extra],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def kill_rounds(root: Path, files: list[Path], versions: dict[str, bytes], rounds: int, seed: int) -> dict:
    """Edit some files, start a reindex, kill -9 it at a random line of its progress; audit each time."""
    rng = random.Random(seed)
    figures = {"rounds": 0, "killed": 0, "finished": 0, "stale": 0}
    for r in range(rounds):
        for path in rng.sample(files, k=len(files) // 5):
            write_module(path, rng.randint(0, 10**9), versions)
        for path in rng.sample(files, k=2):  # some vanish, some come back
            if path.exists():
                path.unlink()
            else:
                write_module(path, rng.randint(0, 10**9), versions)
        proc = worker(root, "--delay-ms", "2")
        target = rng.randint(0, len(files) if r == 0 else len(files) // 5 + 2)  # within the files to read
        lines = 0
        for _ in proc.stdout:  # type: ignore[union-attr]
            lines += 1
            if lines >= target:
                break
        time.sleep(
            rng.random() * 0.05
        )  # anywhere: between files, inside a transaction, during the FAISS save
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        proc.stdout.close()  # type: ignore[union-attr]
        proc.stderr.close()  # type: ignore[union-attr]
        figures["rounds"] += 1
        figures["killed" if proc.returncode == -signal.SIGKILL else "finished"] += 1
        report = audit(root, versions=versions)
        figures["stale"] += len(report.stale)
        assert report.consistent, f"round {r}: {report.stale}"
    vectors_match_chunks(root)  # the restart repairs FAISS from SQLite if the kill hit between the two
    make(root).reindex()
    final = audit(root, expect_complete=True)
    assert final.consistent and final.lost_chunks == 0, (final.stale, final.missing_files)
    figures["lost_chunks"] = final.lost_chunks
    figures["chunks"] = final.chunks
    return figures


def test_kill_9_during_reindex_leaves_a_consistent_index(tmp_path: Path):
    versions: dict[str, bytes] = {}
    root = tmp_path / "repo"
    files = make_repo(root, 150, versions)
    figures = kill_rounds(root, files, versions, rounds=15, seed=7)
    assert figures["killed"] >= 12
    print(f"\nkill -9 of reindex: {figures}")


@pytest.mark.soak
def test_kill_9_during_reindex_soak(tmp_path: Path):
    versions: dict[str, bytes] = {}
    root = tmp_path / "repo"
    files = make_repo(root, 400, versions)
    figures = kill_rounds(root, files, versions, rounds=60, seed=11)
    print(f"\nkill -9 of reindex (soak): {figures}")


def test_kill_9_of_the_code_kb_reindex_command(tmp_path: Path):
    """The real CLI, with the packaged MiniLM: killed once its progress bar moves, then run to the end."""
    versions: dict[str, bytes] = {}
    root = tmp_path / "repo"
    make_repo(root, 60, versions)
    rng = random.Random(3)
    for _ in range(1):  # one: each start loads MiniLM (the soak above repeats the kill many times)
        proc = subprocess.Popen(
            [sys.executable, "-m", "lsp_server", "reindex", str(root)],
            cwd=REPO_ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        seen = b""
        while b"indexing:" not in seen and b"/60" not in seen:  # tqdm's bar on stderr
            chunk = proc.stderr.read1(4096)  # type: ignore[union-attr]
            if not chunk:
                break
            seen += chunk
        time.sleep(rng.random() * 0.5)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        proc.stderr.close()  # type: ignore[union-attr]
        report = audit(root, versions=versions)
        assert report.consistent, report.stale
    done = subprocess.run(
        [sys.executable, "-m", "lsp_server", "reindex", "-q", str(root)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    final = audit(root, expect_complete=True)
    assert final.consistent and final.lost_chunks == 0


CORRUPTIONS = {
    "sqlite truncated": ("index.sqlite3", lambda data: data[: len(data) // 3]),
    "sqlite header only": ("index.sqlite3", lambda data: data[:100]),
    "sqlite garbage": ("index.sqlite3", lambda data: os.urandom(len(data))),
    "sqlite garbage after the header": (
        "index.sqlite3",
        lambda data: data[:4096] + os.urandom(len(data) - 4096),
    ),
    "sqlite empty": ("index.sqlite3", lambda data: b""),
    "faiss truncated": ("vectors.faiss", lambda data: data[: len(data) // 2]),
    "faiss garbage": ("vectors.faiss", lambda data: os.urandom(len(data))),
    "faiss empty": ("vectors.faiss", lambda data: b""),
    # Found by fuzzing: a vector count of 2^44 in the flat index's header made FAISS throw
    # std::bad_alloc (MemoryError), which nothing caught; now the saved digest refuses the file first.
    "faiss header claims 2^44 vectors": ("vectors.faiss", lambda data: _huge_count(data)),
}


def _huge_count(data: bytes) -> bytes:
    at = data.find(b"IxFI") + 16  # fourcc, d (int32), ntotal (int64), then the vector count
    return data[:at] + (1 << 44).to_bytes(8, "little") + data[at + 8 :]


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_corrupt_index_files_are_detected_and_rebuilt(tiny_repo: Path, case: str):
    first = make(tiny_repo)
    first.reindex()
    first.close()
    directory = tiny_repo / ".code-kb"
    name, damage = CORRUPTIONS[case]
    for extra in ("-wal", "-shm"):  # what a clean close leaves: the damage is in the main file
        Path(str(directory / "index.sqlite3") + extra).unlink(missing_ok=True)
    target = directory / name
    target.write_bytes(damage(target.read_bytes()))
    index = make(tiny_repo)
    index.reindex()
    assert index.search("cart total", k=3)
    report = audit(tiny_repo, expect_complete=True)
    assert report.consistent and report.lost_chunks == 0, (report.stale, report.missing_files)
    vectors_match_chunks(tiny_repo)


def test_another_schema_version_is_rebuilt(tiny_repo: Path):
    make(tiny_repo).reindex()
    db = sqlite3.connect(tiny_repo / ".code-kb" / "index.sqlite3")
    with db:
        db.execute("UPDATE meta SET value = '999' WHERE key = 'schema_version'")
        db.execute("DROP TABLE symbols")  # a future schema: tables this code does not know
    db.close()
    make(tiny_repo).reindex()
    report = audit(tiny_repo, expect_complete=True)
    assert report.consistent and report.lost_chunks == 0


def test_checking_an_index_at_open_leaves_it_free_for_another_writer(tiny_repo: Path):
    # The checks at open include FTS5's integrity-check, an INSERT: Python's sqlite3 opens a
    # transaction for it, which would hold the write lock until this process next wrote.
    index = make(tiny_repo)
    index.reindex()
    index.close()
    index = make(tiny_repo)
    assert index.search("cart total", k=3)  # the store is open and checked
    assert not index.store.db.in_transaction
    other = sqlite3.connect(tiny_repo / ".code-kb" / "index.sqlite3", timeout=0.5)
    try:
        other.execute("BEGIN IMMEDIATE")  # "database is locked" after 0.5 s while a write is open
        other.rollback()
    finally:
        other.close()
        index.close()


def test_a_full_disk_fails_the_write_and_keeps_the_previous_index(tmp_path: Path):
    versions: dict[str, bytes] = {}
    root = tmp_path / "repo"
    make_repo(root, 40, versions)
    make(root).reindex()
    before = audit(root, expect_complete=True)
    # Much more to write than the file-size cap allows: every write past it fails with EFBIG.
    for i in range(40, 400):
        write_module(root / "new" / f"mod{i}.py", i, versions)
    limit = (root / ".code-kb" / "index.sqlite3").stat().st_size + 64 * 1024
    result = subprocess.run(
        [sys.executable, "-m", "tests.fixtures.index_worker", str(root), "--fsize-bytes", str(limit)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1, result.stderr[-2000:]
    assert "code-kb: error: cannot write" in result.stderr and "free disk space" in result.stderr
    after = audit(root, versions=versions)
    assert after.consistent, after.stale
    assert after.files >= before.files  # what it had, plus whatever was committed before the disk filled
    vectors_match_chunks(root)
    index = make(root)
    assert index.search("func_3_0", k=3)
    index.reindex()  # space again: it completes
    assert audit(root, expect_complete=True).lost_chunks == 0


def test_a_read_only_index_folder_keeps_serving_and_reports_writes(tmp_path: Path):
    base = Path(tempfile.mkdtemp(prefix="code-kb-readonly-"))
    try:
        os.chmod(base, 0o755)
        root = base / "repo"
        shutil.copytree(REPO_ROOT / "tests" / "fixtures" / "tiny_repo", root)
        index = make(root)
        index.reindex()
        index.close()
        (root / "shop" / "refunds.py").write_text("def refund(order):\n    return -order.total\n")
        for p in [root, *root.rglob("*")]:
            os.chmod(p, 0o755 if p.is_dir() else 0o644)
        directory = root / ".code-kb"
        for p in directory.iterdir():
            os.chmod(p, 0o444)
        os.chmod(directory, 0o555)
        as_nobody = os.geteuid() == 0  # root writes anywhere: be someone who cannot
        if as_nobody:
            os.setegid(65534)
            os.seteuid(65534)
        try:
            index = make(root)
            hits = index.search("cart total", k=3)
            with pytest.raises(IndexWriteError, match="read-only|cannot write"):
                index.reindex()
            assert index.search("cart total", k=3) == hits
            index.close()
        finally:
            if as_nobody:
                os.seteuid(0)
                os.setegid(0)
        assert hits
        os.chmod(directory, 0o700)
        for p in directory.iterdir():
            os.chmod(p, 0o600)
        report = audit(root)
        assert report.consistent and report.files == 7  # as it was: refunds.py was never written
        make(root).reindex()  # writable again: it catches up
        assert audit(root, expect_complete=True).lost_chunks == 0
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_index_folder_and_files_are_private_to_the_user(tiny_repo: Path):
    make(tiny_repo).reindex()
    directory = tiny_repo / ".code-kb"
    assert directory.stat().st_mode & 0o777 == 0o700
    for name in ("index.sqlite3", "vectors.faiss", "lock"):
        assert (directory / name).stat().st_mode & 0o077 == 0, name
    os.chmod(directory, 0o755)  # an index from an older code-kb is tightened when opened
    make(tiny_repo).reindex()
    assert directory.stat().st_mode & 0o777 == 0o700


def test_a_write_error_is_a_retrieval_error_with_advice(tmp_path: Path):
    assert issubclass(IndexWriteError, RetrievalError)
    root = tmp_path / "repo"
    root.mkdir()
    (root / "a.py").write_text("def a():\n    return 1\n")
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the index folder should be\n")
    index = CodeIndex(root, IndexConfig(index_dir=blocker / "index"), embedder=HashEmbedder())
    with pytest.raises(
        IndexWriteError, match="cannot create the index folder .*--index-dir, or the editor's indexDir"
    ):
        index.reindex()


def test_an_index_folder_that_cannot_be_written_is_one_clear_error(tmp_path: Path):
    base = Path(tempfile.mkdtemp(prefix="code-kb-nowrite-"))
    try:
        os.chmod(base, 0o755)
        root = base / "repo"
        root.mkdir(mode=0o755)
        (root / "a.py").write_text("def a():\n    return 1\n")
        os.chmod(root / "a.py", 0o644)
        locked = base / "index"
        locked.mkdir(mode=0o555)  # exists, empty, not ours to write
        as_nobody = os.geteuid() == 0
        if as_nobody:
            os.setegid(65534)
            os.seteuid(65534)
        try:
            index = CodeIndex(root, IndexConfig(index_dir=locked), embedder=HashEmbedder())
            with pytest.raises(IndexWriteError, match="--index-dir, or the editor's indexDir setting"):
                index.reindex()
        finally:
            if as_nobody:
                os.seteuid(0)
                os.setegid(0)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_a_schema_3_index_is_upgraded_with_its_embeddings_kept(tiny_repo: Path):
    from retrieval.store import SCHEMA_VERSION

    make(tiny_repo).reindex()
    db = sqlite3.connect(tiny_repo / ".code-kb" / "index.sqlite3")
    with db:  # the index as the previous release wrote it: no symbol graph
        db.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
        for table in ("graph_files", "graph_definitions", "graph_imports"):
            db.execute(f"DROP TABLE {table}")
    db.close()
    index = make(tiny_repo)
    stats = index.reindex()
    assert index.store.meta("schema_version") == str(SCHEMA_VERSION)
    assert stats.files_changed == stats.files_seen and stats.chunks_embedded == 0  # read again, not embedded
    assert index.graph_of("shop/cart.py").top_level("Cart")
    report = audit(tiny_repo, expect_complete=True)
    assert report.consistent and report.lost_chunks == 0


def test_a_damaged_symbol_graph_row_is_found_at_open_and_rebuilt(tiny_repo: Path):
    make(tiny_repo).reindex()
    db = sqlite3.connect(tiny_repo / ".code-kb" / "index.sqlite3")
    with db:  # a line number that became text: SQLite's own checks pass
        db.execute("UPDATE graph_definitions SET start_line = 'x' WHERE rowid = 1")
    db.close()
    index = make(tiny_repo)
    index.reindex()
    assert all(isinstance(d.start_line, int) for d in index.graph_of("shop/cart.py").definitions)
    report = audit(tiny_repo, expect_complete=True)
    assert report.consistent and report.lost_chunks == 0
