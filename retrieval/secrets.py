"""Secrets written inline in ordinary files (`API_KEY = "sk-..."`, a password in a database URL, a
token in a test fixture), found and masked before a text reaches the index, a prompt or a server.

Detection is detect-secrets' (Yelp): its plugins for cloud and service tokens (AWS, Azure, GitHub,
GitLab, Slack, Stripe, Twilio, SendGrid, npm, PyPI, OpenAI, Discord, Telegram, Mailchimp, ...), JWTs,
private keys, credentials in URLs, and high-entropy strings and assignments to secret-sounding names
(keyword context), with its heuristic filters (UUIDs, templated and indirect values, sequential
strings). Its public IP detector is left out: an address is not a secret. A user's own regular
expressions (`secretPatterns`) are masked too.

Masking keeps every offset: each character of a secret becomes `*`, so line numbers, code-point
offsets and so the editor's positions of everything else stay where they are (an edit or a cursor
computed on the masked text applies to the real one). Only the secret's length shows.

Lines are scanned one at a time and remembered by their text, so re-masking an open buffer on each
keystroke scans only the lines that changed."""

from __future__ import annotations

import logging
import math
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from .literals import Lines, across_lines, required_literals

log = logging.getLogger(__name__)

MASK = "*"
MASKING_VERSION = "1"  # raise when detection changes: indexes mask their files again
_LEFT_OUT = {"IPPublicDetector"}  # an IP address is not a secret
_CACHE_LINES = 200_000  # remembered lines (line text -> secret spans), per scanner
_MAX_LINE = 4_000  # longer lines (minified code, data) are scanned in pieces of this size
_lock = threading.Lock()  # detect-secrets keeps its settings and caches in module globals


@dataclass(frozen=True)
class Span:
    start: int  # code-point offsets into the text
    end: int
    kind: str  # what found it: detect-secrets' type ("AWS Access Key", ...) or "secretPatterns"


# Judged with the words around the value (assignments to secret-sounding names, quoted high-entropy
# strings): run with detect-secrets' heuristic filters, which keep `password = get_password()` and
# `key = "${KEY}"` out. Every other plugin matches a token's own format (AKIA..., ghp_..., ://u:p@)
# and runs unfiltered: the filter for "indirect references" would otherwise drop a URL's password
# from `os.environ.get("DATABASE_URL", "postgres://u:p@db/x")`.
_IN_CONTEXT = {"KeywordDetector", "Base64HighEntropyString", "HexHighEntropyString"}


# Token formats detect-secrets 1.5 has no plugin for (its npm plugin reads only .npmrc lines), found
# while checking it against tests/fixtures/planted_secrets.py and the providers' published formats.
_MORE_FORMATS = [
    ("npm Token", re.compile(r"\bnpm_[A-Za-z0-9]{36}\b")),
    ("Hugging Face Token", re.compile(r"\bhf_[A-Za-z0-9]{34,}\b")),
    ("Anthropic Key", re.compile(r"\bsk-ant-[a-z]+\d{2}-[A-Za-z0-9_-]{80,}")),
    ("GitHub Fine-grained Token", re.compile(r"\bgithub_pat_[A-Za-z0-9_]{80,}")),
    ("Google API Key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b")),
    ("DigitalOcean Token", re.compile(r"\bdo[opr]_v1_[a-f0-9]{64}\b")),
]


@dataclass(frozen=True)
class _Format:
    """A detector of one token format: what it finds in a line, and, when that is known
    (literals.py), what any line it finds something in holds, or the expressions that, searched
    over the whole text, match if it could find anything in one of its lines."""

    find: Callable[[str], Iterable[str]]
    kind: str
    literals: frozenset[str] | None
    guards: tuple[re.Pattern[str], ...] | None


