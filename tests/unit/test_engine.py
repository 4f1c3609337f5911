"""The engine against the real llama-cpp-python and a tiny generated GGUF."""

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import pytest

from engine import (
    Completer,
    EngineConfig,
    ModelLoadError,
    ModelNotConfiguredError,
    ModelNotFoundError,
    NoFimSupportError,
    postprocess,
)
from engine.backends import Backend, Cut, Generation, Stops, Warmed
from engine.backends.llama_cpp import LlamaCppModel
from engine.config import needs_reload
from engine.postprocess import StopRules, cut_at_control_character
from engine.prompt import CONTEXT_KINDS, Part, Prompt
from tests.fixtures.gguf_builder import write_tiny_gguf

SOURCE = """import math


def area(radius):
    return math.pi * radius ** 2


def circumference(radius):
    return\x20
"""
CURSOR = SOURCE.index("    return \n") + len("    return ")


@dataclass
class FixedSnippet:
    path: str
    text: str
    start_line: int
    end_line: int
    prompt_kind: str = "snippet"
    reason: str = "fixed"
    at_cursor: bool = False


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
    vocab = completer.tokenizer
    ids = {t: vocab.special_id(t) for t in completer.template.specials()}
    assert all(i is not None for i in ids.values()) and len(set(ids.values())) == 5
    assert completer.stops.ids >= {vocab.special_id("<|endoftext|>"), vocab.special_id("<|file_sep|>")}
    assert completer.stops.texts[0] == "<|file_sep|>"


def test_special_token_text_in_user_code_stays_plain_text(completer: Completer):
    tokens = completer.tokenizer.encode("x = '<|fim_prefix|>'")
    assert completer.tokenizer.special_id("<|fim_prefix|>") not in tokens
    assert len(tokens) > 3


def test_prompt_layout_within_budget(completer: Completer):
    prompt, _ = completer.prompt(
        "calc/shapes.py", SOURCE, CURSOR, FixedSource(GEOMETRY, UNITS), "demo", budget_tokens=400
    )
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
    assert prompt.tokens[-1] == completer.tokenizer.special_id("<|fim_middle|>")
    assert sum(len(p.tokens) for p in prompt.segments) == prompt.n_tokens == len(prompt.tokens)


def test_tight_budget_cuts_at_line_boundaries(completer: Completer):
    long_source = "".join(f"value_{i} = compute({i})\n" for i in range(400)) + SOURCE
    cursor = long_source.index("    return \n") + len("    return ")
    prompt, _ = completer.prompt(
        "big.py", long_source, cursor, FixedSource(GEOMETRY), "demo", budget_tokens=200
    )
    assert prompt.n_tokens <= 200
    prefix = next(p for p in prompt.parts if p.kind == "prefix")
    assert prefix.start_line > 0
    assert long_source.split("\n")[prefix.start_line] == prefix.text.split("\n")[0]
    d = prompt.to_dict("big.py", 409, 12)
    assert set(d) == {"path", "line", "col", "budget_tokens", "prompt_tokens", "template", "parts"}
    assert all(
        set(p) == {"kind", "reason", "path", "start_line", "end_line", "text", "tokens"} for p in d["parts"]
    )


def held_parts(prompt):
    return [p for p in prompt.parts if p.kind in CONTEXT_KINDS]


