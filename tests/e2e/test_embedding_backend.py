"""`code-kb serve` indexing with the packaged MiniLM on onnxruntime: the status says which backend
runs and why, and the server process never imports torch."""

from __future__ import annotations

from pathlib import Path

import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from .lsp_helpers import CAPABILITIES, SERVER, open_file, status, track_registrations, wait_for_log
from .lsp_helpers import get as _get


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER))
async def client(lsp_client: LanguageClient, tiny_repo: Path):
    track_registrations(lsp_client)
    await lsp_client.initialize_session(
        types.InitializeParams(
            capabilities=CAPABILITIES,
            root_uri=tiny_repo.as_uri(),
            initialization_options={"embeddingBackend": "onnx-int8"},
        )
    )
    yield
    await lsp_client.shutdown_session()


async def test_the_server_indexes_on_onnx_int8_without_torch(client: LanguageClient, tiny_repo: Path):
    ready = await wait_for_log(client, "index ready")
    assert "7 files" in ready.message
    open_file(client, tiny_repo / "shop" / "checkout.py")
    got = await status(client)
    row = _get(got, "indexes")[0]
    assert _get(row, "embedding_model") == "all-MiniLM-L6-v2@128+int8"
    assert _get(row, "embedding_backend") == "onnx-int8"
    assert _get(row, "embedding_backend_reason") == "set by embeddingBackend"
    assert _get(row, "torch_loaded") is False
    assert _get(_get(got, "settings"), "embedding_backend") == "onnx-int8"
