"""Context quality and retrieval speed on real public projects, against a RepoCoder-style baseline.

    python benchmarks/retrieval_quality.py [--points N] [--languages python,go,...] [--skip-speed]
                                           [--embedder minilm|onnx|onnx-int8|openvino|hash]
                                           [--projects requests,flask,...] [--max-tokens N]

Obtains at run time (cached under benchmarks/.cache/): Python sdists from PyPI (requests 2.32.3,
flask 3.0.3, marshmallow 3.23.1, attrs 24.2.0), TypeScript sources from npm tarballs
(@tanstack/query-core 5.59.0 and @trpc/server 10.45.2, which ship their src/), Go and Rust
sources from Debian's packages (golang-github-spf13-cobra-dev, golang-github-sirupsen-logrus-dev,
librust-serde-json-dev, librust-regex-syntax-dev), pip 24.2 (about 130k lines of Python) for
speed, and the real Qwen2.5-Coder tokenizer for budgets (the vocab-only qwen2 GGUF in the
llama-cpp-python sdist, with Qwen2.5-Coder's FIM tokens named at their ids, as
tests/fixtures/vocabs.py explains).

Quality: completion points are uses of a function, method, class, type or constant defined once in
the project, in another file (the CrossCodeEval convention). The buffer is the file with the rest
of that line cut where the name begins (the name is not typed yet: the moment a completion helps
most) or, as the second table, just after the name and its opening bracket (the user types the
arguments). A point is a hit when a part of the prompt from another file (a chunk, a signature or
an outline) holds the definition's signature line. Reported at whole-prompt budgets of 2k, 4k, 8k
and 16k tokens, next to a baseline computed in the same run with the same prompt builder: 20-line
windows (stride 10) of the other files ranked by Jaccard similarity of identifiers with the 20
lines before the cursor (RepoCoder).

Speed (pip 24.2): retrieval latency for one cursor (query embedding and the needs probe included),
p50/p95; indexing throughput as the embedding model's own time on the same chunk texts over the
whole pipeline's time; a no-op reindex; the symbol graph's update for one saved file.
"""

from __future__ import annotations

import argparse
import logging
import random
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine import Completer, EngineConfig  # noqa: E402
from engine.backends.llama_cpp import LlamaCppModel  # noqa: E402
from engine.prompt import CONTEXT_KINDS  # noqa: E402
from retrieval import CodeIndex, IndexConfig, SentenceTransformerEmbedder  # noqa: E402
from retrieval.chunking import chunk_file, language_for, parser_for  # noqa: E402
from retrieval.config import DEFAULT_EMBEDDING_MAX_TOKENS  # noqa: E402
from retrieval.embedding import make_embedder  # noqa: E402
from retrieval.files import walk  # noqa: E402
from retrieval.graph import Definition, extract  # noqa: E402
from retrieval.resolve import ModuleResolver  # noqa: E402
from tests.fixtures import vocabs  # noqa: E402
from tests.fixtures.hash_embedder import HashEmbedder  # noqa: E402

