"""Fill-in-the-middle prompt formats per model family, recognised from the GGUF's FIM metadata and
the model's own vocabulary.

Each family's tokens and order are those of its published tokenizer configuration and model card
(README.md, "FIM formats", says which and how each was checked). Where two families spell their FIM
tokens alike, other evidence tells them apart (`FimTemplate.marks`, `.architectures`, `.names`):

- `<|fim_prefix|>`: CodeGemma has `<|file_separator|>`; Granite 3/4 has its role tokens
  (`<|start_of_role|>`) or a `granite*` architecture; anything else is Qwen2.5-Coder / Qwen3-Coder.
- `<fim_prefix>`: Mellum has its role tokens (`<system>`, `<assistant>`), a `mellum` architecture,
  pre-tokenizer (`tokenizer.ggml.pre`, as llama.cpp's converter names it) or name; else StarCoder2
  (`<repo_name>`/`<file_sep>`) or StarCoder (`<reponame>`/`<filename>`, also IBM's Granite code
  models, which ship StarCoder's tokenizer).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Literal, Protocol

from .errors import NoFimSupportError

log = logging.getLogger(__name__)

# psm: prefix, suffix, middle (the prefix's end meets the generated middle); spm: suffix first, then
# the prefix, whose end still meets the middle. A family is laid out in the order it was trained on.
FimOrder = Literal["psm", "spm"]


@dataclass(frozen=True)
class FimTemplate:
    name: str
    prefix: str
    suffix: str
    middle: str  # "" where the model generates the middle right after the prefix (Codestral)
    repo_name: str | None = None  # repository-level layout tokens, where the family has them
    file_sep: str | None = None  # starts a file's header line (its path) in a repository-level prompt
    stops: tuple[str, ...] = ()  # special tokens that end a completion besides the model's EOG set
    order: FimOrder = "psm"
    # What tells this family apart from another with the same FIM tokens: any one of these tokens in
    # the vocabulary, `general.architecture` among `architectures`, or one of `names` in
    # `general.name` or `tokenizer.ggml.pre` (lowercase). A family with none of them needs no proof.
    marks: tuple[str, ...] = ()
    architectures: tuple[str, ...] = ()
    names: tuple[str, ...] = ()

    @property
    def has_repo_layout(self) -> bool:
        """Other files get a header of the family's own file token (and the repository name its
        token, where the family has one) instead of a comment line."""
        return self.file_sep is not None

    @property
    def needs_proof(self) -> bool:
        return bool(self.marks or self.architectures or self.names)

    def specials(self) -> tuple[str, ...]:
        return tuple(t for t in (self.prefix, self.suffix, self.middle, self.repo_name, self.file_sep) if t)


QWEN = FimTemplate(
    "qwen2.5-coder",
    "<|fim_prefix|>",
    "<|fim_suffix|>",
    "<|fim_middle|>",
    "<|repo_name|>",
    "<|file_sep|>",
    ("<|endoftext|>", "<|fim_pad|>", "<|im_end|>"),
)
STARCODER2 = FimTemplate(
    "starcoder2",
    "<fim_prefix>",
    "<fim_suffix>",
    "<fim_middle>",
    "<repo_name>",
    "<file_sep>",
    ("<|endoftext|>", "<fim_pad>"),
)
STARCODER = FimTemplate(
    "starcoder",
    "<fim_prefix>",
    "<fim_suffix>",
    "<fim_middle>",
    "<reponame>",
    "<filename>",
    ("<|endoftext|>", "<fim_pad>"),
)
DEEPSEEK = FimTemplate(
    "deepseek-coder",
    "<｜fim▁begin｜>",
    "<｜fim▁hole｜>",
    "<｜fim▁end｜>",
    None,
    None,
    ("<|EOT|>", "<｜end▁of▁sentence｜>"),
)
CODELLAMA = FimTemplate("codellama", "▁<PRE>", "▁<SUF>", "▁<MID>", None, None, ("▁<EOT>",))
# ByteDance-Seed/Seed-Coder-8B-Base: trained suffix first (technical report, section 2.2.6:
# <[fim-suffix]>SUFFIX<[fim-prefix]>PREFIX<[fim-middle]>MIDDLE); no repository tokens.
SEED_CODER = FimTemplate(
    "seed-coder",
    "<[fim-prefix]>",
    "<[fim-suffix]>",
    "<[fim-middle]>",
    None,
    None,
    ("<[end▁of▁sentence]>",),
    order="spm",
)
# JetBrains/Mellum-4b-base: the model card's prompts are suffix first, other files before them as
# `<filename>PATH\n` + text, the current file's `<filename>PATH\n` just before <fim_suffix>.
MELLUM = FimTemplate(
    "mellum",
    "<fim_prefix>",
    "<fim_suffix>",
    "<fim_middle>",
    None,
    "<filename>",
    ("<|endoftext|>", "<fim_pad>"),
    order="spm",
    marks=("<system>", "<assistant>"),
    architectures=("mellum",),
    names=("mellum",),
)
# mistralai/Codestral-22B-v0.1 (tokenizer V3): mistral-common encodes FIM as
# <s>[SUFFIX]suffix[PREFIX]prefix and the model writes the middle after the prefix: no middle token.
CODESTRAL = FimTemplate("codestral", "[PREFIX]", "[SUFFIX]", "", None, None, ("</s>",), order="spm")
# google/codegemma: <|fim_prefix|> 67, <|fim_middle|> 68, <|fim_suffix|> 69, <|file_separator|> 70
# (llama.cpp's Gemma converter writes these ids); a completion ends at <|file_separator|>.
CODEGEMMA = FimTemplate(
    "codegemma",
    "<|fim_prefix|>",
    "<|fim_suffix|>",
    "<|fim_middle|>",
    None,
    None,
    ("<|file_separator|>", "<end_of_turn>", "<eos>"),
    marks=("<|file_separator|>",),
    architectures=("gemma",),
)
# ibm-granite Granite 3.x/4.x: <|fim_prefix|> ... <|fim_suffix|> ... <|fim_middle|> (IBM's Granite
# 4.0 prompt engineering guide); a message, and so a completion, ends with <|end_of_text|>.
GRANITE = FimTemplate(
    "granite",
    "<|fim_prefix|>",
    "<|fim_suffix|>",
    "<|fim_middle|>",
    None,
    None,
    ("<|end_of_text|>",),
    marks=("<|start_of_role|>",),
    architectures=("granite", "granitemoe", "granitehybrid"),
    names=("granite",),
)

# Detection order: a family that needs proof comes before the one it would otherwise be taken for.
FAMILIES = (
    CODEGEMMA,
    GRANITE,
    QWEN,
    MELLUM,
    STARCODER2,
    STARCODER,
    DEEPSEEK,
    CODELLAMA,
    SEED_CODER,
    CODESTRAL,
)


class Vocabulary(Protocol):
    def special_id(self, text: str) -> int | None: ...

    # Optionally also `metadata: Mapping[str, str]`, the GGUF's key/value pairs (LlamaCppModel has it).


# GGUF keys that name FIM token ids, by template field, as llama.cpp reads them: the current key
# first, then the deprecated one (convert_hf_to_gguf.py wrote those for CodeLlama and CodeGemma in
# 2024). Most code GGUFs carry none: llama.cpp, like the vocabulary probe below, goes by token text.
FIM_ID_KEYS: dict[str, tuple[str, ...]] = {
    "prefix": ("tokenizer.ggml.fim_pre_token_id", "tokenizer.ggml.prefix_token_id"),
    "suffix": ("tokenizer.ggml.fim_suf_token_id", "tokenizer.ggml.suffix_token_id"),
    "middle": ("tokenizer.ggml.fim_mid_token_id", "tokenizer.ggml.middle_token_id"),
    "repo_name": ("tokenizer.ggml.fim_rep_token_id",),
    "file_sep": ("tokenizer.ggml.fim_sep_token_id",),
}
_MARKERS = ("prefix", "suffix", "middle")


def metadata_fim_ids(metadata: Mapping[str, object]) -> dict[str, int]:
    """The FIM token ids a GGUF's metadata names, by template field (`prefix`, ..., `file_sep`)."""
    ids: dict[str, int] = {}
    for field, keys in FIM_ID_KEYS.items():
        for key in keys:
            try:
                token = int(str(metadata[key]))
            except (KeyError, ValueError):
                continue
            if token >= 0:  # llama.cpp takes -1 for "none"
                ids[field] = token
                break
    return ids


