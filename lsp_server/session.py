"""The application core, plain Python: which document, which root, whether it may be completed, and
the completer, indexes and recent edits that answer. The LSP server and the CLI both drive it.

No pygls and no argparse here: positions arrive as `str` offsets, documents as `Buffer`s, and the
work is synchronous (the server runs it on its model thread, the CLI in line).

One path policy: a document on disk is located once (as named and as resolved, relative to the
root holding it); a document outside every root, or an unsaved buffer, is completed from its own
text only, is never warmed and never becomes another prompt's recent edit or part of the next-edit
history. One secret policy: the name, the link's target and the text (`paths.holds_secrets`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from engine import Completer, Completion
from engine.backends.llama_cpp import LlamaCppModel
from engine.config import needs_reload
from engine.next_edit import EditHistory, NextEdit
from engine.prompt import ContextSource, Prompt
from engine.recent import RecentEdits, WithRecentEdits
from retrieval.secrets import MASK, SecretScanner, Span, apply_mask, overlaps

from . import __version__
from .config import Settings
from .next_edits import RELATED_SNIPPETS, LastNextEdit, NextEdits, model_bytes
from .paths import Located, holds_secrets, locate

log = logging.getLogger(__name__)

# Longer paths or names than the system takes cannot be files; refuse them before touching the disk.
MAX_PATH_BYTES = 4096
MAX_NAME_BYTES = 255

IdleWork = Callable[[threading.Event], None]


class Refused(Exception):
    """A document code-kb does not complete in, build prompts for or learn from; the message says why.
    Not an error: the server answers nothing and logs it, the CLI prints it."""


class IndexSource(Protocol):
    """Where the session finds the root holding a file and that root's index."""

    def root_for(self, path: Path) -> Path | None: ...

    def searchable(self, root: Path | None) -> Any: ...  # a ContextSource (retrieval's CodeIndex) or None


@dataclass(frozen=True)
class Buffer:
    """A document's text as the editor or the command line holds it."""

    path: Path | None  # absolute, as named (links not followed); None for an unsaved buffer
    source: str
    language_id: str = ""
    label: str = ""  # what the prompt calls an unsaved buffer (e.g. "Untitled-1")


@dataclass(frozen=True)
class Place:
    """Where a buffer lies: the root holding it (None outside every root) and the path prompts use."""

    root: Path | None
    path: str  # relative to the root where it lies under one, else absolute (or the buffer's label)
    in_repository: bool  # on disk under a root: repository context, recent edits and warming apply

    @property
    def repo(self) -> str:
        return self.root.name if self.root is not None else ""


@dataclass(frozen=True)
class Cursor:
    """A position in a buffer, as a code-point offset. `source` is the buffer's text with its inline
    secrets masked (same length: offsets into it are offsets into the buffer); `secrets` says where."""

    place: Place
    source: str
    offset: int
    secrets: tuple[Span, ...] = ()

    @property
    def line(self) -> int:  # 0-based
        return self.source.count("\n", 0, self.offset)

    @property
    def col(self) -> int:  # 0-based, code points
        return self.offset - (self.source.rfind("\n", 0, self.offset) + 1)


@dataclass(frozen=True)
class LastCompletion:
    latency_ms: float
    retrieval_ms: float
    generation_ms: float
    prompt_tokens: int
    evaluated_tokens: int
    reused_tokens: int
    kv_reuse: float
    generated_tokens: int
    stop_reason: str
    context_from: list[str]
    prompt_scope: str  # full, quick or steady (while the full prompt is evaluated in idle time), type-through

    @classmethod
    def of(cls, c: Completion) -> LastCompletion:
        g = c.generation
        return cls(
            round(c.total_ms, 1),
            round(c.retrieval_ms, 1),
            round(g.ms, 1),
            g.n_prompt,
            g.n_evaluated,
            g.n_reused,
            round(g.n_reused / g.n_prompt, 3) if g.n_prompt else 0.0,
            g.n_generated,
            g.stop_reason,
            c.prompt.snippet_paths(),
            c.scope,
        )