CACHE = ROOT / "benchmarks" / ".cache"
# Reserved for independent evaluation, never used here: rich, httpx, jinja2, click, rxjs, mobx, gin,
# goldmark, clap, rayon.
PROJECTS = {
    "python": [
        "pypi:requests==2.32.3",
        "pypi:flask==3.0.3",
        "pypi:marshmallow==3.23.1",
        "pypi:attrs==24.2.0",
    ],
    "typescript": ["npm:@tanstack/query-core@5.59.0", "npm:@trpc/server@10.45.2"],
    "go": ["deb:golang-github-spf13-cobra-dev", "deb:golang-github-sirupsen-logrus-dev"],
    "rust": ["deb:librust-serde-json-dev", "deb:librust-regex-syntax-dev"],
}
EXTENSIONS = {"python": (".py",), "typescript": (".ts", ".tsx"), "go": (".go",), "rust": (".rs",)}
# Lines that define or import rather than use.
SKIP_LINES = {
    "python": ("import ", "from ", "def ", "class ", "#", "@", "async def "),
    "typescript": (
        "import ",
        "export {",
        "export *",
        "export type {",
        "//",
        "*",
        "/*",
        "function ",
        "export function ",
        "class ",
        "export class ",
        "interface ",
        "export interface ",
        "type ",
        "export type ",
    ),
    "go": ("import ", "package ", "func ", "type ", "//", '"'),
    "rust": (
        "use ",
        "pub use ",
        "mod ",
        "pub mod ",
        "fn ",
        "pub fn ",
        "pub(crate) fn ",
        "struct ",
        "pub struct ",
        "impl ",
        "impl<",
        "trait ",
        "pub trait ",
        "enum ",
        "pub enum ",
        "//",
        "#[",
        "#![",
    ),
}
SPEED = "pypi:pip==24.2"
ONLY: list[str] = []  # --projects: only the projects whose spec holds one of these
BUDGETS = [2048, 4096, 8192, 16384]
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def obtain(spec: str) -> Path:
    """Download and unpack a project once: `pypi:name==version`, `npm:name@version`, `deb:package`."""
    source, _, what = spec.partition(":")
    target = CACHE / "projects" / re.sub(r"[^A-Za-z0-9_.=@-]+", "_", what)
    if target.is_dir():
        return target
    download = CACHE / "downloads"
    download.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=download) as tmp:
        if source == "pypi":
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "--no-deps",
                    "--no-binary",
                    ":all:",
                    what,
                    "-d",
                    tmp,
                    "-q",
                ],
                check=True,
            )
            archive = next(Path(tmp).glob("*.tar.gz"))
            with tarfile.open(archive) as tar:
                tar.extractall(target, filter="data")
        elif source == "npm":
            subprocess.run(["npm", "pack", what, "--silent"], cwd=tmp, check=True, stdout=subprocess.DEVNULL)
            archive = next(Path(tmp).glob("*.tgz"))
            with tarfile.open(archive) as tar:
                tar.extractall(target, filter="data")
        elif source == "deb":
            subprocess.run(["apt-get", "download", what], cwd=tmp, check=True, stdout=subprocess.DEVNULL)
            archive = next(Path(tmp).glob("*.deb"))
            target.mkdir(parents=True)
            subprocess.run(["dpkg-deb", "-x", str(archive), str(target)], check=True)
        else:
            raise SystemExit(f"unknown project source {spec!r}")
    return target


def sdist(spec: str) -> Path:
    """A PyPI sdist's unpacked folder (`name==version`), for the other benchmarks."""
    name, version = spec.split("==")
    return obtain(f"pypi:{spec}") / f"{name}-{version}"


@dataclass
class Point:
    path: str
    buffer: str
    offset: int
    name: str
    def_path: str
    def_line: int  # 0-based line of the definition's name
    key: str  # the definition's signature line that names it, as the file has it (stripped)


def _signature_key(d: Definition) -> tuple[int, str]:
    lines = d.signature.split("\n")
    n = next((i for i, ln in enumerate(lines) if re.search(rf"\b{re.escape(d.name)}\b", ln)), 0)
    line = re.sub(r"\s*(\.\.\.|\{ \.\.\. \})$", "", lines[n]).strip()
    return d.start_line + n, line


def source_files(root: Path, language: str) -> dict[str, str]:
    return {
        f.path: f.abs_path.read_text(encoding="utf-8", errors="replace")
        for f in walk(root, 1_000_000)
        if f.path.endswith(EXTENSIONS[language])
        and not f.path.endswith(".d.ts")
        and not f.path.endswith("_test.go")
        and not re.search(r"(^|/)(tests?|__tests__|examples?|docs?|benches|conftest\.py)(/|$)", f.path)
    }


