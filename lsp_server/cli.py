"""The `code-kb` command: one function per subcommand. Data to stdout; progress, logs and errors to stderr."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, Iterator

from engine import Completer, EngineError
from retrieval import CodeIndex, ReindexStats, RetrievalError
from retrieval.files import is_secret

from . import __version__
from .config import Settings, config_file_path
from .paths import holds_secrets, locate

log = logging.getLogger("code_kb")


class UsageError(Exception):
    """Bad command-line input: exit status 2."""


# -- shared helpers ---------------------------------------------------------------------
def find_root(start: Path) -> Path:
    """The nearest enclosing directory with an index or a repository; else the start directory."""
    start = start.resolve()
    directory = start if start.is_dir() else start.parent
    for candidate in (directory, *directory.parents):
        if (candidate / ".code-kb").is_dir() or (candidate / ".git").exists():
            return candidate
    return directory


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


def cli_overrides(args: argparse.Namespace) -> dict:
    """Command-line flags as wire keys: they win over every other source of settings."""
    overrides = {
        "modelPath": getattr(args, "model", None),
        "endpoint": getattr(args, "endpoint", None),
        "budgetTokens": getattr(args, "budget", None),
        "maxTokens": getattr(args, "max_tokens", None),
        "indexDir": args.index_dir,
        "embeddingModel": args.embedding_model,
    }
    return {k: v for k, v in overrides.items() if v is not None}


def settings_from(args: argparse.Namespace) -> Settings:
    return Settings.load(overrides=cli_overrides(args))


class ProgressBar:
    """A tqdm bar on stderr fed by the index's progress callback."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.bar = None

    def __call__(self, done: int, total: int, what: str) -> None:
        if self.quiet or total == 0:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="file", file=sys.stderr, desc="indexing", mininterval=0.2,
                            dynamic_ncols=True, leave=True)
        self.bar.n = done
        self.bar.set_postfix_str(what[-40:], refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run_reindex(index: CodeIndex, quiet: bool) -> ReindexStats:
    bar = ProgressBar(quiet)
    try:
        return index.reindex(bar)
    finally:
        bar.close()


# -- subcommands ------------------------------------------------------------------------
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
        print(json.dumps([{"path": h.path, "start_line": h.start_line + 1, "end_line": h.end_line + 1,
                           "kind": h.kind, "name": h.name, "score": round(h.score, 4), "text": h.text}
                          for h in hits], ensure_ascii=False))
        return 0
    for rank, h in enumerate(hits, 1):
        first = next((ln.strip() for ln in h.text.split("\n") if ln.strip()), "")
        print(f"{rank:2d}. {h.score:.3f}  {h.path}:{h.start_line + 1}-{h.end_line + 1}  {h.kind} {h.name}".rstrip())
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
    overrides = {k: v for k, v in (("budget", engine.budget_tokens), ("kv_cache_type", engine.kv_cache_type
                                   if engine.kv_cache_type != "auto" else None), ("gpu_layers", engine.n_gpu_layers))
                 if v is not None}  # the settings that replace the choice
    return {"machine": machine.to_dict(), "choice": choice.to_dict(), "overrides": overrides, "model": model}


def _print_hardware(report: dict) -> None:
    m, c, model = report["machine"], report["choice"], report["model"]
    gib = 1 << 30
    gpus = ", ".join(f"{d['backend']} {d['name']} {(d['total_bytes'] or 0) / gib:.1f} GiB"
                     for d in m["devices"] if d["kind"] != "cpu") or "none"
    print(f"machine       {m['cpu_cores']} CPU cores, {(m['ram_bytes'] or 0) / gib:.1f} GiB RAM, GPUs: {gpus}")
    print(f"chosen        model {c['model']} {c['quant']} (what `code-kb model list` marks), budget "
          f"{c['budget_tokens']} tokens, KV {c['kv_cache_type']}, GPU layers {c['gpu_layers']}")
    for reason in c["reasons"]:
        print(f"  because     {reason}")
    if report["overrides"]:
        print(f"  set by you  {', '.join(f'{k} {v}' for k, v in report['overrides'].items())}")
    configured = model["setting"] or (f"endpoint {model['endpoint']}" if model["endpoint"] else "none")
    where = model.get("path") or model.get("problem") or ""
    print(f"model         {configured}{' -> ' + where if where else ''}")


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
    item: dict[str, Any] = {"path": str(path), "line": line, "col": col}
    if args.buffer:
        item["buffer"] = Path(args.buffer).read_text(encoding="utf-8")
    yield item


class Session:
    """What a context/complete run shares across requests: index per root, one model."""

    def __init__(self, args: argparse.Namespace, vocab_only: bool) -> None:
        self.args = args
        self.settings = settings_from(args)
        self.indexes: dict[Path, CodeIndex] = {}
        if self.settings.engine.model_path or (self.settings.engine.endpoint and not vocab_only):
            self.completer = Completer.load(self.settings.engine, vocab_only=vocab_only)
        elif vocab_only:
            log.warning("no model configured: token counts are estimates (give --model or set CODE_KB_MODEL)")
            self.completer = Completer(self.settings.engine)
        else:
            self.completer = Completer.load(self.settings.engine)  # raises: no model configured

    def index_for(self, file: Path) -> CodeIndex:
        root = Path(self.args.root).resolve() if self.args.root else find_root(file)
        if root not in self.indexes:
            index = CodeIndex(root, self.settings.index)
            if not self.args.no_reindex:
                run_reindex(index, self.args.quiet)
            self.indexes[root] = index
        return self.indexes[root]

    def resolve(self, item: dict[str, Any]) -> tuple[CodeIndex, str, str, int, int, int]:
        for key in ("path", "line", "col"):
            if key not in item:
                raise UsageError(f"request lacks {key!r}: {json.dumps(item)[:200]}")
        file = Path(item["path"]).expanduser()
        if not file.is_absolute():
            file = Path.cwd() / file
        index = self.index_for(file)
        deny = self.settings.index.deny_patterns
        located = locate(file, index.root)
        if holds_secrets(located, deny):  # before reading it
            raise UsageError(f"{item['path']} holds secrets: code-kb builds no prompt for it")
        target = located.path
        if "buffer" in item:
            source = str(item["buffer"])
        else:
            try:
                source = file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise UsageError(f"cannot read {file}: {exc}") from None
        if is_secret("", (), source):
            raise UsageError(f"{item['path']} holds a private key: code-kb builds no prompt for it")
        line, col = int(item["line"]), int(item["col"])
        return index, target, source, offset_of(source, line, col, str(item["path"])), line, col

    def close(self) -> None:
        for index in self.indexes.values():
            index.close()


def _each(args: argparse.Namespace, session: Session, handle) -> int:
    """Run `handle` per request; in batch mode a bad request becomes an error line, not an exit."""
    failures = 0
    for item in _requests(args):
        try:
            if "error" in item:
                raise UsageError(item["error"])
            handle(*session.resolve(item))
        except (UsageError, EngineError, RetrievalError) as exc:
            if not args.batch:
                raise
            failures += 1
            print(json.dumps({"path": item.get("path"), "line": item.get("line"), "col": item.get("col"),
                              "error": str(exc)}), flush=True)
    return 1 if failures else 0


def cmd_context(args: argparse.Namespace) -> int:
    session = Session(args, vocab_only=True)

    def handle(index: CodeIndex, rel: str, source: str, offset: int, line: int, col: int) -> None:
        prompt, retrieval_ms = session.completer.prompt(rel, source, offset, index, index.root.name,
                                                        budget_tokens=args.budget)
        if args.json or args.batch:
            print(json.dumps(prompt.to_dict(rel, line, col), ensure_ascii=False), flush=True)
            return
        sys.stdout.write(prompt.text)
        sys.stdout.write("\n")
        parts = prompt.parts
        snippets = [f"{p.path}:{p.start_line + 1}-{p.end_line + 1}" for p in parts if p.kind in ("snippet", "recent")]
        exact = "" if session.completer.tokenizer.exact else " (estimated: no model given)"
        print(f"--\nprompt {prompt.n_tokens} tokens{exact} of a {prompt.budget_tokens}-token budget, template "
              f"{prompt.template}; retrieval {retrieval_ms:.0f} ms, assembly {prompt.build_ms:.0f} ms\n"
              f"retrieved: {', '.join(snippets) if snippets else 'nothing'}", file=sys.stderr)

    try:
        return _each(args, session, handle)
    finally:
        session.close()


def cmd_complete(args: argparse.Namespace) -> int:
    session = Session(args, vocab_only=False)

    def handle(index: CodeIndex, rel: str, source: str, offset: int, line: int, col: int) -> None:
        result = session.completer.complete(rel, source, offset, index, index.root.name)
        if args.json or args.batch:
            g = result.generation
            print(json.dumps({"path": rel, "line": line, "col": col, "text": result.text,
                              "prompt_tokens": g.n_prompt, "evaluated_tokens": g.n_evaluated,
                              "reused_tokens": g.n_reused, "generated_tokens": g.n_generated,
                              "stop_reason": g.stop_reason, "total_ms": round(result.total_ms, 1)},
                             ensure_ascii=False), flush=True)
            return
        print(result.text)
        print(f"-- {result.summary()}", file=sys.stderr)

    try:
        return _each(args, session, handle)
    finally:
        session.close()


def loopback_host(host: str) -> None:
    """Refuse any address but loopback: the server has no authentication, and a listener on another
    interface would hand the workspace's code to whoever connects."""
    import ipaddress

    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback  # an address, not a name: no DNS lookup
    except ValueError:
        loopback = False
    if not loopback:
        raise UsageError(f"--host {host} is not a loopback address; code-kb serves only this machine "
                         "(127.0.0.1, ::1 or localhost): it has no authentication")


def cmd_serve(args: argparse.Namespace) -> int:
    from .server import build_server

    if args.tcp is None and args.host != "127.0.0.1":
        raise UsageError("--host needs --tcp PORT")
    loopback_host(args.host)  # before anything loads: refused at once
    settings = settings_from(args)
    server = build_server(settings, overrides=cli_overrides(args))
    if args.tcp is not None:
        log.info("listening on %s:%d", args.host, args.tcp)
        server.start_tcp(args.host, args.tcp)
    else:
        server.start_io()
    return 0


# -- models, hardware, doctor -------------------------------------------------------------
class DownloadBar:
    """A tqdm byte bar on stderr fed by engine.download's progress callback."""

    def __init__(self, quiet: bool, label: str) -> None:
        self.quiet, self.label, self.bar = quiet, label, None

    def __call__(self, done: int, total: int | None) -> None:
        if self.quiet:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=done, unit="B", unit_scale=True, unit_divisor=1024,
                            file=sys.stderr, desc=self.label, mininterval=0.2, dynamic_ncols=True)
        self.bar.n = done
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def cmd_model_pull(args: argparse.Namespace) -> int:
    from engine.download import download
    from engine.models import local_model_path, resolve_pull

    plan = resolve_pull(args.spec, args.quant, sha256=args.sha256)
    for remote in plan.files:
        if remote.dest.is_file() and remote.dest.stat().st_size == (remote.size or remote.dest.stat().st_size):
            print(f"already downloaded: {remote.dest}", file=sys.stderr)
            continue
        bar = DownloadBar(args.quiet, remote.dest.name)
        try:
            download(remote, progress=bar)
        finally:
            bar.close()
        checked = "size and sha256" if remote.sha256 else "size" if remote.size else "nothing (no size given)"
        print(f"downloaded {remote.dest} from {plan.source} (verified: {checked})", file=sys.stderr)
    print(plan.path)
    name = str(plan.path)
    if plan.quant:  # a catalogue model: its bare name, when that is the file it picks, else NAME:QUANT
        bare = plan.spec.split(":")[0]
        name = bare if local_model_path(bare) == str(plan.path) else plan.spec
    print(f"use it: set model = \"{name}\" in {config_file_path()}, or CODE_KB_MODEL={name}, "
          "or the editor's modelPath", file=sys.stderr)
    return 0


