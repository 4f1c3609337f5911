"""Fill-in-the-middle prompt formats per model family, recognised from the model's own vocabulary."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Protocol

from .errors import NoFimSupportError


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
    "qwen2.5-coder", "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>",
    "<|repo_name|>", "<|file_sep|>", ("<|endoftext|>", "<|fim_pad|>", "<|im_end|>"))
STARCODER2 = FimTemplate(
    "starcoder2", "<fim_prefix>", "<fim_suffix>", "<fim_middle>", "<repo_name>", "<file_sep>",
    ("<|endoftext|>", "<fim_pad>"))
STARCODER = FimTemplate(
    "starcoder", "<fim_prefix>", "<fim_suffix>", "<fim_middle>", "<reponame>", "<filename>",
    ("<|endoftext|>", "<fim_pad>"))
DEEPSEEK = FimTemplate(
    "deepseek-coder", "<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>", None, None,
    ("<|EOT|>", "<｜end▁of▁sentence｜>"))
CODELLAMA = FimTemplate("codellama", "▁<PRE>", "▁<SUF>", "▁<MID>", None, None, ("▁<EOT>",))

FAMILIES = (QWEN, STARCODER2, STARCODER, DEEPSEEK, CODELLAMA)


class Vocabulary(Protocol):
    def special_id(self, text: str) -> int | None: ...


def detect_template(vocab: Vocabulary, model_name: str = "model") -> FimTemplate:
    """The first family whose three FIM tokens are each one token of this vocabulary."""
    for family in FAMILIES:
        if all(vocab.special_id(t) is not None for t in (family.prefix, family.suffix, family.middle)):
            if family.repo_name and vocab.special_id(family.repo_name) is None:
                # e.g. StarCoder 1 names the repository token differently: fall through.
                continue
            return family
    for family in FAMILIES:  # FIM tokens without the repository layout
        if all(vocab.special_id(t) is not None for t in (family.prefix, family.suffix, family.middle)):
            return FimTemplate(family.name, family.prefix, family.suffix, family.middle, stops=family.stops)
    raise NoFimSupportError(
        f"{model_name} has no fill-in-the-middle tokens in its vocabulary; use a FIM-trained code model "
        "such as Qwen2.5-Coder, DeepSeek-Coder, StarCoder2 or CodeLlama (base, not instruct)")


def template_named(name: str | None) -> FimTemplate:
    """A family by name (for a remote model whose vocabulary we cannot see); Qwen2.5-Coder by default."""
    if not name:
        return QWEN
    for family in FAMILIES:
        if family.name == name:
            return family
    raise NoFimSupportError(f"unknown FIM template {name!r}; use one of {', '.join(f.name for f in FAMILIES)}")


_LINE_COMMENT = {
    ".py": "#", ".pyi": "#", ".sh": "#", ".rb": "#", ".toml": "#", ".yaml": "#", ".yml": "#", ".r": "#",
    ".pl": "#", ".lua": "--", ".sql": "--", ".hs": "--", ".el": ";;", ".lisp": ";;", ".clj": ";;",
    ".html": None, ".md": None, ".txt": None, ".json": None,
}


def comment_prefix(path: str) -> str | None:
    """The line-comment marker for a file type; None where there is none."""
    suffix = PurePosixPath(path).suffix.lower()
    return _LINE_COMMENT.get(suffix, "//")
