"""Next edits in the application core: the edit history that didChange feeds (only for documents the
session's path and secret policy lets it learn from), the next-edit model loaded beside the
completion model, and what became of the suggestions offered (shown, accepted).

Plain Python, no pygls: offsets are `str` offsets, as everywhere below the LSP layer. The session
owns one `NextEdits` and applies its policy before anything reaches it.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from engine import EngineConfig, EngineError
from engine.backends.llama_cpp import LlamaCppModel
from engine.backends.openai_compat import OpenAICompletionsBackend
from engine.config import NextEditConfig
from engine.errors import NextEditFormatError
from engine.hardware import detect, kv_cache_bytes
from engine.models import local_model_path
from engine.next_edit import (
    EditHistory,
    NextEdit,
    NextEditFormat,
    NextEditPredictor,
    TextEdit,
    detect_next_edit_format,
    format_named,
)
from engine.prompt import EstimateTokenizer, Snippet, Tokenizer
from engine.templates import detect_template

log = logging.getLogger(__name__)

GB = 1024**3
# Of physical memory, what two models may take: the editor, the system and the index need the rest.
MEMORY_SHARE = 0.8
RELATED_SNIPPETS = 6  # related context for a next-edit prompt; the format's budget drops the excess
OFFERED_KEPT = 64  # suggestions remembered for didShowInlineEdit and the accept command


class NextEditMemoryError(EngineError):
    """This machine cannot hold the completion model and the next-edit model together."""


@dataclass(frozen=True)
class LastNextEdit:
    """The latest prediction as `codeKb.status` reports it (those with no edits included)."""

    verdict: str
    edits: int
    prompt_tokens: int
    evaluated_tokens: int
    reused_tokens: int
    generated_tokens: int
    drafted_tokens: int
    draft_accepted_tokens: int
    stop_reason: str
    build_ms: float
    total_ms: float

    @classmethod
    def of(cls, n: NextEdit) -> LastNextEdit:
        g = n.generation
        return cls(
            n.verdict,
            len(n.edits),
            g.n_prompt,
            g.n_evaluated,
            g.n_reused,
            g.n_generated,
            g.n_drafted,
            g.n_draft_accepted,
            g.stop_reason,
            round(n.build_ms, 1),
            round(n.total_ms, 1),
        )


@dataclass
class NextEditCounts:
    requests: int = 0  # predictions asked for (the same document and cursor again answered from memory)
    suggested: int = 0  # edits offered to the client
    shown: int = 0  # of them, those the client said it showed (textDocument/didShowInlineEdit)
    accepted: int = 0  # of them, those the client said the user accepted (the accept command)


@dataclass(frozen=True)
class Offered:
    """A suggested edit, under the id its accept command carries."""

    id: str
    path: str
    edit: TextEdit
    shown: bool = False


@dataclass
class _Tracked:
    """An open document's last text, to pair with the next change (pygls applies it before we see it)."""

    path: str  # as prompts and the history name it
    text: str


@dataclass(frozen=True)
class MemoryNeed:
    completion_bytes: int
    next_edit_bytes: int
    capacity_bytes: int | None  # what both may take on this machine; None where it cannot say


def context_tokens(model: LlamaCppModel, config: NextEditConfig) -> int:
    """The next-edit model's context window: its prompt budget and answer, within what it was trained on."""
    n_ctx = config.budget_tokens + config.max_tokens
    return min(n_ctx, model.n_ctx_train) if model.n_ctx_train else n_ctx


def kv_type(engine: EngineConfig) -> str:
    """The next-edit model's KV cache type: the setting's when it names one, else f16."""
    return engine.kv_cache_type if engine.kv_cache_type in ("f16", "q8_0") else "f16"


def model_bytes(model: LlamaCppModel, n_ctx: int, kv_type: str = "f16") -> int:
    """What a loaded model takes: its file (the weights) and its KV cache."""
    size = model.path.stat().st_size if model.path.is_file() else 0
    return size + (kv_cache_bytes(model.metadata, n_ctx, kv_type) or 0)


def capacity_bytes() -> int | None:
    """Memory two models may take: a share of RAM, plus the largest GPU's where layers go there."""
    machine = detect()
    if machine.ram_bytes is None:
        return None
    vram = machine.vram_bytes if machine.gpu_offload and machine.vram_bytes else 0
    return int(machine.ram_bytes * MEMORY_SHARE) + vram


def check_memory(need: MemoryNeed) -> None:
    """Raise NextEditMemoryError, saying which setting to change, when both models do not fit."""
    total = need.completion_bytes + need.next_edit_bytes
    if need.capacity_bytes is None or total <= need.capacity_bytes:
        return
    raise NextEditMemoryError(
        f"this machine cannot hold both models: the completion model takes about "
        f"{need.completion_bytes / GB:.1f} GB and the next-edit model {need.next_edit_bytes / GB:.1f} GB "
        f"(weights and cache), {total / GB:.1f} GB together, more than the {need.capacity_bytes / GB:.1f} GB "
        "they may use here; next edits are off. Set nextEditModel to a smaller model (sweep-next-edit-0.5b), "
        "or modelPath to a smaller completion model, or nextEdit to false to stop this message"
    )


