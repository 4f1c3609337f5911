"""What a regular expression's every match must contain: a set of lower-case ASCII strings, one of
which is in any text the expression matches anywhere in (compared with the text lower-cased).

Scanning a file with dozens of token formats (AKIA..., ghp_..., xox...) line by line costs each
line every expression; most files hold none of the formats' fixed parts, and a substring test of
the whole file for those parts rules an expression out in microseconds. The analysis reads the
expression's parse tree (Python's own parser) and is conservative: anything it does not follow
(look-arounds, back-references, non-ASCII characters, an alternative without a fixed part) makes
the part it is in contribute nothing, and an expression with no fixed part gives None: always run.
Compared lower-cased, case-insensitive expressions need no special case.
"""

from __future__ import annotations

import importlib
import re
import sys
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

# Python's own parser of regular expressions (sre_parse before 3.11, deprecated there since).
sre_parse: Any = importlib.import_module("re._parser" if sys.version_info >= (3, 11) else "sre_parse")

# Repetitions (x*, x{2,5}; possessive ones from 3.11) and atomic groups, in the parse tree.
_REPEATS = (sre_parse.MAX_REPEAT, sre_parse.MIN_REPEAT, getattr(sre_parse, "POSSESSIVE_REPEAT", None))
_ATOMIC = getattr(sre_parse, "ATOMIC_GROUP", None)

MIN_LENGTH = 3  # shorter fixed parts (`-`, `ey`) are in most files: not worth testing for


def required_literals(pattern: re.Pattern[str] | str) -> frozenset[str] | None:
    """Lower-case strings one of which every match of `pattern` contains, or None when there is no
    such set of strings at least MIN_LENGTH long (or the expression cannot be analysed)."""
    source = pattern.pattern if isinstance(pattern, re.Pattern) else pattern
    flags = pattern.flags if isinstance(pattern, re.Pattern) else 0
    if not isinstance(source, str):
        return None
    try:
        info = _sequence(list(sre_parse.parse(source, flags)))
    except Exception:  # noqa: BLE001 - a private parser: any surprise means "cannot tell"
        return None
    found = _minimal(info.fixed) if info.fixed is not None else info.required
    if not found or min(len(s) for s in found) < MIN_LENGTH:
        return None
    return frozenset(found)


# Non-ASCII characters a case-insensitive expression takes for ASCII letters that lower() leaves be.
_FOLD = str.maketrans({"\u0131": "i", "\u017f": "s"})  # dotless i, long s


def folded(text: str) -> str:
    """`text` as the literals are compared with: lower-cased, the two letters re's case-insensitive
    matching equates with ASCII ones (and lower() does not) replaced by them."""
    lowered = text.lower()
    return lowered if lowered.isascii() else lowered.translate(_FOLD)


def across_lines(pattern: re.Pattern[str]) -> re.Pattern[str] | None:
    """`pattern` made to search a whole text of lines joined by newlines (MULTILINE), when it then
    matches somewhere if it matches in one of the lines alone: true unless it asserts what must not
    come before or after (a newline could be that) or anchors at the text's very start or end.
    One search of a file then rules a pattern out where a search of each line would."""
    if not isinstance(pattern.pattern, str) or pattern.search("") is not None:
        return None  # one that matches nothing at all would match at every position
    try:
        tree = sre_parse.parse(pattern.pattern, pattern.flags)
        safe = _safe_across_lines(list(tree))
    except Exception:  # noqa: BLE001 - a private parser: any surprise means "cannot tell"
        return None
    return re.compile(pattern.pattern, pattern.flags | re.MULTILINE) if safe else None


def _safe_across_lines(items: list[tuple[Any, Any]]) -> bool:
    for op, av in items:
        if op is sre_parse.ASSERT_NOT:
            return False
        if op is sre_parse.AT and av in (sre_parse.AT_BEGINNING_STRING, sre_parse.AT_END_STRING):
            return False
        for child in _children(op, av):
            if not _safe_across_lines(child):
                return False
    return True


