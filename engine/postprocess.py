"""Where a completion should end, and how its text is fitted to the code around the cursor.

`StopRules` cut the token stream while it is generated. `finish` then turns the whole generated
text into what the editor shows: a pipeline of small rules, each a function `(text, Cursor) -> str`
that keeps the model's text whenever it is unsure. Brackets are found by a simple scan that skips
string literals and comments (`#` style when the file reads like Python, `//` and `/* */` else).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

_OPENERS = {"(": ")", "[": "]", "{": "}"}
_CLOSERS = {")": "(", "]": "[", "}": "{"}
_BLOCK_OPENERS = (":", "{", "(", "[")
_SCAN_WINDOW_CHARS = 20_000  # enclosing brackets are looked for this far back from the cursor

_DQ, _SQ = r'"(?:[^"\\\n]|\\[\s\S])*', r"'(?:[^'\\\n]|\\[\s\S])*"
_BT = r"`(?:[^`\\]|\\[\s\S])*"
# Alternatives in order: closed literals before open ones (an open one runs to the end of the text,
# so the cursor is inside it), triple quotes before single ones.
_HASH_TOKENS = re.compile(
    r'(?P<closed1>"""[\s\S]*?"""|\'\'\'[\s\S]*?\'\'\')|(?P<open1>"""[\s\S]*|\'\'\'[\s\S]*)'
    rf'|(?P<closed2>{_DQ}"|{_SQ}\')|(?P<open2>{_DQ}\Z|{_SQ}\Z)'
    r"|(?P<comment>#[^\n]*)|(?P<bracket>[()\[\]{}])"
)
_SLASH_TOKENS = re.compile(
    rf"(?P<closed1>/\*[\s\S]*?\*/|{_BT}`)|(?P<open1>/\*[\s\S]*|{_BT}\Z)"
    rf'|(?P<closed2>{_DQ}"|{_SQ}\')|(?P<open2>{_DQ}\Z|{_SQ}\Z)'
    r"|(?P<comment>//[^\n]*)|(?P<bracket>[()\[\]{}])"
)
_PY_LINE = re.compile(
    r"^[ \t]*(?:(?:def|class|if|elif|else|for|while|try|except|finally|with)\b.*:"
    r"|(?:import|from)\s.*)[ \t]*$",
    re.M,
)
_C_LINE = re.compile(r"(?:[{};]|^[ \t]*//.*)[ \t]*$", re.M)
# A later line starting like this may sit left of the block it follows: it closes that block.
_DEDENT_START = re.compile(r"[)\]}]|(?:else|elif|except|finally|catch|case|default)\b")
_LONE_WORD = re.compile(r"\W*\w*\W*")  # `}`, `end`, `i++`, `break;`: lines code repeats on purpose


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def _window_start(source: str, offset: int) -> int:
    """The start of the line `_SCAN_WINDOW_CHARS` before `offset`, or 0."""
    return source.rfind("\n", 0, max(0, offset - _SCAN_WINDOW_CHARS)) + 1


def _comment_style(source: str) -> str:
    """'hash' when the file reads like Python (`#` comments), 'slash' when it has C-like lines."""
    return "slash" if len(_C_LINE.findall(source)) > len(_PY_LINE.findall(source)) else "hash"


def _indent_style(source: str) -> tuple[str | None, str]:
    """The file's indent character (None when nothing is indented) and one level of indentation."""
    tabs = spaces = 0
    steps: Counter[int] = Counter()
    previous = 0
    for line in source.split("\n"):
        # An auto-indented blank line (the cursor's) shows the style too, but is no block of its own.
        tabs += line[:1] == "\t"
        spaces += line[:1] == " "
        if _indent(line) > previous:
            steps[_indent(line) - previous] += 1
        if line.strip():
            previous = _indent(line)
    if tabs > spaces:
        return "\t", "\t"
    return (" " if spaces else None), " " * (steps.most_common(1)[0][0] if steps else 4)


def _scan(code: str, style: str) -> tuple[list[tuple[int, str]], bool]:
    """The brackets outside literals and comments, with offsets, and whether `code` ends inside one."""
    brackets: list[tuple[int, str]] = []
    in_literal = False
    for m in (_HASH_TOKENS if style == "hash" else _SLASH_TOKENS).finditer(code):
        kind = m.lastgroup or ""
        if kind == "bracket":
            brackets.append((m.start(), m.group()))
        in_literal = kind.startswith("open") or (kind == "comment" and m.end() == len(code))
    return brackets, in_literal


