"""Model commands: pull, list, info."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..config import config_file_path
from .common import Bar, add_common


def cmd_model_pull(args: argparse.Namespace) -> int:
    from engine.download import download
    from engine.models import local_model_path, parse_name, resolve_pull

    plan = resolve_pull(args.spec, args.quant, sha256=args.sha256)
    for remote in plan.files:
        if remote.dest.is_file() and remote.dest.stat().st_size == (
            remote.size or remote.dest.stat().st_size
        ):
            print(f"already downloaded: {remote.dest}", file=sys.stderr)
            continue
        bar = Bar(args.quiet, unit="B", unit_scale=True, unit_divisor=1024, desc=remote.dest.name)
        try:
            download(remote, progress=bar.update)
        finally:
            bar.close()
        checked = "size and sha256" if remote.sha256 else "size" if remote.size else "nothing (no size given)"
        print(f"downloaded {remote.dest} from {plan.source} (verified: {checked})", file=sys.stderr)
    print(plan.path)
    name = str(plan.path)
    if plan.quant:  # a catalogue model: its bare name, when that is the file it picks, else NAME:QUANT
        bare = plan.spec.split(":")[0]
        name = bare if local_model_path(bare) == str(plan.path) else plan.spec
    entry = parse_name(plan.spec) if plan.quant else None
    if entry is not None and entry[0].kind == "next-edit":
        print(
            f'use it: set next_edit_model = "{name}" in {config_file_path()}, or the editor\'s nextEditModel; '
            f"try it: code-kb next-edit PATH:LINE:COL --before OLD_FILE --model {name}",
            file=sys.stderr,
        )
        return 0
    print(
        f'use it: set model = "{name}" in {config_file_path()}, or CODE_KB_MODEL={name}, '
        "or the editor's modelPath",
        file=sys.stderr,
    )
    return 0


def cmd_model_list(args: argparse.Namespace) -> int:
    from engine.hardware import choose, detect
    from engine.models import CATALOGUE, QUANT_BITS, pulled_quants

    machine = detect()
    choice = choose(machine)
    memory = (machine.vram_bytes if choice.gpu_layers == "all" else None) or machine.ram_bytes or 0
    rows: list[dict[str, Any]] = []
    for e in CATALOGUE:
        quant = e.quants[0] if e.quants else choice.quant  # Sweep's repositories have one Q8_0 file
        need = e.weights_bytes(quant) + e.kv_bytes(min(choice.budget_tokens, e.context_tokens))
        rows.append(
            {
                "name": e.name,
                "title": e.title,
                "kind": e.kind,
                "family": e.family,
                "repository": e.repo,
                "params_b": e.params_b,
                "context_tokens": e.context_tokens,
                "quant": quant,
                "quants": list(e.quants) or None,
                "est_bytes": {q: e.weights_bytes(q) for q in (e.quants or QUANT_BITS)},
                "fits": bool(memory) and need <= memory * 0.75,
                "recommended": e.kind == "completion" and e.name == choice.model,
                "pulled": pulled_quants(e),
                "note": e.note,
                "licence": e.licence,
            }
        )
    if args.json:
        print(json.dumps({"machine": machine.to_dict(), "choice": choice.to_dict(), "models": rows}))
        return 0
    for kind, heading in (
        ("completion", "completion models (model)"),
        ("next-edit", "next-edit models (next_edit_model)"),
    ):
        print(f"{heading}:\n{'':2}{'name':<22}{'family':<16}{'~size':>14}  {'fits':<5}{'pulled':<14}note")
        for r in (r for r in rows if r["kind"] == kind):
            mark = "*" if r["recommended"] else " "
            size = f"{r['est_bytes'][r['quant']] / 1e9:.1f} GB {r['quant']}"
            print(
                f"{mark} {r['name']:<22}{r['family']:<16}{size:>14}  {'yes' if r['fits'] else 'no':<5}"
                f"{','.join(r['pulled']) or '-':<14}{'; '.join(t for t in (r['note'], r['licence']) if t)}"
            )
    where = "GPU memory" if choice.gpu_layers == "all" else "RAM"
    print(
        f"\n* recommended here ({choice.quant}; fits: weights and a {choice.budget_tokens}-token KV cache in "
        f"three quarters of the {where}). Pull one: code-kb model pull NAME[:QUANT] "
        f"(quantizations: {', '.join(QUANT_BITS)})",
        file=sys.stderr,
    )
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
        layout = (
            ", file tokens "
            + " ".join(info.fim_tokens[k] for k in ("repo_name", "file_sep") if k in info.fim_tokens)
            if info.repo_layout
            else ", no repository tokens"
        )
        markers = " ".join(info.fim_tokens[k] for k in ("prefix", "suffix", "middle") if k in info.fim_tokens)
        order = "suffix first" if info.fim_order == "spm" else "prefix first"
        print(f"FIM           yes: {info.family}, {order} ({markers}{layout})")
    else:
        print(f"FIM           no: {info.problem}")
    if info.instruct:
        print(f"base model    no: {info.instruct}")
    reuse = info.cache_reuse
    if reuse:
        print(f"KV reuse      {'yes' if reuse['reusable'] else 'no'}: {reuse['why']}")
        if not reuse["reusable"]:
            print(
                f"{'':14}{reuse['cost']}; its default budget here is {info.budget_tokens} tokens "
                "(a quarter of the hardware's), so that a keystroke stays within the time limit"
            )
    if info.next_edit:
        print(
            f"next edit     yes: a next-edit model ({info.next_edit} format); use it as next_edit_model "
            "(nextEditModel) and `code-kb next-edit`, not as the completion model"
        )
    else:
        print("next edit     no: a completion model (model / modelPath)")
    for cache_type, by_ctx in info.kv_bytes.items():
        sizes = ", ".join(
            f"{n // 1024}k {b / gib:.2f} GiB" if b is not None else f"{n // 1024}k ?"
            for n, b in by_ctx.items()
        )
        print(f"KV {cache_type:<10} {sizes}")
    for where, verdict in info.fits.items():
        print(f"fits in {where:<5} {verdict}")
    return 0 if info.family else 1


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("model", help="get and inspect models: pull, list, info")
    msub = p.add_subparsers(dest="model_command", required=True)
    m = msub.add_parser(
        "pull",
        help="download a catalogue model or a GGUF URL (resumable, verified) into the "
        "models folder ($CODE_KB_MODELS, default ~/.cache/code-kb/models)",
    )
    add_common(m)
    m.add_argument(
        "spec", metavar="NAME|URL", help="a name from `code-kb model list` (NAME or NAME:QUANT), or a URL"
    )
    m.add_argument(
        "--quant", help="quantization, e.g. Q4_K_M, Q5_K_M, Q6_K, Q8_0 (default: chosen for this machine)"
    )
    m.add_argument(
        "--sha256", help="expected sha256 of the file (for a URL; catalogue files come with theirs)"
    )
    m.set_defaults(func=cmd_model_pull)
    m = msub.add_parser("list", help="the catalogue, with what fits this machine marked")
    add_common(m)
    m.add_argument("--json", action="store_true", help="print JSON instead of text")
    m.set_defaults(func=cmd_model_list)
    m = msub.add_parser(
        "info", help="what a GGUF is: architecture, FIM, context, quantization, KV memory, whether it fits"
    )
    add_common(m)
    m.add_argument("model", metavar="GGUF|NAME", help="a GGUF file or a pulled catalogue name")
    m.add_argument(
        "--budget", type=int, help="prompt budget to check the fit for (default: from the hardware)"
    )
    m.add_argument("--json", action="store_true", help="print JSON instead of text")
    m.set_defaults(func=cmd_model_info)
