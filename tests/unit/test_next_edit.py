"""Next-edit engine: edit history, Sweep's prompt layout, edits from a rewritten window, and the
predictor on the tiny random-weight GGUF (its output is noise: structure only)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from engine.backends.llama_cpp import LlamaCppModel, lookup
from engine.errors import NextEditFormatError
from engine.next_edit import (
    Change,
    EditHistory,
    NextEditPredictor,
    NextEditRequest,
    SweepFormat,
    TextEdit,
    apply_edits,
    detect_next_edit_format,
    format_named,
    line_window,
    verdict,
    window_edits,
)
from engine.recent import EditSnippet
from tests.fixtures.gguf_builder import write_tiny_gguf


def numbered(n: int, name: str = "value") -> str:
    return "".join(f"line{i} = {name}\n" for i in range(n))


def type_text(
    history: EditHistory, path: str, text: str, offset: int, typed: str, t0: float, step_s: float = 0.2
) -> str:
    """Types `typed` into `text` at `offset` one character at a time, recording each change."""
    for i, ch in enumerate(typed):
        new = text[: offset + i] + ch + text[offset + i :]
        history.record(path, text, new, now_s=t0 + i * step_s)
        text = new
    return text


# -- history ---------------------------------------------------------------------------------------


def test_a_word_typed_key_by_key_is_one_change_with_context_lines():
    history = EditHistory()
    text = numbered(12)
    at = text.index("line5 = value") + len("line5 = value")
    type_text(history, "a.py", text, at, "_total", t0=0.0)
    assert history.changes() == [
        Change(
            "a.py",
            "line2 = value\nline3 = value\nline4 = value\nline5 = value\nline6 = value\nline7 = value\nline8 = value",
            "line2 = value\nline3 = value\nline4 = value\nline5 = value_total\nline6 = value\nline7 = value\n"
            "line8 = value",
        )
    ]


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
    without_b = typed[: at + 1] + typed[at + 2 :]
    history.record("a.py", typed, without_b, now_s=0.5)
    history.record("a.py", without_b, text, now_s=0.6)
    assert history.changes() == []


def test_the_window_before_the_last_change():
    history = EditHistory()
    before = numbered(30)
    after = before.replace("line12 = value", "line12 = renamed")
    history.record("a.py", before, after, now_s=0.0)
    assert history.window_before_last_change("a.py", after, 10, 14) == "\n".join(
        f"line{i} = value" for i in range(10, 15)
    )
    # Two lines inserted above the window: the window's lines were two lines higher before.
    history.record("b.py", before, "new\nnew\n" + before, now_s=1.0)
    assert (
        history.window_before_last_change("b.py", "new\nnew\n" + before, 12, 14)
        == "line10 = value\nline11 = value\nline12 = value"
    )
    # A text the history has not seen (no record): the window as it is.
    assert history.window_before_last_change("a.py", before, 0, 1) == "line0 = value\nline1 = value"


# -- the prompt ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vocab(tiny_gguf: Path) -> LlamaCppModel:
    return LlamaCppModel(tiny_gguf, vocab_only=True)


def test_the_prompt_has_zeds_layout_for_sweep(vocab: LlamaCppModel):
    # The example of Zed's test_build_prompt_uses_run_model_ordering (sweep_prompt.rs).
    window = line_window("current window", 3, 10, 10)
    request = NextEditRequest(
        "src/main.rs",
        window,
        "old window",
        [Change("src/lib.rs", "old", "new")],
        [EditSnippet("src/context.rs", "context", 0, 0)],
    )
    prompt = SweepFormat().build(vocab, request, 4096)
    assert prompt.text == (
        "<|file_sep|>src/context.rs\n"
        "context\n"
        "<|file_sep|>src/lib.rs.diff\n"
        "original:\n"
        "old\n"
        "updated:\n"
        "new\n"
        "<|file_sep|>original/src/main.rs\n"
        "old window\n"
        "<|file_sep|>current/src/main.rs\n"
        "current window\n"
        "<|file_sep|>updated/src/main.rs\n"
    )
    sep = vocab.special_id("<|file_sep|>")
    assert sep is not None
    assert prompt.tokens.count(sep) == 5
    assert vocab.decode(prompt.tokens) == prompt.text.replace(
        "<|file_sep|>", ""
    )  # specials decode to nothing


def test_the_window_is_ten_lines_either_side_of_the_cursor():
    source = numbered(40)
    w = line_window(source, source.index("line20"), 10, 10)
    assert (w.start_line, w.end_line) == (10, 30)
    assert w.text == source[w.start : w.end] == "\n".join(f"line{i} = value" for i in range(10, 31))
    top = line_window(source, 0, 10, 10)
    assert (top.start_line, top.end_line, top.start) == (0, 10, 0)
    end = line_window(source, len(source), 10, 10)  # after the final newline: an empty last line
    assert (end.start_line, end.end_line, end.end) == (30, 40, len(source))


def test_user_text_that_spells_file_sep_never_becomes_the_token(vocab: LlamaCppModel):
    source = 'SEP = "<|file_sep|>"\nEND = "</s>"\n'
    window = line_window(source, 0, 10, 10)
    request = NextEditRequest(
        "<|file_sep|>.py",
        window,
        window.text,
        [Change("x.py", "<|file_sep|>", "b")],
        [EditSnippet("y.py", "<|file_sep|><|endoftext|>", 0, 0)],
    )
    fmt = SweepFormat()
    prompt = fmt.build(vocab, request, 4096)
    sep = vocab.special_id("<|file_sep|>")
    eot = vocab.special_id("<|endoftext|>")
    assert prompt.tokens.count(sep) == 5  # only the format's own
    assert eot not in prompt.tokens
    assert '"<|file_sep|>"' in vocab.decode(prompt.tokens)
    # The window spells </s>: it is no stop for this request; the separator token still is.
    stops = fmt.stops(vocab, request)
    assert stops.texts == ("<|file_sep|>",) and sep in stops.ids and eot in stops.ids
    plain = NextEditRequest("a.py", line_window("x = 1", 0, 10, 10), "x = 1", [], [])
    assert fmt.cutter(fmt.stops(vocab, plain))("y = 2\n</s>junk") == ("y = 2\n", True)


def test_the_budget_drops_related_files_then_the_oldest_changes(vocab: LlamaCppModel):
    source = numbered(30)
    window = line_window(source, source.index("line15"), 10, 10)
    changes = [Change("a.py", numbered(20), numbered(20, "x")), Change("b.py", "old", "new")]
    snippets = [
        EditSnippet("big.py", numbered(200), 0, 199),
        EditSnippet("small.py", "def f(): pass", 0, 0),
        EditSnippet("a_window_line.py", "x", 0, 0),
        EditSnippet("cur.py", "line15 = value", 15, 15),
    ]
    fmt = SweepFormat()
    full = fmt.build(vocab, NextEditRequest("cur.py", window, window.text, changes, snippets), 100_000)
    assert "<|file_sep|>cur.py\n" not in full.text  # the window shows those lines already
    windows_only = fmt.build(vocab, NextEditRequest("cur.py", window, window.text, [], []), 100_000).n_tokens
    tight = fmt.build(
        vocab, NextEditRequest("cur.py", window, window.text, changes, snippets), windows_only + 40
    )
    assert tight.n_tokens <= windows_only + 40
    assert "big.py" not in tight.text and "a.py.diff" not in tight.text
    assert "b.py.diff" in tight.text and tight.text.endswith("<|file_sep|>updated/cur.py\n")


def test_sweep_models_are_recognised_by_name(tmp_path: Path, vocab: LlamaCppModel):
    assert detect_next_edit_format(vocab) is None  # a plain Qwen2.5-Coder vocabulary
    sweep = LlamaCppModel(write_tiny_gguf(tmp_path / "m.gguf", name="sweep-next-edit-1.5B"), vocab_only=True)
    assert isinstance(detect_next_edit_format(sweep), SweepFormat)
    v2 = LlamaCppModel(write_tiny_gguf(tmp_path / "v2.gguf", name="sweep-next-edit-v2-7B"), vocab_only=True)
    assert detect_next_edit_format(v2) is None  # another layout
    assert isinstance(format_named("sweep"), SweepFormat)
    with pytest.raises(NextEditFormatError):
        format_named("zeta")


# -- edits -------------------------------------------------------------------------------------------


SOURCE = (
    "def total(items):\n"  # 0
    "    result = 0\n"
    "    for item in items:\n"
    "        result += item.price\n"
    "    return result\n"
    "\n"  # 5
    "\n"
    "def report(items):\n"
    "    value = total(items)\n"  # 8: the cursor's line
    "    print(value)\n"
    "    return value\n"  # 10
)
CURSOR = SOURCE.index("total(items)\n    print")


def rewritten(old: str, new: str) -> str:
    w = line_window(SOURCE, CURSOR, 10, 10)
    assert old in w.text
    return w.text.replace(old, new)


def test_an_edit_above_the_cursor_is_the_changed_characters_only():
    w = line_window(SOURCE, CURSOR, 10, 10)
    edits = window_edits(w, rewritten("item.price", "item.cost"))
    start = SOURCE.index("price")
    assert edits == [TextEdit(start, start + len("price"), "cost")]
    assert edits[0].start < CURSOR
    assert apply_edits(SOURCE, edits) == SOURCE.replace("item.price", "item.cost")


def test_an_edit_below_the_cursor_and_a_new_line():
    w = line_window(SOURCE, CURSOR, 10, 10)
    new = rewritten("    print(value)\n", "    print(value)\n    log(value)\n")
    edits = window_edits(w, new)
    assert len(edits) == 1 and edits[0].start > CURSOR and edits[0].start == edits[0].end
    assert apply_edits(SOURCE, edits) == SOURCE.replace(
        "    print(value)\n", "    print(value)\n    log(value)\n"
    )


def test_several_hunks_above_and_below():
    w = line_window(SOURCE, CURSOR, 10, 10)
    new = w.text.replace("def total(items)", "def total(items, tax)").replace(
        "return value", "return value * 2"
    )
    new = new.replace("\n\n\n", "\n\n")  # and a blank line deleted
    edits = window_edits(w, new)
    assert len(edits) == 3
    assert edits[0].start < edits[1].start < CURSOR < edits[2].start
    expected = SOURCE.replace("def total(items)", "def total(items, tax)").replace(
        "return value", "return value * 2"
    )
    assert apply_edits(SOURCE, edits) == expected.replace("\n\n\n", "\n\n")


def test_appending_after_the_windows_last_line():
    source = "a = 1\nb = 2"
    w = line_window(source, 0, 10, 10)
    edits = window_edits(w, "a = 1\nb = 2\nc = 3")
    assert edits == [TextEdit(len(source), len(source), "\nc = 3")]
    assert window_edits(w, "b = 2") == [TextEdit(0, 6, "")]


def test_nothing_to_suggest_unchanged_cut_off_or_undoing_the_last_change():
    w = line_window(SOURCE, CURSOR, 10, 10)
    before_last_change = w.text.replace("value = total(items)", "value = 0")
    assert verdict(w, before_last_change, w.text, "eog") == "unchanged"
    assert verdict(w, before_last_change, rewritten("price", "cost"), "max_tokens") == "max_tokens"
    assert verdict(w, before_last_change, rewritten("price", "cost"), "timeout") == "timeout"
    assert verdict(w, before_last_change, before_last_change, "eog") == "undo"
    assert verdict(w, before_last_change, rewritten("price", "cost"), "rule") == "edit"
    assert window_edits(w, w.text) == []


# -- the predictor on the tiny model ------------------------------------------------------------------


@pytest.fixture(scope="module")
def predictor(tiny_gguf: Path) -> NextEditPredictor:
    model = LlamaCppModel(tiny_gguf, n_ctx=4096, n_threads=2)
    return NextEditPredictor(model, SweepFormat(), budget_tokens=2048, max_tokens=48)


def test_the_predictor_answers_an_edit_or_nothing_and_reports_its_tokens(predictor: NextEditPredictor):
    history = EditHistory()
    source = numbered(40)
    edited = type_text(history, "shop.py", source, source.index("line20 = value") + 14, "_x", t0=0.0)
    snippets = [EditSnippet("lib.py", "def price(item):\n    return item.cost\n", 0, 1)]
    result = predictor.predict("shop.py", edited, edited.index("_x") + 2, history, snippets)
    last = predictor.last
    assert last is not None
    assert result is None or result is last
    assert last.verdict in ("edit", "unchanged", "undo", "max_tokens", "timeout")
    assert (result is not None) == (last.verdict == "edit") == bool(last.edits)
    assert last.n_prompt == len(last.prompt.tokens) == last.n_evaluated + last.n_reused
    assert last.prompt.text.startswith("<|file_sep|>lib.py\n")
    assert "<|file_sep|>shop.py.diff\noriginal:\n" in last.prompt.text
    assert "line20 = value_x" in last.prompt.text
    assert last.generation.n_generated > 0
    for e in last.edits:
        assert last.window.start <= e.start <= e.end <= last.window.end


def test_a_keystroke_reuses_most_of_the_prompt(predictor: NextEditPredictor):
    history = EditHistory()
    snippets = [EditSnippet("lib.py", numbered(60, "library"), 0, 59)]
    source = numbered(40)
    at = source.index("line20 = value") + 14
    edited = type_text(history, "shop.py", source, at, "_t", t0=0.0)
    predictor.predict("shop.py", edited, at + 2, history, snippets)
    first = predictor.last
    assert first is not None
    again = type_text(history, "shop.py", edited, at + 2, "o", t0=0.4)
    predictor.predict("shop.py", again, at + 3, history, snippets)
    second = predictor.last
    assert second is not None and second is not first
    assert second.n_reused >= 0.8 * second.n_prompt
    assert second.n_evaluated < 0.2 * second.n_prompt


class CancelAfter(threading.Event):
    """Set once it has been asked `n` times (the model asks inside each decode and per token)."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n

    def is_set(self) -> bool:
        self.n -= 1
        return self.n < 0 or super().is_set()


