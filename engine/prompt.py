"""Budgeted fill-in-the-middle prompt assembly: the cursor's file plus retrieved snippets.

The prompt is a list of segments, each tokenised on its own and concatenated, so special
tokens are never parsed out of user code and the tokens of an unchanged segment stay the
same from one request to the next. Parts are cut at line boundaries. What changes least
comes first: retrieved snippets, then the current file around the cursor.

The order is the family's (FimTemplate.order). Prefix first (PSM): repository context, then
prefix, suffix, middle marker; a keystroke changes the prefix's end, and the suffix after it moves
by a token or two (kv_plan shifts it in the cache). Suffix first (SPM: Seed-Coder, Mellum,
Codestral): the suffix and the repository context come before the prefix, so the prefix's end is
the prompt's end and a keystroke re-evaluates only its last tokens, provided the suffix stays the
same: it is the rest of the cursor line and a number of lines below it that is kept from the
previous prompt of the file (Enter at the end of a line leaves it as it was; typing never re-cuts
it), and chosen afresh only when those lines no longer fit twice the suffix's share.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from .templates import FimTemplate, comment_prefix

log = logging.getLogger(__name__)


class Snippet(Protocol):
    """A piece of another file; lines 0-based, end inclusive.

    `prompt_kind` says what it is: "snippet" (a retrieved chunk), "recent" (around a recent edit),
    "signature" or "outline" (a definition the code at the cursor is likely to need, its body left
    out: see NEEDS_KINDS). `reason` names the probe that brought it, for `code-kb context --json`."""

    @property
    def path(self) -> str: ...
    @property
    def text(self) -> str: ...
    @property
    def start_line(self) -> int: ...
    @property
    def end_line(self) -> int: ...
    @property
    def prompt_kind(self) -> str: ...
    @property
    def reason(self) -> str: ...


class ContextSource(Protocol):
    """What the engine needs from retrieval (retrieval.CodeIndex fits it)."""

    def snippets(
        self, path: str, source: str, offset: int, limit: int | None = None
    ) -> Sequence[Snippet]: ...


class Tokenizer(Protocol):
    exact: bool  # False for an estimate made without the model's vocabulary

    @property
    def name(self) -> str:
        """The model whose vocabulary this is, for messages."""
        ...

    @property
    def n_ctx_train(self) -> int | None:
        """The context length the model was trained for; None for an estimate."""
        ...

    def encode(self, text: str) -> list[int]:
        """Tokens of plain text: no BOS, special-token text is not special."""
        ...

    def special_id(self, text: str) -> int | None: ...


class EstimateTokenizer:
    """Counts without a model: about 3.5 characters a token, as BPE code tokenizers average."""

    exact = False
    name = "estimate"
    n_ctx_train: int | None = None

    def encode(self, text: str) -> list[int]:
        return [0] * math.ceil(len(text.encode("utf-8")) / 3.5)

    def special_id(self, text: str) -> int | None:
        return 0


CONTEXT_KINDS = ("snippet", "recent", "signature", "outline")  # parts from other files
NEEDS_KINDS = ("signature", "outline")  # definitions the cursor is likely to need: budgeted first


@dataclass
class Part:
    """One segment of the prompt. `kind` is snippet (a retrieved chunk), recent (around a recent edit
    in another file), signature (a definition's header, or a chunk's first lines when the budget is
    tight), outline (a class-like definition: header, fields and member signatures; its lines are
    the range it covers, some left out), prefix, suffix, template (markers, headers), or accepted
    (a shown suggestion after the prompt's end, which speculation generates on from). `reason`
    is the probe that brought it: needs, dense, lexical, symbol (joined with + when several did),
    recent, or cursor for the prefix and suffix."""

    kind: str
    text: str
    path: str = ""
    start_line: int = 0  # 0-based, inclusive
    end_line: int = 0
    tokens: list[int] = field(default_factory=list)
    reason: str = ""
    at_cursor: bool = False  # a definition the receiver at the cursor asks for (see Snippet)

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "reason": self.reason,
            "path": self.path,
            "start_line": self.start_line + 1,
            "end_line": self.end_line + 1,
            "text": self.text,
            "tokens": len(self.tokens),
        }


@dataclass
class Prompt:
    template: str
    budget_tokens: int
    segments: list[Part]
    build_ms: float = 0.0
    suffix_lines: int = 0  # lines of the current file in the suffix, the cursor line's rest included

    @property
    def parts(self) -> list[Part]:
        """The content parts (no markers or headers), in prompt order."""
        return [s for s in self.segments if s.kind != "template"]

    @property
    def tokens(self) -> list[int]:
        return [t for s in self.segments for t in s.tokens]

    def repository_part(self) -> Prompt:
        """The prompt before the current file's own text: repository name, snippets, file header
        (what warming evaluates when a file opens, before a cursor makes the rest worth it)."""
        head: list[Part] = []
        for s in self.segments:
            if s.kind in ("prefix", "suffix"):
                break
            head.append(s)
        # Without a repository layout the first FIM marker comes first; it is part of this too
        # (suffix first, that is all of it: the context follows the suffix).
        return Prompt(self.template, self.budget_tokens, head)

    @property
    def repository_tokens(self) -> list[int]:
        return self.repository_part().tokens

    @property
    def n_tokens(self) -> int:
        return sum(len(s.tokens) for s in self.segments)

    def tokens_in(
        self, ranges: Sequence[tuple[int, int]], name: Callable[[Part], str] = lambda p: p.kind
    ) -> dict[str, int]:
        """How many tokens of the [start, end) position ranges (a KV plan's evaluated ones) fall in
        each segment, summed by `name` of the segment (its kind by default)."""
        out: dict[str, int] = {}
        at = 0
        for segment in self.segments:
            end = at + len(segment.tokens)
            n = sum(max(0, min(end, b) - max(at, a)) for a, b in ranges)
            if n:
                out[name(segment)] = out.get(name(segment), 0) + n
            at = end
        return out

    @property
    def text(self) -> str:
        return "".join(s.text for s in self.segments)

    def snippet_paths(self) -> list[str]:
        return list(dict.fromkeys(p.path for p in self.parts if p.kind in CONTEXT_KINDS))

    def to_dict(self, path: str, line: int, col: int) -> dict:
        """The stable `code-kb context --json` shape (see README.md)."""
        return {
            "path": path,
            "line": line,
            "col": col,
            "budget_tokens": self.budget_tokens,
            "prompt_tokens": self.n_tokens,
            "template": self.template,
            "parts": [p.to_dict() for p in self.parts],
        }


@dataclass(frozen=True)
class BudgetShares:
    prefix: float = 0.5  # of the budget left after markers, before snippets
    suffix: float = 0.15
    needs: float = 0.35  # at most this much of it for signatures and outlines, which come first
    min_snippet_lines: int = 4


class PromptBuilder:
    def __init__(
        self, template: FimTemplate, tokenizer: Tokenizer, shares: BudgetShares = BudgetShares()
    ) -> None:
        self.template = template
        self.tokenizer = tokenizer
        self.shares = shares

    def _special(self, text: str) -> Part:
        token = self.tokenizer.special_id(text)
        assert token is not None, text
        return Part("template", text, tokens=[token])

    def _plain(self, text: str) -> Part:
        return Part("template", text, tokens=self.tokenizer.encode(text))

    def build(
        self,
        path: str,
        source: str,
        offset: int,
        snippets: Sequence[Snippet],
        budget_tokens: int,
        repo_name: str = "",
        previous: Prompt | None = None,
        view_tokens: int | None = None,
        view_lines: tuple[int, int] | None = None,
    ) -> Prompt:
        """The prompt for a cursor. `previous`, the last prompt built for this file, keeps snippets
        that it already had in the same order at the front, where the KV cache still holds them.
        `view_tokens` caps the view of the current file around the cursor (three quarters before
        it, a quarter after), and what the snippets leave of the budget does not widen it: the
        quick prompt that answers while the whole one is evaluated. `view_lines` pins the view
        instead: the prefix from that first line (at most the cursor's), the suffix that many
        lines (the cursor line's rest counted), as a previous prompt had them, so that only what
        was typed is new; the oldest prefix lines go if the budget needs them."""
        t0 = time.perf_counter()
        tpl = self.template
        spm = tpl.order == "spm"
        enc = self.tokenizer.encode
        prefix_text, suffix_text = source[:offset], source[offset:]
        before = prefix_text.split("\n")  # last item: the cursor line up to the cursor
        after = suffix_text.split("\n")  # first item: the rest of the cursor line
        cursor_line = len(before) - 1

        # Fixed cost: FIM markers, repository name and the current file's header.
        head: list[Part] = []
        if tpl.has_repo_layout and tpl.repo_name is not None:
            head = [self._special(tpl.repo_name), self._plain(f"{repo_name or 'repo'}\n")]
        file_header = self._file_header(path, path)
        fixed = sum(len(p.tokens) for p in head) + sum(len(p.tokens) for p in file_header) + 3
        available = max(budget_tokens - fixed, 0)

        # 1. The cursor's neighbourhood, up to its shares.
        line_cost: dict[tuple[str, int], int] = {}

        def cost(side: str, i: int) -> int:
            key = (side, i)
            if key not in line_cost:
                line = before[i] if side == "p" else after[i]
                line_cost[key] = len(enc(line + "\n"))
            return line_cost[key]

        p_cap, s_cap = available * self.shares.prefix, available * self.shares.suffix
        if view_tokens is not None:
            p_cap, s_cap = min(p_cap, view_tokens * 0.75), min(s_cap, view_tokens * 0.25)
        p_first, used_p = cursor_line + 1, 0
        if view_lines is not None:
            # Pinned: the view starts where it started (what it costs is settled below, where a
            # prompt that must shrink gives up its oldest lines).
            p_first = min(max(view_lines[0], 0), cursor_line)
        while view_lines is None and p_first > 0 and used_p + cost("p", p_first - 1) <= p_cap:
            p_first -= 1
            used_p += cost("p", p_first)
        s_last, used_s = -1, 0
        # Suffix first, the suffix keeps the previous prompt's number of lines while they fit twice
        # its share: a suffix re-cut at a keystroke would be evaluated again with all that follows it.
        kept = previous.suffix_lines if spm and previous is not None and previous.template == tpl.name else 0
        if view_lines is not None:
            kept = min(view_lines[1], len(after))
            s_last = kept - 1
            used_s = sum(cost("s", i) for i in range(kept))
            kept = kept or -1  # pinned, even to no suffix at all
        elif kept:
            n = min(kept, len(after))
            kept_cost = sum(cost("s", i) for i in range(n))
            if kept_cost <= available * self.shares.suffix * 2:
                s_last, used_s = n - 1, kept_cost
            else:
                kept = 0
        while not kept and s_last + 1 < len(after) and used_s + cost("s", s_last + 1) <= s_cap:
            s_last += 1
            used_s += cost("s", s_last)
        remaining = available - used_p - used_s
        if view_lines is not None:
            # A pinned view leaves the snippets as they were (they come from the same prompt): it
            # gives up its oldest lines below instead, where the prompt must shrink.
            remaining = available

        def shown(p: Part) -> bool:  # a chunk of this file that the prefix or suffix already shows
            return p.path == path and p.start_line <= cursor_line + max(s_last, 0) and p.end_line >= p_first

        # 2. Signatures and outlines of what the cursor is likely to need, then snippets in rank
        # order: whole, cut at a line boundary, or as their first line (the signature) when nothing
        # more fits.
        chosen: list[tuple[list[Part], Part]] = []
        needs_share = min(remaining, int(available * self.shares.needs))
        needs_room: int | None = needs_share
        needs_full = False  # a needed definition did not fit: the share is spent, whatever is left of it
        for snip in snippets:
            kind = snip.prompt_kind
            needed = kind in NEEDS_KINDS
            if not needed and needs_room is not None:
                # The needs take their share whole when they fill it, so that which of them fit
                # (it changes as the user types) never changes the room for the snippets after
                # them: that would swap snippets, and their KV cache, at every keystroke.
                remaining -= needs_share if needs_full else needs_share - needs_room
                needs_room = None
            room = needs_room if needed and needs_room is not None else remaining
            header = self._file_header(snip.path, path)
            header_cost = sum(len(h.tokens) for h in header)
            lines = snip.text.rstrip("\n").split("\n")
            whole = enc("\n".join(lines) + "\n")
            take, spent = 0, header_cost
            if header_cost + len(whole) <= room:
                take = len(lines)  # it fits: no need to count line by line
            elif kind != "signature":  # a signature is taken whole or not at all
                for line in lines:
                    c = len(enc(line + "\n"))
                    if spent + c > room:
                        break
                    take, spent = take + 1, spent + c
            if needed:
                if take < len(lines):
                    needs_full = True
                if take < len(lines) and take < 2:
                    continue  # not even an outline's header and one member
            elif take < len(lines) and take < self.shares.min_snippet_lines:
                # The signature: decorators and the header up to the line that opens the body.
                header_lines = next(
                    (
                        i + 1
                        for i, ln in enumerate(lines[:6])
                        if ln.rstrip().endswith((":", "{", ")", ";", "=>"))
                    ),
                    1,
                )
                if take < header_lines:
                    continue
                take, kind = header_lines, "signature"
            text = "\n".join(lines[:take]) + "\n"
            tokens = whole if take == len(lines) else enc(text)
            body = Part(
                kind,
                text,
                snip.path,
                snip.start_line,
                snip.end_line if take == len(lines) and needed else snip.start_line + take - 1,
                tokens,
                snip.reason,
                needed and bool(getattr(snip, "at_cursor", False)),
            )
            if shown(body):
                continue
            chosen.append((header, body))
            if needed and needs_room is not None:
                needs_room -= header_cost + len(body.tokens)
            else:
                remaining -= header_cost + len(body.tokens)
        if needs_room is not None:  # only needs were offered
            remaining -= needs_share if needs_full else needs_share - needs_room

        # A signature or outline whose whole definition a chosen snippet shows says nothing more.
        # (Its tokens are not given to the view of the file: that would move the prefix's start
        # with the snippets' ranking.)
        shown_whole = [b for _, b in chosen if b.kind in ("snippet", "recent")]
        chosen = [
            (header, body)
            for header, body in chosen
            if body.kind not in NEEDS_KINDS
            or not any(
                w.path == body.path and w.start_line <= body.start_line and body.end_line <= w.end_line
                for w in shown_whole
            )
        ]

        # 3. What is left widens the view of the current file: further back, then further on.
        widen = view_tokens is None and view_lines is None
        while widen and p_first > 0 and cost("p", p_first - 1) <= remaining:
            p_first -= 1
            remaining -= cost("p", p_first)
        while widen and not kept and s_last + 1 < len(after) and cost("s", s_last + 1) <= remaining:
            s_last += 1
            remaining -= cost("s", s_last)

        prefix = "\n".join(before[p_first:])
        suffix = (
            "\n".join(after[: s_last + 1]) + ("\n" if s_last + 1 < len(after) else "") if s_last >= 0 else ""
        )
        prefix_part = Part("prefix", prefix, path, p_first, cursor_line, enc(prefix), "cursor")
        suffix_part = Part(
            "suffix", suffix, path, cursor_line, cursor_line + max(s_last, 0), enc(suffix), "cursor"
        )

        chosen = [(header, body) for header, body in chosen if not shown(body)]  # the view may have grown
        context: list[Part] = []
        for header, body in _cache_aware_order(chosen, previous):
            context += header + [body]
        context += file_header
        pre, suf = [self._special(tpl.prefix)], [self._special(tpl.suffix), suffix_part]
        mid = (
            [self._special(tpl.middle)] if tpl.middle else []
        )  # Codestral writes the middle after the prefix
        if tpl.has_repo_layout:  # other files under their own file tokens, then the current file
            fim = pre + [prefix_part] + suf if not spm else suf + pre + [prefix_part]
            segments = head + context + fim + mid
        elif not spm:
            # Without repository tokens, other files ride at the start of the prefix.
            segments = pre + context + [prefix_part] + suf + mid
        else:  # ... after its marker, as Zed's Seed-Coder and Continue's Codestral prompts have them
            segments = suf + pre + context + [prefix_part] + mid
        prompt = Prompt(tpl.name, budget_tokens, segments, suffix_lines=s_last + 1)
        # Tokenising a part whole can differ from the sum of its lines, and a pinned view takes what
        # it takes: trim the oldest prefix lines, as many at once as the excess asks for.
        while (excess := prompt.n_tokens - budget_tokens) > 0 and prefix_part.start_line < cursor_line:
            dropped = 0
            while prefix_part.start_line < cursor_line and (dropped < excess or not dropped):
                dropped += cost("p", prefix_part.start_line)
                prefix_part.start_line += 1
            prefix_part.text = "\n".join(before[prefix_part.start_line :])
            prefix_part.tokens = enc(prefix_part.text)
        prompt.build_ms = (time.perf_counter() - t0) * 1000
        log.debug(
            "prompt %d tokens (budget %d), %d snippets, built in %.1f ms",
            prompt.n_tokens,
            budget_tokens,
            len(chosen),
            prompt.build_ms,
        )
        return prompt

    def file_header_tokens(self, shown_path: str, current_path: str) -> list[int]:
        """The tokens of the line that names `shown_path` in a prompt for `current_path`."""
        return [t for part in self._file_header(shown_path, current_path) for t in part.tokens]

    def _file_header(self, shown_path: str, current_path: str) -> list[Part]:
        """The line that names a file: a file separator token, or a comment in the current file's language."""
        if self.template.file_sep is not None:
            return [self._special(self.template.file_sep), self._plain(f"{shown_path}\n")]
        marker = comment_prefix(current_path)
        return [self._plain(f"{marker} {shown_path}\n")] if marker else []


def part_key(p: Part) -> tuple[str, int, str]:
    """What makes a repository part the same from one prompt to the next: its file, first line and text."""
    return p.path, p.start_line, p.text


def _cache_aware_order(
    chosen: list[tuple[list[Part], Part]], previous: Prompt | None
) -> list[tuple[list[Part], Part]]:
    """Snippets in prompt order: those the previous prompt had, in its order (the KV cache holds
    them there), then new ones with the best last, nearest to the code being completed.

    Relevance decides which snippets are in; this only decides where, so a small change of
    ranking between keystrokes does not push every cached snippet to a new place.
    """

    key = part_key
    before = {key(p): i for i, p in enumerate(previous.parts if previous else ()) if p.kind in CONTEXT_KINDS}
    kept = sorted((c for c in chosen if key(c[1]) in before), key=lambda c: before[key(c[1])])
    new = [c for c in chosen if key(c[1]) not in before]
    return kept + new[::-1]
