"""Cursor commands: context (the prompt at a position) and complete (the model's completion there),
one position or a batch, through the same Session the language server drives."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from engine import Completer, EngineError
from retrieval import CodeIndex, RetrievalError

from ..config import Settings
from ..session import Buffer, Cursor, Refused, Session
from .common import UsageError, add_common, add_index_use, add_model, find_root, run_reindex, settings_from

log = logging.getLogger("code_kb")


class TreeIndexes:
    """The session's IndexSource for the command line: the root given by --root, else the nearest
    one holding a file, opened (and brought up to date unless --no-reindex) on first use."""

    def __init__(self, settings: Settings, root: str | None, reindex: bool, quiet: bool) -> None:
        self.settings = settings
        self.root = Path(root).resolve() if root else None
        self.reindex, self.quiet = reindex, quiet
        self.open: dict[Path, CodeIndex] = {}

    def root_for(self, path: Path) -> Path:
        root = self.root or find_root(path)
        if root not in self.open:
            index = CodeIndex(root, self.settings.index)
            if self.reindex:
                run_reindex(index, self.quiet)
            self.open[root] = index
        return root

    def searchable(self, root: Path | None) -> CodeIndex | None:
        return self.open.get(root) if root is not None else None

    def close(self) -> None:
        for index in self.open.values():
            index.close()


def parse_location(spec: str) -> tuple[Path, int, int]:
    """PATH:LINE:COL, 1-based line and column (column in characters)."""
    try:
        path, line, col = spec.rsplit(":", 2)
        return Path(path), int(line), int(col)
    except ValueError:
        raise UsageError(f"expected PATH:LINE:COL with 1-based numbers, got {spec!r}") from None


def offset_of(source: str, line: int, col: int, label: str) -> int:
    lines = source.split("\n")
    if not 1 <= line <= len(lines):
        raise UsageError(f"{label}: line {line} is outside the file (1-{len(lines)})")
    text = lines[line - 1]
    if not 1 <= col <= len(text) + 1:
        raise UsageError(f"{label}: column {col} is outside line {line} (1-{len(text) + 1})")
    return sum(len(x) + 1 for x in lines[: line - 1]) + col - 1


def _requests(args: argparse.Namespace) -> Iterator[dict[str, Any]]:
    if args.batch:
        stream = sys.stdin if args.batch == "-" else open(args.batch, encoding="utf-8")
        with stream:
            for n, raw in enumerate(stream, 1):
                if raw.strip():
                    try:
                        item = json.loads(raw)
                        if not isinstance(item, dict):
                            raise ValueError("not an object")
                    except ValueError as exc:
                        item = {"error": f"line {n} of {args.batch}: not a JSON object ({exc})"}
                    yield item
        return
    if not args.location:
        raise UsageError("give PATH:LINE:COL or --batch FILE.jsonl")
    path, line, col = parse_location(args.location)
    one: dict[str, Any] = {"path": str(path), "line": line, "col": col}
    if args.buffer:
        one["buffer"] = Path(args.buffer).read_text(encoding="utf-8")
    yield one


def cursor_of(session: Session, item: dict[str, Any]) -> Cursor:
    """A request's cursor. The path policy runs before the file is read: a secret is never opened."""
    for key in ("path", "line", "col"):
        if key not in item:
            raise UsageError(f"request lacks {key!r}: {json.dumps(item)[:200]}")
    file = Path(str(item["path"])).expanduser()
    if not file.is_absolute():
        file = Path.cwd() / file
    try:
        session.place(Buffer(file, ""))  # name and link target, before reading
        if "buffer" in item:
            source = str(item["buffer"])
        else:
            try:
                source = file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise UsageError(f"cannot read {file}: {exc}") from None
        try:
            line, col = int(item["line"]), int(item["col"])
        except (TypeError, ValueError):
            raise UsageError(f"line and col must be whole numbers: {json.dumps(item)[:200]}") from None
        return session.cursor(Buffer(file, source), offset_of(source, line, col, str(item["path"])))
    except Refused as why:
        raise UsageError(f"code-kb builds no prompt for {item['path']}: {why}") from None


