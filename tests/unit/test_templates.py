"""FIM families against the real tokenizers: the vocab-only GGUFs of the llama-cpp-python sdist, Mistral's
V3 tokenizer from the mistral-common wheel, and layouts derived from them (tests/fixtures/vocabs.py)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from engine.backends.llama_cpp import LlamaCppModel
from engine.errors import NoFimSupportError
from engine.templates import FAMILIES, FimTemplate, detect_template, metadata_fim_ids, template_named
from tests.fixtures import vocabs

FAMILY_NAMES = [f.name for f in FAMILIES]

# Token ids of the FIM and repository tokens in the real tokenizers (codestral: Mistral V3's own; seed-coder,
# mellum, granite: where the derived layouts put them; codegemma: CodeGemma's own ids, 67-70).
REAL_IDS = {
    "qwen2.5-coder": {
        "prefix": 151659,
        "suffix": 151661,
        "middle": 151660,
        "repo_name": 151663,
        "file_sep": 151664,
    },
    "starcoder2": {"prefix": 1, "suffix": 3, "middle": 2, "repo_name": 5, "file_sep": 6},
    "starcoder": {"prefix": 1, "suffix": 3, "middle": 2, "repo_name": 18, "file_sep": 5},
    "deepseek-coder": {"prefix": 32016, "suffix": 32015, "middle": 32017},
    "codellama": {"prefix": 32007, "suffix": 32008, "middle": 32009},
    "seed-coder": {"prefix": 151650, "suffix": 151652, "middle": 151651},
    "mellum": {"prefix": 1, "suffix": 3, "middle": 2, "file_sep": 5},
    "granite": {"prefix": 128002, "suffix": 128004, "middle": 128003},
    "codegemma": {"prefix": 67, "suffix": 69, "middle": 68},
    "codestral": {"prefix": 11, "suffix": 13},
}
SUFFIX_FIRST = {"seed-coder", "mellum", "codestral"}


def special_texts(template: FimTemplate) -> tuple[str, ...]:
    return template.specials() + template.stops


def user_code(text: str) -> list[str]:
    """Source that mentions a special token's text, as a user might write it."""
    shown = text.replace("▁", " ")  # SentencePiece writes a space as ▁
    return [text, shown, f'html = "{text}"\n', f"# wrap it in{shown} tags\n", f"x{shown}y = 1\n"]


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_detection_picks_the_family_of_its_real_tokenizer(real_tokenizer, family: str):
    template = detect_template(real_tokenizer(family), family)
    assert template == template_named(family)  # with its repository layout, where the family has one
    assert template.has_repo_layout == ("file_sep" in REAL_IDS[family])
    assert template.order == ("spm" if family in SUFFIX_FIRST else "psm")


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_fim_tokens_sit_at_the_real_ids(real_tokenizer, family: str):
    tokenizer, template = real_tokenizer(family), template_named(family)
    assert {field: tokenizer.special_id(getattr(template, field)) for field in REAL_IDS[family]} == REAL_IDS[
        family
    ]


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_every_special_token_is_one_id_that_detokenises_to_its_text(real_tokenizer, family: str):
    tokenizer = real_tokenizer(family)
    texts = special_texts(template_named(family))
    ids = []
    for text in texts:
        token = tokenizer.special_id(text)
        assert token is not None, f"{text!r} is not one token of {family}"
        assert tokenizer.llm.tokenize(text.encode(), add_bos=False, special=True) == [token]
        assert tokenizer.llm.detokenize([token], special=True).decode() == text
        ids.append(token)
    assert len(set(ids)) == len(texts)  # no two of the template's tokens share an id


@pytest.mark.parametrize(
    "family, text",
    [pytest.param(f.name, text, id=f"{f.name}-{text}") for f in FAMILIES for text in special_texts(f)],
)
def test_user_code_with_special_token_text_stays_plain_text(real_tokenizer, family: str, text: str):
    """Also where llama.cpp itself would turn the text special: DeepSeek-Coder's `<|EOT|>` is a
    user-defined token, matched in plain text, and CodeLlama's SentencePiece merges ' <PRE>' into
    its control piece `▁<PRE>`; LlamaCppModel.encode cuts such spellings apart."""
    tokenizer = real_tokenizer(family)
    token = tokenizer.special_id(text)
    assert token is not None
    for source in user_code(text):
        tokens = tokenizer.encode(source)
        assert token not in tokens, f"{source!r} encodes to {tokens}"
        if tokenizer.metadata["tokenizer.ggml.model"] == "gpt2":  # byte-level BPE: the text comes back as is
            assert tokenizer.llm.detokenize(tokens).decode() == source


@pytest.mark.parametrize("name", ["qwen2", "gpt-2", "llama-spm"])
def test_vocabularies_without_fim_tokens_are_refused_with_models_to_use(real_tokenizer, name: str):
    with pytest.raises(NoFimSupportError, match=f"^{name} has no fill-in-the-middle tokens") as raised:
        detect_template(real_tokenizer(name), name)
    for model in ("Qwen2.5-Coder", "DeepSeek-Coder", "StarCoder2", "CodeLlama"):
        assert model in str(raised.value)


