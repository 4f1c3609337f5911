"""Embedding on an OpenAI-compatible server: llama-cpp-python's real server with `--embedding`, on
tiny mean-pooled GGUF models written here."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from lsp_server.config import Settings
from retrieval import CodeIndex, IndexConfig
from retrieval.embedding import embedder_for
from retrieval.errors import EmbeddingModelError
from retrieval.remote_embedding import RemoteEmbedder
from tests.fixtures.gguf_builder import write_tiny_gguf


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def embedding_server(gguf: Path, alias: str, log: Path) -> Iterator[str]:
    """llama_cpp.server serving `gguf` for embeddings under the name `alias`: its URL."""
    port = free_port()
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", alias,
             "--embedding", "true", "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):  # up to a minute: the server imports FastAPI and loads the model
            try:
                with urllib.request.urlopen(url + "/v1/models", timeout=1) as r:
                    json.load(r)
                break
            except OSError:
                if proc.poll() is not None:
                    pytest.fail(f"llama_cpp.server exited: {log.read_text()[-2000:]}")
                threading.Event().wait(0.1)
        else:
            pytest.fail("llama_cpp.server did not start")
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    folder = tmp_path_factory.mktemp("embedding-models")
    return {
        dim: write_tiny_gguf(folder / f"embed-{dim}.gguf", n_embd=dim, n_ff=2 * dim, pooling="mean", seed=dim)
        for dim in (64, 32)
    }


@pytest.fixture(scope="module")
def server(models: dict[int, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with embedding_server(models[64], "tiny-embed", tmp_path_factory.mktemp("srv") / "log") as url:
        yield url


def test_batched_vectors_from_the_server(server: str) -> None:
    embedder = RemoteEmbedder(server + "/v1", batch_texts=8)
    texts = [f"def f{i}(x):\n    return x * {i}\n" for i in range(20)]
    vectors = embedder.embed(texts)
    assert embedder.name == "endpoint:tiny-embed"  # the server's model, from /v1/models
    assert vectors.shape == (20, 64) and embedder.dim == 64
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # Three requests of at most 8 give what one text alone gives: the batching keeps the order.
    assert np.allclose(vectors[13], embedder.embed([texts[13]])[0], atol=1e-4)
    assert not np.allclose(vectors[0], vectors[1], atol=1e-3)


def test_an_index_embeds_through_the_endpoint_and_caches(
    server: str, tiny_repo: Path, tmp_path: Path
) -> None:
    settings = Settings.load({"embeddingEndpoint": server, "indexDir": str(tmp_path / "idx")})
    assert settings.index.embedding_endpoint == server
    embedder = embedder_for(settings.index)
    index = CodeIndex(tiny_repo, settings.index, embedder)
    stats = index.reindex()
    assert stats.chunks_embedded > 10
    assert index.describe()["embedding_model"] == "endpoint:tiny-embed"
    assert index.describe()["embedding_backend"] == "endpoint"
    assert len(index.search("cart total", 3)) == 3
    (tiny_repo / "shop" / "copy.py").write_text((tiny_repo / "shop" / "checkout.py").read_text())
    again = index.update_files([tiny_repo / "shop" / "copy.py"])
    assert again.files_changed == 1 and again.chunks_embedded == 0  # every chunk text was cached
    index.close()


def test_a_model_of_another_size_under_the_same_name_rebuilds(
    server: str, models: dict[int, Path], tiny_repo: Path, tmp_path: Path
) -> None:
    config = IndexConfig(index_dir=tmp_path / "idx")
    index = CodeIndex(tiny_repo, config, RemoteEmbedder(server))
    chunks = index.reindex().chunks_total
    index.close()
    with embedding_server(models[32], "tiny-embed", tmp_path / "log") as other:
        index = CodeIndex(tiny_repo, config, RemoteEmbedder(other))
        with pytest.raises(EmbeddingModelError, match="32-dimensional ones; reindex"):
            index.search("cart total", 3)  # before a reindex: explained, not a FAISS crash
        stats = index.reindex()
        assert (
            stats.chunks_total == chunks and stats.chunks_embedded == stats.chunks_total - stats.chunks_reused
        )
        assert stats.chunks_reused == 0
        assert index.store.loaded.d == 32 and len(index.search("cart total", 3)) == 3
        index.close()


def test_an_unreachable_endpoint_says_what_to_do() -> None:
    embedder = RemoteEmbedder(f"http://127.0.0.1:{free_port()}", model="m")
    with pytest.raises(
        EmbeddingModelError, match="cannot reach the embedding endpoint .* unset embeddingEndpoint"
    ):
        embedder.embed(["x"])
