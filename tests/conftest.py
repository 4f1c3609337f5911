"""Shared fixtures: a tiny repository, a tiny real GGUF model, the packaged embedding model."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.backends.llama_cpp import LlamaCppModel
from tests.fixtures import vocabs
from tests.fixtures.gguf_builder import write_tiny_gguf
from tests.fixtures.hash_embedder import HashEmbedder

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(autouse=True)
def hermetic_settings(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No user config file or CODE_KB_MODEL leaks into a test, or into the servers it starts."""
    monkeypatch.setenv("CODE_KB_CONFIG", str(tmp_path_factory.getbasetemp() / "no-config.toml"))
    monkeypatch.delenv("CODE_KB_MODEL", raising=False)


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 0.6 MB qwen2-architecture GGUF with a real BPE tokenizer, FIM tokens and random weights."""
    return write_tiny_gguf(tmp_path_factory.mktemp("models") / "tiny-qwen2.gguf")


@pytest.fixture(scope="session")
def sweep_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model under Sweep's next-edit name: recognised as a next-edit model; its output is noise."""
    return write_tiny_gguf(tmp_path_factory.mktemp("models") / "sweep-tiny.gguf", name="sweep-next-edit-1.5B")


@pytest.fixture(scope="session")
def real_tokenizer() -> Callable[[str], LlamaCppModel]:
    """Loads a real tokenizer, vocabulary only, once: a FIM family's (`qwen2.5-coder`, `starcoder`, ...)
    or one the llama-cpp-python sdist ships (`qwen2`, `gpt-2`, `llama-spm`). The first use on a
    machine downloads the sdist with pip into the test cache (tests/fixtures/vocabs.py)."""
    loaded: dict[str, LlamaCppModel] = {}

    def load(name: str) -> LlamaCppModel:
        if name not in loaded:
            path = vocabs.family_vocab(name) if name in vocabs.FAMILY_NAMES else vocabs.shipped_vocab(name)
            loaded[name] = LlamaCppModel(path, vocab_only=True)
        return loaded[name]

    return load


@pytest.fixture
def tiny_repo(tmp_path: Path) -> Path:
    """The shop repository, plus files that must not be indexed (ignored, binary, huge)."""
    root = tmp_path / "repo"
    shutil.copytree(FIXTURES / "tiny_repo", root)
    (root / "build").mkdir()
    (root / "build" / "generated.py").write_text("def ignored_build_output():\n    pass\n")
    (root / "debug.log").write_text("ignored log\n")
    (root / "logo.dat").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00binary")
    (root / "huge.py").write_text("x = 1\n" * 400_000)  # 2.4 MB: over the size limit
    return root


@pytest.fixture(scope="session")
def minilm():
    """The packaged all-MiniLM-L6-v2, loaded once."""
    from retrieval import SentenceTransformerEmbedder

    embedder = SentenceTransformerEmbedder()
    assert embedder.dim == 384
    return embedder


@pytest.fixture
def hash_embedder() -> HashEmbedder:
    return HashEmbedder()
