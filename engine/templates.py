"""Fill-in-the-middle prompt formats per model family, recognised from the GGUF's FIM metadata and
the model's own vocabulary."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Protocol

from .errors import NoFimSupportError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FimTemplate:
    name: str
    prefix: str
    suffix: str
    middle: str
    repo_name: str | None = None  # repository-level layout tokens, where the family has them
    file_sep: str | None = None
    stops: tuple[str, ...] = ()  # special tokens that end a completion besides the model's EOG set

    @property
    def has_repo_layout(self) -> bool:
        return self.repo_name is not None and self.file_sep is not None

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

FAMILIES = (QWEN, STARCODER2, STARCODER, DEEPSEEK, CODELLAMA)


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
    """Each of the family's `fields` is one token of the vocabulary, the one `ids` names where it names one."""
    for field in fields:
        token = vocab.special_id(getattr(family, field))
        if token is None or ids.get(field, token) != token:
            return False
    return True


def _family_of(vocab: Vocabulary, ids: Mapping[str, int]) -> FimTemplate | None:
    for family in FAMILIES:
        repo = ("repo_name", "file_sep") if family.has_repo_layout else ()
        # e.g. StarCoder 1 shares StarCoder2's FIM tokens but names the repository ones differently.
        if _fits(vocab, family, _MARKERS + repo, ids):
            return family
    for family in FAMILIES:  # FIM tokens without the repository layout
        if _fits(vocab, family, _MARKERS, ids):
            return dataclasses.replace(family, repo_name=None, file_sep=None)
    return None


def detect_template(vocab: Vocabulary, model_name: str = "model") -> FimTemplate:
    """The model's FIM family: the one whose tokens the GGUF's FIM metadata ids name, when it names
    any; else the first family whose three FIM tokens are each one token of the vocabulary."""
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
        "such as Qwen2.5-Coder, DeepSeek-Coder, StarCoder2 or CodeLlama (base, not instruct)"
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