def cmd_model_list(args: argparse.Namespace) -> int:
    from engine.hardware import choose, detect
    from engine.models import CATALOGUE, QUANT_BITS, pulled_quants

    machine = detect()
    choice = choose(machine)
    memory = (machine.vram_bytes if choice.gpu_layers == "all" else None) or machine.ram_bytes or 0
    rows = []
    for e in CATALOGUE:
        quant = choice.quant
        need = e.weights_bytes(quant) + e.kv_bytes(min(choice.budget_tokens, e.context_tokens))
        rows.append({"name": e.name, "title": e.title, "family": e.family, "repository": e.repo,
                     "params_b": e.params_b, "context_tokens": e.context_tokens, "quant": quant,
                     "est_bytes": {q: e.weights_bytes(q) for q in QUANT_BITS},
                     "fits": bool(memory) and need <= memory * 0.75, "recommended": e.name == choice.model,
                     "pulled": pulled_quants(e), "note": e.note})
    if args.json:
        print(json.dumps({"machine": machine.to_dict(), "choice": choice.to_dict(), "models": rows}))
        return 0
    print(f"{'':2}{'name':<22}{'family':<16}{'~size ' + choice.quant:>14}  {'fits':<5}{'pulled':<14}note")
    for r in rows:
        mark = "*" if r["recommended"] else " "
        size = f"{r['est_bytes'][choice.quant] / 1e9:.1f} GB"
        print(f"{mark} {r['name']:<22}{r['family']:<16}{size:>14}  {'yes' if r['fits'] else 'no':<5}"
              f"{','.join(r['pulled']) or '-':<14}{r['note']}")
    where = "GPU memory" if choice.gpu_layers == "all" else "RAM"
    print(f"\n* recommended here ({choice.quant}; fits: weights and a {choice.budget_tokens}-token KV cache in "
          f"three quarters of the {where}). Pull one: code-kb model pull NAME[:QUANT] "
          f"(quantizations: {', '.join(QUANT_BITS)})", file=sys.stderr)
    return 0


