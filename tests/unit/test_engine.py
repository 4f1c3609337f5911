"""The engine against the real llama-cpp-python and a tiny generated GGUF."""

from dataclasses import dataclass
from pathlib import Path

import pytest

from engine import (Completer, EngineConfig, ModelLoadError, ModelNotConfiguredError, ModelNotFoundError,
                    NoFimSupportError)
from engine.postprocess import StopRules
from tests.fixtures.gguf_builder import write_tiny_gguf

SOURCE = '''import math


def area(radius):
    return math.pi * radius ** 2


def circumference(radius):
    return 
'''
CURSOR = SOURCE.index("    return \n") + len("    return ")


@dataclass
class FixedSnippet:
    path: str
    text: str
    start_line: int
    end_line: int


class FixedSource:
    """A real ContextSource: returns the snippets it was given, best first."""

    def __init__(self, *snippets: FixedSnippet) -> None:
        self.items = list(snippets)

    def snippets(self, path, source, offset, limit=None):
        return self.items[:limit]


GEOMETRY = FixedSnippet("lib/geometry.py", "def diameter(radius):\n    return 2 * radius\n", 10, 11)
UNITS = FixedSnippet("lib/units.py", "CM_PER_INCH = 2.54\n", 0, 0)


@pytest.fixture(scope="module")
def completer(tiny_gguf: Path) -> Completer:
    return Completer.load(EngineConfig(model_path=str(tiny_gguf), max_tokens=24, budget_tokens=1024))


def test_qwen_fim_tokens_are_recognised_from_the_vocabulary(completer: Completer):
    assert completer.template.name == "qwen2.5-coder"
    model = completer.model
    ids = {t: model.special_id(t) for t in completer.template.specials()}
    assert all(i is not None for i in ids.values()) and len(set(ids.values())) == 5
    assert completer.stop_ids >= {model.special_id("<|endoftext|>"), model.special_id("<|file_sep|>")}


def test_special_token_text_in_user_code_stays_plain_text(completer: Completer):
    tokens = completer.model.encode("x = '<|fim_prefix|>'")
    assert completer.model.special_id("<|fim_prefix|>") not in tokens
    assert len(tokens) > 3


def test_prompt_layout_within_budget(completer: Completer):
    prompt, _ = completer.prompt("calc/shapes.py", SOURCE, CURSOR, FixedSource(GEOMETRY, UNITS), "demo",
                                 budget_tokens=400)
    assert prompt.n_tokens <= 400
    kinds = [p.kind for p in prompt.parts]
    assert kinds == ["snippet", "snippet", "prefix", "suffix"]
    # Best snippet last, nearest to the cursor's file.
    assert [p.path for p in prompt.parts[:2]] == ["lib/units.py", "lib/geometry.py"]
    prefix, suffix = prompt.parts[2], prompt.parts[3]
    assert SOURCE[:CURSOR].endswith(prefix.text) and prefix.end_line == 8
    assert SOURCE[CURSOR:].startswith(suffix.text)
    assert prompt.text.startswith("<|repo_name|>demo\n<|file_sep|>lib/units.py\n")
    assert "<|file_sep|>calc/shapes.py\n<|fim_prefix|>" in prompt.text
    assert prompt.text.endswith("<|fim_middle|>")
    assert prompt.tokens[-1] == completer.model.special_id("<|fim_middle|>")
    assert sum(len(p.tokens) for p in prompt.segments) == prompt.n_tokens == len(prompt.tokens)


def test_tight_budget_cuts_at_line_boundaries(completer: Completer):
    long_source = "".join(f"value_{i} = compute({i})\n" for i in range(400)) + SOURCE
    cursor = long_source.index("    return \n") + len("    return ")
    prompt, _ = completer.prompt("big.py", long_source, cursor, FixedSource(GEOMETRY), "demo", budget_tokens=200)
    assert prompt.n_tokens <= 200
    prefix = next(p for p in prompt.parts if p.kind == "prefix")
    assert prefix.start_line > 0
    assert long_source.split("\n")[prefix.start_line] == prefix.text.split("\n")[0]
    d = prompt.to_dict("big.py", 409, 12)
    assert set(d) == {"path", "line", "col", "budget_tokens", "prompt_tokens", "template", "parts"}
    assert all(set(p) == {"kind", "path", "start_line", "end_line", "text", "tokens"} for p in d["parts"])


