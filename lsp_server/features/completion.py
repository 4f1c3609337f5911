"""textDocument/completion: the model's completion as one item at the cursor."""

from __future__ import annotations

from lsprotocol import types

from ..server import CodeKbServer


async def completion(ls: CodeKbServer, params: types.CompletionParams) -> types.CompletionList | None:
    result = await ls.complete(params.text_document.uri, params.position)
    if result is None or not result.text:
        return None
    here = types.Range(start=params.position, end=params.position)
    first_line = result.text.strip().split("\n", 1)[0]
    sources = result.prompt.snippet_paths()
    detail = "code-kb" + (f" · context from {', '.join(sources[:3])}" if sources else "")
    item = types.CompletionItem(
        label=first_line[:60] + ("…" if len(first_line) > 60 or "\n" in result.text.strip() else ""),
        kind=types.CompletionItemKind.Text,
        detail=detail,
        documentation=_documentation(ls, result.text),
        # The edit starts at the cursor: nothing typed before it filters the item out.
        text_edit=types.TextEdit(range=here, new_text=result.text),
        filter_text="",
        sort_text="0",
        insert_text_format=types.InsertTextFormat.PlainText,
    )
    return types.CompletionList(is_incomplete=True, items=[item])


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
    server.feature(types.TEXT_DOCUMENT_COMPLETION, types.CompletionOptions(trigger_characters=[".", "(", " "]))(
        completion)
