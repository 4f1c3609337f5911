"""Next edits on the shape-alike Sweep 1.5B: KV reuse while the user edits, and what drafting saves.

    python benchmarks/next_edit.py [--repeats N] [--threads N] [--ks 4,8,16,32] [--json out.json]
        [--model GGUF]

The model is benchmarks/models.py's shape-alike of Qwen2.5-Coder 1.5B (real shape and tokenizer,
random weights) quantized to Q8_0 and named `sweep-next-edit-1.5B`, as Sweep ships its 1.5B model:
code-kb recognises it by that name and speaks Sweep's format to it. Its answers are noise; what is
measured does not depend on the weights' values. 2 threads by default.

(a) A replay of a real edit in a real project: requests 2.32.3 (the PyPI sdist, cached as
benchmarks/retrieval_quality.py caches it, indexed with the packaged MiniLM). In
`src/requests/sessions.py`, the user renames the parameter `request_setting` of `merge_setting` to
`request_value`: selects the name in the signature and types the new one key by key (each key
recorded in an `EditHistory`, as the LSP layer records didChange). Requests, each through
`NextEditPredictor.predict` with the index's snippets for the cursor (retrieval included):
  cold         the name typed but its last letter, the KV cache emptied first;
  keystroke    the last letter typed, the cursor after it;
  cursor jump  the cursor moved to the first use site, 7 lines down (`return request_setting`);
  use site     that use renamed too, after a pause (a new change in the history).
Each request generates at most 16 tokens, token by token (`speculative=False`: the noise model
never agrees with a draft, so drafting would only add cost here; (b) and (c) measure drafting).
Reported: medians over the repeats of latency (the whole `predict`), prompt evaluation, prompt
tokens evaluated and reused, and where the evaluated tokens lie in the prompt.

(b) Verifying k drafted tokens: one llama_decode of the last token and k drafted tokens with logits
for all k+1 (as `LlamaCppModel._continue` verifies a draft, argmax of each included) against k
single-token decodes (argmax each), after the cold prompt of (a), for k in --ks; medians, and the
fastest run of each (less exposed to other jobs on a shared machine).

(c) A fully accepted draft of the 21-line window at the cold request's cursor, two ways. Decode by
decode: n-1 single decodes against batches of the last token and 16 drafted tokens that are all
accepted (what `_continue` does then), whatever the weights. Through the engine: the model's own
greedy answer of the window's length (recorded from a token-by-token run) as the draft of
`generate_tokens`; with random weights its batched decodes round differently from its single ones
and flip near ties, so the table says how many drafted tokens were accepted.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.backends import Generation
    from engine.backends.llama_cpp import LlamaCppModel

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.engine_replay import evaluated_by_kind  # noqa: E402
from benchmarks.models import CACHE, model_path  # noqa: E402

PROJECT = "requests==2.32.3"
FILE = "src/requests/sessions.py"
FUNCTION = "def merge_setting(request_setting, session_setting, dict_class=OrderedDict):"
OLD, NEW = "request_setting", "request_value"
USE_SITE = "        return request_setting\n"  # the first use, 7 lines below the signature
MODEL_NAME = "sweep-next-edit-1.5B"
REPLAY_MAX_TOKENS = 16
BUDGET_TOKENS = 3072
MAX_DRAFT_TOKENS = 16
GOALS = {"keystroke_evaluated_tokens": 32, "verify16_ratio": 0.35, "accepted_window_ratio": 0.4}

log = logging.getLogger("next_edit_bench")


@dataclass
class Step:
    """One moment of the replay: the file now, the cursor, and the changes recorded so far."""

    label: str
    source: str
    offset: int
    changes: list[tuple[str, str, float]] = field(default_factory=list)  # (old, new, time) to record first


def replay() -> tuple[str, list[Step]]:
    """The file before the edit, and the four requests' moments (the keys typed before each)."""
    from benchmarks.retrieval_quality import sdist

    text = (sdist(PROJECT) / FILE).read_text()
    at = text.index(FUNCTION) + len("def merge_setting(")
    assert text[at : at + len(OLD)] == OLD, "requests 2.32.3's merge_setting changed"
    t, now = text, 0.0
    keys: list[tuple[str, str, float]] = []
    for i in range(1, len(NEW) + 1):  # typing over the selected name: its first key replaces it
        new = text[:at] + NEW[:i] + text[at + len(OLD) :]
        keys.append((t, new, now))
        t, now = new, now + 0.15
    cold = Step("cold", keys[-2][1], at + len(NEW) - 1, keys[:-1])
    typed = keys[-1][1]
    keystroke = Step("keystroke", typed, at + len(NEW), keys[-1:])
    use = typed.index(USE_SITE, at) + len(USE_SITE) - 1  # the end of `return request_setting`
    jump = Step("cursor jump", typed, use)
    renamed = typed[: use - len(OLD)] + NEW + typed[use:]
    edit = Step("use site", renamed, use - len(OLD) + len(NEW), [(typed, renamed, now + 2.0)])
    return text, [cold, keystroke, jump, edit]


