"""`code-kb next-edit`: the next-edit model's suggestion at a position, from the file before and after
the user's recent change, printed as a unified diff of the file (or JSON). The same path and secret
policy as `context` and `complete` (Session.place), related context from the root's index."""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from engine import EngineError
from engine.config import default_snippet_limit

from ..config import Settings, config_file_path
from ..next_edits import NextEdits
from ..session import Buffer, Cursor, Refused, Session
from .common import UsageError, add_common, add_index_use, cli_overrides
from .cursor import TreeIndexes, cursor_of, parse_location

if TYPE_CHECKING:
    pass

log = logging.getLogger("code_kb")


class NextEditModelNotConfiguredError(EngineError):
    def __init__(self) -> None:
        super().__init__(
            "no next-edit model configured; run `code-kb model pull sweep-next-edit-1.5b` (or -0.5b, faster) and "
            'give --model sweep-next-edit-1.5b, or set `next_edit_model = "sweep-next-edit-1.5b"` in '
            f"{config_file_path()} (the editor's nextEditModel setting)"
        )


def _line_col(source: str, offset: int) -> tuple[int, int]:
    """1-based line and column (in characters) of an offset."""
    return source.count("\n", 0, offset) + 1, offset - (source.rfind("\n", 0, offset) + 1) + 1


def unified_diff(path: str, before: str, after: str) -> str:
    """The change as `diff -u` prints it (a/ and b/ prefixes, as git does); empty when none."""
    lines = difflib.unified_diff(
        before.splitlines(keepends=True),
        after.splitlines(keepends=True),
        fromfile=f"a/{path}",
        tofile=f"b/{path}",
    )
    return "".join(
        line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines
    )


def cmd_next_edit(args: argparse.Namespace) -> int:
    from engine.next_edit import EditHistory, apply_edits

    # --budget and --max-tokens are the next-edit model's, not the completion engine's
    index_flags = {
        k: v
        for k, v in cli_overrides(args).items()
        if k in ("indexDir", "embeddingModel", "embeddingBackend", "maxFiles")
    }
    settings = Settings.load(overrides={**index_flags, "nextEditModel": args.next_edit_model})
    flags = {
        "budget_tokens": args.budget,
        "max_tokens": args.max_tokens,
        "timeout_s": args.timeout_s,
        "speculative": False if args.no_speculative else None,
    }
    if args.format:
        flags["format"] = args.format
    config = dataclasses.replace(settings.next_edit, **{k: v for k, v in flags.items() if v is not None})
    if not config.model_path:
        raise NextEditModelNotConfiguredError()
    indexes = TreeIndexes(settings, args.root, not args.no_reindex, args.quiet)
    try:
        session = Session(settings, indexes)
        path, line, col = parse_location(args.location)
        item: dict = {"path": str(path), "line": line, "col": col}
        if args.buffer:
            item["buffer"] = _read(Path(args.buffer))
        cursor = cursor_of(session, item)  # the path and secret policy, before the file is read
        before = _before(args, session, cursor)
        predictor = NextEdits().load(config, settings.engine, completion_bytes=0)
        history = EditHistory()
        if before is not None:
            history.record(cursor.place.path, before, cursor.source)
        context = session.context_for(cursor.place)
        limit = default_snippet_limit(config.budget_tokens)
        snippets = context.snippets(cursor.place.path, cursor.source, cursor.offset, limit) if context else []
        predictor.predict(cursor.place.path, cursor.source, cursor.offset, history, snippets)
    finally:
        indexes.close()
    result = predictor.last
    if result is None:  # predict() returns before any work only when cancelled; nothing cancels here
        raise EngineError("the next-edit request was cancelled")
    if args.json:
        edits = []
        for e in result.edits:
            start_line, start_col = _line_col(cursor.source, e.start)
            end_line, end_col = _line_col(cursor.source, e.end)
            edits.append(
                {
                    "start_line": start_line,
                    "start_col": start_col,
                    "end_line": end_line,
                    "end_col": end_col,
                    "text": e.text,
                }
            )
        g = result.generation
        print(
            json.dumps(
                {
                    "path": cursor.place.path,
                    "line": cursor.line + 1,
                    "col": cursor.col + 1,
                    "edits": edits,
                    "verdict": result.verdict,
                    "prompt_tokens": g.n_prompt,
                    "evaluated_tokens": g.n_evaluated,
                    "reused_tokens": g.n_reused,
                    "total_ms": round(result.total_ms, 1),
                },
                ensure_ascii=False,
            )
        )
    else:
        sys.stdout.write(
            unified_diff(cursor.place.path, cursor.source, apply_edits(cursor.source, result.edits))
        )
    if before is None:
        print("-- no --before given: the model saw no recent change", file=sys.stderr)
    print(f"-- {result.summary()}", file=sys.stderr)
    return 0


def _read(file: Path) -> str:
    try:
        return file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {file}: {exc}") from None


def _before(args: argparse.Namespace, session: Session, cursor: Cursor) -> str | None:
    """The file's text before the recent change, under the same secret policy as the text now."""
    if not args.before:
        return None
    before = _read(Path(args.before))
    file = Path(args.location.rsplit(":", 2)[0]).expanduser()
    try:
        session.place(Buffer(file if file.is_absolute() else Path.cwd() / file, before))
    except Refused as why:
        raise UsageError(
            f"code-kb builds no prompt for {cursor.place.path}: the --before text: {why}"
        ) from None
    return session.secrets.mask(before, cursor.place.path)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "next-edit",
        help="print the next-edit model's suggested edits at a position, as a "
        "unified diff, from the file before the user's recent change (--before) and now",
    )
    add_common(p)
    p.add_argument("location", help="PATH:LINE:COL, 1-based line and column (column in characters)")
    p.add_argument(
        "--before",
        help="file holding PATH's text before the user's recent change (without it, "
        "the model sees no change)",
    )
    p.add_argument("--buffer", help="file holding the unsaved text of PATH now, used instead of PATH on disk")
    p.add_argument(
        "--model",
        dest="next_edit_model",
        help="next-edit GGUF file or catalogue name "
        "(default: the next_edit_model setting; e.g. sweep-next-edit-1.5b)",
    )
    p.add_argument(
        "--format",
        choices=["sweep"],
        help="the model's next-edit prompt format, for a GGUF whose "
        "name does not tell (default: recognised from the GGUF)",
    )
    p.add_argument("--budget", type=int, help="prompt budget in tokens (default 3072)")
    p.add_argument(
        "--max-tokens",
        type=int,
        help="tokens to generate at most (default 1024; at most twice the window's tokens plus 64)",
    )
    p.add_argument("--timeout-s", type=float, help="generation time limit in seconds (default 10)")
    p.add_argument(
        "--no-speculative",
        action="store_true",
        help="decode token by token instead of verifying the current window as a draft in batches",
    )
    add_index_use(p)
    p.set_defaults(func=cmd_next_edit)
