"""Where a completion should end: stop rules that fit the cursor's place, and clean-up."""

from __future__ import annotations

from dataclasses import dataclass


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


@dataclass(frozen=True)
class StopRules:
    """Single line inside an expression; otherwise a block, ended by a dedent or `max_lines`."""

    single_line: bool
    base_indent: int
    max_lines: int
    suffix_first_line: str  # the model repeating the code after the cursor means it is done

    @classmethod
    def for_cursor(cls, source: str, offset: int, max_lines: int) -> "StopRules":
        line_start = source.rfind("\n", 0, offset) + 1
        line_end = source.find("\n", offset)
        line_end = len(source) if line_end == -1 else line_end
        rest_of_line = source[offset:line_end]
        current = source[line_start:offset]
        if current.strip():
            base = _indent(current)
        else:
            # On a blank line the block is the one the previous code line opened.
            prev = source[:line_start].rstrip("\n").rsplit("\n", 1)[-1]
            base = len(current) if current else _indent(prev) + (4 if prev.rstrip().endswith((":", "{", "(")) else 0)
        following = next((ln.strip() for ln in source[line_end + 1:].split("\n") if ln.strip()), "")
        return cls(bool(rest_of_line.strip()), base, max_lines, following)

    def cut(self, text: str) -> tuple[str, bool]:
        """The part of `text` to keep, and whether generation should stop."""
        lines = text.split("\n")
        if self.single_line:
            return (lines[0], True) if len(lines) > 1 else (text, False)
        kept: list[str] = []
        for i, line in enumerate(lines):
            complete = i < len(lines) - 1  # the last line may still grow
            if i > 0 and line.strip() and complete and (
                    _indent(line) < self.base_indent or line.strip() == self.suffix_first_line):
                return "\n".join(kept).rstrip(), True
            kept.append(line)
            if len(kept) > self.max_lines:
                return "\n".join(kept[:self.max_lines]).rstrip(), True
        return text, False


def finish(text: str) -> str:
    """Final clean-up: no trailing whitespace or blank lines."""
    return text.rstrip()