def _imbalance(code: str, style: str) -> tuple[int, int]:
    """Closers without an opener, then openers left unclosed: lower is better."""
    stack: list[str] = []
    unmatched = 0
    for _, ch in _scan(code, style)[0]:
        if ch in _OPENERS:
            stack.append(ch)
        elif stack and stack[-1] == _CLOSERS[ch]:
            stack.pop()
        else:
            unmatched += 1
    return unmatched, len(stack)


def _opens_block(line: str, style: str) -> bool:
    m = next(
        (
            m
            for m in (_HASH_TOKENS if style == "hash" else _SLASH_TOKENS).finditer(line)
            if m.lastgroup == "comment"
        ),
        None,
    )
    return (line[: m.start()] if m else line).rstrip().endswith(_BLOCK_OPENERS)


@dataclass(frozen=True)
class Cursor:
    """What the rules need to know about the code around the insertion point."""

    line_prefix: str  # the cursor line up to the cursor
    rest_of_line: str  # the cursor line after the cursor
    after: str  # the source after the cursor line, up to `_SCAN_WINDOW_CHARS` from the cursor
    previous: str  # the last non-blank line above the cursor line
    window: str  # the source from a line start up to `_SCAN_WINDOW_CHARS` back, to the cursor
    style: str  # comment style: "hash" or "slash"
    indent_char: str | None  # "\t", " ", or None when the file shows no indentation
    indent_unit: str  # one level of indentation in this file
    open_stack: tuple[str, ...]  # openers still open at the cursor, innermost last
    rest_closes: tuple[str, ...]  # openers the rest of the line closes, innermost first
    in_literal: bool  # the cursor is inside a string literal or comment

    @classmethod
    def at(cls, source: str, offset: int) -> Cursor:
        line_start = source.rfind("\n", 0, offset) + 1
        line_end = source.find("\n", offset)
        line_end = len(source) if line_end == -1 else line_end
        window_start = _window_start(source, offset)
        window = source[window_start:offset]
        sample = source[window_start : offset + _SCAN_WINDOW_CHARS]  # enough to tell a file's habits
        style = _comment_style(sample)
        brackets, in_literal = _scan(window, style)
        stack: list[str] = []
        for _, ch in brackets:
            if ch in _OPENERS:
                stack.append(ch)
            elif stack and stack[-1] == _CLOSERS[ch]:
                stack.pop()  # a closer whose opener lies before the window is ignored
        rest_of_line = source[offset:line_end]
        rest_closes: list[str] = []
        own: list[str] = []
        for _, ch in [] if in_literal else _scan(rest_of_line, style)[0]:
            if ch in _OPENERS:
                own.append(ch)
            elif own and own[-1] == _CLOSERS[ch]:
                own.pop()
            elif not own and len(stack) > len(rest_closes) and stack[-1 - len(rest_closes)] == _CLOSERS[ch]:
                rest_closes.append(_CLOSERS[ch])
            else:
                break
        indent_char, indent_unit = _indent_style(sample)
        return cls(
            source[line_start:offset],
            rest_of_line,
            source[line_end + 1 : offset + _SCAN_WINDOW_CHARS],
            source[window_start:line_start].rstrip().rsplit("\n", 1)[-1],
            window,
            style,
            indent_char,
            indent_unit,
            tuple(stack),
            tuple(rest_closes),
            in_literal,
        )

    @property
    def at_line_start(self) -> bool:
        return not self.line_prefix.strip()

    @property
    def expected_indent(self) -> int:
        """The indent of a new line here: the previous line's, one level more after a block opener."""
        opens = _opens_block(self.previous, self.style)
        return _indent(self.previous) + (len(self.indent_unit) if opens else 0)

    def imbalance(self, inserted: str) -> tuple[int, int]:
        """`_imbalance` of the window with `inserted` (completion and some suffix) after the cursor."""
        return _imbalance(self.window + inserted, self.style)


