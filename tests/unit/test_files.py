import logging
from pathlib import Path

from retrieval.files import walk


def paths(root: Path, max_bytes: int = 1_000_000) -> set[str]:
    return {f.path for f in walk(root, max_bytes)}


def test_gitignore_binary_and_huge_files_are_skipped(tiny_repo: Path, caplog):
    caplog.set_level(logging.INFO, logger="retrieval.files")
    found = paths(tiny_repo)
    assert "shop/pricing.py" in found and "docs/notes.txt" in found and ".gitignore" in found
    assert "build/generated.py" not in found  # .gitignore: build/
    assert "debug.log" not in found  # .gitignore: *.log
    assert "logo.dat" not in found and "huge.py" not in found
    assert any("huge.py" in r.message and "limit" in r.message for r in caplog.records)
    assert any("logo.dat" in r.message and "binary" in r.message for r in caplog.records)


def test_nested_gitignore_and_always_ignored_dirs(tiny_repo: Path):
    (tiny_repo / "shop" / ".gitignore").write_text("secret_*.py\n")
    (tiny_repo / "shop" / "secret_keys.py").write_text("KEY = 1\n")
    (tiny_repo / "docs" / "secret_plan.py").write_text("PLAN = 1\n")
    (tiny_repo / ".git").mkdir()
    (tiny_repo / ".git" / "config.py").write_text("x = 1\n")
    (tiny_repo / "node_modules" / "pkg").mkdir(parents=True)
    (tiny_repo / "node_modules" / "pkg" / "index.js").write_text("module.exports = 1\n")
    found = paths(tiny_repo)
    assert "shop/secret_keys.py" not in found
    assert "docs/secret_plan.py" in found  # the rule lives in shop/ and applies only there
    assert not any(p.startswith((".git/", "node_modules/")) for p in found)


def test_symlinked_directories_are_not_followed(tiny_repo: Path, tmp_path: Path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "leak.py").write_text("SECRET = 1\n")
    (tiny_repo / "link").symlink_to(outside, target_is_directory=True)
    assert not any(p.startswith("link/") for p in paths(tiny_repo))
