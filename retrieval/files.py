"""Which files of a tree get indexed: .gitignore rules, plus binary and huge files skipped."""

from __future__ import annotations

import functools
import logging
import os
import stat
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pathspec

from .errors import ReindexCancelled

log = logging.getLogger(__name__)

# Never worth indexing, whatever .gitignore says: tool state, vendored and build output.
ALWAYS_IGNORED = [
    ".git/",
    ".hg/",
    ".svn/",
    ".code-kb/",
    "node_modules/",
    "__pycache__/",
    "vendor/",
    ".venv/",
    "venv/",
    ".tox/",
    ".mypy_cache/",
    ".pytest_cache/",
    ".ruff_cache/",
    "dist/",
    "build/",
    "target/",
    ".next/",
    ".gradle/",
    "*.egg-info/",
    "*.pyc",
    "*.pyo",
    "*.so",
    "*.o",
    "*.a",
    "*.dll",
    "*.dylib",
    "*.exe",
    "*.gguf",
    "*.bin",
    "*.safetensors",
    "*.pt",
    "*.onnx",
    "*.faiss",
    "*.sqlite3",
    "*.png",
    "*.jpg",
    "*.jpeg",
    "*.gif",
    "*.ico",
    "*.pdf",
    "*.zip",
    "*.gz",
    "*.tar",
    "*.whl",
    "*.lock",
    "package-lock.json",
    ".#*",
    "\\#*#",
    "*~",
    "*.swp",
    "*.swo",  # editors' lock, auto-save (\\# escapes a comment), backup, swap
]

# Secrets never enter the index, so they can never enter a prompt.
SECRET_PATTERNS = [
    ".env",
    ".env.*",
    "*.env",
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "*.jks",
    "*.keystore",
    "*.kdbx",
    "id_rsa",
    "id_rsa.*",
    "id_dsa",
    "id_dsa.*",
    "id_ecdsa",
    "id_ecdsa.*",
    "id_ed25519",
    "id_ed25519.*",
    ".netrc",
    ".pgpass",
    ".npmrc",
    ".pypirc",
    ".htpasswd",
    ".git-credentials",
    "credentials",
    "credentials.json",
    "*credentials*.json",
    "service-account*.json",
    "secrets.y*ml",
    "*.secret",
    ".ssh/",
    ".gnupg/",
    ".aws/",
    ".docker/config.json",
]
_PRIVATE_KEY = b"PRIVATE KEY-----"
_SECRET_TAILS = 32


def secret_spec(deny: Iterable[str] = ()) -> pathspec.GitIgnoreSpec:
    """The built-in secret patterns plus the user's deny list (gitignore syntax)."""
    return _secret_spec(tuple(deny))


@functools.lru_cache(maxsize=8)
def _secret_spec(deny: tuple[str, ...]) -> pathspec.GitIgnoreSpec:
    return pathspec.GitIgnoreSpec.from_lines(SECRET_PATTERNS + list(deny))


def is_secret(rel_path: str, deny: Iterable[str] = (), head: str | bytes = "") -> bool:
    """Whether a file (path relative to its root, or absolute) must never reach an index or a prompt:
    it matches a secret pattern or the deny list, or its text holds a private key block."""
    spec = secret_spec(deny)
    parts = rel_path.strip("/").split("/")
    # Absolute or relative: a match on the whole path or on a tail of it counts (`/home/u/app/.env`,
    # `app/.env`): patterns with a slash inside are anchored, so they match only a tail that starts
    # where they do. Tails are tried from the deepest `_SECRET_TAILS` folders only, so a path of
    # thousands of folders costs a bounded number of matches rather than their square.
    starts = [0, *range(max(1, len(parts) - _SECRET_TAILS), len(parts))]
    if any(spec.match_file("/".join(parts[i:])) for i in starts):
        return True
    if isinstance(head, bytes):
        return _PRIVATE_KEY in head
    return _PRIVATE_KEY.decode() in head


IGNORE_FILES = (".gitignore", ".code-kbignore")  # same syntax; each applies below its own directory

_SNIFF_BYTES = 8192


@dataclass(frozen=True)
class SourceFile:
    """A file that passed the filters; `path` is POSIX and relative to the root."""

    path: str
    abs_path: Path
    size: int
    mtime_ns: int


