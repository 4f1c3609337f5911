"""Index commands: reindex, search, status."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine import EngineError
from retrieval import CodeIndex, RetrievalError

from ..config import Settings
from .common import add_common, add_index_use, find_root, run_reindex, settings_from

if TYPE_CHECKING:
    from engine.backends.llama_cpp import LlamaCppModel


def cmd_reindex(args: argparse.Namespace) -> int:
    root = Path(args.path)
    settings = settings_from(args)
    index = CodeIndex(root, settings.index)
    stats = run_reindex(index, args.quiet)
    print(f"indexed {index.root} into {index.directory}: {stats.summary()}", file=sys.stderr)
    index.close()
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    root = Path(args.root).resolve() if args.root else find_root(Path.cwd())
    index = CodeIndex(root, settings.index)
    try:
        if not args.no_reindex:
            run_reindex(index, args.quiet)
        hits = index.search(args.query, args.k)
    finally:
        index.close()
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "path": h.path,
                        "start_line": h.start_line + 1,
                        "end_line": h.end_line + 1,
                        "kind": h.kind,
                        "name": h.name,
                        "score": round(h.score, 4),
                        "text": h.text,
                    }
                    for h in hits
                ],
                ensure_ascii=False,
            )
        )
        return 0
    for rank, h in enumerate(hits, 1):
        first = next((ln.strip() for ln in h.text.split("\n") if ln.strip()), "")
        print(
            f"{rank:2d}. {h.score:.3f}  {h.path}:{h.start_line + 1}-{h.end_line + 1}  {h.kind} {h.name}".rstrip()
        )
        print(f"      {first[:100]}")
    if not hits:
        print(f"nothing found in {root}", file=sys.stderr)
    return 0


def hardware_report(settings: Settings) -> dict:
    """This machine, what code-kb chooses for it and why, and where the configured model stands."""
    from engine.hardware import choose, detect
    from engine.models import local_model_path

    machine = detect()
    choice = choose(machine)
    model: dict[str, Any] = {"setting": settings.engine.model_path, "endpoint": settings.engine.endpoint}
    if settings.engine.model_path:
        try:
            model["path"] = local_model_path(settings.engine.model_path)
        except EngineError as exc:
            model["problem"] = str(exc)
    elif not settings.engine.endpoint:
        model["problem"] = f"no model configured; run: code-kb model pull {choice.model}"
    engine = settings.engine
    overrides = {
        k: v
        for k, v in (
            ("budget", engine.budget_tokens),
            ("kv_cache_type", engine.kv_cache_type if engine.kv_cache_type != "auto" else None),
            ("gpu_layers", engine.n_gpu_layers),
        )
        if v is not None
    }  # the settings that replace the choice
    if "path" in model:  # sized as Completer.load sizes it
        from engine.completer import auto_budget, kv_cache_type_of

        def completion_size(vocab: LlamaCppModel) -> tuple[int, str]:
            model["cache_reuse"] = vocab.cache.to_dict()
            model["budget_tokens"] = auto_budget(engine, vocab.n_ctx_train, vocab.cache)
            n_ctx = model["budget_tokens"] + engine.max_tokens
            return n_ctx, kv_cache_type_of(engine, vocab, n_ctx)

        model.update(_memory(model["path"], completion_size))
    return {
        "machine": machine.to_dict(),
        "choice": choice.to_dict(),
        "overrides": overrides,
        "model": model,
        "next_edit": _next_edit_report(settings),
    }


def _memory(path: str, size: Callable[[LlamaCppModel], tuple[int, str]]) -> dict[str, Any]:
    """What a model file takes loaded: its weights and the KV cache `size(vocab)` gives (tokens, type),
    read from its header."""
    from engine.backends.llama_cpp import LlamaCppModel

    from ..next_edits import model_bytes

    try:
        vocab = LlamaCppModel(path, vocab_only=True)
    except EngineError as exc:
        return {"problem": str(exc)}
    n_ctx, kv = size(vocab)
    return {"memory_bytes": model_bytes(vocab, n_ctx, kv), "memory_context_tokens": n_ctx}


def _next_edit_report(settings: Settings) -> dict[str, Any]:
    """The next-edit model: as configured, its file, and its memory as NextEdits.load would load it."""
    from engine.models import local_model_path

    from ..next_edits import context_tokens, kv_type

    config = settings.next_edit
    report: dict[str, Any] = {
        "setting": config.model_path,
        "endpoint": config.endpoint,
        "enabled": config.enabled,
    }
    if config.model_path and not config.endpoint:
        try:
            report["path"] = local_model_path(config.model_path)
        except EngineError as exc:
            report["problem"] = str(exc)
            return report
        report.update(
            _memory(report["path"], lambda vocab: (context_tokens(vocab, config), kv_type(settings.engine)))
        )
    return report


def _print_hardware(report: dict) -> None:
    m, c, model = report["machine"], report["choice"], report["model"]
    gib = 1 << 30
    gpus = (
        ", ".join(
            f"{d['backend']} {d['name']} {(d['total_bytes'] or 0) / gib:.1f} GiB"
            for d in m["devices"]
            if d["kind"] != "cpu"
        )
        or "none"
    )
    print(
        f"machine       {m['cpu_cores']} CPU cores, {(m['ram_bytes'] or 0) / gib:.1f} GiB RAM, GPUs: {gpus}"
    )
    print(
        f"chosen        model {c['model']} {c['quant']} (what `code-kb model list` marks), budget "
        f"{c['budget_tokens']} tokens, KV {c['kv_cache_type']}, GPU layers {c['gpu_layers']}"
    )
    for reason in c["reasons"]:
        print(f"  because     {reason}")
    if report["overrides"]:
        print(f"  set by you  {', '.join(f'{k} {v}' for k, v in report['overrides'].items())}")
    gb = 1e9
    for label, m in (("model", model), ("next edit", report["next_edit"])):
        configured = m["setting"] or (f"endpoint {m['endpoint']}" if m["endpoint"] else "none")
        where = m.get("path") or m.get("problem") or ""
        memory = (
            f" (about {m['memory_bytes'] / gb:.1f} GB loaded, with a {m['memory_context_tokens']}-token cache)"
            if "memory_bytes" in m
            else ""
        )
        print(f"{label:<13} {configured}{' -> ' + where if where else ''}{memory}")
        reuse = m.get("cache_reuse")
        if reuse and not reuse["reusable"]:
            why = "yours" if "budget" in report["overrides"] else "a quarter of the default"
            print(
                f"  KV reuse    no: {reuse['why']}; {reuse['cost']}; budget {m['budget_tokens']} tokens ({why})"
            )


def cmd_status(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    root = Path(args.path).resolve()
    directory = settings.index.directory_for(root)
    report = hardware_report(settings)
    if not (directory / "index.sqlite3").is_file():
        if not args.json:
            _print_hardware(report)
        raise RetrievalError(f"no index at {directory}; run: code-kb reindex {args.path}")
    index = CodeIndex(root, settings.index)
    try:
        info = {"root": str(index.root), "index_dir": str(index.directory), **index.describe()}
    finally:
        index.close()
    if args.json:
        print(json.dumps({**info, "hardware": report}))
        return 0
    info["size_on_disk"] = f"{info.pop('disk_bytes') / 1e6:.1f} MB"
    width = max(len(k) for k in info)
    for key, value in info.items():
        print(f"{key.replace('_', ' '):<{width}}  {value}")
    _print_hardware(report)
    return 0


def cmd_index_export(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    index = CodeIndex(Path(args.path), settings.index)
    try:
        if not args.no_reindex:
            run_reindex(index, args.quiet)
        stats = index.export_vectors(Path(args.file))
    finally:
        index.close()
    print(
        f"exported {stats.vectors} vectors of {stats.model} ({stats.dim} dimensions) to {args.file}, "
        f"{stats.bytes / 1e6:.1f} MB",
        file=sys.stderr,
    )
    return 0


def cmd_index_import(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    index = CodeIndex(Path(args.path), settings.index)
    try:
        stats = index.import_vectors(Path(args.file))
        model = index.store.embedding_model
        print(
            f"imported {stats.added} new vectors of {model} ({stats.matching} in the file; the file holds "
            + ", ".join(f"{n} of {m}" for m, n in stats.models.items())
            + ")",
            file=sys.stderr,
        )
        if not args.no_reindex:
            done = run_reindex(index, args.quiet)
            print(f"indexed {index.root}: {done.summary()}", file=sys.stderr)
    finally:
        index.close()
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser(
        "index", help="share an index's embeddings: export them to a file, import one into another checkout"
    ).add_subparsers(dest="index_command", required=True)
    p = group.add_parser("export", help="write the vectors of the indexed chunks to FILE (reindexes first)")
    add_common(p)
    p.add_argument("file")
    p.add_argument("path", nargs="?", default=".", help="root of the indexed tree (default: .)")
    p.add_argument("--no-reindex", action="store_true", help="export the index as it is")
    p.set_defaults(func=cmd_index_export)
    p = group.add_parser(
        "import",
        help="add FILE's vectors to the index's cache, then reindex (only what FILE lacks is embedded)",
    )
    add_common(p)
    p.add_argument("file")
    p.add_argument("path", nargs="?", default=".", help="root of the tree (default: .)")
    p.add_argument("--no-reindex", action="store_true", help="only import; the next reindex uses them")
    p.set_defaults(func=cmd_index_import)
    p = sub.add_parser("reindex", help="index a tree (incremental)")
    add_common(p)
    p.add_argument("path", nargs="?", default=".", help="root to index (default: .)")
    p.set_defaults(func=cmd_reindex)
    p = sub.add_parser("search", help="ranked chunks of the index for a query")
    add_common(p)
    p.add_argument("query")
    p.add_argument("-k", type=int, default=10, help="how many chunks (default 10)")
    add_index_use(p)
    p.set_defaults(func=cmd_search)
    p = sub.add_parser(
        "status",
        help="what the index of a tree holds, this machine, and the model, budget and offload chosen for it",
    )
    add_common(p)
    p.add_argument("path", nargs="?", default=".", help="root of the indexed tree (default: .)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=cmd_status)
