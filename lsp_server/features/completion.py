"""textDocument/completion: the model's completion as one item at the cursor."""

from __future__ import annotations

import re
from urllib.parse import unquote

from lsprotocol import types

from ..server import CodeKbServer

_WORD_AT_END = re.compile(r"\w*$")


async def completion(ls: CodeKbServer, params: types.CompletionParams) -> types.CompletionList | None:
    result = await ls.complete(
        params.text_document.uri, params.position, ls.settings.engine.candidates, kind="completion"
    )
    if result is None or not result.text:
        return None
    # The edit replaces the identifier being typed, so the client filters the item by what the
    # user typed (the word plus the completion) and keeps showing it while they type on.
    doc = ls.workspace.text_documents.get(unquote(params.text_document.uri))
    if doc is None:  # closed while the model ran
        return None
    offset = doc.offset_at_position(params.position)
    line_start = doc.source.rfind("\n", 0, offset) + 1
    word = _WORD_AT_END.findall(doc.source[line_start:offset])[0]
    # Positions count UTF-16 units: a word with characters beyond the BMP is longer there.
    start = types.Position(
        line=params.position.line, character=params.position.character - len(word.encode("utf-16-le")) // 2
    )
    sources = result.prompt.snippet_paths()
    detail = "code-kb" + (
        f" · context from {', '.join(sources[:3])}" if sources else " · no retrieved context"
    )
    items = [
        _item(ls, word, text, start, params.position, detail, rank)
        for rank, text in enumerate([result.text, *result.alternatives])
    ]
    return types.CompletionList(is_incomplete=True, items=items)


def _item(
    ls: CodeKbServer, word: str, text: str, start: types.Position, end: types.Position, detail: str, rank: int
) -> types.CompletionItem:
    first_line = text.strip().split("\n", 1)[0]
    return types.CompletionItem(
        label=(word + first_line)[:60] + ("…" if len(word + first_line) > 60 or "\n" in text.strip() else ""),
        kind=types.CompletionItemKind.Text,
        detail=detail,
        documentation=_documentation(ls, text),
        text_edit=types.TextEdit(range=types.Range(start=start, end=end), new_text=word + text),
        filter_text=word + text,
        sort_text=str(rank),
        preselect=rank == 0,
        insert_text_format=types.InsertTextFormat.PlainText,
    )


def _documentation(ls: CodeKbServer, text: str) -> types.MarkupContent | str:
    """The whole completion, as markdown where the client renders it, else as the client allows."""
    caps = ls.client_capabilities.text_document
    item_caps = caps.completion.completion_item if caps and caps.completion else None
    formats = (item_caps.documentation_format or []) if item_caps else []
    if types.MarkupKind.Markdown in formats:
        return types.MarkupContent(kind=types.MarkupKind.Markdown, value=f"```\n{text}\n```")
    if types.MarkupKind.PlainText in formats:
        return types.MarkupContent(kind=types.MarkupKind.PlainText, value=text)
    return text


def register(server: CodeKbServer) -> None:
    server.feature(types.TEXT_DOCUMENT_COMPLETION, types.CompletionOptions(trigger_characters=[".", "("]))(
        completion
    )