def cmd_model_info(args: argparse.Namespace) -> int:
    from engine.gguf_info import model_info
    from engine.hardware import detect
    from engine.models import local_model_path

    info = model_info(local_model_path(args.model), detect(), args.budget)
    if args.json:
        print(json.dumps(info.to_dict()))
        return 0 if info.family else 1
    gib = 1 << 30
    print(f"file          {info.path} ({info.file_bytes / gib:.2f} GiB)")
    print(f"name          {info.name}")
    print(f"architecture  {info.architecture}, {info.n_layer} layers")
    print(f"quantization  {info.quantization}")
    print(f"context       {info.context_tokens} tokens (trained)")
    if info.family:
        layout = ", repository tokens " + " ".join(info.fim_tokens[k] for k in ("repo_name", "file_sep")) \
            if info.repo_layout else ", no repository tokens"
        print(f"FIM           yes: {info.family} ({info.fim_tokens['prefix']} {info.fim_tokens['suffix']} "
              f"{info.fim_tokens['middle']}{layout})")
    else:
        print(f"FIM           no: {info.problem}")
    for cache_type, by_ctx in info.kv_bytes.items():
        sizes = ", ".join(f"{n // 1024}k {b / gib:.2f} GiB" if b is not None else f"{n // 1024}k ?"
                          for n, b in by_ctx.items())
        print(f"KV {cache_type:<10} {sizes}")
    for where, verdict in info.fits.items():
        print(f"fits in {where:<5} {verdict}")
    return 0 if info.family else 1