def completion_points(
    root: Path, language: str, n: int, seed: int = 0, before_symbol: bool = True
) -> list[Point]:
    """Uses of a name defined once, in another file; the cursor where the name begins or, without
    `before_symbol`, just after it and an opening bracket (the user types the arguments)."""
    files = source_files(root, language)
    defined: dict[str, list[tuple[str, Definition]]] = {}
    for path, text in files.items():
        graph = extract(path, text)
        for d in graph.definitions if graph else []:
            if (
                d.kind != "field" or language in ("go", "rust")
            ) and d.kind != "impl":  # impl: a trait, not a name
                defined.setdefault(d.name, []).append((path, d))
    # Names that builtin types also have (`.items()`, `.update()`) are not cross-file references.
    common = (
        set(dir(dict) + dir(list) + dir(str) + dir(set) + dir(bytes) + dir(int))
        if language == "python"
        else set()
    )
    unique = {
        k: v[0]
        for k, v in defined.items()
        if len(v) == 1 and len(k) >= 4 and not k.startswith("__") and k not in common
    }
    candidates = []
    skip = SKIP_LINES[language]
    resolver = ModuleResolver(f.path for f in walk(root, 1_000_000))
    for path, text in sorted(files.items()):
        lines = text.split("\n")
        tree = parser_for(language_for(path)).parse(text.encode("utf-8"))
        graph = extract(path, text)
        # Names bound by imports that resolve into the project (`use serde::de::MapAccess` names
        # another crate's MapAccess, not the project's own struct of that name).
        imported = {
            n
            for i in (graph.imports if graph else [])
            if resolver.resolve(path, graph.language, i)
            for n in (i.binding, i.name)
            if n
        }
        for i, line in enumerate(lines):
            stripped = line.lstrip()
            if not stripped or stripped.startswith(skip):
                continue
            for m in _IDENT.finditer(line):
                target = unique.get(m.group(0))
                if (
                    target
                    and target[0] != path
                    and m.start() > len(line) - len(stripped)
                    and _is_cross_file_use(
                        tree,
                        line,
                        i,
                        m.start(),
                        m.group(0),
                        imported,
                        language,
                        path,
                        target[0],
                        bool(target[1].container),
                    )
                ):
                    col = m.start() if before_symbol else m.end() + (line[m.end() : m.end() + 1] in "([")
                    candidates.append((path, i, col, m.group(0), target))
                    break
    random.Random(seed).shuffle(candidates)
    points = []
    for path, i, col, name, (def_path, d) in candidates[:n]:
        lines = files[path].split("\n")
        head = "\n".join(lines[:i]) + ("\n" if i else "") + lines[i][:col]
        buffer = head + "\n" + "\n".join(lines[i + 1 :])
        def_line, key = _signature_key(d)
        points.append(Point(path, buffer, len(head), name, def_path, def_line, key))
    return points


_CODE_NAMES = frozenset(
    {
        "identifier",
        "type_identifier",
        "field_identifier",
        "property_identifier",
        "constant",
        "package_identifier",
        "scoped_identifier",
    }
)


def _is_cross_file_use(
    tree,
    line: str,
    row: int,
    col: int,
    name: str,
    imported: set[str],
    language: str,
    path: str,
    def_path: str,
    member: bool,
) -> bool:
    """A use in code (not in a string or comment) that reaches the other file's definition: a name
    the file imports, a member reached with `.`/`::` or, in Go, a name of the same package (the
    CrossCodeEval convention, without a type checker)."""
    byte_col = len(line[:col].encode("utf-8"))
    node = tree.root_node.named_descendant_for_point_range((row, byte_col), (row, byte_col + len(name)))
    if node is None or node.type not in _CODE_NAMES:
        return False
    parent = node.parent
    while parent is not None:
        if "string" in parent.type or "comment" in parent.type:
            return False
        parent = parent.parent
    before = line[:col].rstrip()
    if name in imported:
        return True
    if before.endswith((".", "::", "->")):
        # A member of a type (`x.method`), or a module's name reached through the module (`mod.f`).
        receiver = re.search(r"(\w+)\s*(?:\.|::|->)$", before)
        return member or (receiver is not None and receiver.group(1) in imported)
    return language == "go" and not member and def_path.rsplit("/", 1)[0] == path.rsplit("/", 1)[0]


@dataclass
class Window:
    path: str
    text: str
    start_line: int
    end_line: int
    prompt_kind: str = "snippet"
    reason: str = "baseline"


class SlidingWindowBaseline:
    """RepoCoder's retriever: 20-line windows, stride 10, Jaccard over identifier sets."""

    def __init__(self, root: Path, language: str) -> None:
        self.windows: list[tuple[Window, set[str]]] = []
        for path, text in source_files(root, language).items():
            lines = text.split("\n")
            for start in range(0, max(len(lines) - 10, 1), 10):
                chunk = "\n".join(lines[start : start + 20])
                if chunk.strip():
                    w = Window(path, chunk + "\n", start, min(start + 19, len(lines) - 1))
                    self.windows.append((w, set(_IDENT.findall(chunk))))

    def snippets(self, path: str, source: str, offset: int, limit: int | None = None) -> list[Window]:
        query = set(_IDENT.findall("\n".join(source[:offset].split("\n")[-20:])))
        scored = [
            (len(query & ids) / len(query | ids) if query | ids else 0.0, w)
            for w, ids in self.windows
            if w.path != path
        ]
        scored.sort(key=lambda s: -s[0])
        return [w for _, w in scored[: limit or 64]]


def hit(prompt, point: Point) -> bool:
    return any(
        p.kind in CONTEXT_KINDS
        and p.kind != "recent"
        and p.path == point.def_path
        and p.start_line <= point.def_line <= p.end_line
        and point.key in p.text
        for p in prompt.parts
    )


