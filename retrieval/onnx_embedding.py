"""Embedding with onnxruntime or OpenVINO and the `tokenizers` library: the same model, no torch in
the process.

The ONNX files are exported once from the local model (retrieval/onnx_export.py, in a subprocess)
into the user's cache folder, $XDG_CACHE_HOME/code-kb/embeddings/, beside a calibration that says
which backend is fastest on this machine and how closely each agrees with torch. OpenVINO runs the
same graph, converted from the fp32 ONNX file into OpenVINO's own format with fp16 weights (no
optimum-intel; the plugin computes at its own inference precision, bf16 where the CPU has it):
vectors within a cosine of 0.9999 of torch's (the calibration checks), so it shares torch's
embedding cache like `onnx`.

Two kinds of work are embedded: indexing (batches of up to 32 texts) and one query per
completion. A language server leaves both runtimes out of its process where it can
(server_embedding.py: queries on NumPy, index batches in a worker process); where one runs in a
long-lived process, it keeps what the largest batch needed (onnxruntime's arena, OpenVINO's buffers
and code for each input shape), so after a large reindex the model is reopened (`compact`) and
keeps only what queries need.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .config import DEFAULT_EMBEDDING_MAX_TOKENS, INT8_SUFFIX, embedding_key
from .errors import EmbeddingModelError
from .onnx_export import EXPORT_VERSION

log = logging.getLogger(__name__)

BATCH_TEXTS = 32  # texts in one inference at most
# ... and padded tokens at most: a batch of 32 texts of 256 tokens holds attention scores of 100 MB
# (32 x 12 heads x 256 x 256 floats), which neither stays in a CPU's caches nor leaves the
# runtime's memory. Batches of at most this many tokens keep long texts four to a batch.
BATCH_TOKENS = 1024
# Texts are cut before tokenizing, at this many characters per token of the model's limit: a
# WordPiece token covers at least one character, so a cut text that still fills the limit
# tokenizes exactly as the whole text would have (the model truncates there anyway); one that
# does not is tokenized whole.
CHARS_PER_TOKEN_CUT = 12
EXPORT_TIMEOUT_S = 900
COMPACT_AFTER_TEXTS = 256


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "code-kb" / "embeddings"


def export_dir(model_dir: Path) -> Path:
    """Where the export of `model_dir` lives: keyed by the model's files and the export's version."""
    digest = hashlib.sha1(EXPORT_VERSION.encode())
    for name in ("config.json", "tokenizer.json", "modules.json", "sentence_bert_config.json"):
        path = model_dir / name
        digest.update(path.read_bytes() if path.is_file() else b"-")
    for weights in sorted(model_dir.glob("*.safetensors")) + sorted(model_dir.glob("*.bin")):
        digest.update(f"{weights.name}:{weights.stat().st_size}".encode())
    label = re.sub(
        r"[^A-Za-z0-9._-]+", "-", model_dir.name if model_dir.name != "model" else model_dir.parent.name
    )
    return cache_root() / f"{label}-{digest.hexdigest()[:12]}"


def module_types(model_dir: Path) -> list[str]:
    """The sentence-transformers modules of a model folder by class name (Transformer, Pooling,
    Normalize), from its modules.json; OSError, ValueError, KeyError or TypeError when unreadable."""
    return [m["type"].rsplit(".", 1)[-1] for m in json.loads((model_dir / "modules.json").read_text())]


def exportable(model_dir: Path) -> str | None:
    """Why this model cannot run on ONNX here, or None when it can: a sentence-transformers folder
    with a fast tokenizer whose modules are a transformer, mean pooling and normalisation."""
    # Found, not imported: a server on OpenVINO never loads onnxruntime (20 MB).
    missing = [m for m in ("onnxruntime", "tokenizers") if importlib.util.find_spec(m) is None]
    if missing:
        return f"{' and '.join(missing)} not installed; pip install onnxruntime"
    if not (model_dir / "tokenizer.json").is_file():
        return f"{model_dir} has no tokenizer.json"
    try:
        modules = module_types(model_dir)
        pooling = json.loads((model_dir / "1_Pooling" / "config.json").read_text())
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"{model_dir} is not a sentence-transformers model folder ({exc})"
    if modules != ["Transformer", "Pooling", "Normalize"] or not pooling.get("pooling_mode_mean_tokens"):
        return f"{model_dir} is not a mean-pooled, normalised sentence-transformers model ({modules})"
    return None


def ensure_export(model_dir: Path) -> Path:
    """The export folder for `model_dir`, made first (a subprocess that imports torch) when missing."""
    out = export_dir(model_dir)
    if (out / "calibration.json").is_file():
        return out
    log.info("exporting %s to ONNX and calibrating it on this machine (once; about a minute)", model_dir)
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "retrieval.onnx_export", str(model_dir), str(out)],
        capture_output=True,
        text=True,
        timeout=EXPORT_TIMEOUT_S,
        cwd=str(Path(__file__).resolve().parent.parent),
    )
    if done.returncode != 0 or not (out / "calibration.json").is_file():
        tail = " | ".join(done.stderr.strip().splitlines()[-3:])
        raise EmbeddingModelError(
            f"could not export {model_dir} to ONNX ({tail}); set embeddingBackend to torch, "
            "or install sentence-transformers with torch for the one-time export"
        )
    log.info("ONNX export of %s ready in %.1f s at %s", model_dir, time.perf_counter() - t0, out)
    return out


def read_calibration(directory: Path) -> dict[str, Any]:
    return json.loads((directory / "calibration.json").read_text())


@dataclass(frozen=True)
class Choice:
    """A backend and why it was chosen (for `code-kb status`)."""

    backend: str
    reason: str


# The fp32 graph: torch's vectors within float noise (bf16's, for openvino).
FP32_BACKENDS = ("onnx", "openvino")
CHOICES = ("onnx", "onnx-int8", "openvino")


def openvino_missing() -> str | None:
    """Why OpenVINO cannot run here, or None when it can (found, not imported: a server that
    embeds its queries with NumPy never loads it)."""
    if importlib.util.find_spec("openvino") is None:
        return "OpenVINO is not installed; pip install openvino"
    return None


def runnable() -> list[str]:
    """The backends of CHOICES this machine can run: OpenVINO only where it is installed."""
    return [b for b in CHOICES if b != "openvino" or openvino_missing() is None]


def agrees(calibration: dict[str, Any], backend: str) -> bool:
    """Whether the backend's vectors match torch's: float noise for the fp32 graph (onnx, openvino);
    for int8 a cosine above 0.99 on average over the sample and above 0.98 for every text of it."""
    cosine = calibration["cosine"].get(backend)
    if cosine is None:
        return False
    if backend in FP32_BACKENDS:
        return bool(cosine["min"] > 0.9999)
    return bool(cosine["mean"] > 0.99 and cosine["min"] > 0.98)


def choose(calibration: dict[str, Any]) -> Choice:
    """The fastest backend measured on this machine among those whose vectors agree with torch's."""
    seconds = calibration["seconds"]
    torch_s = seconds["torch"]
    runs = runnable()  # OpenVINO may have been uninstalled since the calibration
    fits = [b for b in CHOICES if b in seconds and b in runs and agrees(calibration, b)]
    best = min(fits, key=lambda b: seconds[b], default=None)
    if best is None or seconds[best] >= torch_s:
        return Choice("torch", f"no ONNX variant was both faster and close to torch here ({seconds})")
    cosine = calibration["cosine"][best]
    precision = f" ({calibration.get('openvino_precision', '?')})" if best == "openvino" else ""
    return Choice(
        best,
        f"{torch_s / seconds[best]:.1f}x torch's speed{precision} on this machine's calibration "
        f"({calibration['texts']} texts), cosine to torch {cosine['min']:.4f} min, {cosine['mean']:.4f} mean",
    )


