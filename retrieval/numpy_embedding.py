"""A BERT sentence encoder's forward pass in NumPy, for the queries a server embeds.

A completion embeds one query (the lines above the cursor, at most the embedding cut of 128
tokens). The fast runtimes that index (OpenVINO, onnxruntime, torch) cost a server far more memory
than that needs: their libraries, a second copy of the weights in their own layout, buffers per
input shape. This runs the same model from its own `model.safetensors`, memory-mapped: the layer
weights (fp32, about 42 MB for MiniLM-L6) and only the rows of the word-embedding table that
queries touch stay resident, with NumPy, which the index loads anyway. In fp32 throughout, its
vectors agree with torch's to rounding (cosine 0.99999 and better; tests assert it), so they share
torch's cache key. Slower than OpenVINO (`benchmarks/embedding_speed.py --queries` measures both),
which a query of a few lines can spend.

Only what sentence-transformers' BERT models need: post-norm encoder layers, absolute positions,
exact GELU, mean or CLS pooling, optional normalisation. `unsupported` says why any other model
cannot run here (it then runs on the chosen runtime as before).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np

from .onnx_embedding import OnnxModel, module_types

_DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64}
_F = np.float32
# erf, Abramowitz and Stegun 7.1.26: absolute error below 1.5e-7, fp32's own rounding.
_A = (_F(0.254829592), _F(-0.284496736), _F(1.421413741), _F(-1.453152027), _F(1.061405429))
_P = _F(0.3275911)


def _json(path: Path) -> Any:
    return json.loads(path.read_text())


def unsupported(model_dir: Path) -> str | None:
    """Why this model cannot run on the NumPy encoder, or None when it can."""
    try:
        config = _json(model_dir / "config.json")
        modules = module_types(model_dir)
        pooling = _json(model_dir / "1_Pooling" / "config.json")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"{model_dir} is not a sentence-transformers model folder ({exc})"
    # What OnnxModel's tokenizing reads, as on ONNX (onnx_embedding.exportable), and the weights.
    for needed in ("tokenizer.json", "sentence_bert_config.json", "model.safetensors"):
        if not (model_dir / needed).is_file():
            return f"{model_dir} has no {needed}"
    if config.get("model_type") != "bert":
        return f"a {config.get('model_type')!r} model, not BERT"
    if config.get("hidden_act", "gelu") != "gelu":
        return f"activation {config.get('hidden_act')!r}, not exact GELU"
    if config.get("position_embedding_type", "absolute") != "absolute":
        return f"position embeddings {config.get('position_embedding_type')!r}, not absolute"
    if modules not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
        return f"modules {modules}, not a transformer, pooling and normalisation"
    modes = [k for k, v in pooling.items() if k.startswith("pooling_mode_") and v]
    if modes not in (["pooling_mode_mean_tokens"], ["pooling_mode_cls_token"]):
        return f"pooling {modes}, not mean or CLS alone"
    return None


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """The file's tensors as read-only arrays over one memory map (fp32 and int64 tensors are views
    of the file, so only the pages used stay resident; fp16 ones are copied to fp32)."""
    with open(path, "rb") as fh:
        (size,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(size))
    data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + size)
    out: dict[str, np.ndarray] = {}
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        dtype = _DTYPES.get(spec["dtype"])
        if dtype is None:
            raise ValueError(f"{path}: tensor {name} is {spec['dtype']}, which NumPy cannot read")
        start, end = spec["data_offsets"]
        array = data[start:end].view(dtype).reshape(spec["shape"])
        out[name] = array.astype(_F) if dtype is np.float16 else array
    return out


def gelu_(x: np.ndarray, t: np.ndarray, e: np.ndarray, p: np.ndarray) -> np.ndarray:
    """x * Phi(x) into x, with erf to fp32 precision; t, e and p are scratch arrays of x's shape."""
    np.abs(x, out=t)
    t *= _F(0.7071067811865476)  # z = |x| / sqrt 2
    # erf(4) is 1 in fp32; past it exp(-z^2) would reach subnormals, which are slow to compute with.
    np.minimum(t, _F(4), out=t)
    np.square(t, out=e)
    np.negative(e, out=e)
    np.exp(e, out=e)
    t *= _P
    t += _F(1)
    np.reciprocal(t, out=t)  # t = 1 / (1 + P z)
    a1, a2, a3, a4, a5 = _A
    np.multiply(t, a5, out=p)
    for a in (a4, a3, a2, a1):
        p += a
        p *= t
    p *= e
    np.subtract(_F(1), p, out=p)  # erf(z)
    np.copysign(p, x, out=p)
    p += _F(1)
    x *= p
    x *= _F(0.5)
    return x


def gelu(x: np.ndarray) -> np.ndarray:
    """x * Phi(x) as a new array (x is kept)."""
    out = x.astype(_F, copy=True)
    return gelu_(out, np.empty_like(out), np.empty_like(out), np.empty_like(out))


def layer_norm_(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float, scratch: np.ndarray) -> None:
    """Layer normalisation of x's last axis, in place; scratch is an array of x's shape."""
    x -= x.mean(-1, keepdims=True)
    np.square(x, out=scratch)
    x /= np.sqrt(scratch.mean(-1, keepdims=True) + _F(eps))
    x *= weight
    x += bias