def test_completion_is_generated_within_limits_and_reuses_the_kv_cache(completer: Completer):
    first = completer.complete("calc/shapes.py", SOURCE, CURSOR, FixedSource(GEOMETRY), "demo")
    g = first.generation
    assert 0 < g.n_generated <= 24
    assert g.stop_reason in {"eog", "rule", "max_tokens"}
    assert first.text and first.text == first.text.rstrip()
    # The same request again: everything but the last prompt token comes from the cache.
    again = completer.complete("calc/shapes.py", SOURCE, CURSOR, FixedSource(GEOMETRY), "demo")
    assert again.generation.n_reused == again.generation.n_prompt - 1
    assert again.text == first.text  # greedy decoding is deterministic
    # One more character typed: only the tokens from the cursor on are evaluated again.
    typed = SOURCE[:CURSOR] + "2" + SOURCE[CURSOR:]
    third = completer.complete("calc/shapes.py", typed, CURSOR + 1, FixedSource(GEOMETRY), "demo")
    assert third.generation.n_reused > third.generation.n_prompt * 0.6
    assert third.generation.n_evaluated < third.generation.n_prompt * 0.4


def test_stop_rules_fit_the_cursor():
    mid_line = "x = compute(|, 2)\n".replace("|", "")
    rules = StopRules.for_cursor(mid_line, mid_line.index(", 2"), max_lines=8)
    assert rules.single_line
    assert rules.cut("a, b\nc") == ("a, b", True)

    block = "def f(x):\n    "
    rules = StopRules.for_cursor(block, len(block), max_lines=8)
    assert not rules.single_line and rules.base_indent == 4
    kept, done = rules.cut("y = x + 1\n    return y\ndef g():\n")
    assert (kept, done) == ("y = x + 1\n    return y", True)
    kept, done = StopRules.for_cursor(block, len(block), max_lines=2).cut("a\n    b\n    c\n    d")
    assert (kept, done) == ("a\n    b", True)


def test_model_errors_say_what_to_do(tmp_path: Path):
    with pytest.raises(ModelNotConfiguredError, match="CODE_KB_MODEL"):
        Completer.load(EngineConfig())
    with pytest.raises(ModelNotFoundError, match="not found: .*missing.gguf"):
        Completer.load(EngineConfig(model_path=str(tmp_path / "missing.gguf")))
    garbage = tmp_path / "garbage.gguf"
    garbage.write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(ModelLoadError, match="cannot load model"):
        Completer.load(EngineConfig(model_path=str(garbage)))
    no_fim = write_tiny_gguf(tmp_path / "no-fim.gguf", special_tokens=["<|endoftext|>"])
    with pytest.raises(NoFimSupportError, match="no fill-in-the-middle tokens"):
        Completer.load(EngineConfig(model_path=str(no_fim)))


def test_prompt_without_a_model_uses_estimates():
    completer = Completer(EngineConfig(budget_tokens=300))
    prompt, _ = completer.prompt("calc/shapes.py", SOURCE, CURSOR, FixedSource(GEOMETRY), "demo")
    assert prompt.template == "qwen2.5-coder" and 0 < prompt.n_tokens <= 300
    with pytest.raises(ModelNotConfiguredError):
        completer.complete("calc/shapes.py", SOURCE, CURSOR, None)


def test_tight_budget_keeps_signatures_and_drops_what_the_prefix_shows(completer: Completer):
    big = FixedSnippet("lib/big.py", "def big_helper(a, b):\n" + "".join(
        f"    step_{i}(alpha, beta, gamma, delta, epsilon, zeta, eta, theta)\n" for i in range(60)), 0, 60)
    same_file_far = FixedSnippet("calc/shapes.py", "def area(radius):\n    return math.pi * radius ** 2\n", 3, 4)
    prompt, _ = completer.prompt("calc/shapes.py", SOURCE, CURSOR, FixedSource(big, same_file_far), "demo",
                                 budget_tokens=200)
    kinds = {(p.kind, p.path) for p in prompt.parts}
    assert ("signature", "lib/big.py") in kinds
    signature = next(p for p in prompt.parts if p.kind == "signature")
    assert signature.text == "def big_helper(a, b):\n" and signature.start_line == signature.end_line == 0
    # `area` (lines 3-4) is inside the prefix the prompt shows: it is not repeated as a snippet.
    assert all(p.kind in ("prefix", "suffix") for p in prompt.parts if p.path == "calc/shapes.py")
    assert prompt.n_tokens <= 200