class IgnoreRules:
    """.gitignore semantics for one tree: the root's rules plus each directory's own file.

    Each .gitignore applies to paths below its directory, as git does. A negation in a
    deeper file cannot re-include a path a shallower file excluded (git allows this only
    for files, not for excluded directories; we do not model the file case).
    """

    def __init__(self, root: Path, extra_patterns: list[str] | None = None, deny: Iterable[str] = ()) -> None:
        self.root = root
        self._specs: list[tuple[str, pathspec.PathSpec]] = [
            ("", pathspec.GitIgnoreSpec.from_lines(ALWAYS_IGNORED + list(extra_patterns or [])))
        ]
        self._secrets = secret_spec(deny)
        self._load(root, "")

    def _load(self, directory: Path, rel_dir: str) -> None:
        for name in IGNORE_FILES:
            ignore_file = directory / name
            if not ignore_file.is_file():
                continue
            try:
                lines = ignore_file.read_text(encoding="utf-8", errors="replace").splitlines()
            except OSError as exc:
                log.warning("cannot read %s: %s", ignore_file, exc)
                continue
            self._specs.append((rel_dir, pathspec.GitIgnoreSpec.from_lines(lines)))

    def secret(self, rel_path: str, is_dir: bool) -> bool:
        return self._secrets.match_file(rel_path + "/" if is_dir else rel_path)

    def enter(self, directory: Path, rel_dir: str) -> None:
        """Pick up the .gitignore of a directory the walk has just entered."""
        if rel_dir:
            self._load(directory, rel_dir)

    def skips_dir(self, rel_dir: str) -> bool:
        """Whether the walk stays out of a directory: a symlink, ignored, or holding secrets."""
        if (self.root / rel_dir).is_symlink() or self.ignored(rel_dir, is_dir=True):
            return True
        if self.secret(rel_dir, is_dir=True):
            log.info("skipping %s/: it holds secrets", rel_dir)
            return True
        return False

    def ignored(self, rel_path: str, is_dir: bool) -> bool:
        for base, spec in self._specs:
            if base:
                if not rel_path.startswith(base + "/"):
                    continue
                sub = rel_path[len(base) + 1 :]
            else:
                sub = rel_path
            if spec.match_file(sub + "/" if is_dir else sub):
                return True
        return False


def _read_head(path: Path) -> bytes:
    """The first bytes of a file, never blocking: a "regular" file of a pseudo file system (such as
    /proc/kmsg) can wait for ever for data; opened non-blocking it answers at once."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    try:
        return os.read(fd, _SNIFF_BYTES)
    except BlockingIOError:
        return b"\0"  # no data now: not a source file
    finally:
        os.close(fd)


def sniff_text(head: bytes) -> bool:
    """True when the first bytes of a file look like UTF-8 text."""
    if b"\0" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the sniff boundary is still text.
        return exc.start >= len(head) - 4
    return True


def walk(
    root: Path,
    max_file_bytes: int,
    extra_ignores: list[str] | None = None,
    deny: Iterable[str] = (),
    cancel: threading.Event | None = None,
) -> Iterator[SourceFile]:
    """Yield the indexable files under `root` in a stable order.

    Directories that are symlinks are not followed (no loops, nothing outside the tree).
    Binary, non-UTF-8 and huge files are skipped with one log line each; secrets and files matching
    the `deny` patterns (gitignore syntax) too. Setting `cancel` stops the walk (ReindexCancelled).
    """
    root = root.resolve()
    rules = IgnoreRules(root, extra_ignores, deny)
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        if cancel is not None and cancel.is_set():
            raise ReindexCancelled(f"indexing of {root} stopped")
        current = Path(dirpath)
        rel_dir = current.relative_to(root).as_posix()
        rel_dir = "" if rel_dir == "." else rel_dir
        rules.enter(current, rel_dir)
        dirnames[:] = [
            name for name in sorted(dirnames) if not rules.skips_dir(f"{rel_dir}/{name}" if rel_dir else name)
        ]
        for name in sorted(filenames):
            rel = f"{rel_dir}/{name}" if rel_dir else name
            if not rules.ignored(rel, is_dir=False):
                found = _accept(root, current / name, rel, max_file_bytes, rules)
                if found is not None:
                    yield found


def check(
    root: Path,
    rel_path: str,
    max_file_bytes: int,
    extra_ignores: list[str] | None = None,
    deny: Iterable[str] = (),
) -> SourceFile | None:
    """The same verdict `walk` gives one file, without walking the tree: None if it is not indexable."""
    root = root.resolve()
    rules = IgnoreRules(root, extra_ignores, deny)
    parts = rel_path.split("/")
    for i in range(1, len(parts)):
        rel_dir = "/".join(parts[:i])
        if rules.skips_dir(rel_dir):
            return None
        rules.enter(root / rel_dir, rel_dir)
    if rules.ignored(rel_path, is_dir=False):
        return None
    return _accept(root, root / rel_path, rel_path, max_file_bytes, rules)


def _accept(
    root: Path, abs_path: Path, rel: str, max_file_bytes: int, rules: IgnoreRules
) -> SourceFile | None:
    """Secret, size, type and encoding checks; each refusal is one log line."""
    if rules.secret(rel, is_dir=False):
        log.info("skipping %s: it looks like a secret", rel)
        return None
    try:
        st = abs_path.stat()
    except OSError as exc:
        log.info("skipping %s: %s", rel, exc)
        return None
    if not stat.S_ISREG(st.st_mode):  # a FIFO, socket or device: reading it could block for ever
        return None
    if abs_path.is_symlink():
        target = abs_path.resolve()
        if not target.is_relative_to(root):
            log.info("skipping %s: symlink to outside the tree", rel)
            return None
        if rules.secret(target.relative_to(root).as_posix(), is_dir=False):
            log.info("skipping %s: symlink to a secret", rel)
            return None
    if st.st_size > max_file_bytes:
        log.info("skipping %s: %d bytes is over the %d-byte limit", rel, st.st_size, max_file_bytes)
        return None
    try:
        head = _read_head(abs_path)
    except OSError as exc:
        log.info("skipping %s: %s", rel, exc)
        return None
    if not sniff_text(head):
        log.info("skipping %s: binary or not UTF-8", rel)
        return None
    if _PRIVATE_KEY in head:
        log.info("skipping %s: it holds a private key", rel)
        return None
    return SourceFile(rel, abs_path, st.st_size, st.st_mtime_ns)