@dataclass(frozen=True)
class _ServedModel:
    """A server's model by the name it gives (`/v1/models`), for format detection: the name must
    say what it is; the vocabulary is taken on trust (`nextEditFormat` names the format otherwise)."""

    name: str

    def special_id(self, text: str) -> int | None:
        return 0


class NextEdits:
    """The edit history, the predictor and the bookkeeping of suggestions.

    Thread use: `opened`, `changed`, `closed` and the suggestion bookkeeping run on the caller's main
    thread; `load` and `predict` on its model thread (the history is thread-safe)."""

    def __init__(self) -> None:
        self.history = EditHistory()
        self.predictor: NextEditPredictor | None = None
        self.model_bytes = 0
        self.counts = NextEditCounts()
        self._tracked: dict[Path, _Tracked] = {}
        self._offered: OrderedDict[str, Offered] = OrderedDict()
        self._last: tuple[str, str, int, NextEdit | None] | None = None  # path, source, offset, answer
        self._lock = threading.Lock()

    # -- the model ---------------------------------------------------------------------
    def load(self, config: NextEditConfig, engine: EngineConfig, completion_bytes: int) -> NextEditPredictor:
        """Load the next-edit model named by `config` (raises EngineError with what to do); it replaces
        the old one. `completion_bytes`: what the completion model takes, for the memory check."""
        self.unload()
        if config.endpoint:
            return self._load_remote(config)
        if not config.model_path:
            raise EngineError(
                "no next-edit model configured; set nextEditModel to sweep-next-edit-1.5b "
                "(`code-kb model pull sweep-next-edit-1.5b`) or to a GGUF file, or nextEditEndpoint "
                "to a server that generates next edits"
            )
        _refuse_completion_model(config.model_path)
        path = local_model_path(config.model_path)
        vocab = LlamaCppModel(
            path, vocab_only=True
        )  # read first: a wrong model is refused before its weights
        fmt = format_named(config.format) if config.format != "auto" else detect_next_edit_format(vocab)
        if fmt is None:
            try:
                what = f"a completion model ({detect_template(vocab, Path(path).name).name} FIM tokens)"
            except EngineError:
                what = "no model code-kb knows"
            raise NextEditFormatError(
                f"{Path(path).name} is not a next-edit model: it is {what}; code-kb recognises Sweep's "
                "next-edit GGUFs by their name (sweep-next-edit-1.5B, -0.5B): pull one (code-kb model pull "
                "sweep-next-edit-1.5b) and set nextEditModel (--model), or set nextEditFormat (--format) to "
                "sweep for a GGUF that speaks Sweep's format under another name"
            )
        n_ctx = context_tokens(vocab, config)
        need = MemoryNeed(completion_bytes, model_bytes(vocab, n_ctx, kv_type(engine)), capacity_bytes())
        check_memory(need)
        model = LlamaCppModel(
            path,
            n_ctx=n_ctx,
            n_gpu_layers=engine.n_gpu_layers,
            n_threads=engine.n_threads,
            flash_attn=engine.flash_attn,
            kv_cache_type=kv_type(engine),
        )
        self.predictor = NextEditPredictor(
            model,
            fmt,
            budget_tokens=config.budget_tokens,
            max_tokens=config.max_tokens,
            timeout_s=config.timeout_s,
            speculative=config.speculative,
        )
        self.model_bytes = need.next_edit_bytes
        log.info(
            "next-edit model ready: %s (%s format), %.1f MB with its %d-token cache",
            model.name,
            fmt.name,
            self.model_bytes / 2**20,
            n_ctx,
        )
        return self.predictor

    def _load_remote(self, config: NextEditConfig) -> NextEditPredictor:
        """A predictor that generates on the server at `config.endpoint` (nothing loaded here but a
        vocabulary, if `model_path` names one: exact token counts); no memory check."""
        assert config.endpoint
        tokenizer: Tokenizer = EstimateTokenizer()
        if config.model_path:
            tokenizer = LlamaCppModel(local_model_path(config.model_path), vocab_only=True)
        backend = OpenAICompletionsBackend(config.endpoint)
        backend.agree_on_tokens(tokenizer)  # ids where the server takes ours; else neutralised text
        fmt: NextEditFormat | None
        if config.format != "auto":
            fmt = format_named(config.format)
        elif isinstance(tokenizer, LlamaCppModel):
            fmt = detect_next_edit_format(tokenizer)
        else:
            fmt = detect_next_edit_format(_ServedModel(backend.model or ""))
        if fmt is None:
            raise NextEditFormatError(
                f"{backend.name} is not recognised as a next-edit model; set nextEditFormat to sweep "
                "if it is one, or nextEditModel to its GGUF file"
            )
        self.predictor = NextEditPredictor(
            backend,
            fmt,
            tokenizer=tokenizer,
            budget_tokens=config.budget_tokens,
            max_tokens=config.max_tokens,
            timeout_s=config.timeout_s,
            speculative=config.speculative,
        )
        log.info(
            "next edits generated by %s (%s format), token counts %s",
            backend.name,
            fmt.name,
            f"exact ({tokenizer.name})" if tokenizer.exact else "estimated",
        )
        return self.predictor

    def unload(self) -> None:
        self.predictor = None
        self.model_bytes = 0
        with self._lock:
            self._last = None

    def describe(self) -> dict[str, object]:
        predictor = self.predictor
        if predictor is None:
            return {"loaded": False}
        described = predictor.describe()
        return {
            "loaded": True,
            "name": described.get("name"),
            "path": described.get("path"),
            # where next edits are generated: "in-process" or the server's address
            "generated_by": "in-process" if predictor.in_process else predictor.backend.describe()["device"],
            "format": predictor.format.name,
            "memory_bytes": self.model_bytes,
            "context_tokens": predictor.backend.n_ctx,
            "budget_tokens": predictor.budget_tokens,
            "exact_token_counts": predictor.tokenizer.exact,
            "speculative": described["speculative"],
        }

    def last(self) -> LastNextEdit | None:
        predictor = self.predictor
        return (
            LastNextEdit.of(predictor.last) if predictor is not None and predictor.last is not None else None
        )

    # -- the history (the session decides what may be recorded) ---------------------------
    def opened(self, file: Path, path: str, text: str) -> None:
        self._tracked[file] = _Tracked(path, text)

    def changed(self, file: Path, path: str, text: str) -> None:
        """A change of an open document the session may learn from: its change since the text last
        seen goes into the history."""
        tracked = self._tracked.get(file)
        if tracked is not None and tracked.path == path:
            self.history.record(path, tracked.text, text)
        elif tracked is not None:  # the same file under another name (a root added or removed)
            self.history.forget(tracked.path)
        self._tracked[file] = _Tracked(path, text)

    def closed(self, file: Path) -> None:
        """Closed, or no longer one to learn from (it holds a secret now, or left every root): its
        changes leave the history."""
        tracked = self._tracked.pop(file, None)
        if tracked is not None:
            self.history.forget(tracked.path)

    def clear(self) -> None:
        """Next edits turned off: no history, and no texts to compare a later change with (they would
        be stale by then)."""
        self.history.clear()
        self._tracked.clear()

    def tracked(self) -> list[str]:
        return sorted(t.path for t in self._tracked.values())

    # -- predictions (on the model thread) ---------------------------------------------
    def predict(
        self,
        path: str,
        source: str,
        offset: int,
        history: EditHistory,
        snippets: Sequence[Snippet],
        cancel: threading.Event | None = None,
    ) -> NextEdit | None:
        """The next edit at a cursor, or None. The same document and cursor as the previous request
        (a client asking again, or the inline-completion fallback after copilotInlineEdit) get the
        same answer without running the model."""
        predictor = self.predictor
        if predictor is None:
            raise EngineError(
                "no next-edit model loaded; set nextEditModel (the server's messages say why loading failed)"
            )
        with self._lock:
            last = self._last
        if last is not None and last[0] == path and last[2] == offset and last[1] == source:
            return last[3]
        self.counts.requests += 1
        result = predictor.predict(path, source, offset, history, snippets, cancel)
        if cancel is None or not cancel.is_set():
            with self._lock:
                self._last = (path, source, offset, result)
        return result

    # -- suggestions offered, shown and accepted ---------------------------------------
    def offer(self, path: str, edits: Sequence[TextEdit]) -> list[str]:
        """Ids for edits about to be offered; the accept command and didShowInlineEdit name them."""
        ids = []
        for edit in edits:
            offered = Offered(uuid.uuid4().hex, path, edit)
            self._offered[offered.id] = offered
            ids.append(offered.id)
        while len(self._offered) > OFFERED_KEPT:
            self._offered.popitem(last=False)
        self.counts.suggested += len(ids)
        return ids

    def shown(self, suggestion_id: str) -> Offered | None:
        offered = self._offered.get(suggestion_id)
        if offered is None or offered.shown:
            return offered
        self._offered[suggestion_id] = Offered(offered.id, offered.path, offered.edit, shown=True)
        self.counts.shown += 1
        return offered

    def accepted(self, suggestion_id: str) -> Offered | None:
        """The user took a suggestion: counted once; None for an id not offered (or long forgotten)."""
        offered = self._offered.pop(suggestion_id, None)
        if offered is not None:
            self.counts.accepted += 1
            log.info(
                "next edit accepted in %s: %d characters replaced by %d",
                offered.path,
                offered.edit.end - offered.edit.start,
                len(offered.edit.text),
            )
        return offered


def _refuse_completion_model(spec: str) -> None:
    """A catalogue name of a completion model, refused before anything is loaded."""
    from engine.models import NEXT_EDIT_NAMES, parse_name

    parsed = parse_name(spec)
    if parsed is not None and parsed[0].kind != "next-edit":
        raise NextEditFormatError(
            f"{parsed[0].name} is a completion model (the `model` setting); next edits need a next-edit model: "
            f"{' or '.join(NEXT_EDIT_NAMES)} (code-kb model pull {NEXT_EDIT_NAMES[0]})"
        )
