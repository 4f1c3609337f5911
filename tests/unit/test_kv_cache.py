"""KV-cache reuse: the plan (pure) and its application to the real llama.cpp context."""

from __future__ import annotations

import inspect
import logging
import threading
from pathlib import Path

import pytest

from engine.backends.kv_plan import Move, after, plan
from engine.backends.llama_cpp import LlamaCppModel
from tests.fixtures.gguf_builder import write_tiny_gguf

A = list(range(1000, 1100))  # 100 tokens: the repository part
S = list(range(2000, 2080))  # 80 tokens: the suffix and FIM markers


def test_typing_keeps_the_prefix_and_moves_what_follows_the_cursor():
    held = A + [7, 8] + S
    new = A + [7, 8, 9] + S
    p = plan(held, new, min_run=32)
    assert p.keep == 102
    assert p.moves == [Move(102, 103, 79)]  # the suffix, one position on, less the last token
    assert p.evaluate == [(102, 103), (182, 183)]  # the typed token and the last (for its logits)
    assert (p.n_reused, p.n_evaluated) == (181, 2)


def test_deleting_moves_the_rest_back_and_removes_the_deleted():
    held = A + [7, 8, 9] + S
    new = A + [7] + S
    p = plan(held, new, min_run=32)
    assert p.moves == [Move(103, 101, 79)]
    assert p.removed(len(held)) == [(101, 103), (182, 183)]
    assert p.evaluate == [(180, 181)]


def test_short_runs_and_no_shift_support_fall_back_to_the_common_prefix():
    held = A + [7] + S[:10]
    new = A + [7, 8] + S[:10]
    assert plan(held, new, min_run=32).moves == []
    p = plan(A + [7] + S, A + [7, 8] + S, can_shift=False)
    assert (p.keep, p.moves, p.evaluate) == (101, [], [(101, 182)])


def test_a_snippet_dropped_from_the_middle_keeps_the_runs_on_either_side():
    b = list(range(3000, 3060))
    held = A + b + S + [5]
    new = A + S + [6]
    p = plan(held, new, min_run=32)
    assert p.keep == 100
    assert p.moves == [Move(160, 100, 80)]


def test_a_snippet_repeating_code_after_the_cursor_does_not_hide_the_prefix():
    # Retrieval may bring a chunk of the current file that the suffix also shows. Taking the first
    # run found (the snippet, matched in the old suffix) would leave the whole prefix unmatched.
    prefix, suffix = list(range(4000, 6000)), list(range(7000, 7600))
    held = A + [5, 6] + prefix + suffix + [9]
    new = A + suffix[100:260] + [5, 6] + list(range(3000, 3050)) + prefix + [8] + suffix[:590] + [9]
    p = plan(held, new, min_run=32)
    assert Move(102, 312, 2000) in p.moves  # the prefix, moved past the new snippet and lines
    assert p.n_reused >= 100 + 2000 + 580 and p.n_evaluated <= 160 + 2 + 50 + 1 + 1 + 10


def test_runs_that_overlap_are_chained_with_the_overlap_cut():
    # A new snippet is the start of the current file as the index has it on disk (header and the
    # first lines): the run of snippets before it reaches into the prefix's run. Replayed typing at
    # a 16k budget evaluated the whole 3,400-token prefix again for this before chains could cut.
    repo, header = list(range(10000, 14000)), list(range(8000, 8040))
    prefix, suffix = list(range(4000, 7000)), list(range(7000, 7600))
    held = repo + header + prefix + suffix + [9]
    new = (
        [1]
        + repo[1:]
        + header
        + prefix[:200]
        + list(range(3000, 3050))
        + header
        + prefix
        + [8]
        + suffix
        + [9]
    )
    p = plan(held, new, min_run=32)
    assert (
        Move(1, 1, 4239) in p.moves
    )  # the repository part and the new snippet that repeats the file's start
    assert Move(4240, 4530, 2800) in p.moves  # the rest of the prefix, its first 240 tokens cut off
    assert p.n_evaluated <= 1 + 50 + 240 + 1 + 1


