"""CodeKbServer: protocol work only (URIs and positions in, results out) around the plain-Python
Session, which owns the settings, the model, the indexes and the rules; handlers live in features/.

Threads: the event loop runs the handlers and owns `session.settings`; the scheduler's one model
thread runs completions, next edits, prompts and idle work (and loads the models, which assigns
`session.completer` and the next-edit predictor); the index thread (indexing.py) updates the indexes."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol
from pygls.uris import to_fs_path
from pygls.workspace.position_codec import ServerTextPosition
from pygls.workspace.text_document import TextDocument

from engine import Completer, Completion, EngineError
from engine.next_edit import TextEdit

from . import __version__
from .config import Settings
from .idle import Idle
from .indexing import Indexes, Reporter
from .progress import WorkDoneProgress
from .scheduler import Scheduler
from .session import Buffer, Cursor, Refused, Session

log = logging.getLogger(__name__)

# A test hook, reachable only through the server process's environment, never from settings: with
# CODE_KB_TEST_NEXT_EDIT='{"find": "old", "text": "new"}' each next-edit prediction (the model still
# runs) answers one edit that replaces the first `old` in the document with `new`, or, with
# '{"insert": "text"}', one that inserts `text` at the cursor. A list of such objects answers the
# first that applies (a `find` that is in the document, or an insert), so that one editor session
# can meet several kinds of edit. The end-to-end tests use it to follow an edit's whole round trip,
# which the tiny test model's noise rarely produces.
TEST_NEXT_EDIT_ENV = "CODE_KB_TEST_NEXT_EDIT"

# LSP ends lines only at \n, \r\n and \r. pygls 2.1 splits documents with str.splitlines, which
# also breaks at \f, \v, \x1c-\x1e, \x85, \u2028 and \u2029: after a form feed (^L page breaks in C
# and Lisp, or a model's output) every position the client sends lands on the wrong line, and
# incremental edits go to the wrong place. Its document class reads lines from this one property.
_LSP_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$")


def _lsp_lines(document: TextDocument) -> tuple[str, ...]:
    return tuple(m.group(0) for m in _LSP_LINE.finditer(document.source))


TextDocument.lines = property(_lsp_lines)  # type: ignore[assignment]


class _Answered:
    """A request already answered with an error while it was read; nothing more to do."""

    jsonrpc = ""


def str_offset(document: TextDocument, position: types.Position) -> int:
    """A position in the client's units as a `str` offset into the document: the one conversion in.
    pygls answers a line past the end with the last line's length in client units (UTF-16), which
    is past the text when that line holds characters beyond the BMP; the end of the text is meant."""
    return min(document.offset_at_position(position), len(document.source))


def lsp_position(document: TextDocument, offset: int) -> types.Position:
    """A `str` offset into the document as a position in the client's units (UTF-16 unless the client
    chose another encoding). pygls's `client_position_at_offset` puts the end of a document without a
    final newline on a line past it, and fails on an empty one."""
    lines = document.lines
    at = 0
    for number, line in enumerate(lines):
        content = len(line.rstrip("\r\n"))
        if offset < at + len(line) or offset <= at + content:  # inside a line break: at its start
            column = min(offset - at, content)
            return document.position_to_client_units(ServerTextPosition(number, column))
        at += len(line)
    return types.Position(line=len(lines), character=0)


@dataclasses.dataclass(frozen=True)
class OfferedEdit:
    """A next edit as the client gets it: its range in the client's units, under an id for accepting."""

    id: str
    range: types.Range
    text: str
    version: int


def _test_next_edit() -> list[dict[str, str]] | None:
    raw = os.environ.get(TEST_NEXT_EDIT_ENV)
    if not raw:
        return None
    hook = json.loads(raw)
    log.warning("test hook %s set: next edits are fixed edits, not the model's", TEST_NEXT_EDIT_ENV)
    hooks = [h for h in (hook if isinstance(hook, list) else [hook]) if isinstance(h, dict)]
    return hooks or None


def _test_edits(hooks: list[dict[str, str]], source: str, offset: int) -> list[TextEdit]:
    for hook in hooks:
        if "insert" in hook:
            return [TextEdit(offset, offset, hook["insert"])]
        at = source.find(hook["find"])
        if at >= 0:
            return [TextEdit(at, at + len(hook["find"]), hook["text"])]
    return []