def test_a_pinned_view_keeps_the_lines_a_previous_prompt_showed(completer: Completer):
    long_source = "".join(f"value_{i} = compute({i})\n" for i in range(400)) + SOURCE
    cursor = long_source.index("    return \n") + len("    return ")
    first, _ = completer.prompt(
        "big.py", long_source, cursor, FixedSource(GEOMETRY), "demo", budget_tokens=600
    )
    view = next(p for p in first.parts if p.kind == "prefix")
    # A new line typed: the same first line and as many suffix lines, the new text in between.
    typed = long_source[:cursor] + "x\n    " + long_source[cursor:]
    held = [
        FixedSnippet(p.path, p.text, p.start_line, p.end_line, p.kind, p.reason)
        for p in first.parts
        if p.kind in CONTEXT_KINDS
    ]
    pinned = completer.builder.build(
        "big.py",
        typed,
        cursor + 6,
        held,
        600,
        "demo",
        first,
        view_lines=(view.start_line, first.suffix_lines),
    )
    prefix = next(p for p in pinned.parts if p.kind == "prefix")
    assert prefix.start_line == view.start_line and prefix.text.endswith("return x\n    ")
    assert pinned.suffix_lines == first.suffix_lines
    assert held and pinned.n_tokens <= 600
    assert [p.tokens for p in pinned.parts if p.kind in CONTEXT_KINDS] == [
        p.tokens for p in held_parts(first)
    ]
    # Over the budget, the oldest lines of the view go, not the context.
    tight = completer.builder.build(
        "big.py",
        typed,
        cursor + 6,
        [*held, FixedSnippet("lib/shapes.py", "def area(r):\n    return 3.14 * r * r\n", 0, 1)],
        first.n_tokens,
        "demo",
        first,
        view_lines=(view.start_line, first.suffix_lines),
    )
    assert tight.n_tokens <= first.n_tokens and any(p.path == "lib/shapes.py" for p in tight.parts)
    assert next(p for p in tight.parts if p.kind == "prefix").start_line > view.start_line


def test_completion_is_generated_within_limits_and_reuses_the_kv_cache(completer: Completer):
    first = completer.complete("calc/shapes.py", SOURCE, CURSOR, FixedSource(GEOMETRY), "demo")
    g = first.generation
    assert 0 < g.n_generated <= 24
    assert g.stop_reason in {"eog", "rule", "max_tokens"}
    assert first.text and first.text == first.text.rstrip()
    # The same request again is answered from the type-through cache, without the model.
    again = completer.complete("calc/shapes.py", SOURCE, CURSOR, FixedSource(GEOMETRY), "demo")
    assert again.generation.stop_reason == "type-through" and again.generation.n_prompt == 0
    assert again.text == first.text
    # Typing the suggestion's first character leaves the rest of it, still without the model.
    if len(first.text) > 1:
        through = SOURCE[:CURSOR] + first.text[0] + SOURCE[CURSOR:]
        rest = completer.complete("calc/shapes.py", through, CURSOR + 1, FixedSource(GEOMETRY), "demo")
        assert (rest.generation.stop_reason, rest.text) == ("type-through", first.text[1:])
    # A character the suggestion does not start with: only the tokens from the cursor on are
    # evaluated (a suffix this short is not worth shifting; test_kv_cache covers moved runs).
    other = "\x00" if first.text.startswith("2") else "2"
    typed = SOURCE[:CURSOR] + other.replace("\x00", "7") + SOURCE[CURSOR:]
    third = completer.complete("calc/shapes.py", typed, CURSOR + 1, FixedSource(GEOMETRY), "demo")
    g3 = third.generation
    assert g3.stop_reason != "type-through"
    assert g3.n_reused + g3.n_evaluated == g3.n_prompt
    assert g3.n_evaluated <= 8


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
    assert completer.backend is None and not completer.warms
    assert completer.warm("calc/shapes.py", SOURCE, CURSOR, None) == 0
    assert completer.describe()["name"] is None


