"""Each FIM family's prompt in the order it was trained on, built with its real (or derived) tokenizer,
and a suffix-first prompt that keeps its suffix while the user types, so the KV cache holds all but
the prefix's end."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from engine import Completer, EngineConfig
from engine.backends.kv_plan import plan
from engine.prompt import Prompt
from engine.templates import FAMILIES
from tests.fixtures import vocabs


@dataclass
class FixedSnippet:
    path: str
    text: str
    start_line: int
    end_line: int
    prompt_kind: str = "snippet"
    reason: str = "fixed"


class FixedSource:
    def __init__(self, *snippets: FixedSnippet) -> None:
        self.items = list(snippets)

    def snippets(self, path, source, offset, limit=None):
        return self.items[:limit]


CONTEXT = FixedSource(
    FixedSnippet("lib/geometry.py", "def diameter(radius):\n    return 2 * radius\n", 10, 11),
    FixedSnippet("lib/units.py", "CM_PER_INCH = 2.54\n", 0, 0),
)
SOURCE = "import math\n\n\ndef area(radius):\n    return math.pi * radius ** 2\n\n\ndef half(radius):\n    return \n\nprint(area(2))\n"
CURSOR = SOURCE.index("    return \n") + len("    return ")


def _completer(real_tokenizer, family: str, budget: int = 600) -> Completer:
    return Completer(EngineConfig(budget_tokens=budget), tokenizer=real_tokenizer(family))


def _at(prompt: Prompt, text: str) -> int:
    return next(i for i, s in enumerate(prompt.segments) if s.kind == "template" and s.text == text)


@pytest.mark.parametrize("family", vocabs.FAMILY_NAMES)
def test_each_family_lays_out_its_prompt_in_its_own_order(real_tokenizer, family: str):
    completer = _completer(real_tokenizer, family)
    tpl, vocab = completer.template, completer.tokenizer
    assert tpl.name == family
    prompt, _ = completer.prompt("calc/shapes.py", SOURCE, CURSOR, CONTEXT, "demo")
    segments = prompt.segments
    kinds = [s.kind for s in segments]
    prefix, suffix = kinds.index("prefix"), kinds.index("suffix")
    pre, suf = _at(prompt, tpl.prefix), _at(prompt, tpl.suffix)
    assert SOURCE[:CURSOR].endswith(segments[prefix].text) and SOURCE[CURSOR:].startswith(
        segments[suffix].text
    )
    assert suffix == suf + 1  # the suffix right after its marker
    if tpl.order == "psm":
        assert pre < prefix < suf  # ... prefix, then suffix
    else:
        assert suf < pre < prefix  # suffix first, the prefix's end meets the middle
    if tpl.middle:
        assert _at(prompt, tpl.middle) == len(segments) - 1
        assert prompt.tokens[-1] == vocab.special_id(tpl.middle)
    else:  # Codestral: the prompt ends with the prefix
        assert kinds[-1] == "prefix" and prompt.text.endswith("    return ")
    snippets = [i for i, k in enumerate(kinds) if k == "snippet"]
    assert len(snippets) == 2
    if tpl.has_repo_layout:  # other files under the family's file token, before the FIM markers
        assert max(snippets) < min(pre, suf)
        assert (
            f"{tpl.file_sep}lib/units.py\n" in prompt.text
            and f"{tpl.file_sep}calc/shapes.py\n" in prompt.text
        )
    else:  # ... else at the start of the prefix, after its marker, under comment headers
        assert pre < min(snippets) and max(snippets) < prefix
        assert "# lib/units.py\n" in prompt.text
    # Every marker is its one special token; no special token comes from the text.
    specials = {vocab.special_id(t) for f in FAMILIES for t in f.specials()} - {None}
    markers = [t for s in segments if s.kind != "template" for t in s.tokens if t in specials]
    assert markers == []
    for i in (pre, suf):
        assert segments[i].tokens == [vocab.special_id(segments[i].text)]


LONG = "".join(f"value_{i} = compute({i})\n" for i in range(60))
FILE = LONG + "def total(values):\n    result = 0\n" + LONG.replace("value_", "after_")


def _typing(source: str, at: int, keys: list[str]):
    """(source, offset) after each key typed at `at`, an editor's Enter carrying indentation."""
    for key in keys:
        source = source[:at] + key + source[at:]
        at += len(key)
        yield source, at


def test_a_suffix_first_prompt_keeps_its_suffix_while_typing_and_reuses_all_but_the_end(real_tokenizer):
    completer = _completer(real_tokenizer, "seed-coder", budget=700)
    at = FILE.index("    result = 0\n") + len("    result = 0")
    first, _ = completer.prompt("calc.py", FILE, at, CONTEXT, "demo")
    suffix = next(p for p in first.parts if p.kind == "suffix")
    assert 0 < first.suffix_lines < FILE[at:].count("\n")  # cut: the file goes on below it
    held = first.tokens
    keys = ["\n    ", "f", "o", "r", " ", "v", " ", "i", "n", " ", "values", ":", "\n        ", "result"]
    for source, offset in _typing(FILE, at, keys):
        prompt, _ = completer.prompt("calc.py", source, offset, CONTEXT, "demo")
        now = next(p for p in prompt.parts if p.kind == "suffix")
        assert now.text == suffix.text  # neither Enter nor typing re-cuts it
        p = plan(held, prompt.tokens)  # as the model plans it: runs that merely moved are shifted
        # Everything before the prefix's last line is in the cache (where a line slid out of the
        # prefix's window, the rest moved): only its end is evaluated.
        last_line = source[:offset].split("\n")[-1]
        assert p.n_evaluated <= len(completer.tokenizer.encode(last_line)) + 2, (p.n_evaluated, last_line)
        held = prompt.tokens


def test_a_kept_suffix_is_chosen_afresh_when_it_no_longer_fits(real_tokenizer):
    completer = _completer(real_tokenizer, "mellum", budget=700)
    at = FILE.index("    result = 0\n") + len("    result = 0")
    first, _ = completer.prompt("calc.py", FILE, at, None, "demo")
    n = first.suffix_lines
    # The lines below the cursor grow fivefold: the kept number of lines would take over twice the share.
    below = at + len("\n")
    grown = FILE[:below] + FILE[below:].replace("compute(", "compute_with_a_much_longer_name_and_more(args, ")
    again, _ = completer.prompt("calc.py", grown, at, None, "demo")
    assert again.suffix_lines < n
    assert again.n_tokens <= 700
