"""End to end through the real LSP server: code-kb against llama.cpp's llama-server used the way
llama.vim uses it, and against the floor, on one typing trace with one model.

    python benchmarks/typing_lsp.py [--model 0.5b|1.5b] [--contexts 4096,16384,32768] [--requests N]
        [--gpu] [--threads N] [--gap-ms 60] [--json out.json] [--plots DIR] [--profile DIR]
        [--report JSON ...]

The trace is benchmarks/engine_replay.py's: `PreparedRequest.prepare_body` in requests 2.32.3's
`src/requests/models.py` has its body deleted and typed back one character at a time (a new
line comes with its indentation); after each word boundary the user pauses and a completion is
asked for, the first N pauses (`--requests`). The model is a shape-alike Qwen2.5-Coder GGUF
(benchmarks/models.py: real shapes and tokenizer, random weights, Q4_K_M).

For each context size B, three systems on the same pauses, interleaved: at each pause code-kb
answers, then (once its server is idle: speculation and KV warming done) llama-server, then the
floor, one at a time, so that none competes with another for the CPU and the load from other
processes on a shared machine falls on the three alike within seconds of each other:

1. code-kb: `python -m lsp_server serve` spawned as an editor spawns it (pygls's client over
   stdio), initialised with the project as workspace folder and budgetTokens=B, maxTokens=16,
   debounceMs=0, nGpuLayers 0 (all with --gpu), timeoutS 600 (the default 10 s stops a long
   evaluation and answers nothing, which llama-server never does), every other setting at its
   default (KV warming and speculation on). The file is opened at the trace's start; start-up is
   timed from the spawn to the first completion answered at that cursor (asked for once the
   index is ready). Then every keystroke is an incremental didChange, `--gap-ms` apart; at each
   pause one textDocument/inlineCompletion is timed from send to answer, and codeKb.status
   (untimed) says what it evaluated, reused and generated. The user then waits until the server
   is idle (and at least 0.5 s after the last key, so that its pause timer has fired) while the
   other two answer.
   The repository context of each request comes from a separate, untimed server run over the
   same trace that answers codeKb/context at each pause (warm and speculate off, so that it
   never runs the model): asking the timed server would build a prompt on its model thread and
   change the previous prompt its next one is built against. The report counts the requests
   whose context drew on the files the timed server said it used (codeKb.status) and the
   difference in prompt size; speculation can make them differ (the timed server builds its next
   prompt against the speculative one).
2. llama-server (tests/fixtures/llama_server.py builds it from the llama.cpp vendored in
   llama-cpp-python), started as llama.vim's README starts it: `-c B+256 --cache-reuse 256 -np 1
   -fa on -b 1024 -ub 1024`, threads as code-kb. At each pause it gets what llama.vim's llama#fim
   sends: POST /infill with `input_prefix` (the 256 lines before the cursor's line), `prompt`
   (the cursor's line up to the cursor; empty on a blank line, as llama.vim does), `input_suffix`
   (the rest of the line and 64 lines after), `n_indent`, `cache_prompt`, `stream` false, and as
   `input_extra` the SAME repository context code-kb's prompt held for that cursor (its snippet,
   signature and recent parts, with their paths), so that both carry the same repository
   knowledge. Sampling is greedy (`samplers` ["top_k"], top_k 1, temperature 0) with n_predict
   16. llama.vim's `t_max_predict_ms` (250 ms on a first request) is left out so that both
   generate up to 16 tokens. The HTTP round trip is timed; the server's timings say how many
   prompt tokens it evaluated (`prompt_n`) and took from its cache (`cache_n`).
3. The floor: plain llama-cpp-python on the same model (n_ctx B+256, same threads, batch, KV
   type and flash attention) whose context holds code-kb's prompt length less the tokens that
   must be new at that pause (what was typed since the previous one, tokenised, plus one for the
   logits; at least one); it evaluates those and decodes as many tokens as code-kb generated
   (benchmarks/engine_replay.py's `Floor`). No client can do less for the same request.

Reported per B: p50/p95 latency of each, code-kb/llama-server and code-kb/floor (the ratio of
the medians and the median of per-request ratios), tokens evaluated and reused (code-kb's share
reused; llama-server's cache_n share), the two servers' RSS after the run (psutil, each process with its children: code-kb's
embedding worker while one runs; where the server's own lies,
from /proc/PID/smaps, in the log and the JSON: each mapped file, anonymous memory), start-up to
the first completion, and the load average before and after. Plots (PNG) go to `--plots`:
latency per request (one panel per B) and the ratios against the context size. `--profile DIR`
samples the code-kb server with py-spy (`pip install py-spy`; --nonblocking: it reads the
process without stopping it, but takes CPU of its own, so time without it) during the typed
requests and prints where its threads spent their time.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.engine_replay import FILE, FUNCTION, PROJECT, Floor, Pause, decodes_for, pct, typing_replay  # noqa: E402
from benchmarks.models import CACHE, SHAPES, model_path  # noqa: E402
from engine.prompt import CONTEXT_KINDS  # noqa: E402  (the repository part of code-kb's prompt)

MAX_TOKENS = 16
# code-kb's default timeoutS (10 s) stops a long evaluation and answers nothing; llama-server has no
# such limit here. Both must finish the same work for their times to compare.
TIMEOUT_S = 600.0
N_PREFIX_LINES = 256  # llama.vim's n_prefix
N_SUFFIX_LINES = 64  # llama.vim's n_suffix
INDEX_DIR = CACHE / "indexes" / f"typing_lsp-{PROJECT}"  # our own: engine_replay may hold its index's lock
SERVER = [sys.executable, "-m", "lsp_server", "serve"]

log = logging.getLogger("typing_lsp")


# -- the trace ----------------------------------------------------------------------------------


def keys_of(typed: str) -> list[str]:
    """The keystrokes of a pause's text, as typing_replay makes them: one character, or a new line
    with the next line's indentation."""
    keys, i = [], 0
    while i < len(typed):
        j = i + 1
        if typed[i] == "\n":
            while j < len(typed) and typed[j] == " ":
                j += 1
        keys.append(typed[i:j])
        i = j
    return keys