class RecordingBackend:
    """A real Backend that generates nothing itself: it records each prompt it is given and answers
    with a fixed text, cut by the request's stop rule."""

    warms = False

    def __init__(self, text: str, n_ctx: int | None) -> None:
        self.text = text
        self.n_ctx = n_ctx
        self.prompts: list[Prompt] = []
        self.requests: list[dict] = []

    def generate(
        self,
        prompt: Prompt,
        *,
        max_tokens: int,
        stops: Stops,
        cut: Cut,
        timeout_s: float,
        cancel=None,
        n_candidates: int = 1,
    ) -> Generation:
        self.prompts.append(prompt)
        self.requests.append(
            {"max_tokens": max_tokens, "stops": stops, "timeout_s": timeout_s, "n_candidates": n_candidates}
        )
        text, _ = cut(self.text)
        return Generation(text, prompt.n_tokens, prompt.n_tokens, 0, 5, "eog", 1.0)

    def warm(self, prompt: Prompt, *, cancel=None, timeout_s: float = 60.0) -> Warmed:
        self.prompts.append(prompt)  # never: `warms` is False
        return Warmed()

    def describe(self) -> dict[str, object]:
        return {"name": "recording", "device": "test"}


def test_any_backend_gets_the_assembled_prompt_and_the_template_stops(tiny_gguf: Path):
    vocab = LlamaCppModel(tiny_gguf, vocab_only=True)
    recording = RecordingBackend("2 * math.pi * radius", n_ctx=600)
    backend: Backend = recording
    config = EngineConfig(max_tokens=24, budget_tokens=1024, timeout_s=7.0)
    completer = Completer(config, backend, vocab)
    # The backend's context bounds the prompt: 600 tokens less the 24 generated.
    assert completer.budget_tokens == 576
    result = completer.complete(
        "calc/shapes.py", SOURCE, CURSOR, FixedSource(GEOMETRY), "demo", n_candidates=2
    )
    assert result.text == "2 * math.pi * radius" and result.generation.n_generated == 5
    [prompt] = recording.prompts
    assert prompt is result.prompt and prompt.n_tokens <= 576
    # Exact token ids from the completer's tokenizer, the FIM middle marker last; the text and parts
    # a server would be sent.
    assert prompt.tokens[-1] == vocab.special_id("<|fim_middle|>")
    assert prompt.tokens[0] == vocab.special_id("<|repo_name|>")
    assert prompt.text.endswith(SOURCE[:CURSOR] + "<|fim_suffix|>" + SOURCE[CURSOR:] + "<|fim_middle|>")
    assert [p.path for p in prompt.parts if p.kind == "snippet"] == ["lib/geometry.py"]
    [request] = recording.requests
    assert request["max_tokens"] == 24 and request["timeout_s"] == 7.0 and request["n_candidates"] == 2
    stops = request["stops"]
    assert stops.texts == ("<|file_sep|>", "<|endoftext|>", "<|fim_pad|>", "<|im_end|>")
    assert vocab.special_id("<|endoftext|>") in stops.ids and vocab.special_id("<|file_sep|>") in stops.ids
    # Typing through the suggestion is answered without the backend; warming does not apply to it.
    typed = SOURCE[:CURSOR] + "2" + SOURCE[CURSOR:]
    assert completer.complete("calc/shapes.py", typed, CURSOR + 1, None).text == " * math.pi * radius"
    assert not completer.warms and completer.warm("calc/shapes.py", SOURCE, CURSOR, None) == 0
    assert len(recording.prompts) == 1
    d = completer.describe()
    assert (d["name"], d["device"], d["template"], d["exact_token_counts"]) == (
        "recording",
        "test",
        "qwen2.5-coder",
        True,
    )


def test_new_request_settings_keep_the_backend_and_model_settings_reload_it():
    recording = RecordingBackend("x", n_ctx=None)
    completer = Completer(EngineConfig(max_lines=8), recording)
    again = completer.reconfigured(EngineConfig(max_lines=2, timeout_s=3.0))
    assert again.backend is recording and again.tokenizer is completer.tokenizer
    assert again.template is completer.template and again.config.max_lines == 2
    assert not needs_reload(completer.config, again.config)
    for changed in (
        {"max_tokens": 32},
        {"budget_tokens": 2048},
        {"endpoint": "http://x"},
        {"model_path": "m"},
        {"kv_cache_type": "q8_0"},
        {"n_threads": 2},
        {"template": "starcoder2"},
    ):
        assert needs_reload(EngineConfig(), EngineConfig(**changed)), changed
    assert not needs_reload(EngineConfig(), EngineConfig(snippet_limit=4, candidates=1))


