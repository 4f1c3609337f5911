"""CodeKbServer: owns the settings, the model, the indexes and the scheduler; handlers live in features/."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol
from pygls.uris import to_fs_path
from pygls.workspace.text_document import TextDocument

from engine import Completer, Completion, EngineConfig, EngineError
from engine.config import needs_reload
from engine.recent import RecentEdits, WithRecentEdits
from . import __version__
from .config import Settings
from .indexing import Indexes, Progress, Reporter
from .paths import Located, holds_secrets, locate
from .scheduler import Scheduler

log = logging.getLogger(__name__)

# LSP ends lines only at \n, \r\n and \r. pygls 2.1 splits documents with str.splitlines, which
# also breaks at \f, \v, \x1c-\x1e, \x85, \u2028 and \u2029: after a form feed (^L page breaks in C
# and Lisp, or a model's output) every position the client sends lands on the wrong line, and
# incremental edits go to the wrong place. Its document class reads lines from this one property.
_LSP_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$")


def _lsp_lines(document: TextDocument) -> tuple[str, ...]:
    return tuple(m.group(0) for m in _LSP_LINE.finditer(document.source))


TextDocument.lines = property(_lsp_lines)  # type: ignore[assignment]


class CodeKbProtocol(LanguageServerProtocol):
    """pygls's protocol, without its leak of one future per notification.

    pygls 2.1 files the future of every generator handler (its own didOpen, didChange, didClose and
    didSave, each a generator) and of every step such a handler yields to, under a fresh id in
    `_request_futures`, and only request replies ever remove one: a server that ran for days kept a
    Future, a lock and a uuid for every keystroke. Here each is forgotten once it is done."""

    def _execute_handler(self, msg_id, handler, callback, args=None, kwargs=None):  # type: ignore[override]
        def done(future, then=callback) -> None:
            if self._request_futures.get(msg_id) is future:
                del self._request_futures[msg_id]
            if then is not None:
                then(future)

        return super()._execute_handler(msg_id, handler, done, args, kwargs)


@dataclass
class CursorRequest:
    """A position in an open document, converted once from LSP's UTF-16 units."""

    uri: str
    root: Path | None
    path: str  # relative to its workspace root where it lies inside one
    source: str
    offset: int
    line: int  # 0-based
    col: int  # 0-based, code points
    language_id: str


