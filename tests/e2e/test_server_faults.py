"""kill -9 of `code-kb serve` while it indexes a workspace, then a restart: the index it left is
consistent (every recorded file's chunks match its content), and the restarted server completes it
and serves from it. The real server, the packaged MiniLM, the tiny GGUF."""

from __future__ import annotations

import asyncio
import os
import random
import signal
from pathlib import Path

from lsprotocol import types
from pytest_lsp import LanguageClient

from tests.fixtures.consistency import audit, make_repo

from .lsp_helpers import context, get, open_file, start_client, status, wait_for_log


async def progress_at_least(client: LanguageClient, percent: int) -> None:
    def reached() -> bool:
        return any(
            isinstance(r, types.WorkDoneProgressReport) and (r.percentage or 0) >= percent
            for values in client.progress_reports.values()
            for r in values
        )

    while not reached():
        await client.wait_for_notification("$/progress")


async def test_kill_9_of_the_server_while_indexing_then_restart(tmp_path: Path, tiny_gguf: Path):
    versions: dict[str, bytes] = {}
    root = tmp_path / "repo"
    make_repo(root, 70, versions)
    env = {k: v for k, v in os.environ.items() if k != "CODE_KB_MODEL"}
    options = {"modelPath": str(tiny_gguf), "maxTokens": 4}
    rng = random.Random(9)
    kills = 0
    for _ in range(2):
        client = await start_client(root, options, env)
        # Somewhere in the first index: between 1% and 90% of the files read (and some committed).
        await asyncio.wait_for(progress_at_least(client, rng.randint(1, 90)), 180)
        await asyncio.sleep(rng.random() * 0.3)
        os.kill(client._server.pid, signal.SIGKILL)  # type: ignore[attr-defined]
        await asyncio.wait_for(client._server.wait(), 30)  # type: ignore[attr-defined]
        kills += 1
        await asyncio.wait_for(client.stop(), 30)
        report = audit(root, versions=versions)
        assert report.consistent, report.stale
    # Restart: the index is opened as it was left, completed, and served.
    client = await start_client(root, options, env)
    try:
        await wait_for_log(client, "index ready", timeout_s=300)
        uri = open_file(client, root / "pkg1" / "mod1.py")
        prompt = await context(client, uri, types.Position(line=1, character=4))
        assert any(get(p, "kind") == "snippet" for p in get(prompt, "parts"))
        indexes = get(await status(client), "indexes")
        assert get(indexes[0], "chunks") == get(indexes[0], "vectors")
        final = audit(root, expect_complete=True)
        assert final.consistent and final.lost_chunks == 0, (final.stale, final.missing_files)
        print(
            f"\nkill -9 of serve while indexing: {kills} kills, {final.files} files, {final.chunks} chunks, "
            f"{final.lost_chunks} lost"
        )
    finally:
        await client.shutdown_session()
