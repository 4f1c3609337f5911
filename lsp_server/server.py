"""CodeKbServer: owns the index, the model and the one model thread; handlers live in features/."""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TypeVar

from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pygls.lsp.server import LanguageServer
from pygls.uris import to_fs_path

from engine import Completer, Completion, EngineError
from retrieval import CodeIndex, RetrievalError

from . import __version__
from .config import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class CursorRequest:
    """A position in an open document, converted once from LSP's UTF-16 units."""

    uri: str
    path: str  # relative to the workspace root where the file lies inside it
    source: str
    offset: int
    line: int  # 0-based
    col: int  # 0-based, code points


class CodeKbServer(LanguageServer):
    def __init__(self, settings: Settings | None = None) -> None:
        super().__init__("code-kb", __version__)
        self.settings = settings or Settings.load()
        self.root: Path | None = None
        self.index: CodeIndex | None = None
        self.index_ready = False
        self.completer: Completer | None = None
        self._model_future: asyncio.Future | None = None
        self._model_thread = ThreadPoolExecutor(1, thread_name_prefix="code-kb-model")
        self._index_thread = ThreadPoolExecutor(1, thread_name_prefix="code-kb-index")
        self._newest: dict[str, int] = {}
        self._running: dict[str, threading.Event] = {}
        self._shown: set[str] = set()
        self.last_completion: Completion | None = None

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

    # -- start-up ----------------------------------------------------------------------
    def start_background(self, root: Path | None) -> None:
        """Called on `initialized`: load the model and index the workspace without blocking the reply."""
        loop = asyncio.get_running_loop()
        self.root = root
        self._model_future = loop.run_in_executor(self._model_thread, self._load_model)
        if root is not None:
            try:
                self.index = CodeIndex(root, self.settings.index)
            except RetrievalError as exc:
                self.show_once(str(exc))
                return
            asyncio.ensure_future(self.reindex(initial=True))

    def _load_model(self) -> Completer | None:
        try:
            self.completer = Completer.load(self.settings.engine)
        except EngineError as exc:
            self.show_once(str(exc))
            return None
        log.info("model ready: %s, template %s, prompt budget %d tokens", self.completer.model.path,
                 self.completer.template.name, self.completer.budget_tokens)
        return self.completer

    async def reindex(self, initial: bool = False) -> None:
        """Incremental reindex on the index thread, with $/progress when the client supports it."""
        if self.index is None:
            return
        loop = asyncio.get_running_loop()
        token = f"code-kb-index-{uuid.uuid4().hex[:8]}"
        progress = await self._progress_begin(token, "code-kb: indexing")
        last = [-1]

        def report(done: int, total: int, what: str) -> None:
            pct = int(100 * done / total) if total else 100
            if progress and pct != last[0]:
                last[0] = pct
                loop.call_soon_threadsafe(self.work_done_progress.report, token, types.WorkDoneProgressReport(
                    message=f"{done}/{total} {what}", percentage=pct))

        try:
            stats = await loop.run_in_executor(self._index_thread, self.index.reindex, report)
        except RetrievalError as exc:
            self.show_once(str(exc))
            return
        finally:
            if progress:
                self.work_done_progress.end(token, types.WorkDoneProgressEnd(message="done"))
        self.index_ready = True
        self.log_to_client(f"code-kb: index ready for {self.root}: {stats.summary()}")

    async def _progress_begin(self, token: str, title: str) -> bool:
        caps = self.client_capabilities.window
        if not (caps and caps.work_done_progress):
            return False
        try:
            await self.work_done_progress.create_async(token)
        except (JsonRpcException, asyncio.TimeoutError) as exc:  # refused: index without a bar
            log.info("client refused progress token: %s", exc)
            return False
        self.work_done_progress.begin(token, types.WorkDoneProgressBegin(title=title, percentage=0, cancellable=False))
        return True

    # -- completion ------------------------------------------------------------------
    def cursor(self, uri: str, position: types.Position) -> CursorRequest:
        doc = self.workspace.get_text_document(uri)
        offset = doc.offset_at_position(position)
        fs_path = Path(to_fs_path(uri) or uri)
        path = fs_path.as_posix()
        if self.root is not None and fs_path.is_relative_to(self.root):
            path = fs_path.relative_to(self.root).as_posix()
        line = doc.source.count("\n", 0, offset)
        col = offset - (doc.source.rfind("\n", 0, offset) + 1)
        return CursorRequest(uri, path, doc.source, offset, line, col)

    async def complete(self, uri: str, position: types.Position) -> Completion | None:
        """The newest request for a document wins: older ones are answered empty, their generation stopped."""
        ticket = self._newest.get(uri, 0) + 1
        self._newest[uri] = ticket
        if uri in self._running:
            self._running[uri].set()
        completer = await self._completer()
        if completer is None or self._newest.get(uri) != ticket:
            return None
        request = self.cursor(uri, position)
        cancel = threading.Event()
        self._running[uri] = cancel

        def run() -> Completion | None:
            if self._newest.get(uri) != ticket:  # superseded while queued
                return None
            return completer.complete(request.path, request.source, request.offset, self.context_source(),
                                      self.repo_name(), cancel=cancel)

        try:
            result = await self.offload(run)
        except asyncio.CancelledError:  # $/cancelRequest
            cancel.set()
            raise
        except EngineError as exc:
            self.show_once(str(exc))
            return None
        finally:
            if self._running.get(uri) is cancel:
                del self._running[uri]
        if result is not None:
            self.last_completion = result
        return result

    async def _completer(self) -> Completer | None:
        if self._model_future is None:
            return None
        return await asyncio.shield(self._model_future)

    async def offload(self, fn: Callable[..., T], *args: Any) -> T:
        """Run plain engine/retrieval code on the one model thread; the event loop keeps reading."""
        return await asyncio.get_running_loop().run_in_executor(self._model_thread, fn, *args)

    def context_source(self) -> CodeIndex | None:
        return self.index if self.index_ready else None

    def repo_name(self) -> str:
        return self.root.name if self.root else ""

    async def prompt_json(self, uri: str, position: types.Position) -> dict:
        """The `code-kb context --json` object for a position (the codeKb/context request)."""
        request = self.cursor(uri, position)
        completer = await self._completer()
        if completer is None:
            completer = Completer(self.settings.engine)  # estimate counts: no model to tokenise with

        def run() -> dict:
            prompt, _ = completer.prompt(request.path, request.source, request.offset, self.context_source(),
                                         self.repo_name())
            return prompt.to_dict(request.path, request.line + 1, request.col + 1)

        return await self.offload(run)

    def close(self) -> None:
        self._model_thread.shutdown(wait=False, cancel_futures=True)
        self._index_thread.shutdown(wait=False, cancel_futures=True)
        if self.index is not None:
            self.index.close()


def build_server(settings: Settings | None = None) -> CodeKbServer:
    from .features import register_all

    server = CodeKbServer(settings)
    register_all(server)
    return server
