"""Property-based tests (hypothesis): random and broken source text through every chunker, random
bytes as every index file. Real tree-sitter grammars, real SQLite and FAISS, the hash embedder."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retrieval import CodeIndex, IndexConfig
from retrieval.chunking import ChunkingConfig, chunk_file
from tests.fixtures.consistency import audit
from tests.fixtures.hash_embedder import HashEmbedder

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SOURCES = {p.suffix: p.read_text() for p in (FIXTURES / "languages").iterdir()}
SOURCES[".py"] = (FIXTURES / "tiny_repo" / "shop" / "cart.py").read_text()
SOURCES[".tsx"] = SOURCES[".ts"]
SOURCES[".hpp"] = SOURCES[".cpp"]
SOURCES[".txt"] = (FIXTURES / "tiny_repo" / "docs" / "notes.txt").read_text()
SOURCES[".md"] = "# Title\n\nSome *text*.\n"
EXTENSIONS = sorted(SOURCES)

# Code-ish text: brackets, quotes, keywords, newlines of every kind, tabs, emoji, combining marks.
CODEISH = st.lists(
    st.one_of(
        st.sampled_from(
            list("{}()[]<>;:,.=+-*/\\'\"`#@$%&|!?~^ \t\n\r") + ["\r\n", "\f", "\v", "\u2028", "\x00"]
        ),
        st.sampled_from(
            [
                "def ",
                "class ",
                "fn ",
                "func ",
                "impl ",
                "struct ",
                "return ",
                "if ",
                "template<",
                "namespace ",
                "#ifdef X\n",
                "#endif\n",
                "/*",
                "*/",
                "//",
                '"""',
                "=>",
                "::",
                "    ",
            ]
        ),
        st.characters(codec="utf-8", exclude_categories=["Cs"]),
    ),
    max_size=200,
).map("".join)


def check_chunks(path: str, text: str) -> None:
    chunks = chunk_file(path, text, ChunkingConfig(window_lines=10, max_chunk_lines=12))
    data = text.encode("utf-8")
    last_end = 0
    for c in chunks:
        # Exact byte and line ranges, in order, never overlapping, never beyond the text.
        assert last_end <= c.start_byte <= c.end_byte <= len(data)
        assert data[c.start_byte : c.end_byte].decode("utf-8") == c.text
        assert 0 <= c.start_line <= c.end_line
        last_end = c.end_byte


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ext=st.sampled_from(EXTENSIONS), text=CODEISH)
def test_random_text_through_every_chunker(ext: str, text: str):
    check_chunks(f"src/file{ext}", text)


@settings(max_examples=300, deadline=None)
@given(ext=st.sampled_from(EXTENSIONS), data=st.data())
def test_broken_real_sources_through_every_chunker(ext: str, data):
    """Real code of each language, cut, spliced and garbled: still chunks, still exact ranges."""
    text = SOURCES[ext]
    for _ in range(data.draw(st.integers(1, 4))):
        start = data.draw(st.integers(0, len(text)))
        end = data.draw(st.integers(start, min(len(text), start + 200)))
        text = text[:start] + data.draw(CODEISH.filter(lambda s: len(s) < 40)) + text[end:]
    check_chunks(f"src/file{ext}", text)


@pytest.fixture(scope="module")
def built_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fuzz") / "repo"
    shutil.copytree(FIXTURES / "tiny_repo", root)
    index = CodeIndex(root, IndexConfig(), embedder=HashEmbedder())
    index.reindex()
    index.close()
    return root


INDEX_FILES = ["index.sqlite3", "vectors.faiss", "index.sqlite3-wal", "lock"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=st.sampled_from(INDEX_FILES),
    keep=st.integers(0, 1 << 16),
    noise=st.binary(max_size=4096),
    mode=st.sampled_from(["replace", "truncate+noise", "overwrite-middle"]),
)
def test_random_bytes_as_index_files(
    built_index: Path, tmp_path_factory: pytest.TempPathFactory, name: str, keep: int, noise: bytes, mode: str
):
    root = tmp_path_factory.mktemp("case") / "repo"
    shutil.copytree(built_index, root, symlinks=True)
    target = root / ".code-kb" / name
    original = target.read_bytes() if target.exists() else b""
    if mode == "replace":
        damaged = noise
    elif mode == "truncate+noise":
        damaged = original[:keep] + noise
    else:
        at = keep % max(1, len(original))
        damaged = original[:at] + noise + original[at + len(noise) :]
    target.write_bytes(damaged)
    index = CodeIndex(root, IndexConfig(), embedder=HashEmbedder())
    index.reindex()
    assert index.search("cart total", k=3)
    assert index.store.vectors.ntotal == len(index)
    index.close()
    report = audit(root, expect_complete=True)
    assert report.consistent and report.lost_chunks == 0, (report.stale, report.missing_files)