def position(source: str, offset: int) -> dict:
    """LSP position (UTF-16 columns) of an offset."""
    start = source.rfind("\n", 0, offset) + 1
    return {
        "line": source.count("\n", 0, offset),
        "character": len(source[start:offset].encode("utf-16-le")) // 2,
    }


def llama_vim_request(source: str, offset: int, extra: list[dict], n_predict: int = MAX_TOKENS) -> dict:
    """The body llama.vim's llama#fim posts to /infill for a cursor (its s:fim_ctx_local), with greedy
    sampling; `extra` is the input_extra list."""
    lines = source.split("\n")
    y = source.count("\n", 0, offset)
    x = offset - (source.rfind("\n", 0, offset) + 1)
    cur = lines[y]
    cur_prefix, cur_suffix = cur[:x], cur[x:]
    if not cur.strip():  # a blank line: llama.vim starts from the line's beginning, without indentation
        indent, cur_prefix, cur_suffix = 0, "", ""
    else:
        indent = len(cur) - len(cur.lstrip(" \t"))
    return {
        "input_prefix": "\n".join(lines[max(0, y - N_PREFIX_LINES) : y]) + "\n",
        "input_suffix": cur_suffix + "\n" + "\n".join(lines[y + 1 : y + 1 + N_SUFFIX_LINES]) + "\n",
        "input_extra": extra,
        "prompt": cur_prefix,
        "n_predict": n_predict,
        "n_indent": indent,
        "stop": [],
        "temperature": 0.0,
        "top_k": 1,
        "samplers": ["top_k"],
        "stream": False,
        "cache_prompt": True,
    }


def input_extra(context: dict) -> list[dict]:
    return [
        {"text": p["text"], "filename": p["path"]} for p in context["parts"] if p["kind"] in CONTEXT_KINDS
    ]


# -- code-kb through its LSP server ---------------------------------------------------------------


def plain(x: Any) -> Any:
    """pygls answers unknown result shapes with attribute objects; make them JSON data."""
    if isinstance(x, dict):
        return {k: plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)) and not hasattr(x, "_asdict"):
        return [plain(v) for v in x]
    if hasattr(x, "_asdict"):
        return plain(x._asdict())
    if hasattr(x, "__dict__") and not isinstance(x, type):
        return {k: plain(v) for k, v in vars(x).items() if not k.startswith("_")}
    return x


class LspSession:
    """One `code-kb serve` process driven as an editor drives it."""

    def __init__(self, log_path: Path) -> None:
        from lsprotocol import types
        from pygls.lsp.client import BaseLanguageClient

        self.types = types
        self.client = BaseLanguageClient("code-kb-typing-bench", "1")
        self.index_ready = asyncio.Event()
        self.messages: list[str] = []
        self.log_path = log_path
        self.version = 1
        self.uri = ""

        @self.client.feature(types.WINDOW_LOG_MESSAGE)
        def on_log(ls, params) -> None:
            if "index ready" in params.message:
                self.index_ready.set()

        @self.client.feature(types.WINDOW_SHOW_MESSAGE)
        def on_show(ls, params) -> None:
            self.messages.append(params.message)
            log.warning("server says: %s", params.message)

        @self.client.feature(types.WORKSPACE_CONFIGURATION)
        def on_configuration(ls, params) -> list:
            return [None for _ in params.items]

    async def start(self, root: Path, options: dict) -> dict:
        """Spawn and initialise; returns the times (s from spawn) of the initialize reply."""
        types = self.types
        t0 = time.perf_counter()
        await self.client.start_io(*SERVER, cwd=str(ROOT))
        self._drain = asyncio.create_task(self._drain_stderr())
        await self.client.initialize_async(
            types.InitializeParams(
                capabilities=types.ClientCapabilities(
                    window=types.WindowClientCapabilities(work_done_progress=False)
                ),
                root_uri=root.as_uri(),
                workspace_folders=[types.WorkspaceFolder(uri=root.as_uri(), name=root.name)],
                initialization_options=options,
            )
        )
        self.client.initialized(types.InitializedParams())
        self.t_spawn = t0
        return {"initialize_s": time.perf_counter() - t0}

    async def _drain_stderr(self) -> None:
        """The server's stderr is a pipe; read it so that the server never blocks on it."""
        with open(self.log_path, "ab") as out:
            stream = self.client._server.stderr
            while line := await stream.readline():
                out.write(line)

    @property
    def pid(self) -> int:
        return self.client._server.pid

    def open(self, path: Path, text: str) -> None:
        types = self.types
        self.uri = path.as_uri()
        self.client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(
                    uri=self.uri, language_id="python", version=self.version, text=text
                )
            )
        )

    def key(self, source: str, offset: int, text: str) -> None:
        """Insert `text` at `offset` of `source` (the document before the key), incrementally."""
        types = self.types
        self.version += 1
        p = position(source, offset)
        here = types.Position(**p)
        self.client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=self.uri, version=self.version),
                content_changes=[
                    types.TextDocumentContentChangePartial(range=types.Range(start=here, end=here), text=text)
                ],
            )
        )

    async def inline(self, source: str, offset: int) -> tuple[float, str]:
        """One inline completion, timed from send to answer: (ms, text)."""
        types = self.types
        params = types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=self.uri),
            position=types.Position(**position(source, offset)),
            context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Automatic),
        )
        t0 = time.perf_counter()
        result = await self.client.text_document_inline_completion_async(params)
        ms = (time.perf_counter() - t0) * 1000
        items = result.items if isinstance(result, types.InlineCompletionList) else (result or [])
        text = items[0].insert_text if items else ""
        return ms, text if isinstance(text, str) else text.value

    async def status(self) -> dict:
        return plain(
            await self.client.workspace_execute_command_async(
                self.types.ExecuteCommandParams(command="codeKb.status")
            )
        )

    async def context(self, source: str, offset: int) -> dict:
        return plain(
            await self.client.protocol.send_request_async(
                "codeKb/context", {"textDocument": {"uri": self.uri}, "position": position(source, offset)}
            )
        )

    async def stop(self) -> None:
        try:
            await asyncio.wait_for(self.client.shutdown_async(None), 30)
            self.client.exit(None)
        except (asyncio.TimeoutError, Exception) as exc:  # noqa: BLE001 - the benchmark's results are already in
            log.warning("server did not shut down cleanly: %r", exc)
        try:
            await asyncio.wait_for(self.client.stop(), 30)
        except asyncio.TimeoutError:
            log.warning("server did not exit; killing pid %d", self.pid)
            self.client._server.kill()
        self._drain.cancel()


