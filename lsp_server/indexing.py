"""The workspace's indexes: one per root folder, kept current in the background.

Plain Python over retrieval; the server passes in how to report (progress, log, messages).
Indexing runs on its own thread, never on the model thread, and searches keep answering
meanwhile with what is already indexed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import threading
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from retrieval import RetrievalError
from retrieval.errors import ReindexCancelled

from .memory import release_free_memory

if TYPE_CHECKING:
    from retrieval import CodeIndex, IndexConfig, ReindexStats

log = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]


def give_back_memory(index: CodeIndex) -> None:
    """After a reindex: the embedding runtime drops what its batches made it keep (where it
    embedded many texts), then the C heap returns its free pages."""
    if (compact := getattr(index.embedder, "compact", None)) is not None:
        try:
            compact()
        except Exception as exc:  # noqa: BLE001 (a runtime's error: the runtime as it was still answers)
            log.warning("could not reopen the embedding runtime after indexing: %s", exc)
    release_free_memory()


@dataclass
class Reporter:
    """How the index manager talks to the user; the server fills these in."""

    begin: Callable[[str], Awaitable[Progress | None]]  # title -> progress callback (or None), then end()
    end: Callable[[str], None]
    info: Callable[[str], None]
    problem: Callable[[str], None]
    ready: Callable[[Path], None] = lambda root: None  # a root's full index pass is done


class Indexes:
    def __init__(self, config: IndexConfig, reporter: Reporter) -> None:
        # Imported here, after `initialize` was answered: FAISS and NumPy take a tenth of a second.
        from retrieval.server_embedding import server_embedder_for

        self.config = config
        self.reporter = reporter
        # One model for every root: queries embedded in this process, index passes in a worker.
        self.embedder = server_embedder_for(config)
        self.roots: dict[Path, CodeIndex] = {}
        self.last_stats: dict[Path, ReindexStats] = {}
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="code-kb-index")
        self._pending: dict[Path, set[str]] = {}
        self._flush: asyncio.Task | None = None
        self._tasks: set[asyncio.Task] = set()
        self._cancel: dict[Path, threading.Event] = {}  # root -> set when the root is removed
        # Documents the editor has opened: indexed (with their imports) before the rest of a root.
        self.open_paths: set[Path] = set()

    def opened(self, path: Path) -> None:
        self.open_paths.add(path)

    # -- roots -----------------------------------------------------------------------
    def add_root(self, root: Path, *, explicit: bool = False) -> bool:
        """Index a workspace folder. The file system's root, system folders and the home folder are
        refused with one message unless `explicit` (the user asked for that folder by name, with the
        codeKb.reindex command); their index then lives in the user's cache folder."""
        from retrieval import CodeIndex
        from retrieval.folders import refusal

        try:
            root = root.resolve()
        except (OSError, RuntimeError, ValueError) as exc:
            self.reporter.problem(f"cannot index {root}: {exc}")
            return False
        if root in self.roots:
            return True
        why = refusal(root)
        if why is not None and not explicit:
            self.reporter.problem(
                f"not indexing {root}: {why}. Open a project folder instead, or run the "
                f"command codeKb.reindex with this folder to index it anyway"
            )
            return False
        try:
            self.roots[root] = CodeIndex(root, self.config, embedder=self.embedder)
        except RetrievalError as exc:
            self.reporter.problem(str(exc))
            return False
        self._cancel[root] = threading.Event()
        self._spawn(self.reindex(root))
        return True

    def remove_root(self, root: Path) -> None:
        """Stop indexing a folder at once (a walk or an index pass in progress ends at its next file)."""
        root = root.resolve()
        index = self.roots.pop(root, None)
        if (cancel := self._cancel.pop(root, None)) is not None:
            cancel.set()
        self._pending.pop(root, None)
        if index is not None:
            self._thread.submit(index.close)  # after any work already queued for it
            log.info("stopped indexing %s", root)

    def root_for(self, path: Path) -> Path | None:
        """The innermost root holding `path`."""
        path = path.resolve()
        holders = [r for r in self.roots if path == r or path.is_relative_to(r)]
        return max(holders, key=lambda r: len(r.parts)) if holders else None

    def searchable(self, root: Path | None) -> CodeIndex | None:
        """The index to retrieve from, once its store is open (what is indexed so far counts)."""
        index = self.roots.get(root) if root else None
        return index if index is not None and index.is_open else None

    # -- work ------------------------------------------------------------------------
    async def reindex(self, root: Path | None = None) -> dict[str, str]:
        """Full incremental reindex of one root or all, with progress; returns a summary per root."""
        out: dict[str, str] = {}
        for r in [root] if root else list(self.roots):
            index = self.roots.get(r)
            if index is None:
                continue
            title = f"code-kb: indexing {r.name}"
            progress = await self.reporter.begin(title)
            cancel = self._cancel.get(r)
            try:
                stats = await asyncio.get_running_loop().run_in_executor(
                    self._thread,
                    partial(index.reindex, progress, cancel, first=lambda: list(self.open_paths)),
                )
            except ReindexCancelled:
                out[str(r)] = "stopped: the folder was removed"
                continue
            except RetrievalError as exc:
                self.reporter.problem(str(exc))
                out[str(r)] = f"failed: {exc}"
                continue
            finally:
                self.reporter.end(title)
                # What indexing freed goes back to the system, not kept for the next index.
                with contextlib.suppress(RuntimeError):  # the server shutting down its thread
                    await asyncio.get_running_loop().run_in_executor(self._thread, give_back_memory, index)
            self.last_stats[r] = stats
            out[str(r)] = stats.summary()
            self.reporter.info(f"code-kb: index ready for {r}: {stats.summary()}")
            self.reporter.ready(r)
        return out

    def files_changed(self, paths: Iterable[Path], delay_s: float = 0.2) -> None:
        """Queue changed, created or deleted files; bursts (a checkout, a formatter) become one update."""
        for path in paths:
            root = self.root_for(path)
            if root is not None:
                self._pending.setdefault(root, set()).add(str(path))
        if self._pending and (self._flush is None or self._flush.done()):
            self._flush = self._spawn(self._update_later(delay_s))

    async def _update_later(self, delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        loop = asyncio.get_running_loop()
        while self._pending:
            root, paths = self._pending.popitem()
            index = self.roots.get(root)
            if index is None:
                continue
            try:
                stats = await loop.run_in_executor(self._thread, index.update_files, sorted(paths))
            except RetrievalError as exc:
                self.reporter.problem(str(exc))
                continue
            if stats.chunks_embedded:  # the worker stopped, freed memory returned, as after a reindex
                with contextlib.suppress(RuntimeError):
                    await loop.run_in_executor(self._thread, give_back_memory, index)
            if stats.changed_paths:
                self.reporter.info(
                    f"code-kb: index updated for {root}: {', '.join(stats.changed_paths[:5])}"
                    f"{' ...' if len(stats.changed_paths) > 5 else ''} ({stats.summary()})"
                )

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def status(self) -> list[dict]:
        rows = []
        for root, index in self.roots.items():
            row: dict = {
                "root": str(root),
                "index_dir": str(index.directory),
                "ready": root in self.last_stats,
            }
            if index.is_open:
                row.update(index.describe())
                # Whether this process carries torch (about 0.5 GB): only the torch backend needs it.
                row["torch_loaded"] = "torch" in sys.modules
            rows.append(row)
        return rows

    def close(self) -> None:
        for cancel in self._cancel.values():
            cancel.set()
        for task in self._tasks:
            task.cancel()
        for index in self.roots.values():
            self._thread.submit(index.close)
        if (close := getattr(self.embedder, "close", None)) is not None:
            self._thread.submit(close)  # the embedding worker, after the work queued before it
        self._thread.shutdown(wait=False)
