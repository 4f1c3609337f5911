"""Context quality and retrieval speed on real public projects, against a RepoCoder-style baseline.

    python benchmarks/retrieval_quality.py [--points N] [--skip-speed]

Obtains at run time (PyPI sdists, cached under benchmarks/.cache/): requests 2.32.3, click 8.1.7
and rich 13.9.4 for quality, pip 24.2 (about 130k lines of Python) for speed, and the real
Qwen2.5-Coder tokenizer for budgets (the vocab-only qwen2 GGUF in the llama-cpp-python sdist,
with Qwen2.5-Coder's FIM tokens named at their ids, as tests/fixtures/vocabs.py explains).

Quality: completion points are uses of a function or class defined once in the project, in
another file. The buffer is the file with the rest of that line cut just after the symbol's name
and its opening bracket (the user types the arguments), and, as a harder second table, cut where
the name begins (the user is about to type it). A point is a hit when the assembled prompt holds the definition's first line
(as a snippet or a signature). Reported at budgets of 1k, 4k and 16k tokens, next to a baseline
computed in the same run with the same prompt builder: 20-line windows (stride 10) of the other
files ranked by Jaccard similarity of identifiers with the 20 lines before the cursor (RepoCoder).

Speed (pip 24.2): retrieval latency for one cursor, query embedding included, p50/p95; indexing
throughput as the embedding model's own time on the same chunk texts over the whole pipeline's
time; a no-op reindex.
"""

from __future__ import annotations

import argparse
import logging
import random
import re
import statistics
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine import Completer, EngineConfig  # noqa: E402
from engine.backends.llama_cpp import LlamaCppModel  # noqa: E402
from retrieval import CodeIndex, IndexConfig, SentenceTransformerEmbedder  # noqa: E402
from retrieval.chunking import chunk_file  # noqa: E402
from retrieval.files import walk  # noqa: E402
from retrieval.symbols import definitions  # noqa: E402
from tests.fixtures import vocabs  # noqa: E402

CACHE = ROOT / "benchmarks" / ".cache"
QUALITY = ["requests==2.32.3", "click==8.1.7", "rich==13.9.4"]
SPEED = "pip==24.2"
BUDGETS = [1024, 4096, 16384]
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def sdist(spec: str) -> Path:
    """Download and unpack a PyPI sdist once."""
    name, version = spec.split("==")
    target = CACHE / "projects" / f"{name}-{version}"
    if not target.is_dir():
        download = CACHE / "downloads"
        download.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", spec,
                        "-d", str(download), "-q"], check=True)
        archive = next(download.glob(f"{name}-{version}.tar.gz"))
        with tarfile.open(archive) as tar:
            tar.extractall(target.parent, filter="data")
    return target


@dataclass
class Point:
    path: str
    buffer: str
    offset: int
    name: str
    def_path: str
    def_line: int  # 0-based line of the definition's signature


def completion_points(root: Path, n: int, seed: int = 0, before_symbol: bool = False) -> list[Point]:
    """Uses of a symbol defined once, in another file; the cursor just after the name and an opening
    bracket (the user types the arguments), or, with `before_symbol`, where the name begins."""
    files = {f.path: f.abs_path.read_text(encoding="utf-8", errors="replace")
             for f in walk(root, 1_000_000) if f.path.endswith(".py")}
    defined: dict[str, list[tuple[str, int]]] = {}
    for path, text in files.items():
        for chunk in chunk_file(path, text):
            for name, _, kind, _, line, _ in definitions(chunk):
                if kind in ("function", "class", "method", "member"):
                    defined.setdefault(name, []).append((path, line))
    unique = {k: v[0] for k, v in defined.items() if len(v) == 1 and len(k) >= 4 and not k.startswith("__")}
    candidates = []
    for path, text in files.items():
        lines = text.split("\n")
        for i, line in enumerate(lines):
            stripped = line.lstrip()
            if stripped.startswith(("import ", "from ", "def ", "class ", "#", "@")):
                continue
            for m in _IDENT.finditer(line):
                target = unique.get(m.group(0))
                if target and target[0] != path and m.start() > len(line) - len(stripped):
                    col = m.start() if before_symbol else m.end() + (line[m.end():m.end() + 1] in "([")
                    candidates.append((path, i, col, m.group(0), target))
                    break
    random.Random(seed).shuffle(candidates)
    points = []
    for path, i, col, name, (def_path, def_line) in candidates[:n]:
        lines = files[path].split("\n")
        head = "\n".join(lines[:i]) + ("\n" if i else "") + lines[i][:col]
        buffer = head + "\n" + "\n".join(lines[i + 1:])
        points.append(Point(path, buffer, len(head), name, def_path, def_line))
    return points


@dataclass
class Window:
    path: str
    text: str
    start_line: int
    end_line: int


