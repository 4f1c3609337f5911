"""Recent edits as prompt context."""

from engine import Completer, EngineConfig
from engine.recent import RecentEdits, WithRecentEdits
from tests.unit.test_engine import CURSOR, GEOMETRY, SOURCE, FixedSnippet, FixedSource

CART = "\n".join(f"line {i}" for i in range(40)) + "\n"


def test_the_last_edit_of_each_other_file_comes_first_with_its_neighbourhood():
    recent = RecentEdits(max_files=2, radius_lines=3)
    recent.record("shop/cart.py", CART, CART.index("line 20"))
    recent.record("calc/shapes.py", SOURCE, CURSOR)  # the current file: never offered to itself
    recent.record("shop/cart.py", CART, CART.index("line 30"))  # a later edit moves the window
    (edit,) = recent.snippets_for("calc/shapes.py")
    assert (edit.path, edit.start_line, edit.end_line, edit.prompt_kind) == ("shop/cart.py", 27, 33, "recent")
    assert edit.text == "".join(f"line {i}\n" for i in range(27, 34))
    for name in ("a.py", "b.py", "c.py"):
        recent.record(name, CART, 0)
    assert [e.path for e in recent.snippets_for("calc/shapes.py")] == ["c.py", "b.py"]  # the last two


def test_recent_edits_enter_the_prompt_ahead_of_retrieval_without_duplicates():
    recent = RecentEdits(radius_lines=2)
    geometry = "# geometry\n" * 10 + GEOMETRY.text + "# end\n" * 10
    recent.record(GEOMETRY.path, geometry, geometry.index("def diameter"))
    shifted = FixedSnippet(GEOMETRY.path, GEOMETRY.text, 10, 11)  # the chunk the edit window covers
    units = FixedSnippet("lib/units.py", "CM_PER_INCH = 2.54\n", 0, 0)
    source = WithRecentEdits(FixedSource(shifted, units), recent)
    found = source.snippets("calc/shapes.py", SOURCE, CURSOR)
    assert [(s.path, s.prompt_kind) for s in found] == [
        ("lib/geometry.py", "recent"),
        ("lib/units.py", "snippet"),
    ]
    prompt, _ = Completer(EngineConfig()).prompt("calc/shapes.py", SOURCE, CURSOR, source, "demo")
    assert [p.kind for p in prompt.parts if p.path != "calc/shapes.py"] == ["snippet", "recent"]  # best last
    assert prompt.snippet_paths() == ["lib/units.py", "lib/geometry.py"]