class BertWeights:
    """A BERT checkpoint's tensors by the names of Hugging Face's BertModel, any prefix dropped."""

    def __init__(self, model_dir: Path) -> None:
        config = _json(model_dir / "config.json")
        tensors = read_safetensors(model_dir / "model.safetensors")
        anchor = "embeddings.word_embeddings.weight"
        prefix = next((n[: -len(anchor)] for n in tensors if n.endswith(anchor)), None)
        if prefix is None:
            raise ValueError(f"{model_dir}/model.safetensors holds no {anchor}")
        self.tensors = {n[len(prefix) :]: t for n, t in tensors.items() if n.startswith(prefix)}
        self.layers = int(config["num_hidden_layers"])
        self.heads = int(config["num_attention_heads"])
        self.hidden = int(config["hidden_size"])
        self.eps = float(config.get("layer_norm_eps", 1e-12))
        self.positions = int(config.get("max_position_embeddings", 512))
        pooling = _json(model_dir / "1_Pooling" / "config.json")
        self.cls = bool(pooling.get("pooling_mode_cls_token"))
        self.normalize = module_types(model_dir)[-1] == "Normalize"
        missing = [n for n in self.names() if n not in self.tensors]
        if missing:
            raise ValueError(f"{model_dir}/model.safetensors lacks {', '.join(missing[:3])}")

    def names(self) -> list[str]:
        out = [
            "embeddings.word_embeddings.weight",
            "embeddings.position_embeddings.weight",
            "embeddings.token_type_embeddings.weight",
            "embeddings.LayerNorm.weight",
            "embeddings.LayerNorm.bias",
        ]
        for i in range(self.layers):
            for part in (
                "attention.self.query",
                "attention.self.key",
                "attention.self.value",
                "attention.output.dense",
                "attention.output.LayerNorm",
                "intermediate.dense",
                "output.dense",
                "output.LayerNorm",
            ):
                out += [f"encoder.layer.{i}.{part}.weight", f"encoder.layer.{i}.{part}.bias"]
        return out

    def linear(self, x: np.ndarray, name: str, out: np.ndarray) -> np.ndarray:
        """x @ W.T + b into out (W as stored, out x in: the transpose is BLAS's, no copy)."""
        np.matmul(x, self.tensors[name + ".weight"].T, out=out)
        out += self.tensors[name + ".bias"]
        return out

    def encode(self, ids: np.ndarray, mask: np.ndarray, types: np.ndarray) -> np.ndarray:
        """Sentence vectors (rows, hidden) for token ids (rows, width) and their attention mask.

        Every layer reuses the arrays allocated here: an allocation per operation made glibc map
        and unmap fresh pages each time, and their page faults showed in a query's time."""
        rows, width = ids.shape
        if width > self.positions:
            raise ValueError(f"{width} tokens, more than the model's {self.positions} positions")
        w = self.tensors
        n, hidden, heads = rows * width, self.hidden, self.heads
        size = hidden // heads
        inner = w["encoder.layer.0.intermediate.dense.weight"].shape[0]
        x = w["embeddings.word_embeddings.weight"][ids.reshape(-1)]  # a new (n, hidden) array
        x += np.tile(w["embeddings.position_embeddings.weight"][:width], (rows, 1))
        x += w["embeddings.token_type_embeddings.weight"][types.reshape(-1)]
        q, k, v, context, scratch = (np.empty((n, hidden), _F) for _ in range(5))
        h, t, e, p = (np.empty((n, inner), _F) for _ in range(4))
        scores = np.empty((rows, heads, width, width), _F)
        attended = np.empty((rows, heads, width, size), _F)
        layer_norm_(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], self.eps, scratch)
        # Padding takes no attention: fp32's lowest score before the softmax.
        masked = (1 - mask[:, None, None, :].astype(_F)) * np.finfo(_F).min
        scale = _F(1 / np.sqrt(size))
        by_head = (rows, width, heads, size)
        for i in range(self.layers):
            at = f"encoder.layer.{i}."
            self.linear(x, at + "attention.self.query", q)
            self.linear(x, at + "attention.self.key", k)
            self.linear(x, at + "attention.self.value", v)
            np.matmul(
                q.reshape(by_head).transpose(0, 2, 1, 3), k.reshape(by_head).transpose(0, 2, 3, 1), out=scores
            )
            scores *= scale
            scores += masked
            scores -= scores.max(-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(-1, keepdims=True)
            np.matmul(scores, v.reshape(by_head).transpose(0, 2, 1, 3), out=attended)
            context.reshape(by_head)[...] = attended.transpose(0, 2, 1, 3)
            x += self.linear(context, at + "attention.output.dense", scratch)
            layer_norm_(
                x,
                w[at + "attention.output.LayerNorm.weight"],
                w[at + "attention.output.LayerNorm.bias"],
                self.eps,
                scratch,
            )
            gelu_(self.linear(x, at + "intermediate.dense", h), t, e, p)
            x += self.linear(h, at + "output.dense", scratch)
            layer_norm_(
                x, w[at + "output.LayerNorm.weight"], w[at + "output.LayerNorm.bias"], self.eps, scratch
            )
        states = x.reshape(rows, width, hidden)
        if self.cls:
            pooled = states[:, 0].copy()
        else:
            weights = mask[:, :, None].astype(_F)
            pooled = (states * weights).sum(1) / np.maximum(weights.sum(1), _F(1e-9))
        if self.normalize:
            pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), _F(1e-12))
        return np.ascontiguousarray(pooled, dtype=_F)


class NumpyModel(OnnxModel):
    """OnnxModel's tokenizing, cutting and batching over the NumPy forward pass (`path` is the
    model's safetensors file; threads are NumPy's BLAS's own)."""

    runtime = "numpy"

    def _open(self, onnx_path: Path, threads: int) -> None:
        weights = BertWeights(onnx_path.parent)
        with self._running:
            self.weights = weights

    def _output_width(self) -> int | None:
        return self.weights.hidden

    def _infer(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        # Stateless over read-only weights: a query and an index batch may run at once.
        return self.weights.encode(feed["input_ids"], feed["attention_mask"], feed["token_type_ids"])

    def compact(self) -> None:
        """Nothing kept between inferences: nothing to give back."""
        self.batched_texts = 0
