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


def test_offsets_become_positions_in_utf16_units_at_every_line_end():
    from lsp_server.server import lsp_position

    source = "a😀b\r\nc\nend"
    doc = TextDocument("file:///x.py", source)

    def at(offset: int) -> tuple[int, int]:
        p = lsp_position(doc, offset)
        return p.line, p.character

    assert [at(i) for i in range(len(source) + 1)] == [
        (0, 0),
        (0, 1),
        (0, 3),
        (0, 4),
        (0, 4),
        (1, 0),
        (1, 1),
        (2, 0),
        (2, 1),
        (2, 2),
        (2, 3),
    ]
    for offset in (0, 2, 5, 7, len(source)):  # the way back
        assert doc.offset_at_position(lsp_position(doc, offset)) == offset
    assert at(0) == (0, 0) and lsp_position(TextDocument("file:///e.py", ""), 0) == types.Position(
        line=0, character=0
    )
    assert lsp_position(TextDocument("file:///n.py", "x\n"), 2) == types.Position(line=1, character=0)