def quality(
    language: str, n_points: int, tokenizer, embedder, before_symbol: bool, misses: list[str] | None = None
) -> list[str]:
    rows = []
    totals = {b: [0, 0, 0] for b in BUDGETS}
    for spec in PROJECTS[language]:
        if ONLY and not any(p in spec for p in ONLY):
            continue
        root = obtain(spec)
        name = spec.split(":", 1)[1]
        # fp32 ONNX shares torch's cache key (its vectors are the same within float noise): its own
        # folder, so its recall is measured on vectors it made.
        label = (
            embedder.name  # torch's key says where texts are cut (MODEL@N)
            if getattr(embedder, "backend", "torch") == "torch"
            else f"{embedder.backend}@{embedder.max_tokens}"
        )
        index = CodeIndex(
            root, IndexConfig(index_dir=CACHE / "indexes" / f"{label}-{root.name}"), embedder=embedder
        )
        index.reindex()
        baseline = SlidingWindowBaseline(root, language)
        points = completion_points(root, language, n_points, before_symbol=before_symbol)
        if not points:
            continue
        for budget in BUDGETS:
            ours = Completer(EngineConfig(budget_tokens=budget), tokenizer=tokenizer)
            base = Completer(EngineConfig(budget_tokens=budget), tokenizer=tokenizer)
            ours_hits = base_hits = 0
            tokens = []
            for p in points:
                prompt = ours.prompt(p.path, p.buffer, p.offset, index, root.name)[0]
                got = hit(prompt, p)
                ours_hits += got
                tokens.append(sum(len(x.tokens) for x in prompt.parts if x.kind in CONTEXT_KINDS))
                if not got and misses is not None and budget == 8192:
                    misses.append(
                        f"{name} {p.path}:{p.buffer.count(chr(10), 0, p.offset) + 1} needs "
                        f"{p.name} ({p.def_path}:{p.def_line + 1})"
                    )
                base_hits += hit(base.prompt(p.path, p.buffer, p.offset, baseline, root.name)[0], p)
            rows.append(
                f"| {name} | {budget} | {len(points)} | {ours_hits / len(points):.2f} | "
                f"{base_hits / len(points):.2f} | {statistics.median(tokens):.0f} |"
            )
            totals[budget][0] += ours_hits
            totals[budget][1] += base_hits
            totals[budget][2] += len(points)
        index.close()
    for budget, (o, b, n) in totals.items():
        if n:
            rows.append(f"| **{language}** | {budget} | {n} | **{o / n:.2f}** | {b / n:.2f} | |")
    return rows


