"""The one path policy of the server and the CLI (lsp_server/paths.py)."""

from __future__ import annotations

from pathlib import Path

from lsp_server.paths import holds_secrets, locate


def test_a_file_under_a_linked_root_is_relative_to_the_resolved_root(tmp_path: Path):
    real = tmp_path / "real"
    (real / "pkg").mkdir(parents=True)
    (real / "pkg" / "main.py").write_text("x = 1\n")
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    located = locate(link / "pkg" / "main.py", real.resolve())
    assert (located.named, located.target, located.path) == (
        str(link / "pkg" / "main.py"),
        "pkg/main.py",
        "pkg/main.py",
    )
    assert not holds_secrets(located)


def test_a_link_with_an_innocent_name_to_a_secret_is_a_secret(tmp_path: Path):
    (tmp_path / ".env").write_text("TOKEN=x\n")
    (tmp_path / "settings.py").symlink_to(tmp_path / ".env")
    located = locate(tmp_path / "settings.py", tmp_path.resolve())
    assert (located.named, located.target) == ("settings.py", ".env")
    assert holds_secrets(located)
    assert holds_secrets(locate(tmp_path / "ok.py", tmp_path), text="-----BEGIN RSA PRIVATE KEY-----\n")


def test_files_outside_every_root_and_link_loops_stay_absolute(tmp_path: Path):
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    located = locate(tmp_path / "loop", None)
    assert located.root is None and located.path == str(tmp_path / "loop")