class CodeKbProtocol(LanguageServerProtocol):
    """pygls's protocol, without its leak of one future per notification, and answering requests
    whose parameters do not fit the protocol's types.

    pygls 2.1 files the future of every generator handler (its own didOpen, didChange, didClose and
    didSave, each a generator) and of every step such a handler yields to, under a fresh id in
    `_request_futures`, and only request replies ever remove one: a server that ran for days kept a
    Future, a lock and a uuid for every keystroke. Here each is forgotten once it is done.

    A request whose parameters fail validation (a negative position, a line past 2^31) makes pygls
    log the error and answer nothing, so the client waits for ever; here it gets InvalidParams."""

    def _execute_handler(self, msg_id, handler, callback, args=None, kwargs=None):
        def done(future, then=callback) -> None:
            if self._request_futures.get(msg_id) is future:
                del self._request_futures[msg_id]
            if then is not None:
                then(future)

        return super()._execute_handler(msg_id, handler, done, args, kwargs)

    def structure_message(self, data: dict[str, Any]):
        try:
            return super().structure_message(data)
        except JsonRpcInvalidParams as exc:
            if "id" not in data or "method" not in data:
                raise
            cause = exc.__cause__
            inner = getattr(cause, "exceptions", None)  # cattrs' validation group: the first problem
            detail = str(inner[0]) if inner else str(cause or exc)
            error = JsonRpcInvalidParams(f"invalid params for {data['method']}: {detail}")
            self._send_response(data["id"], error=error.to_response_error())
            return _Answered()

    def handle_message(self, message) -> None:
        if not isinstance(message, _Answered):
            super().handle_message(message)