def _children(op: Any, av: Any) -> list[list[tuple[Any, Any]]]:
    if op is sre_parse.SUBPATTERN:
        return [list(av[-1])]
    if op is sre_parse.BRANCH:
        return [list(a) for a in av[1]]
    if op in _REPEATS:
        return [list(av[2])]
    if op is sre_parse.ASSERT:
        return [list(av[1])]
    if op is _ATOMIC:
        return [list(av)]
    if op is sre_parse.GROUPREF_EXISTS:
        return [list(part) for part in av[1:] if part is not None]
    return []


class Lines:
    """Lines joined into one text, so that which of them hold a literal, or a match of an expression
    made by `across_lines`, is found by searching the whole text once (C speed) instead of each
    line (a Python call per line and per expression). Both answers may name a line more than it
    needs (a match running over two lines names both), never fewer."""

    def __init__(self, lines: Sequence[str]) -> None:
        self.lines = lines
        self.raw = "\n".join(lines)
        self._starts = _starts(lines)
        lowered = folded(self.raw)
        if len(lowered) == len(self.raw):  # one character for one: the offsets agree
            self.folded, self._folded_starts = lowered, self._starts
        else:
            each = [folded(line) for line in lines]
            self.folded, self._folded_starts = "\n".join(each), _starts(each)

    def holding(self, literals: Iterable[str]) -> set[int]:
        """The lines that hold one of `literals` (compared folded)."""
        out: set[int] = set()
        for literal in literals:
            at = self.folded.find(literal)
            while at >= 0:
                first = bisect_right(self._folded_starts, at) - 1
                out.update(range(first, bisect_right(self._folded_starts, at + len(literal) - 1)))
                at = self.folded.find(literal, at + 1)
        return out

    def matching(self, pattern: re.Pattern[str]) -> set[int]:
        """The lines a match of `pattern` (from `across_lines`) lies in: a superset of the lines it
        matches in alone, since any place it matches at in a line it matches at in the whole."""
        out: set[int] = set()
        for m in pattern.finditer(self.raw):
            first = bisect_right(self._starts, m.start()) - 1
            out.update(range(first, bisect_right(self._starts, max(m.end() - 1, m.start()))))
        return out


def _starts(lines: Sequence[str]) -> list[int]:
    out, at = [], 0
    for line in lines:
        out.append(at)
        at += len(line) + 1
    return out


_CAP = 128  # strings a fixed run may expand to ((?:ghp|gho|...)_ is five)
_CLASS = 16  # characters a class may have and still be expanded ([0-9a-f], not [a-z0-9])
_ENOUGH = 6  # fixed strings this long are rare enough: longer ones (or more of them) gain nothing
_NOTHING: frozenset[str] = frozenset({""})  # a prefix or suffix not known: the empty string


@dataclass(frozen=True)
class _Info:
    """What is known of the texts a node matches."""

    fixed: frozenset[str] | None  # every string it can match, when few; else None
    required: frozenset[str] | None  # one of these is in each match; None: nothing known
    prefix: frozenset[str] = _NOTHING  # each match starts with one of these
    suffix: frozenset[str] = _NOTHING  # each match ends with one of these


_UNKNOWN = _Info(None, None)


def _exact(strings: frozenset[str]) -> _Info:
    return _Info(strings, None, strings, strings)


def _times(a: frozenset[str], b: frozenset[str]) -> frozenset[str] | None:
    return frozenset(x + y for x in a for y in b) if len(a) * len(b) <= _CAP else None


