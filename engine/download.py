"""Resumable, verified HTTP(S) downloads of model files.

A transfer writes `NAME.part` beside its destination, with `NAME.part.json` saying what it is a
part of (URL, expected size and sha256). A later attempt at the same file sends `Range:
bytes=N-` and appends when the server answers 206; a server that ignores the range (200) starts
over. The finished file is checked against the expected size and, where known, its sha256, and
only then renamed into place: a file at the destination is always a verified one. A file that
fails verification is deleted, never left as if good.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import logging
import os
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .errors import EngineError

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20
USER_AGENT = "code-kb (model pull)"

Progress = Callable[[int, "int | None"], None]  # (bytes on disk, expected total or None)


class DownloadError(EngineError):
    """A transfer failed or its result did not verify."""


@dataclass(frozen=True)
class RemoteFile:
    """One file to fetch: where from, where to, and what it must be."""

    url: str
    dest: Path
    size: int | None = None  # bytes, where the source says
    sha256: str | None = None  # lowercase hex, where the source says

    @property
    def part(self) -> Path:
        return self.dest.with_name(self.dest.name + ".part")

    @property
    def part_meta(self) -> Path:
        return self.dest.with_name(self.dest.name + ".part.json")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK_BYTES):
            digest.update(block)
    return digest.hexdigest()


def verify(path: Path, size: int | None, sha256: str | None) -> None:
    """Raise DownloadError unless `path` has the expected size and sha256 (each where known)."""
    actual = path.stat().st_size
    if size is not None and actual != size:
        raise DownloadError(f"{path.name}: {actual} bytes, expected {size}")
    if sha256 is not None:
        digest = sha256_of(path)
        if digest != sha256.lower():
            raise DownloadError(f"{path.name}: sha256 {digest}, expected {sha256.lower()}")


def remote_size(url: str, timeout_s: float = 30.0) -> int | None:
    """The size a server announces for a URL (HEAD, following redirects); None where it does not say."""
    request = urllib.request.Request(url, method="HEAD", headers={"User-Agent": USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            length = response.headers.get("Content-Length")
    except urllib.error.HTTPError as exc:
        raise DownloadError(f"cannot download {url}: HTTP {exc.code} {exc.reason}") from exc
    except (OSError, http.client.HTTPException) as exc:
        raise DownloadError(f"cannot reach {url}: {exc}") from exc
    return int(length) if length and length.isdigit() else None


def _discard(remote: RemoteFile) -> None:
    for p in (remote.part, remote.part_meta):
        p.unlink(missing_ok=True)


def _resumable_offset(remote: RemoteFile) -> int:
    """Bytes of an earlier attempt at this same file that can be kept; 0 (and the part discarded) otherwise."""
    if not remote.part.is_file():
        return 0
    try:
        meta = json.loads(remote.part_meta.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        meta = None
    same = meta == {"url": remote.url, "size": remote.size, "sha256": remote.sha256}
    have = remote.part.stat().st_size
    if not same or (remote.size is not None and have > remote.size):
        log.info("discarding %s: it belongs to another download", remote.part)
        _discard(remote)
        return 0
    return have


def _transfer(remote: RemoteFile, progress: Progress | None, timeout_s: float) -> None:
    """One attempt: append to the part file from where it stops. Raises OSError on a broken connection."""
    offset = _resumable_offset(remote)
    if remote.size is not None and offset == remote.size:
        return  # an earlier attempt got every byte; only verification is left
    remote.part_meta.write_text(
        json.dumps({"url": remote.url, "size": remote.size, "sha256": remote.sha256}), encoding="utf-8"
    )
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(remote.url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout_s)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # nothing past what we have: the part may be whole
            return
        raise DownloadError(f"cannot download {remote.url}: HTTP {exc.code} {exc.reason}") from exc
    with response:
        if offset and response.status != 206:
            log.info("%s ignored the range request: starting over", remote.url)
            offset = 0
        elif offset:
            log.info("resuming %s at byte %d", remote.dest.name, offset)
        length = response.headers.get("Content-Length")
        total = remote.size if remote.size is not None else (offset + int(length) if length else None)
        with open(remote.part, "ab" if offset else "wb") as out:
            done = offset
            if progress:
                progress(done, total)
            while block := response.read(CHUNK_BYTES):
                out.write(block)
                done += len(block)
                if progress:
                    progress(done, total)
        if length is not None and done - offset != int(length):
            raise ConnectionError(f"connection closed after {done - offset} of {length} bytes")


@contextlib.contextmanager
def _exclusive(remote: RemoteFile) -> Iterator[None]:
    """One transfer of a file at a time: two pulls appending to one part file would corrupt it."""
    lock_path = remote.dest.with_name(remote.dest.name + ".lock")
    with open(lock_path, "w") as lock:
        try:
            import fcntl

            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:  # Windows: no advisory locks here; the part file's meta still guards resumes
            pass
        except OSError:
            raise DownloadError(f"another download of {remote.dest.name} is running; wait for it") from None
        try:
            yield
        finally:
            lock_path.unlink(missing_ok=True)


def download(remote: RemoteFile, **options) -> Path:
    """Fetch `remote` into `remote.dest` (see `_download`), one process at a time per file."""
    remote.dest.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive(remote):
        return _download(remote, **options)


def _download(
    remote: RemoteFile,
    *,
    progress: Progress | None = None,
    attempts: int = 3,
    timeout_s: float = 60.0,
    retry_wait_s: float = 1.0,
) -> Path:
    """Fetch `remote` into `remote.dest`, resuming a partial earlier download of the same file.

    A broken connection is resumed up to `attempts` times in all; after the last, the partial file
    stays for the next call to resume. The result is verified (size, sha256 where known) before it
    is renamed into place; a file that fails is deleted and DownloadError raised.
    """
    remote.dest.parent.mkdir(parents=True, exist_ok=True)
    if remote.size is not None:
        have = remote.part.stat().st_size if remote.part.is_file() else 0
        free = shutil.disk_usage(remote.dest.parent).free
        if remote.size - have > free:
            raise DownloadError(
                f"{remote.dest.name} needs {(remote.size - have) / 1e9:.2f} GB more and "
                f"{remote.dest.parent} has {free / 1e9:.2f} GB free; free some space or set "
                "CODE_KB_MODELS to a folder on another disk"
            )
    for attempt in range(1, attempts + 1):
        try:
            _transfer(remote, progress, timeout_s)
            break
        except (OSError, http.client.HTTPException) as exc:  # URLError, timeouts, resets, short reads
            have = remote.part.stat().st_size if remote.part.is_file() else 0
            if attempt == attempts:
                raise DownloadError(
                    f"download of {remote.dest.name} interrupted at {have} bytes ({exc}); run the same "
                    "command again to resume"
                ) from exc
            log.warning("download of %s interrupted at %d bytes (%s); resuming", remote.dest.name, have, exc)
            time.sleep(retry_wait_s)
    try:
        verify(remote.part, remote.size, remote.sha256)
    except DownloadError as exc:
        _discard(remote)
        raise DownloadError(
            f"{exc}: the download is corrupt and was deleted; run the same command again "
            "to download it afresh"
        ) from None
    os.replace(remote.part, remote.dest)
    remote.part_meta.unlink(missing_ok=True)
    return remote.dest