def test_stale_runs_are_evaluated_again():
    held = A + S
    new = A + list(range(5000, 5040)) + S
    stale = [0] * len(held)
    assert plan(held, new, staleness=stale, max_stale=64).moves  # 40 tokens inserted: fine
    p = plan(held, new, staleness=[0] * 100 + [30] * 80, max_stale=64)
    assert p.moves == []  # 30 earlier changes + 40 now > 64
    _, stale_after = after(plan(held, new, max_stale=64), held, stale, new)
    assert stale_after[0] == 0 and stale_after[141] == 40 and stale_after[-1] == 0


def test_last_token_is_always_evaluated():
    p = plan(A, A)
    assert (p.keep, p.evaluate) == (99, [(99, 100)])


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> LlamaCppModel:
    path = write_tiny_gguf(tmp_path_factory.mktemp("kv") / "tiny.gguf")
    return LlamaCppModel(path, n_ctx=4096, n_threads=2)


def _greedy(model: LlamaCppModel, tokens: list[int], **kw):
    return model.generate_tokens(
        tokens, max_tokens=12, stop_ids=set(), cut=lambda t: (t, False), timeout_s=30, **kw
    )


def _source_tokens(model: LlamaCppModel, n: int) -> list[int]:
    # Fixed text (the standard library's, not this repository's, which every commit changes): the
    # random model's greedy choices hang on near-ties, so a test comparing two ways of computing
    # them must see the same input from one commit to the next.
    import json.decoder
    import json.encoder
    import textwrap

    text = "\n".join(inspect.getsource(m) for m in (json.decoder, json.encoder, textwrap))
    tokens = model.encode(text)
    assert len(tokens) >= n
    return tokens[:n]


def test_moved_tokens_are_shifted_not_evaluated_and_give_the_same_completion(
    model: LlamaCppModel, tmp_path: Path
):
    assert model.can_shift
    base = _source_tokens(model, 1500)
    model.reset()
    _greedy(model, base)
    typed = base[:800] + model.encode("xy") + base[800:]
    warm = _greedy(model, typed)
    assert warm.n_moved >= 600 and warm.n_evaluated <= 4
    assert warm.n_reused + warm.n_evaluated == len(typed)
    # A fresh context computing everything gets the same tokens (the random model is sensitive,
    # so this shows the shifted positions are right).
    fresh = LlamaCppModel(model.path, n_ctx=4096, n_threads=2)
    cold = _greedy(fresh, typed)
    assert cold.n_evaluated == len(typed)
    assert warm.text == cold.text
    # Deleting shifts back.
    deleted = typed[:500] + typed[600:]
    again = _greedy(model, deleted)
    assert again.n_moved >= 800 and again.n_evaluated <= 2
    fresh.reset()
    assert again.text == _greedy(fresh, deleted).text


def test_cancel_stops_inside_prompt_evaluation_and_keeps_what_was_done(model: LlamaCppModel, monkeypatch):
    tokens = _source_tokens(model, 3000)
    model.reset()
    cancel = threading.Event()
    decode = model._decode
    statuses = []

    def decode_then_cancel(entries, want_logits):
        status = decode(entries, want_logits)
        statuses.append(status)
        cancel.set()  # once the first batch is in, the next llama_decode must abort from inside
        return status

    monkeypatch.setattr(model, "_decode", decode_then_cancel)
    stopped = _greedy(model, tokens, cancel=cancel)
    monkeypatch.undo()
    assert stopped.stop_reason == "cancelled" and stopped.text == "" and stopped.n_generated == 0
    assert statuses == [0, 2]  # 2: llama.cpp's abort callback stopped the second batch's compute
    resumed = _greedy(model, tokens)
    assert resumed.n_reused == model.hardware.n_batch  # the first batch stays; the aborted one is gone
    assert resumed.n_reused + resumed.n_evaluated == len(tokens)


def test_a_cancelled_evaluation_keeps_the_runs_it_had_moved(model: LlamaCppModel, monkeypatch):
    # Warming while the user pauses may evaluate a long new snippet; a keystroke cancels it. The
    # prefix after the snippet had already been moved: the next request must not pay for it.
    base = _source_tokens(model, 2400)
    model.reset()
    _greedy(model, base)
    snippet = [t for t in _source_tokens(model, 2400)[1200:2400]]
    grown = base[:100] + snippet + base[100:]
    cancel = threading.Event()
    decode = model._decode

    def decode_then_cancel(entries, want_logits):
        status = decode(entries, want_logits)
        cancel.set()
        return status

    monkeypatch.setattr(model, "_decode", decode_then_cancel)
    assert model.warm_tokens(grown, cancel)[1] == "cancelled"
    monkeypatch.undo()
    resumed = _greedy(model, grown)
    # Only the snippet is evaluated again (its first tokens went in with the shift), not the 2,300
    # moved tokens after it.
    assert resumed.n_evaluated <= len(snippet)
    assert resumed.n_reused >= 100 + 2300
    # The cache it left is whole: asked again, the model evaluates only the last token and answers
    # the same. (Not compared with a fresh context: the moved run kept attention computed before the
    # 1,200 inserted tokens, by design, so a fresh evaluation may rightly choose other tokens.)
    again = _greedy(model, grown)
    assert again.n_evaluated <= 1 and again.text == resumed.text and resumed.n_generated == 12