def test_cancelled_predictions_suggest_nothing(predictor: NextEditPredictor):
    history = EditHistory()
    source = numbered(40, "cancelled")
    done = threading.Event()
    done.set()
    predictor.last = None
    assert predictor.predict("c.py", source, 10, history, cancel=done) is None
    assert predictor.last is None  # not even started
    assert predictor.predict("c.py", source, 10, history, cancel=CancelAfter(3)) is None
    assert predictor.last is not None and predictor.last.verdict == "cancelled"
    assert predictor.last.edits == []


# -- speculative decoding with the window as the draft -------------------------------------------------


def test_draft_lookup_follows_the_answer_through_the_draft():
    draft = [1, 2, 3, 9, 1, 2, 4, 5]
    assert lookup([7, 1, 2], draft, 3) == (2, [3, 9, 1])  # the longest n-gram, the first after the hint
    assert lookup([1, 2], draft, 3, hint=6) == (6, [4, 5])  # where the previous lookup left off
    assert lookup([9], draft, 2, hint=7) == (4, [1, 2])  # none after the hint: the last one
    assert lookup([8], draft, 3) == (0, [])


def test_a_draft_changes_how_many_decodes_not_the_tokens(predictor: NextEditPredictor):
    model = predictor.backend
    assert isinstance(model, LlamaCppModel)
    prompt = model.encode(numbered(30, "drafted"))

    def no_rule(text: str) -> tuple[str, bool]:
        return text, False

    def run(draft: list[int]):
        return model.generate_tokens(
            prompt, max_tokens=60, stop_ids=frozenset(), cut=no_rule, timeout_s=60, draft=draft
        )

    plain = run([])
    assert plain.n_drafted == 0 and plain.n_decodes == plain.n_generated - 1
    copied = run(model.encode(plain.text))  # a draft the answer agrees with: few batched decodes
    assert (copied.text, copied.n_generated) == (plain.text, plain.n_generated)
    assert copied.n_draft_accepted > plain.n_generated // 2
    assert copied.n_decodes < plain.n_decodes // 2
    unrelated = run(model.encode(numbered(30, "unrelated") + plain.text[::-1]))  # mostly rejected drafts
    assert (unrelated.text, unrelated.n_generated) == (plain.text, plain.n_generated)


def test_the_predictor_gives_the_same_answer_with_and_without_the_draft(predictor: NextEditPredictor):
    history = EditHistory()
    source = numbered(40, "spec")
    edited = type_text(history, "s.py", source, source.index("line12"), "new_", t0=0.0)
    results = []
    for speculative in (False, True):
        predictor.speculative = speculative
        predictor.predict("s.py", edited, edited.index("new_") + 4, history)
        assert predictor.last is not None
        results.append(predictor.last)
    predictor.speculative = True
    plain, drafted = results
    assert (drafted.new_window, drafted.verdict, drafted.edits) == (
        plain.new_window,
        plain.verdict,
        plain.edits,
    )
    assert plain.generation.n_drafted == 0