@pytest.mark.parametrize(
    "where, damage",
    [
        (b"def apply_discount", b"\x80"),  # a chunk's text no longer decodes
        (b"def apply_discount", b"X"),  # a chunk's text no longer matches its sha1
        (b"CREATE TABLE chunks", b"\x80"),  # the schema's SQL no longer decodes
        (b"start_line INTEGER", b"X"),  # a column of chunks renamed: "no such column" on the first search
        (b"value TEXT NOT NULL)", b"X"),  # the meta table's value column renamed
        (b"dim16", b"X"),  # the stored dimension (16) no longer a number: int() failed at open
        (b"dim16", b"7"),  # the stored dimension a number that does not match the cached vectors
        (
            hashlib.sha1((FIXTURES / "tiny_repo" / "shop" / "inventory.py").read_bytes())
            .hexdigest()
            .encode(),
            b"X",
        ),
        # a file's recorded sha1 no longer hex: it stood until the file changed (the soak sweep found it)
    ],
)
def test_a_byte_changed_inside_a_stored_row_is_found_and_rebuilt(
    built_index: Path,
    tmp_path_factory: pytest.TempPathFactory,
    caplog: pytest.LogCaptureFixture,
    where: bytes,
    damage: bytes,
):
    # SQLite has no page checksums: integrity_check passes when a byte of a row's text changes. The
    # hypothesis run above found such cases in CI (a chunk's text, its hash, its kind, the schema's
    # SQL); the checks at open (chunk sha1s, decoding, the schema against the one this code writes)
    # find them and the index is rebuilt instead of failing on a later query.
    root = tmp_path_factory.mktemp("flip") / "repo"
    shutil.copytree(built_index, root, symlinks=True)
    db_file = root / ".code-kb" / "index.sqlite3"
    data = bytearray(db_file.read_bytes())
    at = data.find(where)  # a chunk's text, or the schema's text in SQLite's own table
    assert at > 0
    data[at + 4 : at + 5] = damage
    db_file.write_bytes(bytes(data))
    index = CodeIndex(root, IndexConfig(), embedder=HashEmbedder())
    index.reindex()  # opens the store
    assert any("rebuilding it" in r.getMessage() for r in caplog.records), "the damage was not found"
    assert index.search("apply discount", k=3)
    index.close()
    report = audit(root, expect_complete=True)
    assert report.consistent and report.lost_chunks == 0, (report.stale, report.missing_files)


@pytest.mark.soak
@pytest.mark.parametrize("noise", [b"\x80", b"X", b"\x00\xff\x07"])
def test_index_database_overwritten_at_every_offset_soak(
    built_index: Path, tmp_path_factory: pytest.TempPathFactory, noise: bytes
):
    """The hypothesis test above, systematically: `noise` written over index.sqlite3 at every
    STEP-th offset (CODE_KB_SWEEP_STEP, default 5; 1 is every byte). Each damaged copy must open,
    rebuild what is damaged, answer a search, and pass the consistency audit. About 3 minutes per
    noise at step 5 on 2 cores."""
    step = int(os.environ.get("CODE_KB_SWEEP_STEP", "5"))
    original = (built_index / ".code-kb" / "index.sqlite3").read_bytes()
    failures = []
    for at in range(0, len(original), step):
        root = tmp_path_factory.mktemp("sweep") / "repo"
        shutil.copytree(built_index, root, symlinks=True)
        (root / ".code-kb" / "index.sqlite3").write_bytes(original[:at] + noise + original[at + len(noise) :])
        try:
            index = CodeIndex(root, IndexConfig(), embedder=HashEmbedder())
            index.reindex()
            assert index.search("cart total", k=3)
            assert index.store.vectors.ntotal == len(index)
            index.close()
            report = audit(root, expect_complete=True)
            assert report.consistent and report.lost_chunks == 0, (report.stale, report.missing_files)
        except Exception as exc:  # collected, so one run reports every failing offset
            failures.append(f"offset {at}: {type(exc).__name__}: {exc}"[:300])
        shutil.rmtree(root.parent)
    assert not failures, (
        f"{len(failures)} of {len(range(0, len(original), step))} offsets failed:\n"
        + "\n".join(failures[:20])
    )
