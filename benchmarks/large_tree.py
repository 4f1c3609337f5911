"""About a million lines, as a team's monorepo: first index, memory, retrieval, a branch switch
and a shared index, through the `code-kb` command.

    python benchmarks/large_tree.py [--work DIR] [--backend onnx-int8] [--steps tree,index,retrieve,switch,share]
        [--cursors N] [--changed N]

Steps (each reuses what the earlier ones left in --work, default benchmarks/.cache/large-tree):

- tree: Django 5.1.4 and sympy 1.13.3 (PyPI sdists), requests 2.32.3, flask 3.0.3,
  @tanstack/query-core 5.59.0 (npm) and golang-github-spf13-cobra-dev (Debian) side by side in
  WORK/tree, one git commit; prints the lines of Python, Go, TypeScript and JavaScript.
- index: `code-kb reindex WORK/tree --index-dir WORK/idx --embedding-backend B -q` from an empty
  index directory, timed as a child process (wall clock; peak RSS from the kernel's accounting of
  waited-for children).
- retrieve: the repository context `code-kb` builds for a prompt (CodeIndex.snippets: the needs
  probe, dense, lexical and symbol search, at the snippet window of a 4k budget) at N cursors
  spread over the tree's files (seeded), the index open and the embedding model loaded first;
  p50 and p95 milliseconds.
- switch: a branch that changes `--changed` files (a function appended to each, as a feature
  branch might), checked out, then `code-kb reindex` again (incremental), timed; the original
  branch is checked out again afterwards.
- share: the index brought back to main (reindex), `code-kb index export --no-reindex` of it
  (timed) to WORK/vectors, a second checkout of the tree at
  that branch in WORK/other (git worktree), and `code-kb index import` there into an empty
  WORK/idx-other, timed: the walk, chunking and symbols of every file run; only chunks the
  export lacks are embedded.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.retrieval_quality import obtain  # noqa: E402

PROJECTS = [
    "pypi:Django==5.1.4",
    "pypi:sympy==1.13.3",
    "pypi:requests==2.32.3",
    "pypi:flask==3.0.3",
    "npm:@tanstack/query-core@5.59.0",
    "deb:golang-github-spf13-cobra-dev",
]
CODE = (".py", ".go", ".ts", ".tsx", ".js")
CODE_KB = [sys.executable, "-m", "lsp_server"]


def git(tree: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(tree), "-c", "user.email=bench@example.invalid", "-c", "user.name=bench", *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def code_files(tree: Path) -> list[Path]:
    return sorted(p for p in tree.rglob("*") if p.suffix in CODE and p.is_file() and ".git" not in p.parts)


def make_tree(work: Path) -> Path:
    tree = work / "tree"
    if (tree / ".git").is_dir():
        return tree
    tree.mkdir(parents=True, exist_ok=True)
    for spec in PROJECTS:
        src = obtain(spec)
        shutil.copytree(src, tree / src.name, dirs_exist_ok=True)
    git(tree, "init", "-q", "-b", "main")
    git(tree, "add", "-A")
    git(tree, "commit", "-q", "-m", "the projects side by side")
    return tree


def count_lines(tree: Path) -> dict[str, int]:
    lines: dict[str, int] = {}
    for path in code_files(tree):
        with open(path, "rb") as f:
            lines[path.suffix] = lines.get(path.suffix, 0) + sum(1 for _ in f)
    return lines


def timed(cmd: list[str]) -> tuple[float, float]:
    """Wall seconds and the peak RSS (MB) of the largest child waited for so far."""
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    wall = time.perf_counter() - t0
    return wall, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def retrieve(tree: Path, index_dir: Path, backend: str, n: int) -> dict[str, float]:
    from engine.config import default_snippet_limit
    from retrieval import CodeIndex, IndexConfig
    from retrieval.embedding import embedder_for

    config = IndexConfig(index_dir=index_dir, embedding_backend=backend)
    index = CodeIndex(tree, config, embedder_for(config))
    index.store  # noqa: B018 -- opened before the timings
    rng = random.Random(7)
    files = [p for p in code_files(tree) if "test" not in p.name and p.stat().st_size > 2000]
    limit = 4 * default_snippet_limit(4096)  # the completer's retrieval window at a 4k budget
    times = []
    for i, path in enumerate(rng.sample(files, n + 1)):
        source = path.read_text(errors="replace")
        lines = source.split("\n")
        line = rng.randrange(len(lines) // 4, len(lines))
        offset = sum(len(ln) + 1 for ln in lines[:line]) + len(lines[line]) // 2
        t0 = time.perf_counter()
        index.snippets(str(path.relative_to(tree)), source, offset, limit)
        if i:  # the first loads what is loaded lazily
            times.append((time.perf_counter() - t0) * 1000)
    index.close()
    return {"p50_ms": statistics.median(times), "p95_ms": sorted(times)[int(0.95 * len(times)) - 1]}


def switch_branch(tree: Path, changed: int) -> list[Path]:
    """A branch 'feature' that appends a function to `changed` code files, checked out."""
    if "feature" not in git(tree, "branch", "--list", "feature"):
        git(tree, "checkout", "-q", "-b", "feature")
        rng = random.Random(11)
        chosen = rng.sample([p for p in code_files(tree) if p.suffix == ".py"], changed)
        for i, path in enumerate(chosen):
            with open(path, "a", encoding="utf-8") as f:
                f.write(f"\n\ndef feature_helper_{i}(value, scale=2):\n    return value * scale + {i}\n")
        git(tree, "commit", "-q", "-am", f"feature: {changed} files")
    else:
        # Detached: the second checkout of the share step may have the branch checked out.
        git(tree, "checkout", "-q", "--detach", "feature")
    return []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / ".cache" / "large-tree")
    parser.add_argument(
        "--backend", default="onnx-int8", help="embeddingBackend (auto, torch, onnx, onnx-int8, openvino)"
    )
    parser.add_argument("--steps", default="tree,index,retrieve,switch,share")
    parser.add_argument("--cursors", type=int, default=50)
    parser.add_argument("--changed", type=int, default=500)
    args = parser.parse_args(argv)
    steps = set(args.steps.split(","))
    work: Path = args.work
    work.mkdir(parents=True, exist_ok=True)
    tree, idx = work / "tree", work / "idx"
    report: dict[str, object] = {"backend": args.backend}

    tree = make_tree(work)
    if "tree" in steps:
        lines = count_lines(tree)
        report["lines"] = {**lines, "total": sum(lines.values())}
        report["code_files"] = len(code_files(tree))
    flags = ["--index-dir", str(idx), "--embedding-backend", args.backend, "-q"]
    if "index" in steps:
        shutil.rmtree(idx, ignore_errors=True)
        wall, rss = timed([*CODE_KB, "reindex", str(tree), *flags])
        report["first_index"] = {"wall_s": round(wall, 1), "peak_rss_mb": round(rss)}
        print(json.dumps(report), file=sys.stderr, flush=True)  # so far, in case a later step fails
    if "retrieve" in steps:
        report["retrieval"] = retrieve(tree, idx, args.backend, args.cursors)
        print(json.dumps(report), file=sys.stderr, flush=True)  # so far, in case a later step fails
    if "switch" in steps:
        switch_branch(tree, args.changed)
        try:
            wall, _ = timed([*CODE_KB, "reindex", str(tree), *flags])
        finally:
            git(tree, "checkout", "-q", "main")
        report["branch_switch"] = {"changed_files": args.changed, "reindex_s": round(wall, 1)}
        print(json.dumps(report), file=sys.stderr, flush=True)  # so far, in case a later step fails
    if "share" in steps:
        vectors, other, other_idx = work / "vectors", work / "other", work / "idx-other"
        subprocess.run([*CODE_KB, "reindex", str(tree), *flags], check=True)  # the index at main again
        t0 = time.perf_counter()
        subprocess.run(
            [*CODE_KB, "index", "export", str(vectors), str(tree), *flags, "--no-reindex"], check=True
        )
        export_s = time.perf_counter() - t0
        if not other.is_dir():
            switch_branch(tree, args.changed)
            git(tree, "checkout", "-q", "main")
            git(tree, "worktree", "add", "-q", str(other), "feature")
        shutil.rmtree(other_idx, ignore_errors=True)
        other_flags = ["--index-dir", str(other_idx), "--embedding-backend", args.backend, "-q"]
        wall, _ = timed([*CODE_KB, "index", "import", str(vectors), str(other), *other_flags])
        report["shared_index"] = {
            "export_s": round(export_s, 1),
            "export_mb": round(vectors.stat().st_size / 1e6, 1) if vectors.is_file() else None,
            "import_s": round(wall, 1),
        }
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