def test_tight_budget_keeps_signatures_and_drops_what_the_prefix_shows(completer: Completer):
    big = FixedSnippet(
        "lib/big.py",
        "def big_helper(a, b):\n"
        + "".join(f"    step_{i}(alpha, beta, gamma, delta, epsilon, zeta, eta, theta)\n" for i in range(60)),
        0,
        60,
    )
    same_file_far = FixedSnippet(
        "calc/shapes.py", "def area(radius):\n    return math.pi * radius ** 2\n", 3, 4
    )
    prompt, _ = completer.prompt(
        "calc/shapes.py", SOURCE, CURSOR, FixedSource(big, same_file_far), "demo", budget_tokens=200
    )
    kinds = {(p.kind, p.path) for p in prompt.parts}
    assert ("signature", "lib/big.py") in kinds
    signature = next(p for p in prompt.parts if p.kind == "signature")
    assert signature.text == "def big_helper(a, b):\n" and signature.start_line == signature.end_line == 0
    # `area` (lines 3-4) is inside the prefix the prompt shows: it is not repeated as a snippet.
    assert all(p.kind in ("prefix", "suffix") for p in prompt.parts if p.path == "calc/shapes.py")
    assert prompt.n_tokens <= 200


def test_accepting_a_suggestion_shows_the_speculated_next_one_without_the_model(
    tiny_gguf: Path, monkeypatch: pytest.MonkeyPatch
):
    # The tiny model's random tokens include control characters, which post-processing cuts at
    # (test_postprocess.py); kept here, so that its suggestions are long enough to speculate after.
    monkeypatch.setattr(
        postprocess, "RULES", tuple(r for r in postprocess.RULES if r is not cut_at_control_character)
    )
    completer = Completer.load(EngineConfig(model_path=str(tiny_gguf), max_tokens=8, budget_tokens=1024))
    context = FixedSource(GEOMETRY)
    first = completer.complete("calc/shapes.py", SOURCE, CURSOR, context, "demo")
    assert first.text
    context.items = [UNITS]  # retrieval would answer otherwise after the suggestion
    ahead = completer.speculate("calc/shapes.py", context, "demo")
    assert ahead is not None and ahead.generation.n_generated > 0
    # ...but the speculative prompt is the shown one, the suggestion after its end: the KV cache
    # holds all of it but the suggestion's tokens.
    suggestion = completer.tokenizer.encode(first.text)
    assert ahead.prompt.tokens == first.prompt.tokens + suggestion
    assert [p.path for p in ahead.prompt.parts if p.kind == "snippet"] == ["lib/geometry.py"]
    assert ahead.generation.n_evaluated == len(suggestion)
    assert completer.last is first  # status keeps reporting what the user saw
    accepted = SOURCE[:CURSOR] + first.text + SOURCE[CURSOR:]
    shown = completer.complete("calc/shapes.py", accepted, CURSOR + len(first.text), context, "demo")
    assert shown.generation.stop_reason == "type-through" and shown.text == ahead.text
    assert completer.speculate("calc/shapes.py", context, "demo") is None  # that one is computed already


def test_a_speculation_the_user_types_past_costs_the_next_request_nothing(tiny_gguf: Path):
    """Typing something else than the suggestion: the request evaluates what a completer that never
    speculated evaluates, token for token."""
    typed = SOURCE[:CURSOR] + "x" + SOURCE[CURSOR:]
    evaluated = []
    for speculate in (False, True):
        completer = Completer.load(EngineConfig(model_path=str(tiny_gguf), max_tokens=8, budget_tokens=1024))
        context = FixedSource(GEOMETRY)
        first = completer.complete("calc/shapes.py", SOURCE, CURSOR, context, "demo")
        if speculate:
            ahead = completer.speculate("calc/shapes.py", context, "demo")
            assert ahead is not None and ahead.generation.n_evaluated > 0
        after = completer.complete("calc/shapes.py", typed, CURSOR + 1, context, "demo")
        assert after.generation.stop_reason != "type-through" and first.text
        evaluated.append(after.generation.n_evaluated)
    assert evaluated[1] == evaluated[0] < 8


