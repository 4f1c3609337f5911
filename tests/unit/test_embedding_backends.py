"""The embedding backends: ONNX exported locally from the packaged MiniLM, int8, the same graph on
OpenVINO, the automatic choice, and the embedding cache across a switch of model or backend."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from lsp_server.config import Settings
from retrieval import CodeIndex, IndexConfig, onnx_embedding
from retrieval.embedding import ChosenEmbedder, make_embedder, resolve_model_path
from retrieval.errors import EmbeddingModelError
from retrieval.onnx_embedding import (
    OnnxEmbedder,
    OnnxModel,
    OpenVinoModel,
    agrees,
    choose,
    ensure_export,
    openvino_ir,
)
from tests.fixtures.hash_embedder import HashEmbedder

ROOT = Path(__file__).resolve().parents[2]
MODEL_DIR = Path(resolve_model_path("all-MiniLM-L6-v2"))


def code_texts() -> list[str]:
    """Chunk-like texts of this repository, short and long (some far past the 256-token limit)."""
    texts = []
    for path in sorted((ROOT / "retrieval").glob("*.py"))[:6]:
        lines = path.read_text().splitlines()
        texts += ["\n".join(lines[i : i + 25]) for i in range(0, min(len(lines), 150), 50)]
        texts.append("\n".join(lines[:400]))  # thousands of tokens: truncated by the model
    return [*texts, "x", "def add(a, b):\n    return a + b"]


@pytest.fixture(scope="module")
def export() -> Path:
    """The real export (made once per machine into the user's cache folder, reused after)."""
    return ensure_export(MODEL_DIR)


def test_onnx_vectors_are_torchs_within_float_noise(minilm, export: Path) -> None:
    texts = code_texts()
    onnx = OnnxEmbedder("all-MiniLM-L6-v2", MODEL_DIR)
    got, want = onnx.embed(texts), minilm.embed(texts)
    assert onnx.name == minilm.name  # the same cache key: the vectors are interchangeable
    assert got.shape == want.shape == (len(texts), 384)
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert float(np.min(np.sum(got * want, axis=1))) > 0.9999


def test_int8_agrees_with_torch_and_is_cached_apart(minilm, export: Path) -> None:
    texts = code_texts()
    int8 = OnnxEmbedder("all-MiniLM-L6-v2", MODEL_DIR, quantized=True)
    cosines = np.sum(int8.embed(texts) * minilm.embed(texts), axis=1)
    assert int8.name == "all-MiniLM-L6-v2@128+int8"
    assert float(cosines.mean()) > 0.99
    assert float(cosines.min()) > 0.97
    # The transformer's weights are int8; the token embedding table (47 MB) stays float.
    assert (export / "model.int8.onnx").stat().st_size < (export / "model.onnx").stat().st_size * 0.7


def test_openvino_runs_the_same_graph_with_torchs_vectors(minilm, export: Path) -> None:
    texts = code_texts()
    openvino = OnnxEmbedder("all-MiniLM-L6-v2", MODEL_DIR, runtime="openvino")
    got, want = openvino.embed(texts), minilm.embed(texts)
    assert openvino.name == minilm.name and openvino.backend == "openvino"
    assert openvino.load().runtime == "openvino"  # the real OpenVINO runtime, not onnxruntime
    assert got.shape == want.shape == (len(texts), 384)
    assert float(np.min(np.sum(got * want, axis=1))) > 0.9999
    with pytest.raises(EmbeddingModelError, match="onnxruntime only"):
        OnnxEmbedder("all-MiniLM-L6-v2", MODEL_DIR, quantized=True, runtime="openvino")
    # An index batch and a query at once (the index embeds unlocked): each gets its own vectors.
    with ThreadPoolExecutor(4) as pool:
        batches = list(pool.map(openvino.embed, [texts[:8], texts[8:], texts[:8], texts[8:]]))
    assert np.allclose(np.concatenate(batches[:2]), got, atol=1e-5)
    assert np.allclose(np.concatenate(batches[2:]), got, atol=1e-5)


def test_openvino_reads_its_own_format_with_fp16_weights_converted_once(
    minilm, export: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # The export's calibration ran OpenVINO, which converted the graph beside it.
    assert (export / "model.ov.xml").is_file()
    weights = (export / "model.ov.bin").stat().st_size
    assert weights < (export / "model.onnx").stat().st_size * 0.6  # fp16: half of fp32
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes((export / "model.onnx").read_bytes())
    xml = openvino_ir(onnx)
    assert xml == tmp_path / "model.ov.xml" and xml.with_suffix(".bin").stat().st_size == weights
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx", "model.ov.bin", "model.ov.xml"]
    stamp = xml.stat().st_mtime_ns
    assert openvino_ir(onnx) == xml and xml.stat().st_mtime_ns == stamp  # converted once
    texts = code_texts()
    want = minilm.embed(texts)
    assert (
        float(np.min(np.sum(OpenVinoModel(MODEL_DIR, onnx, max_tokens=128).embed(texts) * want, axis=1)))
        > 0.9999
    )
    # Where it cannot be written (a read-only cache), the ONNX file is read as it is.
    xml.unlink()

    def read_only(path: Path) -> Path:
        raise PermissionError(f"cannot write beside {path}")

    monkeypatch.setattr(onnx_embedding, "openvino_ir", read_only)
    with caplog.at_level("WARNING"):
        got = OpenVinoModel(MODEL_DIR, onnx, max_tokens=128).embed(texts)
    assert "reading the ONNX file" in caplog.text
    assert float(np.min(np.sum(got * want, axis=1))) > 0.9999


@pytest.mark.parametrize("backend", ["openvino", "onnx-int8"])
def test_after_many_batched_texts_compact_reopens_the_runtime_with_the_same_vectors(
    export: Path, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    texts = code_texts()
    embedder = OnnxEmbedder(
        "all-MiniLM-L6-v2",
        MODEL_DIR,
        quantized=backend == "onnx-int8",
        runtime="openvino" if backend == "openvino" else "onnxruntime",
    )
    embedder.compact()  # nothing loaded: nothing to do
    before = embedder.embed(texts)
    model = embedder.load()

    def runtime() -> object:
        return model.compiled if backend == "openvino" else model.session

    first = runtime()
    assert model.batched_texts == len(texts) < onnx_embedding.COMPACT_AFTER_TEXTS
    embedder.compact()  # a few changed files' worth: kept as it is
    assert runtime() is first
    embedder.embed(["one query"])
    assert model.batched_texts == len(texts)  # queries are no batches
    monkeypatch.setattr(onnx_embedding, "COMPACT_AFTER_TEXTS", len(texts))
    embedder.compact()
    assert runtime() is not first and model.batched_texts == 0
    assert np.allclose(embedder.embed(texts), before, atol=1e-5)


def test_compacting_gives_the_batches_memory_back(export: Path) -> None:
    if not sys.platform.startswith("linux"):
        pytest.skip("resident memory read from /proc")
    # A fresh interpreter: this one's heap holds whatever the other tests left in it.
    script = f"""
import sys
from pathlib import Path
from lsp_server.memory import release_free_memory
from retrieval.onnx_embedding import OnnxEmbedder
sys.path.insert(0, {str(ROOT)!r})
from tests.unit.test_embedding_backends import MODEL_DIR, code_texts

def rss_mb():
    release_free_memory()
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) // 1024

embedder = OnnxEmbedder("all-MiniLM-L6-v2", MODEL_DIR, runtime="openvino")
texts = [text + f"  # {{n}}" for n in range(12) for text in code_texts()]
embedder.embed(texts)
for n in range(0, len(texts), 7):
    embedder.embed(texts[n : n + 7])  # batches of many shapes
batched = rss_mb()
embedder.compact()
print(batched, rss_mb())
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT, timeout=300
    )
    batched, compacted = map(int, out.stdout.split())
    assert batched - compacted >= 30, (batched, compacted)


def test_without_openvino_installed_auto_skips_it_and_the_setting_says_how_to_install_it(
    export: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calibration = {
        "texts": 48,
        "seconds": {"torch": 10.0, "onnx": 5.0, "onnx-int8": 3.0, "openvino": 2.0},
        "cosine": {
            "onnx": {"min": 0.99999, "mean": 1.0},
            "onnx-int8": {"min": 0.991, "mean": 0.994},
            "openvino": {"min": 0.99999, "mean": 1.0},
        },
    }
    assert choose(calibration).backend == "openvino"
    monkeypatch.setitem(sys.modules, "openvino", None)  # `import openvino` fails, as uninstalled
    assert choose(calibration).backend == "onnx-int8"
    with pytest.raises(EmbeddingModelError, match="pip install openvino"):
        ChosenEmbedder("all-MiniLM-L6-v2", "openvino").describe()


def test_long_texts_are_cut_exactly_where_the_model_truncates(export: Path) -> None:
    model = OnnxModel(MODEL_DIR, export / "model.onnx")
    long_text = (ROOT / "retrieval" / "index.py").read_text()
    one_char_tokens = "+" * 10_000  # each character is a token: the cut keeps more than 256
    for text in (long_text, one_char_tokens, "short"):
        whole = model.tokenizer.encode(text).ids  # truncated at max_seq_length by the tokenizer
        assert model.tokenize([text])[0] == whole
    assert len(model.tokenize([long_text])[0]) == model.max_tokens == 256


def test_texts_are_embedded_from_their_first_128_tokens_under_a_key_that_says_so(
    minilm, export: Path
) -> None:
    long_text = (ROOT / "retrieval" / "index.py").read_text()[:6000]
    cut = OnnxEmbedder("all-MiniLM-L6-v2", MODEL_DIR)
    whole = OnnxEmbedder("all-MiniLM-L6-v2", MODEL_DIR, max_tokens=0)
    assert (cut.name, whole.name) == ("all-MiniLM-L6-v2@128", "all-MiniLM-L6-v2")
    assert (cut.load().max_tokens, whole.load().max_tokens) == (128, 256)
    ids = cut.load().tokenize([long_text])[0]
    assert len(ids) == 128 and ids == whole.load().tokenize([long_text])[0][:127] + [ids[-1]]  # [SEP] last
    head = whole.load().tokenizer.decode(ids[1:-1])  # the text the cut keeps, as a text
    short, cut_long, whole_long = cut.embed([head])[0], cut.embed([long_text])[0], whole.embed([long_text])[0]
    assert float(short @ cut_long) > 0.999  # the cut vector is the head's
    assert float(cut_long @ whole_long) < 0.99  # and not the whole text's
    # torch cuts where ONNX does: the same key, the same vectors
    assert minilm.name == cut.name and float(minilm.embed([long_text])[0] @ cut_long) > 0.9999
    assert ChosenEmbedder("all-MiniLM-L6-v2", "onnx", max_tokens=64).name == "all-MiniLM-L6-v2@64"
    bad = Settings.load({"embeddingMaxTokens": -1})
    assert bad.index.embedding_max_tokens == 128
    assert any("embeddingMaxTokens=-1 is invalid" in p for p in bad.problems)
    assert Settings.load({"embeddingMaxTokens": 0}).index.embedding_max_tokens == 0


def test_calibration_is_cached_and_says_how_each_backend_compares(export: Path) -> None:
    calibration = json.loads((export / "calibration.json").read_text())
    assert set(calibration["seconds"]) == {"torch", "onnx", "onnx-int8", "openvino"}
    assert calibration["cosine"]["onnx"]["min"] > 0.9999
    assert agrees(calibration, "onnx") and agrees(calibration, "openvino")
    chosen = ChosenEmbedder("all-MiniLM-L6-v2", "auto")
    assert chosen.describe()["embedding_backend"] == choose(calibration).backend
    assert chosen.reason
    # OpenVINO timed at its own precision and at f32 where that is not f32; the faster kept, and run.
    timed = calibration["openvino_seconds"]
    kept = calibration["openvino_precision"]
    assert "f32" in timed and timed[kept] == min(timed.values()) == calibration["seconds"]["openvino"]
    assert OnnxEmbedder("all-MiniLM-L6-v2", MODEL_DIR, runtime="openvino").load().precision == kept


def test_choice_takes_the_fastest_that_agrees() -> None:
    base = {"texts": 48, "cosine": {"onnx": {"min": 0.99999, "mean": 1.0}}}
    fast_int8 = {"min": 0.991, "mean": 0.994}
    wrong_int8 = {"min": 0.86, "mean": 0.92}
    seconds = {"torch": 10.0, "onnx": 5.0, "onnx-int8": 3.0}
    assert choose(
        {**base, "seconds": seconds, "cosine": {**base["cosine"], "onnx-int8": fast_int8}}
    ).backend == ("onnx-int8")
    assert choose(
        {**base, "seconds": seconds, "cosine": {**base["cosine"], "onnx-int8": wrong_int8}}
    ).backend == ("onnx")
    slow = {"torch": 4.0, "onnx": 5.0, "onnx-int8": 4.5}
    assert (
        choose({**base, "seconds": slow, "cosine": {**base["cosine"], "onnx-int8": fast_int8}}).backend
        == "torch"
    )


def test_indexing_on_onnx_never_imports_torch(tiny_repo: Path, export: Path, tmp_path: Path) -> None:
    """The whole path a server takes (choose, load, index, search) in a fresh interpreter."""
    script = f"""
import sys
from pathlib import Path
from retrieval import CodeIndex, IndexConfig
from retrieval.embedding import make_embedder
embedder = make_embedder("all-MiniLM-L6-v2", "auto")
index = CodeIndex(Path({str(tiny_repo)!r}), IndexConfig(index_dir=Path({str(tmp_path)!r}) / "BACKEND"), embedder)
stats = index.reindex()
hits = index.search("shipping cost for a cart", 3)
print(embedder.chosen_backend, stats.chunks_embedded, hits[0].path, "torch" in sys.modules,
      "onnxruntime" in sys.modules)
"""
    for backend in ("onnx", "onnx-int8", "openvino"):
        out = subprocess.run(
            [sys.executable, "-c", script.replace('"auto"', repr(backend)).replace("BACKEND", backend)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=300,
            check=True,
        ).stdout.split()
        assert out[0] == backend
        assert int(out[1]) > 10
        assert out[2].startswith("shop/")
        assert out[3] == "False", "torch was imported"
        assert out[4] == str(backend != "openvino"), "onnxruntime loaded (or not) for nothing"


def test_a_model_switch_reembeds_from_the_cache(tiny_repo: Path, tmp_path: Path) -> None:
    config = IndexConfig(index_dir=tmp_path / "idx")
    first = HashEmbedder("hash-a")
    index = CodeIndex(tiny_repo, config, first)
    chunks = index.reindex().chunks_total
    index.close()

    second = HashEmbedder("hash-b")  # e.g. int8 after fp32: vectors of its own
    index = CodeIndex(tiny_repo, config, second)
    stats = index.reindex()
    assert stats.chunks_total == chunks
    assert stats.chunks_embedded == len({t for t in second.embedded})
    assert index.describe()["embedding_model"] == "hash-b"
    index.close()

    back = HashEmbedder("hash-a")  # switching back: every vector is still cached
    index = CodeIndex(tiny_repo, config, back)
    stats = index.reindex()
    assert stats.chunks_total == chunks and stats.chunks_embedded == 0 and back.embedded == []
    assert index.search("cart total", 2)
    index.close()


def test_embedding_backend_setting() -> None:
    assert Settings.load({"embeddingBackend": "onnx-int8"}).index.embedding_backend == "onnx-int8"
    bad = Settings.load({"embeddingBackend": "cuda"})
    assert bad.index.embedding_backend == "auto"
    assert any("embeddingBackend" in p for p in bad.problems)
    assert make_embedder("all-MiniLM-L6-v2", "torch").backend == "torch"


def test_doctor_accepts_an_index_of_the_backend_auto_may_choose(tiny_repo: Path, tmp_path: Path) -> None:
    from retrieval.embedding import expected_names
    from retrieval.integrity import check_index

    directory = tmp_path / "idx"
    index = CodeIndex(tiny_repo, IndexConfig(index_dir=directory), HashEmbedder("all-MiniLM-L6-v2@128+int8"))
    index.reindex()
    index.close()
    assert check_index(directory, expected_names(IndexConfig())) == []
    assert check_index(directory, expected_names(IndexConfig(embedding_backend="onnx-int8"))) == []
    torch_only = check_index(directory, expected_names(IndexConfig(embedding_backend="torch")))
    assert torch_only == ["embedded with all-MiniLM-L6-v2@128+int8, configured all-MiniLM-L6-v2@128"]
    whole = check_index(
        directory, expected_names(IndexConfig(embedding_backend="onnx-int8", embedding_max_tokens=0))
    )
    assert whole == ["embedded with all-MiniLM-L6-v2@128+int8, configured all-MiniLM-L6-v2+int8"]
    assert expected_names(IndexConfig(embedding_endpoint="http://127.0.0.1:1")) is None


def test_batches_hold_few_long_texts_and_many_short_ones():
    """Texts sorted by length are cut into batches of at most BATCH_TEXTS texts and BATCH_TOKENS
    padded tokens (a batch pads to its longest, last, text); a text longer than that goes alone."""
    from retrieval.onnx_embedding import BATCH_TEXTS, BATCH_TOKENS, batches

    lengths = [5] * 40 + [100] * 12 + [256] * 9 + [BATCH_TOKENS + 1]
    order = list(range(len(lengths)))
    cut = list(batches(order, lengths))
    assert [i for batch in cut for i in batch] == order  # every text once, in order
    for batch in cut:
        assert len(batch) <= BATCH_TEXTS
        assert len(batch) == 1 or len(batch) * max(lengths[i] for i in batch) <= BATCH_TOKENS
    assert len(cut[0]) == BATCH_TEXTS  # short texts fill a batch
    assert max(len(b) for b in cut if lengths[b[-1]] == 256) == BATCH_TOKENS // 256
    assert cut[-1] == [len(lengths) - 1]
    assert list(batches([], [])) == []
