"""Workspaces and files reached through symbolic links, against the real server: a workspace opened
through a link completes like any other, and a file whose innocent name links to a secret gets
nothing and feeds nothing into other prompts."""

from __future__ import annotations

from pathlib import Path

import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from .lsp_helpers import CAPABILITIES, SERVER, context, get, inline_params, open_file, wait_for_log

CURSOR = types.Position(line=13, character=11)  # shop/checkout.py, after "    return "
SECRET = "API_TOKEN=sk-live-0123456789abcdef\n"


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER))
async def client(lsp_client: LanguageClient, tiny_repo: Path, tiny_gguf: Path, tmp_path: Path):
    (tiny_repo / ".env").write_text(SECRET)
    (tiny_repo / "shop" / "settings.py").symlink_to(tiny_repo / ".env")
    link = tmp_path / "linked-workspace"
    link.symlink_to(tiny_repo, target_is_directory=True)
    lsp_client.link = link  # type: ignore[attr-defined]
    await lsp_client.initialize_session(types.InitializeParams(
        capabilities=CAPABILITIES, root_uri=link.as_uri(),
        workspace_folders=[types.WorkspaceFolder(uri=link.as_uri(), name="linked")],
        initialization_options={"modelPath": str(tiny_gguf), "maxTokens": 16}))
    await wait_for_log(lsp_client, "index ready")
    yield
    await lsp_client.shutdown_session()


async def test_a_workspace_opened_through_a_link_gets_both_kinds_of_completion(client: LanguageClient):
    uri = open_file(client, client.link / "shop" / "checkout.py")  # type: ignore[attr-defined]
    inline = await client.text_document_inline_completion_async(inline_params(uri, CURSOR))
    assert inline is not None
    listed = await client.text_document_completion_async(types.CompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=CURSOR))
    assert listed is not None
    prompt = await context(client, uri, CURSOR)
    assert get(prompt, "path") == "shop/checkout.py"
    assert any(get(p, "kind") == "prefix" for p in get(prompt, "parts"))
    errors = [m for m in client.log_messages if m.type == types.MessageType.Error]
    assert not errors, errors


async def test_a_file_linked_to_a_secret_gets_no_completion_and_feeds_no_prompt(client: LanguageClient):
    link = client.link  # type: ignore[attr-defined]
    secret_uri = open_file(client, link / "shop" / "settings.py", text=SECRET)
    at_end = types.Position(line=1, character=0)
    assert await client.text_document_inline_completion_async(inline_params(secret_uri, at_end)) is None
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(uri=secret_uri, version=2),
        content_changes=[types.TextDocumentContentChangePartial(
            range=types.Range(start=at_end, end=at_end), text="DB_PASSWORD=hunter2\n")]))
    uri = open_file(client, link / "shop" / "checkout.py")
    prompt = await context(client, uri, CURSOR)
    text = "".join(get(p, "text") for p in get(prompt, "parts"))
    assert "sk-live" not in text and "hunter2" not in text
    assert all(get(p, "path") != "shop/settings.py" and get(p, "path") != ".env" for p in get(prompt, "parts"))