class CodeKbServer(LanguageServer):
    def __init__(self, settings: Settings | None = None) -> None:
        super().__init__("code-kb", __version__, protocol_cls=CodeKbProtocol)
        self.session = Session(settings or Settings.load())
        self.init_options: dict[str, Any] = {}
        self.overrides: dict[str, Any] = {}  # command-line flags, above every other source
        self.scheduler = Scheduler()
        self.progress_bars = WorkDoneProgress(self)  # not `progress`: LanguageServer has that method
        self._model_future: asyncio.Future | None = None
        self._next_edit_future: asyncio.Future | None = None
        self.idle = Idle(self.session, self.scheduler)
        self._shown: set[str] = set()
        self._logged: set[str] = set()
        self._test_next_edit = _test_next_edit()

    @property
    def settings(self) -> Settings:
        return self.session.settings

    @property
    def indexes(self) -> Indexes | None:
        return self.session.indexes  # type: ignore[return-value]

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

    def log_once(self, message: str) -> None:
        """Why something is not done, to the client's log once; every occurrence to ours."""
        if message in self._logged:
            log.debug("%s", message)
            return
        self._logged.add(message)
        self.log_to_client(message)

    # -- start-up and settings ---------------------------------------------------------
    def start(self, settings: Settings, roots: list[Path]) -> None:
        """Called on `initialized`: load the model and index the roots without blocking the reply."""
        self.session.settings = settings
        if settings.problems:
            self.show_once("; ".join(settings.problems), types.MessageType.Warning)
        self.load_model()
        self.load_next_edit_model()
        self.start_indexes(roots)

    def load_model(self) -> None:
        def load() -> Completer | None:
            try:
                return self.session.load_model()
            except EngineError as exc:
                self.show_once(str(exc))
                return None

        self._model_future = asyncio.get_running_loop().run_in_executor(self.scheduler.executor, load)

    def load_next_edit_model(self) -> None:
        """Load the next-edit model on the model thread, after the completion model (queued behind it),
        or drop it when next edits are off."""
        session = self.session
        if not session.next_edit_wanted:
            session.unload_next_edit_model()
            self._next_edit_future = None
            return

        def load() -> bool:
            try:
                session.load_next_edit_model()
            except EngineError as exc:
                self.show_once(str(exc))
                return False
            return True

        self._next_edit_future = asyncio.get_running_loop().run_in_executor(self.scheduler.executor, load)

    def apply_settings(self, new: Settings) -> None:
        """Settings changed at run time: reload only what depends on what changed."""
        if new.problems:
            self.show_once("; ".join(new.problems), types.MessageType.Warning)
        change = self.session.apply_settings(new)
        if change.reload_model:
            log.info("model settings changed: reloading the model")
            self.load_model()
        elif self.session.completer is not None:
            self._model_future = asyncio.get_running_loop().create_future()
            self._model_future.set_result(self.session.completer)
        if change.reload_next_edit:
            self.log_to_client(
                "next-edit settings changed: "
                + ("reloading the next-edit model" if self.session.next_edit_wanted else "next edits are off")
            )
            self.load_next_edit_model()
        if change.reindex and self.indexes is not None:
            log.info("index settings changed: reindexing every root")
            roots = list(self.indexes.roots)
            self.indexes.close()
            self.start_indexes(roots)

    def start_indexes(self, roots: list[Path]) -> None:
        reporter = Reporter(
            self.progress_bars.begin,
            self.progress_bars.end,
            self.log_to_client,
            self.show_once,
            self._index_ready,
        )
        indexes = Indexes(self.settings.index, reporter)
        for uri in list(self.workspace.text_documents):
            if "\0" not in uri and urlsplit(uri).scheme == "file" and (path := to_fs_path(uri)):
                indexes.opened(Path(path))
        self.session.indexes = indexes
        for root in roots:
            indexes.add_root(root)

    def _index_ready(self, root: Path) -> None:
        """A root's index is complete: the repository part of its open documents' prompts is
        evaluated again while the model is idle (on open it was built from a partial index, or
        none), so that a first request finds its context in the KV cache."""
        for uri in list(self.workspace.text_documents):
            buffer = self.buffer(uri)
            if buffer is not None and buffer.path is not None and self.indexes is not None:
                if self.indexes.root_for(buffer.path) == root:
                    self.idle.warm(buffer, None)

    # -- documents -------------------------------------------------------------------
    def buffer(self, uri: str) -> Buffer | None:
        """An open document as the session takes it, or None (logged): not opened by the client, or
        not a file nor an unsaved buffer (`git:`, `output:` ...). Never pygls's fallback that reads the
        file from disk: a request naming any path must not make the server read it (it may lie
        outside every workspace folder, or be a secret)."""
        doc = self.workspace.text_documents.get(unquote(uri))
        if doc is None:
            log.info("%s is not open: send textDocument/didOpen first", uri[:200])
            return None
        scheme = urlsplit(uri).scheme if "\0" not in uri else ""
        if scheme == "file" and (fs_path := to_fs_path(uri)):
            return Buffer(Path(fs_path), doc.source, doc.language_id or "")
        if scheme == "untitled":  # VS Code's new, unsaved file: its own text is the context
            return Buffer(
                None, doc.source, doc.language_id or "", label=unquote(uri[len("untitled:") :]) or "untitled"
            )
        log.info("nothing for %s: not a file (scheme %r)", uri[:200], scheme)
        return None

    def cursor(self, uri: str, position: types.Position) -> Cursor | None:
        """The cursor of a request, converted once from LSP's UTF-16 position; None (logged) when
        the document is not open or not one to complete in."""
        try:
            return self._cursor(uri, position)
        except Refused as why:
            log.info("nothing for %s: %s", uri[:200], why)
            return None

    def _cursor(self, uri: str, position: types.Position) -> Cursor:
        """The cursor of a request, or Refused saying why there is none."""
        buffer = self.buffer(uri)
        if buffer is None:
            raise Refused(f"document not open (or not a file): {uri[:200]}; send textDocument/didOpen first")
        return self.session.cursor(buffer, str_offset(self.workspace.text_documents[unquote(uri)], position))

    # -- completion ------------------------------------------------------------------
    async def complete(
        self, uri: str, position: types.Position, n_candidates: int = 1, kind: str = "inline"
    ) -> Completion | None:
        """A completion at a cursor, or None: superseded, cancelled, refused or no model.

        A newer request of the same `kind` for the same document supersedes an older one; the two
        kinds do not (editors send a completion-list and a ghost-text request on one keystroke)."""
        cursor = self.cursor(uri, position)
        if cursor is None or self._model_future is None:
            return None
        if await asyncio.shield(self._model_future) is None:
            return None
        session = self.session
        try:
            result = await self.scheduler.latest(
                f"{kind} {uri}",
                self.settings.server.debounce_ms / 1000,
                lambda cancel: session.complete(cursor, cancel, n_candidates, quick=True),
                label=uri,
            )
        except EngineError as exc:
            self.show_once(str(exc))
            return None
        if result is None or result.generation.stop_reason == "cancelled":
            return None
        if (work := session.follow_up(cursor, result)) is not None:
            self.idle.run(work)  # while the user reads the suggestion, compute the one after it
        return result

    # -- next edits ------------------------------------------------------------------
    async def _next_edits_ready(self) -> bool:
        """Whether a next-edit model is loaded; if not, why goes to the client's log once."""
        session = self.session
        if not session.next_edit_wanted:
            self.log_once(
                "no next edits: nextEdit is false"
                if session.settings.next_edit.model_path or session.settings.next_edit.endpoint
                else "no next edits: no next-edit model; set nextEditModel to sweep-next-edit-1.5b "
                "(`code-kb model pull sweep-next-edit-1.5b`) or to a GGUF file, or nextEditEndpoint "
                "to a server"
            )
            return False
        if self._next_edit_future is None or not await asyncio.shield(self._next_edit_future):
            self.log_once("no next edits: the next-edit model did not load (the server's messages say why)")
            return False
        return True

    async def next_edit(self, uri: str, position: types.Position, version: int | None) -> list[OfferedEdit]:
        """The next edits at a cursor in the client's units, or none: a stale `version` (the client's
        document moved on), superseded, cancelled, refused or no next-edit model."""
        found = await self._next_edits(uri, position, version, "next-edit")
        return self._offer(*found) if found is not None else []

    async def next_edit_insertion(self, uri: str, position: types.Position) -> OfferedEdit | None:
        """A next edit that is a plain insertion at the cursor, and the only edit predicted there: ghost
        text for inline-completion clients. None otherwise, and silently without a next-edit model."""
        if not self.session.next_edit_wanted:
            return None
        found = await self._next_edits(uri, position, None, "next-edit-inline")
        if found is None:
            return None
        doc, asked, cursor, edits = found
        if len(edits) != 1 or not (edits[0].start == edits[0].end == cursor.offset and edits[0].text):
            return None
        return self._offer(doc, asked, cursor, edits)[0]

    async def _next_edits(
        self, uri: str, position: types.Position, version: int | None, kind: str
    ) -> tuple[TextDocument, int, Cursor, list[TextEdit]] | None:
        """The predicted edits with the document and version they apply to. A newer request of the same
        `kind` for the same document supersedes an older one."""
        doc = self.workspace.text_documents.get(unquote(uri))
        if doc is None or (version is not None and doc.version != version):
            log.info(
                "no next edit for %s: version %s is not the document's (%s)",
                uri[:200],
                version,
                doc.version if doc is not None else "not open",
            )
            return None
        asked = doc.version if doc.version is not None else 0
        cursor = self.cursor(uri, position)
        if cursor is None or not await self._next_edits_ready():
            return None
        session = self.session
        try:
            result = await self.scheduler.latest(
                f"{kind} {uri}",
                self.settings.server.debounce_ms / 1000,
                lambda cancel: session.next_edit(cursor, cancel),
                label=uri,
            )
        except EngineError as exc:
            self.show_once(str(exc))
            return None
        if self.workspace.text_documents.get(unquote(uri)) is not doc or doc.version != asked:
            log.info("next edit for %s dropped: the document changed while it was computed", uri[:200])
            return None
        edits = result.edits if result is not None else []
        if self._test_next_edit is not None:
            edits = _test_edits(self._test_next_edit, cursor.source, cursor.offset)
        return doc, asked, cursor, edits

    def _offer(
        self, doc: TextDocument, version: int, cursor: Cursor, edits: list[TextEdit]
    ) -> list[OfferedEdit]:
        """Edits converted once to the client's units, each under the id its accept command carries."""
        ids = self.session.next_edits.offer(cursor.place.path, edits)
        return [
            OfferedEdit(
                i,
                types.Range(start=lsp_position(doc, e.start), end=lsp_position(doc, e.end)),
                e.text,
                version,
            )
            for i, e in zip(ids, edits)
        ]

    async def prompt_json(self, uri: str, position: types.Position) -> dict:
        """The `code-kb context --json` object for a position (the codeKb/context request)."""
        try:
            cursor = self._cursor(uri, position)
        except Refused as why:
            raise JsonRpcInvalidParams(f"code-kb builds no prompt here: {why}") from None
        if self._model_future is not None:
            await asyncio.shield(self._model_future)  # exact counts once the model is loaded

        def run() -> dict:
            prompt, _ = self.session.prompt(cursor)
            return prompt.to_dict(cursor.place.path, cursor.line + 1, cursor.col + 1)

        return await self.scheduler.offload(run)

    def status(self) -> dict:
        """What codeKb.status reports: the session's status plus scheduling."""
        report = self.session.status(self.indexes.status() if self.indexes else []).to_dict()
        report.update(
            scheduler=dataclasses.asdict(self.scheduler.stats),
            generating=self.scheduler.running,
            requests_in_flight=len(self.protocol._request_futures),
        )
        return report

    def close(self) -> None:
        self.idle.close()
        self.scheduler.shutdown()
        if self.indexes is not None:
            self.indexes.close()


def build_server(settings: Settings | None = None, overrides: dict[str, Any] | None = None) -> CodeKbServer:
    from .features import register_all

    server = CodeKbServer(settings)
    server.overrides = dict(overrides or {})
    register_all(server)
    return server