def test_no_speculation_after_the_model_ended_its_answer(tiny_gguf: Path):
    completer = Completer.load(EngineConfig(model_path=str(tiny_gguf), max_tokens=8, budget_tokens=1024))
    first = completer.complete("calc/shapes.py", SOURCE, CURSOR, FixedSource(GEOMETRY), "demo")
    assert first.text
    completer.last = dataclasses.replace(
        first, generation=dataclasses.replace(first.generation, stop_reason="eog")
    )
    assert completer.speculate("calc/shapes.py", FixedSource(GEOMETRY), "demo") is None


def test_warming_at_a_pause_leaves_only_the_cursor_to_evaluate(tiny_gguf: Path):
    completer = Completer.load(EngineConfig(model_path=str(tiny_gguf), max_tokens=8, budget_tokens=1024))
    assert completer.warms and completer.backend is completer.tokenizer  # the model makes its own token ids
    context = FixedSource(GEOMETRY, UNITS)
    opened = completer.warm("calc/shapes.py", SOURCE, 0, context, "demo", whole=False)
    prompt, _ = completer.prompt("calc/shapes.py", SOURCE, 0, context, "demo")
    assert opened == len(prompt.repository_tokens) > 0  # on open: the snippets and headers only
    evaluated = completer.warm("calc/shapes.py", SOURCE, CURSOR, context, "demo")
    assert 0 < evaluated < prompt.n_tokens
    result = completer.complete("calc/shapes.py", SOURCE, CURSOR, context, "demo")
    g = result.generation
    assert g.n_evaluated == 1 and g.n_reused == g.n_prompt - 1  # the last token, for its logits


def test_snippets_already_in_the_prompt_keep_their_place_when_ranking_changes(completer: Completer):
    first, _ = completer.prompt("calc/shapes.py", SOURCE, CURSOR, FixedSource(GEOMETRY, UNITS), "demo")
    order = [p.path for p in first.parts if p.kind == "snippet"]
    assert order == ["lib/units.py", "lib/geometry.py"]  # best last, nearest the cursor
    # Ranking flips: the cached order stays, so the KV cache keeps every snippet.
    again, _ = completer.prompt("calc/shapes.py", SOURCE, CURSOR, FixedSource(UNITS, GEOMETRY), "demo")
    assert [p.path for p in again.parts if p.kind == "snippet"] == order
    # A new snippet goes after the ones the cache holds; one no longer retrieved leaves.
    tools = FixedSnippet("lib/tools.py", "def clamp(x, lo, hi):\n    return max(lo, min(x, hi))\n", 0, 1)
    third, _ = completer.prompt("calc/shapes.py", SOURCE, CURSOR, FixedSource(tools, GEOMETRY), "demo")
    assert [p.path for p in third.parts if p.kind == "snippet"] == ["lib/geometry.py", "lib/tools.py"]


def test_completion_lists_get_distinct_candidates(tiny_gguf: Path):
    completer = Completer.load(EngineConfig(model_path=str(tiny_gguf), max_tokens=8, budget_tokens=1024))
    result = completer.complete(
        "calc/shapes.py", SOURCE, CURSOR, FixedSource(GEOMETRY), "demo", n_candidates=3
    )
    assert result.text and 1 <= len(result.alternatives) <= 2
    assert len({result.text, *result.alternatives}) == 1 + len(result.alternatives)


