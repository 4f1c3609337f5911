"""The LSP server's protocol surface end to end: scheduling, index upkeep, commands, configuration."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from .lsp_helpers import (
    CAPABILITIES,
    SERVER,
    context,
    get,
    inline_params,
    open_file,
    status,
    track_registrations,
    wait_for_log,
)

CURSOR = types.Position(line=13, character=11)  # shop/checkout.py, after "    return "


async def start(client: LanguageClient, folders: list[Path], options: dict) -> types.InitializeResult:
    client.registered = track_registrations(client)  # type: ignore[attr-defined]
    result = await client.initialize_session(
        types.InitializeParams(
            capabilities=CAPABILITIES,
            root_uri=folders[0].as_uri(),
            workspace_folders=[types.WorkspaceFolder(uri=f.as_uri(), name=f.name) for f in folders],
            initialization_options=options,
        )
    )
    return result


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER))
async def client(lsp_client: LanguageClient, tiny_repo: Path, tiny_gguf: Path, request):
    options = {"modelPath": str(tiny_gguf), "maxTokens": 16, "snippetLimit": 50}
    options.update(getattr(request, "param", {}))
    lsp_client.init_result = await start(lsp_client, [tiny_repo], options)  # type: ignore[attr-defined]
    await wait_for_log(lsp_client, "index ready")
    yield
    await lsp_client.shutdown_session()


async def test_capabilities_are_advertised(client: LanguageClient):
    caps = client.init_result.capabilities
    assert caps.inline_completion_provider is not None
    assert caps.completion_provider is not None
    assert set(caps.execute_command_provider.commands) >= {"codeKb.reindex", "codeKb.status"}
    sync = caps.text_document_sync
    assert (sync.change if hasattr(sync, "change") else sync) == types.TextDocumentSyncKind.Incremental
    assert (
        caps.workspace.workspace_folders.supported and caps.workspace.workspace_folders.change_notifications
    )
    registered = [r.method for r in client.registered]
    assert registered == [types.WORKSPACE_DID_CHANGE_WATCHED_FILES]


async def test_progress_during_the_first_index(client: LanguageClient):
    reports = [r for values in client.progress_reports.values() for r in values]
    begin, end = reports[0], reports[-1]
    assert isinstance(begin, types.WorkDoneProgressBegin) and "indexing" in begin.title
    assert isinstance(end, types.WorkDoneProgressEnd)
    percentages = [r.percentage for r in reports if isinstance(r, types.WorkDoneProgressReport)]
    assert percentages and percentages[-1] == 100 and percentages == sorted(percentages)


@pytest.mark.parametrize(
    "client", [{"maxTokens": 4000, "maxLines": 100000, "timeoutS": 120, "debounceMs": 0}], indirect=True
)
async def test_cancel_request_stops_a_running_generation(client: LanguageClient, tiny_repo: Path):
    # At the end of a file on a top-level blank line nothing but the token limit ends generation.
    path = tiny_repo / "shop" / "checkout.py"
    text = path.read_text() + "\n\n"
    uri = open_file(client, path, text=text)
    end = types.Position(line=text.count("\n"), character=0)
    msg_id = f"gen-{uuid.uuid4().hex[:6]}"
    pending = client.protocol.send_request(
        types.TEXT_DOCUMENT_INLINE_COMPLETION, inline_params(uri, end), msg_id=msg_id
    )
    # The event loop keeps answering while the model thread generates: poll status until it runs.
    for _ in range(2000):
        if get(await status(client), "generating") == uri:
            break
    else:
        pytest.fail("generation never started")
    client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=msg_id))
    with pytest.raises(Exception, match="cancel"):
        await asyncio.wait_for(asyncio.wrap_future(pending), 60)
    for _ in range(2000):
        report = await status(client)
        if get(report, "generating") is None and get(report, "last_completion") is not None:
            break
    last = get(report, "last_completion")
    assert get(last, "stop_reason") == "cancelled"
    # Cancelled within a decode step: during prompt evaluation or after a few generated tokens.
    assert get(last, "generated_tokens") < 4000
    assert get(get(report, "scheduler"), "cancelled") == 1


async def test_a_burst_of_requests_answers_the_newest_and_builds_no_queue(
    client: LanguageClient, tiny_repo: Path
):
    uri = open_file(client, tiny_repo / "shop" / "checkout.py")
    before = get(get(await status(client), "scheduler"), "ran")
    positions = [types.Position(line=13, character=c % 12) for c in range(200)]
    results = await asyncio.gather(
        *(client.text_document_inline_completion_async(inline_params(uri, p)) for p in positions)
    )
    assert results[-1] is not None and results[-1].items[0].range.start == positions[-1]
    answered = [r for r in results[:-1] if r is not None]
    scheduler = get(await status(client), "scheduler")
    ran = get(scheduler, "ran") - before
    # Older requests were answered empty without a model call; only a handful reached the model.
    assert ran <= 3 and len(answered) <= ran
    assert get(scheduler, "superseded") >= 197


async def test_watched_file_changes_show_up_in_retrieval(client: LanguageClient, tiny_repo: Path):
    uri = open_file(client, tiny_repo / "shop" / "checkout.py")
    refunds = tiny_repo / "shop" / "refunds.py"
    refunds.write_text("def refund(order, reason: str) -> float:\n    return -order.total\n")
    (tiny_repo / "shop" / "inventory.py").unlink()
    seen = len(client.log_messages)
    client.workspace_did_change_watched_files(
        types.DidChangeWatchedFilesParams(
            changes=[
                types.FileEvent(uri=refunds.as_uri(), type=types.FileChangeType.Created),
                types.FileEvent(
                    uri=(tiny_repo / "shop" / "inventory.py").as_uri(), type=types.FileChangeType.Deleted
                ),
            ]
        )
    )
    message = await wait_for_log(client, "index updated", after=seen)
    assert "shop/refunds.py" in message.message and "shop/inventory.py" in message.message
    paths = {
        get(p, "path")
        for p in get(await context(client, uri, CURSOR), "parts")
        if get(p, "kind") == "snippet"
    }
    assert "shop/refunds.py" in paths and "shop/inventory.py" not in paths


async def test_commands_reindex_and_status(client: LanguageClient, tiny_repo: Path):
    uri = open_file(client, tiny_repo / "shop" / "checkout.py")
    completion = await client.text_document_inline_completion_async(inline_params(uri, CURSOR))
    assert completion is not None
    report = await status(client)
    model = get(report, "model")
    assert (
        get(model, "loaded") and get(model, "template") == "qwen2.5-coder" and get(model, "device") == "cpu"
    )
    (index,) = get(report, "indexes")
    assert (
        get(index, "root") == str(tiny_repo.resolve())
        and get(index, "chunks") > 0
        and get(index, "files") == 7
    )
    last = get(report, "last_completion")
    assert get(last, "latency_ms") > 0 and 0 <= get(last, "kv_reuse") <= 1
    assert get(last, "prompt_tokens") == get(last, "evaluated_tokens") + get(last, "reused_tokens")
    (tiny_repo / "docs" / "more.txt").write_text("More notes about refunds.\n")
    summary = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="codeKb.reindex")
    )
    assert "1 changed" in get(summary, str(tiny_repo.resolve()))


async def test_configuration_changes_apply_at_run_time(
    client: LanguageClient, tiny_repo: Path, tiny_gguf: Path
):
    notes = tiny_repo / "docs" / "notes.txt"
    md = open_file(client, notes, language_id="markdown")
    py = open_file(client, tiny_repo / "shop" / "checkout.py")
    assert await client.text_document_inline_completion_async(
        inline_params(md, types.Position(line=5, character=0))
    )
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(
            settings={
                "codeKb": {
                    "modelPath": str(tiny_gguf),
                    "maxTokens": 3,
                    "disabledLanguages": ["markdown"],
                    "debounceMs": "soon",
                }
            }
        )
    )
    for _ in range(2000):
        settings = get(await status(client), "settings")
        if get(settings, "max_tokens") == 3:
            break
    assert get(settings, "disabled_languages") == ["markdown"] and get(settings, "debounce_ms") == 50
    assert (
        await client.text_document_inline_completion_async(
            inline_params(md, types.Position(line=5, character=0))
        )
        is None
    )
    result = await client.text_document_inline_completion_async(inline_params(py, CURSOR))
    assert result is not None
    assert get(get(await status(client), "last_completion"), "generated_tokens") <= 3
    warnings = [m for m in client.messages if m.type == types.MessageType.Warning]
    assert len(warnings) == 1 and "debounceMs='soon' is invalid" in warnings[0].message
    # A model that is not there: one message saying what to set, and no completions.
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(
            settings={"codeKb": {"modelPath": str(tiny_repo / "missing.gguf")}}
        )
    )
    for _ in range(2000):
        if not get(get(await status(client), "model"), "loaded"):
            break
    assert await client.text_document_inline_completion_async(inline_params(py, CURSOR)) is None
    errors = [m for m in client.messages if m.type == types.MessageType.Error]
    assert len(errors) == 1 and "model file not found" in errors[0].message


@pytest.fixture
def other_root(tmp_path: Path) -> Path:
    other = tmp_path / "other"
    (other / "lib").mkdir(parents=True)
    (other / "lib" / "geometry.py").write_text("def circle_area(radius):\n    return 3.14159 * radius ** 2\n")
    (other / "lib" / "main.py").write_text("from .geometry import circle_area\n\nprint(circle_area(2))\n")
    return other


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER))
async def multi_root(lsp_client: LanguageClient, tiny_repo: Path, other_root: Path, tiny_gguf: Path):
    await start(lsp_client, [tiny_repo, other_root], {"modelPath": str(tiny_gguf), "maxTokens": 8})
    await wait_for_log(lsp_client, "index ready", count=2)
    yield
    await lsp_client.shutdown_session()


async def test_multi_root_workspaces_index_each_folder(
    multi_root: LanguageClient, other_root: Path, tiny_repo: Path, tmp_path: Path
):
    client, other = multi_root, other_root
    roots = {get(i, "root"): i for i in get(await status(client), "indexes")}
    assert all(get(i, "ready") for i in roots.values())
    assert set(roots) == {str(tiny_repo.resolve()), str(other.resolve())}
    assert get(roots[str(other.resolve())], "index_dir") == str(other.resolve() / ".code-kb")
    uri = open_file(client, other / "lib" / "main.py")
    parts = get(await context(client, uri, types.Position(line=2, character=0)), "parts")
    assert {get(p, "path") for p in parts if get(p, "kind") == "snippet"} == {"lib/geometry.py"}
    # Folders come and go at run time.
    third = tmp_path / "third"
    third.mkdir()
    (third / "util.py").write_text("def clamp(x, lo, hi):\n    return max(lo, min(x, hi))\n")
    seen = len(client.log_messages)
    client.workspace_did_change_workspace_folders(
        types.DidChangeWorkspaceFoldersParams(
            event=types.WorkspaceFoldersChangeEvent(
                added=[types.WorkspaceFolder(uri=third.as_uri(), name="third")],
                removed=[types.WorkspaceFolder(uri=other.as_uri(), name="other")],
            )
        )
    )
    await wait_for_log(client, f"index ready for {third.resolve()}", after=seen)
    roots = {get(i, "root") for i in get(await status(client), "indexes")}
    assert roots == {str(tiny_repo.resolve()), str(third.resolve())}


async def wait_for_background(client: LanguageClient, n: int) -> Any:
    """Wait until the model thread has done `n` pieces of idle work; the scheduler counters."""
    for _ in range(1200):
        scheduler = get(await status(client), "scheduler")
        if get(scheduler, "background") >= n:
            return scheduler
        await asyncio.sleep(0.05)
    pytest.fail(f"idle work done: {get(scheduler, 'background')}, expected {n}")


@pytest.mark.parametrize(
    "client", [{"quickPromptTokens": 48, "debounceMs": 0, "speculate": False}], indirect=True
)
async def test_a_cold_cursor_is_answered_from_a_quick_prompt_and_then_from_the_full_one(
    client: LanguageClient, tiny_repo: Path
):
    uri = open_file(client, tiny_repo / "shop" / "checkout.py")
    await wait_for_background(client, 1)  # the repository part of the prompt, on open
    result = await client.text_document_inline_completion_async(inline_params(uri, CURSOR))
    assert result is not None
    quick = get(await status(client), "last_completion")
    assert get(quick, "prompt_scope") == "quick"
    await wait_for_background(client, 2)  # the full prompt, evaluated while idle
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[
                types.TextDocumentContentChangePartial(range=types.Range(start=CURSOR, end=CURSOR), text="t")
            ],
        )
    )
    after = types.Position(line=CURSOR.line, character=CURSOR.character + 1)
    await client.text_document_inline_completion_async(inline_params(uri, after))
    full = get(await status(client), "last_completion")
    assert get(full, "prompt_scope") == "full"
    assert get(full, "prompt_tokens") > get(quick, "prompt_tokens")
    assert get(full, "evaluated_tokens") <= 4 and get(full, "kv_reuse") > 0.95


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER))
async def early(lsp_client: LanguageClient, tiny_repo: Path, tiny_gguf: Path):
    """A client that opens a file at once, as an editor restoring its tabs does, before the index."""
    options = {"modelPath": str(tiny_gguf), "maxTokens": 8, "speculate": False}
    lsp_client.init_result = await start(lsp_client, [tiny_repo], options)  # type: ignore[attr-defined]
    lsp_client.uri = open_file(lsp_client, tiny_repo / "shop" / "checkout.py")  # type: ignore[attr-defined]
    yield
    await lsp_client.shutdown_session()


async def test_a_file_opened_before_the_index_is_ready_has_its_context_evaluated_once_it_is(
    early: LanguageClient,
):
    await wait_for_log(early, "index ready")
    await wait_for_background(early, 1)
    quiet = 0
    while quiet < 3:  # the model thread idle three polls running: the warm-up after the index is done
        await asyncio.sleep(0.1)
        quiet = quiet + 1 if get(await status(early), "generating") is None else 0
    await early.text_document_inline_completion_async(inline_params(early.uri, CURSOR))
    last = get(await status(early), "last_completion")
    # The file opened before the model had loaded: only the warm-up after the index put the
    # repository context into the KV cache, and the first request reuses it.
    assert get(last, "context_from") and get(last, "reused_tokens") > 100


# The tiny model answers " /chunksizekeys" there and then only form feeds (whitespace, which is not
# shown): three tokens at a time leave the speculation, its continuation, something to show.
@pytest.mark.parametrize("client", [{"maxTokens": 3}], indirect=True)
async def test_idle_model_warms_on_open_and_after_a_pause_and_speculates(
    client: LanguageClient, tiny_repo: Path
):
    await wait_for_log(client, "index ready")
    path = tiny_repo / "shop" / "checkout.py"
    uri = open_file(client, path)
    await wait_for_background(client, 1)  # the repository part of the prompt, on open
    # Typing, then a pause with no request: the whole prompt at the edit is evaluated.
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[
                types.TextDocumentContentChangePartial(range=types.Range(start=CURSOR, end=CURSOR), text="t")
            ],
        )
    )
    await wait_for_background(client, 2)
    # A completion there pays only for the last token; then the model computes the next one ahead.
    after = types.Position(line=CURSOR.line, character=CURSOR.character + 1)
    result = await client.text_document_inline_completion_async(inline_params(uri, after))
    assert result is not None and result.items[0].insert_text
    last = get(await status(client), "last_completion")
    assert get(last, "evaluated_tokens") == 1 and get(last, "kv_reuse") > 0.99
    assert get(last, "prompt_scope") == "full"
    await wait_for_background(client, 3)  # the speculation
    # Accepting the suggestion: the next one comes from the type-through cache at once.
    accepted = result.items[0].insert_text
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=3),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(start=after, end=after), text=accepted
                )
            ],
        )
    )
    lines = accepted.split("\n")
    end = types.Position(
        line=after.line + len(lines) - 1,
        character=(after.character if len(lines) == 1 else 0) + len(lines[-1]),
    )
    await client.text_document_inline_completion_async(inline_params(uri, end))
    last = get(await status(client), "last_completion")
    assert get(last, "stop_reason") == "type-through" and get(last, "evaluated_tokens") == 0
    assert get(last, "prompt_scope") == "type-through"


async def test_a_recent_edit_in_another_file_enters_the_prompt(client: LanguageClient, tiny_repo: Path):
    await wait_for_log(client, "index ready")
    cart = tiny_repo / "shop" / "cart.py"
    cart_uri = open_file(client, cart)
    edit_at = types.Position(line=3, character=0)
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=cart_uri, version=2),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(start=edit_at, end=edit_at), text="DISCOUNT_CODE = 'SPRING'\n"
                )
            ],
        )
    )
    uri = open_file(client, tiny_repo / "shop" / "checkout.py")
    parts = get(await context(client, uri, CURSOR), "parts")
    recent = [p for p in parts if get(p, "kind") == "recent"]
    assert len(recent) == 1 and get(recent[0], "path") == "shop/cart.py"
    assert "DISCOUNT_CODE = 'SPRING'" in get(recent[0], "text")


async def test_ghost_text_and_completion_list_requests_do_not_supersede_each_other(
    client: LanguageClient, tiny_repo: Path
):
    # Editors send both on one keystroke; answering only the newer would leave the list empty.
    uri = open_file(client, tiny_repo / "shop" / "checkout.py")
    inline, listed = await asyncio.gather(
        client.text_document_inline_completion_async(inline_params(uri, CURSOR)),
        client.text_document_completion_async(
            types.CompletionParams(text_document=types.TextDocumentIdentifier(uri=uri), position=CURSOR)
        ),
    )
    assert inline is not None and inline.items[0].insert_text
    assert listed is not None and listed.items
    assert get(get(await status(client), "scheduler"), "superseded") == 0