def code_version() -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True).stdout.strip()

    dirty = git("status", "--porcelain", "--", "engine", "retrieval", "benchmarks/next_edit.py")
    return git("rev-parse", "--short", "HEAD") + (" + uncommitted changes" if dirty else "")


def load(threads: int, path: Path | None = None) -> tuple[LlamaCppModel, Path]:
    from engine.backends.llama_cpp import LlamaCppModel

    path = path or model_path("1.5b", "Q8_0", MODEL_NAME)
    model = LlamaCppModel(
        path, n_ctx=BUDGET_TOKENS + 1024, n_threads=threads, n_gpu_layers=0, kv_cache_type="f16"
    )
    return model, path


# -- (a) the replay ------------------------------------------------------------------------------


def run_replay(model: LlamaCppModel, repeats: int) -> tuple[list[dict], list[int]]:
    """The replay `repeats` times; each request's figures, and the cold request's prompt tokens."""
    from benchmarks.retrieval_quality import sdist
    from engine.config import default_snippet_limit
    from engine.next_edit import EditHistory, NextEditPredictor
    from retrieval import CodeIndex, IndexConfig, SentenceTransformerEmbedder

    root = sdist(PROJECT)
    index = CodeIndex(
        root, IndexConfig(index_dir=CACHE / "indexes" / PROJECT), embedder=SentenceTransformerEmbedder()
    )
    index.reindex()
    _, steps = replay()
    index.snippets(FILE, steps[0].source, steps[0].offset)  # the embedding model loads outside the timings
    limit = default_snippet_limit(BUDGET_TOKENS)
    predictor = NextEditPredictor(
        model, budget_tokens=BUDGET_TOKENS, max_tokens=REPLAY_MAX_TOKENS, timeout_s=600, speculative=False
    )
    rows: list[dict] = []
    cold_tokens: list[int] = []
    for r in range(repeats):
        model.reset()
        history = EditHistory()
        for step in steps:
            for old, new, at_s in step.changes:
                history.record(FILE, old, new, now_s=1000.0 * r + at_s)
            t0 = time.perf_counter()
            snippets = index.snippets(FILE, step.source, step.offset, limit)
            retrieval_ms = (time.perf_counter() - t0) * 1000
            predictor.predict(FILE, step.source, step.offset, history, snippets)
            total_ms = (time.perf_counter() - t0) * 1000
            result = predictor.last
            assert result is not None
            g = result.generation
            plan = model.last_plan
            by_kind = evaluated_by_kind(result.prompt, plan) if plan is not None else {}
            rows.append(
                {
                    "repeat": r,
                    "request": step.label,
                    "total_ms": total_ms,
                    "retrieval_ms": retrieval_ms,
                    "eval_ms": g.eval_ms,
                    "generation_ms": g.ms - g.eval_ms,
                    "prompt_tokens": g.n_prompt,
                    "evaluated_tokens": g.n_evaluated,
                    "reused_tokens": g.n_reused,
                    "moved_tokens": g.n_moved,
                    "generated_tokens": g.n_generated,
                    "stop_reason": g.stop_reason,
                    "verdict": result.verdict,
                    "evaluated_by_kind": by_kind,
                    "changes": len(history.changes()),
                    "related_files": sum(1 for p in result.prompt.segments if p.kind == "snippet"),
                }
            )
            log.info("%s #%d: %s", step.label, r + 1, result.summary())
            if step.label == "cold" and not cold_tokens:
                cold_tokens = list(result.prompt.tokens)
    index.close()
    return rows, cold_tokens


