"""A shared index: vectors exported from one checkout, imported into another at another commit,
with the real packaged MiniLM on onnxruntime and the real command line."""

from __future__ import annotations

import re
import shutil
import sqlite3
from pathlib import Path

import pytest

from lsp_server.cli import main

BACKEND = ["--embedding-backend", "onnx"]


def summary(stderr: str) -> tuple[int, int]:
    """(chunks embedded, chunks from the cache) of the last index summary printed."""
    found = re.findall(r"(\d+) embedded, (\d+) from cache", stderr)
    assert found, stderr
    return int(found[-1][0]), int(found[-1][1])


def test_a_checkout_at_another_commit_embeds_only_what_the_shared_file_lacks(
    tiny_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ci = tmp_path / "ci-checkout"
    shutil.copytree(tiny_repo, ci)
    shared = tmp_path / "shared.kbv"
    assert main(["index", "export", str(shared), str(ci), "-q", *BACKEND]) == 0
    err = capsys.readouterr().err
    exported = int(re.search(r"exported (\d+) vectors of all-MiniLM-L6-v2@128 \(384 dimensions\)", err)[1])  # type: ignore[index]
    assert exported > 10

    # Another machine, another commit: one function changed, one file added.
    mine = tmp_path / "my-checkout"
    shutil.copytree(tiny_repo, mine)
    cart = mine / "shop" / "cart.py"
    cart.write_text(cart.read_text().replace("class Cart:", "class Cart:\n    MAX_LINES = 99\n", 1))
    (mine / "shop" / "returns.py").write_text(
        "def refund(order: dict) -> float:\n    return -order['total']\n"
    )
    assert main(["index", "import", str(shared), str(mine), "-q", *BACKEND]) == 0
    err = capsys.readouterr().err
    assert f"imported {exported} new vectors of all-MiniLM-L6-v2@128" in err
    embedded, cached = summary(err)
    assert 1 <= embedded <= 3  # the changed class's chunk(s) and the new file: the rest came from the file
    assert cached >= exported - 2

    # Without the file, the same checkout embeds everything.
    alone = tmp_path / "alone"
    shutil.copytree(mine, alone, ignore=shutil.ignore_patterns(".code-kb"))
    assert main(["reindex", str(alone), "-q", *BACKEND]) == 0
    assert summary(capsys.readouterr().err)[0] > exported // 2


def test_vectors_of_another_size_under_the_same_name_are_refused(
    tiny_repo: Path, tmp_path: Path, capsys
) -> None:
    shared = tmp_path / "shared.kbv"
    assert main(["index", "export", str(shared), str(tiny_repo), "-q", *BACKEND]) == 0
    db = sqlite3.connect(shared)
    with db:
        db.execute("UPDATE meta SET value = '768' WHERE key = 'dim:all-MiniLM-L6-v2@128'")
    db.close()
    capsys.readouterr()
    assert main(["index", "import", str(shared), str(tiny_repo), "-q", *BACKEND]) == 1
    assert (
        "holds 768-dimensional vectors of all-MiniLM-L6-v2@128, this index 384-dimensional"
        in capsys.readouterr().err
    )


def test_a_file_that_is_no_export_says_how_to_make_one(tiny_repo: Path, tmp_path: Path, capsys) -> None:
    bogus = tmp_path / "bogus.kbv"
    bogus.write_text("not sqlite")
    assert main(["index", "import", str(bogus), str(tiny_repo), "-q", *BACKEND]) == 1
    assert "is no code-kb embeddings file" in capsys.readouterr().err