def test_describe_reports_the_hardware_choice(completer: Completer):
    d = completer.describe()
    assert d["kv_cache_type"] == "f16" and d["flash_attn"] is True and d["kv_shift"] is True
    assert d["threads"] >= 1 and d["context_tokens"] >= 1024 + 24  # llama.cpp rounds up to 256s


def test_snippets_still_relevant_stay_while_two_places_stay_open_for_new_ones():
    from engine.completer import _sticky
    from engine.prompt import Part, Prompt

    ranked = [FixedSnippet(f"lib/m{i}.py", f"x{i} = {i}\n", 0, 0) for i in range(8)]
    previous = Prompt("qwen2.5-coder", 1024, [Part("snippet", s.text, s.path, 0, 0) for s in ranked[4:8]])
    # The previous prompt had m4..m7; with a limit of 4 two of them stay, the best two new ones join,
    # offered after the kept ones (where the token budget runs out, the same ones stay out).
    assert [s.path for s in _sticky(ranked, previous, 4)] == [
        "lib/m4.py",
        "lib/m5.py",
        "lib/m0.py",
        "lib/m1.py",
    ]
    assert [s.path for s in _sticky(ranked, None, 3)] == ["lib/m0.py", "lib/m1.py", "lib/m2.py"]
    # Ones ranked out of the list altogether leave.
    assert [s.path for s in _sticky(ranked[:5], previous, 4)] == [
        "lib/m4.py",
        "lib/m0.py",
        "lib/m1.py",
        "lib/m2.py",
    ]


# -- progressive context: a quick prompt first, the full one in idle time ----------------------

LONG_SOURCE = "".join(f"value_{i} = compute({i}, scale=2)\n" for i in range(150)) + SOURCE
LONG_CURSOR = LONG_SOURCE.index("    return \n") + len("    return ")
NEEDED = FixedSnippet("lib/geometry.py", "def diameter(radius):\n", 10, 10, "signature", "needs")
OTHERS = [
    FixedSnippet(f"lib/m{i}.py", "".join(f"def f{i}_{j}(x):\n    return x + {j}\n" for j in range(6)), 0, 11)
    for i in range(4)
]


def test_a_cold_request_answers_from_a_quick_prompt_and_the_full_one_follows_in_idle_time(
    tiny_gguf: Path, caplog: pytest.LogCaptureFixture
):
    completer = Completer.load(
        EngineConfig(model_path=str(tiny_gguf), max_tokens=8, budget_tokens=1024, quick_prompt_tokens=256)
    )
    context = FixedSource(NEEDED, *OTHERS)
    with caplog.at_level("INFO", logger="engine.completer"):
        first = completer.complete("calc/shapes.py", LONG_SOURCE, LONG_CURSOR, context, "demo", quick=True)
    full = completer.pending
    assert first.scope == "quick" and full is not None
    assert first.generation.n_evaluated == first.prompt.n_tokens <= 256 < full.n_tokens
    # The log says what a costly request evaluated, part by part, the largest first.
    parts = next(r.getMessage() for r in caplog.records if "evaluated by part" in r.getMessage())
    assert "prefix calc/shapes.py:" in parts and "signature lib/geometry.py:11" in parts
    # The quick prompt has the signature the cursor needs, a window of the file around the cursor,
    # and in what those leave of its size the best-ranked snippet (m0; m1 does not fit as well).
    kinds = [(p.kind, p.path) for p in first.prompt.parts]
    assert ("signature", "lib/geometry.py") in kinds
    assert [p for k, p in kinds if k == "snippet"] == ["lib/m0.py"]
    window = next(p for p in first.prompt.parts if p.kind == "prefix")
    assert window.end_line == LONG_SOURCE[:LONG_CURSOR].count("\n")
    assert window.start_line > next(p for p in full.parts if p.kind == "prefix").start_line
    # While idle, the full prompt goes into the KV cache; the next request uses it and pays little.
    assert completer.finish_prompt() > 0 and completer.pending is None
    typed = LONG_SOURCE[:LONG_CURSOR] + "2" + LONG_SOURCE[LONG_CURSOR:]
    after = completer.complete("calc/shapes.py", typed, LONG_CURSOR + 1, context, "demo", quick=True)
    assert after.scope == "full" and after.generation.n_evaluated < 8
    assert {p.path for p in after.prompt.parts if p.kind == "snippet"} == {o.path for o in OTHERS}


