"""textDocument/inlineCompletion (LSP 3.18): ghost text at the cursor."""

from __future__ import annotations

from lsprotocol import types

from ..server import CodeKbServer


async def inline_completion(
    ls: CodeKbServer, params: types.InlineCompletionParams
) -> types.InlineCompletionList | None:
    result = await ls.complete(params.text_document.uri, params.position)
    if result is None or not result.text:
        return None
    here = types.Range(start=params.position, end=params.position)
    return types.InlineCompletionList(items=[types.InlineCompletionItem(insert_text=result.text, range=here)])


def register(server: CodeKbServer) -> None:
    # Without the options object pygls does not advertise the capability and clients never ask.
    server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())(inline_completion)
