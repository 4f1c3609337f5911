"""Folders code-kb does not index on its own, the file cap, stopping a walk, and files that would block."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from retrieval import CodeIndex, IndexConfig
from retrieval.errors import ReindexCancelled, TooManyFilesError
from retrieval.files import is_secret, walk
from retrieval.folders import refusal
from tests.fixtures.hash_embedder import HashEmbedder


def test_system_folders_and_the_home_folder_are_refused_and_projects_are_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    home = tmp_path / "home" / "ann"
    (home / "code" / "app").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    assert "system folder" in refusal(Path("/"))
    assert "system folder" in refusal(Path("/etc"))
    assert "system folder" in refusal(Path("/proc/self"))
    assert "home folder" in refusal(home)
    assert "holds your home folder" in refusal(tmp_path / "home")
    assert refusal(home / "code" / "app") is None


def test_the_index_of_a_refused_folder_lives_in_the_cache_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert IndexConfig().directory_for(home).is_relative_to(tmp_path / "cache" / "code-kb" / "indexes")
    project = home / "app"
    project.mkdir()
    assert IndexConfig().directory_for(project) == project / ".code-kb"
    assert IndexConfig(index_dir=tmp_path / "here").directory_for(home) == tmp_path / "here"


def test_a_tree_over_the_file_cap_is_refused_before_anything_is_written(tmp_path: Path):
    for n in range(12):
        (tmp_path / f"m{n}.py").write_text(f"X{n} = {n}\n")
    index = CodeIndex(tmp_path, IndexConfig(max_files=10), embedder=HashEmbedder())
    with pytest.raises(TooManyFilesError, match="more than 10 files.*--max-files.*maxFiles"):
        index.reindex()
    assert index.store.chunk_count() == 0
    index.close()
    index = CodeIndex(tmp_path, IndexConfig(max_files=12), embedder=HashEmbedder())
    assert index.reindex().files_seen == 12
    index.close()


def test_a_cancelled_walk_stops_and_a_cancelled_index_pass_keeps_what_is_done(tmp_path: Path):
    for d in range(3):
        (tmp_path / f"d{d}").mkdir()
        (tmp_path / f"d{d}" / "m.py").write_text("X = 1\n")
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(ReindexCancelled):
        list(walk(tmp_path, 1_000_000, cancel=cancel))
    seen = []
    stop = threading.Event()

    def progress(done: int, total: int, what: str) -> None:
        seen.append(done)
        if done == 1:
            stop.set()

    index = CodeIndex(tmp_path, IndexConfig(), embedder=HashEmbedder())
    stats = index.reindex(progress, stop)
    assert max(seen) == 1 and stats.files_seen == 3
    assert index.reindex().files_changed == 3  # nothing half-written: the next pass indexes them all
    index.close()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_a_fifo_in_the_tree_is_skipped_without_blocking(tmp_path: Path):
    os.mkfifo(tmp_path / "pipe.py")
    (tmp_path / "real.py").write_text("X = 1\n")
    found = []
    walker = threading.Thread(target=lambda: found.extend(walk(tmp_path, 1_000_000)), daemon=True)
    walker.start()
    walker.join(10)
    assert not walker.is_alive() and [f.path for f in found] == ["real.py"]


def test_deep_paths_are_checked_for_secrets_at_their_end():
    deep = "/".join(["d"] * 3000)
    assert is_secret(f"{deep}/.env")
    assert is_secret(f"{deep}/.docker/config.json")
    assert is_secret(f"{deep}/.ssh/known_hosts")
    assert not is_secret(f"{deep}/main.py")
    assert is_secret(f"app/{deep}/x.sql", deny=["*.sql"])