def cold_prompt(model: LlamaCppModel) -> list[int]:
    """The cold request's prompt as `predict` builds it, without generating (for --parts b,c)."""
    from benchmarks.retrieval_quality import sdist
    from engine.config import default_snippet_limit
    from engine.next_edit import EditHistory, NextEditPredictor, NextEditRequest
    from retrieval import CodeIndex, IndexConfig, SentenceTransformerEmbedder

    index = CodeIndex(
        sdist(PROJECT),
        IndexConfig(index_dir=CACHE / "indexes" / PROJECT),
        embedder=SentenceTransformerEmbedder(),
    )
    index.reindex()
    cold = replay()[1][0]
    history = EditHistory()
    for old, new, at_s in cold.changes:
        history.record(FILE, old, new, now_s=at_s)
    snippets = index.snippets(FILE, cold.source, cold.offset, default_snippet_limit(BUDGET_TOKENS))
    index.close()
    predictor = NextEditPredictor(model, budget_tokens=BUDGET_TOKENS, max_tokens=REPLAY_MAX_TOKENS)
    window = predictor.format.window(cold.source, cold.offset)
    original = history.window_before_last_change(FILE, cold.source, window.start_line, window.end_line)
    request = NextEditRequest(FILE, window, original, history.changes(), snippets)
    return list(predictor.format.build(model, request, predictor.budget_tokens).tokens)


# -- (b) verifying k drafted tokens --------------------------------------------------------------


def _argmax(model: LlamaCppModel, i: int) -> int:
    return int(model._logits(i).argmax())


def verify_cost(
    model: LlamaCppModel, prompt: list[int], draft: list[int], ks: list[int], repeats: int
) -> list[dict]:
    """Per k: one batch of the last token and k drafted tokens (logits for all) against k single decodes."""
    import llama_cpp

    _, stopped = model.warm_tokens(prompt, timeout_s=3600)  # the default 60 s is short on a busy machine
    assert stopped is None, stopped
    mem, n = model._memory, len(prompt)
    last = prompt[-1]
    times: dict[int, dict[str, list[float]]] = {k: {"batch": [], "single": []} for k in ks}
    for _ in range(repeats):
        for k in ks:
            guess = draft[:k]
            # As in generation, the batch's first entry is the token chosen last, not yet in the cache:
            # here the prompt's last token, taken out and decoded again with the draft after it.
            llama_cpp.llama_memory_seq_rm(mem, 0, n - 1, -1)
            t0 = time.perf_counter()
            status = model._decode(
                [(n - 1 + i, t) for i, t in enumerate([last, *guess])], want_logits=True, all_logits=True
            )
            [_argmax(model, i) for i in range(k + 1)]
            times[k]["batch"].append((time.perf_counter() - t0) * 1000)
            assert status == 0
            llama_cpp.llama_memory_seq_rm(mem, 0, n, -1)  # the cache holds the prompt again
            t0 = time.perf_counter()
            for i, t in enumerate(guess):
                status = model._decode([(n + i, t)], want_logits=True)
                _argmax(model, -1)
                assert status == 0
            times[k]["single"].append((time.perf_counter() - t0) * 1000)
            llama_cpp.llama_memory_seq_rm(mem, 0, n, -1)
    rows = []
    for k in ks:
        batch, single = statistics.median(times[k]["batch"]), statistics.median(times[k]["single"])
        least_batch, least_single = min(times[k]["batch"]), min(times[k]["single"])
        rows.append(
            {
                "k": k,
                "batch_ms": batch,
                "single_ms": single,
                "ratio": batch / single,
                "min_batch_ms": least_batch,
                "min_single_ms": least_single,
                "min_ratio": least_batch / least_single,
                "batch_runs": times[k]["batch"],
                "single_runs": times[k]["single"],
            }
        )
    return rows


# -- (c) a fully accepted draft ------------------------------------------------------------------


def no_stop(text: str) -> tuple[str, bool]:
    return text, False


