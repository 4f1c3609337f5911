"""Which documents and folders the real server serves: a workspace opened through a link completes
like any other; a file whose innocent name links to a secret gets nothing and feeds nothing into
other prompts; an unsaved buffer completes from its own text; documents that are no files and
requests that make no sense get a clear empty answer; system folders and folders over the file
cap are refused with a message."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams
from pytest_lsp import ClientServerConfig, LanguageClient

from .lsp_helpers import CAPABILITIES, SERVER, context, get, inline_params, open_file, status, wait_for_log

CURSOR = types.Position(line=13, character=11)  # shop/checkout.py, after "    return "
SECRET = "API_TOKEN=sk-live-0123456789abcdef\n"


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER))
async def client(lsp_client: LanguageClient, tiny_repo: Path, tiny_gguf: Path, tmp_path: Path):
    (tiny_repo / ".env").write_text(SECRET)
    (tiny_repo / "shop" / "settings.py").symlink_to(tiny_repo / ".env")
    link = tmp_path / "linked-workspace"
    link.symlink_to(tiny_repo, target_is_directory=True)
    lsp_client.link = link  # type: ignore[attr-defined]
    await lsp_client.initialize_session(
        types.InitializeParams(
            capabilities=CAPABILITIES,
            root_uri=link.as_uri(),
            workspace_folders=[types.WorkspaceFolder(uri=link.as_uri(), name="linked")],
            initialization_options={"modelPath": str(tiny_gguf), "maxTokens": 16, "maxFiles": 40},
        )
    )
    await wait_for_log(lsp_client, "index ready")
    yield
    await lsp_client.shutdown_session()


async def test_a_workspace_opened_through_a_link_gets_both_kinds_of_completion(client: LanguageClient):
    uri = open_file(client, client.link / "shop" / "checkout.py")  # type: ignore[attr-defined]
    inline = await client.text_document_inline_completion_async(inline_params(uri, CURSOR))
    assert inline is not None
    listed = await client.text_document_completion_async(
        types.CompletionParams(text_document=types.TextDocumentIdentifier(uri=uri), position=CURSOR)
    )
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
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=secret_uri, version=2),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(start=at_end, end=at_end), text="DB_PASSWORD=hunter2\n"
                )
            ],
        )
    )
    uri = open_file(client, link / "shop" / "checkout.py")
    prompt = await context(client, uri, CURSOR)
    text = "".join(get(p, "text") for p in get(prompt, "parts"))
    assert "sk-live" not in text and "hunter2" not in text
    assert all(
        get(p, "path") != "shop/settings.py" and get(p, "path") != ".env" for p in get(prompt, "parts")
    )


async def test_an_unsaved_buffer_completes_from_its_own_text(client: LanguageClient):
    uri = "untitled:Untitled-1"
    text = "def total(prices):\n    return sum(prices)\n\ndef mean(prices):\n    return "
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id="python", version=1, text=text)
        )
    )
    end = types.Position(line=4, character=11)
    inline = await client.text_document_inline_completion_async(inline_params(uri, end))
    assert inline is not None and inline.items[0].insert_text
    prompt = await context(client, uri, end)
    assert get(prompt, "path") == "Untitled-1"
    assert all(get(p, "kind") in ("prefix", "suffix") for p in get(prompt, "parts") if get(p, "text"))


async def test_documents_that_are_no_files_get_an_empty_answer(client: LanguageClient):
    for uri in (
        "git:/repo/shop/checkout.py?ref=HEAD",
        "file:///tmp/a%00b.py",
        "file:///" + "d/" * 3000 + "x.py",
    ):
        client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(uri=uri, language_id="python", version=1, text="x = 1\n")
            )
        )
        assert (
            await client.text_document_inline_completion_async(
                inline_params(uri, types.Position(line=1, character=0))
            )
            is None
        ), uri
    assert not [m for m in client.log_messages if m.type == types.MessageType.Error]


def _raw_request(client: LanguageClient, msg_id: str, method: str, params: dict) -> asyncio.Future:
    """Send a request as raw JSON (the client's own types would refuse the bad params) and await its
    answer like any other."""
    future: asyncio.Future = asyncio.get_running_loop().create_future()
    client.protocol._request_futures[msg_id] = future
    client.protocol._send_data({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params})
    return future


async def test_requests_that_make_no_sense_are_answered_with_an_error(client: LanguageClient):
    uri = open_file(client, client.link / "shop" / "checkout.py")  # type: ignore[attr-defined]
    for n, position in enumerate(({"line": -1, "character": 0}, {"line": 0, "character": 2**40})):
        with pytest.raises(JsonRpcInvalidParams, match="invalid params for textDocument/inlineCompletion"):
            await asyncio.wait_for(
                _raw_request(
                    client,
                    f"bad-{n}",
                    "textDocument/inlineCompletion",
                    {"textDocument": {"uri": uri}, "position": position, "context": {"triggerKind": 2}},
                ),
                10,
            )
    with pytest.raises(JsonRpcInvalidParams, match="lack 'position'"):
        await client.protocol.send_request_async("codeKb/context", {"textDocument": {"uri": uri}})
    with pytest.raises(JsonRpcInvalidParams, match="takes a folder"):
        await client.workspace_execute_command_async(
            types.ExecuteCommandParams(command="codeKb.reindex", arguments=["not a folder"])
        )
    # Still serving after all of them.
    assert await client.text_document_inline_completion_async(inline_params(uri, CURSOR)) is not None


async def test_system_folders_and_folders_over_the_file_cap_are_refused_with_a_message(
    client: LanguageClient, tmp_path: Path
):
    big = tmp_path / "big"
    big.mkdir()
    for n in range(60):
        (big / f"m{n}.py").write_text(f"X{n} = {n}\n")
    added = [
        types.WorkspaceFolder(uri=Path("/etc").as_uri(), name="etc"),
        types.WorkspaceFolder(uri=big.as_uri(), name="big"),
    ]
    client.workspace_did_change_workspace_folders(
        types.DidChangeWorkspaceFoldersParams(
            event=types.WorkspaceFoldersChangeEvent(added=added, removed=[])
        )
    )

    async def shown(text: str) -> types.ShowMessageParams:
        while not (found := [m for m in client.messages if text in m.message]):
            await client.wait_for_notification("window/showMessage")
        return found[0]

    refused = await asyncio.wait_for(shown("not indexing /etc"), 60)
    assert "system folder" in refused.message and "codeKb.reindex" in refused.message
    capped = await asyncio.wait_for(shown("more than 40 files"), 60)
    assert "maxFiles" in capped.message
    assert not Path("/etc/.code-kb").exists()
    ready = [get(r, "root") for r in get(await status(client), "indexes") if get(r, "ready")]
    assert str(big) not in ready and "/etc" not in ready
    client.workspace_did_change_workspace_folders(
        types.DidChangeWorkspaceFoldersParams(
            event=types.WorkspaceFoldersChangeEvent(added=[], removed=added)
        )
    )
    roots = [get(r, "root") for r in get(await status(client), "indexes")]
    assert str(big) not in roots and "/etc" not in roots and len(roots) == 1
