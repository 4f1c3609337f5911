"""What the command groups share: errors, settings from flags, locations, progress bars."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from retrieval import CodeIndex, ReindexStats
from retrieval.config import EMBEDDING_BACKENDS

from ..config import Settings


class UsageError(Exception):
    """Bad command-line input: exit status 2."""


def find_root(start: Path) -> Path:
    """The nearest enclosing directory with an index or a repository; else the start directory."""
    start = start.resolve()
    directory = start if start.is_dir() else start.parent
    for candidate in (directory, *directory.parents):
        if (candidate / ".code-kb").is_dir() or (candidate / ".git").exists():
            return candidate
    return directory


def cli_overrides(args: argparse.Namespace) -> dict:
    """Command-line flags as wire keys: they win over every other source of settings."""
    overrides = {
        "modelPath": getattr(args, "model", None),
        "endpoint": getattr(args, "endpoint", None),
        "budgetTokens": getattr(args, "budget", None),
        "maxTokens": getattr(args, "max_tokens", None),
        "indexDir": args.index_dir,
        "embeddingModel": args.embedding_model,
        "embeddingBackend": getattr(args, "embedding_backend", None),
        "maxFiles": getattr(args, "max_files", None),
    }
    return {k: v for k, v in overrides.items() if v is not None}


def settings_from(args: argparse.Namespace) -> Settings:
    return Settings.load(overrides=cli_overrides(args))


class Bar:
    """A tqdm bar on stderr, made on the first report (nothing when quiet)."""

    def __init__(self, quiet: bool, **tqdm_args) -> None:
        self.quiet, self.tqdm_args = quiet, tqdm_args
        self.bar: Any = None  # a tqdm bar once made

    def update(self, done: int, total: int | None, postfix: str = "") -> None:
        if self.quiet:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(
                total=total,
                initial=done,
                file=sys.stderr,
                mininterval=0.2,
                dynamic_ncols=True,
                **self.tqdm_args,
            )
        bar = self.bar
        bar.n = done
        if postfix:
            bar.set_postfix_str(postfix, refresh=False)
        bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run_reindex(index: CodeIndex, quiet: bool) -> ReindexStats:
    """Index a tree with a file bar on stderr."""
    bar = Bar(quiet, unit="file", desc="indexing", leave=True)

    def progress(done: int, total: int, what: str) -> None:
        if total:
            bar.update(done, total, what[-40:])

    try:
        return index.reindex(progress)
    finally:
        bar.close()


def add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more logging on stderr (-vv: debug)"
    )
    parser.add_argument("--log-file", help="also write the log to this file")
    parser.add_argument(
        "--index-dir",
        help="where the index lives (default: ROOT/.code-kb, or the user's "
        "cache folder for a folder code-kb cannot or should not write into)",
    )
    parser.add_argument(
        "--embedding-model",
        help="sentence-transformers model name or path (default: the packaged all-MiniLM-L6-v2)",
    )
    parser.add_argument(
        "--embedding-backend",
        choices=EMBEDDING_BACKENDS,
        help="how the embedding model runs (default auto: the fastest measured on this machine "
        "whose vectors agree with torch's)",
    )
    parser.add_argument(
        "--max-files", type=int, help="refuse to index a tree with more files than this (default 25000)"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def add_model(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="GGUF model file (default: $CODE_KB_MODEL, then the config file)")
    parser.add_argument(
        "--endpoint",
        help="OpenAI-compatible inference server (e.g. http://127.0.0.1:8080) "
        "that generates instead of an in-process model; --model then only counts tokens",
    )
    parser.add_argument(
        "--budget", type=int, help="prompt budget in tokens (default: from the model and hardware)"
    )
    parser.add_argument("--max-tokens", type=int, help="tokens to generate at most (default 64)")


def add_index_use(parser: argparse.ArgumentParser) -> None:
    """--json, --root and --no-reindex: for commands that read an index."""
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.add_argument("--root", help="the indexed root (default: nearest directory with .code-kb or .git)")
    parser.add_argument(
        "--no-reindex", action="store_true", help="use the index as it is, without updating it"
    )
