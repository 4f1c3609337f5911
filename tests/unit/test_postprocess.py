"""Post-processing of generated text: each rule on realistic Python, JavaScript and Go."""

import pytest

from engine.postprocess import StopRules, finish

MARK = "<|>"


def at(marked: str) -> tuple[str, int]:
    """The source without the cursor marker, and the marker's offset."""
    assert marked.count(MARK) == 1
    return marked.replace(MARK, ""), marked.index(MARK)


def fin(text: str, marked: str) -> str:
    return finish(text, *at(marked))


# finish(text) alone, and trailing whitespace


def test_finish_without_a_source_only_rstrips():
    assert finish("return x  \n\n") == "return x"
    assert finish("  \n\t\n") == ""
    assert finish("    indented") == "    indented"


def test_trailing_whitespace_and_blank_lines_are_removed():
    py = "def total(xs):\n    <|>\n"
    assert fin("s = sum(xs)   \n    return s  \n\n\n", py) == "s = sum(xs)\n    return s"
    go = "func main() {\n\t<|>\n}\n"
    assert fin("fmt.Println(1)\t\n\n", go) == "fmt.Println(1)"


def test_whitespace_only_completion_is_empty():
    assert fin("   \n\n  ", "def f():\n    <|>\n") == ""
    assert fin("\n", "const x = <|>;\n") == ""


def test_spacing_before_code_after_the_cursor_stays():
    js = "const args = [<|>b, c];\n"
    assert fin("a, ", js) == "a, "
    # The model put the rest of the line on its own line: the newline stays.
    assert fin("\n  a,\n  b,\n", "const point = f(<|>);\n") == "\n  a,\n  b,\n"


# trim_suffix_overlap


def test_completion_ending_with_the_rest_of_the_line_loses_it():
    assert fin("items))", "print(len(<|>))\n") == "items"
    assert fin("prices);", "const total = sum(<|>);\n") == "prices"
    assert fin('"done")', "func main() {\n\tfmt.Println(<|>)\n}\n") == '"done"'
    assert fin(" > 0:", "def f(x):\n    if x<|>:\n        pass\n") == " > 0"
    # The line after the cursor brings its own spacing.
    assert fin("1  # seconds", "timeout = <|>  # seconds\n") == "1"


def test_suffix_overlap_stays_when_the_completion_opened_the_bracket():
    assert fin("f(x)", "print(<|>)\n") == "f(x)"
    assert fin("a, b.map((x) => x * 2)", "const r = Promise.all(<|>);\n") == "a, b.map((x) => x * 2)"


def test_suffix_overlap_inside_a_string():
    assert fin('world")', 'print("hello <|>")\n') == "world"


def test_last_lines_repeating_the_lines_after_the_cursor_are_dropped():
    go = "func add(a, b int) int {\n\t<|>\n}\n"
    assert fin("return a + b\n}", go) == "return a + b"
    py = "def scale(x):\n    <|>\n    return y\n"
    assert fin("y = x * 2\n    return y", py) == "y = x * 2"
    js = "function area(r) {\n  <|>\n  return a;\n}\n"
    assert fin("const a = Math.PI * r * r;\n  return a;\n}", js) == "const a = Math.PI * r * r;"


def test_completion_that_only_repeats_the_next_line_is_empty():
    assert fin("return y", "def f(x):\n    <|>\n    return y\n") == ""


def test_repeated_closing_lines_stay_when_the_completion_opened_them():
    js = "if (ready) {\n  <|>\n}\n"
    assert fin("if (done) {\n    stop();\n  }", js) == "if (done) {\n    stop();\n  }"
    go = "func main() {\n\t<|>\n}\n"
    text = "for i := 0; i < 3; i++ {\n\t\tfmt.Println(i)\n\t}"
    assert fin(text, go) == text


# cut_unmatched_closer


def test_closer_the_rest_of_the_line_supplies_ends_the_completion():
    assert fin("a, b), extra", "result = compute(<|>)\n") == "a, b"
    assert fin("x * 2);", "const ys = xs.map((x) => <|>);\n") == "x * 2"
    assert fin("x)\n}", "function f() {\n  return g(<|>)\n") == "x"
    # Two closers written, one already there: the completion keeps the other.
    assert fin("x))", "total = f(g(<|>)\n") == "x)"


def test_closers_stay_when_the_completion_reopens_what_the_line_closes():
    js = "if (ok) {\n  run();\n<|>}\n"
    assert fin("} else {\n  stop();\n", js) == "} else {\n  stop();\n"
    assert fin("g(x), y);", "f(<|>)\n") == "g(x), y"


def test_closer_without_opener_ends_the_completion():
    assert fin("return 1)", "def f():\n    <|>\n") == "return 1"
    assert fin(", 3)]", "values = [1, 2<|>\n") == ", 3"
    assert fin("err\n\t}\n}", "func load() error {\n\treturn <|>\n") == "err\n\t}"


def test_closers_with_openers_stay():
    assert fin("}", 'func main() {\n\tfmt.Println("hi")\n<|>') == "}"
    assert fin("], b: 3}", "const o = {a: [1, 2<|>\n") == "], b: 3}"
    assert fin("key=lambda p: p[1])", "ranked = sorted(pairs, <|>\n") == "key=lambda p: p[1])"


def test_brackets_in_strings_and_comments_are_not_counted():
    assert fin('"a)b"', "print(<|>)\n") == '"a)b"'
    assert fin("x /* ) */", "call(<|>);\n") == "x /* ) */"
    assert fin("x  # done)", "values = [<|>\n") == "x  # done)"
    assert fin("')':", "def close(c):\n    if c == <|>\n") == "')':"
    # Inside a string the completion's brackets are text.
    assert fin("a) b", 'msg = "(<|>"\n') == "a) b"