def match_indent_style(text: str, at: Cursor) -> str:
    """Leading indentation uses the file's tabs or spaces."""
    lines = text.split("\n")
    first = 0 if at.at_line_start else 1  # mid-line, the first line's leading blanks are not indentation
    if at.indent_char == "\t":
        leads = [len(ln) - len(ln.lstrip(" ")) for ln in lines[first:] if ln.strip()]
        width = min((n for n in leads if n), default=0)  # the model's spaces per level
        for i in range(first, len(lines)):
            lead = len(lines[i]) - len(lines[i].lstrip(" "))
            if lead and lead % width == 0 and lines[i][lead : lead + 1] != "\t":
                lines[i] = "\t" * (lead // width) + lines[i][lead:]
    elif at.indent_char == " ":
        for i in range(first, len(lines)):
            lead = len(lines[i]) - len(lines[i].lstrip("\t"))
            if lead and lines[i][lead : lead + 1] != " ":
                lines[i] = at.indent_unit * lead + lines[i][lead:]
    return "\n".join(lines)


def undouble_first_indent(text: str, at: Cursor) -> str:
    """On an indented blank cursor line, first-line indentation that overshoots the block is dropped."""
    first, sep, tail = text.partition("\n")
    lead = _indent(first)
    column = len(at.line_prefix)
    if not (column and at.at_line_start and not at.rest_of_line.strip() and lead and first.strip()):
        return text
    if column + lead <= at.expected_indent:
        return text  # the model indents relative to the cursor column, as it should
    return first[lead - max(0, at.expected_indent - column) :] + sep + tail


def fix_relative_indent(text: str, at: Cursor) -> str:
    """Later lines the model indented from the cursor column, not the margin, get the cursor line's indent."""
    lines = text.split("\n")
    base = at.line_prefix if at.at_line_start else at.line_prefix[: _indent(at.line_prefix)]
    if not base or len(lines) < 2 or not lines[1].strip() or (at.at_line_start and not lines[0].strip()):
        return text  # nothing to shift, or a blank line first: the model may mean a dedent
    if _DEDENT_START.match(lines[1].lstrip()):
        return text
    probe = _indent(lines[1])
    first_line = at.line_prefix + lines[0]
    first_indent = _indent(first_line) if at.at_line_start else len(base)
    opens = _opens_block(first_line, at.style)

    def misplaced(indent: int) -> bool:
        return indent <= first_indent if opens else indent < len(base)

    if not misplaced(probe) or misplaced(probe + len(base)):
        return text
    return "\n".join([lines[0]] + [base + ln if ln.strip() else ln for ln in lines[1:]])


def trim_suffix_overlap(text: str, at: Cursor) -> str:
    """A completion ending with the rest of the cursor line loses that copy, unless its brackets need it."""
    rest = at.rest_of_line.strip()
    body = text.rstrip()
    if not rest or not body.endswith(rest):
        return text
    trimmed = body[: -len(rest)]
    if at.rest_of_line[:1].isspace():
        trimmed = trimmed.rstrip(" \t")  # the line brings its own spacing
    if at.imbalance(trimmed + at.rest_of_line) <= at.imbalance(body + at.rest_of_line):
        return trimmed
    return text  # `print(<|>)` + `f(x)`: the `)` closes the model's own `(`


def trim_repeated_suffix_lines(text: str, at: Cursor) -> str:
    """Last lines repeating the first lines after the cursor are dropped, unless their brackets are needed."""
    if at.rest_of_line.strip():
        return text
    body = text.rstrip()
    lines = body.split("\n")
    mine = [i for i, ln in enumerate(lines) if ln.strip()]
    theirs: list[tuple[str, int]] = []  # the next non-blank lines, and where each ends in `after`
    pos = 0
    for line in at.after.split("\n"):
        pos += len(line) + 1
        if line.strip():
            theirs.append((line.strip(), pos - 1))
            if len(theirs) == len(mine):
                break
    for k in range(min(len(mine), len(theirs)), 0, -1):
        if [lines[i].strip() for i in mine[-k:]] == [t for t, _ in theirs[:k]]:
            trimmed = "\n".join(lines[: mine[-k]])
            suffix = at.rest_of_line + "\n" + at.after[: theirs[k - 1][1]]
            return trimmed if at.imbalance(trimmed + suffix) <= at.imbalance(body + suffix) else text
    return text


def cut_unmatched_closer(text: str, at: Cursor) -> str:
    """The completion ends before a closer with no opener, or one taking what the rest of the line closes."""
    if at.in_literal:
        return text
    stack = list(at.open_stack)
    enclosing = len(stack)  # the bottom of `stack` is the code's; the completion pushes above it
    cuts: list[tuple[int, tuple[str, ...]]] = []  # before each closer of the code's openers: what is open
    end = len(text)
    for pos, ch in _scan(text, at.style)[0]:
        if ch in _OPENERS:
            stack.append(ch)
            continue
        if not stack or stack[-1] != _CLOSERS[ch]:
            end = pos  # no opener for it
            break
        if len(stack) <= enclosing:
            cuts.append((pos, tuple(stack)))
            enclosing -= 1
        stack.pop()

    def fits(open_now: tuple[str, ...]) -> bool:  # the rest of the line's closers find their openers
        return len(open_now) >= len(at.rest_closes) and all(
            open_now[-1 - j] == want for j, want in enumerate(at.rest_closes)
        )

    if fits(tuple(stack)):
        return text[:end]  # e.g. `} else {` before a `}`: the completion opened what the line closes
    return next((text[:pos] for pos, before in reversed(cuts) if fits(before)), text[:end])


def drop_repeated_line(text: str, at: Cursor) -> str:
    """A one-line completion that makes its line a copy of the code line above is dropped."""
    body = text.strip()
    if not body or "\n" in body:
        return text
    lines = (at.line_prefix + text + at.rest_of_line).split("\n")
    new = max(i for i, ln in enumerate(lines) if ln.strip())
    above = next((ln for ln in reversed(lines[:new]) if ln.strip()), at.previous)
    if lines[new].rstrip() == above.rstrip() and not _LONE_WORD.fullmatch(lines[new].strip()):
        return ""
    return text


# C0 and C1 controls but tab and line ends, DEL, and U+FFFD (what a token's broken UTF-8 decodes to).
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffd]")