@lru_cache(maxsize=1)
def _plugins() -> tuple[list[_Format], bool]:
    """The format detectors (detect-secrets' plugins, then _MORE_FORMATS); and detect-secrets'
    settings set once per process: the in-context plugins with its default filters, never its
    verification (it would call the services)."""
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
    from detect_secrets.settings import get_settings

    classes: list[Any] = list(get_mapping_from_secret_type_to_class().values())
    settings = get_settings()
    settings.configure_plugins([{"name": c.__name__} for c in classes if c.__name__ in _IN_CONTEXT])
    # "is the file there": our texts are buffers and blobs, not paths detect-secrets could open
    settings.disable_filters(
        "detect_secrets.filters.common.is_invalid_file",
        "detect_secrets.filters.common.is_ignored_due_to_verification_policies",
    )
    formats = []
    for c in classes:
        if c.__name__ not in _IN_CONTEXT | _LEFT_OUT:
            plugin = c()
            regexes = _denylist(plugin)
            formats.append(
                _Format(plugin.analyze_string, str(c.secret_type), *_prefilters(regexes or [None]))
            )
    for kind, pattern in _MORE_FORMATS:
        formats.append(_Format(_finder(pattern), kind, *_prefilters([pattern])))
    return formats, True


def _finder(pattern: re.Pattern[str]) -> Callable[[str], Iterator[str]]:
    return lambda line: (m.group(0) for m in pattern.finditer(line))


def _denylist(plugin: Any) -> list[re.Pattern[str]] | None:
    """The expressions whose matches are all `plugin` can find, when that is so: detect-secrets'
    RegexBasedDetector reports its denylist's matches (its JWT detector the formally valid ones
    among them); other kinds of plugin are not known here."""
    from detect_secrets.plugins.base import RegexBasedDetector
    from detect_secrets.plugins.jwt import JwtTokenDetector

    if type(plugin).analyze_string not in (
        RegexBasedDetector.analyze_string,
        JwtTokenDetector.analyze_string,
    ):
        return None
    return list(plugin.denylist)


def _prefilters(
    regexes: Sequence[re.Pattern[str] | None],
) -> tuple[frozenset[str] | None, tuple[re.Pattern[str], ...] | None]:
    """A detector's literals (one of which each of its expressions requires) and guards (its
    expressions searchable across lines); None where one expression (or None: unknown) lacks them."""
    literals: set[str] | None = set()
    guards: list[re.Pattern[str]] | None = []
    for regex in regexes:
        found = required_literals(regex) if regex is not None else None
        literals = literals | found if literals is not None and found is not None else None
        guard = across_lines(regex) if regex is not None else None
        guards = [*guards, guard] if guards is not None and guard is not None else None
    return (
        frozenset(literals) if literals is not None else None,
        tuple(guards) if guards is not None else None,
    )


def _scan(lines: Sequence[str], filename: str, prefilter: bool = True) -> dict[int, set[tuple[str, str]]]:
    """detect-secrets on `lines` of a file named like `filename` (its keyword rules depend on the file
    type): line index -> {(secret value, type)}.

    Each detector runs only on the lines that could hold what it finds: a format detector on those
    holding one of its literals, or where its guards match (most files: none, for most detectors);
    the in-context plugins on those `_InContext` lets through. `prefilter` False runs every
    detector on every line (the tests compare the two)."""
    from detect_secrets.core.scan import _process_line_based_plugins

    found: dict[int, set[tuple[str, str]]] = {}
    with _lock:
        formats, _ = _plugins()
        text = Lines(lines) if prefilter else None
        every = range(len(lines))
        for detector in formats:
            todo: Iterable[int] = every
            if text is not None and detector.literals is not None:
                todo = sorted(text.holding(detector.literals))
            elif text is not None and detector.guards is not None:
                todo = sorted(set().union(*(text.matching(g) for g in detector.guards)))
            for i in todo:
                for value in detector.find(lines[i]):
                    if value:
                        found.setdefault(i, set()).add((value, detector.kind))
        in_context = _in_context_filter() if text is not None else None
        secrets = (
            _process_line_based_plugins(lines=list(enumerate(lines, 1)), filename=filename)
            if in_context is None or text is None
            else _in_context(lines, filename, in_context.lines(text))
        )
        for secret in secrets:
            if secret.secret_value:
                found.setdefault(secret.line_number - 1, set()).add((secret.secret_value, secret.type))
    return found


