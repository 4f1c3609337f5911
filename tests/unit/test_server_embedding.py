"""The server's embedder: queries on the NumPy encoder in the process, index batches in a worker
process on the chosen runtime (retrieval/numpy_embedding.py, embed_worker.py, server_embedding.py).
Real model, real runtimes, real child processes."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from retrieval import CodeIndex, IndexConfig
from retrieval.embed_worker import EmbeddingWorker
from retrieval.embedding import make_embedder, resolve_model_path
from retrieval.errors import EmbeddingModelError
from retrieval.numpy_embedding import NumpyModel, gelu, unsupported
from retrieval.onnx_embedding import OnnxEmbedder, ensure_export
from retrieval.server_embedding import WORKER_TEXTS, ServerEmbedder, server_embedder_for

ROOT = Path(__file__).resolve().parents[2]
MODEL_DIR = Path(resolve_model_path("all-MiniLM-L6-v2"))


def code_texts(n: int = 0) -> list[str]:
    """Chunk-like texts of this repository: short, long (past the 128-token cut), one word."""
    texts = []
    for path in sorted((ROOT / "retrieval").glob("*.py")):
        lines = path.read_text().splitlines()
        texts += ["\n".join(lines[i : i + 20]) for i in range(0, min(len(lines), 120), 40)]
    texts = [*texts, "\n".join((ROOT / "retrieval" / "index.py").read_text().splitlines()[:300]), "x"]
    return texts[:n] if n else texts


def workers_running() -> list[int]:
    """Embedding workers this process started that are still alive (Linux's /proc)."""
    out = []
    for entry in Path("/proc").iterdir():
        try:
            status = (entry / "status").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = next((line.split()[1] for line in status.splitlines() if line.startswith("PPid:")), "")
        if ppid == str(os.getpid()) and b"retrieval.embed_worker" in cmdline and "zombie" not in status:
            out.append(int(entry.name))
    return out


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1)


@pytest.fixture(scope="module")
def export() -> Path:
    return ensure_export(MODEL_DIR)


def test_numpy_encoder_gives_torchs_vectors(minilm) -> None:
    texts = code_texts(24)
    numpy = OnnxEmbedder("all-MiniLM-L6-v2", MODEL_DIR, runtime="numpy")
    assert numpy.name == minilm.name == "all-MiniLM-L6-v2@128"  # one cache key: interchangeable
    assert numpy.backend == "numpy" and numpy.load().runtime == "numpy"
    batched, want = numpy.embed(texts), minilm.embed(texts)
    assert batched.shape == want.shape == (len(texts), 384) and batched.dtype == np.float32
    assert float(cosines(batched, want).min()) > 0.99999  # fp32 throughout: rounding only
    # One at a time (a query: no padding) and in padded batches: the same vectors.
    alone = np.vstack([numpy.embed([t]) for t in texts[:6]])
    assert float(np.abs(alone - batched[:6]).max()) < 1e-5
    # Two threads at once (a query while the index embeds a small batch).
    with ThreadPoolExecutor(2) as pool:
        halves = list(pool.map(numpy.embed, [texts[:12], texts[12:]]))
    assert float(np.abs(np.vstack(halves) - batched).max()) < 1e-5


def test_gelu_is_exact_to_fp32() -> None:
    x = np.linspace(-8, 8, 4001, dtype=np.float32)
    want = np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x.astype(np.float64)])
    got = gelu(x)
    assert got.dtype == np.float32 and float(np.abs(got - want).max()) < 1e-6
    assert np.array_equal(x, np.linspace(-8, 8, 4001, dtype=np.float32))  # its input kept


