"""Indexing throughput per embedding backend, as a ratio to torch in the same run, and the server's memory.

    python benchmarks/embedding_speed.py [--root PATH] [--backends onnx,onnx-int8,openvino] [--rss]
        [--runtimes N | --queries N] [--threads 1]

Speed: the chunk texts a cold index of PATH (default: this repository) embeds are embedded with
sentence-transformers on torch (the reference, timed before and after the others, model loaded
beforehand), then PATH is indexed from nothing with each backend (the whole pipeline: walk, read,
chunk, symbol graph, embed, write; the model loaded beforehand) and the same texts are embedded by
the backend alone. Reported: seconds, the torch embedding time over the backend's whole indexing
time (the indexing speed-up: above 1 means indexing all of PATH took less than torch's embedding
alone), and the cosine between the backend's vectors and torch's.

--rss: `code-kb serve` indexes a copy of tests/fixtures/tiny_repo (or `--rss-repo`) once per backend; its resident
memory (VmRSS with any child's, and the server's own peak VmHWM) is read from /proc once the index
is ready, and whether libtorch is mapped into the process.

--queries N: N queries (the last 5 lines of N chunk texts, as a completion's query is the lines
above the cursor and its own), one text at a time, on the NumPy encoder a server answers queries with and on
each runtime, milliseconds per query (p50, p95) on `--threads` threads (default 1).

--runtimes N: the first N of those chunk texts embedded on `--threads` threads (default 1) by
each runtime and precision the backends use: onnxruntime fp32 and int8, OpenVINO at each
precision its calibration timed (its own choice, bf16 on a CPU that has it, and f32), median of
three runs each, in one process.

The ONNX export and calibration are made first if this machine has none (once, about a minute).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from retrieval import CodeIndex, IndexConfig, SentenceTransformerEmbedder  # noqa: E402
from retrieval.chunking import chunk_file  # noqa: E402
from retrieval.embedding import make_embedder  # noqa: E402
from retrieval.files import walk  # noqa: E402


def chunk_texts(root: Path) -> list[str]:
    """What a cold index embeds: one text per distinct chunk (the cache is keyed by chunk text)."""
    texts: dict[str, str] = {}
    for f in walk(root, 1_000_000):
        try:
            source = f.abs_path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        for c in chunk_file(f.path, source):
            texts.setdefault(c.text_hash, c.embedding_text())
    return list(texts.values())


def timed(run) -> tuple[float, object]:  # noqa: ANN001
    t0 = time.perf_counter()
    result = run()
    return time.perf_counter() - t0, result


def speed(root: Path, backends: list[str]) -> list[str]:
    texts = chunk_texts(root)
    torch = SentenceTransformerEmbedder()
    torch.embed(texts[:4])  # loaded and warm: the reference pays no start-up
    torch_first_s, reference = timed(lambda: torch.embed(texts))
    rows = []
    for backend in backends:
        embedder = make_embedder("all-MiniLM-L6-v2", backend)
        embedder.embed(texts[:4])
        with tempfile.TemporaryDirectory() as tmp:
            index = CodeIndex(root, IndexConfig(index_dir=Path(tmp) / "index"), embedder)
            index_s, stats = timed(index.reindex)
            index.close()
        embed_s, vectors = timed(lambda: embedder.embed(texts))
        cosines = np.sum(np.asarray(vectors) * np.asarray(reference), axis=1)
        rows.append((backend, embedder.chosen_backend, index_s, embed_s, stats, cosines))
    torch_last_s, _ = timed(lambda: torch.embed(texts))
    torch_s = statistics.mean([torch_first_s, torch_last_s])
    out = [
        f"| corpus | {root}: {len(texts)} distinct chunk texts |",
        f"| torch (sentence-transformers) embedding alone, before / after the others | "
        f"{torch_first_s:.1f} s / {torch_last_s:.1f} s |",
        f"| load average (1 min) at the end | {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores |",
    ]
    for backend, chosen, index_s, embed_s, stats, cosines in rows:
        label = backend if backend == chosen else f"{backend} (chose {chosen})"
        out += [
            f"| {label}: cold index, whole pipeline ({stats.chunks_embedded} chunks embedded) | {index_s:.1f} s |",
            f"| {label}: embedding alone, same texts | {embed_s:.1f} s |",
            f"| {label}: **torch embedding time / this backend's whole indexing time** | **{torch_s / index_s:.2f}x** |",
            f"| {label}: torch embedding time / this backend's embedding time | {torch_s / embed_s:.2f}x |",
            f"| {label}: cosine to torch's vectors, min / mean | {cosines.min():.4f} / {cosines.mean():.4f} |",
        ]
    return out


def runtimes(root: Path, count: int, threads: int) -> list[str]:
    """Seconds to embed `count` chunk texts on `threads` threads, per runtime and precision."""
    from retrieval.embedding import resolve_model_path
    from retrieval.onnx_embedding import (
        VARIANTS,
        OnnxModel,
        OpenVinoModel,
        ensure_export,
        read_calibration,
        runnable,
    )

    texts = chunk_texts(root)[:count]
    model_dir = Path(resolve_model_path("all-MiniLM-L6-v2"))
    directory = ensure_export(model_dir)
    calibration = read_calibration(directory)
    labels = {"onnx": "onnxruntime fp32", "onnx-int8": "onnxruntime int8"}
    variants: list[tuple[str, type[OnnxModel], str]] = []
    for backend in runnable():
        file, kind = VARIANTS[backend]
        if kind is not OpenVinoModel:
            variants.append((labels[backend], kind, file))
            continue
        # Each precision the calibration timed (the plugin's own choice, and f32 where that is not
        # f32), the one it kept marked: OpenVINO runs at that one.
        for precision in calibration.get("openvino_seconds", {"": 0}):
            forced = type(f"OpenVino_{precision}", (OpenVinoModel,), {"PRECISION": precision or None})
            kept = " (the calibration's)" if precision == calibration.get("openvino_precision") else ""
            variants.append((f"OpenVINO {precision or 'as calibrated'}{kept}", forced, file))
    out = [
        f"| runtime ({len(texts)} texts, {threads} thread(s)) | seconds, median of 3 | precision |",
        "|---|---:|---|",
    ]
    for label, kind, file in variants:
        model = kind(model_dir, directory / file, threads)
        model.embed(texts[:8])  # warm
        seconds = statistics.median(timed(lambda m=model: m.embed(texts))[0] for _ in range(3))
        out.append(
            f"| {label} | {seconds:.1f} | {getattr(model, 'precision', 'fp32' if 'int8' not in file else 'int8')} |"
        )
    return out


def queries(root: Path, count: int, threads: int) -> list[str]:
    """Milliseconds per query (one text, as a completion embeds it: a few lines, cut at 128 tokens)
    per runtime, the NumPy encoder a server answers queries with among them."""
    from retrieval.embedding import resolve_model_path
    from retrieval.numpy_embedding import NumpyModel
    from retrieval.onnx_embedding import VARIANTS, OnnxModel, ensure_export, runnable

    model_dir = Path(resolve_model_path("all-MiniLM-L6-v2"))
    directory = ensure_export(model_dir)
    # Queries like the server's: the lines above a cursor and its own (IndexConfig.query_lines + 1).
    lines = IndexConfig().query_lines + 1
    texts = ["\n".join(t.splitlines()[-lines:]) for t in chunk_texts(root)[:count]]
    variants: list[tuple[str, type[OnnxModel], Path]] = [
        ("NumPy (the server's queries)", NumpyModel, model_dir / "model.safetensors")
    ]
    variants += [(b, VARIANTS[b][1], directory / VARIANTS[b][0]) for b in runnable()]
    out = [
        f"| runtime ({len(texts)} queries, {threads} thread(s)) | ms per query, p50 | p95 | tokens p50 |",
        "|---|---:|---:|---:|",
    ]
    for label, kind, path in variants:
        model = kind(model_dir, path, threads, max_tokens=128)
        for text in texts[:8]:
            model.embed([text])  # warm: each width's first run
        ms = sorted(timed(lambda t=text, m=model: m.embed([t]))[0] * 1000 for text in texts)
        tokens = sorted(len(ids) for ids in model.tokenize(texts))
        out.append(
            f"| {label} | {ms[len(ms) // 2]:.1f} | {ms[int(len(ms) * 0.95)]:.1f} | {tokens[len(tokens) // 2]} |"
        )
    return out


def _send(proc: subprocess.Popen, message: dict) -> None:
    body = json.dumps({"jsonrpc": "2.0", **message}).encode()
    assert proc.stdin is not None
    proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
    proc.stdin.flush()


def _receive(proc: subprocess.Popen) -> dict:
    assert proc.stdout is not None
    length = 0
    while (line := proc.stdout.readline().strip()) != b"":
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return json.loads(proc.stdout.read(length))


def _memory_kb(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields


def serve_rss(backend: str, source: Path) -> str:
    """`code-kb serve` on a copy of `source` (a repository): memory once its index is ready."""
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        shutil.copytree(source, repo, ignore=shutil.ignore_patterns(".code-kb", ".git"))
        env = {**os.environ, "CODE_KB_CONFIG": str(Path(tmp) / "none.toml")}
        proc = subprocess.Popen(
            [sys.executable, "-m", "lsp_server", "serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            cwd=ROOT,
            env=env,
        )
        t0 = time.perf_counter()
        options = {"embeddingBackend": backend}
        _send(proc, {"id": 1, "method": "initialize", "params": {
            "processId": os.getpid(), "rootUri": repo.as_uri(), "capabilities": {},
            "initializationOptions": options}})  # fmt: skip
        before: dict[str, int] = {}
        ready = ""
        while not ready:
            message = _receive(proc)
            if message.get("id") == 1 and "method" not in message:
                before = _memory_kb(proc.pid)
                _send(proc, {"method": "initialized", "params": {}})
            elif "id" in message and "method" in message:  # a request of the server's: answer it
                items = message.get("params", {}).get("items")
                _send(proc, {"id": message["id"], "result": [{}] * len(items) if items else None})
            elif "index ready" in str(message.get("params", {}).get("message", "")):
                ready = message["params"]["message"]
        seconds = time.perf_counter() - t0
        after = _memory_kb(proc.pid)
        # An embedding worker still running would count too (it stops when the index pass ends).
        children = [int(p) for p in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()]
        for child in children:
            with contextlib.suppress(OSError):
                after["VmRSS"] += _memory_kb(child)["VmRSS"]
        torch_mapped = "libtorch" in Path(f"/proc/{proc.pid}/maps").read_text()
        _send(proc, {"id": 2, "method": "shutdown"})
        _send(proc, {"method": "exit"})
        proc.wait(timeout=30)
    return (
        f"| serve, embeddingBackend={backend} | {before['VmRSS'] / 1024:.0f} MB | "
        f"{after['VmRSS'] / 1024:.0f} MB (peak {after['VmHWM'] / 1024:.0f} MB) | "
        f"{'yes' if torch_mapped else 'no'} | {seconds:.1f} s | {1 + len(children)} |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--root", type=Path, default=ROOT, help="tree to index (default: this repository)")
    parser.add_argument(
        "--backends",
        default="onnx,onnx-int8,openvino",
        help="comma-separated (auto, onnx, onnx-int8, openvino)",
    )
    parser.add_argument("--rss", action="store_true", help="also the memory of code-kb serve per backend")
    parser.add_argument(
        "--rss-repo",
        type=Path,
        default=ROOT / "tests" / "fixtures" / "tiny_repo",
        help="with --rss: the repository the server indexes (a copy; default tests/fixtures/tiny_repo)",
    )
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--runtimes", type=int, metavar="N", help="time N texts per runtime and precision")
    parser.add_argument("--queries", type=int, metavar="N", help="time N one-text queries per runtime")
    parser.add_argument("--threads", type=int, default=1, help="with --runtimes or --queries (default 1)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    backends = [b for b in args.backends.split(",") if b]
    make_embedder("all-MiniLM-L6-v2", "auto").describe()  # the export and calibration, if missing
    if args.runtimes:
        for row in runtimes(args.root.resolve(), args.runtimes, args.threads):
            print(row, flush=True)
        return 0
    if args.queries:
        for row in queries(args.root.resolve(), args.queries, args.threads):
            print(row, flush=True)
        return 0
    if not args.skip_speed:
        print("| measurement | value |\n|---|---|")
        for row in speed(args.root.resolve(), backends):
            print(row, flush=True)
    if args.rss:
        print(
            "\n| server | RSS after initialize | RSS once indexed | torch loaded | to index ready | processes |"
        )
        print("|---|---|---|---|---|---|")
        for backend in ["torch", *backends]:
            print(serve_rss(backend, args.rss_repo), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
