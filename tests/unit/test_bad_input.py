"""What real workspaces throw at the indexer: each case is a logged skip, never a crash, nothing lost.

Real files on disk, the real walker, chunker, SQLite and FAISS; the hash embedder stands in for
MiniLM because these tests are about bookkeeping. Each test ends with an audit of the index
against the tree (tests/fixtures/consistency.py): every recorded file's chunks match its content.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from retrieval import CodeIndex, IndexConfig
from retrieval.files import walk
from tests.fixtures.consistency import audit
from tests.fixtures.hash_embedder import HashEmbedder


def make(root: Path, embedder: HashEmbedder | None = None, **config) -> CodeIndex:
    return CodeIndex(root, IndexConfig(**config), embedder=embedder or HashEmbedder())


def indexed(index: CodeIndex) -> set[str]:
    return set(index.store.files())


def assert_whole(root: Path, **kwargs) -> None:
    report = audit(root, expect_complete=True, **kwargs)
    assert report.consistent, report.stale
    assert report.lost_chunks == 0, report.missing_files


def messages(caplog) -> str:
    return "\n".join(r.getMessage() for r in caplog.records)


def test_binary_invalid_utf8_and_nul_files_are_skipped_with_a_log_line(tiny_repo: Path, caplog):
    caplog.set_level(logging.INFO)
    (tiny_repo / "blob.py").write_bytes(bytes(range(256)) * 4)
    (tiny_repo / "latin1.py").write_bytes("name = 'café'\n".encode("latin-1"))
    # Valid for the first 8 KB that the walker sniffs, invalid after: only a full read finds it.
    (tiny_repo / "late.py").write_bytes(b"x = 1\n" * 3000 + b"y = '\xff\xfe'\n")
    (tiny_repo / "nul.txt").write_bytes(b"text\0with nul\n")
    index = make(tiny_repo)
    index.reindex()
    assert not indexed(index) & {"blob.py", "latin1.py", "late.py", "nul.txt"}
    assert "shop/cart.py" in indexed(index)
    log = messages(caplog)
    for name in ("blob.py", "latin1.py", "late.py", "nul.txt"):
        assert f"skipping {name}" in log
    assert_whole(tiny_repo)


def test_a_file_that_turns_into_invalid_utf8_leaves_the_index(tiny_repo: Path):
    index = make(tiny_repo)
    index.reindex()
    assert "shop/cart.py" in indexed(index)
    path = tiny_repo / "shop" / "cart.py"
    path.write_bytes(path.read_bytes() + b"#" * 9000 + b"\n# \xff\n")  # past the sniffed head
    index.reindex()
    assert "shop/cart.py" not in indexed(index)  # no stale chunks of the old content
    assert_whole(tiny_repo)


def test_a_20_mb_file_is_skipped_and_10k_character_lines_are_indexed(tiny_repo: Path, caplog):
    caplog.set_level(logging.INFO)
    with open(tiny_repo / "data.py", "w") as fh:
        line = "VALUES = [" + ", ".join(["1234567"] * 2_000) + "]\n"  # 18 KB a line
        for _ in range(20_000_000 // len(line) + 1):
            fh.write(line)
    assert (tiny_repo / "data.py").stat().st_size > 20_000_000
    long_lines = "".join(f"def f{i}():\n    return '{'x' * 10_000}'\n\n" for i in range(30))
    (tiny_repo / "long_lines.py").write_text(long_lines)
    index = make(tiny_repo)
    index.reindex()
    assert "data.py" not in indexed(index) and "long_lines.py" in indexed(index)
    assert "skipping data.py" in messages(caplog) and "limit" in messages(caplog)
    hits = index.search("def f3 return", k=3)
    assert hits and all(len(h.text) < 200_000 for h in hits)
    assert_whole(tiny_repo)


def test_symlink_loops_and_links_out_of_the_tree_are_never_followed(tiny_repo: Path, tmp_path: Path, caplog):
    caplog.set_level(logging.INFO)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "leak.py").write_text("OUTSIDE_TOKEN_31337 = 1\n")
    (tiny_repo / "shop" / "loop").symlink_to("..", target_is_directory=True)  # a directory loop
    (tiny_repo / "self.py").symlink_to("self.py")  # a link to itself
    (tiny_repo / "ping.py").symlink_to("pong.py")
    (tiny_repo / "pong.py").symlink_to("ping.py")
    (tiny_repo / "dangling.py").symlink_to("nowhere.py")
    (tiny_repo / "out.py").symlink_to(outside / "leak.py")
    (tiny_repo / "outdir").symlink_to(outside, target_is_directory=True)
    (tiny_repo / "alias.py").symlink_to("shop/cart.py")  # inside the tree: fine
    index = make(tiny_repo)
    index.reindex()
    found = indexed(index)
    assert not found & {"self.py", "ping.py", "pong.py", "dangling.py", "out.py"}
    assert not any(p.startswith(("shop/loop/", "outdir/")) for p in found)
    assert "alias.py" in found
    assert "symlink to outside the tree" in messages(caplog)
    db_bytes = (tiny_repo / ".code-kb" / "index.sqlite3").read_bytes()
    assert b"OUTSIDE_TOKEN_31337" not in db_bytes
    # The same verdicts for paths an editor reports changed one by one.
    index.update_files([tiny_repo / "out.py", tiny_repo / "outdir" / "leak.py", tiny_repo / "ping.py"])
    assert indexed(index) == found
    assert_whole(tiny_repo)


def test_files_that_vanish_or_change_during_indexing(tiny_repo: Path):
    index = make(tiny_repo)
    index.reindex()
    cart, pricing, notes = (
        tiny_repo / "shop" / "cart.py",
        tiny_repo / "shop" / "pricing.py",
        tiny_repo / "docs" / "notes.txt",
    )
    for p in (cart, pricing, notes):  # all three need reading again
        p.write_text(p.read_text() + "\n# touched\n")
    touched = False

    def progress(done: int, total: int, what: str) -> None:
        nonlocal touched
        if done == 0:  # listed, not yet read: one vanishes, one changes
            cart.unlink()
            pricing.write_text(pricing.read_text() + "\ndef late_addition():\n    return 1\n")
        elif not touched and what == "docs/notes.txt":  # read already: it changes behind the indexer
            notes.write_text(notes.read_text() + "\nchanged after it was read\n")
            touched = True

    index.reindex(progress)
    assert touched
    assert "shop/cart.py" not in indexed(index)
    assert any(
        "late_addition" in c.text
        for c in index.store.chunks_by_id(index.store.chunk_ids("shop/pricing.py")).values()
    )
    # notes.txt's record describes what was read; the next pass sees the newer file and catches up.
    stats = index.reindex()
    assert "docs/notes.txt" in stats.changed_paths
    assert_whole(tiny_repo)


def test_unreadable_files_and_folders_are_skipped(tmp_path: Path, caplog):
    caplog.set_level(logging.INFO)
    # Root reads everything: drop to nobody for the walk, in a tree nobody may enter.
    base = Path(tempfile.mkdtemp(prefix="code-kb-unreadable-"))
    try:
        os.chmod(base, 0o777)
        root = base / "repo"
        shutil.copytree(Path(__file__).parents[1] / "fixtures" / "tiny_repo", root)
        (root / "private.py").write_text("PRIVATE_TOKEN = 1\n")
        (root / "closed").mkdir()
        (root / "closed" / "inside.py").write_text("INSIDE_TOKEN = 1\n")
        for p in [root, *root.rglob("*")]:
            os.chmod(p, 0o777 if p.is_dir() else 0o666)
        os.chmod(root / "private.py", 0)
        os.chmod(root / "closed", 0)
        index = make(root)
        index.reindex()  # as root first: loads every module the walk and the chunkers need
        index.close()
        shutil.rmtree(root / ".code-kb")
        as_nobody = os.geteuid() == 0
        if as_nobody:
            os.setegid(65534)
            os.seteuid(65534)
        try:
            index = make(root)
            index.reindex()
            found = indexed(index)
            index.close()
        finally:
            if as_nobody:
                os.seteuid(0)
                os.setegid(0)
        assert "private.py" not in found and not any(p.startswith("closed/") for p in found)
        assert "shop/cart.py" in found
        assert "skipping private.py" in messages(caplog) and "Permission denied" in messages(caplog)
    finally:
        for p in [base, *base.rglob("*")]:
            if not p.is_symlink():
                os.chmod(p, 0o777)
        shutil.rmtree(base)


def test_fifos_and_sockets_in_the_tree_do_not_block_the_walk(tiny_repo: Path):
    os.mkfifo(tiny_repo / "pipe.py")  # opening it for reading would block forever
    found = {f.path for f in walk(tiny_repo, 1_000_000)}
    assert "pipe.py" not in found and "shop/cart.py" in found


def test_an_empty_workspace_indexes_to_nothing_and_answers_searches(tmp_path: Path):
    empty = tmp_path / "empty"
    empty.mkdir()
    index = make(empty)
    stats = index.reindex()
    assert (stats.files_seen, stats.chunks_total) == (0, 0)
    assert index.search("anything", k=5) == [] and index.snippets("a.py", "x = ", 4) == []
    assert index.describe()["chunks"] == 0
    (empty / ".gitignore").write_text("*\n")  # everything ignored: the same
    assert make(empty).reindex().files_seen == 0


@pytest.mark.parametrize("text", ["", "\n", "\0", "\ufeff", "\r\r\r", "\u2028" * 10, "😋" * 1000])
def test_degenerate_file_contents_index(tiny_repo: Path, text: str):
    (tiny_repo / "odd.py").write_text(text, encoding="utf-8")
    index = make(tiny_repo)
    index.reindex()
    assert_whole(tiny_repo)