def batches(order: list[int], lengths: list[int]) -> Iterator[list[int]]:
    """`order` (texts sorted by token count, `lengths` in that order) cut into runs of at most
    BATCH_TEXTS texts and BATCH_TOKENS padded tokens (one text at least)."""
    start = 0
    while start < len(order):
        end = start + 1
        while (
            end < len(order)
            and end - start < BATCH_TEXTS
            and (end - start + 1) * lengths[end] <= BATCH_TOKENS
        ):
            end += 1
        yield order[start:end]
        start = end


class OnnxModel:
    """One ONNX file on onnxruntime and the model's tokenizer: embeds texts in batches of similar length."""

    runtime = "onnxruntime"

    def __init__(
        self, model_dir: Path, onnx_path: Path, threads: int | None = None, max_tokens: int = 0
    ) -> None:
        from tokenizers import Tokenizer

        config = json.loads((model_dir / "sentence_bert_config.json").read_text())
        limit = int(config.get("max_seq_length", 256))  # the model's own (0: cut nothing more)
        self.max_tokens = min(limit, max_tokens) if max_tokens > 0 else limit
        self.lower = bool(config.get("do_lower_case", False))
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        # The file's own truncation (128 for MiniLM) is not what sentence-transformers uses.
        self.tokenizer.enable_truncation(self.max_tokens)
        self.tokenizer.no_padding()
        self.path = onnx_path
        self.threads = threads or max(1, os.cpu_count() or 1)
        # One inference at a time where the runtime needs it (OpenVINO's request), and the
        # runtime swapped by `compact` only between inferences.
        self._running = threading.Lock()
        self._open(onnx_path, self.threads)
        self.batched_texts = 0  # texts embedded in batches of several since the runtime was opened
        # The graph's declared output width; a graph that leaves it open is asked with one token.
        self.dim = self._output_width() or int(self._run([[101, 102]]).shape[1])

    def _open(self, onnx_path: Path, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        with self._running:
            self.session = session

    def _infer(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        return np.asarray(self.session.run(None, feed)[0], dtype=np.float32)

    def _output_width(self) -> int | None:
        width = self.session.get_outputs()[0].shape[-1]
        return width if isinstance(width, int) else None

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids per text, truncated where the model truncates; long texts are cut first."""
        cut = self.max_tokens * CHARS_PER_TOKEN_CUT
        prepared = [(t.lower() if self.lower else t)[:cut] for t in texts]
        ids = [e.ids for e in self.tokenizer.encode_batch(prepared)]
        for n, text in enumerate(texts):
            if len(text) > cut and len(ids[n]) < self.max_tokens:  # the cut fell short: tokenize all
                ids[n] = self.tokenizer.encode(text.lower() if self.lower else text).ids
        return ids

    def compact(self) -> None:
        """Reopen the runtime, dropping the memory that batches made it keep (onnxruntime's arena
        grows to the largest batch; OpenVINO keeps buffers and code per input shape), and warm it
        with a query, so that the next one does not pay for the first inference."""
        self._open(self.path, self.threads)
        self.batched_texts = 0
        self.embed(["def compact(self) -> None:"])

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if len(texts) > 1:
            self.batched_texts += len(texts)
        ids = self.tokenize(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        # Sorted by length, so a batch pads to its longest text, not to the longest of all.
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        for rows in batches(order, [len(ids[i]) for i in order]):
            out[rows] = self._run([ids[i] for i in rows])
        return out

    def _run(self, batch: list[list[int]]) -> np.ndarray:
        width = max(len(row) for row in batch)
        input_ids = np.zeros((len(batch), width), dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.int64)
        for r, row in enumerate(batch):
            input_ids[r, : len(row)] = row
            mask[r, : len(row)] = 1
        feed = {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": np.zeros_like(input_ids)}
        return self._infer(feed)


def openvino_ir(onnx_path: Path) -> Path:
    """OpenVINO's own format of the ONNX file beside it, with fp16 weights, converted once: the
    plugin reading the ONNX file keeps its fp32 weights beside its own copy (about 100 MB more for
    MiniLM). The weights' rounding to fp16 is below bf16's, the precision the plugin computes in
    where the CPU has it; the calibration measures the vectors either way."""
    xml = onnx_path.with_name(onnx_path.stem + ".ov.xml")
    if xml.is_file() and xml.with_suffix(".bin").is_file():
        return xml
    import openvino as ov

    t0 = time.perf_counter()
    # Written under a name of its own and renamed into place, .bin first: a reader finds both or
    # no .xml; two writers each write the same conversion.
    tmp = xml.with_name(f".{xml.stem}.{os.getpid()}.{threading.get_ident()}.xml")
    try:
        ov.save_model(ov.Core().read_model(str(onnx_path)), str(tmp), compress_to_fp16=True)
        os.replace(tmp.with_suffix(".bin"), xml.with_suffix(".bin"))
        os.replace(tmp, xml)
    finally:
        for left in (tmp, tmp.with_suffix(".bin")):
            left.unlink(missing_ok=True)
    log.info("converted %s for OpenVINO in %.1f s", onnx_path, time.perf_counter() - t0)
    return xml


def calibrated_precision(directory: Path) -> str | None:
    """The OpenVINO precision the calibration in `directory` kept (None: none recorded)."""
    try:
        precision = read_calibration(directory).get("openvino_precision")
    except (OSError, ValueError, AttributeError):
        return None
    return precision if isinstance(precision, str) and precision else None


class OpenVinoModel(OnnxModel):
    """The exported graph on OpenVINO's CPU plugin (its own format with fp16 weights, converted from
    the ONNX file once) at the precision the calibration found faster on this machine: the
    plugin's own choice (bf16 on a CPU that has it: about 1.8x f32's speed on one core of the CPU
    benchmarks/README.md measured first, vectors within a cosine of 0.9999 of torch's; 0.6x on an
    Intel Xeon with AVX512-BF16 and no AMX) or f32. The calibration measures the vectors'
    agreement on the machine; `auto` takes OpenVINO only where it holds."""

    runtime = "openvino"
    # The plugin keeps buffers and compiled code per input shape (a server embedding queries of
    # every length grew by 340 MB over 400 of them). Widths rounded up to a multiple of
    # WIDTH_STEP (the padding is masked: the same vectors), QUERY_WIDTH_STEP for one text alone
    # (a query: two shapes at the default 128 tokens, four at MiniLM's 256, about 2 MB each), and
    # at most SHAPES_KEPT shapes kept hold it flat.
    WIDTH_STEP = 16
    QUERY_WIDTH_STEP = 64
    SHAPES_KEPT = 64
    PRECISION: str | None = None  # INFERENCE_PRECISION_HINT ("f32", "bf16"); None: the calibration's

    def __init__(
        self,
        model_dir: Path,
        onnx_path: Path,
        threads: int | None = None,
        max_tokens: int = 0,
        precision: str | None = None,
    ) -> None:
        # Given, the class's, the calibration's beside the graph, or (none: calibrating) the plugin's.
        self.hint = precision or self.PRECISION or calibrated_precision(onnx_path.parent)
        super().__init__(model_dir, onnx_path, threads, max_tokens)

    def _open(self, onnx_path: Path, threads: int) -> None:
        import openvino as ov

        try:
            graph = openvino_ir(onnx_path)
        except (OSError, RuntimeError) as exc:  # a read-only cache folder, a full disk
            log.warning("cannot convert %s for OpenVINO (%s); reading the ONNX file", onnx_path, exc)
            graph = onnx_path
        core = ov.Core()
        config: dict[str, object] = {
            "INFERENCE_NUM_THREADS": threads,
            "PERFORMANCE_HINT": "LATENCY",
            "CPU_RUNTIME_CACHE_CAPACITY": self.SHAPES_KEPT,
        }
        if self.hint:
            config["INFERENCE_PRECISION_HINT"] = self.hint
        compiled = core.compile_model(core.read_model(str(graph)), "CPU", config)
        # One request, not safe to run from two threads at once: the index embeds a batch unlocked
        # while a completion embeds its query. A query waits for the batch (onnxruntime's session
        # allows both at once).
        with self._running:
            self.compiled = compiled
            self.precision = compiled.get_property("INFERENCE_PRECISION_HINT").to_string()
            self.inputs = [port.get_any_name() for port in compiled.inputs]
            self.request = compiled.create_infer_request()

    def _output_width(self) -> int | None:
        width = self.compiled.outputs[0].get_partial_shape()[-1]
        return width.get_length() if width.is_static else None

    def _infer(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        rows, width = feed["input_ids"].shape
        step = self.QUERY_WIDTH_STEP if rows == 1 else self.WIDTH_STEP
        padded = min(-(-width // step) * step, max(self.max_tokens, width))
        if padded > width:
            feed = {name: np.pad(array, ((0, 0), (0, padded - width))) for name, array in feed.items()}
        with self._running:
            result = self.request.infer({name: feed[name] for name in self.inputs})
            return np.array(result[self.compiled.outputs[0]], dtype=np.float32)


# What each backend of CHOICES runs: the exported file, on which runtime.
VARIANTS: dict[str, tuple[str, type[OnnxModel]]] = {
    "onnx": ("model.onnx", OnnxModel),
    "onnx-int8": ("model.int8.onnx", OnnxModel),
    "openvino": ("model.onnx", OpenVinoModel),
}


class OnnxEmbedder:
    """The Embedder on the exported graph: `onnx` (fp32 on onnxruntime) and `openvino` (the same
    graph on OpenVINO, bf16 where the CPU has it), the torch model's vectors within a cosine of
    0.9999, so they share torch's cache key; or `onnx-int8` (int8 weights on onnxruntime, vectors
    within about 0.99: its own key, `NAME+int8`); or `numpy` (the model's own fp32 weights on
    numpy_embedding's encoder, torch's key: a server's queries). Texts are cut at `max_tokens` (the
    key says so: `NAME@N`; 0: at the model's own limit)."""

    def __init__(
        self,
        name: str,
        model_dir: Path,
        quantized: bool = False,
        runtime: str = "onnxruntime",
        max_tokens: int = DEFAULT_EMBEDDING_MAX_TOKENS,
    ) -> None:
        if quantized and runtime != "onnxruntime":
            raise EmbeddingModelError("the int8 graph runs on onnxruntime only")
        if runtime not in ("onnxruntime", "openvino", "numpy"):
            raise EmbeddingModelError(f"unknown runtime {runtime!r}")
        self.model_dir = model_dir
        self.quantized = quantized
        self.runtime = runtime
        self.max_tokens = max_tokens
        key = embedding_key(name, max_tokens)
        self.name = key + INT8_SUFFIX if quantized else key
        self._model: OnnxModel | None = None
        self._lock = threading.Lock()

    @property
    def backend(self) -> str:
        """The embeddingBackend value this is (`numpy`: the server's query encoder, no setting)."""
        if self.runtime in ("openvino", "numpy"):
            return self.runtime
        return "onnx-int8" if self.quantized else "onnx"

    def load(self) -> OnnxModel:
        with self._lock:
            if self._model is None:
                t0 = time.perf_counter()
                kind: type[OnnxModel]
                if self.runtime == "numpy":  # the model's own weights: no export
                    from .numpy_embedding import NumpyModel

                    path, kind = self.model_dir / "model.safetensors", NumpyModel
                else:
                    file, kind = VARIANTS[self.backend]
                    path = ensure_export(self.model_dir) / file
                self._model = kind(self.model_dir, path, max_tokens=self.max_tokens)
                log.info(
                    "embedding model %s loaded (%s) in %.1f s",
                    self.name,
                    self.runtime,
                    time.perf_counter() - t0,
                )
        return self._model

    @property
    def dim(self) -> int:
        return self.load().dim

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        model = self.load()
        if not texts:
            return np.zeros((0, model.dim), dtype=np.float32)
        return model.embed(texts)

    def compact(self) -> None:
        """After indexing: give back what batching made the runtime keep, where it embedded at
        least COMPACT_AFTER_TEXTS texts in batches since it was opened (a reopen and its warm-up
        query take 0.15-0.35 s here, on the index thread; a few changed files leave it as it is)."""
        model = self._model
        if model is None or model.batched_texts < COMPACT_AFTER_TEXTS:
            return
        t0 = time.perf_counter()
        texts = model.batched_texts
        model.compact()
        log.info(
            "embedding runtime reopened after %d batched texts in %.1f s", texts, time.perf_counter() - t0
        )