def speed(spec: str, embedder, n_points: int) -> list[str]:
    root = obtain(spec)
    # pip vendors rich, a project reserved for independent evaluation: it leaves the corpus, for every
    # measurement below (index, embedding, points, the saved file).
    for vendored in root.glob("*/src/pip/_vendor/rich"):
        shutil.rmtree(vendored)
    lines = sum(
        f.abs_path.read_text(encoding="utf-8", errors="replace").count("\n")
        for f in walk(root, 1_000_000)
        if f.path.endswith(".py")
    )
    directory = CACHE / "indexes" / f"{spec}-speed"
    shutil.rmtree(directory, ignore_errors=True)
    index = CodeIndex(root, IndexConfig(index_dir=directory), embedder=embedder)
    t0 = time.perf_counter()
    stats = index.reindex()
    pipeline_s = time.perf_counter() - t0
    texts = [
        c.embedding_text()
        for f in walk(root, 1_000_000)
        for c in chunk_file(f.path, f.abs_path.read_text(encoding="utf-8", errors="replace"))
    ]
    texts = list(dict.fromkeys(texts))
    t0 = time.perf_counter()
    embedder.embed(texts)
    embed_s = time.perf_counter() - t0
    noop = []
    for _ in range(3):
        t0 = time.perf_counter()
        index.reindex()
        noop.append(time.perf_counter() - t0)
    points = completion_points(root, "python", n_points)
    latencies = []
    for p in points:
        t0 = time.perf_counter()
        index.snippets(p.path, p.buffer, p.offset)
        latencies.append((time.perf_counter() - t0) * 1000)
    latencies.sort()
    p95 = latencies[min(len(latencies) - 1, int(round(0.95 * (len(latencies) - 1))))]
    needs_ms = []
    for p in points:
        t0 = time.perf_counter()
        index.needs_snippets(p.path, p.buffer, p.offset)
        needs_ms.append((time.perf_counter() - t0) * 1000)
    # A saved file: its graph extracted and written, chunks re-embedded only where they changed.
    saved = sorted(walk(root, 1_000_000), key=lambda f: -f.size)[len(points) % 7 + 10]
    text = saved.abs_path.read_text(encoding="utf-8")
    extract_ms, update_ms = [], []
    for n in range(5):
        saved.abs_path.write_text(text + f"\n# edit {n}\n", encoding="utf-8")
        t0 = time.perf_counter()
        extract(saved.path, text)
        extract_ms.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        index.update_files([saved.path])
        update_ms.append((time.perf_counter() - t0) * 1000)
    saved.abs_path.write_text(text, encoding="utf-8")
    index.update_files([saved.path])
    index.close()
    return [
        f"| repository | {spec}: {lines} lines of Python, {stats.files_seen} files, {stats.chunks_total} chunks |",
        f"| retrieval for one cursor, p50 / p95 ({len(points)} cursors) | "
        f"{statistics.median(latencies):.1f} ms / {p95:.1f} ms |",
        f"| of which the needs probe, p50 | {statistics.median(needs_ms):.1f} ms |",
        f"| a saved file ({saved.path}, {text.count(chr(10))} lines): symbol graph extracted, p50 | "
        f"{statistics.median(extract_ms):.1f} ms |",
        f"| the same file's whole index update (graph, chunks, changed embeddings), p50 | "
        f"{statistics.median(update_ms):.1f} ms |",
        f"| cold index: whole pipeline | {pipeline_s:.1f} s |",
        f"| the embedding model alone on the same {len(texts)} chunk texts | {embed_s:.1f} s |",
        f"| indexing throughput / embedding throughput | {embed_s / pipeline_s:.2f} |",
        f"| no-op reindex (median of 3) | {statistics.median(noop) * 1000:.0f} ms |",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--points", type=int, default=100, help="completion points per project (default 100)")
    parser.add_argument("--languages", default=",".join(PROJECTS), help="comma-separated (default: all)")
    parser.add_argument(
        "--embedder",
        choices=("minilm", "onnx", "onnx-int8", "openvino", "hash"),
        default="minilm",
        help="minilm: the packaged MiniLM on torch; onnx, onnx-int8: the same on onnxruntime; "
        "openvino: the same on OpenVINO; "
        "hash: a 16-dim stand-in, for quick runs of the needs probe alone",
    )
    parser.add_argument("--projects", default="", help="comma-separated: only these projects (default: all)")
    parser.add_argument("--after", action="store_true", help="also the table with the name typed")
    parser.add_argument("--misses", type=int, default=0, help="print this many missed points at 8k")
    parser.add_argument(
        "--budgets", default=",".join(map(str, BUDGETS)), help="comma-separated token budgets"
    )
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument(
        "--max-tokens",
        type=int,
        default=DEFAULT_EMBEDDING_MAX_TOKENS,
        help=f"embed each chunk from its first N tokens (default {DEFAULT_EMBEDDING_MAX_TOKENS}; "
        "0: the model's own limit, 256)",
    )
    args = parser.parse_args()
    BUDGETS[:] = [int(b) for b in args.budgets.split(",")]
    logging.basicConfig(level=logging.WARNING)
    tokenizer = LlamaCppModel(vocabs.family_vocab("qwen2.5-coder", CACHE), vocab_only=True)
    ONLY[:] = [p for p in args.projects.split(",") if p]
    embedder = (
        SentenceTransformerEmbedder(max_tokens=args.max_tokens)
        if args.embedder == "minilm"
        else HashEmbedder()
        if args.embedder == "hash"
        else make_embedder("all-MiniLM-L6-v2", args.embedder, args.max_tokens)
    )
    positions = [(True, "cursor where the name begins (the name is not typed yet)")]
    if args.after:
        positions.append((False, "cursor after the name and its bracket (typing the arguments)"))
    for before, title in positions if args.languages else []:
        print(f"\n{title}\n")
        print(
            "| project | budget (tokens) | points | code-kb: definition in prompt | sliding-window baseline | "
            "code-kb context tokens (median) |"
        )
        print("|---|---|---|---|---|---|")
        for language in [lang for lang in args.languages.split(",") if lang]:  # --languages "": speed only
            misses: list[str] = []
            for row in quality(language, args.points, tokenizer, embedder, before, misses):
                print(row, flush=True)
            for line in random.Random(1).sample(misses, min(args.misses, len(misses))):
                print(f"    missed: {line}", file=sys.stderr)
    if not args.skip_speed:
        print("\n| measurement | value |\n|---|---|")
        for row in speed(SPEED, embedder, 200):
            print(row, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
