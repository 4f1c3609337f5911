"""Next-edit engine: the edit history."""

from __future__ import annotations

from engine.next_edit import Change, EditHistory


def numbered(n: int, name: str = "value") -> str:
    return "".join(f"line{i} = {name}\n" for i in range(n))


def type_text(history: EditHistory, path: str, text: str, offset: int, typed: str, t0: float,
              step_s: float = 0.2) -> str:
    """Types `typed` into `text` at `offset` one character at a time, recording each change."""
    for i, ch in enumerate(typed):
        new = text[:offset + i] + ch + text[offset + i:]
        history.record(path, text, new, now_s=t0 + i * step_s)
        text = new
    return text


# -- history ---------------------------------------------------------------------------------------


def test_a_word_typed_key_by_key_is_one_change_with_context_lines():
    history = EditHistory()
    text = numbered(12)
    at = text.index("line5 = value") + len("line5 = value")
    type_text(history, "a.py", text, at, "_total", t0=0.0)
    assert history.changes() == [Change(
        "a.py",
        "line2 = value\nline3 = value\nline4 = value\nline5 = value\nline6 = value\nline7 = value\nline8 = value",
        "line2 = value\nline3 = value\nline4 = value\nline5 = value_total\nline6 = value\nline7 = value\n"
        "line8 = value")]


def test_a_pause_or_a_distant_line_starts_a_new_change():
    history = EditHistory()
    text = numbered(40)
    text = type_text(history, "a.py", text, text.index("line1 ="), "x", t0=0.0)
    text = type_text(history, "a.py", text, text.index("line3 ="), "y", t0=5.0)  # after a pause
    text = type_text(history, "a.py", text, text.index("line30 ="), "z", t0=5.2)  # far below
    text = type_text(history, "b.py", numbered(3), 0, "w", t0=5.4)  # another file
    changes = history.changes()
    assert [c.path for c in changes] == ["a.py", "a.py", "b.py"]  # the last three, oldest first
    assert "yline3" in changes[0].updated and "yline3" not in changes[0].original
    assert "zline30" in changes[1].updated
    assert [c.path for c in history.changes("a.py")] == ["a.py", "a.py", "a.py"]
    assert "xline1" in history.changes("a.py")[0].updated


def test_changes_are_capped_in_lines_and_in_number():
    history = EditHistory(max_bursts=4)
    old = numbered(100)
    new = numbered(100, "other")
    history.record("big.py", old, new, now_s=0.0)
    (change,) = history.changes()
    original = change.original.split("\n")
    assert len(original) == 40
    assert original[:20] == [f"line{i} = value" for i in range(20)]
    assert original[20] == "..."
    assert original[21:] == [f"line{i} = value" for i in range(82, 100)] + [""]  # the text's final newline
    for i in range(6):
        history.record(f"f{i}.py", "a\n", "b\n", now_s=10.0 + i)
    assert [c.path for c in history.changes()] == ["f3.py", "f4.py", "f5.py"]
    history.forget("f5.py")
    assert [c.path for c in history.changes()] == ["f2.py", "f3.py", "f4.py"]


def test_typing_and_deleting_it_again_leaves_no_change():
    history = EditHistory()
    text = numbered(5)
    at = text.index("line2")
    typed = type_text(history, "a.py", text, at, "ab", t0=0.0)
    without_b = typed[:at + 1] + typed[at + 2:]
    history.record("a.py", typed, without_b, now_s=0.5)
    history.record("a.py", without_b, text, now_s=0.6)
    assert history.changes() == []


def test_the_window_before_the_last_change():
    history = EditHistory()
    before = numbered(30)
    after = before.replace("line12 = value", "line12 = renamed")
    history.record("a.py", before, after, now_s=0.0)
    assert history.window_before_last_change("a.py", after, 10, 14) == "\n".join(
        f"line{i} = value" for i in range(10, 15))
    # Two lines inserted above the window: the window's lines were two lines higher before.
    history.record("b.py", before, "new\nnew\n" + before, now_s=1.0)
    assert history.window_before_last_change("b.py", "new\nnew\n" + before, 12, 14) == \
        "line10 = value\nline11 = value\nline12 = value"
    # A text the history has not seen (no record): the window as it is.
    assert history.window_before_last_change("a.py", before, 0, 1) == "line0 = value\nline1 = value"