@dataclass(frozen=True)
class _InContext:
    """What a line must hold for an in-context plugin to find anything in it: a secret-sounding name
    (KeywordDetector's own DENYLIST, any case: `keywords`, tried on the lines holding one of its
    literals) or a quoted run of a high-entropy plugin's characters long enough to pass its
    entropy limit (n characters carry at most log2(n) bits each: `runs`, across lines)."""

    keywords: re.Pattern[str] | None
    keyword_literals: frozenset[str] | None
    runs: re.Pattern[str] | None

    def lines(self, text: Lines) -> set[int]:
        out = text.matching(self.runs) if self.runs is not None else set()
        if self.keywords is not None:
            lines = text.lines
            holding = text.holding(self.keyword_literals) if self.keyword_literals else range(len(lines))
            out.update(i for i in holding if i not in out and self.keywords.search(lines[i]))
        return out


@lru_cache(maxsize=1)
def _in_context_filter() -> _InContext | None:
    """The filter for the in-context plugins configured, or None when they are not the three this
    knows (every line then goes through them). Most lines of code hold neither a name nor a run
    and skip detect-secrets' per-line filters, most of a cold index's scanning time."""
    from detect_secrets.plugins.keyword import DENYLIST
    from detect_secrets.settings import get_plugins

    _plugins()  # the in-context plugins configured
    keywords: re.Pattern[str] | None = None
    runs: list[str] = []
    for plugin in get_plugins():
        name = type(plugin).__name__
        if name == "KeywordDetector":
            keywords = re.compile("(?i:" + "|".join(DENYLIST) + ")")
        elif name in _IN_CONTEXT and hasattr(plugin, "charset") and hasattr(plugin, "entropy_limit"):
            shortest = math.floor(2**plugin.entropy_limit) + 1
            run = f"[{re.escape(plugin.charset)}]{{{shortest},}}"
            # detect-secrets 1.5 looks only inside quotes: ('|")([charset]+)(\1)
            quoted = getattr(getattr(plugin, "regex", None), "pattern", None) == (
                rf'([\'"])([{re.escape(plugin.charset)}]+)(\1)'
            )
            runs.append(f"['\"]{run}['\"]" if quoted else run)
        else:
            return None
    runs_pattern = across_lines(re.compile("|".join(runs))) if runs else None
    if runs and runs_pattern is None:
        return None
    return _InContext(keywords, required_literals(keywords) if keywords else None, runs_pattern)


def _in_context(lines: Sequence[str], filename: str, which: Iterable[int]) -> Iterator[Any]:
    """detect-secrets' `_process_line_based_plugins` (1.5), over the lines `which` (0-based) only;
    each still sees the whole file around it (the allowlist pragmas on a line before)."""
    from detect_secrets.core.scan import _is_filtered_out, _scan_line
    from detect_secrets.settings import get_plugins
    from detect_secrets.util.code_snippet import get_code_snippet

    content = list(lines)
    for index in sorted(which):
        number = index + 1
        line = content[index].rstrip()
        snippet = get_code_snippet(lines=content, line_number=number)
        if _is_filtered_out(
            required_filter_parameters=["line"], filename=filename, line=line, context=snippet
        ):
            continue
        for plugin in get_plugins():
            for secret in _scan_line(
                plugin=plugin, filename=filename, line=line, line_number=number, context=snippet
            ):
                if not _is_filtered_out(
                    required_filter_parameters=["context"],
                    filename=secret.filename,
                    secret=secret.secret_value,
                    plugin=plugin,
                    line=line,
                    context=snippet,
                ):
                    yield secret


def _occurrences(line: str, value: str) -> Iterable[int]:
    at = line.find(value)
    while at >= 0:
        yield at
        at = line.find(value, at + len(value))


def _file_type_name(path: str) -> str:
    """The name detect-secrets sees: only the extension matters to it (YAML, INI, code, ...)."""
    ext = os.path.splitext(path)[1].lower()
    return "file" + ext if ext else "file"


