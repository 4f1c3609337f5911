"""Document positions follow LSP's line breaks, not Python's."""

from lsprotocol import types
from pygls.workspace.text_document import TextDocument

import lsp_server.server  # noqa: F401  (fixes TextDocument.lines on import)


def test_form_feeds_and_unicode_separators_do_not_break_lines():
    source = "a = 1\f# page\nb = '\u2028'\x85\nc = 3\r\nd = 4\re"
    doc = TextDocument("file:///x.py", source)
    assert doc.lines == ("a = 1\f# page\n", "b = '\u2028'\x85\n", "c = 3\r\n", "d = 4\r", "e")
    assert doc.offset_at_position(types.Position(line=2, character=2)) == source.index("c = 3") + 2
    assert len(source.splitlines()) == 8  # what pygls's own splitting made of it
    # An incremental edit after the form feed lands where the client meant it.
    doc.apply_change(
        types.TextDocumentContentChangePartial(
            range=types.Range(
                start=types.Position(line=2, character=4), end=types.Position(line=2, character=5)
            ),
            text="33",
        )
    )
    assert "c = 33\r\n" in doc.source and doc.source.startswith("a = 1\f# page\n")
    assert TextDocument("file:///y.py", "").lines == () and TextDocument("file:///z.py", "x\n").lines == (
        "x\n",
    )