def test_a_quick_prompt_keeps_in_place_what_the_cache_holds_of_the_full_one(tiny_gguf: Path):
    completer = Completer.load(
        EngineConfig(model_path=str(tiny_gguf), max_tokens=8, budget_tokens=1024, quick_prompt_tokens=256)
    )
    context = FixedSource(NEEDED, *OTHERS)
    # A file opened: its repository part is evaluated while idle, the cursor's part is not.
    completer.warm("calc/shapes.py", LONG_SOURCE, 0, context, "demo", whole=False)
    first = completer.complete("calc/shapes.py", LONG_SOURCE, LONG_CURSOR, context, "demo", quick=True)
    assert first.scope == "quick"
    assert {p.path for p in first.prompt.parts if p.kind == "snippet"} == {o.path for o in OTHERS}
    g = first.generation
    assert g.n_reused > g.n_evaluated and g.n_evaluated <= 256 + 64


def test_without_quick_or_with_a_small_prompt_the_full_prompt_answers(tiny_gguf: Path):
    completer = Completer.load(
        EngineConfig(model_path=str(tiny_gguf), max_tokens=8, budget_tokens=1024, quick_prompt_tokens=256)
    )
    context = FixedSource(NEEDED, *OTHERS)
    assert completer.complete("calc/shapes.py", LONG_SOURCE, LONG_CURSOR, context, "demo").scope == "full"
    assert completer.pending is None
    small = Completer.load(
        EngineConfig(model_path=str(tiny_gguf), max_tokens=8, budget_tokens=1024, quick_prompt_tokens=0)
    )
    assert (
        small.complete("calc/shapes.py", LONG_SOURCE, LONG_CURSOR, context, "demo", quick=True).scope
        == "full"
    )


def test_a_completion_list_after_a_quick_answer_starts_with_the_ghost_text_shown(tiny_gguf: Path):
    completer = Completer.load(
        EngineConfig(model_path=str(tiny_gguf), max_tokens=8, budget_tokens=1024, quick_prompt_tokens=256)
    )
    context = FixedSource(NEEDED, *OTHERS)
    ghost = completer.complete("calc/shapes.py", LONG_SOURCE, LONG_CURSOR, context, "demo", quick=True)
    assert ghost.scope == "quick" and ghost.text
    assert completer.finish_prompt() > 0
    # The menu at the same cursor is computed from the full prompt now in the cache (it wants
    # candidates the ghost text did not compute), and its first item is still what the user sees.
    menu = completer.complete("calc/shapes.py", LONG_SOURCE, LONG_CURSOR, context, "demo", n_candidates=3)
    assert menu.scope == "full" and menu.text == ghost.text
    assert ghost.text not in menu.alternatives and len(menu.alternatives) <= 2


