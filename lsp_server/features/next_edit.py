"""Next-edit suggestions as GitHub's Copilot language server offers them, so that clients written for
it (sidekick.nvim, copilot-lsp, ...) can use code-kb:

- request `textDocument/copilotInlineEdit`, params `{textDocument: {uri, version}, position}` (extra
  fields such as `context` are ignored); result `{edits: [{text, textDocument: {uri, version}, range,
  command}]}`, ranges in the client's position units, `command` the accept command with the
  suggestion's id as its one argument. A version that is not the document's answers `{edits: []}`.
- notification `textDocument/didShowInlineEdit`, params `{item: {command, ...}}`: the client showed it.
- command `codeKb.acceptNextEdit` (workspace/executeCommand, arguments `[id]`): the user took it.
- notification `textDocument/didFocus`, which those clients send when a buffer gains focus: logged.
"""

from __future__ import annotations

import logging
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams

from ..server import CodeKbServer, OfferedEdit
from . import params as read

log = logging.getLogger(__name__)

COPILOT_INLINE_EDIT = "textDocument/copilotInlineEdit"
DID_SHOW_INLINE_EDIT = "textDocument/didShowInlineEdit"
DID_FOCUS = "textDocument/didFocus"
ACCEPT_NEXT_EDIT = "codeKb.acceptNextEdit"
_SHAPE = '{"textDocument": {"uri": "file:///...", "version": 3}, "position": {"line": 0, "character": 0}}'


def _position(pos: types.Position) -> dict[str, int]:
    return {"line": pos.line, "character": pos.character}


def accept_command(suggestion_id: str) -> dict[str, Any]:
    return {"title": "Accept next edit", "command": ACCEPT_NEXT_EDIT, "arguments": [suggestion_id]}


def _wire(uri: str, edit: OfferedEdit) -> dict[str, Any]:
    return {
        "text": edit.text,
        "textDocument": {"uri": uri, "version": edit.version},
        "range": {"start": _position(edit.range.start), "end": _position(edit.range.end)},
        "command": accept_command(edit.id),
    }


async def copilot_inline_edit(ls: CodeKbServer, params: Any) -> dict[str, Any]:
    uri = read.uri(params, COPILOT_INLINE_EDIT, _SHAPE)
    version = read.optional(read.field(params, "textDocument", COPILOT_INLINE_EDIT, _SHAPE), "version")
    if version is not None and (not isinstance(version, int) or isinstance(version, bool)):
        raise JsonRpcInvalidParams(
            f"{COPILOT_INLINE_EDIT}: textDocument.version must be an integer, got {version!r}"
        )
    position = read.position(
        read.field(params, "position", COPILOT_INLINE_EDIT, _SHAPE), COPILOT_INLINE_EDIT, _SHAPE
    )
    edits = await ls.next_edit(uri, position, version)
    return {"edits": [_wire(uri, e) for e in edits]}


def _suggestion_id(item: Any) -> str | None:
    command = read.optional(item, "command")
    arguments = read.optional(command, "arguments") if command is not None else None
    first = arguments[0] if isinstance(arguments, (list, tuple)) and arguments else None
    return first if isinstance(first, str) else None


def did_show_inline_edit(ls: CodeKbServer, params: Any) -> None:
    suggestion_id = _suggestion_id(read.optional(params, "item"))
    offered = ls.session.next_edits.shown(suggestion_id) if suggestion_id is not None else None
    if offered is None:
        log.info(
            "%s for a suggestion not offered (or long forgotten): %s", DID_SHOW_INLINE_EDIT, suggestion_id
        )
        return
    log.info("next edit shown in %s at %d-%d", offered.path, offered.edit.start, offered.edit.end)


def did_focus(ls: CodeKbServer, params: Any) -> None:
    document = read.optional(params, "textDocument")
    log.debug("%s %s", DID_FOCUS, read.optional(document, "uri") if document is not None else None)


def accept_next_edit(ls: CodeKbServer, *args: Any) -> dict[str, bool]:
    if not args or not isinstance(args[0], str):
        raise JsonRpcInvalidParams(f"{ACCEPT_NEXT_EDIT} takes the suggestion's id, got {list(args)!r}")
    return {"accepted": ls.session.next_edits.accepted(args[0]) is not None}


def register(server: CodeKbServer) -> None:
    server.feature(COPILOT_INLINE_EDIT)(copilot_inline_edit)
    server.feature(DID_SHOW_INLINE_EDIT)(did_show_inline_edit)
    server.feature(DID_FOCUS)(did_focus)
    server.command(ACCEPT_NEXT_EDIT)(accept_next_edit)
