"""`code-kb doctor`: check the install, the model, the indexes and the editors."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .common import add_common, find_root, settings_from


def cmd_doctor(args: argparse.Namespace) -> int:
    from ..doctor import healthy, machine_or_fallback, run_checks

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
        print(
            "all is well" if not failed else f"{failed} problem{'s' if failed > 1 else ''} to fix",
            file=sys.stderr,
        )
    return 0 if healthy(checks) else 1


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "doctor",
        help="check the install, the model, the indexes and the editors; print what to "
        "fix (exit status 1 when something is broken)",
    )
    add_common(p)
    p.add_argument(
        "paths", nargs="*", metavar="PATH", help="indexed roots to check (default: the nearest root)"
    )
    p.add_argument("--model", help="GGUF file or catalogue name to check instead of the configured one")
    p.add_argument(
        "--no-embedder", action="store_true", help="skip loading the embedding model (saves seconds)"
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=cmd_doctor)