class SecretScanner:
    """Finds and masks secrets in texts; one per set of user patterns. Thread-safe."""

    def __init__(self, patterns: Iterable[str] = ()) -> None:
        self.patterns = tuple(patterns)
        self._compiled: list[re.Pattern[str]] = []
        for p in self.patterns:
            try:
                self._compiled.append(re.compile(p))
            except re.error as exc:
                raise ValueError(f"secretPatterns: {p!r} is not a regular expression ({exc})") from None
        self._cache: dict[tuple[str, str], tuple[tuple[int, int, str], ...]] = {}
        self._cache_lock = threading.Lock()

    def spans(self, text: str, path: str = "") -> list[Span]:
        """Where `text` (a file named `path`, for its type) holds secrets, in order, merged."""
        if not text:
            return []
        name = _file_type_name(path)
        lines = text.splitlines(keepends=True)
        starts, at = [], 0
        for line in lines:
            starts.append(at)
            at += len(line)
        with self._cache_lock:
            known = {i: self._cache.get((name, line)) for i, line in enumerate(lines)}
        todo = [i for i, hit in known.items() if hit is None]
        if todo:
            fresh = self._scan_lines([lines[i] for i in todo], name)
            with self._cache_lock:
                if len(self._cache) + len(todo) > _CACHE_LINES:
                    self._cache.clear()
                for i, hit in zip(todo, fresh):
                    known[i] = hit
                    self._cache[(name, lines[i])] = hit
        out: list[Span] = []
        for i, hits in known.items():
            for start, end, kind in hits or ():
                out.append(Span(starts[i] + start, starts[i] + end, kind))
        return _merged(out)

    def mask(self, text: str, path: str = "") -> str:
        """`text` with every secret's characters replaced by `*` (same length, same lines)."""
        return apply_mask(text, self.spans(text, path))

    def _scan_lines(self, lines: Sequence[str], name: str) -> list[tuple[tuple[int, int, str], ...]]:
        """Per line: (start, end, kind) of each secret, offsets within the line."""
        bare = [line.rstrip("\r\n") for line in lines]
        pieces: list[str] = []
        owner: list[tuple[int, int]] = []  # piece -> (line index, offset of the piece in the line)
        for i, line in enumerate(bare):
            for off in range(0, max(len(line), 1), _MAX_LINE):
                pieces.append(line[off : off + _MAX_LINE])
                owner.append((i, off))
        hits: list[list[tuple[int, int, str]]] = [[] for _ in lines]
        for piece_index, values in _scan(pieces, name).items():
            i, off = owner[piece_index]
            piece = pieces[piece_index]
            for value, kind in values:
                spots = list(_occurrences(piece, value))
                if not spots:  # a value detect-secrets transformed: mask the line's text after its indent
                    indent = len(piece) - len(piece.lstrip())
                    hits[i].append((off + indent, off + len(piece), kind))
                for s in spots:
                    hits[i].append((*_whole_token(piece, s, s + len(value)), kind))
                    hits[i][-1] = (off + hits[i][-1][0], off + hits[i][-1][1], kind)
        for i, line in enumerate(bare):
            for pattern in self._compiled:
                for m in pattern.finditer(line):
                    groups = [g for g in range(1, (m.lastindex or 0) + 1) if m.start(g) >= 0]
                    for g in groups or [0]:
                        if m.end(g) > m.start(g):
                            hits[i].append((m.start(g), m.end(g), "secretPatterns"))
        return [tuple(sorted(h)) for h in hits]


_TOKEN = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.+/")


def _whole_token(line: str, start: int, end: int) -> tuple[int, int]:
    """A match widened to the token it lies in: some detectors match a token's recognisable part
    only (a JWT without its signature, a Discord token's head). Base64 padding (`=`) is taken on the
    right only, so `AccountKey=...` keeps its name."""
    while start > 0 and line[start - 1] in _TOKEN:
        start -= 1
    while end < len(line) and (line[end] in _TOKEN or line[end] == "="):
        end += 1
    return start, end


def _merged(spans: list[Span]) -> list[Span]:
    spans.sort(key=lambda s: (s.start, s.end))
    out: list[Span] = []
    for s in spans:
        if out and s.start <= out[-1].end:
            last = out[-1]
            out[-1] = Span(last.start, max(last.end, s.end), last.kind)
        else:
            out.append(s)
    return out


def apply_mask(text: str, spans: Sequence[Span]) -> str:
    if not spans:
        return text
    parts, at = [], 0
    for s in spans:
        parts.append(text[at : s.start])
        parts.append(MASK * (s.end - s.start))
        at = s.end
    parts.append(text[at:])
    return "".join(parts)


def overlaps(spans: Sequence[Span], start: int, end: int) -> bool:
    """Whether [start, end] touches a secret (an empty range touching one's edge counts)."""
    return any(s.start <= end and start <= s.end for s in spans)