def cut_at_control_character(text: str, at: Cursor) -> str:
    """The completion ends before a control character the code around the cursor does not use
    itself (a form feed in a file that has them stays): what a model writes from there is not code,
    and an editor would insert it invisibly."""
    for m in _CONTROL.finditer(text):
        ch = m.group()
        if ch not in at.window and ch not in at.rest_of_line and ch not in at.after:
            return text[: m.start()]
    return text


def strip_trailing_whitespace(text: str, at: Cursor) -> str:
    """No trailing blanks on any line nor trailing blank lines; spacing before code after the cursor stays."""
    if not text.strip():
        return ""
    body = text.rstrip()
    body = "\n".join(ln.rstrip() for ln in body.split("\n"))
    return body + text[len(text.rstrip()) :] if at.rest_of_line.strip() else body


RULES = (
    cut_at_control_character,
    match_indent_style,
    undouble_first_indent,
    fix_relative_indent,
    trim_suffix_overlap,
    trim_repeated_suffix_lines,
    cut_unmatched_closer,
    drop_repeated_line,
    strip_trailing_whitespace,
)


def finish(text: str, source: str | None = None, offset: int | None = None) -> str:
    """What the editor shows for `text` generated at `offset` of `source`; without them `text.rstrip()`."""
    if source is None or offset is None:
        return text.rstrip()
    at = Cursor.at(source, offset)
    for rule in RULES:
        text = rule(text, at)
        if not text.strip():
            return ""
    return text


@dataclass(frozen=True)
class StopRules:
    """Single line inside an expression; otherwise a block, ended by a dedent or `max_lines`."""

    single_line: bool
    base_indent: int
    max_lines: int
    suffix_first_line: str  # the model repeating the code after the cursor means it is done

    @classmethod
    def for_cursor(cls, source: str, offset: int, max_lines: int) -> StopRules:
        line_start = source.rfind("\n", 0, offset) + 1
        line_end = source.find("\n", offset)
        line_end = len(source) if line_end == -1 else line_end
        rest_of_line = source[offset:line_end]
        current = source[line_start:offset]
        if current.strip():
            base = _indent(current)
        else:
            # On a blank line the block is the one the previous code line opened; one level is
            # the file's own (a tab in Go counts as one character, not four).
            prev = source[:line_start].rstrip("\n").rsplit("\n", 1)[-1]
            sample = source[_window_start(source, offset) : offset + _SCAN_WINDOW_CHARS]
            level = len(_indent_style(sample)[1]) if prev.rstrip().endswith((":", "{", "(")) else 0
            base = len(current) if current else _indent(prev) + level
        following = next((ln.strip() for ln in source[line_end + 1 :].split("\n") if ln.strip()), "")
        return cls(bool(rest_of_line.strip()), base, max_lines, following)

    def cut(self, text: str) -> tuple[str, bool]:
        """The part of `text` to keep, and whether generation should stop."""
        lines = text.split("\n")
        if self.single_line:
            return (lines[0], True) if len(lines) > 1 else (text, False)
        kept: list[str] = []
        for i, line in enumerate(lines):
            complete = i < len(lines) - 1  # the last line may still grow
            if (
                i > 0
                and line.strip()
                and complete
                and (_indent(line) < self.base_indent or line.strip() == self.suffix_first_line)
            ):
                return "\n".join(kept).rstrip(), True
            kept.append(line)
            if len(kept) > self.max_lines:
                return "\n".join(kept[: self.max_lines]).rstrip(), True
        return text, False