def test_context_that_only_moved_up_the_ranking_waits_for_idle_time_and_the_receivers_members_do_not(
    tiny_gguf: Path,
):
    completer = Completer.load(
        EngineConfig(model_path=str(tiny_gguf), max_tokens=8, budget_tokens=1024, quick_prompt_tokens=256)
    )
    context = FixedSource(NEEDED, *OTHERS)
    completer.complete("calc/shapes.py", LONG_SOURCE, LONG_CURSOR, context, "demo", quick=True)
    assert completer.finish_prompt() > 0  # the full prompt, m0..m3, is in the cache
    full_before = completer._previous["calc/shapes.py"]
    view = next(p for p in full_before.parts if p.kind == "prefix")
    # A keystroke later retrieval ranks other modules and another definition first, and the
    # receiver at the cursor asks for a member of its class.
    ranked = FixedSnippet("lib/geometry.py", "def radius_of(area):\n", 12, 12, "signature", "needs")
    member = FixedSnippet(
        "lib/circle.py", "class Circle:\n    def area(self):\n", 3, 9, "outline", "needs", at_cursor=True
    )
    newer = [
        FixedSnippet(f"lib/n{i}.py", OTHERS[i].text.replace(f"f{i}_", f"g{i}_"), 0, 11) for i in range(4)
    ]
    context.items = [member, ranked, *newer]
    typed = LONG_SOURCE[:LONG_CURSOR] + "2" + LONG_SOURCE[LONG_CURSOR:]
    steady = completer.complete("calc/shapes.py", typed, LONG_CURSOR + 1, context, "demo", quick=True)
    # Answered with the snippets and definitions the cache holds, the view of the file where it
    # was, and the receiver's member, evaluating little; the rest waits for idle time.
    assert steady.scope == "steady" and completer.pending is not None
    parts = steady.prompt.parts
    assert {p.path for p in parts if p.kind == "snippet"} == {o.path for o in OTHERS}
    assert any(p.kind == "outline" and "class Circle" in p.text and p.at_cursor for p in parts)
    assert any(p.kind == "signature" and "diameter" in p.text for p in parts)
    assert not any("radius_of" in p.text for p in parts)
    # (The outline takes the room of the file's oldest line or two: the budget is full.)
    assert view.start_line <= next(p for p in parts if p.kind == "prefix").start_line <= view.start_line + 2
    assert steady.prompt.suffix_lines == full_before.suffix_lines
    outline = next(p for p in parts if p.at_cursor)
    assert steady.generation.n_evaluated <= len(outline.tokens) + 32
    assert steady.generation.n_evaluated * 4 < completer.backend.to_evaluate(completer.pending.tokens)
    assert any("radius_of" in p.text for p in completer.pending.parts)
    assert completer.finish_prompt() > 32 and completer.pending is None
    typed2 = typed[: LONG_CURSOR + 1] + "*" + typed[LONG_CURSOR + 1 :]
    after = completer.complete("calc/shapes.py", typed2, LONG_CURSOR + 2, context, "demo", quick=True)
    assert after.scope == "full" and after.generation.n_evaluated < 8
    assert {p.path for p in after.prompt.parts if p.kind == "snippet"} == {n.path for n in newer}
    # Without quick (the command line, a test), the new snippets are evaluated at once.
    context.items = [ranked, *OTHERS]
    typed3 = typed2[: LONG_CURSOR + 2] + "2" + typed2[LONG_CURSOR + 2 :]
    now = completer.complete("calc/shapes.py", typed3, LONG_CURSOR + 3, context, "demo")
    assert now.scope == "full" and now.generation.n_evaluated > 32


def test_evaluated_ranges_are_counted_per_segment():
    """What the server logs for a costly keystroke (and engine_replay reports): a plan's evaluated
    positions assigned to the prompt segments they fall in."""
    prompt = Prompt(
        "qwen2.5-coder",
        64,
        [
            Part("template", "<|repo|>", tokens=[1, 2]),
            Part("snippet", "a", "lib/a.py", 9, 12, tokens=[3, 4, 5, 6]),
            Part("prefix", "b", "main.py", 0, 3, tokens=[7, 8, 9]),
            Part("snippet", "c", "lib/c.py", 0, 1, tokens=[10]),
        ],
    )
    assert prompt.tokens_in([(1, 3), (5, 8)]) == {"template": 1, "snippet": 2, "prefix": 2}
    assert prompt.tokens_in([(0, 10)], lambda p: p.path or p.kind) == {
        "template": 2,
        "lib/a.py": 4,
        "main.py": 3,
        "lib/c.py": 1,
    }
    assert prompt.tokens_in([]) == {}
