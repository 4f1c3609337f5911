"""Next-edit suggestions end to end, as clients written for GitHub's Copilot language server ask for
them: textDocument/copilotInlineEdit after didChange, stale versions, didShowInlineEdit, the accept
command, status; a plain insertion at the cursor as ghost text; no next-edit model.

The tiny model's output is noise and rarely an edit: its answers are checked for form, and an edit's
whole round trip (UTF-16 ranges after an astral character, version, command, accept) is followed
through the server's test hook (CODE_KB_TEST_NEXT_EDIT in the server's environment)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from lsprotocol import types
from pytest_lsp import LanguageClient

from .lsp_helpers import get, inline_params, open_file, start_client, status, wait_for_log

INLINE_EDIT = "textDocument/copilotInlineEdit"
ACCEPT = "codeKb.acceptNextEdit"
# An astral character (two UTF-16 units) and an accented one before the edit, on its line.
EMOJI = 'label = "😀é"; total = price * qty\nprint(label, total)\n'


def units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def env(**hook: str) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if k != "CODE_KB_MODEL"}
    if hook:
        out["CODE_KB_TEST_NEXT_EDIT"] = json.dumps(hook)
    return out


async def ask(client: LanguageClient, uri: str, version: int, line: int, character: int) -> Any:
    return await client.protocol.send_request_async(
        INLINE_EDIT,
        {
            "textDocument": {"uri": uri, "version": version},
            "position": {"line": line, "character": character},
            "context": {"triggerKind": 2},
        },
    )  # as sidekick.nvim sends it


def change(client: LanguageClient, uri: str, version: int, line: int, character: int, text: str) -> None:
    at = types.Position(line=line, character=character)
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[
                types.TextDocumentContentChangePartial(range=types.Range(start=at, end=at), text=text)
            ],
        )
    )


def offset(text: str, line: int, character: int) -> int:
    """A UTF-16 position as an offset into `text`, as an editor applies an edit."""
    start = sum(len(x) for x in text.splitlines(keepends=True)[:line])
    row = text[start:]
    units_seen, i = 0, 0
    while units_seen < character:
        units_seen += units(row[i])
        i += 1
    return start + i


def errors(client: LanguageClient) -> list[str]:
    return [m.message for m in client.log_messages if m.type == types.MessageType.Error]


async def test_an_edit_round_trip_ranges_versions_shown_and_accepted(
    tiny_repo: Path, tiny_gguf: Path, sweep_gguf: Path
):
    (tiny_repo / "shop" / "labels.py").write_text(EMOJI)
    options = {"modelPath": str(tiny_gguf), "maxTokens": 8, "nextEditModel": str(sweep_gguf)}
    client = await start_client(tiny_repo, options, env(find="total", text="grand_total"))
    try:
        await wait_for_log(client, "index ready")
        uri = open_file(client, tiny_repo / "shop" / "labels.py")
        change(client, uri, 2, 1, 17, ", price")
        text = EMOJI.replace("label, total)", "label, total, price)")
        result = await ask(client, uri, 2, 1, 24)
        (edit,) = get(result, "edits")
        assert get(edit, "text") == "grand_total"
        document = get(edit, "textDocument")
        assert (get(document, "uri"), get(document, "version")) == (uri, 2)
        start, end = get(get(edit, "range"), "start"), get(get(edit, "range"), "end")
        before = 'label = "😀é"; '
        assert (get(start, "line"), get(start, "character")) == (0, units(before)) == (0, len(before) + 1)
        assert (get(end, "line"), get(end, "character")) == (0, units(before + "total"))
        a = offset(text, get(start, "line"), get(start, "character"))
        b = offset(text, get(end, "line"), get(end, "character"))
        assert text[:a] + get(edit, "text") + text[b:] == text.replace("total", "grand_total", 1)
        command = get(edit, "command")
        assert get(command, "command") == ACCEPT and len(get(command, "arguments")) == 1
        # A version the document has left answers nothing.
        assert get(await ask(client, uri, 1, 1, 24), "edits") == []
        client.protocol.notify(
            "textDocument/didShowInlineEdit",
            {
                "item": {
                    "command": {
                        "title": get(command, "title"),
                        "command": ACCEPT,
                        "arguments": list(get(command, "arguments")),
                    }
                }
            },
        )
        client.protocol.notify("textDocument/didFocus", {"textDocument": {"uri": uri}})
        accepted = await client.workspace_execute_command_async(
            types.ExecuteCommandParams(command=ACCEPT, arguments=list(get(command, "arguments")))
        )
        assert get(accepted, "accepted") is True
        again = await client.workspace_execute_command_async(
            types.ExecuteCommandParams(command=ACCEPT, arguments=list(get(command, "arguments")))
        )
        assert get(again, "accepted") is False
        report = get(await status(client), "next_edit")
        assert (get(report, "suggested"), get(report, "shown"), get(report, "accepted")) == (1, 1, 1)
        assert not errors(client)
    finally:
        await client.shutdown_session()


async def test_the_models_answers_are_well_formed_and_turning_it_off_answers_empty(
    tiny_repo: Path, tiny_gguf: Path, sweep_gguf: Path
):
    options = {"modelPath": str(tiny_gguf), "maxTokens": 8, "nextEditModel": str(sweep_gguf)}
    client = await start_client(tiny_repo, options, env())
    try:
        await wait_for_log(client, "index ready")
        path = tiny_repo / "shop" / "checkout.py"
        uri = open_file(client, path)
        change(client, uri, 2, 6, 9, "_due")  # "    total" -> "    total_due"
        text = path.read_text().replace("    total =", "    total_due =")
        lines = text.splitlines(keepends=True)
        for version, line, character in ((2, 6, 13), (2, 7, 4)):
            result = await ask(client, uri, version, line, character)
            for edit in get(result, "edits"):
                document = get(edit, "textDocument")
                assert (get(document, "uri"), get(document, "version")) == (uri, 2)
                start, end = get(get(edit, "range"), "start"), get(get(edit, "range"), "end")
                assert (get(start, "line"), get(start, "character")) <= (
                    get(end, "line"),
                    get(end, "character"),
                )
                for pos in (start, end):
                    assert get(pos, "line") <= len(lines)
                    assert get(pos, "line") == len(lines) or get(pos, "character") <= units(
                        lines[get(pos, "line")]
                    )
                assert isinstance(get(edit, "text"), str)
                assert get(get(edit, "command"), "command") == ACCEPT
        report = await status(client)
        model = get(report, "next_edit")
        assert get(model, "loaded") is True and get(model, "name") == "sweep-next-edit-1.5B"
        assert get(model, "path") == str(sweep_gguf) and get(model, "memory_bytes") > 0
        last = get(report, "last_next_edit")
        assert get(last, "prompt_tokens") > 0 and get(last, "verdict") in (
            "edit",
            "unchanged",
            "undo",
            "max_tokens",
            "timeout",
        )
        # Next edits turned off: empty answers, and why in the log once.
        client.workspace_did_change_configuration(
            types.DidChangeConfigurationParams(settings={"codeKb": {"nextEdit": False}})
        )
        await wait_for_log(client, "next edits are off")
        for _ in range(2):
            assert get(await ask(client, uri, 2, 6, 13), "edits") == []
        why = [m for m in client.log_messages if "no next edits: nextEdit is false" in m.message]
        assert len(why) == 1
        assert get(get(await status(client), "next_edit"), "loaded") is False
        assert not errors(client)
    finally:
        await client.shutdown_session()


async def test_a_plain_insertion_at_the_cursor_is_ghost_text_without_a_completion_model(
    tiny_repo: Path, sweep_gguf: Path
):
    client = await start_client(tiny_repo, {"nextEditModel": str(sweep_gguf)}, env(insert="  # checked"))
    try:
        await wait_for_log(client, "index ready")
        path = tiny_repo / "shop" / "checkout.py"
        uri = open_file(client, path)
        at = types.Position(line=7, character=len("    receipt = {}"))
        inline = await client.text_document_inline_completion_async(inline_params(uri, at))
        assert inline is not None
        (item,) = inline.items
        assert item.insert_text == "  # checked" and item.range == types.Range(start=at, end=at)
        assert item.command is not None and item.command.command == ACCEPT
        accepted = await client.workspace_execute_command_async(
            types.ExecuteCommandParams(command=ACCEPT, arguments=item.command.arguments)
        )
        assert get(accepted, "accepted") is True
    finally:
        await client.shutdown_session()


async def test_without_a_next_edit_model_the_answer_is_empty_and_says_why_once(
    tiny_repo: Path, tiny_gguf: Path
):
    client = await start_client(tiny_repo, {"modelPath": str(tiny_gguf), "maxTokens": 4}, env())
    try:
        uri = open_file(client, tiny_repo / "shop" / "checkout.py")
        for _ in range(2):
            assert get(await ask(client, uri, 1, 6, 9), "edits") == []
        why = [m for m in client.log_messages if "no next edits: no next-edit model" in m.message]
        assert len(why) == 1 and "nextEditModel" in why[0].message
        assert get(get(await status(client), "next_edit"), "loaded") is False
    finally:
        await client.shutdown_session()
