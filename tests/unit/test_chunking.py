from pathlib import Path

import pytest

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
    assert [(c.kind, c.name) for c in chunks] == [
        ("module", ""),
        ("function", "helper"),
        ("class", "Service"),
    ]
    for c in chunks:
        assert data[c.start_byte : c.end_byte].decode() == c.text
        assert SOURCE.split("\n")[c.start_line] == c.text.split("\n")[0]
    helper = chunks[1]
    assert helper.text.startswith("@decorate\ndef helper")
    assert (helper.start_line, helper.end_line) == (5, 7)  # 0-based, end inclusive


def test_large_class_is_split_into_header_and_methods():
    chunks = chunk_file("svc.py", SOURCE, ChunkingConfig(max_chunk_lines=5, tiny_lines=1))
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
    assert any("ok" in c.name.split(", ") for c in chunks)
    assert "broken" in "".join(c.text for c in chunks)


def test_other_files_get_line_windows():
    text = "".join(f"line {i}\n" for i in range(100))
    chunks = chunk_file("notes.txt", text, ChunkingConfig(window_lines=40))
    assert [(c.start_line, c.end_line) for c in chunks] == [(0, 39), (40, 79), (80, 99)]
    assert all(c.kind == "window" for c in chunks)
    assert "".join(c.text for c in chunks) == text


def test_empty_file_has_no_chunks():
    assert chunk_file("empty.py", "\n\n") == []


def test_tiny_neighbours_are_merged():
    source = "A = 1\n\n\ndef one():\n    return 1\n\n\ndef two():\n    return 2\n\n\ndef big():\n" + "".join(
        f"    x{i} = {i}\n" for i in range(6)
    )
    chunks = chunk_file("m.py", source)
    assert [(c.kind, c.name) for c in chunks] == [("module", "one, two"), ("function", "big")]
    assert chunks[0].text.startswith("A = 1") and chunks[0].text.rstrip().endswith("return 2")


LANGUAGES = Path(__file__).resolve().parents[1] / "fixtures" / "languages"


@pytest.mark.parametrize(
    "name, expected",
    [
        (
            "a.ts",
            {
                ("type", "Shape"),
                ("class", "Circle"),
                ("constant", "unitCircle"),
                ("function", "totalArea"),
                ("type", "Id"),
            },
        ),
        ("a.js", {("class", "Store"), ("function", "ids")}),
        (
            "a.go",
            {("type", "Circle"), ("method", "Circle.Area"), ("function", "TotalArea"), ("constant", "Unit")},
        ),
        (
            "a.rs",
            {("type", "Circle"), ("impl", "impl Circle"), ("type", "Shape"), ("function", "total_area")},
        ),
        ("A.java", {("class", "Circle")}),
        ("a.c", {("function", "circle_area"), ("function", "make_table")}),
        ("a.h", {("type", "circle_t"), ("type", "point"), ("macro", "SQUARE")}),
        ("a.cpp", {("namespace", "geo")}),
    ],
)
def test_each_language_yields_named_definitions(name: str, expected: set):
    text = (LANGUAGES / name).read_text()
    chunks = chunk_file(name, text, ChunkingConfig(tiny_lines=0))
    assert expected <= {(c.kind, c.name) for c in chunks}
    data = text.encode()
    assert all(data[c.start_byte : c.end_byte].decode() == c.text for c in chunks)
    spans = [(c.start_line, c.end_line) for c in chunks]
    assert all(a[1] < b[0] for a, b in zip(spans, spans[1:]))  # in order, never overlapping


@pytest.mark.parametrize(
    "name, members",
    [
        ("A.java", {("method", "Circle.Circle"), ("method", "Circle.area"), ("method", "Circle.totalArea")}),
        (
            "a.cpp",
            {
                ("class", "geo.Circle"),
                ("method", "geo.Circle.area"),
                ("function", "geo.total_area"),
                ("function", "geo.Circle2::perimeter"),
            },
        ),
        ("a.rs", {("method", "impl Circle.new"), ("method", "impl Circle.area")}),
        ("a.ts", {("method", "Circle.constructor"), ("method", "Circle.area")}),
    ],
)
def test_large_containers_split_into_members(name: str, members: set):
    chunks = chunk_file(
        name, (LANGUAGES / name).read_text(), ChunkingConfig(max_chunk_lines=4, window_lines=3, tiny_lines=0)
    )
    assert members <= {(c.kind, c.name) for c in chunks}


def test_long_function_is_cut_between_statements():
    body = "".join(f"    step_{i}()\n" for i in range(30))
    source = f"def long():\n{body}    if done:\n        finish()\n        return 1\n"
    chunks = chunk_file("l.py", source, ChunkingConfig(max_chunk_lines=10, window_lines=10))
    assert {c.name for c in chunks} == {"long"} and len(chunks) == 4
    lines = source.split("\n")
    # No cut falls inside the if-block: every piece starts at a statement of the function body.
    assert all(lines[c.start_line].startswith(("def ", "    step_", "    if ")) for c in chunks)
    assert chunks[0].start_line == 0 and chunks[-1].end_line == len(lines) - 2


def test_check_grammars_finds_every_grammar_loading_and_names_one_that_does_not():
    from retrieval.chunking import LANGUAGES, LanguageSpec, check_grammars

    assert check_grammars() == []
    missing = LanguageSpec("klingon", "tree_sitter_klingon", "language", {})
    [problem] = check_grammars([LANGUAGES[".py"], missing])
    assert problem.startswith("klingon (") and "tree_sitter_klingon" in problem