class CodeKbServer(LanguageServer):
    def __init__(self, settings: Settings | None = None) -> None:
        super().__init__("code-kb", __version__, protocol_cls=CodeKbProtocol)
        self.settings = settings or Settings.load()
        self.init_options: dict[str, Any] = {}
        self.overrides: dict[str, Any] = {}  # command-line flags, above every other source
        self.indexes: Indexes | None = None
        self.completer: Completer | None = None
        self.scheduler = Scheduler()
        self._model_future: asyncio.Future | None = None
        self._shown: set[str] = set()
        self._tokens: dict[str, str] = {}  # progress title -> token
        self._pause_timers: dict[str, asyncio.TimerHandle] = {}  # uri -> warm-up after a pause
        self.recent_edits = RecentEdits()
        self.started = time.monotonic()

    # -- messages --------------------------------------------------------------------
    def show_once(self, message: str, kind: types.MessageType = types.MessageType.Error) -> None:
        """A user-fixable problem reaches the user once; every occurrence goes to the log."""
        log.warning("%s", message)
        if message not in self._shown:
            self._shown.add(message)
            self.window_show_message(types.ShowMessageParams(type=kind, message=f"code-kb: {message}"))

    def log_to_client(self, message: str) -> None:
        log.info("%s", message)
        self.window_log_message(types.LogMessageParams(type=types.MessageType.Info, message=message))

    def report_problems(self) -> None:
        if self.settings.problems:
            self.show_once("; ".join(self.settings.problems), types.MessageType.Warning)

    # -- start-up and settings ---------------------------------------------------------
    def start_background(self, roots: list[Path]) -> None:
        """Called on `initialized`: load the model and index the roots without blocking the reply."""
        self.load_model()
        self.start_indexes(roots)

    def load_model(self) -> None:
        loop = asyncio.get_running_loop()
        self._model_future = loop.run_in_executor(self.scheduler.executor, self._load_model, self.settings.engine)

    def _load_model(self, config: EngineConfig) -> Completer | None:
        self.completer = None
        try:
            self.completer = Completer.load(config)
        except EngineError as exc:
            self.show_once(str(exc))
            return None
        log.info("model ready: %s", self.completer.describe())
        return self.completer

    def apply_settings(self, new: Settings) -> None:
        """Settings changed at run time: reload only what depends on what changed."""
        old, self.settings = self.settings, new
        self.report_problems()
        if needs_reload(old.engine, new.engine):
            log.info("model settings changed: reloading the model")
            self.load_model()
        elif self.completer is not None and old.engine != new.engine:
            self.completer = self.completer.reconfigured(new.engine)
            self._model_future = asyncio.get_running_loop().create_future()
            self._model_future.set_result(self.completer)
        if old.index != new.index and self.indexes is not None:
            log.info("index settings changed: reindexing every root")
            roots = list(self.indexes.roots)
            self.indexes.close()
            self.start_indexes(roots)

    def start_indexes(self, roots: list[Path]) -> None:
        self.indexes = Indexes(self.settings.index, Reporter(self._progress_begin, self._progress_end,
                                                             self.log_to_client, self.show_once))
        for root in roots:
            self.indexes.add_root(root)

    # -- progress --------------------------------------------------------------------
    async def _progress_begin(self, title: str) -> Progress | None:
        caps = self.client_capabilities.window
        if not (caps and caps.work_done_progress):
            return None
        token = f"code-kb-{uuid.uuid4().hex[:8]}"
        try:
            await self.work_done_progress.create_async(token)
        except (JsonRpcException, asyncio.TimeoutError) as exc:  # refused: index without a bar
            log.info("client refused progress token: %s", exc)
            return None
        self._tokens[title] = token
        self.work_done_progress.begin(token, types.WorkDoneProgressBegin(title=title, percentage=0, cancellable=False))
        loop = asyncio.get_running_loop()
        last = [-1]

        def report(done: int, total: int, what: str) -> None:  # called on the index thread
            pct = int(100 * done / total) if total else 100
            if pct != last[0]:
                last[0] = pct
                loop.call_soon_threadsafe(self.work_done_progress.report, token, types.WorkDoneProgressReport(
                    message=f"{done}/{total} {what}", percentage=pct))

        return report

    def _progress_end(self, title: str) -> None:
        token = self._tokens.pop(title, None)
        if token is not None:
            self.work_done_progress.end(token, types.WorkDoneProgressEnd(message="done"))

    # -- completion ------------------------------------------------------------------
    def locate(self, uri: str) -> Located:
        """A document as named and as resolved, relative to the workspace root holding it."""
        fs_path = Path(to_fs_path(uri) or uri)
        root = self.indexes.root_for(fs_path) if self.indexes else None
        return locate(fs_path, root)

    def relative_path(self, uri: str) -> tuple[Path | None, str]:
        """The workspace root holding a document, and its path relative to that root (or absolute).
        A workspace opened through a symbolic link has its files under the (resolved) root."""
        located = self.locate(uri)
        return located.root, located.path

    def open_document(self, uri: str) -> TextDocument | None:
        """A document the client opened, or None. Never pygls's fallback that reads the file from
        disk: a request naming any path must not make the server read it (it may lie outside every
        workspace folder, or be a secret)."""
        return self.workspace.text_documents.get(unquote(uri))

    def private(self, uri: str, doc: TextDocument) -> bool:
        """A secret (.env, key, credential file, the deny list, a private key block): no completion,
        no warming, no recent-edit snippets, so its text never enters a prompt."""
        return holds_secrets(self.locate(uri), self.settings.index.deny_patterns, doc.source)

    def cursor(self, uri: str, position: types.Position) -> CursorRequest:
        doc = self.open_document(uri)
        if doc is None:
            raise JsonRpcInvalidParams(f"document not open: {uri}; send textDocument/didOpen first")
        offset = doc.offset_at_position(position)
        root, path = self.relative_path(uri)
        line = doc.source.count("\n", 0, offset)
        col = offset - (doc.source.rfind("\n", 0, offset) + 1)
        return CursorRequest(uri, root, path, doc.source, offset, line, col, doc.language_id or "")

    async def complete(self, uri: str, position: types.Position, n_candidates: int = 1,
                       kind: str = "inline") -> Completion | None:
        """A completion at a cursor, or None: superseded, cancelled, disabled or no model.

        A newer request of the same `kind` for the same document supersedes an older one; the two
        kinds do not (editors send a completion-list and a ghost-text request on one keystroke)."""
        doc = self.open_document(uri)
        if doc is None:
            log.info("completion for %s skipped: the document is not open", uri)
            return None
        if self.private(uri, doc):
            log.info("completion for %s skipped: it holds secrets", uri)
            return None
        request = self.cursor(uri, position)
        if request.language_id in self.settings.server.disabled_languages:
            return None
        completer = await self._completer()
        if completer is None:
            return None
        context = self.context_for(request.root)
        repo = request.root.name if request.root else ""

        def work(cancel) -> Completion:
            return completer.complete(request.path, request.source, request.offset, context, repo, cancel=cancel,
                                      n_candidates=n_candidates)

        try:
            result = await self.scheduler.latest(f"{kind} {uri}", self.settings.server.debounce_ms / 1000, work,
                                                 label=uri)
        except EngineError as exc:
            self.show_once(str(exc))
            return None
        if result is None or result.generation.stop_reason == "cancelled":
            return None
        if result.text and self.settings.server.speculate:
            # While the user reads the suggestion, compute the one that follows it.
            self._when_idle(lambda cancel: completer.speculate(request.path, context, repo, cancel))
        return result

    def warm(self, uri: str, offset: int | None) -> None:
        """Fill the KV cache for a document while the model is idle: its repository part on open
        (`offset` None), the whole prompt at the last edit after a pause."""
        completer = self.completer
        if completer is None or not completer.warms or not self.settings.server.warm:
            return
        root, path = self.relative_path(uri)
        if root is None:  # not in a workspace folder (an editor's settings file): not worth the model's time
            return
        doc = self.open_document(uri)
        if doc is None or (doc.language_id or "") in self.settings.server.disabled_languages \
                or self.private(uri, doc):
            return
        context = self.context_for(root)
        source = doc.source
        self._when_idle(lambda cancel: completer.warm(path, source, offset or 0, context,
                                                      root.name if root else "", cancel, whole=offset is not None))

    def edited(self, uri: str, offset: int) -> None:
        """A didChange at `offset`: remember it as a recent edit; once the user pauses (no request for
        a while), warm the cache there."""
        doc = self.open_document(uri)
        if doc is None or self.private(uri, doc):
            return
        self.recent_edits.record(self.relative_path(uri)[1], doc.source, offset)
        if (handle := self._pause_timers.pop(uri, None)) is not None:
            handle.cancel()
        delay = max(self.settings.server.debounce_ms * 3, 300) / 1000
        self._pause_timers[uri] = asyncio.get_running_loop().call_later(delay, self._paused, uri, offset)

    def _paused(self, uri: str, offset: int) -> None:
        self._pause_timers.pop(uri, None)
        if self.scheduler.running is None and not self.scheduler.pending():
            self.warm(uri, offset)

    def context_for(self, root: Path | None) -> WithRecentEdits:
        """What the engine draws snippets from: recent edits, then the root's index."""
        return WithRecentEdits(self.indexes.searchable(root) if self.indexes else None, self.recent_edits)

    def _when_idle(self, work) -> None:
        def guarded(cancel) -> None:
            try:
                work(cancel)
            except EngineError as exc:
                log.info("idle work skipped: %s", exc)

        self.scheduler.when_idle(guarded)

    async def _completer(self) -> Completer | None:
        if self._model_future is None:
            return None
        return await asyncio.shield(self._model_future)

    async def prompt_json(self, uri: str, position: types.Position) -> dict:
        """The `code-kb context --json` object for a position (the codeKb/context request)."""
        request = self.cursor(uri, position)
        if self.private(uri, self.open_document(uri)):
            raise JsonRpcInvalidParams(f"{request.path} holds secrets: code-kb builds no prompt for it")
        completer = await self._completer() or Completer(self.settings.engine)  # no model: estimated counts
        context = self.context_for(request.root)

        def run() -> dict:
            prompt, _ = completer.prompt(request.path, request.source, request.offset, context,
                                         request.root.name if request.root else "")
            return prompt.to_dict(request.path, request.line + 1, request.col + 1)

        return await self.scheduler.offload(run)

    def status(self) -> dict:
        """What codeKb.status reports: model, device, indexes, last latency and KV reuse, scheduling."""
        completer = self.completer
        model: dict[str, Any] = {"loaded": completer is not None, "path": self.settings.engine.model_path,
                                 "endpoint": self.settings.engine.endpoint}
        if completer is not None:
            model.update(completer.describe())
        last = None
        if completer is not None and completer.last is not None:
            c, g = completer.last, completer.last.generation
            last = {"latency_ms": round(c.total_ms, 1), "retrieval_ms": round(c.retrieval_ms, 1),
                    "generation_ms": round(g.ms, 1), "prompt_tokens": g.n_prompt, "evaluated_tokens": g.n_evaluated,
                    "reused_tokens": g.n_reused, "kv_reuse": round(g.n_reused / g.n_prompt, 3) if g.n_prompt else 0.0,
                    "generated_tokens": g.n_generated, "stop_reason": g.stop_reason,
                    "context_from": c.prompt.snippet_paths()}
        return {"version": __version__, "uptime_s": round(time.monotonic() - self.started, 1), "model": model,
                "indexes": self.indexes.status() if self.indexes else [], "last_completion": last,
                "scheduler": dataclasses.asdict(self.scheduler.stats), "generating": self.scheduler.running,
                "requests_in_flight": len(self.protocol._request_futures),
                "settings": {"debounce_ms": self.settings.server.debounce_ms,
                             "disabled_languages": list(self.settings.server.disabled_languages),
                             "max_tokens": self.settings.engine.max_tokens,
                             "embedding_model": self.settings.index.embedding_model}}

    def close(self) -> None:
        self.scheduler.shutdown()
        if self.indexes is not None:
            self.indexes.close()


def build_server(settings: Settings | None = None, overrides: dict[str, Any] | None = None) -> CodeKbServer:
    from .features import register_all

    server = CodeKbServer(settings)
    server.overrides = dict(overrides or {})
    register_all(server)
    return server