@dataclass(frozen=True)
class Status:
    """What `codeKb.status` reports (the server adds its scheduling figures)."""

    version: str
    uptime_s: float
    model: dict[str, Any]
    indexes: list[dict[str, Any]]
    last_completion: LastCompletion | None
    settings: dict[str, Any] = field(default_factory=dict)
    next_edit: dict[str, Any] = field(default_factory=dict)  # the model, loaded or not, and the counts
    last_next_edit: LastNextEdit | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SettingsChange:
    """What new settings require of whoever holds the session."""

    reload_model: bool
    reindex: bool
    reload_next_edit: bool = False  # load the next-edit model again (or drop it: `next_edit_wanted`)


class Session:
    """Settings, the completer, the indexes and the recent edits, and the rules that join them.

    Thread use: `load_model`, `load_next_edit_model`, `complete`, `next_edit`, `prompt` and the work
    `warm_up` and `follow_up` return run on the caller's one model thread; `place`, `cursor`, `opened`,
    `edited`, `closed`, `apply_settings` and `status` are cheap and run on the caller's main thread
    (the server's event loop)."""

    def __init__(
        self, settings: Settings, indexes: IndexSource | None = None, completer: Completer | None = None
    ) -> None:
        self.settings = settings
        self.indexes = indexes
        self.completer = completer
        self.recent_edits = RecentEdits()
        self.next_edits = NextEdits()
        self.started = time.monotonic()
        self._secrets = SecretScanner(settings.index.secret_patterns)

    @property
    def secrets(self) -> SecretScanner:
        """The inline-secret scanner for the settings in force (secretPatterns may change)."""
        if self._secrets.patterns != self.settings.index.secret_patterns:
            self._secrets = SecretScanner(self.settings.index.secret_patterns)
        return self._secrets

    # -- the model ---------------------------------------------------------------------
    def load_model(self, *, vocab_only: bool = False) -> Completer:
        """Load the configured model (raises EngineError with what to do); it replaces the old one."""
        self.completer = None
        self.completer = Completer.load(self.settings.engine, vocab_only=vocab_only)
        log.info("model ready: %s", self.completer.describe())
        return self.completer

    def apply_settings(self, new: Settings) -> SettingsChange:
        """Take new settings; say whether the model must be loaded again and the roots reindexed. A
        change that needs no reload keeps the loaded model under the new per-request settings."""
        old, self.settings = self.settings, new
        reload = needs_reload(old.engine, new.engine)
        if not reload and self.completer is not None and old.engine != new.engine:
            self.completer = self.completer.reconfigured(new.engine)
        return SettingsChange(
            reload_model=reload,
            reindex=old.index != new.index,
            reload_next_edit=old.next_edit != new.next_edit,
        )

    # -- the next-edit model -----------------------------------------------------------
    @property
    def next_edit_wanted(self) -> bool:
        """Whether next edits are configured (and on): a model to load and an edit history to keep."""
        wanted = self.settings.next_edit
        return wanted.enabled and bool(wanted.model_path or wanted.endpoint)

    def load_next_edit_model(self) -> None:
        """Load the configured next-edit model beside the completion model (raises EngineError with what
        to do, NextEditMemoryError where the machine cannot hold both); it replaces the old one. On the
        model thread, after the completion model, whose size the memory check counts."""
        completer = self.completer
        backend = completer.backend if completer is not None else None
        held = (
            model_bytes(backend, backend.n_ctx, backend.hardware.kv_cache_type)
            if (isinstance(backend, LlamaCppModel) and not backend.vocab_only)
            else 0
        )
        self.next_edits.load(self.settings.next_edit, self.settings.engine, held)

    def unload_next_edit_model(self) -> None:
        self.next_edits.unload()
        if not self.next_edit_wanted:
            self.next_edits.clear()

    # -- documents ---------------------------------------------------------------------
    def place(self, buffer: Buffer) -> Place:
        """Where a buffer lies, or Refused when it may not be completed: a path no system takes, a
        secret (by name, by link target or by its text), or a language the user turned off."""
        if buffer.language_id and buffer.language_id in self.settings.server.disabled_languages:
            raise Refused(f"completions are off for {buffer.language_id} (disabledLanguages)")
        if buffer.path is None:
            if holds_secrets(
                Located(None, buffer.label, buffer.label), self.settings.index.deny_patterns, buffer.source
            ):
                raise Refused(f"{buffer.label or 'the buffer'} holds secrets")
            return Place(None, buffer.label or "untitled", in_repository=False)
        _check_path(buffer.path)
        root = self.indexes.root_for(buffer.path) if self.indexes is not None else None
        located = locate(buffer.path, root)
        if holds_secrets(located, self.settings.index.deny_patterns, buffer.source):
            raise Refused(f"{located.named} holds secrets")
        return Place(root, located.path, in_repository=root is not None)

    def cursor(self, buffer: Buffer, offset: int) -> Cursor:
        """A cursor whose text has its inline secrets masked, as it was typed a moment ago. Refused in
        a secret or right after one: nothing is completed into a secret."""
        if not 0 <= offset <= len(buffer.source):
            raise Refused(f"offset {offset} lies outside the document (0-{len(buffer.source)})")
        place = self.place(buffer)
        spans = self.secrets.spans(buffer.source, place.path)
        if any(s.start < offset <= s.end for s in spans):
            raise Refused(f"the cursor in {place.path} is in an inline secret: nothing is completed there")
        return Cursor(place, apply_mask(buffer.source, spans), offset, tuple(spans))

    def context_for(self, place: Place) -> ContextSource | None:
        """What the engine draws snippets from: recent edits, then the root's index; nothing for a
        buffer outside every root (its own text is the whole prompt)."""
        if not place.in_repository:
            return None
        index = self.indexes.searchable(place.root) if self.indexes is not None else None
        return WithRecentEdits(index, self.recent_edits)

    def edited(self, buffer: Buffer, offset: int) -> Place | None:
        """An edit at `offset`: remembered as a recent edit of the repository (for other files'
        prompts). None when the buffer is not one to learn from."""
        try:
            place = self.place(buffer)
        except Refused as why:
            log.debug("edit not recorded: %s", why)
            if buffer.path is not None:  # it may hold a secret now: its earlier changes go too
                self.next_edits.closed(buffer.path)
            return None
        if not place.in_repository:
            if buffer.path is not None:
                self.next_edits.closed(buffer.path)
            return None
        masked = self.secrets.mask(buffer.source, place.path)  # what is remembered never holds a secret
        self.recent_edits.record(place.path, masked, offset)
        if self.next_edit_wanted and buffer.path is not None:
            self.next_edits.changed(buffer.path, place.path, masked)
        return place

    def opened(self, buffer: Buffer) -> None:
        """A document opened: its text is what its first change is compared with, for the next-edit
        history. Only documents on disk under a root that the policy lets us learn from."""
        if not self.next_edit_wanted or buffer.path is None:
            return
        try:
            place = self.place(buffer)
        except Refused:
            return
        if place.in_repository:
            self.next_edits.opened(buffer.path, place.path, self.secrets.mask(buffer.source, place.path))

    def closed(self, path: Path) -> None:
        """A document closed: its changes leave the next-edit history."""
        self.next_edits.closed(path)

    # -- work on the model thread ------------------------------------------------------
    def complete(
        self,
        cursor: Cursor,
        cancel: threading.Event | None = None,
        n_candidates: int = 1,
        quick: bool = False,
    ) -> Completion:
        """The completion at a cursor. `quick` (a server, whose idle time finishes the full prompt
        while `warm` is on) lets a cold request answer from a quick prompt."""
        completer = self._completer()
        return completer.complete(
            cursor.place.path,
            cursor.source,
            cursor.offset,
            self.context_for(cursor.place),
            cursor.place.repo,
            cancel=cancel,
            n_candidates=n_candidates,
            quick=quick and self.settings.server.warm,
        )

    def prompt(self, cursor: Cursor, budget_tokens: int | None = None) -> tuple[Prompt, float]:
        """The prompt at a cursor and the milliseconds retrieval took. Without a model the token
        counts are estimates."""
        completer = self.completer or Completer(self.settings.engine)
        return completer.prompt(
            cursor.place.path,
            cursor.source,
            cursor.offset,
            self.context_for(cursor.place),
            cursor.place.repo,
            budget_tokens=budget_tokens,
        )

    def next_edit(self, cursor: Cursor, cancel: threading.Event | None = None) -> NextEdit | None:
        """The user's likely next edit near a cursor, or None (nothing worth showing, or cancelled).
        A document outside every root is predicted from its own text only: no history of other
        documents' changes and no repository context, as for completions. EngineError without a
        next-edit model."""
        place = cursor.place
        history = self.next_edits.history if place.in_repository else EditHistory()
        found = self.next_edits.predict(
            place.path, cursor.source, cursor.offset, history, self._related(cursor), cancel
        )
        if found is None or not cursor.secrets:
            return found
        # The model saw `*` for each secret: an edit over one would write the stars into the file.
        kept = [
            e for e in found.edits if not overlaps(cursor.secrets, e.start, e.end) and MASK * 6 not in e.text
        ]
        if len(kept) < len(found.edits):
            log.info("next edit: %d edit(s) over an inline secret dropped", len(found.edits) - len(kept))
        return dataclasses.replace(found, edits=kept)

    def _related(self, cursor: Cursor) -> list[Any]:
        """Related context for a next-edit prompt from the root's index (the format's budget drops what
        does not fit). Recent edits are not added: the prompt has the history's changes already."""
        place = cursor.place
        if not place.in_repository or self.indexes is None:
            return []
        index = self.indexes.searchable(place.root)
        if index is None:
            return []
        return list(index.snippets(place.path, cursor.source, cursor.offset, RELATED_SNIPPETS))

    def follow_up(self, cursor: Cursor, result: Completion) -> IdleWork | None:
        """Work for when the model is idle after a completion was shown: the one that follows it
        (cheap: the shown prompt stays in the cache), then the full prompt a quick one stood in for."""
        completer = self.completer
        if completer is None:
            return None
        speculate = bool(result.text) and self.settings.server.speculate
        if not speculate and completer.pending is None:
            return None
        context, place = self.context_for(cursor.place), cursor.place

        def follow(cancel: threading.Event) -> None:
            if speculate:
                completer.speculate(place.path, context, place.repo, cancel)
            if not cancel.is_set():
                completer.finish_prompt(cancel)

        return follow

    def warm_up(self, buffer: Buffer, offset: int | None) -> IdleWork | None:
        """Work that fills the KV cache for a buffer while the model is idle: its repository part on
        open (`offset` None), the whole prompt at the last edit after a pause. None where it does not
        apply: no local model, warming off, outside every root, refused."""
        completer = self.completer
        if completer is None or not completer.warms or not self.settings.server.warm:
            return None
        try:
            place = self.place(buffer)
        except Refused:
            return None
        if not place.in_repository:  # an editor's settings file: not worth the model's time
            return None
        context, source = self.context_for(place), buffer.source

        def warm(cancel: threading.Event) -> None:
            completer.warm(
                place.path, source, offset or 0, context, place.repo, cancel, whole=offset is not None
            )

        return warm

    def _completer(self) -> Completer:
        if self.completer is None:
            from engine.errors import ModelNotConfiguredError

            raise ModelNotConfiguredError()
        return self.completer

    # -- status ------------------------------------------------------------------------
    def status(self, indexes: list[dict[str, Any]] | None = None) -> Status:
        completer, engine = self.completer, self.settings.engine
        model: dict[str, Any] = {
            "loaded": completer is not None,
            "path": engine.model_path,
            "endpoint": engine.endpoint,
        }
        if completer is not None:
            model.update(completer.describe())
        last = (
            LastCompletion.of(completer.last)
            if completer is not None and completer.last is not None
            else None
        )
        server, wanted = self.settings.server, self.settings.next_edit
        next_edits = self.next_edits
        next_edit = {
            "enabled": wanted.enabled,
            "model_setting": wanted.model_path,
            **next_edits.describe(),
            "documents_tracked": len(next_edits.tracked()),
            **asdict(next_edits.counts),
        }
        return Status(
            __version__,
            round(time.monotonic() - self.started, 1),
            model,
            indexes or [],
            last,
            {
                "debounce_ms": server.debounce_ms,
                "disabled_languages": list(server.disabled_languages),
                "max_tokens": engine.max_tokens,
                "embedding_model": self.settings.index.embedding_model,
                "embedding_backend": self.settings.index.embedding_backend,
            },
            next_edit,
            next_edits.last(),
        )


def _check_path(path: Path) -> None:
    text = str(path)
    if "\0" in text:
        raise Refused("a document path with a NUL byte is not a file")
    raw = os.fsencode(text)
    if len(raw) > MAX_PATH_BYTES or any(len(part) > MAX_NAME_BYTES for part in raw.split(b"/")):
        raise Refused(f"a document path of {len(raw)} bytes is longer than the system allows")
