"""End-to-end slice figures: reindex time of a tree and completion latency with the tiny test model.

    python benchmarks/slice.py [ROOT] [--runs N]

Reports medians over N runs measured in this process, side by side; absolute times on
shared 2-core machines are noisy, so compare rows of one run, not runs of different days.
The tiny model (random weights, 0.6 MB) measures code-kb's own overhead around llama.cpp,
not a real model's speed: issue 6's benchmark covers shape-alike 0.5B/1.5B models.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine import Completer, EngineConfig  # noqa: E402
from engine.backends.llama_cpp import LlamaCppModel  # noqa: E402
from retrieval import CodeIndex, IndexConfig, SentenceTransformerEmbedder  # noqa: E402
from tests.fixtures.gguf_builder import write_tiny_gguf  # noqa: E402


def median_ms(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1000:.1f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("root", nargs="?", default=str(Path(__file__).resolve().parents[1]))
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    root = Path(args.root).resolve()
    work = Path(tempfile.mkdtemp(prefix="code-kb-bench-"))
    rows: list[tuple[str, str]] = []
    try:
        embedder = SentenceTransformerEmbedder()
        t0 = time.perf_counter()
        embedder.dim  # load the model once, outside the timed reindexes
        rows.append(
            ("embedding model load (once per process)", f"{(time.perf_counter() - t0) * 1000:.0f} ms")
        )

        cold, warm = [], []
        for run in range(args.runs):
            index = CodeIndex(root, IndexConfig(index_dir=work / f"index{run}"), embedder=embedder)
            t0 = time.perf_counter()
            stats = index.reindex()
            cold.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            index.reindex()
            warm.append(time.perf_counter() - t0)
            index.close()
        rows.append(
            (f"reindex, cold ({stats.files_seen} files, {stats.chunks_total} chunks)", median_ms(cold))
        )
        rows.append(("reindex, nothing changed", median_ms(warm)))

        index = CodeIndex(root, IndexConfig(index_dir=work / "index0"), embedder=embedder)
        model = write_tiny_gguf(work / "tiny.gguf")
        completer = Completer.load(EngineConfig(model_path=str(model), budget_tokens=4096, max_tokens=16))
        llama = completer.backend
        assert isinstance(llama, LlamaCppModel)
        target = root / "engine" / "prompt.py"
        source = target.read_text()
        offset = source.index("    def build(") + len("    def build(")
        rel = target.relative_to(root).as_posix()

        retrieval, assembly, first_ms, warm_ms, typed_ms = [], [], [], [], []
        reuse = []
        for _ in range(args.runs):
            index._query_cache.clear()  # time the query embedding too, as for a new cursor
            t0 = time.perf_counter()
            snippets = index.snippets(rel, source, offset)
            retrieval.append(time.perf_counter() - t0)
            prompt, _ = completer.prompt(rel, source, offset, index, root.name)
            assembly.append(prompt.build_ms / 1000)
            llama.reset()  # cold KV cache
            index._query_cache.clear()
            first_ms.append(completer.complete(rel, source, offset, index, root.name).total_ms / 1000)
            warm_ms.append(completer.complete(rel, source, offset, index, root.name).total_ms / 1000)
            typed = source[:offset] + "s" + source[offset:]
            result = completer.complete(rel, typed, offset + 1, index, root.name)
            typed_ms.append(result.total_ms / 1000)
            reuse.append(result.generation.n_reused / result.generation.n_prompt)
        rows.append((f"retrieval for one cursor ({len(snippets)} snippets)", median_ms(retrieval)))
        rows.append((f"prompt assembly ({prompt.n_tokens} tokens)", median_ms(assembly)))
        rows.append(("completion, tiny model, cold KV cache", median_ms(first_ms)))
        rows.append(
            ("completion, tiny model, same cursor again (query embedding cached)", median_ms(warm_ms))
        )
        rows.append(("completion, tiny model, one character typed", median_ms(typed_ms)))
        rows.append(
            ("prompt tokens reused after one character typed", f"{statistics.median(reuse) * 100:.1f} %")
        )
        index.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"| measurement (median of {args.runs}) | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
