"""textDocument/inlineCompletion (LSP 3.18): ghost text at the cursor.

The completion model answers first. When it answers nothing (none configured, or an empty
completion), a next edit that is a plain insertion at the cursor, and the only edit predicted there,
is offered instead, with the accept command, so that clients that speak only inlineCompletion see
that part of next edits too. Edits elsewhere need copilotInlineEdit (features/next_edit.py)."""

from __future__ import annotations

from lsprotocol import types

from ..server import CodeKbServer
from .next_edit import ACCEPT_NEXT_EDIT


async def inline_completion(
    ls: CodeKbServer, params: types.InlineCompletionParams
) -> types.InlineCompletionList | None:
    here = types.Range(start=params.position, end=params.position)
    result = await ls.complete(params.text_document.uri, params.position)
    if result is not None and result.text:
        return types.InlineCompletionList(
            items=[types.InlineCompletionItem(insert_text=result.text, range=here)]
        )
    if result is None and ls.session.completer is not None:
        return None  # superseded, cancelled or refused: not a completion model that had nothing to say
    edit = await ls.next_edit_insertion(params.text_document.uri, params.position)
    if edit is None:
        return None
    accept = types.Command(title="Accept next edit", command=ACCEPT_NEXT_EDIT, arguments=[edit.id])
    return types.InlineCompletionList(
        items=[types.InlineCompletionItem(insert_text=edit.text, range=here, command=accept)]
    )


def register(server: CodeKbServer) -> None:
    # Without the options object pygls does not advertise the capability and clients never ask.
    server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())(inline_completion)
