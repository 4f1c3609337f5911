"""The index folder and its inter-process write lock: a CLI reindex and a server never write at once.

The folder is created readable by the user only (it holds the code) before the lock file goes in it.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import IndexLockedError, IndexWriteError

log = logging.getLogger(__name__)

LOCK_NAME = "lock"

# Said wherever the index cannot live where it is: CLI users pass a flag, editor users a setting.
ELSEWHERE = "set the index folder elsewhere (--index-dir, or the editor's indexDir setting)"


def private_dir(directory: Path) -> None:
    """Create the index folder readable by the user only (it holds the code), tightening an old one."""
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise IndexWriteError(
            f"cannot create the index folder {directory} ({exc}); set the index folder "
            "to a writable one (--index-dir, or the editor's indexDir setting)"
        ) from exc
    mode = stat.S_IMODE(directory.stat().st_mode)
    if mode & 0o077:
        try:
            os.chmod(directory, mode & 0o700)
        except OSError as exc:
            log.warning("cannot make %s private (mode %o): %s", directory, mode, exc)


@contextmanager
def write_lock(directory: Path, wait_s: float = 30.0) -> Iterator[None]:
    """An exclusive lock on the index directory, so a CLI reindex and a server never write at once."""
    private_dir(directory)
    path = directory / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
    except OSError as exc:
        raise IndexWriteError(
            f"cannot write the index at {directory} ({exc}); make the folder writable "
            f"or {ELSEWHERE} (searches use the index as it is)"
        ) from exc
    with open(fd, "a+") as fh:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() > deadline:
                    fh.seek(0)
                    holder = fh.read().strip() or "another process"
                    raise IndexLockedError(
                        f"index {directory} is being written by {holder}; wait for it to finish and retry"
                    ) from exc
                time.sleep(0.2)
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}\n")
        fh.flush()
        try:
            yield
        finally:
            fh.seek(0)
            fh.truncate()
            fcntl.flock(fh, fcntl.LOCK_UN)