# drop_repeated_line


def test_completion_repeating_the_line_above_is_dropped():
    assert fin("x = compute(a)", "def f(a):\n    x = compute(a)\n    <|>\n") == ""
    assert fin("al += price", "for price in prices:\n    total += price\n    tot<|>\n") == ""
    assert fin("log(x);", "function f(x) {\n  log(x);\n\n  <|>\n}\n") == ""
    assert fin("\n    x = load()", "def f():\n    x = load()<|>\n") == ""


def test_lines_like_the_one_above_but_not_the_same_stay():
    assert fin("return x", "def f(a, x):\n    if a:\n        return x\n    <|>\n") == "return x"
    assert fin("x = 2", "x = 1\n<|>\n") == "x = 2"
    js = "function f(a) {\n  if (a) {\n    if (a.b) {\n      run();\n    }\n    <|>\n"
    assert fin("}", js) == "}"
    assert fin("i++;", "for (;;) {\n  i++;\n  <|>\n") == "i++;"


# indentation


def test_first_line_indent_is_not_doubled_on_an_indented_blank_line():
    assert fin("    return 3.14 * r * r", "def area(r):\n    <|>\n") == "return 3.14 * r * r"
    py = "def show(xs):\n    <|>\n"
    assert fin("    for x in xs:\n        print(x)", py) == "for x in xs:\n        print(x)"
    assert fin("\tx := 1", "func main() {\n\t<|>\n}\n") == "x := 1"


def test_first_line_indent_that_the_block_needs_stays():
    assert fin("    run()", "def f(ok):\n    if ok:\n    <|>\n") == "    run()"
    assert fin("    return 1", "def f():\n<|>\n") == "    return 1"


def test_lines_indented_from_the_cursor_column_get_the_block_indent():
    py = "def show(xs):\n    <|>\n"
    assert fin("for x in xs:\n    print(x)\nreturn xs", py) == "for x in xs:\n        print(x)\n    return xs"
    js = "function f(x) {\n  <|>\n"
    assert fin("if (x) {\n  y();\n}", js) == "if (x) {\n    y();\n  }"
    assert fin("a,\nb)", "def f():\n    x = foo(<|>\n") == "a,\n    b)"
    py = "class Shape:\n    <|>\n"
    text = "@property\ndef area(self):\n    return 0"
    assert fin(text, py) == "@property\n    def area(self):\n        return 0"
    go = "func f(x int) int {\n\tswitch x {\n\tcase 1:\n\t\treturn a\n\t<|>\n"
    assert fin("case 2:\n\treturn b", go) == "case 2:\n\t\treturn b"


def test_lines_already_indented_from_the_margin_stay():
    js = "function f(x) {\n  <|>\n"
    assert fin("if (x) {\n    y();\n  }", js) == "if (x) {\n    y();\n  }"
    assert fin("return 1;\n}", js) == "return 1;\n}"
    py = "def f():\n    <|>\n"
    assert fin("return 1\n\n\ndef g():\n    pass", py) == "return 1\n\n\ndef g():\n    pass"
    assert fin("a()\nelse:\n    b()", "def f(x):\n    if x:\n        <|>\n") == "a()\nelse:\n    b()"


def test_indentation_follows_the_files_tabs_or_spaces():
    go = "func main() {\n\t<|>\n}\n"
    spaced = "for _, s := range xs {\n        use(s)\n    }"
    assert fin(spaced, go) == "for _, s := range xs {\n\t\tuse(s)\n\t}"
    py = "class A:\n    def f(self):\n        <|>\n"
    assert fin("if self.x:\n\t\t\treturn 1", py) == "if self.x:\n            return 1"
    js = "function f() {\n  <|>\n"
    assert fin("if (a) {\n\t\tb();\n\t}", js) == "if (a) {\n    b();\n  }"


def test_mixed_or_unknown_indentation_stays():
    # gofmt aligns with spaces after the tabs: not indentation to convert.
    go = "func main() {\n\t<|>\n}\n"
    assert fin("x := f(a,\n\t    b)", go) == "x := f(a,\n\t    b)"
    # Nothing in the file is indented: no style to follow.
    assert fin("if x:\n\ty = 1", "x = 1\n<|>") == "if x:\n\ty = 1"


# StopRules


def test_stop_rules_block_level_follows_the_file():
    go = "func main() {\n\tx := 1\n}\n\nfunc g() {\n"
    rules = StopRules.for_cursor(go, len(go), max_lines=8)
    assert rules.base_indent == 1
    assert rules.cut("\ty := 2\n\treturn\n}\n") == ("\ty := 2\n\treturn", True)
    py = "def f():\n    pass\n\n\ndef g():\n"
    assert StopRules.for_cursor(py, len(py), max_lines=8).base_indent == 4


@pytest.mark.parametrize("marked", ["x = <|>", "<|>", "def f():\n    <|>\n", "print(<|>)\n"])
def test_finish_of_nothing_is_nothing(marked: str):
    assert fin("", marked) == ""


def test_a_control_character_ends_the_completion():
    src = "def area(r):\n    return <|>\n"
    assert fin("3.14159 * r * r\x1b[31m junk", src) == "3.14159 * r * r"
    assert fin("r\x00\x00", src) == "r"
    assert fin("r \ufffd\ufffd", src) == "r"  # broken UTF-8 from a cut multi-byte token
    assert fin("\x07", src) == ""
    # Tabs and line ends are text; a form feed stays where the file has them (old C and Python do)
    assert fin("r *\tr", src) == "r *\tr"
    paged = "\x0c\ndef area(r):\n    return <|>\n"
    assert fin("r\x0c* r", paged) == "r\x0c* r"