def test_models_the_numpy_encoder_cannot_run_say_why(tmp_path: Path) -> None:
    assert unsupported(MODEL_DIR) is None
    model = tmp_path / "model"
    shutil.copytree(MODEL_DIR, model, ignore=shutil.ignore_patterns("model.safetensors"))
    assert "no model.safetensors" in (unsupported(model) or "")
    (model / "model.safetensors").symlink_to(MODEL_DIR / "model.safetensors")
    assert unsupported(model) is None
    # Its tokenizing is OnnxModel's: a folder with only a slow tokenizer runs on the chosen runtime.
    (model / "tokenizer.json").rename(model / "tokenizer.json.away")
    assert "no tokenizer.json" in (unsupported(model) or "")
    (model / "tokenizer.json.away").rename(model / "tokenizer.json")
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, "model_type": "roberta"}))
    assert "not BERT" in (unsupported(model) or "")
    (model / "config.json").write_text(json.dumps({**config, "hidden_act": "relu"}))
    assert "not exact GELU" in (unsupported(model) or "")
    (model / "config.json").write_text(json.dumps(config))
    pooling = model / "1_Pooling" / "config.json"
    pooling.write_text(json.dumps({"pooling_mode_max_tokens": True}))
    assert "not mean or CLS" in (unsupported(model) or "")
    assert "not a sentence-transformers model folder" in (unsupported(tmp_path) or "")
    # A CLS-pooled model runs: its vectors are the first token's, normalised.
    pooling.write_text(json.dumps({"pooling_mode_cls_token": True}))
    assert unsupported(model) is None
    vector = NumpyModel(model, model / "model.safetensors", max_tokens=128).embed(["def add(a, b):"])
    assert abs(float(np.linalg.norm(vector)) - 1.0) < 1e-5


def test_the_server_embeds_queries_in_process_and_batches_in_a_worker(export: Path, minilm) -> None:
    # Forced: `auto` takes onnx-int8 where the calibration measured it fastest, and int8's own
    # vectors are embedded in the process (test_backends_with_vectors_of_their_own_run_in_the_process).
    embedder = ServerEmbedder(make_embedder("all-MiniLM-L6-v2", "openvino"))
    texts = code_texts()
    assert len(texts) >= WORKER_TEXTS
    assert embedder.name == minilm.name and embedder.dim == 384
    query = embedder.embed(texts[:1])
    assert embedder.worker_pid is None  # a query starts no worker
    batch = embedder.embed(texts)
    pid = embedder.worker_pid
    assert pid is not None and pid != os.getpid()
    assert float(cosines(batch, minilm.embed(texts)).min()) > 0.9999
    assert float(cosines(query, batch[:1]).min()) > 0.9999
    runs = embedder.describe()["embedding_runs"]
    assert "NumPy in the server" in runs and "in a worker process" in runs
    # The index pass ends: the worker goes, and its runtime with it.
    embedder.compact()
    assert embedder.worker_pid is None
    with pytest.raises(ProcessLookupError):
        for _ in range(50):
            os.kill(pid, 0)
            time.sleep(0.1)
    # The next large batch starts another.
    again = embedder.embed(texts)
    assert embedder.worker_pid not in (None, pid)
    assert float(np.abs(again - batch).max()) < 1e-4
    embedder.close()
    assert embedder.worker_pid is None and workers_running() == []