def _sequence(items: list[tuple[Any, Any]]) -> _Info:
    """A concatenation: runs of nodes with few fixed strings multiply out (`AKIA|ASIA` then nothing
    else fixed: both), up to _CAP strings; a run followed by a node that starts with one of few
    strings (`A(?:KIA|3T[A-Z0-9])`) requires their product too."""
    run: frozenset[str] = _NOTHING
    exact = True
    prefix: frozenset[str] | None = None
    candidates: list[frozenset[str]] = []
    for op, av in items:
        info = _node(op, av)
        long_enough = min(map(len, run)) >= _ENOUGH and len(info.fixed or ()) > 1  # more strings, no gain
        if info.fixed is not None and not long_enough and (joined := _times(run, info.fixed)) is not None:
            run = joined
            continue
        if info.fixed is not None:  # too many strings to multiply
            exact = False
            prefix = run if prefix is None else prefix
            candidates.append(run)
            # A match holds a string of the run and one of the node's, joined: it holds the run's
            # string's last few characters joined to it too. Where the node is not optional (an
            # optional one adds nothing a match must hold), the longest such ends that multiply
            # within _CAP carry the run on (detect-secrets' Cloudant key, 108 spellings of
            # `["']?(cloudant|cl|clou)[_-]?(api)?` then `(key|pwd|pw|...)`: cl_key, clkey, ou_pw,
            # apipw, ...); otherwise a new run starts.
            trimmed = (
                (_times(frozenset(s[-keep:] for s in run), info.fixed) for keep in range(_ENOUGH - 1, 0, -1))
                if "" not in info.fixed
                else ()
            )
            run = next((joined for joined in trimmed if joined is not None), info.fixed)
            continue
        exact = False
        reached = run if min(map(len, run)) >= _ENOUGH else (_times(run, info.prefix) or run)
        prefix = reached if prefix is None else prefix
        candidates.append(reached)
        if info.required:
            candidates.append(info.required)
        run = info.suffix
    candidates.append(run)
    best = max((_minimal(c) for c in candidates), key=_selectivity)
    if exact:
        return _exact(run)
    return _Info(None, best if _selectivity(best)[0] > 0 else None, prefix or _NOTHING, run)


def _minimal(strings: frozenset[str]) -> frozenset[str]:
    """The same requirement with no string that contains another of the set (it adds nothing)."""
    out: list[str] = []
    for s in sorted(strings, key=len):
        if not any(t in s for t in out):
            out.append(s)
    return frozenset(out)


def _selectivity(strings: frozenset[str]) -> tuple[int, int]:
    """Longer strings rule out more files, up to a point; past it, fewer strings cost less to test."""
    return (min(min(map(len, strings)) if strings else 0, _ENOUGH), -len(strings))


def _node(op: Any, av: Any) -> _Info:
    if op is sre_parse.LITERAL:
        return _exact(frozenset({chr(av).lower()})) if av < 128 else _UNKNOWN
    if op is sre_parse.IN:
        chars = _class(av)
        return _exact(chars) if chars is not None and len(chars) <= _CLASS else _UNKNOWN
    if op is sre_parse.SUBPATTERN:
        return _sequence(list(av[-1]))
    if op is _ATOMIC:
        return _sequence(list(av))
    if op in _REPEATS:
        low, high, body = av
        inner = _sequence(list(body))
        if (
            inner.fixed is not None
            and high <= 8
            and sum(len(inner.fixed) ** n for n in range(low, high + 1)) <= _CAP
        ):
            out: set[str] = set()  # x?, x{3}, x{1,2}: every count spelled out
            power: frozenset[str] = _NOTHING
            for n in range(high + 1):
                if n >= low:
                    out |= power
                power = frozenset(a + b for a in power for b in inner.fixed)
            return _exact(frozenset(out))
        if low >= 1:
            need = inner.fixed if inner.fixed is not None else inner.required
            return _Info(None, need, inner.prefix, inner.suffix)
        return _UNKNOWN
    if op is sre_parse.BRANCH:
        alternatives = [_sequence(list(alternative)) for alternative in av[1]]
        fixed = [a.fixed for a in alternatives]
        if all(f is not None for f in fixed) and sum(len(f) for f in fixed if f) <= _CAP:
            return _exact(frozenset().union(*(f for f in fixed if f is not None)))
        needs = [a.fixed if a.fixed is not None else a.required for a in alternatives]
        return _Info(
            None,
            frozenset().union(*needs) if all(needs) else None,  # type: ignore[arg-type]
            frozenset().union(*(a.prefix for a in alternatives)),
            frozenset().union(*(a.suffix for a in alternatives)),
        )
    return _UNKNOWN  # ANY, AT, look-arounds, back-references, categories (\d, \w): nothing fixed


def _class(items: list[tuple[Any, Any]]) -> frozenset[str] | None:
    """The lower-cased ASCII characters a class matches, or None (negated, ranges past ASCII,
    categories)."""
    chars: set[str] = set()
    for op, av in items:
        if op is sre_parse.LITERAL and av < 128:
            chars.add(chr(av).lower())
        elif op is sre_parse.RANGE and av[1] < 128 and av[1] - av[0] < 64:
            chars.update(chr(c).lower() for c in range(av[0], av[1] + 1))
        else:
            return None
    return frozenset(chars)
