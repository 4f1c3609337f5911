"""KV-cache reuse while typing: the engine replaying real typing, against llama.cpp doing only the necessary work.

    python benchmarks/engine_replay.py [--model 0.5b|1.5b] [--vocab seed-coder] [--budgets 4096,16384,32768]
        [--kv f16,q8_0] [--requests N] [--json out.json] [--plan-only [--server-flow]]

A shape-alike Qwen2.5-Coder model (benchmarks/models.py: real shapes and tokenizer, random
weights, Q4_K_M; `--vocab seed-coder`: the same shape with Seed-Coder's special tokens, so the
prompts are laid out suffix first, as Seed-Coder, Mellum and Codestral have them) completes in a
real file of a real project: `PreparedRequest.prepare_body` in
requests 2.32.3's `src/requests/models.py` (the sdist, cached as benchmarks/retrieval_quality.py
caches it), indexed with the packaged MiniLM embedder. The function's body is deleted and typed
back one character at a time; a new line arrives with its indentation, as an editor indents it.
Each word boundary (after a space, a new line, `(` or `.`) is a pause that asks for a completion,
the first N pauses (`--requests`). Before the typing, one cold request (empty KV cache) at the
empty body, reported on its own.

For each request, side by side in the same process, the floor: a plain `llama_cpp.Llama` on the
same file with the same context size, threads, batch size, KV cache type and flash attention,
whose context already holds as many tokens as the engine could reuse; it evaluates only the
tokens the engine had to evaluate (the prompt's last `n_evaluated`, at the same positions) and
then decodes as many tokens as the engine generated, greedily, and rolls its KV cache back.
Its time is what llama.cpp needs for that request at the least; the engine's time is the whole
`Completer.complete` (retrieval, prompt assembly and tokenisation, KV planning and shifts,
evaluation, generation, post-processing). The floor's context holds the engine's own prompt
tokens at the positions it refills, and whatever it held before at the others: llama.cpp's
cost depends on how many tokens there are and where, not on their values.

Reported per KV type and budget: the share of prompt tokens reused over the typed requests
(sum reused / sum prompt; goal >= 95%), engine p50/p95, the ratio of the engine's median to the
floor's median and the median of per-request ratios (goal <= 1.2), and the process's RSS once
the model is loaded and has answered the cold request. Each KV type and budget runs in its own
process, so RSS is that configuration's alone and a crash in one leaves the others.

`--plan-only` needs no model (the vocabulary alone): it builds the prompts and runs the engine's
KV planner on them, for the share of tokens reused in seconds. With `--server-flow` each pause is
answered as `code-kb serve` answers it (a quick or steady prompt where the full one would cost
more than a keystroke; the full one evaluated in the idle time after it, as typing_lsp.py waits
for it): the tokens evaluated at each pause, which are what a keystroke's latency is made of at a
deep cache, and those evaluated in idle time.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from engine import Completer
    from engine.backends.llama_cpp import LlamaCppModel

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.models import CACHE, SHAPES, VOCABS, model_path, qwen25_coder_vocab  # noqa: E402

PROJECT = "requests==2.32.3"
FILE = "src/requests/models.py"
FUNCTION = "prepare_body"
BOUNDARIES = (" ", "\n", "(", ".")
MAX_TOKENS = 16

log = logging.getLogger("engine_replay")
VOCAB = "qwen2.5-coder"  # the shape-alike's vocabulary, and so its FIM family (--vocab)


def _model(size: str) -> Path:
    return model_path(size, vocab=VOCAB)


# -- the typing -------------------------------------------------------------------------------


@dataclass
class Pause:
    source: str
    offset: int
    typed: str  # what was typed since the previous pause, for the record


def typing_replay(text: str, function: str) -> tuple[Pause, list[Pause]]:
    """The file with `function`'s body deleted (the cursor at the start of the body, indented),
    and the pauses while the body is typed back: one after each word boundary."""
    tree = ast.parse(text)
    node = next(
        (
            n
            for n in ast.walk(tree)
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == function
        ),
        None,
    )
    if node is None:
        raise SystemExit(f"no function {function!r} in the file")
    lines = text.split("\n")
    first_stmt = node.body[0].lineno - 1  # 0-based
    # The signature ends at the last line before the first statement that is not blank or a comment.
    sig_end = first_stmt - 1
    while sig_end > node.lineno - 1 and (
        not lines[sig_end].strip() or lines[sig_end].lstrip().startswith("#")
    ):
        sig_end -= 1
    body = "\n".join(lines[sig_end + 1 : node.end_lineno]) + "\n"
    head = "\n".join(lines[: sig_end + 1]) + "\n"
    tail = "\n".join(lines[node.end_lineno :])
    indent = body[: len(body) - len(body.lstrip(" "))]
    head += indent  # the editor indents the new line
    body = body[len(indent) :]

    # Keystrokes: one character, except that a new line comes with the next line's indentation.
    keys: list[str] = []
    i = 0
    while i < len(body):
        if body[i] == "\n":
            j = i + 1
            while j < len(body) and body[j] == " ":
                j += 1
            keys.append(body[i:j])
            i = j
        else:
            keys.append(body[i])
            i += 1
    start = Pause(head + tail, len(head), "")
    pauses, typed, since = [], head, ""
    for key in keys:
        typed += key
        since += key
        if key[0] in BOUNDARIES:
            pauses.append(Pause(typed + tail, len(typed), since))
            since = ""
    assert head + "".join(keys) + tail == text
    return start, pauses


# -- measurements -------------------------------------------------------------------------------


def code_version() -> str:
    """The commit measured, and whether engine/ or retrieval/ differ from it (they change often)."""

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True).stdout.strip()

    dirty = git("status", "--porcelain", "--", "engine", "retrieval")
    return git("rev-parse", "--short", "HEAD") + (" + uncommitted engine/retrieval changes" if dirty else "")


def rss_mb() -> float:
    """This process's resident set size."""
    for line in Path("/proc/self/status").read_text().split("\n"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Floor:
    """llama.cpp through plain llama-cpp-python, doing for each request only what must be new."""

    def __init__(self, path: Path, engine_model) -> None:
        import llama_cpp

        hw = engine_model.hardware
        kv = {"f16": llama_cpp.GGML_TYPE_F16, "q8_0": llama_cpp.GGML_TYPE_Q8_0}[hw.kv_cache_type]
        self.llm = llama_cpp.Llama(
            str(path),
            n_ctx=engine_model.n_ctx,
            n_threads=hw.threads,
            n_threads_batch=hw.threads,
            n_batch=hw.n_batch,
            n_ubatch=hw.n_batch,
            n_gpu_layers=hw.gpu_layers,
            flash_attn=True,
            type_k=kv,
            type_v=kv,
            verbose=False,
        )
        assert self.llm.n_ctx() == engine_model.n_ctx, (self.llm.n_ctx(), engine_model.n_ctx)
        self._n_vocab = self.llm.n_vocab()
        self._llama_cpp = llama_cpp

    def _argmax(self) -> int:
        logits = np.ctypeslib.as_array(
            self._llama_cpp.llama_get_logits_ith(self.llm._ctx.ctx, -1), shape=(self._n_vocab,)
        )
        return int(logits.argmax())

    def _hold(self, tokens: list[int], pos: int) -> None:
        """Make the context hold `pos` tokens (untimed): cut what is beyond, or evaluate up to it."""
        llm = self.llm
        if llm.n_tokens > pos:
            llm._ctx.kv_cache_seq_rm(-1, pos, -1)
            llm.n_tokens = pos
        elif llm.n_tokens < pos:
            llm.eval(tokens[llm.n_tokens : pos])

    def request(self, tokens: list[int], n_new: int, n_decodes: int) -> tuple[float, float]:
        """Evaluate the last `n_new` of `tokens` and decode `n_decodes` tokens greedily, then roll
        back; (evaluation ms, decoding ms)."""
        n_new = max(1, min(n_new, len(tokens)))
        pos = len(tokens) - n_new
        self._hold(tokens, pos)
        llm = self.llm
        t0 = time.perf_counter()
        llm.eval(tokens[pos:])
        token = self._argmax()
        t1 = time.perf_counter()
        for _ in range(n_decodes):
            llm.eval([token])
            token = self._argmax()
        t2 = time.perf_counter()
        llm._ctx.kv_cache_seq_rm(-1, pos, -1)  # back to what the next request may build on
        llm.n_tokens = pos
        return (t1 - t0) * 1000, (t2 - t1) * 1000


def decodes_for(generation) -> int:
    """Single-token decodes the engine ran: the first token comes from the prompt's logits, and a
    token that ends generation by rule or limit is never decoded; an end-of-generation token is."""
    if generation.n_generated == 0 and generation.stop_reason != "eog":
        return 0
    return generation.n_generated - (0 if generation.stop_reason == "eog" else 1)


def segment_bounds(prompt) -> list[tuple[int, int, str]]:
    """[start, end) token positions and kind of each prompt segment."""
    out, pos = [], 0
    for seg in prompt.segments:
        out.append((pos, pos + len(seg.tokens), seg.kind))
        pos += len(seg.tokens)
    return out


def evaluated_by_kind(prompt, plan) -> dict[str, int]:
    """How many evaluated tokens fall in each kind of prompt segment."""
    return prompt.tokens_in(plan.evaluate)


def first_change(prompt, plan) -> str:
    """The kind of segment where the plan's first evaluated range starts."""
    if not plan.evaluate:
        return "-"
    a = plan.evaluate[0][0]
    return next((kind for s, e, kind in segment_bounds(prompt) if s <= a < e), "end")


def prompt_changes(prompt, previous) -> dict:
    """What changed in the prompt since the previous request: snippets in and out (and their
    tokens) and how far the first line of the current file's prefix moved."""

    def snippets(p):
        return {
            (s.path, s.start_line, s.text): len(s.tokens)
            for s in p.segments
            if s.kind in ("snippet", "signature", "outline")
        }

    def prefix_start(p):
        return next((s.start_line for s in p.segments if s.kind == "prefix"), 0)

    if previous is None:
        return {}
    now, before = snippets(prompt), snippets(previous)
    added = [k for k in now if k not in before]
    removed = [k for k in before if k not in now]
    return {
        "snippets_added": len(added),
        "snippets_removed": len(removed),
        "snippet_tokens_changed": sum(now[k] for k in added) + sum(before[k] for k in removed),
        "prefix_start_moved_lines": prefix_start(prompt) - prefix_start(previous),
    }


class PlanCounterfactual:
    """The engine's KV plan for a prompt, and the plan without the staleness bound, from the
    cache contents before the request (the engine's own kv_plan, with the model's settings)."""

    def __init__(self, min_run: int, max_stale: int, can_shift: bool) -> None:
        self.min_run, self.max_stale, self.can_shift = min_run, max_stale, can_shift
        self.held: list[int] = []
        self.stale: list[int] = []

    def step(self, tokens: list[int]):
        from engine.backends.kv_plan import after, plan

        p = plan(
            self.held,
            tokens,
            staleness=self.stale,
            can_shift=self.can_shift,
            min_run=self.min_run,
            max_stale=self.max_stale,
        )
        unbounded = plan(
            self.held,
            tokens,
            staleness=self.stale,
            can_shift=self.can_shift,
            min_run=self.min_run,
            max_stale=1 << 40,
        )
        self.held, self.stale = after(p, self.held, self.stale, tokens)
        return p, unbounded


@dataclass
class Request:
    typed: str
    n_prompt: int
    n_evaluated: int
    n_reused: int
    n_moved: int
    n_generated: int
    stop_reason: str
    total_ms: float
    retrieval_ms: float
    build_ms: float
    eval_ms: float
    generate_ms: float  # engine generation after evaluation
    floor_eval_ms: float
    floor_generate_ms: float
    n_evaluated_unbounded: int  # what the plan would evaluate without the staleness bound
    first_change: str  # segment kind where the first evaluated range starts
    changes: dict = field(default_factory=dict)  # prompt_changes()
    evaluate_ranges: list[list[int]] = field(default_factory=list)
    evaluated_by_kind: dict[str, int] = field(default_factory=dict)

    @property
    def floor_ms(self) -> float:
        return self.floor_eval_ms + self.floor_generate_ms


def _setup(budget: int, snippet_limit: int | None):
    from benchmarks.retrieval_quality import sdist
    from retrieval import CodeIndex, IndexConfig, SentenceTransformerEmbedder

    root = sdist(PROJECT)
    index = CodeIndex(
        root, IndexConfig(index_dir=CACHE / "indexes" / PROJECT), embedder=SentenceTransformerEmbedder()
    )
    index.reindex()
    start, pauses = typing_replay((root / FILE).read_text(), FUNCTION)
    index.snippets(FILE, start.source, start.offset)  # load the embedding model outside the timings
    return root, index, start, pauses


def _config(
    size: str,
    budget: int,
    kv: str,
    snippet_limit: int | None,
    timeout_s: float,
    threads: int | None = None,
    build: bool = True,
):
    from engine import EngineConfig

    extra = {"snippet_limit": snippet_limit} if snippet_limit else {}
    if threads:
        extra["n_threads"] = threads
    return EngineConfig(
        model_path=str(_model(size)) if build else None,
        budget_tokens=budget,
        max_tokens=MAX_TOKENS,
        timeout_s=timeout_s,
        kv_cache_type=kv,
        **extra,
    )


def _planner_settings() -> tuple[int, int]:
    import inspect

    from engine.backends.llama_cpp import LlamaCppModel

    params = inspect.signature(LlamaCppModel.__init__).parameters
    return params["min_reuse_tokens"].default, params["max_stale_tokens"].default


def _in_process(completer: Completer) -> LlamaCppModel:
    """The completer's backend, which here is always the in-process model: the replay reads its KV cache."""
    from engine.backends.llama_cpp import LlamaCppModel

    model = completer.backend
    assert isinstance(model, LlamaCppModel), "the replay measures the in-process model"
    return model


def run_one(
    size: str,
    budget: int,
    kv: str,
    n_requests: int,
    snippet_limit: int | None,
    timeout_s: float,
    out: Path,
    threads: int | None = None,
) -> dict:
    """One configuration, in this process: the cold request, RSS, then the typing replay; the
    figures so far are rewritten to `out` after each request (a killed run keeps them)."""
    from engine import Completer
    from engine.config import default_snippet_limit

    path = _model(size)
    version = code_version()
    root, index, start, pauses = _setup(budget, snippet_limit)
    pauses = pauses[:n_requests]
    repo = root.name
    rss_before = rss_mb()

    completer = Completer.load(_config(size, budget, kv, snippet_limit, timeout_s, threads))
    model = _in_process(completer)
    log.info(
        "%s, budget %d, KV %s: engine loaded (n_ctx %d, %s); cold request",
        size,
        budget,
        kv,
        model.n_ctx,
        model.hardware.to_dict(),
    )
    cold = completer.complete(FILE, start.source, start.offset, index, repo)
    rss_warm = rss_mb()
    log.info("cold: %s", cold.summary())

    floor = Floor(path, model)
    fe, fg = floor.request(cold.prompt.tokens, cold.prompt.n_tokens, decodes_for(cold.generation))
    log.info("floor cold: %.0f ms evaluation, %.0f ms decoding", fe, fg)
    cold_row = {
        "n_prompt": cold.generation.n_prompt,
        "total_ms": cold.total_ms,
        "eval_ms": cold.generation.eval_ms,
        "stop_reason": cold.generation.stop_reason,
        "n_generated": cold.generation.n_generated,
        "floor_ms": fe + fg,
        "floor_eval_ms": fe,
    }

    requests: list[Request] = []
    type_through = 0
    previous = cold.prompt

    def result(complete: bool) -> dict:
        return {
            "model": size,
            "model_file": path.name,
            "template": completer.template.name,
            "fim_order": completer.template.order,
            "code": version,
            "budget_tokens": budget,
            "kv_cache_type": kv,
            "n_ctx": model.n_ctx,
            "hardware": model.hardware.to_dict(),
            "kv_shift": model.can_shift,
            "snippet_limit": completer.config.snippet_limit or default_snippet_limit(budget),
            "rss_before_model_mb": rss_before,
            "rss_warm_mb": rss_warm,
            "cold": cold_row,
            "type_through": type_through,
            "complete": complete,
            "requests": [asdict(r) | {"floor_ms": r.floor_ms} for r in requests],
        }

    for i, pause in enumerate(pauses):
        # The cache's contents before this request (read only), for the counterfactual plan.
        counterfactual = PlanCounterfactual(model.min_reuse_tokens, model.max_stale_tokens, model.can_shift)
        counterfactual.held, counterfactual.stale = list(model._held), list(model._stale)
        c = completer.complete(FILE, pause.source, pause.offset, index, repo)
        g = c.generation
        if g.stop_reason == "type-through":  # answered from what was shown: no model call to compare
            type_through += 1
            continue
        plan = model.last_plan
        expected, unbounded = counterfactual.step(c.prompt.tokens)
        assert expected.n_evaluated == plan.n_evaluated, "the planner is not deterministic?"
        fe, fg = floor.request(c.prompt.tokens, g.n_evaluated, decodes_for(g))
        r = Request(
            pause.typed,
            g.n_prompt,
            g.n_evaluated,
            g.n_reused,
            g.n_moved,
            g.n_generated,
            g.stop_reason,
            c.total_ms,
            c.retrieval_ms,
            c.prompt.build_ms,
            g.eval_ms,
            g.ms - g.eval_ms,
            fe,
            fg,
            unbounded.n_evaluated,
            first_change(c.prompt, plan),
            prompt_changes(c.prompt, previous),
            [list(r) for r in plan.evaluate],
            evaluated_by_kind(c.prompt, plan),
        )
        previous = c.prompt
        requests.append(r)
        log.info(
            "%3d %-14r prompt %5d eval %4d (unbounded %4d) moved %5d gen %2d | engine %6.0f ms (retr %3.0f "
            "build %3.0f eval %5.0f gen %4.0f) | floor %6.0f ms (eval %5.0f gen %4.0f) | %s %s",
            i,
            pause.typed[-14:],
            g.n_prompt,
            g.n_evaluated,
            unbounded.n_evaluated,
            g.n_moved,
            g.n_generated,
            c.total_ms,
            c.retrieval_ms,
            c.prompt.build_ms,
            g.eval_ms,
            g.ms - g.eval_ms,
            fe + fg,
            fe,
            fg,
            r.evaluated_by_kind,
            r.changes,
        )
        out.write_text(json.dumps(result(False)))
    index.close()
    out.write_text(json.dumps(result(True)))
    return result(True)


def memory_one(size: str, budget: int, kv: str, threads: int | None) -> dict:
    """RSS of the engine at a budget and KV type: the process before the model, once it is loaded
    (llama.cpp allocates and clears the whole KV cache when it creates the context, so its pages
    are resident from then on), and once it has evaluated 1,024 tokens (compute buffers in use)."""
    from engine import Completer
    from engine.hardware import kv_cache_bytes

    rss_before = rss_mb()
    completer = Completer.load(_config(size, budget, kv, None, 600.0, threads))
    model = _in_process(completer)
    rss_loaded = rss_mb()
    text = (ROOT / "engine" / "prompt.py").read_text() * 4
    model.warm_tokens(model.encode(text)[:1024])
    row = {
        "model": size,
        "budget_tokens": budget,
        "kv_cache_type": kv,
        "n_ctx": model.n_ctx,
        "rss_before_model_mb": rss_before,
        "rss_loaded_mb": rss_loaded,
        "rss_after_eval_mb": rss_mb(),
        "model_file_mb": _model(size).stat().st_size / 2**20,
    }
    estimate = kv_cache_bytes(model.metadata, model.n_ctx, kv)
    if estimate is not None:
        row["kv_estimate_mb"] = estimate / 2**20
    return row


def _vocab_only_replay(size: str, budget: int, n_requests: int, snippet_limit: int | None):
    """The replay's index and pauses, and a completer with the tokenizer alone (the vocabulary GGUF
    the shape-alike is built from: no model to build)."""
    from engine import Completer

    root, index, start, pauses = _setup(budget, snippet_limit)
    config = dataclasses.replace(
        _config(size, budget, "f16", snippet_limit, 600.0, build=False),
        model_path=str(qwen25_coder_vocab(VOCAB)),
    )
    return root, index, start, pauses[:n_requests], Completer.load(config, vocab_only=True)


def plan_only(size: str, budgets: list[int], n_requests: int, snippet_limit: int | None) -> list[str]:
    """The engine's KV plans for the replay's prompts, built with the tokenizer only: no model, no timings.
    Exactly what the engine would reuse (its planner is deterministic), barring cancelled evaluations."""
    from engine.config import default_snippet_limit

    min_run, max_stale = _planner_settings()
    rows = []
    for budget in budgets:
        root, index, start, pauses, completer = _vocab_only_replay(size, budget, n_requests, snippet_limit)
        sim = PlanCounterfactual(min_run, max_stale, can_shift=True)
        previous = None
        n_prompt = reused = unbounded_reused = heavy = churn = moved_prefix = 0
        sizes = []
        for i, pause in enumerate([start] + pauses):
            prompt, _ = completer.prompt(FILE, pause.source, pause.offset, index, root.name)
            p, unbounded = sim.step(prompt.tokens)
            if i:
                changes = prompt_changes(prompt, previous)
                n_prompt += p.n_tokens
                reused += p.n_reused
                unbounded_reused += unbounded.n_reused
                sizes.append(p.n_tokens)
                heavy += p.n_evaluated > 64
                churn += bool(changes["snippets_added"] or changes["snippets_removed"])
                moved_prefix += changes["prefix_start_moved_lines"] != 0
                log.info(
                    "%3d %-14r prompt %5d eval %5d (unbounded %5d) first change in %s %s %s",
                    i,
                    pause.typed[-14:],
                    p.n_tokens,
                    p.n_evaluated,
                    unbounded.n_evaluated,
                    first_change(prompt, p),
                    evaluated_by_kind(prompt, p),
                    changes,
                )
            previous = prompt
        index.close()
        n = len(pauses)
        rows.append(
            f"| {budget} | {completer.config.snippet_limit or default_snippet_limit(budget)} | {statistics.median(sizes):.0f} | {n} | "
            f"**{reused / n_prompt * 100:.1f} %** | {unbounded_reused / n_prompt * 100:.1f} % | "
            f"{heavy} | {churn} | {moved_prefix} |"
        )
    return rows


def server_flow(size: str, budgets: list[int], n_requests: int, snippet_limit: int | None) -> list[str]:
    """The replay as `code-kb serve` answers it, plan-only: each pause asks the engine as the server
    does (`quick`: a quick or steady prompt where the full one costs more than a keystroke), then
    the pause's idle time evaluates the full prompt (`finish_prompt`), as typing_lsp.py waits for
    it. The tokens each keystroke evaluates are what its latency is made of, far more at a deep
    cache (benchmarks/README.md: 33-39 ms a token at 16k on one thread); the idle tokens are CPU
    spent between pauses. Speculation only appends after the prompt and is left out."""
    from engine.backends import Generation, Warmed
    from engine.backends.kv_plan import after, plan
    from engine.backends.llama_cpp import LlamaCppModel
    from engine.config import default_snippet_limit

    class Planned(LlamaCppModel):
        """The vocabulary-only model with a KV cache that exists only as the planner's bookkeeping."""

        def __init__(self, vocab: LlamaCppModel, n_ctx: int) -> None:
            self.__dict__.update(vocab.__dict__)
            self.can_shift, self._n_ctx = True, n_ctx

        @property
        def n_ctx(self) -> int:
            return self._n_ctx

        @property
        def warms(self) -> bool:
            return True

        def _apply(self, tokens: list[int], max_stale: int):
            p = plan(
                self._held,
                tokens,
                staleness=self._stale,
                can_shift=True,
                min_run=self.min_reuse_tokens,
                max_stale=max_stale,
            )
            self._held, self._stale = after(p, self._held, self._stale, tokens)
            return p

        def generate(self, prompt, **_):
            p = self._apply(prompt.tokens, self.max_stale_tokens)
            return Generation("", p.n_tokens, p.n_evaluated, p.n_reused, 0, "max_tokens", 0.0, p.n_moved)

        def warm(self, prompt, **_):
            p = self._apply(prompt.tokens, self.refresh_stale_tokens)
            return Warmed(p.n_tokens, p.n_evaluated, p.n_reused)

    rows = []
    for budget in budgets:
        root, index, start, pauses, completer = _vocab_only_replay(size, budget, n_requests, snippet_limit)
        completer.backend = Planned(completer.tokenizer, budget + MAX_TOKENS)
        evaluated, idle, scopes = [], [], Counter()
        for i, pause in enumerate([start] + pauses):
            answer = completer.complete(FILE, pause.source, pause.offset, index, root.name, quick=True)
            warmed = completer.finish_prompt()
            if i:
                evaluated.append(answer.generation.n_evaluated)
                idle.append(warmed)
                scopes[answer.scope] += 1
                log.info(
                    "%3d %-14r %-7s evaluated %5d at the pause, %5d in idle time",
                    i,
                    pause.typed[-14:],
                    answer.scope,
                    evaluated[-1],
                    warmed,
                )
        index.close()
        rows.append(
            f"| {budget} | {completer.config.snippet_limit or default_snippet_limit(budget)} | {len(pauses)} | "
            f"{', '.join(f'{n} {k}' for k, n in scopes.most_common())} | "
            f"**{statistics.median(evaluated):.0f}** / {pct(evaluated, 95):.0f} / {max(evaluated)} | "
            f"{sum(idle):,} |"
        )
    return rows


def shift_cost(
    size: str, n_ctxs: list[int], kv: str, threads: int, n_held: int = 600, repeats: int = 15
) -> list[str]:
    """What llama.cpp's K-shift adds to the next decode: one token decoded after moving a run of
    cached tokens by one position (as the engine does after a keystroke), against one decoded
    without a move; medians of `repeats`, per context size. llama.cpp re-rotates the K cache of
    every cell of the context (all n_ctx of them, used or not) when any was shifted."""
    import llama_cpp

    rows = []
    path = _model(size)
    for n_ctx in n_ctxs:
        kv_type = {"f16": llama_cpp.GGML_TYPE_F16, "q8_0": llama_cpp.GGML_TYPE_Q8_0}[kv]
        llm = llama_cpp.Llama(
            str(path),
            n_ctx=n_ctx,
            n_threads=threads,
            n_threads_batch=threads,
            n_batch=512,
            n_ubatch=512,
            flash_attn=True,
            type_k=kv_type,
            type_v=kv_type,
            verbose=False,
        )
        mem = llm._ctx.memory
        tokens = llm.tokenize((ROOT / "engine" / "prompt.py").read_bytes(), add_bos=False)[:n_held]
        llm.eval(tokens)
        n = len(tokens)

        def decode_at(pos: int) -> float:
            """ms for one token decoded at `pos` (then removed again)."""
            llm._batch.set_batch(batch=[tokens[0]], n_past=pos, logits_all=False)
            t0 = time.perf_counter()
            llm._ctx.decode(llm._batch)
            ms = (time.perf_counter() - t0) * 1000
            llama_cpp.llama_memory_seq_rm(mem, 0, pos, pos + 1)
            return ms

        plain, shifted = [], []
        for _ in range(repeats):
            plain.append(decode_at(n))
            # The engine after a keystroke: a run moves one position right, a token is decoded.
            llama_cpp.llama_memory_seq_add(mem, 0, 100, n, 1)
            shifted.append(decode_at(n + 1))
            llama_cpp.llama_memory_seq_add(mem, 0, 101, n + 1, -1)  # back; applied by an untimed decode
            decode_at(n)
        rows.append(
            f"| {size} | {kv} | {threads} | {llm.n_ctx()} | {statistics.median(plain):.1f} | "
            f"{statistics.median(shifted):.1f} | {statistics.median(shifted) - statistics.median(plain):.1f} |"
        )
        llm.close()  # frees the model and its context before the next size
    return rows


# -- the report -------------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


LIGHT_TOKENS = 64  # a request that evaluates at most this many tokens was served from the cache


def summary_rows(results: list[dict]) -> tuple[list[str], list[str], list[str], list[str]]:
    main, where, which, split = [], [], [], []
    for res in results:
        threads = res.get("hardware", {}).get("threads", "?")
        label = f"| {res['model']} | {threads} | {res['kv_cache_type']} | {res['budget_tokens']} |"
        if "error" in res:
            main.append(f"{label} failed: {res['error']} |")
            continue
        rq = res["requests"]
        if not rq:
            main.append(f"{label} no model requests |")
            continue
        eng = [r["total_ms"] for r in rq]
        flo = [r["floor_ms"] for r in rq]
        reused = sum(r["n_reused"] for r in rq) / sum(r["n_prompt"] for r in rq)
        ratio = statistics.median(eng) / statistics.median(flo)
        per = statistics.median(e / f for e, f in zip(eng, flo))
        ev = [r["n_evaluated"] for r in rq]
        cold = res["cold"]
        n = f"{len(rq)} (stopped early: {res['incomplete']})" if "incomplete" in res else f"{len(rq)}"
        main.append(
            f"{label} {statistics.median(r['n_prompt'] for r in rq):.0f} | {n} | {reused * 100:.1f} % | "
            f"{statistics.median(ev):.0f} / {pct(ev, 0.95):.0f} | {statistics.median(eng):.0f} / {pct(eng, 0.95):.0f} | "
            f"{statistics.median(flo):.0f} / {pct(flo, 0.95):.0f} | **{ratio:.2f}** | {per:.2f} | "
            f"{cold['total_ms'] / 1000:.1f} s / {cold['floor_ms'] / 1000:.1f} s | "
            f"{res['rss_warm_mb']:.0f} MB (+{res['rss_warm_mb'] - res['rss_before_model_mb']:.0f}) |"
        )

        def med(key: str) -> float:
            return statistics.median(r[key] for r in rq)

        other = statistics.median(
            r["total_ms"] - r["retrieval_ms"] - r["build_ms"] - r["eval_ms"] - r["generate_ms"] for r in rq
        )
        gen = statistics.median(r["n_generated"] for r in rq)
        where.append(
            f"{label} {med('retrieval_ms'):.1f} | {med('build_ms'):.1f} | {med('eval_ms'):.0f} | "
            f"{med('floor_eval_ms'):.0f} | {med('generate_ms'):.0f} | {med('floor_generate_ms'):.0f} | "
            f"{gen:.0f} | {other:.1f} |"
        )
        kinds: dict[str, int] = {}
        for r in rq:
            for k, n in r["evaluated_by_kind"].items():
                kinds[k] = kinds.get(k, 0) + n
        total = sum(r["n_evaluated"] for r in rq)
        prompt_total = sum(r["n_prompt"] for r in rq)
        parts = ", ".join(
            f"{k} {n} ({n / prompt_total * 100:.1f} %)"
            for k, n in sorted(kinds.items(), key=lambda kv: -kv[1])
        )
        moved = sum(r["n_moved"] for r in rq) / prompt_total
        unbounded = sum(r["n_evaluated_unbounded"] for r in rq)
        churn = sum(
            1 for r in rq if r["changes"].get("snippets_added") or r["changes"].get("snippets_removed")
        )
        which.append(
            f"{label} {total} of {prompt_total} | {parts} | {moved * 100:.1f} % | "
            f"{(1 - unbounded / prompt_total) * 100:.1f} % | {churn} of {len(rq)} |"
        )
        for name, sub in (
            (
                f"served from the cache (<= {LIGHT_TOKENS} evaluated)",
                [r for r in rq if r["n_evaluated"] <= LIGHT_TOKENS],
            ),
            (f"re-evaluating (> {LIGHT_TOKENS})", [r for r in rq if r["n_evaluated"] > LIGHT_TOKENS]),
        ):
            if not sub:
                continue
            e = statistics.median(r["total_ms"] for r in sub)
            f = statistics.median(r["floor_ms"] for r in sub)
            split.append(
                f"{label} {name} | {len(sub)} | {statistics.median(r['n_evaluated'] for r in sub):.0f} | "
                f"{e:.0f} | {f:.0f} | {e / f:.2f} | "
                f"{statistics.median(r['total_ms'] / r['floor_ms'] for r in sub):.2f} | "
                f"{statistics.median(r['eval_ms'] for r in sub):.0f} / "
                f"{statistics.median(r['floor_eval_ms'] for r in sub):.0f} |"
            )
    return main, where, which, split


def print_report(results: list[dict], shape_name: str) -> None:
    main, where, which, split = summary_rows(results)
    versions = ", ".join(dict.fromkeys(r.get("code", "?") for r in results))
    templates = ", ".join(
        dict.fromkeys(f"{r.get('template', 'qwen2.5-coder')} ({r.get('fim_order', 'psm')})" for r in results)
    )
    print(
        f"\n{shape_name} shape, Q4_K_M, random weights, FIM template {templates}; typed requests after one "
        f"cold request; code {versions}\n"
    )
    print(
        "| model | threads | KV | budget | prompt tokens (median) | requests | prompt tokens reused | evaluated p50 / p95 "
        "| engine ms p50 / p95 | floor ms p50 / p95 | engine / floor (medians) | median per-request ratio "
        "| cold: engine / floor | RSS warm (model's share) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(main))
    print("\nWhere a typed request's time goes (medians, ms)\n")
    print(
        "| model | threads | KV | budget | retrieval | prompt assembly | engine evaluation | floor evaluation "
        "| engine generation | floor generation | tokens generated | other |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(where))
    print("\nWhich prompt tokens were evaluated again (sums over the typed requests)\n")
    print(
        "| model | threads | KV | budget | evaluated of prompt tokens | by segment kind (share of all prompt tokens) "
        "| moved (shifted, reused) | reused without the staleness bound | requests whose snippets changed |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(which))
    print("\nRequests the cache served against those it could not\n")
    print(
        "| model | threads | KV | budget | requests | n | evaluated (median) | engine ms p50 | floor ms p50 "
        "| engine / floor (medians) | median per-request ratio | evaluation ms p50, engine / floor |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(split))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", choices=sorted(SHAPES), default="0.5b")
    parser.add_argument(
        "--vocab",
        choices=VOCABS,
        default="qwen2.5-coder",
        help="the shape-alike's vocabulary: seed-coder makes code-kb lay its prompts out suffix first",
    )
    parser.add_argument(
        "--budgets", default="4096,16384,32768", help="prompt budgets in tokens, comma-separated"
    )
    parser.add_argument("--kv", default="f16", help="KV cache types, comma-separated (f16, q8_0)")
    parser.add_argument(
        "--requests", type=int, default=80, help="typed requests (pauses) per run (default 80)"
    )
    parser.add_argument(
        "--snippets",
        type=int,
        default=None,
        help="snippet_limit: retrieved chunks offered to the prompt (default: the engine's, from the budget: 8 up to 4k, then one per 256 tokens)",
    )
    parser.add_argument(
        "--plan-only",
        action="store_true",
        help="no model: build the prompts with the tokenizer only and run the engine's KV "
        "planner on them (reuse shares in seconds; no timings)",
    )
    parser.add_argument(
        "--server-flow",
        action="store_true",
        help="with --plan-only: answer each pause as code-kb serve does (quick and steady prompts), "
        "the full prompt evaluated in the idle time after it; tokens evaluated per keystroke",
    )
    parser.add_argument(
        "--timeout-s", type=float, default=600.0, help="engine timeout_s (the cold request needs it)"
    )
    parser.add_argument("--json", help="write every request's figures here")
    parser.add_argument(
        "--shift-cost",
        action="store_true",
        help="only time llama.cpp's K-shift (one decode after a move) at each budget's context size",
    )
    parser.add_argument(
        "--threads",
        type=int,
        help="threads for the engine (n_threads) and so for the floor; default all cores, as the "
        "engine. On a machine shared with other jobs, 1 keeps OpenMP's threads from waiting "
        "on each other and the ratios steady",
    )
    parser.add_argument(
        "--memory",
        action="store_true",
        help="only the RSS of each budget and KV type: loaded, and after evaluating 1,024 tokens",
    )
    parser.add_argument(
        "--report", nargs="+", metavar="JSON", help="print the tables of earlier --json files"
    )
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # child: one budget and KV type
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("-v", "--verbose", action="store_true", help="per-request lines on stderr")
    args = parser.parse_args(argv)
    global VOCAB
    VOCAB = args.vocab
    logging.basicConfig(
        level=logging.INFO if args.verbose or args.one else logging.WARNING,
        stream=sys.stderr,
        format="%(message)s",
    )
    logging.getLogger("llama_cpp.native").setLevel(logging.WARNING)
    if args.report:
        results = []
        for f in args.report:
            data = json.loads(Path(f).read_text())
            for r in data if isinstance(data, list) else [data]:  # a --json file, or one configuration's
                if r.get("complete") is False and "incomplete" not in r:
                    r["incomplete"] = "partial file"
                results.append(r)
        print_report(results, " / ".join(dict.fromkeys(SHAPES[r["model"]].name for r in results)))
        return 0
    budgets = [int(b) for b in args.budgets.split(",")]
    kvs = args.kv.split(",")
    if args.one and args.memory:
        Path(args.out).write_text(json.dumps(memory_one(args.model, budgets[0], kvs[0], args.threads)))
        return 0
    if args.one:
        run_one(
            args.model,
            budgets[0],
            kvs[0],
            args.requests,
            args.snippets,
            args.timeout_s,
            Path(args.out),
            args.threads,
        )
        return 0

    if not args.plan_only:  # the plans need only the tokenizer
        _model(args.model)  # build it once, before the children
    if args.shift_cost:
        print(
            "| model | KV | threads | n_ctx | one decode, ms | one decode after a shift, ms | K-shift, ms |"
        )
        print("|---|---|---|---|---|---|---|")
        for kv in kvs:
            rows = shift_cost(
                args.model, [b + MAX_TOKENS for b in budgets], kv, args.threads or os.cpu_count() or 1
            )
            print("\n".join(rows), flush=True)
        return 0
    if args.memory:
        print(
            "| model | KV | budget | n_ctx | RSS before the model, MB | RSS with the model loaded, MB "
            "| RSS after 1,024 tokens, MB | KV cache, estimate MB |"
        )
        print("|---|---|---|---|---|---|---|---|")
        with tempfile.TemporaryDirectory(prefix="code-kb-rss-") as tmp:
            for kv in kvs:
                for budget in budgets:
                    out = Path(tmp) / f"{kv}-{budget}.json"
                    cmd = [
                        sys.executable,
                        __file__,
                        "--one",
                        "--memory",
                        "--model",
                        args.model,
                        "--vocab",
                        args.vocab,
                        "--budgets",
                        str(budget),
                        "--kv",
                        kv,
                        "--out",
                        str(out),
                    ] + (["--threads", str(args.threads)] if args.threads else [])
                    proc = subprocess.run(cmd, stderr=None if args.verbose else subprocess.PIPE, text=True)
                    if proc.returncode or not out.is_file():
                        print(f"| {args.model} | {kv} | {budget} | failed: exit status {proc.returncode} |")
                        continue
                    r = json.loads(out.read_text())
                    print(
                        f"| {r['model']} | {kv} | {budget} | {r['n_ctx']} | {r['rss_before_model_mb']:.0f} "
                        f"| {r['rss_loaded_mb']:.0f} | {r['rss_after_eval_mb']:.0f} "
                        f"| {r.get('kv_estimate_mb', float('nan')):.0f} |",
                        flush=True,
                    )
        return 0
    if args.plan_only and args.server_flow:
        rows = server_flow(args.model, budgets, args.requests, args.snippets)
        print(
            f"\nThe replay as the server answers it ({SHAPES[args.model].name} shape, {args.vocab} vocabulary, "
            f"no model; code {code_version()})\n"
        )
        print(
            "| budget | snippet limit | requests | prompts that answered | tokens evaluated at a pause: "
            "p50 / p95 / max | tokens evaluated in idle time (all pauses) |"
        )
        print("|---|---|---|---|---|---|")
        print("\n".join(rows))
        return 0
    if args.plan_only:
        rows = plan_only(args.model, budgets, args.requests, args.snippets)
        print(
            f"\nKV plans for the replay's prompts ({SHAPES[args.model].name} shape, {args.vocab} vocabulary, "
            f"no model; code {code_version()})\n"
        )
        print(
            "| budget | snippet limit | prompt tokens (median) | requests | prompt tokens reused "
            "| reused without the staleness bound | requests evaluating > 64 tokens "
            "| requests whose snippets changed | requests whose prefix window moved |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        print("\n".join(rows))
        return 0
    results = []
    with tempfile.TemporaryDirectory(prefix="code-kb-replay-") as tmp:
        for kv in kvs:
            for budget in budgets:
                # Next to --json, so that a killed run's requests survive it; else in a temporary folder.
                out = (
                    Path(args.json).with_suffix(f".{kv}-{budget}.json")
                    if args.json
                    else Path(tmp) / f"{kv}-{budget}.json"
                )
                out.unlink(missing_ok=True)
                cmd = (
                    [
                        sys.executable,
                        __file__,
                        "--one",
                        "--model",
                        args.model,
                        "--vocab",
                        args.vocab,
                        "--budgets",
                        str(budget),
                        "--kv",
                        kv,
                        "--requests",
                        str(args.requests),
                        "--timeout-s",
                        str(args.timeout_s),
                        "--out",
                        str(out),
                    ]
                    + (["--snippets", str(args.snippets)] if args.snippets else [])
                    + (["--threads", str(args.threads)] if args.threads else [])
                )
                t0 = time.perf_counter()
                proc = subprocess.run(cmd, stderr=None if args.verbose else subprocess.PIPE, text=True)
                log.warning("%s KV %s budget %d: %.0f s", args.model, kv, budget, time.perf_counter() - t0)
                if proc.returncode == 0 and out.is_file():
                    results.append(json.loads(out.read_text()))
                else:
                    tail = " / ".join((proc.stderr or "").strip().split("\n")[-3:])
                    error = f"exit status {proc.returncode}{': ' + tail if tail else ''}"
                    if out.is_file():  # killed or crashed part-way: keep the requests it measured
                        results.append(json.loads(out.read_text()) | {"incomplete": error})
                    else:
                        results.append(
                            {
                                "model": args.model,
                                "budget_tokens": budget,
                                "kv_cache_type": kv,
                                "error": error,
                            }
                        )
                if args.json:  # keep what is done if a later configuration takes too long
                    Path(args.json).write_text(json.dumps(results, indent=1))
    print_report(results, SHAPES[args.model].name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
