"""A local ONNX export of a sentence-transformers model, its int8 copy and a calibration, made once.

Run as a subprocess (`python -m retrieval.onnx_export MODEL_DIR OUT_DIR`): it is the only code that
imports torch for the ONNX backends, so the server that asks for an export never does. It writes
into a temporary folder beside OUT_DIR and renames it into place, so a reader sees the whole export
or none (two processes exporting at once: the second rename loses and its copy is dropped).

What it writes:
- model.onnx: the transformer with mean pooling and L2 normalisation inside the graph (what the
  model's sentence-transformers modules do), inputs input_ids, attention_mask, token_type_ids;
- model.int8.onnx: its weights quantized to int8 per channel (dynamic quantization of MatMul only:
  quantizing more, or per tensor, measured to move vectors well past a cosine of 0.99);
- model.ov.xml and model.ov.bin, where OpenVINO is installed: model.onnx in OpenVINO's own
  format with fp16 weights (made by the calibration's first OpenVINO load; see
  onnx_embedding.openvino_ir);
- calibration.json: seconds to embed a sample of code with torch, ONNX and int8 ONNX on
  onnxruntime and (where it is installed) the graph on OpenVINO on this machine, and how each
  variant's vectors agree with torch's (cosine, min and mean).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

# Bump when the graph, the quantization or the calibration changes: caches are keyed by it.
EXPORT_VERSION = "5"  # 5: OpenVINO calibrated at f32 too, the faster precision kept
CALIBRATION_ROUNDS = 2  # each timing is the best of this many runs over the sample


def sample_texts(count: int = 48, lines: int = 30) -> list[str]:
    """Code to calibrate on: windows of this package's own source, so every install has the same."""
    here = Path(__file__).parent
    texts: list[str] = []
    for path in sorted(here.glob("*.py")):
        source = path.read_text(encoding="utf-8").splitlines()
        for start in range(0, len(source), lines * 4):
            texts.append(f"retrieval/{path.name}\n" + "\n".join(source[start : start + lines]))
    return texts[:count]


def export(model_dir: Path, out_dir: Path) -> dict:
    """Export, quantize and calibrate; returns the calibration. Imports torch (hence a subprocess)."""
    import onnx
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    st = SentenceTransformer(str(model_dir), device="cpu")
    transformer: Any = st[0].auto_model
    transformer.eval()

    class Pooled(torch.nn.Module):
        """Mean pooling over the attention mask, then L2 normalisation: the model's modules.json."""

        def __init__(self) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(self, input_ids, attention_mask, token_type_ids):
            hidden = self.transformer(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, p=2.0, dim=1)

    parent = out_dir.parent
    parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=parent))
    try:
        dummy = torch.ones(2, 8, dtype=torch.long)
        names = ["input_ids", "attention_mask", "token_type_ids"]
        with torch.no_grad():
            torch.onnx.export(
                Pooled(),
                (dummy, dummy, torch.zeros_like(dummy)),
                str(work / "model.onnx"),
                input_names=names,
                output_names=["sentence_embedding"],
                dynamic_axes={
                    **{n: {0: "batch", 1: "tokens"} for n in names},
                    "sentence_embedding": {0: "batch"},
                },
                opset_version=17,
                dynamo=False,
            )
        onnx.checker.check_model(str(work / "model.onnx"))
        quantize_dynamic(
            str(work / "model.onnx"),
            str(work / "model.int8.onnx"),
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["MatMul"],
        )
        calibration = calibrate(st, model_dir, work)
        (work / "calibration.json").write_text(json.dumps(calibration, indent=2) + "\n")
        try:
            work.rename(out_dir)
        except OSError:  # another process finished first: its export is as good as ours
            log.info("an export at %s appeared meanwhile; keeping it", out_dir)
            calibration = json.loads((out_dir / "calibration.json").read_text())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return calibration


def calibrate(st: Any, model_dir: Path, work: Path) -> dict:
    """Time torch and each variant on the same sample, side by side, and compare their vectors."""
    from .onnx_embedding import VARIANTS, OpenVinoModel, openvino_missing, runnable

    texts = sample_texts()
    st.encode(texts[:4], normalize_embeddings=True)  # warm-up: the first call pays for allocation
    torch_s, reference = _best(lambda: st.encode(texts, batch_size=32, normalize_embeddings=True))
    out: dict = {
        "export_version": EXPORT_VERSION,
        "texts": len(texts),
        "cpu_count": os.cpu_count(),
        "seconds": {"torch": round(torch_s, 3)},
        "cosine": {},
    }
    if (why_not := openvino_missing()) is not None:
        log.info("not calibrating OpenVINO: %s", why_not)
    for backend in runnable():
        file, kind = VARIANTS[backend]
        model = kind(model_dir, work / file)
        model.embed(texts[:4])
        seconds, vectors = _best(partial(model.embed, texts))
        if isinstance(model, OpenVinoModel):
            # The plugin's own choice is bf16 on a CPU with AVX512-BF16, but without AMX bf16 can be
            # slower than f32 (benchmarks/README.md): f32 timed too, the faster kept and used.
            by_precision = {model.precision: round(seconds, 3)}
            if model.precision != "f32":
                f32 = OpenVinoModel(model_dir, work / file, precision="f32")
                f32.embed(texts[:4])
                f32_seconds, f32_vectors = _best(partial(f32.embed, texts))
                by_precision["f32"] = round(f32_seconds, 3)
                if f32_seconds < seconds:
                    model, seconds, vectors = f32, f32_seconds, f32_vectors
            out["openvino_precision"] = model.precision  # what OpenVinoModel runs at from now on
            out["openvino_seconds"] = by_precision
        cosines = np.sum(np.asarray(vectors) * np.asarray(reference), axis=1)
        out["seconds"][backend] = round(seconds, 3)
        out["cosine"][backend] = {
            "min": round(float(cosines.min()), 5),
            "mean": round(float(cosines.mean()), 5),
        }
    return out


def _best(run: Callable[[], Any]) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(CALIBRATION_ROUNDS):
        t0 = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - t0)
    return best, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("out_dir", type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    t0 = time.perf_counter()
    calibration = export(args.model_dir, args.out_dir)
    log.info(
        "exported %s to %s in %.1f s: %s", args.model_dir, args.out_dir, time.perf_counter() - t0, calibration
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
