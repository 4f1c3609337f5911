from retrieval.chunking import ChunkingConfig, chunk_file

SOURCE = '''import os

LIMIT = 3


@decorate
def helper(a, b):
    return a + b


class Service:
    """Does things."""

    retries = 2

    def start(self):
        return "started"

    def stop(self):
        return "stopped"
'''


def test_python_definitions_become_chunks_with_exact_ranges():
    chunks = chunk_file("svc.py", SOURCE)
    data = SOURCE.encode()
    assert [(c.kind, c.name) for c in chunks] == [("module", ""), ("function", "helper"), ("class", "Service")]
    for c in chunks:
        assert data[c.start_byte:c.end_byte].decode() == c.text
        assert SOURCE.split("\n")[c.start_line] == c.text.split("\n")[0]
    helper = chunks[1]
    assert helper.text.startswith("@decorate\ndef helper")
    assert (helper.start_line, helper.end_line) == (5, 7)  # 0-based, end inclusive


def test_large_class_is_split_into_header_and_methods():
    chunks = chunk_file("svc.py", SOURCE, ChunkingConfig(max_chunk_lines=5))
    names = [(c.kind, c.name) for c in chunks]
    assert ("method", "Service.start") in names and ("method", "Service.stop") in names
    header = next(c for c in chunks if c.kind == "class")
    assert header.text.startswith("class Service:") and "retries = 2" in header.text
    assert "def start" not in header.text
    # No two chunks of a file overlap.
    spans = sorted((c.start_line, c.end_line) for c in chunks)
    assert all(a[1] < b[0] for a, b in zip(spans, spans[1:]))


def test_broken_syntax_still_yields_chunks():
    chunks = chunk_file("bad.py", "def ok():\n    return 1\n\ndef broken(:\n    pass\n")
    assert any(c.name == "ok" for c in chunks)
    assert "broken" in "".join(c.text for c in chunks)


def test_other_files_get_line_windows():
    text = "".join(f"line {i}\n" for i in range(100))
    chunks = chunk_file("notes.txt", text, ChunkingConfig(window_lines=40))
    assert [(c.start_line, c.end_line) for c in chunks] == [(0, 39), (40, 79), (80, 99)]
    assert all(c.kind == "window" for c in chunks)
    assert "".join(c.text for c in chunks) == text


def test_empty_file_has_no_chunks():
    assert chunk_file("empty.py", "\n\n") == []