def cmd_doctor(args: argparse.Namespace) -> int:
    from .doctor import healthy, machine_or_fallback, run_checks

    settings = settings_from(args)
    roots = [Path(p).resolve() for p in args.paths] or [find_root(Path.cwd())]
    checks = run_checks(settings, roots, machine_or_fallback(), embedder=not args.no_embedder)
    if args.json:
        print(json.dumps({"healthy": healthy(checks), "checks": [c.to_dict() for c in checks]}))
    else:
        for c in checks:
            print(f"{c.status:<4}  {c.area:<7}  {c.name}: {c.detail}")
            if c.fix and c.status != "ok":
                print(f"{'':15}fix: {c.fix}")
        failed = sum(c.status == "FAIL" for c in checks)
        print("all is well" if not failed else f"{failed} problem{'s' if failed > 1 else ''} to fix",
              file=sys.stderr)
    return 0 if healthy(checks) else 1


# -- wiring -----------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="count", default=0, help="more logging on stderr (-vv: debug)")
    common.add_argument("--log-file", help="also write the log to this file")
    common.add_argument("--index-dir", help="where the index lives (default: ROOT/.code-kb)")
    common.add_argument("--embedding-model", help="sentence-transformers model name or path "
                        "(default: the packaged all-MiniLM-L6-v2)")
    common.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    model = argparse.ArgumentParser(add_help=False)
    model.add_argument("--model", help="GGUF model file (default: $CODE_KB_MODEL, then the config file)")
    model.add_argument("--endpoint", help="OpenAI-compatible inference server (e.g. http://127.0.0.1:8080) "
                       "that generates instead of an in-process model; --model then only counts tokens")
    model.add_argument("--budget", type=int, help="prompt budget in tokens (default: from the model and hardware)")
    model.add_argument("--max-tokens", type=int, help="tokens to generate at most (default 64)")

    cursor = argparse.ArgumentParser(add_help=False)
    cursor.add_argument("location", nargs="?", help="PATH:LINE:COL, 1-based line and column")
    cursor.add_argument("--buffer", help="file holding the unsaved text of PATH, used instead of PATH on disk")
    cursor.add_argument("--batch", help='JSON lines of {"path", "line", "col", optional "buffer"}; '
                        "one result line each, in order ('-' for stdin)")
    cursor.add_argument("--json", action="store_true", help="print JSON instead of text")
    cursor.add_argument("--root", help="the indexed root (default: nearest directory with .code-kb or .git)")
    cursor.add_argument("--no-reindex", action="store_true", help="use the index as it is, without updating it")

    parser = argparse.ArgumentParser(prog="code-kb", description="Local, repository-aware code completion.")
    parser.add_argument("--version", action="version", version=f"code-kb {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("reindex", parents=[common], help="index a tree (incremental)")
    p.add_argument("path", nargs="?", default=".", help="root to index (default: .)")
    p.set_defaults(func=cmd_reindex)
    p = sub.add_parser("search", parents=[common], help="ranked chunks of the index for a query")
    p.add_argument("query")
    p.add_argument("-k", type=int, default=10, help="how many chunks (default 10)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("--root", help="the indexed root (default: nearest directory with .code-kb or .git)")
    p.add_argument("--no-reindex", action="store_true", help="use the index as it is, without updating it")
    p.set_defaults(func=cmd_search)
    p = sub.add_parser("status", parents=[common], help="what the index of a tree holds, this machine, and the "
                       "model, budget and offload chosen for it")
    p.add_argument("path", nargs="?", default=".", help="root of the indexed tree (default: .)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=cmd_status)
    p = sub.add_parser("context", parents=[common, model, cursor],
                       help="print the prompt code-kb would send the model at a position")
    p.set_defaults(func=cmd_context)
    p = sub.add_parser("complete", parents=[common, model, cursor], help="print the model's completion at a position")
    p.set_defaults(func=cmd_complete)
    p = sub.add_parser("serve", parents=[common, model], help="run the LSP server (stdio unless --tcp)")
    p.add_argument("--tcp", type=int, metavar="PORT", help="listen on 127.0.0.1:PORT instead of stdio")
    p.add_argument("--host", default="127.0.0.1", help="loopback address for --tcp (127.0.0.1, ::1 or localhost); "
                   "any other is refused")
    p.add_argument("--stdio", action="store_true", help="speak LSP on stdin/stdout (the default; accepted "
                   "because editor clients such as vscode-languageclient append it)")
    p.set_defaults(func=cmd_serve)
    p = sub.add_parser("model", help="get and inspect models: pull, list, info")
    msub = p.add_subparsers(dest="model_command", required=True)
    m = msub.add_parser("pull", parents=[common], help="download a catalogue model or a GGUF URL (resumable, "
                        "verified) into the models folder ($CODE_KB_MODELS, default ~/.cache/code-kb/models)")
    m.add_argument("spec", metavar="NAME|URL", help="a name from `code-kb model list` (NAME or NAME:QUANT), or a URL")
    m.add_argument("--quant", help="quantization, e.g. Q4_K_M, Q5_K_M, Q6_K, Q8_0 (default: chosen for this machine)")
    m.add_argument("--sha256", help="expected sha256 of the file (for a URL; catalogue files come with theirs)")
    m.set_defaults(func=cmd_model_pull)
    m = msub.add_parser("list", parents=[common], help="the catalogue, with what fits this machine marked")
    m.add_argument("--json", action="store_true", help="print JSON instead of text")
    m.set_defaults(func=cmd_model_list)
    m = msub.add_parser("info", parents=[common], help="what a GGUF is: architecture, FIM, context, "
                        "quantization, KV memory, whether it fits")
    m.add_argument("model", metavar="GGUF|NAME", help="a GGUF file or a pulled catalogue name")
    m.add_argument("--budget", type=int, help="prompt budget to check the fit for (default: from the hardware)")
    m.add_argument("--json", action="store_true", help="print JSON instead of text")
    m.set_defaults(func=cmd_model_info)
    p = sub.add_parser("doctor", parents=[common], help="check the install, the model, the indexes and the "
                       "editors; print what to fix (exit status 1 when something is broken)")
    p.add_argument("paths", nargs="*", metavar="PATH", help="indexed roots to check (default: the nearest root)")
    p.add_argument("--model", help="GGUF file or catalogue name to check instead of the configured one")
    p.add_argument("--no-embedder", action="store_true", help="skip loading the embedding model (saves seconds)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=cmd_doctor)
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