def _fits(vocab: Vocabulary, family: FimTemplate, fields: tuple[str, ...], ids: Mapping[str, int]) -> bool:
    """Each of the family's `fields` (those it has) is one token of the vocabulary, the one `ids`
    names where it names one."""
    for field in fields:
        text = getattr(family, field)
        if not text:
            continue  # Codestral has no middle token
        token = vocab.special_id(text)
        if token is None or ids.get(field, token) != token:
            return False
    return True


def _proven(vocab: Vocabulary, family: FimTemplate, metadata: Mapping[str, object]) -> bool:
    """Whether the evidence that tells `family` apart from look-alikes is there (see FimTemplate)."""
    if not family.needs_proof:
        return True
    if str(metadata.get("general.architecture", "")) in family.architectures:
        return True
    named = f"{metadata.get('general.name', '')} {metadata.get('tokenizer.ggml.pre', '')}".lower()
    if any(n in named for n in family.names):
        return True
    return any(vocab.special_id(t) is not None for t in family.marks)


def _family_of(vocab: Vocabulary, ids: Mapping[str, int]) -> FimTemplate | None:
    metadata: Mapping[str, object] = getattr(vocab, "metadata", None) or {}
    candidates = [f for f in FAMILIES if _fits(vocab, f, _MARKERS, ids) and _proven(vocab, f, metadata)]
    for family in candidates:
        # e.g. StarCoder 1 shares StarCoder2's FIM tokens but names the repository ones differently.
        if _fits(vocab, family, ("repo_name", "file_sep"), ids):
            return family
    if candidates:  # FIM tokens without the repository layout
        return dataclasses.replace(candidates[0], repo_name=None, file_sep=None)
    return None