def greedy_answer(model: LlamaCppModel, prompt: list[int], n: int) -> tuple[list[int], Generation]:
    """A token-by-token run of `n` tokens after `prompt` (fewer at an end-of-generation token), and
    the ids of its answer but the last: the token each decode after the prompt fed the model. The
    draft is thus the answer the token-by-token path gives, to the last rounding; its last token is
    the model's choice in the drafted run too, so the draft needs no more."""
    fed: list[int] = []
    decode = model._decode

    def recording(entries: list[tuple[int, int]], want_logits: bool, all_logits: bool = False) -> int:
        fed.extend(t for pos, t in entries if pos >= len(prompt))
        return decode(entries, want_logits, all_logits)

    model._decode = recording  # type: ignore[method-assign]  # instrumentation: this instance only, removed below
    try:
        run = model.generate_tokens(prompt, max_tokens=n, stop_ids=frozenset(), cut=no_stop, timeout_s=3600)
    finally:
        del model._decode
    return fed, run


def accepted_window(
    model: LlamaCppModel, prompt: list[int], window_text: str, plain_runs: int, drafted_runs: int
) -> dict:
    n_window = len(model.encode(window_text))
    answer, first = greedy_answer(model, prompt, n_window)
    n = first.n_generated

    def run(draft: list[int]) -> Generation:
        return model.generate_tokens(
            prompt,
            max_tokens=n,
            stop_ids=frozenset(),
            cut=no_stop,
            timeout_s=3600,
            draft=draft,
            max_draft_tokens=MAX_DRAFT_TOKENS,
        )

    plain_ms = [first.ms - first.eval_ms]  # the recording run is the first token-by-token run
    for _ in range(plain_runs - 1):
        plain_ms.append((g := run([])).ms - g.eval_ms)
    drafted_ms, last_drafted = [], None
    for _ in range(drafted_runs):
        last_drafted = run(answer)
        drafted_ms.append(last_drafted.ms - last_drafted.eval_ms)
    assert last_drafted is not None
    plain, drafted = statistics.median(plain_ms), statistics.median(drafted_ms)
    return {
        "window_tokens": n_window,
        "answer_tokens": n,
        "same_text": last_drafted.text == first.text,
        "plain_ms": plain,
        "drafted_ms": drafted,
        "ratio": drafted / plain,
        "plain_decodes": first.n_decodes,
        "drafted_decodes": last_drafted.n_decodes,
        "drafted": last_drafted.n_drafted,
        "accepted": last_drafted.n_draft_accepted,
        "plain_runs": plain_ms,
        "drafted_runs": drafted_ms,
    }


def accepted_decodes(model: LlamaCppModel, prompt: list[int], window: list[int], repeats: int) -> dict:
    """A fully accepted draft at the level of llama_decode, whatever the weights: generating the
    window's n tokens token by token is n-1 single decodes (argmax each); with every drafted token
    accepted, each decode is the last token and up to MAX_DRAFT_TOKENS drafted ones (logits and
    argmax for all) and moves on by all of them, as `_continue` does then. The window's own tokens
    stand in for the answer (llama.cpp's time does not depend on which tokens they are)."""
    import llama_cpp

    _, stopped = model.warm_tokens(prompt, timeout_s=3600)
    assert stopped is None, stopped
    mem, p, n = model._memory, len(prompt), len(window)
    plain, drafted, batches = [], [], 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        for i in range(n - 1):  # the first token comes from the prompt's logits
            assert model._decode([(p + i, window[i])], want_logits=True) == 0
            _argmax(model, -1)
        plain.append((time.perf_counter() - t0) * 1000)
        llama_cpp.llama_memory_seq_rm(mem, 0, p, -1)
        t0 = time.perf_counter()
        done, batches = 1, 0  # tokens chosen so far
        while done < n:
            guess = window[done : done + min(MAX_DRAFT_TOKENS, n - done - 1)]
            entries = [(p + done - 1 + i, t) for i, t in enumerate([window[done - 1], *guess])]
            assert model._decode(entries, want_logits=True, all_logits=True) == 0
            [_argmax(model, i) for i in range(len(entries))]
            done += len(guess) + 1
            batches += 1
        drafted.append((time.perf_counter() - t0) * 1000)
        llama_cpp.llama_memory_seq_rm(mem, 0, p, -1)
    return {
        "tokens": n,
        "plain_ms": statistics.median(plain),
        "drafted_ms": statistics.median(drafted),
        "ratio": statistics.median(drafted) / statistics.median(plain),
        "plain_decodes": n - 1,
        "drafted_decodes": batches,
        "min_ratio": min(drafted) / min(plain),
        "plain_runs": plain,
        "drafted_runs": drafted,
    }


