"""The `code-kb` command: one module per command group (index, cursor, next_edit, model, serve, doctor).
Data to stdout; progress, logs and errors to stderr. Only this package configures logging."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time

from engine import EngineError
from retrieval import RetrievalError

from .. import __version__
from . import cursor, doctor, index, model, next_edit, serve
from .common import UsageError

log = logging.getLogger("code_kb")

__all__ = ["UsageError", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="code-kb", description="Local, repository-aware code completion.")
    parser.add_argument("--version", action="version", version=f"code-kb {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in (index, cursor, next_edit, serve, model, doctor):
        group.add_parsers(sub)
    return parser


def configure_logging(verbose: int, log_file: str | None) -> None:
    """stderr (and --log-file) handlers on the root logger; replaces the ones an earlier call added."""
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "code_kb", False)]:
        root.removeHandler(handler)
        handler.close()
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in handlers:
        handler.code_kb = True  # type: ignore[attr-defined]
        handler.setLevel(level)
        handler.setFormatter(formatter)
        root.addHandler(handler)
    root.setLevel(min(level, root.level) if root.level != logging.NOTSET else level)
    for noisy in ("faiss.loader", "sentence_transformers", "httpx", "urllib3", "filelock", "gguf"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    # Every protocol message, in full: only when debugging (`serve -v`), not in the editor's log panel.
    for protocol in ("pygls.protocol.json_rpc", "pygls.protocol.language_server", "pygls.feature_manager"):
        logging.getLogger(protocol).setLevel(logging.DEBUG if level <= logging.DEBUG else logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.verbose + (1 if args.command == "serve" else 0), args.log_file)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    t0 = time.perf_counter()
    try:
        return args.func(args)
    except UsageError as exc:
        print(f"code-kb: error: {exc}", file=sys.stderr)
        return 2
    except (EngineError, RetrievalError) as exc:
        if args.verbose:
            log.exception("failed")
        print(f"code-kb: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        log.debug("%s took %.2f s", args.command, time.perf_counter() - t0)
