"""What the end-to-end tests share: client capabilities, waiting for log lines, small request helpers."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

from lsprotocol import types
from pytest_lsp import LanguageClient
from pytest_lsp.client import make_test_lsp_client

SERVER = [sys.executable, "-m", "lsp_server", "serve"]

CAPABILITIES = types.ClientCapabilities(
    window=types.WindowClientCapabilities(work_done_progress=True),
    workspace=types.WorkspaceClientCapabilities(
        workspace_folders=True,
        configuration=True,
        did_change_watched_files=types.DidChangeWatchedFilesClientCapabilities(dynamic_registration=True),
        execute_command=types.ExecuteCommandClientCapabilities(),
    ),
    text_document=types.TextDocumentClientCapabilities(
        inline_completion=types.InlineCompletionClientCapabilities(),
        completion=types.CompletionClientCapabilities(),
        synchronization=types.TextDocumentSyncClientCapabilities(did_save=True),
    ),
)


def get(obj: Any, key: str) -> Any:
    """A field of a custom request's result (a dict, or pygls's attribute object)."""
    return obj[key] if isinstance(obj, dict) else getattr(obj, key)


async def wait_for_log(
    client: LanguageClient, text: str, timeout_s: float = 180, after: int = 0, count: int = 1
) -> types.LogMessageParams:
    """The `count`-th window/logMessage (from index `after` on) that contains `text`."""

    async def scan() -> types.LogMessageParams:
        while True:
            found = [m for m in client.log_messages[after:] if text in m.message]
            if len(found) >= count:
                return found[count - 1]
            await client.wait_for_notification("window/logMessage")

    return await asyncio.wait_for(scan(), timeout_s)


def open_file(
    client: LanguageClient, path: Path, language_id: str = "python", text: str | None = None
) -> str:
    uri = path.as_uri()
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=uri, language_id=language_id, version=1, text=path.read_text() if text is None else text
            )
        )
    )
    return uri


async def status(client: LanguageClient) -> Any:
    return await client.workspace_execute_command_async(types.ExecuteCommandParams(command="codeKb.status"))


async def context(client: LanguageClient, uri: str, position: types.Position) -> Any:
    return await client.protocol.send_request_async(
        "codeKb/context",
        {"textDocument": {"uri": uri}, "position": {"line": position.line, "character": position.character}},
    )


def inline_params(uri: str, position: types.Position) -> types.InlineCompletionParams:
    return types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=position,
        context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Automatic),
    )


def track_registrations(client: LanguageClient) -> list[types.Registration]:
    """Answer client/registerCapability as an editor does, and remember what was registered."""
    registered: list[types.Registration] = []

    @client.feature(types.CLIENT_REGISTER_CAPABILITY)
    def register_capability(ls: LanguageClient, params: types.RegistrationParams) -> None:
        registered.extend(params.registrations)

    return registered


async def start_client(root: Path, options: dict, env: dict[str, str]) -> LanguageClient:
    """A server started and initialized outside pytest-lsp's fixture: for tests that kill it, or
    share one across hypothesis examples. pytest-lsp's test client, so progress and configuration
    requests are answered and captured as the fixture's are."""
    client = make_test_lsp_client()
    track_registrations(client)
    await client.start_io(*SERVER, env=env)
    await client.initialize_session(
        types.InitializeParams(
            capabilities=CAPABILITIES, root_uri=root.as_uri(), initialization_options=options
        )
    )
    return client
