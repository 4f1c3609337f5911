"""The repository index: incremental reindexing and snippet search for a cursor."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import sqlite3
import stat
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .chunking import Chunk, ChunkingConfig, chunk_file, parse
from .config import IndexConfig
from .embedding import Embedder, embedder_for
from .errors import EmbeddingModelError, IndexWriteError, RetrievalError, TooManyFilesError
from .files import SourceFile, check, walk
from .graph import GRAPH_VERSION, FileGraph, extract
from .lock import write_lock
from .needs import NeedSnippet, NeedsProbe
from .resolve import ModuleResolver
from .secrets import MASKING_VERSION, SecretScanner
from .shared import ExportStats, ImportStats, export_vectors, import_vectors
from .store import FileRecord, Store
from .symbols import wanted_names

log = logging.getLogger(__name__)

# progress(done, total, what): called from the indexing thread.
Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class Snippet:
    """A retrieved chunk. Lines are 0-based, end inclusive."""

    path: str
    text: str
    start_line: int
    end_line: int
    score: float
    kind: str
    name: str
    chunk_id: int = -1
    reason: str = ""  # which probes found it: "dense", "lexical", "symbol", joined with "+"
    prompt_kind: str = "snippet"  # what the prompt shows: the chunk (engine's Snippet protocol)


@dataclass(frozen=True)
class ParsedFile:
    """A file read for indexing: its record, chunks and part of the symbol graph."""

    record: FileRecord
    chunks: list[Chunk]
    graph: FileGraph | None


@dataclass
class ReindexStats:
    files_seen: int = 0
    files_changed: int = 0
    files_removed: int = 0
    chunks_total: int = 0
    chunks_embedded: int = 0
    chunks_reused: int = 0
    seconds: float = 0.0
    changed_paths: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.files_seen} files ({self.files_changed} changed, {self.files_removed} removed), "
            f"{self.chunks_total} chunks ({self.chunks_embedded} embedded, {self.chunks_reused} from cache) "
            f"in {self.seconds:.1f} s"
        )


class CodeIndex:
    """Index of one root directory. Thread-safe: one writer at a time, searches in between."""

    def __init__(
        self, root: Path, config: IndexConfig = IndexConfig(), embedder: Embedder | None = None
    ) -> None:
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise RetrievalError(f"not a directory: {root}")
        self.config = config
        self.directory = config.directory_for(self.root)
        self.embedder: Embedder = embedder or embedder_for(config)
        self.chunking = ChunkingConfig(
            window_lines=config.window_lines, max_chunk_lines=config.max_chunk_lines
        )
        self._lock = threading.RLock()
        self.secrets = SecretScanner(config.secret_patterns)
        self._query_cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._store: Store | None = None
        # The symbol graph as the needs probe reads it: files' graphs (recently used ones kept) and
        # the resolver over the file set; both are dropped where the index changes.
        self._graphs: OrderedDict[str, FileGraph | None] = OrderedDict()
        self._resolver: ModuleResolver | None = None
        self.needs = NeedsProbe(self)

    @property
    def store(self) -> Store:
        with self._lock:
            if self._store is None:
                store = Store(self.directory, self.embedder.name, self.config.ivf_threshold)
                # The stored dimension spares loading the embedding model just to open the index.
                known_dim = store.meta("dim")
                store.load_vectors(int(known_dim) if known_dim else self.embedder.dim)
                self._store = store
            return self._store

    @property
    def is_open(self) -> bool:
        """True once the store is loaded: searching then never waits for the embedding model to load."""
        return self._store is not None and self._store.vectors is not None

    def describe(self) -> dict:
        """Size and kind of the index, for status reports."""
        with self._lock:
            store = self.store
            return {
                "files": len(store.files()),
                "chunks": store.chunk_count(),
                "vectors": int(store.loaded.ntotal),
                "faiss": store.describe_vectors(),
                "embedding_model": self.embedder.name,
                **(describe() if (describe := getattr(self.embedder, "describe", None)) else {}),
                "updated_at": store.meta("updated_at"),
                "disk_bytes": store.disk_bytes(),
            }

    def __len__(self) -> int:
        return self.store.chunk_count()

    def graph_of(self, path: str) -> FileGraph | None:
        """One file's part of the symbol graph, as indexed (the needs probe's GraphSource)."""
        with self._lock:
            if path in self._graphs:
                self._graphs.move_to_end(path)
                return self._graphs[path]
            graph = self.store.graph_file(path)
            self._graphs[path] = graph
            while len(self._graphs) > 2048:
                self._graphs.popitem(last=False)
            return graph

    def containers_with(self, names: Iterable[str]) -> dict[tuple[str, str], int]:
        """Types that have these members, and how many of them (the needs probe's GraphSource)."""
        with self._lock:
            return self.store.graph_containers_with(names)

    def usage_counts(self, names: Iterable[str]) -> dict[str, int]:
        """How many chunks of the repository mention each name (the needs probe's GraphSource)."""
        names = list(names)
        with self._lock:
            counts = self.store.token_counts(n.lower() for n in names)
        return {n: counts[n.lower()] for n in names if n.lower() in counts}

    def resolver(self) -> ModuleResolver:
        """Import resolution over the indexed files (the needs probe's GraphSource)."""
        with self._lock:
            if self._resolver is None:
                self._resolver = ModuleResolver(self.store.files())
            return self._resolver

    def _forget_graphs(self, paths: Iterable[str], files_changed: bool) -> None:
        with self._lock:
            for path in paths:
                self._graphs.pop(path, None)
            if files_changed:
                self._resolver = None

    def export_vectors(self, out: Path) -> ExportStats:
        """The vectors of the chunks indexed now into a file other indexes import (shared.py)."""
        with self._lock:
            return export_vectors(self.store, out)

    def import_vectors(self, path: Path) -> ImportStats:
        """A shared embeddings file into this index's cache: the next reindex embeds only what it lacks."""
        with self._writing(), self._lock:
            return import_vectors(self.store, path)

    def close(self) -> None:
        with self._lock:
            self._graphs.clear()
            self._resolver = None
            if self._store is not None:
                self._store.close()
                self._store = None

    # -- indexing -------------------------------------------------------------------
    # The thread lock is held only while the store and FAISS change or are read, never while
    # files are read, chunked or embedded: searches keep answering during a long index.
    def reindex(
        self,
        progress: Progress | None = None,
        cancel: threading.Event | None = None,
        first: Callable[[], Iterable[str | Path]] | None = None,
    ) -> ReindexStats:
        """Bring the index in line with the tree; unchanged files cost a stat() each. A tree with more
        than `max_files` indexable files is refused (TooManyFilesError) before anything is written.
        Setting `cancel` stops the walk (ReindexCancelled) or, once files are being indexed, keeps
        what is done and returns. `first` (asked once the walk is done) names files to index before
        the rest, with the files they import: the editor's open files, so completions there get
        context within seconds of a first index, not at its end."""
        t0 = time.perf_counter()
        with self._writing():
            files = []
            for f in walk(
                self.root,
                self.config.max_file_bytes,
                list(self.config.extra_ignores),
                self.config.deny_patterns,
                cancel,
            ):
                files.append(f)
                if len(files) > self.config.max_files:
                    raise TooManyFilesError(
                        f"{self.root} holds more than {self.config.max_files} files to index, the limit; "
                        "open a smaller folder, ignore some in .code-kbignore, or raise the limit "
                        "(--max-files, or the editor's maxFiles setting)"
                    )
            with self._lock:
                indexed = self.store.files()
                gone = sorted(set(indexed) - {f.path for f in files})
                stale_graphs = self.store.meta("graph_version") != GRAPH_VERSION
                stale_masking = self.store.meta("masking") != self._masking()
            if stale_masking and indexed:
                log.info(
                    "masking of inline secrets changed since %s was indexed: reading every file again",
                    self.root,
                )
            wanted = self._first_files(files, first() if first is not None else ())
            return self._apply(
                files,
                gone,
                progress,
                t0,
                cancel,
                refresh_graphs=stale_graphs,
                rechunk=stale_masking,
                first=wanted,
            )

    def _first_files(self, files: list[SourceFile], paths: Iterable[str | Path]) -> list[str]:
        """These files (relative paths of the walk's) and the files they import, in that order."""
        listed = {f.path: f for f in files}
        opened = [r for p in paths if (r := self.relative(p)) is not None and r in listed]
        if not opened:
            return []
        resolver = ModuleResolver(listed)
        out = dict.fromkeys(opened)
        for rel in opened:
            try:
                text = listed[rel].abs_path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            graph = extract(rel, text)
            if graph is None:
                continue
            for imp in graph.imports:
                for target in resolver.resolve(rel, graph.language, imp):
                    out.setdefault(target.path)
        return list(out)

    def _dimension_changed(self) -> bool:
        """Whether the embedder's vectors are no longer the size of the stored ones (a server's model
        replaced under the same name): the index and that model's cached vectors are then dropped,
        and every file is indexed again."""
        with self._lock:
            stored = self.store.meta("dim")
        if stored is None or int(stored) == self.embedder.dim:
            return False
        log.warning(
            "the index at %s holds %s-dimensional vectors of %s, but the embedder now makes %d-dimensional "
            "ones under that name: indexing everything again",
            self.directory,
            stored,
            self.embedder.name,
            self.embedder.dim,
        )
        with self._lock:
            self.store.reset_vectors(self.embedder.dim)
            self._forget_graphs(list(self._graphs), files_changed=True)
        return True

    def _masking(self) -> str:
        """What decides the masked text: the detection's version and the user's patterns."""
        digest = hashlib.sha1("\n".join(self.config.secret_patterns).encode()).hexdigest()[:12]
        return f"{MASKING_VERSION}:{digest}"

    def update_files(self, paths: Iterable[str | Path], progress: Progress | None = None) -> ReindexStats:
        """Bring only these files (absolute, or relative to the root) in line: changed, new or deleted."""
        t0 = time.perf_counter()
        own = self.relative(self.directory)
        rels = sorted(
            r
            for r in {self.relative(p) for p in paths}
            if r is not None and (own is None or not (r == own or r.startswith(own + "/")))
        )
        if not rels:
            # Only the index's own files (an editor watching everything reports our writes): writing
            # anything now would report more changes, forever.
            return ReindexStats(seconds=time.perf_counter() - t0)
        with self._writing():
            files, gone = [], []
            for rel in rels:
                found = check(
                    self.root,
                    rel,
                    self.config.max_file_bytes,
                    list(self.config.extra_ignores),
                    self.config.deny_patterns,
                )
                (files.append(found) if found is not None else gone.append(rel))
            return self._apply(files, gone, progress, t0)

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """The write lock, and a failed write (disk full, read-only folder) as one clear error. SQLite
        rolls back the file being written; what was committed before it is whole, and memory agrees."""
        self.store.check_writable()
        try:
            with write_lock(self.directory):
                yield
        except (sqlite3.OperationalError, OSError) as exc:
            raise IndexWriteError(
                f"cannot write the index at {self.directory} ({exc}); free disk space or "
                "make the folder writable (the index keeps what it had)"
            ) from exc

    def relative(self, path: str | Path) -> str | None:
        """`path` relative to the root, POSIX; None when it lies outside."""
        p = Path(path)
        p = p if p.is_absolute() else self.root / p
        try:
            return (
                p.resolve().relative_to(self.root).as_posix()
                if p.exists()
                else p.absolute().relative_to(self.root).as_posix()
            )
        except ValueError:
            return None

    def _apply(
        self,
        files: list[SourceFile],
        gone: list[str],
        progress: Progress | None,
        t0: float,
        cancel: threading.Event | None = None,
        refresh_graphs: bool = False,
        rechunk: bool = False,
        first: Sequence[str] = (),
    ) -> ReindexStats:
        """Index what changed; with `refresh_graphs` (graphs extracted by older code), every file is read
        again and unchanged ones get their graph re-extracted, nothing else rewritten; with `rechunk`
        (secrets masked by other rules), every file is chunked again (embeddings of unchanged chunks
        come from the cache). Setting `cancel` stops at the next file, keeping what is committed."""
        stats = ReindexStats(files_seen=len(files))
        with self._lock:
            store = self.store
            known = store.files()
            removed_ids: list[int] = []
            for path in gone:
                if path in known:
                    removed_ids += store.remove_file(path)
                    stats.files_removed += 1
                    stats.changed_paths.append(path)
            if removed_ids:
                store.remove_vectors(removed_ids)
        candidates = [f for f in files if refresh_graphs or rechunk or not _unchanged(known.get(f.path), f)]
        # A local model's size is fixed by its name (asking would load it for nothing on a no-op
        # reindex); a server's model can be swapped under the same name at any time.
        may_change = bool(candidates) or getattr(self.embedder, "dim_may_change", False)
        if may_change and self._dimension_changed():
            with self._lock:
                known = store.files()
            candidates = files
        # The files asked for first go first, and are committed (searchable) before the rest starts.
        rank = {path: n for n, path in enumerate(first)}
        candidates.sort(key=lambda f: rank.get(f.path, len(rank)))
        early = sum(1 for f in candidates if f.path in rank)
        refreshed: list[str] = []
        if progress:
            progress(0, len(candidates), "indexing")
        pending: list[ParsedFile] = []
        pending_chunks = 0
        for n, f in enumerate(candidates, 1):
            if cancel is not None and cancel.is_set():  # what is committed stays; the rest waits
                log.info("indexing of %s stopped after %d of %d files", self.root, n - 1, len(candidates))
                break
            parsed = self._read(f)
            record = parsed.record if parsed is not None else None
            old = known.get(f.path)
            if record is None and old is not None:
                # Vanished, unreadable or no longer UTF-8 since it was listed: its old chunks would be
                # stale, so it leaves the index (the next pass adds it back if it comes back).
                with self._lock:
                    removed = store.remove_file(f.path)
                    if removed:
                        store.remove_vectors(removed)
                stats.files_removed += 1
                stats.changed_paths.append(f.path)
            elif record is not None and old is not None and old.hash == record.hash and not rechunk:
                with self._lock:
                    store.touch_file(record)  # touched but identical: only the stat changes
                    if refresh_graphs and parsed is not None:
                        store.replace_graph(record.path, parsed.graph)
                        refreshed.append(record.path)
            elif parsed is not None:
                pending.append(parsed)
                pending_chunks += len(parsed.chunks)
            if pending and (pending_chunks >= 256 or n == len(candidates) or n == early):
                self._commit(pending, stats)
                pending, pending_chunks = [], 0
            if progress:
                progress(n, len(candidates), f.path)
        with self._lock:
            if store.wants_rebuild(store.loaded):
                store.rebuild_vectors()
            elif stats.files_changed or stats.files_removed:
                store.save_vectors()
            stats.chunks_total = store.chunk_count()
            if stats.files_changed or stats.files_removed or not store.meta("updated_at"):
                store.set_meta("updated_at", datetime.now(timezone.utc).isoformat(timespec="seconds"))
            if refresh_graphs and not (cancel is not None and cancel.is_set()):  # every graph re-extracted
                store.set_meta("graph_version", GRAPH_VERSION)
            if rechunk and not (cancel is not None and cancel.is_set()):  # every file masked anew
                store.set_meta("masking", self._masking())
        if stats.changed_paths or refreshed:
            self._forget_graphs(stats.changed_paths + refreshed, files_changed=bool(stats.changed_paths))
        stats.seconds = time.perf_counter() - t0
        log.info("index of %s updated: %s", self.root, stats.summary())
        return stats

    def _read(self, f: SourceFile) -> ParsedFile | None:
        """The file's record, chunks and graph, or None when it cannot be read as it was listed.

        The walk checked the file moments ago; it may have changed since. Re-check what is opened:
        a regular file, still inside the root (a path swapped for a symlink to elsewhere is not
        followed out), no larger than the limit, never a FIFO that would block the read."""
        try:
            real = f.abs_path.resolve(strict=True)
            if not real.is_relative_to(self.root):
                raise OSError(f"now resolves to {real}, outside the tree")
            fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            with os.fdopen(fd, "rb") as fh:
                st = os.fstat(fh.fileno())
                if not stat.S_ISREG(st.st_mode):
                    raise OSError("not a regular file")
                data = fh.read(self.config.max_file_bytes + 1)
            if len(data) > self.config.max_file_bytes:
                raise OSError(f"grew over the {self.config.max_file_bytes}-byte limit")
            text = data.decode("utf-8")
        except (OSError, RuntimeError, UnicodeDecodeError) as exc:
            log.info("skipping %s: %s", f.path, exc)
            return None
        # Inline secrets never reach a chunk, an embedding, the lexical index or the symbol tables.
        text = self.secrets.mask(text, f.path)
        record = FileRecord(f.path, hashlib.sha1(data).hexdigest(), f.size, f.mtime_ns)
        tree = parse(f.path, text)  # one parse for the chunks and the graph
        return ParsedFile(record, chunk_file(f.path, text, self.chunking, tree), extract(f.path, text, tree))

    def _commit(self, pending: list[ParsedFile], stats: ReindexStats) -> None:
        """Embed what the cache lacks (unlocked), then write each file's chunks and vectors (locked)."""
        store = self.store
        all_chunks = [c for p in pending for c in p.chunks]
        with self._lock:
            cached = store.cached_vectors(c.text_hash for c in all_chunks)
        missing = list({c.text_hash: c for c in all_chunks if c.text_hash not in cached}.values())
        fresh = (
            dict(
                zip(
                    (c.text_hash for c in missing), self.embedder.embed([c.embedding_text() for c in missing])
                )
            )
            if missing
            else {}
        )
        stats.chunks_embedded += len(missing)
        stats.chunks_reused += len(all_chunks) - sum(1 for c in all_chunks if c.text_hash in fresh)
        with self._lock:
            self._write(pending, cached, fresh, stats)

    def _write(self, pending: list[ParsedFile], cached: dict, fresh: dict, stats: ReindexStats) -> None:
        store = self.store
        removed_all: list[int] = []
        try:
            for parsed in pending:
                record, chunks = parsed.record, parsed.chunks
                new = {c.text_hash: fresh[c.text_hash] for c in chunks if c.text_hash in fresh}
                # One transaction for the file's chunks, vectors' rows and graph: all or nothing.
                removed, added = store.replace_file(record, chunks, new, parsed.graph)
                if added:
                    vectors = np.stack(
                        [cached[h] if (h := c.text_hash) in cached else fresh[h] for c in chunks]
                    )
                    store.loaded.add_with_ids(vectors, np.asarray(added, dtype=np.int64))
                removed_all += removed
                stats.files_changed += 1
                stats.changed_paths.append(record.path)
        finally:
            # Remove superseded vectors now, so FAISS never holds two versions of a file, even when a
            # later file's write failed.
            if removed_all:
                store.remove_vectors(removed_all)

    # -- search ---------------------------------------------------------------------
    # `exclude_path` drops that file's chunks; with `around` (first, last line) only those overlapping it.
    def search(
        self, query: str, k: int, exclude_path: str | None = None, around: tuple[int, int] | None = None
    ) -> list[Snippet]:
        """The k chunks nearest to `query` by embedding, best first."""
        if not query.strip():
            return []
        store = self.store
        vector = self._query_vector(query)
        with self._lock:
            if store.loaded.ntotal == 0:
                return []
            if vector.shape[1] != store.loaded.d:
                raise EmbeddingModelError(
                    f"the index at {self.directory} holds {store.loaded.d}-dimensional vectors, but "
                    f"{self.embedder.name} makes {vector.shape[1]}-dimensional ones; reindex "
                    "(code-kb reindex, or codeKb.reindex) to rebuild it for this model"
                )
            # Over-fetch: some hits may come from the excluded file.
            want = min(store.loaded.ntotal, k * 3 + 8)
            scores, ids = store.loaded.search(vector, want)
            hits = [(int(i), float(score)) for score, i in zip(scores[0], ids[0]) if i >= 0]
            return self._snippets(hits, k, exclude_path, around, "dense")

    def _query_vector(self, query: str) -> np.ndarray:
        """The query's embedding; recent ones are kept, since consecutive keystrokes repeat queries."""
        vector = self._query_cache.get(query)
        if vector is None:
            vector = self.embedder.embed([query])
            self._query_cache[query] = vector
            while len(self._query_cache) > 256:
                self._query_cache.popitem(last=False)
        else:
            self._query_cache.move_to_end(query)
        return vector

    def lexical_search(
        self, query: str, k: int, exclude_path: str | None = None, around: tuple[int, int] | None = None
    ) -> list[Snippet]:
        """The k chunks that share the most (and rarest) identifiers with `query`: BM25 over FTS5."""
        with self._lock:
            hits = self.store.lexical_search(query, k * 3 + 8)
            return self._snippets(hits, k, exclude_path, around, "lexical")

    def symbol_search(
        self, names: list[str], k: int, exclude_path: str | None = None, around: tuple[int, int] | None = None
    ) -> list[Snippet]:
        """Chunks that define `names`, in the order of the names (nearest to the cursor first)."""
        if not names:
            return []
        with self._lock:
            rows = self.store.definitions_of(names)
            hits = list(
                {
                    chunk_id: (chunk_id, 1.0 / (rank + 1))
                    for rank, (_, chunk_id, _) in reversed(list(enumerate(rows)))
                }.values()
            )
            hits.sort(key=lambda h: -h[1])
            return self._snippets(hits, k, exclude_path, around, "symbol")

    def _snippets(
        self,
        hits: list[tuple[int, float]],
        k: int,
        exclude_path: str | None,
        around: tuple[int, int] | None,
        reason: str,
    ) -> list[Snippet]:
        chunks = self.store.chunks_by_id(i for i, _ in hits)
        out = []
        for i, score in hits:
            c = chunks.get(i)
            if c is None or (
                c.path == exclude_path
                and (around is None or (c.start_line <= around[1] and c.end_line >= around[0]))
            ):
                continue
            out.append(Snippet(c.path, c.text, c.start_line, c.end_line, score, c.kind, c.name, i, reason))
            if len(out) == k:
                break
        return out

    def snippets(
        self, path: str, source: str, offset: int, limit: int | None = None
    ) -> Sequence[Snippet | NeedSnippet]:
        """What helps complete `source` at `offset` (engine's ContextSource): first the signatures and
        outlines of definitions the code at the cursor is likely to need (the needs probe, from the
        symbol graph), then chunks of other files.

        Chunks come from three probes, fused by reciprocal rank: the lines before the cursor by
        meaning (embedding); the identifiers around the cursor by name (BM25), which finds a
        definition whose use the embedding barely sees; and the definitions of the names used just
        before the cursor and imported by the file (the symbol table).
        """
        k = limit or self.config.top_k
        needs = self.needs_snippets(path, source, offset)
        # The dense query: the lines above the cursor and its own line up to it. (Leaving the
        # cursor's line out would let keystrokes on one line reuse one embedding, but measured
        # worse: what was just typed on it is the best evidence there is.)
        query = "\n".join(source[:offset].splitlines()[-self.config.query_lines - 1 :])
        line_end = source.find("\n", offset)
        near = (
            "\n".join(source[:offset].splitlines()[-4:])
            + source[offset : line_end if line_end != -1 else len(source)]
        )
        # The current file's own chunks count, except around the cursor: the prompt shows that part
        # (the prompt builder drops any that overlap what it shows).
        cursor_line = source.count("\n", 0, offset)
        around = (
            cursor_line - self.config.cursor_margin_lines,
            cursor_line + self.config.cursor_margin_lines,
        )
        ranked = [
            self.search(query, k * 2, path, around),
            self.lexical_search(near, k * 2, path, around),
            self.symbol_search(wanted_names(source, offset), k * 2, path, around),
        ]
        # A definition of a name just typed is the strongest evidence there is: weigh it up.
        return [*needs, *fuse(ranked, k, weights=(1.0, 1.0, 3.0))]

    def needs_snippets(self, path: str, source: str, offset: int) -> list[NeedSnippet]:
        """The needs probe alone (signatures and outlines), best first."""
        rel = self.relative(path) if Path(path).is_absolute() else path
        return self.needs.snippets(rel or path, source, offset)


def fuse(
    rankings: list[list[Snippet]], k: int, rrf_k: int = 60, weights: tuple[float, ...] | None = None
) -> list[Snippet]:
    """Reciprocal-rank fusion: each list adds weight/(rrf_k + rank) to a chunk's score."""
    scores: dict[int, float] = {}
    found: dict[int, Snippet] = {}
    reasons: dict[int, list[str]] = {}
    for n, ranking in enumerate(rankings):
        weight = weights[n] if weights else 1.0
        for rank, snippet in enumerate(ranking):
            scores[snippet.chunk_id] = scores.get(snippet.chunk_id, 0.0) + weight / (rrf_k + rank + 1)
            found.setdefault(snippet.chunk_id, snippet)
            reasons.setdefault(snippet.chunk_id, []).append(snippet.reason)
    best = sorted(scores, key=lambda i: -scores[i])[:k]
    return [dataclasses.replace(found[i], score=scores[i], reason="+".join(reasons[i])) for i in best]


def _unchanged(old: FileRecord | None, f: SourceFile) -> bool:
    return old is not None and old.size == f.size and old.mtime_ns == f.mtime_ns
