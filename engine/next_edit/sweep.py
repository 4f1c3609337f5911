"""Sweep's next-edit prompt format (sweepai/sweep-next-edit-1.5B and -0.5B): raw text, no chat template.

Checked against Zed's implementation, zed-industries/zed crates/edit_prediction/src/sweep_prompt.rs
(`build_prompt`, `write_file_block`, `recent_change_block_from_event`, `limit_change_lines`,
`clean_response_text` and the test `test_build_prompt_uses_run_model_ordering`), and Sweep's
announcement (blog.sweep.dev/posts/oss-next-edit: Qwen2.5-Coder's `<|file_sep|>` layout, original/
updated blocks rather than unified diffs, a fixed 21-line window). The prompt is, block by block:

    <|file_sep|>{related path}\n{its excerpts joined by \n}\n          (one per related file)
    <|file_sep|>{changed path}.diff\noriginal:\n{before}\nupdated:\n{after}\n   (per change, oldest first)
    <|file_sep|>original/{path}\n{the window before the most recent change}\n
    <|file_sep|>current/{path}\n{the window now}\n
    <|file_sep|>updated/{path}\n

where each block's content gets a final newline only if it lacks one, the window is the cursor's
line with 10 lines above and 10 below (whole lines, no final newline), and a change is one hunk
with 3 lines of context on either side, each side capped at 40 lines. The model writes the new
window and ends with `<|file_sep|>` (a token) or `</s>` (text: Qwen's vocabulary has no such
token); the text before the stop, less the block's final newline, is the new window.

sweepai/sweep-next-edit-v2-7B is another format (its model card: `:{start}:{end}` line ranges in the
window headers, a `<|cursor|>` marker, the file's surroundings first); it would be a format class
of its own.

Unlike Zed, which refuses a prompt whose user text contains `<|file_sep|>` or `</s>`, we tokenise
user text without special-token parsing, so such text is plain characters to the model (a server,
which is sent text and parses it, gets user text with a U+200B inside every `<|`: see
`predictor.neutralise`); `</s>` is a stop only when the window itself does not contain it (HTML's
strike-through tag).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from ..backends import Cut, Stops
from ..errors import NextEditFormatError
from ..prompt import Part, Prompt, Snippet, Tokenizer
from .formats import NextEditRequest, Window, line_window

log = logging.getLogger(__name__)

FILE_SEP = "<|file_sep|>"
END_TEXT = "</s>"
END_TOKENS = ("<|endoftext|>",)


def block_text(header: str, content: str) -> str:
    """A block after its `<|file_sep|>`: the header line, the content, a final newline if it lacks one."""
    return f"{header}\n{content}" + ("" if content.endswith("\n") else "\n")


def diff_body(original: str, updated: str) -> str:
    return "original:\n" + original + ("" if original.endswith("\n") else "\n") + "updated:\n" + updated


class SweepFormat:
    name = "sweep-next-edit"
    lines_above = 10
    lines_below = 10

    def window(self, source: str, cursor_offset: int) -> Window:
        return line_window(source, cursor_offset, self.lines_above, self.lines_below)

    def build(self, tokenizer: Tokenizer, request: NextEditRequest, budget_tokens: int) -> Prompt:
        """Stable parts first (related files, then past changes, then the windows), so that a
        keystroke leaves the KV cache's hold on the related files intact."""
        sep = tokenizer.special_id(FILE_SEP)
        if sep is None:
            raise NextEditFormatError(
                f"{tokenizer.name} has no {FILE_SEP} token: it is no Sweep next-edit model"
            )

        def block(
            kind: str, header: str, content: str, path: str = "", start_line: int = 0, end_line: int = 0
        ) -> list[Part]:
            text = block_text(header, content)
            return [
                Part("template", FILE_SEP, tokens=[sep]),
                Part(kind, text, path, start_line, end_line, tokenizer.encode(text)),
            ]

        path = request.path
        w = request.window
        windows = [
            *block("original", f"original/{path}", request.original_window, path, w.start_line, w.end_line),
            *block("current", f"current/{path}", w.text, path, w.start_line, w.end_line),
            Part("template", FILE_SEP, tokens=[sep]),
            Part("template", f"updated/{path}\n", tokens=tokenizer.encode(f"updated/{path}\n")),
        ]
        history = [
            block("history", f"{c.path}.diff", diff_body(c.original, c.updated), c.path)
            for c in request.changes
        ]
        used = _count(windows) + sum(_count(h) for h in history)
        while history and used > budget_tokens:  # the oldest change goes first
            used -= _count(history.pop(0))
        context: list[Part] = []
        for file_path, excerpts in _related_files(request.snippets, path, w):
            for n in range(len(excerpts), 0, -1):  # the file's best excerpts that fit
                chosen = sorted(excerpts[:n], key=lambda s: s.start_line)
                parts = block(
                    "snippet",
                    file_path,
                    "\n".join(s.text.rstrip("\n") for s in chosen),
                    file_path,
                    chosen[0].start_line,
                    chosen[-1].end_line,
                )
                if used + _count(parts) <= budget_tokens:
                    context += parts
                    used += _count(parts)
                    break
        segments = context + [p for h in history for p in h] + windows
        prompt = Prompt(self.name, budget_tokens, segments)
        log.debug(
            "next-edit prompt %d tokens (budget %d): %d related files, %d changes",
            prompt.n_tokens,
            budget_tokens,
            len(context) // 2,
            len(history),
        )
        return prompt

    def stops(self, tokenizer: Tokenizer, request: NextEditRequest) -> Stops:
        # An estimate has no ids (a server matches the texts).
        specials = (FILE_SEP, *END_TOKENS) if tokenizer.exact else ()
        ids = {i for t in specials if (i := tokenizer.special_id(t)) is not None}
        texts = (FILE_SEP,) if END_TEXT in request.window.text else (FILE_SEP, END_TEXT)
        return Stops(frozenset(ids), texts)

    def cutter(self, stops: Stops) -> Cut:
        def cut(text: str) -> tuple[str, bool]:
            found = [i for t in stops.texts if (i := text.find(t)) != -1]
            return (text[: min(found)], True) if found else (text, False)

        return cut

    def parse(self, text: str) -> str:
        return text[:-1] if text.endswith("\n") else text


def _count(parts: Sequence[Part]) -> int:
    return sum(len(p.tokens) for p in parts)


def _related_files(snippets: Sequence[Snippet], path: str, window: Window) -> list[tuple[str, list[Snippet]]]:
    """Snippets grouped by file in the order of each file's best one (best first within a file),
    less those of the current file that overlap the window (the model sees those lines already)."""
    files: dict[str, list[Snippet]] = {}
    for s in snippets:
        if s.path == path and s.start_line <= window.end_line and s.end_line >= window.start_line:
            continue
        if s.text.strip():
            files.setdefault(s.path, []).append(s)
    return list(files.items())