class SlidingWindowBaseline:
    """RepoCoder's retriever: 20-line windows, stride 10, Jaccard over identifier sets."""

    def __init__(self, root: Path) -> None:
        self.windows: list[tuple[Window, set[str]]] = []
        for f in walk(root, 1_000_000):
            if not f.path.endswith(".py"):
                continue
            lines = f.abs_path.read_text(encoding="utf-8", errors="replace").split("\n")
            for start in range(0, max(len(lines) - 10, 1), 10):
                text = "\n".join(lines[start:start + 20])
                if text.strip():
                    w = Window(f.path, text + "\n", start, min(start + 19, len(lines) - 1))
                    self.windows.append((w, set(_IDENT.findall(text))))

    def snippets(self, path: str, source: str, offset: int, limit: int | None = None) -> list[Window]:
        query = set(_IDENT.findall("\n".join(source[:offset].split("\n")[-20:])))
        scored = [(len(query & ids) / len(query | ids) if query | ids else 0.0, w)
                  for w, ids in self.windows if w.path != path]
        scored.sort(key=lambda s: -s[0])
        return [w for _, w in scored[:limit or 64]]


def hit(prompt, point: Point) -> bool:
    return any(p.kind in ("snippet", "signature") and p.path == point.def_path
               and p.start_line <= point.def_line <= p.end_line for p in prompt.parts)


def quality(specs: list[str], n_points: int, tokenizer, embedder, before_symbol: bool) -> list[str]:
    rows = []
    totals = {b: [0, 0, 0] for b in BUDGETS}
    for spec in specs:
        root = sdist(spec)
        index = CodeIndex(root, IndexConfig(index_dir=CACHE / "indexes" / spec), embedder=embedder)
        index.reindex()
        baseline = SlidingWindowBaseline(root)
        points = completion_points(root, n_points, before_symbol=before_symbol)
        for budget in BUDGETS:
            ours = Completer(EngineConfig(budget_tokens=budget, snippet_limit=64), tokenizer=tokenizer)
            ours_hits = sum(hit(ours.prompt(p.path, p.buffer, p.offset, index, root.name)[0], p) for p in points)
            base_hits = sum(hit(ours.prompt(p.path, p.buffer, p.offset, baseline, root.name)[0], p) for p in points)
            rows.append(f"| {spec} | {budget} | {len(points)} | {ours_hits / len(points):.2f} | "
                        f"{base_hits / len(points):.2f} |")
            totals[budget][0] += ours_hits
            totals[budget][1] += base_hits
            totals[budget][2] += len(points)
        index.close()
    for budget, (o, b, n) in totals.items():
        rows.append(f"| **all three** | {budget} | {n} | **{o / n:.2f}** | {b / n:.2f} |")
    return rows


def speed(spec: str, embedder, n_points: int) -> list[str]:
    root = sdist(spec)
    lines = sum(f.abs_path.read_text(encoding="utf-8", errors="replace").count("\n")
                for f in walk(root, 1_000_000) if f.path.endswith(".py"))
    directory = CACHE / "indexes" / f"{spec}-speed"
    import shutil

    shutil.rmtree(directory, ignore_errors=True)
    index = CodeIndex(root, IndexConfig(index_dir=directory), embedder=embedder)
    t0 = time.perf_counter()
    stats = index.reindex()
    pipeline_s = time.perf_counter() - t0
    texts = [c.embedding_text() for f in walk(root, 1_000_000)
             for c in chunk_file(f.path, f.abs_path.read_text(encoding="utf-8", errors="replace"))]
    texts = list(dict.fromkeys(texts))
    t0 = time.perf_counter()
    embedder.embed(texts)
    embed_s = time.perf_counter() - t0
    noop = []
    for _ in range(3):
        t0 = time.perf_counter()
        index.reindex()
        noop.append(time.perf_counter() - t0)
    points = completion_points(root, n_points)
    latencies = []
    for p in points:
        t0 = time.perf_counter()
        index.snippets(p.path, p.buffer, p.offset)
        latencies.append((time.perf_counter() - t0) * 1000)
    latencies.sort()
    p95 = latencies[min(len(latencies) - 1, int(round(0.95 * (len(latencies) - 1))))]
    index.close()
    return [
        f"| repository | {spec}: {lines} lines of Python, {stats.files_seen} files, {stats.chunks_total} chunks |",
        f"| retrieval for one cursor, p50 / p95 ({len(points)} cursors) | "
        f"{statistics.median(latencies):.1f} ms / {p95:.1f} ms |",
        f"| cold index: whole pipeline | {pipeline_s:.1f} s |",
        f"| the embedding model alone on the same {len(texts)} chunk texts | {embed_s:.1f} s |",
        f"| indexing throughput / embedding throughput | {embed_s / pipeline_s:.2f} |",
        f"| no-op reindex (median of 3) | {statistics.median(noop) * 1000:.0f} ms |",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=60, help="completion points per project (default 60)")
    parser.add_argument("--skip-speed", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    tokenizer = LlamaCppModel(vocabs.family_vocab("qwen2.5-coder", CACHE), vocab_only=True)
    embedder = SentenceTransformerEmbedder()
    for before, title in ((False, "cursor after the symbol's name (typing its arguments)"),
                          (True, "cursor where the symbol's name begins (the name is not typed yet)")):
        print(f"\n{title}\n")
        print("| project | budget (tokens) | points | code-kb: definition in context | sliding-window baseline |")
        print("|---|---|---|---|---|")
        for row in quality(QUALITY, args.points, tokenizer, embedder, before):
            print(row, flush=True)
    if not args.skip_speed:
        print("\n| measurement | value |\n|---|---|")
        for row in speed(SPEED, embedder, args.points * 2):
            print(row, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