def server_options(model: Path, budget: int, gpu: bool, threads: int | None, **extra: Any) -> dict:
    options = {
        "modelPath": str(model),
        "budgetTokens": budget,
        "maxTokens": MAX_TOKENS,
        "debounceMs": 0,
        "nGpuLayers": 99 if gpu else 0,
        "indexDir": str(INDEX_DIR),
        "timeoutS": TIMEOUT_S,
        **extra,
    }
    if threads:
        options["nThreads"] = threads
    return options


async def contexts_pass(
    model: Path,
    root: Path,
    budget: int,
    gpu: bool,
    threads: int | None,
    start: Pause,
    pauses: list[Pause],
    work: Path,
) -> list[dict]:
    """codeKb/context at the start and at every pause, from a server that never runs the model."""
    s = LspSession(work / f"code-kb-contexts-{budget}.log")
    await s.start(root, server_options(model, budget, gpu, threads, warm=False, speculate=False))
    s.open(root / FILE, start.source)
    await asyncio.wait_for(s.index_ready.wait(), 600)
    out = [await s.context(start.source, start.offset)]
    source, offset = start.source, start.offset
    for pause in pauses:
        for k in keys_of(pause.typed):
            s.key(source, offset, k)
            source, offset = source[:offset] + k + source[offset:], offset + len(k)
        assert (source, offset) == (pause.source, pause.offset)
        out.append(await s.context(source, offset))
    await s.stop()
    return out


