"""Folders code-kb does not index on its own: the file system's root, system folders and the home
folder itself; and where the index of a folder the user cannot or should not write into lives."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

# Exact folders that are no project: indexing them reads system files (or all of them) and writes
# an index into them.
_SYSTEM = {
    "/",
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/home",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/media",
    "/mnt",
    "/opt",
    "/proc",
    "/root",
    "/run",
    "/sbin",
    "/srv",
    "/sys",
    "/tmp",
    "/usr",
    "/usr/local",
    "/var",
    "/var/tmp",
    "/Applications",
    "/Library",
    "/System",
    "/Users",
    "/Volumes",
    "/private",
    "/private/etc",
    "/private/tmp",
    "/private/var",
}
# Folders whose every subfolder is system state, never a project.
_SYSTEM_TREES = ("/proc", "/sys", "/dev", "/etc", "/boot", "/run", "/private/etc")


def refusal(root: Path) -> str | None:
    """Why a folder is not indexed unless asked for explicitly, or None when it may be."""
    root = root.resolve()
    text = root.as_posix()
    if text in _SYSTEM or any(text.startswith(tree + "/") for tree in _SYSTEM_TREES):
        return f"{root} is a system folder"
    home = Path.home().resolve()
    if root == home:
        return f"{root} is your home folder"
    if root in home.parents:
        return f"{root} holds your home folder"
    return None


def cache_index_dir(root: Path) -> Path:
    """The index of `root` in the user's cache folder, for folders code-kb should not write into."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    digest = hashlib.sha1(root.as_posix().encode("utf-8", "surrogateescape")).hexdigest()[:12]
    return Path(base) / "code-kb" / "indexes" / f"{root.name or 'root'}-{digest}"


def writable_here(root: Path) -> bool:
    """Whether the index may live inside the folder: the user can write there and it is no system or
    home folder (whose index belongs in the cache folder)."""
    return refusal(root) is None and os.access(root, os.W_OK)
