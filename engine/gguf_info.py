"""What a GGUF model is and whether it fits here: `code-kb model info` and `code-kb doctor`.

Reads the file's metadata and vocabulary through llama.cpp (vocabulary only: no weights are
loaded), recognises the FIM family and a next-edit model's prompt format as the engine does, and
sets the model's size and KV cache against this machine's memory.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .errors import NoFimSupportError
from .hardware import Machine, kv_cache_bytes

# llama.cpp's LLAMA_FTYPE values (general.file_type): the quantization the file was made with.
FILE_TYPES = {
    0: "F32",
    1: "F16",
    2: "Q4_0",
    3: "Q4_1",
    7: "Q8_0",
    8: "Q5_0",
    9: "Q5_1",
    10: "Q2_K",
    11: "Q3_K_S",
    12: "Q3_K_M",
    13: "Q3_K_L",
    14: "Q4_K_S",
    15: "Q4_K_M",
    16: "Q5_K_S",
    17: "Q5_K_M",
    18: "Q6_K",
    19: "IQ2_XXS",
    20: "IQ2_XS",
    21: "Q2_K_S",
    22: "IQ3_XS",
    23: "IQ3_XXS",
    24: "IQ1_S",
    25: "IQ4_NL",
    26: "IQ3_S",
    27: "IQ3_M",
    28: "IQ2_S",
    29: "IQ2_M",
    30: "IQ4_XS",
    31: "IQ1_M",
    32: "BF16",
    36: "TQ1_0",
    37: "TQ2_0",
}
KV_CONTEXTS = (8192, 16384, 32768)


@dataclass
class ModelInfo:
    path: str
    name: str
    architecture: str
    file_bytes: int
    quantization: str
    context_tokens: int | None  # trained context length
    family: str | None  # FIM template name; None: no FIM tokens
    fim_tokens: dict[str, str]
    repo_layout: bool  # the family's repository-level tokens (<|repo_name|>, <|file_sep|>) are present
    n_layer: int | None
    kv_bytes: dict[str, dict[int, int | None]] = field(default_factory=dict)  # cache type -> n_ctx -> bytes
    fits: dict[str, str] = field(default_factory=dict)  # "ram"/"vram" -> verdict at the default budget
    problem: str | None = None  # why it cannot complete code (no FIM tokens)
    next_edit: str | None = (
        None  # the next-edit prompt format it was trained on (engine/next_edit); None: none
    )
    fim_order: str | None = None  # psm or spm (suffix first), the family's
    cache_reuse: dict = field(default_factory=dict)  # engine/cache_reuse.py's verdict
    budget_tokens: int = 0  # the default budget it gets here (a quarter for a cache that is not reused)
    instruct: str | None = (
        None  # why it looks like an instruct/chat model (instruct_warning); None: a base model
    )

    def to_dict(self) -> dict:
        out = dict(self.__dict__)
        out["kv_bytes"] = {t: {str(n): b for n, b in by.items()} for t, by in self.kv_bytes.items()}
        return out


def _n_layer(metadata: dict[str, str]) -> int | None:
    try:
        return int(metadata[f"{metadata.get('general.architecture')}.block_count"])
    except (KeyError, ValueError):
        return None


def model_info(path: str | Path, machine: Machine, budget_tokens: int | None = None) -> ModelInfo:
    """Describe a GGUF; raises ModelNotFoundError / ModelLoadError when llama.cpp cannot read it."""
    from .backends.llama_cpp import LlamaCppModel
    from .completer import NO_REUSE_BUDGET_DIVISOR
    from .config import DEFAULT_BUDGET_CPU_TOKENS, DEFAULT_BUDGET_GPU_TOKENS
    from .next_edit import detect_next_edit_format
    from .templates import detect_template

    vocab = LlamaCppModel(path, vocab_only=True)
    meta = vocab.metadata
    try:
        quant = FILE_TYPES.get(int(meta.get("general.file_type", "")), f"type {meta['general.file_type']}")
    except (KeyError, ValueError):
        quant = "unknown"
    family, fim, layout, problem, order = None, {}, False, None, None
    try:
        template = detect_template(vocab, Path(path).name)
        family, layout, order = template.name, template.has_repo_layout, template.order
        fim = {
            f: getattr(template, f)
            for f in ("prefix", "suffix", "middle", "repo_name", "file_sep")
            if getattr(template, f)
        }
    except NoFimSupportError as exc:
        problem = str(exc)
    next_edit = detect_next_edit_format(vocab)
    info = ModelInfo(
        str(vocab.path),
        vocab.name,
        vocab.architecture,
        Path(vocab.path).stat().st_size,
        quant,
        vocab.n_ctx_train,
        family,
        fim,
        layout,
        _n_layer(meta),
        problem=problem,
        next_edit=next_edit.name if next_edit is not None else None,
        fim_order=order,
        cache_reuse=vocab.cache.to_dict(),
        instruct=instruct_warning(meta, Path(path).name),
    )
    for cache_type in ("f16", "q8_0"):
        info.kv_bytes[cache_type] = {n: kv_cache_bytes(meta, n, cache_type) for n in KV_CONTEXTS}
    on_gpu = machine.gpu_offload and machine.vram_bytes is not None
    budget = budget_tokens or (DEFAULT_BUDGET_GPU_TOKENS if on_gpu else DEFAULT_BUDGET_CPU_TOKENS)
    if not budget_tokens and not vocab.cache.reusable:
        budget //= NO_REUSE_BUDGET_DIVISOR  # as completer.auto_budget
    if info.context_tokens:
        budget = min(budget, info.context_tokens)
    info.budget_tokens = budget
    kv = kv_cache_bytes(meta, budget, "f16") or 0
    need = info.file_bytes + kv
    info.fits["ram"] = _verdict(need, machine.ram_bytes, budget)
    if on_gpu:
        info.fits["vram"] = _verdict(need, machine.vram_bytes, budget)
    return info


def _verdict(need: int, have: int | None, budget: int) -> str:
    gib = 1 << 30
    if have is None:
        return "unknown (the platform does not report its memory)"
    what = f"{need / gib:.2f} GiB (weights and a {budget}-token f16 KV cache) of {have / gib:.1f} GiB"
    if need <= have * 0.75:
        return f"yes: {what}"
    if need <= have:
        return f"tight: {what}"
    return f"no: {what}"


def vocab_fim_check(path: str | Path) -> str:
    """The FIM family of a model, for doctor; raises NoFimSupportError / ModelLoadError."""
    from .backends.llama_cpp import LlamaCppModel
    from .templates import detect_template

    return detect_template(LlamaCppModel(path, vocab_only=True), Path(path).name).name


# An instruct or chat fine-tune, by name: "instruct", "chat", or "it" as a word (Gemma's "-it").
_INSTRUCT_NAME = re.compile(r"instruct|chat|(?:^|[-_. ])it(?:$|[-_. ])", re.I)
# Instruct models documented as FIM-trained: Qwen3-Coder ("FIM is supported in every version of
# Qwen3-Coder", QwenLM/Qwen3-Coder's README); its only 30B-A3B release is the instruct one.
FIM_TRAINED_INSTRUCT = ("qwen3-coder",)


def instruct_warning(metadata: Mapping[str, object], file_name: str = "") -> str | None:
    """Why a GGUF looks like an instruct/chat model rather than a FIM-trained base model (a chat
    template in `tokenizer.chat_template` and an instruct-like name), or None."""
    name = f"{metadata.get('general.name', '')} {file_name}"
    if not metadata.get("tokenizer.chat_template") or not _INSTRUCT_NAME.search(name):
        return None
    if any(known in name.lower() for known in FIM_TRAINED_INSTRUCT):
        return None
    return (
        f"{str(metadata.get('general.name') or file_name).strip()} has a chat template and an instruct/chat "
        "name: chat fine-tunes often answer a fill-in-the-middle prompt with prose or a repeat of the "
        "prefix; use the base model"
    )