def test_a_server_that_only_answers_queries_loads_no_indexing_runtime(
    tiny_repo: Path, export: Path, tmp_path: Path
) -> None:
    """In a fresh interpreter, as a server: a small index (under WORKER_TEXTS chunks a commit) and
    searches, then a large batch through the worker; neither OpenVINO, onnxruntime nor torch loads."""
    script = f"""
import sys
from pathlib import Path
from retrieval import CodeIndex, IndexConfig
from retrieval.server_embedding import server_embedder_for
config = IndexConfig(index_dir=Path({str(tmp_path)!r}) / "idx", embedding_backend="openvino")
embedder = server_embedder_for(config)
index = CodeIndex(Path({str(tiny_repo)!r}), config, embedder)
stats = index.reindex()
hits = index.search("shipping cost for a cart", 3)
small = embedder.worker_pid
embedder.embed(["def f(x):\\n    return x"] * 80)
big = embedder.worker_pid
loaded = [m for m in ("openvino", "onnxruntime", "torch") if m in sys.modules]
print(stats.chunks_embedded, hits[0].path, small, big is not None, loaded or "none")
embedder.close()
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=300, check=True
    ).stdout.split()
    assert 10 < int(out[0]) < WORKER_TEXTS
    assert out[1].startswith("shop/")
    assert out[2] == "None" and out[3] == "True"
    assert out[4] == "none", f"loaded in the server: {out[4]}"


def test_a_worker_that_dies_is_started_again(export: Path) -> None:
    worker = EmbeddingWorker("all-MiniLM-L6-v2", "onnx", 128)
    first = worker.embed(["def add(a, b):", "class Cart:"])
    pid = worker.pid
    assert pid is not None and worker.name == "all-MiniLM-L6-v2@128"
    os.kill(pid, signal.SIGKILL)
    second = worker.embed(["def add(a, b):", "class Cart:"])
    assert worker.pid not in (None, pid)
    assert float(np.abs(first - second).max()) < 1e-5
    worker.close()


def test_a_worker_that_does_not_answer_in_time_is_stopped(
    export: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from retrieval import embed_worker

    monkeypatch.setattr(embed_worker, "START_TIMEOUT_S", 0.05)  # less than any real start takes
    worker = EmbeddingWorker("all-MiniLM-L6-v2", "onnx", 128)
    with pytest.raises(EmbeddingModelError, match="hung, stopped"):
        worker.embed(["x"])
    assert worker.pid is None and workers_running() == []
    monkeypatch.setattr(embed_worker, "START_TIMEOUT_S", 180.0)
    monkeypatch.setattr(embed_worker, "BATCH_TIMEOUT_S", 0.001)  # no batch is this fast
    with pytest.raises(EmbeddingModelError, match="ended twice.*hung"):
        worker.embed(code_texts(WORKER_TEXTS))
    assert worker.pid is None and workers_running() == []  # both children killed, none left
    monkeypatch.setattr(embed_worker, "BATCH_TIMEOUT_S", 300.0)
    assert worker.embed(["x"]).shape == (1, 384)  # and the next call starts a working one
    worker.close()


def test_a_worker_that_cannot_start_says_why_and_the_server_embeds_in_process(
    export: Path, minilm, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(EmbeddingModelError, match="unknown embedding backend 'no-such'"):
        EmbeddingWorker("all-MiniLM-L6-v2", "no-such", 128).embed(["x"])
    embedder = ServerEmbedder(make_embedder("all-MiniLM-L6-v2", "onnx"))
    embedder.embed(["x"])  # decides the split
    assert embedder._worker is not None
    embedder._worker.backend = "no-such"  # as if the runtime crashed at every start
    texts = code_texts(WORKER_TEXTS)
    with caplog.at_level("WARNING"):
        got = embedder.embed(texts)
    assert "in the server process from now on" in caplog.text
    assert float(cosines(got, minilm.embed(texts)).min()) > 0.9999  # the in-process runtime's
    assert "in the server process (" in embedder.describe()["embedding_runs"]


def test_backends_with_vectors_of_their_own_run_in_the_process(tmp_path: Path, export: Path) -> None:
    embedder = server_embedder_for(IndexConfig(index_dir=tmp_path, embedding_backend="onnx-int8"))
    assert isinstance(embedder, ServerEmbedder)
    embedder.embed(code_texts(WORKER_TEXTS))
    assert embedder.worker_pid is None and "embedding_runs" not in embedder.describe()
    assert embedder.name.endswith("+int8")
    # An endpoint embeds everything itself.
    endpoint = IndexConfig(index_dir=tmp_path, embedding_endpoint="http://127.0.0.1:9/v1")
    assert not isinstance(server_embedder_for(endpoint), ServerEmbedder)


def test_the_index_a_server_builds_is_the_one_the_cli_builds(
    tiny_repo: Path, export: Path, tmp_path: Path
) -> None:
    """Vectors from the worker and from NumPy share the in-process runtime's cache key: an index
    made by `code-kb index` is the server's without embedding anything again."""
    config = IndexConfig(index_dir=tmp_path / "idx")
    cli = CodeIndex(tiny_repo, config, make_embedder())
    made = cli.reindex().chunks_embedded
    cli.close()
    served = CodeIndex(tiny_repo, config, server_embedder_for(config))
    stats = served.reindex()
    assert made > 0 and stats.chunks_embedded == 0
    served.close()


def test_the_workers_log_reaches_the_servers_handlers(export: Path, caplog: pytest.LogCaptureFixture) -> None:
    # Its stderr is read by the parent and logged there: in the server's --log-file like the rest.
    worker = EmbeddingWorker("all-MiniLM-L6-v2", "onnx", 128)
    with caplog.at_level("INFO"):
        worker.embed(["def add(a, b):"])
        pid = worker.pid
        worker.close()
    lines = [
        r for r in caplog.records if r.name == "retrieval.embed_worker" and f"worker {pid}:" in r.message
    ]
    loaded = [
        r for r in lines if "embedding model all-MiniLM-L6-v2@128 loaded (onnxruntime)" in r.getMessage()
    ]
    assert loaded and loaded[0].levelname == "INFO", [r.getMessage() for r in lines]