def detect_template(vocab: Vocabulary, model_name: str = "model") -> FimTemplate:
    """The model's FIM family: the one whose tokens the GGUF's FIM metadata ids name, when it names
    any; else the first family (in FAMILIES' order) whose FIM tokens are each one token of the
    vocabulary and whose distinguishing evidence, if it needs any, is there."""
    ids = metadata_fim_ids(getattr(vocab, "metadata", None) or {})
    if ids:
        family = _family_of(vocab, ids)
        if family is not None:
            log.debug(
                "%s: FIM format %s from the FIM token ids in its metadata %s", model_name, family.name, ids
            )
            return family
        log.warning(
            "%s: the FIM token ids in its metadata %s are no known family's tokens; "
            "recognising the format from the vocabulary instead",
            model_name,
            ids,
        )
    family = _family_of(vocab, {})
    if family is not None:
        return family
    raise NoFimSupportError(
        f"{model_name} has no fill-in-the-middle tokens in its vocabulary; use a FIM-trained code model "
        "such as Qwen2.5-Coder, DeepSeek-Coder, StarCoder2, CodeLlama, Seed-Coder, Mellum, Codestral, "
        "CodeGemma or Granite (base, not instruct)"
    )


def template_named(name: str | None) -> FimTemplate:
    """A family by name (for a remote model whose vocabulary we cannot see); Qwen2.5-Coder by default."""
    if not name:
        return QWEN
    for family in FAMILIES:
        if family.name == name:
            return family
    raise NoFimSupportError(
        f"unknown FIM template {name!r}; use one of {', '.join(f.name for f in FAMILIES)}"
    )


_LINE_COMMENT = {
    ".py": "#",
    ".pyi": "#",
    ".sh": "#",
    ".rb": "#",
    ".toml": "#",
    ".yaml": "#",
    ".yml": "#",
    ".r": "#",
    ".pl": "#",
    ".lua": "--",
    ".sql": "--",
    ".hs": "--",
    ".el": ";;",
    ".lisp": ";;",
    ".clj": ";;",
    ".html": None,
    ".md": None,
    ".txt": None,
    ".json": None,
}


def comment_prefix(path: str) -> str | None:
    """The line-comment marker for a file type; None where there is none."""
    suffix = PurePosixPath(path).suffix.lower()
    return _LINE_COMMENT.get(suffix, "//")
