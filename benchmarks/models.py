"""Shape-alike Qwen2.5-Coder models for speed benchmarks: real shapes and tokenizer, random weights.

    python benchmarks/models.py [0.5b|1.5b] [--quant Q8_0] [--name sweep-next-edit-1.5B] [--vocab seed-coder]

Prints the path of a Q4_K_M GGUF (or `--quant Q8_0`) with exactly the shape of Qwen2.5-Coder-0.5B
or -1.5B (qwen2 architecture, the numbers below) and the real Qwen2.5-Coder tokenizer, built once
and cached under benchmarks/.cache/models/. `--name` sets the GGUF's name (and the file's), for a
shape-alike of a fine-tune such as Sweep's next-edit models (Qwen2.5-Coder's shape and vocabulary,
Q8_0), which code-kb recognises by that name. `--vocab seed-coder` gives it tests/fixtures/vocabs.py's
Seed-Coder layout instead (Qwen2's BPE with Seed-Coder's special tokens, same 151,936 ids), so that
code-kb lays its prompts out suffix first, as for Seed-Coder.

llama.cpp's speed depends on the shapes and the quantization types, not on the weights' values,
so these time like the real models without a download of their weights; what they generate is
noise.

The shapes are those of Qwen's published config.json files (Qwen/Qwen2.5-Coder-0.5B and -1.5B:
hidden_size, num_hidden_layers, num_attention_heads, num_key_value_heads, intermediate_size,
vocab_size, max_position_embeddings, rope_theta, rms_norm_eps, tie_word_embeddings). Weights are
written in F16 (norms and biases F32, as convert_hf_to_gguf.py does) to a temporary file, then
quantized (Q4_K_M, or Q8_0) with llama.cpp's own quantizer through llama-cpp-python, so every
tensor gets the type llama-quantize gives the real model; the F16 file is deleted afterwards.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CACHE = ROOT / "benchmarks" / ".cache"
MODELS = CACHE / "models"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Shape:
    """A qwen2 model's hyperparameters, as named in its config.json."""

    name: str
    n_layer: int  # num_hidden_layers
    n_embd: int  # hidden_size
    n_head: int  # num_attention_heads
    n_head_kv: int  # num_key_value_heads
    n_ff: int  # intermediate_size
    n_vocab: int = 151936  # vocab_size (the token list is padded to it)
    context_length: int = 32768  # max_position_embeddings
    rope_theta: float = 1_000_000.0
    rms_norm_eps: float = 1e-6
    tied_embeddings: bool = True  # tie_word_embeddings: no output.weight, token_embd serves both


SHAPES = {
    "0.5b": Shape("Qwen2.5-Coder-0.5B", n_layer=24, n_embd=896, n_head=14, n_head_kv=2, n_ff=4864),
    "1.5b": Shape("Qwen2.5-Coder-1.5B", n_layer=28, n_embd=1536, n_head=12, n_head_kv=2, n_ff=8960),
}


# Vocabularies with Qwen2's 151,936 ids (tests/fixtures/vocabs.py), which the shapes' embeddings fit.
VOCABS = ("qwen2.5-coder", "seed-coder")


def qwen25_coder_vocab(vocab: str = "qwen2.5-coder") -> Path:
    """The real Qwen2.5-Coder tokenizer (vocab-only GGUF), or another of VOCABS, cached under benchmarks/.cache/."""
    try:
        from tests.fixtures.vocabs import family_vocab
    except ImportError:  # before tests/fixtures/vocabs.py existed
        from benchmarks.retrieval_quality import qwen25_coder_vocab as build

        return build()
    return family_vocab(vocab, CACHE)


QUANTS = {"Q4_K_M": "LLAMA_FTYPE_MOSTLY_Q4_K_M", "Q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0"}


def model_path(
    size: str, quant: str = "Q4_K_M", name: str | None = None, vocab: str = "qwen2.5-coder"
) -> Path:
    """The cached model of a shape (`0.5b` or `1.5b`) at a quantization (Q4_K_M or Q8_0), named
    `name` (default: the Qwen2.5-Coder model of that shape), with a vocabulary of VOCABS, built first
    if missing."""
    shape = SHAPES[size]
    quant = quant.upper()
    if quant not in QUANTS:
        raise ValueError(f"quantization {quant}: one of {', '.join(QUANTS)}")
    if vocab not in VOCABS:
        raise ValueError(f"vocabulary {vocab}: one of {', '.join(VOCABS)}")
    tail = "" if vocab == "qwen2.5-coder" else f"-{vocab}-vocab"
    out = MODELS / f"{(name or shape.name).lower()}-shape-random-{quant.lower()}{tail}.gguf"
    if not out.is_file():
        MODELS.mkdir(parents=True, exist_ok=True)
        f16 = out.with_name(out.name + f".{os.getpid()}.f16.tmp")
        part = out.with_name(out.name + f".{os.getpid()}.part")
        try:
            t0 = time.perf_counter()
            write_f16(shape, qwen25_coder_vocab(vocab), f16, name=name)
            log.info(
                "wrote %s (%.0f MB) in %.0f s", f16.name, f16.stat().st_size / 1e6, time.perf_counter() - t0
            )
            t0 = time.perf_counter()
            quantize(f16, part, quant)
            log.info(
                "quantized to %s (%.0f MB) in %.0f s",
                quant,
                part.stat().st_size / 1e6,
                time.perf_counter() - t0,
            )
            os.replace(part, out)  # an interrupted build leaves no half model under the final name
        finally:
            f16.unlink(missing_ok=True)
            part.unlink(missing_ok=True)
    return out