# -- the report ----------------------------------------------------------------------------------


def med(rows: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def report(replay_rows: list[dict], verify_rows: list[dict], window: dict, meta: dict) -> str:
    out = [
        f"Measured {meta['date']}, {meta['machine']}, {meta['threads']} threads, commit {meta['commit']}, "
        f"model {meta['model']} ({meta['model_mb']:.0f} MB), `{meta['command']}`; 1-minute load average "
        f"{meta['load_avg_1min'][0]:.1f} at the start, {meta['load_avg_1min'][1]:.1f} at the end",
        "",
    ]
    if replay_rows:
        out += replay_report(replay_rows, meta)
    if verify_rows:
        out += [
            "(b) verifying k drafted tokens in one batch (k+1 entries, logits for all) vs k single decodes, "
            f"medians of {meta['verify_repeats']}",
            "",
            "| k | one batch ms | k single decodes ms | ratio | fastest runs: batch / singles / ratio |",
            "|---|---|---|---|---|",
        ]
        for r in verify_rows:
            out.append(
                f"| {r['k']} | {r['batch_ms']:,.1f} | {r['single_ms']:,.1f} | {r['ratio']:.2f} | "
                f"{r['min_batch_ms']:,.1f} / {r['min_single_ms']:,.1f} / {r['min_ratio']:.2f} |"
            )
        out.append("")
    if window:
        out += window_report(window, meta)
    return "\n".join(out)


def replay_report(replay_rows: list[dict], meta: dict) -> list[str]:
    out = [
        "(a) replay: rename of `request_setting` in requests 2.32.3's `sessions.merge_setting`, "
        f"medians of {meta['repeats']}",
        "",
        "| request | latency ms | retrieval ms | prompt eval ms | generation ms (tokens) | prompt tokens | "
        "evaluated | reused | evaluated in | changes, related files |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label in ("cold", "keystroke", "cursor jump", "use site"):
        rows = [r for r in replay_rows if r["request"] == label]
        kinds: dict[str, list[int]] = {}
        for r in rows:
            for kind in r["evaluated_by_kind"]:
                kinds.setdefault(kind, [])
        where = (
            ", ".join(
                f"{k} {statistics.median(r['evaluated_by_kind'].get(k, 0) for r in rows):.0f}"
                for k in sorted(kinds)
            )
            or "-"
        )
        out.append(
            f"| {label} | {med(rows, 'total_ms'):,.0f} | {med(rows, 'retrieval_ms'):.0f} | "
            f"{med(rows, 'eval_ms'):,.0f} | {med(rows, 'generation_ms'):,.0f} "
            f"({med(rows, 'generated_tokens'):.0f}) | {med(rows, 'prompt_tokens'):,.0f} | "
            f"{med(rows, 'evaluated_tokens'):,.0f} | {med(rows, 'reused_tokens'):,.0f} | {where} | "
            f"{rows[0]['changes']}, {rows[0]['related_files']} |"
        )
    keystroke = [r["evaluated_tokens"] for r in replay_rows if r["request"] == "keystroke"]
    out += [
        "",
        f"keystroke: evaluated tokens per repeat {keystroke} (goal <= {GOALS['keystroke_evaluated_tokens']})",
        "",
    ]
    return out


def window_report(window: dict, meta: dict) -> list[str]:
    d = window["decode_level"]
    return [
        f"(c) a fully accepted draft, decode by decode: the 21-line window's {d['tokens']} tokens, medians of "
        f"{meta['verify_repeats']}",
        "",
        "| decoding | ms | decodes |",
        "|---|---|---|",
        f"| token by token | {d['plain_ms']:,.0f} | {d['plain_decodes']} |",
        f"| every drafted token accepted (batches of up to {MAX_DRAFT_TOKENS} + 1) | {d['drafted_ms']:,.0f} | "
        f"{d['drafted_decodes']} |",
        f"| ratio (fastest runs) | {d['ratio']:.2f} ({d['min_ratio']:.2f}) | |",
        "",
        "(c) through the engine (`generate_tokens`), the model's own greedy answer as the draft: the window "
        f"{window['window_tokens']} tokens, the answer {window['answer_tokens']}; token by token: "
        f"{meta['window_repeats']} run(s), drafted: {meta['drafted_repeats']}",
        "",
        "| decoding | generation ms | decodes | drafted / accepted |",
        "|---|---|---|---|",
        f"| token by token | {window['plain_ms']:,.0f} | {window['plain_decodes']} | - |",
        f"| drafted (batches of up to {MAX_DRAFT_TOKENS}) | {window['drafted_ms']:,.0f} | "
        f"{window['drafted_decodes']} | {window['drafted']} / {window['accepted']} |",
        f"| ratio | {window['ratio']:.2f} | | same text: {window['same_text']} |",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/next_edit.py", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--repeats", type=int, default=2, help="replays (default 2)")
    parser.add_argument("--verify-repeats", type=int, default=3, help="runs of (b) per k (default 3)")
    parser.add_argument(
        "--window-repeats",
        type=int,
        default=1,
        help="token-by-token runs of the 21-line window "
        "in (c), the slowest part (default 1; the drafted run is repeated 3 times)",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--ks", default="4,8,16,32", help="drafted tokens per verify batch (default 4,8,16,32)"
    )
    parser.add_argument("--json", help="also write every figure to this file")
    parser.add_argument("--parts", default="a,b,c", help="which parts to run (default a,b,c)")
    parser.add_argument(
        "--drafted-repeats",
        type=int,
        default=1,
        help="drafted runs of the window through the engine in (c) (default 1)",
    )
    parser.add_argument(
        "--model",
        type=Path,
        help="another next-edit GGUF (a quick check of the benchmark with the "
        "tests' tiny model; default: the shape-alike Sweep 1.5B, built on first use)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s")
    for noisy in ("sentence_transformers", "faiss.loader", "httpx", "urllib3", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    t0 = time.perf_counter()
    load_before = os.getloadavg()[0]
    model, path = load(args.threads, args.model)
    partial: dict = {}

    def keep(key: str, value: object) -> None:  # a killed run keeps what it measured
        partial[key] = value
        if args.json:
            Path(args.json).write_text(json.dumps(partial, indent=1))

    parts = set(args.parts.split(","))
    replay_rows: list[dict] = []
    verify_rows: list[dict] = []
    accepted: dict = {}
    if "a" in parts:
        replay_rows, prompt = run_replay(model, args.repeats)
        keep("replay", replay_rows)
    else:
        prompt = cold_prompt(model)
    _, steps = replay()
    from engine.next_edit import SweepFormat

    window = SweepFormat().window(steps[0].source, steps[0].offset)
    if "b" in parts:
        ks = [int(k) for k in args.ks.split(",")]
        verify_rows = verify_cost(model, prompt, model.encode(window.text), ks, args.verify_repeats)
        keep("verify", verify_rows)
    if "c" in parts:
        decodes = accepted_decodes(model, prompt, model.encode(window.text), args.verify_repeats)
        keep("accepted_decodes", decodes)
        accepted = accepted_window(model, prompt, window.text, args.window_repeats, args.drafted_repeats)
        accepted["decode_level"] = decodes
        keep("accepted_window", accepted)
    meta = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{os.cpu_count()}-core {platform.machine()} CPU",
        "threads": args.threads,
        "commit": code_version(),
        "model": path.name,
        "model_mb": path.stat().st_size / 1e6,
        "repeats": args.repeats,
        "verify_repeats": args.verify_repeats,
        "window_repeats": args.window_repeats,
        "drafted_repeats": args.drafted_repeats,
        "command": "python benchmarks/next_edit.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "seconds": time.perf_counter() - t0,
        "load_avg_1min": [load_before, os.getloadavg()[0]],
    }
    print(report(replay_rows, verify_rows, accepted, meta))
    print(f"\n(run took {meta['seconds']:.0f} s)", file=sys.stderr)
    keep("meta", meta)
    return 0


if __name__ == "__main__":
    sys.exit(main())