def test_requests_reuse_stale_runs_and_warming_refreshes_them(model: LlamaCppModel):
    lenient = LlamaCppModel(
        model.path, n_ctx=4096, n_threads=2, max_stale_tokens=10_000, refresh_stale_tokens=50
    )
    base = _source_tokens(lenient, 600)
    _greedy(lenient, base)
    grown = base[:100] + _source_tokens(lenient, 1400)[1300:1380] + base[100:]
    typed = _greedy(lenient, grown)  # 80 tokens inserted before the run: stale, but a request keeps it
    assert typed.n_moved >= 490 and typed.n_evaluated <= 81
    plan, stopped = lenient.warm_tokens(
        grown
    )  # the pause: past the refresh bound, the run is evaluated afresh
    assert stopped is None and plan.n_evaluated >= 490
    assert _greedy(lenient, grown).n_evaluated == 1


def test_a_cancel_never_interrupts_a_k_shift_half_way(model: LlamaCppModel, caplog):
    # llama.cpp shifts inside the next decode; an abort part-way through that graph leaves some
    # layers rotated and the shift pending, and its retry would rotate those layers twice.
    base = _source_tokens(model, 1500)
    model.reset()
    _greedy(model, base)
    typed = base[:800] + model.encode("xy") + base[800:]
    cancelled = threading.Event()
    cancelled.set()
    with caplog.at_level(logging.DEBUG):
        assert _greedy(model, typed, cancel=cancelled).stop_reason == "cancelled"
    assert not [r for r in caplog.records if "K-shift" in r.getMessage() and r.levelno >= logging.WARNING]
    resumed = _greedy(model, typed)
    assert resumed.n_evaluated <= 4  # the shifted suffix was kept
    fresh = LlamaCppModel(model.path, n_ctx=4096, n_threads=2)
    assert resumed.text == _greedy(fresh, typed).text


def test_candidates_start_from_different_first_tokens(model: LlamaCppModel):
    tokens = _source_tokens(model, 300)
    g = _greedy(model, tokens, n_candidates=3)
    assert g.text and len(g.alternatives) == 2
    assert len({g.text, *g.alternatives}) == 3
    assert _greedy(model, tokens).text == g.text  # the best candidate is the greedy one


def test_q8_0_kv_cache_with_flash_attention_shifts_too(tmp_path: Path):
    # q8_0 stores blocks of 32 values: the head size must be a multiple of 32 (and llama.cpp's
    # shift of a quantized cache needs 64 or more, as real code models have).
    path = write_tiny_gguf(tmp_path / "tiny64.gguf", n_embd=128, n_head=2, n_head_kv=1, n_ff=256)
    model = LlamaCppModel(path, n_ctx=2048, kv_cache_type="q8_0", n_threads=2)
    assert model.hardware.kv_cache_type == "q8_0" and model.hardware.flash_attn
    base = _source_tokens(model, 600)
    _greedy(model, base)
    typed = base[:300] + model.encode("z") + base[300:]
    g = _greedy(model, typed)
    assert g.n_moved >= 250 and g.text


def test_small_heads_with_a_quantized_cache_reuse_only_the_prefix(tmp_path: Path):
    path = write_tiny_gguf(tmp_path / "tiny32.gguf", n_head=2, n_head_kv=1)
    model = LlamaCppModel(path, n_ctx=2048, kv_cache_type="q8_0", n_threads=2)
    assert not model.can_shift
    base = _source_tokens(model, 400)
    _greedy(model, base)
    g = _greedy(model, base[:200] + model.encode("z") + base[200:])
    assert g.n_moved == 0 and g.n_reused == 200