def _each(
    args: argparse.Namespace, session: Session, indexes: TreeIndexes, handle: Callable[[Cursor], None]
) -> int:
    """Run `handle` per request, then close the indexes; in batch mode a bad request becomes an error
    line, not an exit."""
    failures = 0
    try:
        for item in _requests(args):
            try:
                if "error" in item:
                    raise UsageError(item["error"])
                handle(cursor_of(session, item))
            except (UsageError, EngineError, RetrievalError) as exc:
                if not args.batch:
                    raise
                failures += 1
                print(
                    json.dumps(
                        {
                            "path": item.get("path"),
                            "line": item.get("line"),
                            "col": item.get("col"),
                            "error": str(exc),
                        }
                    ),
                    flush=True,
                )
    finally:
        indexes.close()
    return 1 if failures else 0


def _session(args: argparse.Namespace, vocab_only: bool) -> tuple[Session, TreeIndexes]:
    settings = settings_from(args)
    indexes = TreeIndexes(settings, args.root, not args.no_reindex, args.quiet)
    session = Session(settings, indexes)
    if settings.engine.model_path or not vocab_only:
        session.load_model(vocab_only=vocab_only)  # raises with what to do when no model is configured
    else:
        log.warning("no model configured: token counts are estimates (give --model or set CODE_KB_MODEL)")
        session.completer = Completer(settings.engine)
    return session, indexes


def cmd_context(args: argparse.Namespace) -> int:
    session, indexes = _session(args, vocab_only=True)

    def handle(cursor: Cursor) -> None:
        prompt, retrieval_ms = session.prompt(cursor, budget_tokens=args.budget)
        if args.json or args.batch:
            print(
                json.dumps(
                    prompt.to_dict(cursor.place.path, cursor.line + 1, cursor.col + 1), ensure_ascii=False
                ),
                flush=True,
            )
            return
        sys.stdout.write(prompt.text)
        sys.stdout.write("\n")
        snippets = [
            f"{p.path}:{p.start_line + 1}-{p.end_line + 1}"
            for p in prompt.parts
            if p.kind in ("snippet", "recent")
        ]
        exact = (
            "" if session.completer and session.completer.tokenizer.exact else " (estimated: no model given)"
        )
        print(
            f"--\nprompt {prompt.n_tokens} tokens{exact} of a {prompt.budget_tokens}-token budget, template "
            f"{prompt.template}; retrieval {retrieval_ms:.0f} ms, assembly {prompt.build_ms:.0f} ms\n"
            f"retrieved: {', '.join(snippets) if snippets else 'nothing'}",
            file=sys.stderr,
        )

    return _each(args, session, indexes, handle)


def cmd_complete(args: argparse.Namespace) -> int:
    session, indexes = _session(args, vocab_only=False)

    def handle(cursor: Cursor) -> None:
        result = session.complete(cursor)
        if args.json or args.batch:
            g = result.generation
            print(
                json.dumps(
                    {
                        "path": cursor.place.path,
                        "line": cursor.line + 1,
                        "col": cursor.col + 1,
                        "text": result.text,
                        "prompt_tokens": g.n_prompt,
                        "evaluated_tokens": g.n_evaluated,
                        "reused_tokens": g.n_reused,
                        "generated_tokens": g.n_generated,
                        "stop_reason": g.stop_reason,
                        "total_ms": round(result.total_ms, 1),
                    },
                    ensure_ascii=False,
                ),
                flush=True,
            )
            return
        print(result.text)
        print(f"-- {result.summary()}", file=sys.stderr)

    return _each(args, session, indexes, handle)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    for name, func, text in (
        ("context", cmd_context, "print the prompt code-kb would send the model at a position"),
        ("complete", cmd_complete, "print the model's completion at a position"),
    ):
        p = sub.add_parser(name, help=text)
        add_common(p)
        add_model(p)
        p.add_argument("location", nargs="?", help="PATH:LINE:COL, 1-based line and column")
        p.add_argument("--buffer", help="file holding the unsaved text of PATH, used instead of PATH on disk")
        p.add_argument(
            "--batch",
            help='JSON lines of {"path", "line", "col", optional "buffer"}; one result line '
            "each, in order ('-' for stdin)",
        )
        add_index_use(p)
        p.set_defaults(func=func)