class FloorRunner:
    """benchmarks/engine_replay.py's Floor at code-kb's settings, fed code-kb's prompt sizes."""

    def __init__(self, model: Path, n_ctx: int, hw: dict, text: str) -> None:
        self.floor = Floor(
            model,
            SimpleNamespace(
                n_ctx=n_ctx,
                hardware=SimpleNamespace(
                    gpu_layers=hw["gpu_layers"],
                    threads=hw["threads"],
                    kv_cache_type=hw["kv_cache_type"],
                    n_batch=hw["batch_tokens"],
                ),
            ),
        )
        self.filler = self.tokenize(text)

    def tokenize(self, text: str) -> list[int]:
        return self.floor.llm.tokenize(text.encode(), add_bos=False, special=False)

    def tokens(self, n: int) -> list[int]:
        """n prompt tokens: llama.cpp's cost depends on how many there are and where, not on which."""
        return (self.filler * (n // len(self.filler) + 1))[:n]

    @staticmethod
    def decodes(row: dict) -> int:
        """Single-token decodes code-kb ran for a request (engine_replay's decodes_for)."""
        return decodes_for(
            SimpleNamespace(n_generated=row.get("generated_tokens") or 0, stop_reason=row.get("stop_reason"))
        )

    def cold(self, row: dict) -> dict:
        """The whole prompt from an empty context, then the decodes; the context keeps the prompt
        (Floor.request would roll it back to nothing, and the next request would evaluate it again)."""
        f, n = self.floor, row["prompt_tokens"]
        f._hold([], 0)
        t0 = time.perf_counter()
        f.llm.eval(self.tokens(n))
        token = f._argmax()
        t1 = time.perf_counter()
        for _ in range(self.decodes(row)):
            f.llm.eval([token])
            token = f._argmax()
        t2 = time.perf_counter()
        f.llm._ctx.kv_cache_seq_rm(-1, n, -1)
        f.llm.n_tokens = n
        return {"ms": (t2 - t0) * 1000, "eval_ms": (t1 - t0) * 1000, "n_new": n, "decodes": self.decodes(row)}

    def request(self, typed: str, row: dict) -> dict:
        if not row.get("prompt_tokens"):  # answered without the model (type-through): nothing to compare
            return {"ms": None, "eval_ms": None, "n_new": 0, "decodes": 0}
        n_new = min(max(1, len(self.tokenize(typed)) + 1), row["prompt_tokens"])
        e, g = self.floor.request(self.tokens(row["prompt_tokens"]), n_new, self.decodes(row))
        return {"ms": e + g, "eval_ms": e, "n_new": n_new, "decodes": self.decodes(row)}


def infill(url: str, body: dict) -> tuple[float, dict]:
    """POST /infill, timed as the round trip."""
    data = json.dumps(body).encode()
    req = urllib.request.Request(url + "/infill", data=data, headers={"Content-Type": "application/json"})
    t0 = time.perf_counter()
    with urllib.request.urlopen(req, timeout=3600) as r:
        answer = json.load(r)
    return (time.perf_counter() - t0) * 1000, answer


def infill_row(ms: float, ans: dict) -> dict:
    t = ans.get("timings", {})
    n, c = int(t.get("prompt_n", 0)), int(t.get("cache_n", 0))
    return {
        "ms": ms,
        "text": ans.get("content", ""),
        "prompt_n": n,
        "cache_n": c,
        "prompt_tokens": n + c,
        "predicted_n": int(t.get("predicted_n", 0)),
        "prompt_ms": t.get("prompt_ms"),
        "predicted_ms": t.get("predicted_ms"),
        "stop_type": ans.get("stop_type"),
        "truncated": ans.get("truncated"),
    }


def rss_parts(pid: int, top: int = 8) -> dict[str, float]:
    """Where a process's resident memory lies (MB, largest first, the rest summed): each mapped
    file by name (the model's GGUF, each shared library), anonymous memory (heap, malloc arenas,
    buffers) as one part. From /proc/PID/smaps (Linux); empty where it cannot be read."""
    parts: dict[str, float] = {}
    name = "?"
    try:
        with open(f"/proc/{pid}/smaps") as f:
            for line in f:
                head = line.split(None, 5)
                if not head:
                    continue
                if "-" in head[0] and not head[0].endswith(":"):  # a mapping's header line
                    path = head[5].strip() if len(head) > 5 else ""
                    name = Path(path).name if path.startswith("/") else "anonymous"
                elif head[0] == "Rss:":
                    parts[name] = parts.get(name, 0.0) + int(head[1]) / 1024
    except OSError:
        return {}
    ranked = sorted(parts.items(), key=lambda kv: -kv[1])
    out = dict(ranked[:top])
    out["rest"] = sum(v for _, v in ranked[top:])
    return {k: round(v, 1) for k, v in out.items()}


def tree_rss_mb(pid: int) -> float:
    """RSS of a process and all its children (code-kb's embedding worker, while one runs), MB."""
    import psutil

    root = psutil.Process(pid)
    total = 0
    for p in [root, *root.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total / 2**20


def pid_on_port(port: str) -> int:
    import psutil

    for p in psutil.process_iter(["cmdline"]):
        cmd = p.info["cmdline"] or []
        if "--port" in cmd and cmd[cmd.index("--port") + 1 : cmd.index("--port") + 2] == [port]:
            return p.pid
    raise RuntimeError(f"no llama-server on port {port}")


async def wait_idle(s: LspSession, since_key: float, timeout_s: float = 600) -> float:
    """Until code-kb's model thread is idle (speculation and warming done) and its pause timer
    (300 ms after the last edit) has fired; returns the seconds waited."""
    t0 = time.perf_counter()
    idle = 0
    while time.perf_counter() - t0 < timeout_s:
        await asyncio.sleep(0.1)
        st = await s.status()
        idle = idle + 1 if st["generating"] is None else 0
        if idle >= 2 and time.perf_counter() - since_key > 0.5:
            break
    return time.perf_counter() - t0


async def replay(
    model: Path,
    root: Path,
    budget: int,
    gpu: bool,
    threads: int | None,
    start: Pause,
    pauses: list[Pause],
    contexts: list[dict],
    gap_s: float,
    work: Path,
    profile: Path | None,
) -> dict:
    """The three systems on one trace, interleaved: at each pause code-kb answers (timed), then,
    once its server is idle, llama-server and the floor answer the same pause (timed), one at a time.
    Load from other processes on a shared machine then falls on the three alike."""
    import psutil

    from tests.fixtures import llama_server

    out: dict[str, Any] = {"code_kb": {}, "llama_server": {}, "floor": {}}

    # code-kb: spawn, index ready, the first completion at the trace's start.
    s = LspSession(work / f"code-kb-{budget}.log")
    times = await s.start(root, server_options(model, budget, gpu, threads))
    s.open(root / FILE, start.source)
    await asyncio.wait_for(s.index_ready.wait(), 600)
    times["index_ready_s"] = time.perf_counter() - s.t_spawn
    ms, text = await s.inline(start.source, start.offset)
    times["first_completion_s"] = time.perf_counter() - s.t_spawn
    times["first_completion_text"] = bool(text)
    st = await s.status()
    k_cold = {"ms": ms, "text": text, **(st["last_completion"] or {})}
    hw = st["model"]
    log.info(
        "code-kb %d: initialize %.1f s, index ready %.1f s, first completion %.1f s after spawn (%.0f ms; %s)",
        budget,
        times["initialize_s"],
        times["index_ready_s"],
        times["first_completion_s"],
        ms,
        {
            k: k_cold.get(k)
            for k in ("prompt_scope", "prompt_tokens", "evaluated_tokens", "generated_tokens", "stop_reason")
        },
    )
    await wait_idle(s, time.perf_counter())
    out["code_kb"].update(times=times, cold=k_cold, model=hw)

    # llama-server, started as llama.vim's README starts it.
    args = [
        "-c",
        str(budget + 256),
        "--cache-reuse",
        "256",
        "-np",
        "1",
        "-t",
        str(hw["threads"]),
        "-fa",
        "on",
        "-b",
        "1024",
        "-ub",
        "1024",
        "-ngl",
        "99" if gpu else "0",
    ]
    llama_server.binary()  # built once, outside the timings
    t0 = time.perf_counter()
    with llama_server.running(
        model, *args, log_file=work / f"llama-server-{budget}.log", start_timeout_s=600
    ) as url:
        s_times = {"health_s": time.perf_counter() - t0}
        ms, ans = await asyncio.to_thread(
            infill, url, llama_vim_request(start.source, start.offset, input_extra(contexts[0]))
        )
        s_times["first_completion_s"] = time.perf_counter() - t0
        s_times["first_completion_text"] = bool(ans.get("content"))
        s_cold = infill_row(ms, ans)
        log.info(
            "llama-server %d: first completion %.1f s after spawn (%.0f ms, prompt %d)",
            budget,
            s_times["first_completion_s"],
            ms,
            s_cold["prompt_tokens"],
        )
        out["llama_server"].update(times=s_times, cold=s_cold, args=args)

        # The floor, in this process: its cold request fills its context for the typed ones.
        floor = await asyncio.to_thread(FloorRunner, model, budget + 256, hw, start.source)
        f_cold = await asyncio.to_thread(floor.cold, k_cold)
        log.info("floor %d: cold %.0f ms", budget, f_cold["ms"])
        out["floor"]["cold"] = f_cold

        spy = None
        if profile is not None:
            profile.mkdir(parents=True, exist_ok=True)
            spy = subprocess.Popen(
                [
                    "py-spy",
                    "record",
                    "--pid",
                    str(s.pid),
                    "--format",
                    "raw",
                    "--rate",
                    "100",
                    "--threads",
                    "--nonblocking",
                    "--output",
                    str(profile / f"code-kb-{budget}.txt"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            await asyncio.sleep(1.0)  # let it attach
        k_rows, s_rows, f_rows = [], [], []
        source, offset = start.source, start.offset
        for i, (pause, ctx) in enumerate(zip(pauses, contexts[1:])):
            for n, k in enumerate(keys_of(pause.typed)):
                if n:
                    await asyncio.sleep(gap_s)
                s.key(source, offset, k)
                source, offset = source[:offset] + k + source[offset:], offset + len(k)
            t_key = time.perf_counter()
            assert (source, offset) == (pause.source, pause.offset)
            ms, text = await s.inline(source, offset)
            last = (await s.status())["last_completion"] or {}
            k_rows.append({"ms": ms, "text": text, **last})
            waited = await wait_idle(s, t_key)
            k_rows[-1]["idle_wait_s"] = waited
            ms, ans = await asyncio.to_thread(
                infill, url, llama_vim_request(source, offset, input_extra(ctx))
            )
            s_rows.append(infill_row(ms, ans))
            f_rows.append(await asyncio.to_thread(floor.request, pause.typed, k_rows[-1]))
            k, sv, f = k_rows[-1], s_rows[-1], f_rows[-1]
            log.info(
                "%d #%-3d %-14r code-kb %7.0f ms (prompt %5s eval %5s gen %2s %s) | llama-server %7.0f ms "
                "(prompt %5d eval %5d gen %2d) | floor %7.0f ms (%d new) | idle after %.1f s",
                budget,
                i,
                pause.typed[-14:],
                k["ms"],
                k.get("prompt_tokens"),
                k.get("evaluated_tokens"),
                k.get("generated_tokens"),
                k.get("stop_reason"),
                sv["ms"],
                sv["prompt_tokens"],
                sv["prompt_n"],
                sv["predicted_n"],
                f["ms"] or 0,
                f["n_new"],
                waited,
            )
        if spy is not None:
            spy.send_signal(2)  # SIGINT: py-spy writes its output and exits
            try:
                spy.wait(60)
            except subprocess.TimeoutExpired:
                spy.kill()
        server_pid = pid_on_port(url.rsplit(":", 1)[1])
        out["code_kb"]["rss_mb"] = tree_rss_mb(s.pid)
        out["llama_server"]["rss_mb"] = tree_rss_mb(server_pid)
        out["code_kb"]["processes"] = 1 + len(psutil.Process(s.pid).children(recursive=True))
        for who, pid in (("code_kb", s.pid), ("llama_server", server_pid)):
            out[who]["rss_parts_mb"] = rss_parts(pid)
            log.info("%s %d: RSS %.0f MB: %s", who, budget, out[who]["rss_mb"], out[who]["rss_parts_mb"])
        del floor
        gc.collect()
    st = await s.status()
    await s.stop()
    out["code_kb"].update(requests=k_rows, scheduler=st["scheduler"], messages=s.messages)
    out["llama_server"]["requests"] = s_rows
    out["floor"]["requests"] = f_rows
    return out


COMPLETION_LOG = re.compile(
    r"completion \S+:(\d+): .*?; prompt \d+ tokens(?: \([\w-]+\))?: \d+ evaluated, \d+ reused \((\d+) moved\); "
    r"retrieval \d+ ms, evaluation (\d+) ms, generation (\d+) ms, total (\d+) ms"
)


def engine_split(log_path: Path, offsets: list[int], rows: list[dict]) -> None:
    """Add the engine's evaluation / generation split (and tokens moved) to each row, from the
    server's log line for that completion: codeKb.status reports only their sum."""
    lines = [m for m in map(COMPLETION_LOG.search, log_path.read_text(errors="replace").splitlines()) if m]
    for offset, row in zip(offsets, rows):
        for m in lines:
            if int(m[1]) == offset and abs(int(m[5]) - (row.get("latency_ms") or -9)) <= 1:
                row.update(moved_tokens=int(m[2]), eval_ms=float(m[3]), gen_ms=float(m[4]))
                break


def context_matches(ctx: dict, row: dict) -> bool:
    """Whether the untimed pass's prompt drew on the files the timed server's did, in the same order."""
    paths = list(dict.fromkeys(p["path"] for p in ctx["parts"] if p["kind"] in CONTEXT_KINDS))
    return paths == row.get("context_from")


def code_version() -> dict:
    """The commit, and the files that differ from it (others may be editing the tree meanwhile)."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    return {
        "commit": git("rev-parse", "HEAD"),
        "changed": git("status", "--short", "--", "engine", "lsp_server", "retrieval").splitlines(),
    }


def run_context(
    size: str,
    budget: int,
    n_requests: int,
    gpu: bool,
    threads: int | None,
    gap_s: float,
    work: Path,
    profile: Path | None,
) -> dict:
    from benchmarks.retrieval_quality import sdist

    model = model_path(size)
    root = sdist(PROJECT)
    start, pauses = typing_replay((root / FILE).read_text(), FUNCTION)
    pauses = pauses[:n_requests]
    result: dict[str, Any] = {
        "model": size,
        "model_file": model.name,
        "budget_tokens": budget,
        "gpu": gpu,
        "gap_ms": gap_s * 1000,
        "typed": [p.typed for p in pauses],
        "loadavg_start": os.getloadavg(),
        "code": code_version(),
    }
    t0 = time.perf_counter()
    contexts = asyncio.run(contexts_pass(model, root, budget, gpu, threads, start, pauses, work))
    result["contexts"] = [
        {
            "prompt_tokens": c["prompt_tokens"],
            "parts": [
                {k: p[k] for k in ("kind", "path", "start_line", "end_line", "tokens")} for p in c["parts"]
            ],
        }
        for c in contexts
    ]
    log.info("contexts pass: %.0f s", time.perf_counter() - t0)
    t0 = time.perf_counter()
    result.update(
        asyncio.run(replay(model, root, budget, gpu, threads, start, pauses, contexts, gap_s, work, profile))
    )
    result["wall_s"] = time.perf_counter() - t0
    engine_split(
        work / f"code-kb-{budget}.log",
        [start.offset] + [p.offset for p in pauses],
        [result["code_kb"]["cold"]] + result["code_kb"]["requests"],
    )
    result["loadavg_end"] = os.getloadavg()
    return result


# -- the report -----------------------------------------------------------------------------------


def _med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def compared(res: dict) -> list[tuple[dict, dict, dict]]:
    """(code-kb, llama-server, floor) rows of the requests code-kb sent to its model."""
    return [
        (k, s, f)
        for k, s, f in zip(
            res["code_kb"]["requests"], res["llama_server"]["requests"], res["floor"]["requests"]
        )
        if f["ms"] is not None
    ]


def summary(res: dict) -> dict:
    rows = compared(res)
    k = [r[0]["ms"] for r in rows]
    s = [r[1]["ms"] for r in rows]
    f = [r[2]["ms"] for r in rows]
    ck = res["code_kb"]["requests"]
    ls = res["llama_server"]["requests"]
    return {
        "n": len(rows),
        "n_all": len(ck),
        "type_through": len(ck) - len(rows),
        "k50": _med(k),
        "k95": pct(k, 0.95),
        "s50": _med(s),
        "s95": pct(s, 0.95),
        "f50": _med(f),
        "f95": pct(f, 0.95),
        "ks_med": _med(k) / _med(s),
        "ks_per": _med([a / b for a, b in zip(k, s)]),
        "kf_med": _med(k) / _med(f),
        "kf_per": _med([a / b for a, b in zip(k, f)]),
        "k_prompt": _med([r["prompt_tokens"] for r in ck if r.get("prompt_tokens")]),
        "s_prompt": _med([r["prompt_tokens"] for r in ls]),
        "k_eval": _med([r[0]["evaluated_tokens"] for r in rows]),
        "s_eval": _med([r["prompt_n"] for r in ls]),
        "f_eval": _med([r[2]["n_new"] for r in rows]),
        "k_reused": sum(r[0]["reused_tokens"] for r in rows)
        / max(1, sum(r[0]["prompt_tokens"] for r in rows)),
        "s_reused": sum(r["cache_n"] for r in ls) / max(1, sum(r["prompt_tokens"] for r in ls)),
        "k_gen": _med([r[0]["generated_tokens"] for r in rows]),
        "s_gen": _med([r["predicted_n"] for r in ls]),
        "k_rss": res["code_kb"]["rss_mb"],
        "s_rss": res["llama_server"]["rss_mb"],
        "k_start": res["code_kb"]["times"]["first_completion_s"],
        "s_start": res["llama_server"]["times"]["first_completion_s"],
        "k_cold": res["code_kb"]["cold"]["ms"],
        "s_cold": res["llama_server"]["cold"]["ms"],
        "f_cold": res["floor"]["cold"]["ms"],
        "k_engine": _med([r[0]["latency_ms"] for r in rows]),
        "k_retrieval": _med([r[0]["retrieval_ms"] for r in rows]),
        "k_model": _med([r[0]["generation_ms"] for r in rows]),
        "k_outside": _med([r[0]["ms"] - r[0]["latency_ms"] for r in rows]),
        "k_build": _med([r[0]["latency_ms"] - r[0]["retrieval_ms"] - r[0]["generation_ms"] for r in rows]),
        "f_eval_ms": _med([r[2]["eval_ms"] for r in rows]),
        "f_dec_ms": _med([r[2]["ms"] - r[2]["eval_ms"] for r in rows]),
        "s_prompt_ms": _med([r[1]["prompt_ms"] for r in rows]),
        "s_pred_ms": _med([r[1]["predicted_ms"] for r in rows]),
        "s_outside": _med([r[1]["ms"] - r[1]["prompt_ms"] - r[1]["predicted_ms"] for r in rows]),
        "k_eval_ms": _med([r[0]["eval_ms"] for r in rows if "eval_ms" in r[0]]),
        "k_gen_ms": _med([r[0]["gen_ms"] for r in rows if "gen_ms" in r[0]]),
        # llama-server stops on its own rules (n_indent, end of generation): its time had it
        # generated as many tokens as code-kb did, at its own per-token decoding speed.
        "ks_same": _med(k) / _med([s_same(x[1], x[0]["generated_tokens"]) for x in rows]),
        # The repository context llama-server got (the untimed pass's) against code-kb's own prompt.
        "repo_tokens": _med(
            [sum(p["tokens"] for p in c["parts"] if p["kind"] in CONTEXT_KINDS) for c in res["contexts"][1:]]
        ),
        "matches": sum(context_matches(c, r) for c, r in zip(res["contexts"], [res["code_kb"]["cold"]] + ck)),
        "pass_diff": _med(
            [abs(r.get("prompt_tokens", 0) - c["prompt_tokens"]) for c, r in zip(res["contexts"][1:], ck)]
        ),
    }


def s_same(row: dict, n_generated: int) -> float:
    """A llama-server request's time re-scaled to `n_generated` tokens (an estimate)."""
    per_token = row["predicted_ms"] / row["predicted_n"] if row["predicted_n"] else 0.0
    return row["ms"] - row["predicted_ms"] + per_token * n_generated


def print_report(results: list[dict]) -> None:
    ok = [r for r in results if "error" not in r]
    for r in results:
        if "error" in r:
            print(f"\n{r['model']} at {r['budget_tokens']}: failed: {r['error']}")
    if not ok:
        return
    shape = SHAPES[ok[0]["model"]].name
    print(
        f"\n{shape} shape, Q4_K_M, random weights; {'GPU' if ok[0]['gpu'] else 'CPU'}, "
        f"{ok[0]['code_kb']['model']['threads']} threads; typed requests after one cold request\n"
    )
    print(
        "| context | requests | code-kb ms p50 / p95 | llama-server ms p50 / p95 | floor ms p50 / p95 "
        "| code-kb / llama-server: medians, per request | code-kb / floor: medians, per request "
        "| code-kb / llama-server generating as many tokens (estimated) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in ok:
        m = summary(r)
        tt = f" ({m['type_through']} type-through left out)" if m["type_through"] else ""
        print(
            f"| {r['budget_tokens']} | {m['n']}{tt} | {m['k50']:.0f} / {m['k95']:.0f} | {m['s50']:.0f} / "
            f"{m['s95']:.0f} | {m['f50']:.0f} / {m['f95']:.0f} | **{m['ks_med']:.2f}**, {m['ks_per']:.2f} | "
            f"**{m['kf_med']:.2f}**, {m['kf_per']:.2f} | {m['ks_same']:.2f} |"
        )
    print(
        "\n| context | prompt tokens p50: code-kb / llama-server | evaluated p50: code-kb / llama-server / floor "
        "| reused: code-kb / llama-server (cache_n) | generated p50: code-kb / llama-server "
        "| RSS after the run: code-kb / llama-server | spawn to first completion: code-kb / llama-server "
        "| cold request ms: code-kb / llama-server / floor | repository context p50, tokens "
        "| context pass: same snippet files as code-kb's prompt (prompt size difference p50, tokens) | load average start / end |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in ok:
        m = summary(r)
        print(
            f"| {r['budget_tokens']} | {m['k_prompt']:.0f} / {m['s_prompt']:.0f} | {m['k_eval']:.0f} / "
            f"{m['s_eval']:.0f} / {m['f_eval']:.0f} | {m['k_reused'] * 100:.1f} % / {m['s_reused'] * 100:.1f} % | "
            f"{m['k_gen']:.0f} / {m['s_gen']:.0f} | {m['k_rss']:.0f} MB / {m['s_rss']:.0f} MB | "
            f"{m['k_start']:.1f} s / {m['s_start']:.1f} s | {m['k_cold']:.0f} / {m['s_cold']:.0f} / "
            f"{m['f_cold']:.0f} | {m['repo_tokens']:.0f} | {m['matches']} of {m['n_all'] + 1} "
            f"({m['pass_diff']:.0f}) | "
            f"{r['loadavg_start'][0]:.2f} / {r['loadavg_end'][0]:.2f} |"
        )
    print(
        "\nWhere the time goes (medians, ms): code-kb's round trip = engine (retrieval + prompt build and "
        "post-processing + model) + outside the engine (JSON-RPC, scheduling, the event loop)\n"
    )
    print(
        "| context | code-kb round trip | code-kb engine | retrieval | prompt build, other | model: evaluation "
        "/ generation | outside the engine | llama-server: prompt / generation / outside | floor: evaluation / "
        "decoding |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in ok:
        m = summary(r)
        print(
            f"| {r['budget_tokens']} | {m['k50']:.0f} | {m['k_engine']:.0f} | {m['k_retrieval']:.0f} | "
            f"{m['k_build']:.0f} | {m['k_eval_ms']:.0f} / {m['k_gen_ms']:.0f} | {m['k_outside']:.0f} | "
            f"{m['s_prompt_ms']:.0f} / {m['s_pred_ms']:.0f} / {m['s_outside']:.0f} | {m['f_eval_ms']:.0f} / "
            f"{m['f_dec_ms']:.0f} |"
        )
    for r in ok:  # the goals of issue 19, at every context size run
        m = summary(r)
        print(f"\nGoals at {r['budget_tokens']} tokens:")
        for name, value, target, good in (
            ("code-kb p50 / llama-server p50", m["ks_med"], "<= 0.5", m["ks_med"] <= 0.5),
            ("code-kb p50 / floor p50", m["kf_med"], "<= 1.2", m["kf_med"] <= 1.2),
            ("code-kb prompt tokens reused", m["k_reused"], ">= 0.95", m["k_reused"] >= 0.95),
        ):
            print(f"- {name}: {value:.2f} (goal {target}): {'met' if good else 'MISSED'}")


def plot(results: list[dict], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in results if "error" not in r]
    if not ok:
        return []
    out.mkdir(parents=True, exist_ok=True)
    size = ok[0]["model"]
    files = []
    fig, axes = plt.subplots(1, len(ok), figsize=(4.2 * len(ok), 3.6), squeeze=False, sharey=True)
    for ax, r in zip(axes[0], ok):
        rows = compared(r)
        idx = [i for i, f in enumerate(r["floor"]["requests"]) if f["ms"] is not None]
        for label, series, style in (
            ("code-kb", [x[0]["ms"] for x in rows], "o-"),
            ("llama-server (llama.vim)", [x[1]["ms"] for x in rows], "s-"),
            ("floor", [x[2]["ms"] for x in rows], "^-"),
        ):
            ax.plot(idx, series, style, label=label, markersize=3, linewidth=1)
        ax.set_yscale("log")
        ax.set_title(f"context {r['budget_tokens']} tokens")
        ax.set_xlabel("request (pause) index")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("latency, ms (log)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.suptitle(f"Typing replay, {SHAPES[size].name} shape, send to answer", fontsize=10)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    path = out / f"typing_lsp_latency_{size}.png"
    fig.savefig(path, dpi=80)
    plt.close(fig)
    files.append(path)

    fig, ax = plt.subplots(figsize=(5, 3.4))
    xs = [r["budget_tokens"] for r in ok]
    ms = [summary(r) for r in ok]
    ax.plot(xs, [m["ks_med"] for m in ms], "o-", label="code-kb / llama-server (medians)")
    ax.plot(xs, [m["kf_med"] for m in ms], "^-", label="code-kb / floor (medians)")
    ax.axhline(0.5, color="grey", linestyle=":", linewidth=1)
    ax.axhline(1.2, color="grey", linestyle="--", linewidth=1)
    ax.set_xscale("log", base=2)
    ax.set_ylim(0, max(1.5, *(m["kf_med"] for m in ms), *(m["ks_med"] for m in ms)) * 1.15)
    ax.set_xticks(xs, [str(x) for x in xs])
    ax.set_xlabel("context size, tokens")
    ax.set_ylabel("ratio of p50 latencies")
    ax.set_title(f"{SHAPES[size].name} shape: goals 0.5 (llama-server), 1.2 (floor)", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    path = out / f"typing_lsp_ratio_{size}.png"
    fig.savefig(path, dpi=80)
    plt.close(fig)
    files.append(path)
    return files


def profile_top(path: Path, n: int = 15) -> None:
    """A py-spy raw profile (collapsed stacks) summarised: where the server's threads were (leaf
    frames) and which of our functions they were in (inclusive), as shares of all samples."""
    if not path.is_file():
        print(f"no profile at {path}")
        return
    total, incl, leaf = 0, {}, {}
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        c = int(count)
        total += c
        frames = stack.split(";")
        for fr in set(frames):
            incl[fr] = incl.get(fr, 0) + c
        leaf[frames[-1]] = leaf.get(frames[-1], 0) + c
    ours = ("engine/", "retrieval/", "lsp_server/")
    print(f"\nprofile {path.name}: {total} samples; leaf frames (where the time was spent)\n")
    print("| share | frame |\n|---|---|")
    for fr, c in sorted(leaf.items(), key=lambda kv: -kv[1])[:n]:
        print(f"| {c / total * 100:.1f} % | `{fr[:150]}` |")
    print("\ncode-kb's own functions, inclusive\n")
    print("| share | frame |\n|---|---|")
    for fr, c in sorted(
        ((f, c) for f, c in incl.items() if any(o in f for o in ours)), key=lambda kv: -kv[1]
    )[:n]:
        print(f"| {c / total * 100:.1f} % | `{fr[:150]}` |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", choices=sorted(SHAPES), default="0.5b")
    parser.add_argument(
        "--contexts", default="4096,16384,32768", help="context sizes (budgetTokens), comma-separated"
    )
    parser.add_argument("--requests", type=int, default=30, help="typed requests (pauses) per context size")
    parser.add_argument("--gpu", action="store_true", help="offload all layers in every system")
    parser.add_argument("--gap-ms", type=float, default=60.0, help="time between keystrokes (default 60)")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads of every system (default: code-kb's default, all cores; the others "
        "follow code-kb's)",
    )
    parser.add_argument("--json", help="write every request's figures here (after each context size)")
    parser.add_argument("--plots", default=str(ROOT / "benchmarks" / "plots"), help="PNG directory")
    parser.add_argument("--profile", metavar="DIR", help="py-spy the code-kb server's timed replay into DIR")
    parser.add_argument(
        "--report", nargs="+", metavar="JSON", help="tables and plots of earlier --json files"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="per-request lines on stderr")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(message)s",
        datefmt="%H:%M:%S",
    )
    logging.getLogger("pygls").setLevel(logging.WARNING)
    if args.report:
        results = [r for f in args.report for r in json.loads(Path(f).read_text())]
    else:
        results = []
        model_path(args.model)  # build it once, outside everything timed
        work = Path(tempfile.mkdtemp(prefix="code-kb-typing-"))
        log.warning("logs in %s; load average %s", work, os.getloadavg())
        for budget in [int(b) for b in args.contexts.split(",")]:
            t0 = time.perf_counter()
            try:
                results.append(
                    run_context(
                        args.model,
                        budget,
                        args.requests,
                        args.gpu,
                        args.threads,
                        args.gap_ms / 1000,
                        work,
                        Path(args.profile) if args.profile else None,
                    )
                )
            except Exception as exc:  # noqa: BLE001 - keep the other context sizes' results
                log.exception("context %d failed", budget)
                results.append({"model": args.model, "budget_tokens": budget, "error": repr(exc)})
            log.warning("%s at %d: %.0f s", args.model, budget, time.perf_counter() - t0)
            if args.json:
                Path(args.json).write_text(json.dumps(results, indent=1))
    print_report(results)
    for f in plot(results, Path(args.plots)):
        print(f"plot: {f.relative_to(ROOT) if f.is_relative_to(ROOT) else f}")
    if args.profile and not args.report:
        for f in sorted(Path(args.profile).glob("code-kb-*.txt")):
            profile_top(f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
