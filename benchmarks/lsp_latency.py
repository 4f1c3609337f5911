"""Server start-up and responsiveness through the real LSP server, with the tiny test model.

    python benchmarks/lsp_latency.py [--rounds N] [--burst N]

Reports medians over N rounds, measured side by side in one run:
- spawn to `initialize` reply: the request goes out as soon as the process is spawned, so this is
  Python start-up, imports and the reply, what an editor waits for;
- one inline completion on its own, and the last request of a burst of `--burst` requests sent
  at once for one document (what a fast typist's editor sends), from its send to its answer.
The burst's last request should cost about one debounce plus one completion, not the burst.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from lsprotocol import types
from pygls.lsp.client import BaseLanguageClient

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fixtures.gguf_builder import write_tiny_gguf  # noqa: E402

CURSOR = types.Position(line=13, character=11)


async def one_round(model: Path, repo: Path, burst: int) -> dict[str, float]:
    client = BaseLanguageClient("code-kb-bench", "1")
    ready = asyncio.Event()

    @client.feature(types.WINDOW_LOG_MESSAGE)
    def on_log(ls: BaseLanguageClient, params: types.LogMessageParams) -> None:
        if "index ready" in params.message:
            ready.set()

    t_spawn = time.perf_counter()
    await client.start_io(sys.executable, "-m", "lsp_server", "serve")
    await client.initialize_async(
        types.InitializeParams(
            capabilities=types.ClientCapabilities(),
            root_uri=repo.as_uri(),
            initialization_options={"modelPath": str(model), "maxTokens": 16},
        )
    )
    t_reply = time.perf_counter()
    client.initialized(types.InitializedParams())
    await asyncio.wait_for(ready.wait(), 120)
    path = repo / "shop" / "checkout.py"
    uri = path.as_uri()
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=uri, language_id="python", version=1, text=path.read_text()
            )
        )
    )

    def params(position: types.Position) -> types.InlineCompletionParams:
        return types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=position,
            context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Automatic),
        )

    await client.text_document_inline_completion_async(params(CURSOR))  # load and warm up
    t0 = time.perf_counter()
    single = await client.text_document_inline_completion_async(params(types.Position(line=13, character=10)))
    t_single = time.perf_counter() - t0
    assert single is not None
    futures = [
        client.text_document_inline_completion_async(params(types.Position(line=13, character=i % 12)))
        for i in range(burst)
    ]
    t_last_sent = time.perf_counter()
    results = await asyncio.gather(*futures)
    t_last = time.perf_counter() - t_last_sent
    assert results[-1] is not None
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()
    return {
        "spawn_to_initialize_reply": t_reply - t_spawn,
        "single_request": t_single,
        "burst_last_request": t_last,
        "burst_answered_empty": sum(r is None for r in results[:-1]),
    }


async def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--burst", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="code-kb-bench-") as tmp:
        import shutil

        work = Path(tmp)
        model = write_tiny_gguf(work / "tiny.gguf")
        repo = work / "repo"
        shutil.copytree(ROOT / "tests" / "fixtures" / "tiny_repo", repo)
        rounds = [await one_round(model, repo, args.burst) for _ in range(args.rounds)]
    print(f"| measurement (median of {args.rounds} server starts) | value |\n|---|---|")
    for key, label in [
        ("spawn_to_initialize_reply", "process spawn to `initialize` reply (request sent at spawn)"),
        ("single_request", "one inline completion (debounce 50 ms included)"),
        ("burst_last_request", f"last of a {args.burst}-request burst, send to answer"),
    ]:
        print(f"| {label} | {statistics.median(r[key] for r in rounds) * 1000:.1f} ms |")
    ratio = statistics.median(r["burst_last_request"] / r["single_request"] for r in rounds)
    print(f"| burst's last request / one request | {ratio:.2f} |")
    print(
        f"| burst requests answered empty without a model call | "
        f"{statistics.median(r['burst_answered_empty'] for r in rounds):.0f} of {args.burst - 1} |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