def write_f16(shape: Shape, vocab: Path, path: Path, seed: int = 0, name: str | None = None) -> Path:
    """A complete qwen2 GGUF: the vocabulary GGUF's tokenizer, `shape`'s hyperparameters, random weights,
    named `name` (default: the shape's Qwen2.5-Coder name).

    Weights are normal * 0.02 (the models' initializer_range) and norms 1, so activations stay
    finite through every layer; biases are 0.
    """
    import gguf

    reader = gguf.GGUFReader(str(vocab))
    tokens = list(reader.fields["tokenizer.ggml.tokens"].contents())
    if len(tokens) != shape.n_vocab:
        raise ValueError(f"{vocab} has {len(tokens)} tokens; {shape.name} has {shape.n_vocab}")

    def value(key: str):
        return reader.fields[key].contents()

    writer = gguf.GGUFWriter(str(path), "qwen2")
    writer.add_name(f"{name or shape.name} shape (random weights)")
    writer.add_context_length(shape.context_length)
    writer.add_embedding_length(shape.n_embd)
    writer.add_block_count(shape.n_layer)
    writer.add_feed_forward_length(shape.n_ff)
    writer.add_head_count(shape.n_head)
    writer.add_head_count_kv(shape.n_head_kv)
    writer.add_layer_norm_rms_eps(shape.rms_norm_eps)
    writer.add_rope_freq_base(shape.rope_theta)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    writer.add_tokenizer_model(value("tokenizer.ggml.model"))
    writer.add_tokenizer_pre(value("tokenizer.ggml.pre"))
    writer.add_token_list(tokens)
    writer.add_token_types([int(t) for t in value("tokenizer.ggml.token_type")])
    writer.add_token_merges(list(value("tokenizer.ggml.merges")))
    writer.add_eos_token_id(int(value("tokenizer.ggml.eos_token_id")))
    writer.add_bos_token_id(int(value("tokenizer.ggml.bos_token_id")))
    writer.add_pad_token_id(int(value("tokenizer.ggml.padding_token_id")))
    writer.add_add_bos_token(False)

    rng = np.random.default_rng(seed)

    def weight(rows: int, cols: int) -> np.ndarray:
        # numpy shapes are (rows, cols) = ggml's ne reversed: (out features, in features)
        return (rng.standard_normal((rows, cols), dtype=np.float32) * 0.02).astype(np.float16)

    head_dim = shape.n_embd // shape.n_head
    q, kv = shape.n_head * head_dim, shape.n_head_kv * head_dim
    writer.add_tensor("token_embd.weight", weight(shape.n_vocab, shape.n_embd))
    for i in range(shape.n_layer):
        p = f"blk.{i}."
        writer.add_tensor(p + "attn_norm.weight", np.ones(shape.n_embd, np.float32))
        writer.add_tensor(p + "attn_q.weight", weight(q, shape.n_embd))
        writer.add_tensor(p + "attn_q.bias", np.zeros(q, np.float32))
        writer.add_tensor(p + "attn_k.weight", weight(kv, shape.n_embd))
        writer.add_tensor(p + "attn_k.bias", np.zeros(kv, np.float32))
        writer.add_tensor(p + "attn_v.weight", weight(kv, shape.n_embd))
        writer.add_tensor(p + "attn_v.bias", np.zeros(kv, np.float32))
        writer.add_tensor(p + "attn_output.weight", weight(shape.n_embd, q))
        writer.add_tensor(p + "ffn_norm.weight", np.ones(shape.n_embd, np.float32))
        writer.add_tensor(p + "ffn_gate.weight", weight(shape.n_ff, shape.n_embd))
        writer.add_tensor(p + "ffn_up.weight", weight(shape.n_ff, shape.n_embd))
        writer.add_tensor(p + "ffn_down.weight", weight(shape.n_embd, shape.n_ff))
    writer.add_tensor("output_norm.weight", np.ones(shape.n_embd, np.float32))
    if not shape.tied_embeddings:
        writer.add_tensor("output.weight", weight(shape.n_vocab, shape.n_embd))

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def quantize_q4_k_m(src: Path, dst: Path) -> Path:
    """llama.cpp's quantizer (what llama-quantize runs), to Q4_K_M."""
    return quantize(src, dst, "Q4_K_M")


def quantize(src: Path, dst: Path, quant: str) -> Path:
    """llama.cpp's quantizer (what llama-quantize runs), to `quant` (a key of QUANTS)."""
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, QUANTS[quant])
    params.nthread = os.cpu_count() or 1
    status = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(params))
    if status != 0:
        raise RuntimeError(f"llama_model_quantize({src}) failed with status {status}")
    return dst


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python benchmarks/models.py")
    parser.add_argument("size", nargs="?", default="0.5b", choices=sorted(SHAPES))
    parser.add_argument("--quant", default="Q4_K_M", choices=sorted(QUANTS), type=str.upper)
    parser.add_argument("--name", help="the GGUF's name (default: the Qwen2.5-Coder model of that shape)")
    parser.add_argument(
        "--vocab", choices=VOCABS, default="qwen2.5-coder", help="its vocabulary (FIM family)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    print(model_path(args.size, args.quant, args.name, args.vocab))
    return 0


if __name__ == "__main__":
    sys.exit(main())
