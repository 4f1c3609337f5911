"""Document sync hooks: pygls keeps the text; we warm the KV cache on open and after a pause, and
keep the next-edit history (the session decides which documents it may learn from)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from lsprotocol import types
from pygls.uris import to_fs_path

from ..server import CodeKbServer, str_offset


def did_open(ls: CodeKbServer, params: types.DidOpenTextDocumentParams) -> None:
    if (buffer := ls.buffer(params.text_document.uri)) is not None:
        if ls.indexes is not None and buffer.path is not None:
            ls.indexes.opened(buffer.path)  # a first index takes it (and its imports) first
        ls.session.opened(buffer)
        ls.idle.warm(buffer, None)


def did_change(ls: CodeKbServer, params: types.DidChangeTextDocumentParams) -> None:
    """Remember where the user edits; pygls has already applied the change."""
    uri = params.text_document.uri
    last = params.content_changes[-1] if params.content_changes else None
    if last is None:
        return
    doc = ls.workspace.text_documents.get(unquote(uri))
    if doc is None:  # never opened: pygls has logged it; there is no text to track
        return
    if isinstance(last, types.TextDocumentContentChangePartial):
        end = last.range.start
        lines = last.text.split("\n")
        position = types.Position(
            line=end.line + len(lines) - 1,
            character=(end.character if len(lines) == 1 else 0) + len(lines[-1].encode("utf-16-le")) // 2,
        )
        offset = str_offset(doc, position)
    else:
        offset = len(doc.source)
    if (buffer := ls.buffer(uri)) is not None:
        ls.idle.edited(uri, buffer, min(offset, len(doc.source)))


def did_close(ls: CodeKbServer, params: types.DidCloseTextDocumentParams) -> None:
    """A closed document's changes leave the next-edit history."""
    uri = params.text_document.uri
    if "\0" not in uri and urlsplit(uri).scheme == "file" and (path := to_fs_path(uri)):
        ls.session.closed(Path(path))


def register(server: CodeKbServer) -> None:
    # pygls runs these after its own handlers for the same notifications.
    server.feature(types.TEXT_DOCUMENT_DID_OPEN)(did_open)
    server.feature(types.TEXT_DOCUMENT_DID_CHANGE)(did_change)
    server.feature(types.TEXT_DOCUMENT_DID_CLOSE)(did_close)