def test_codellama_fim_ids_are_read_from_its_metadata(real_tokenizer):
    tokenizer = real_tokenizer("codellama")
    assert tokenizer.metadata["tokenizer.ggml.prefix_token_id"] == "32007"
    assert metadata_fim_ids(tokenizer.metadata) == REAL_IDS["codellama"]
    assert detect_template(tokenizer, "codellama") == template_named("codellama")


def test_metadata_naming_the_family_tokens_keeps_the_repository_layout(tmp_path: Path, caplog):
    starcoder2 = vocabs.family_vocab("starcoder2")
    ids = REAL_IDS["starcoder2"]
    keys = {
        "prefix": "fim_pre",
        "suffix": "fim_suf",
        "middle": "fim_mid",
        "repo_name": "fim_rep",
        "file_sep": "fim_sep",
    }
    path = vocabs.with_metadata(
        starcoder2,
        tmp_path / "sc2-fim-ids.gguf",
        {f"tokenizer.ggml.{keys[f]}_token_id": i for f, i in ids.items()},
    )
    tokenizer = LlamaCppModel(path, vocab_only=True)
    assert metadata_fim_ids(tokenizer.metadata) == ids
    with caplog.at_level(logging.DEBUG, logger="engine.templates"):
        assert detect_template(tokenizer, "sc2") == template_named("starcoder2")
    assert "from the FIM token ids in its metadata" in caplog.text


def test_metadata_ids_of_other_tokens_fall_back_to_the_vocabulary(tmp_path: Path, caplog):
    # ids 7-9 of StarCoder2 are <issue_start>, <issue_comment>, <issue_closed>: no family's FIM tokens.
    path = vocabs.with_metadata(
        vocabs.family_vocab("starcoder2"),
        tmp_path / "sc2-wrong-ids.gguf",
        {
            "tokenizer.ggml.fim_pre_token_id": 7,
            "tokenizer.ggml.fim_suf_token_id": 8,
            "tokenizer.ggml.fim_mid_token_id": 9,
        },
    )
    tokenizer = LlamaCppModel(path, vocab_only=True)
    with caplog.at_level(logging.WARNING, logger="engine.templates"):
        assert detect_template(tokenizer, "sc2") == template_named("starcoder2")
    assert "no known family's tokens" in caplog.text


def _renamed(src: Path, path: Path, **values: str) -> LlamaCppModel:
    """A copy of a vocabulary GGUF with string metadata replaced (general.name, tokenizer.ggml.pre)."""
    vocabs._rewrite(src, path, {k.replace("__", "."): v for k, v in values.items()})
    return LlamaCppModel(path, vocab_only=True)


def test_mellum_and_starcoder_share_fim_tokens_and_are_told_apart(real_tokenizer, tmp_path: Path):
    """Mellum's vocabulary has StarCoder's <fim_*>, <reponame> and <filename>, plus role tokens;
    without those, its architecture, pre-tokenizer or name says Mellum."""
    assert detect_template(real_tokenizer("mellum")).name == "mellum"
    assert detect_template(real_tokenizer("starcoder")).name == "starcoder"
    starcoder = vocabs.family_vocab("starcoder")
    named = _renamed(starcoder, tmp_path / "named.gguf", general__name="JetBrains Mellum 4b Base")
    assert detect_template(named).name == "mellum"
    pre = _renamed(starcoder, tmp_path / "pre.gguf", tokenizer__ggml__pre="mellum")  # llama.cpp's name for it
    mellum = detect_template(pre)
    assert mellum == template_named("mellum") and mellum.file_sep == "<filename>" and mellum.repo_name is None


def test_granite_codegemma_and_qwen_share_fim_tokens_and_are_told_apart(real_tokenizer, tmp_path: Path):
    assert detect_template(real_tokenizer("granite")).name == "granite"  # by <|start_of_role|>
    assert detect_template(real_tokenizer("codegemma")).name == "codegemma"  # by <|file_separator|>
    assert detect_template(real_tokenizer("qwen2.5-coder")).name == "qwen2.5-coder"
    qwen = vocabs.family_vocab("qwen2.5-coder")
    named = _renamed(qwen, tmp_path / "granite-named.gguf", general__name="Granite 4.0 H Tiny Base")
    assert detect_template(named).name == "granite"


def test_codegemma_fim_ids_are_read_from_its_metadata(real_tokenizer, caplog):
    tokenizer = real_tokenizer("codegemma")
    assert metadata_fim_ids(tokenizer.metadata) == REAL_IDS["codegemma"]
    with caplog.at_level(logging.DEBUG, logger="engine.templates"):
        assert detect_template(tokenizer, "codegemma") == template_named("codegemma")
    assert "from the FIM token ids in its metadata" in caplog.text


def test_codestral_has_no_middle_token_and_its_specials_are_its_markers(real_tokenizer):
    template = detect_template(real_tokenizer("codestral"), "codestral")
    assert template.middle == "" and template.specials() == ("[PREFIX]", "[SUFFIX]")
    # V3 has a [MIDDLE] piece (12); Mistral's FIM format does not use it.
    assert real_tokenizer("codestral").special_id("[MIDDLE]") == 12
