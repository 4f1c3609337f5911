"""Secrets written inline in ordinary files never reach the index, a prompt or a server.

A corpus of 23 kinds of made-up credentials (tests/fixtures/planted_secrets.py) in code, configuration,
comments, a test fixture and a notebook is planted in the tiny repository, plus one typed into an open
buffer and never saved. Then: no run of 8 characters of any of them is in any index file (SQLite with
its WAL, FAISS, caches), in any `code-kb context --json` prompt at cursors beside them, in what the LSP
server answers or logs, or in what it sends to a completion endpoint (a local HTTP server here)."""

from __future__ import annotations

import json
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
from lsprotocol import types

from lsp_server.cli import main
from tests.fixtures.planted_secrets import CORPUS, SECRETS, TYPED_TOKEN, USER_PATTERNS, plant

from .lsp_helpers import context, get, inline_params, open_file, start_client, status, wait_for_log
from .test_network import Recorder

ALL = [value for _, value in SECRETS] + [TYPED_TOKEN]


def pieces(value: str, n: int = 8) -> list[str]:
    return [value[i : i + n] for i in range(0, len(value) - n + 1)]


def leaks(blob: str | bytes) -> list[str]:
    """The secrets of which some 8-character run is in `blob`."""
    found = []
    for value in ALL:
        runs = [p.encode() for p in pieces(value)] if isinstance(blob, bytes) else pieces(value)
        if any(r in blob for r in runs):  # type: ignore[operator]
            found.append(value)
    return found


def index_bytes(root: Path) -> bytes:
    files = [p for p in (root / ".code-kb").rglob("*") if p.is_file()]
    assert any(p.suffix == ".faiss" or "faiss" in p.name for p in files), files
    return b"".join(p.read_bytes() for p in files)


def near_secrets() -> list[dict]:
    """A cursor at the start of the line after each line that holds a secret (1-based, as the CLI)."""
    out = []
    for path, text in CORPUS.items():
        lines = text.splitlines()
        for n, line in enumerate(lines):
            if n + 1 < len(lines) and any(v in line for v in ALL):
                out.append({"path": path, "line": n + 2, "col": 1})
    return out


@pytest.fixture
def planted(tiny_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    plant(tiny_repo)
    config = tmp_path / "config.toml"
    config.write_text(f"secret_patterns = {json.dumps(USER_PATTERNS)}\n")
    monkeypatch.setenv("CODE_KB_CONFIG", str(config))
    return tiny_repo


def test_the_index_and_the_cli_prompts_hold_no_planted_secret(
    planted: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
):
    assert main(["reindex", str(planted), "-q"]) == 0
    data = index_bytes(planted)
    assert leaks(data) == []
    # The files are indexed, masked, not skipped: their names and structure are there.
    assert b'AWS_ACCESS_KEY_ID = "****' in data and b"def database_url() -> str:" in data
    assert b'mailchimpAPIKey = "****' in data and b"openai.api_key" in data

    settings = CORPUS["billing/settings.py"]
    typed = settings.replace("\n\ndef database_url", f'\nGITHUB = "{TYPED_TOKEN}"\n\ndef database_url')
    requests = near_secrets() + [
        {
            "path": "billing/settings.py",
            "line": typed[: typed.index("def database_url")].count("\n") + 2,
            "col": 5,
            "buffer": typed,
        }
    ]
    batch = tmp_path / "requests.jsonl"
    batch.write_text("\n".join(json.dumps(r) for r in requests) + "\n")
    monkeypatch.chdir(planted)
    capsys.readouterr()
    assert main(["context", "--batch", str(batch), "-q"]) == 0
    out = capsys.readouterr().out
    answers = [json.loads(line) for line in out.splitlines()]
    assert len(answers) == len(requests) and not [a for a in answers if "error" in a]
    assert leaks(out) == []
    # The prompts carry the masked lines: the files' context is there, only the secrets are not.
    texts = "\n".join(part["text"] for a in answers for part in a["parts"])
    assert '"api_token": "****' in texts and 'STRIPE_API_KEY = "****' in texts
    assert 'GITHUB = "****' in texts
    assert leaks(index_bytes(planted)) == []  # the typed buffer was never indexed


def test_the_server_masks_buffers_and_sends_no_secret_to_an_endpoint(tiny_repo: Path, tiny_gguf: Path):
    plant(tiny_repo)
    Recorder.bodies, Recorder.paths = [], []
    http = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    options = {
        "endpoint": f"http://127.0.0.1:{http.server_address[1]}",
        "endpointApi": "completions",
        "maxTokens": 4,
        "debounceMs": 0,
        "secretPatterns": USER_PATTERNS,
    }
    import asyncio

    async def session() -> tuple[list, str]:
        client = await start_client(tiny_repo, options, {})
        seen: list = []
        try:
            await wait_for_log(client, "index ready")
            settings_file = tiny_repo / "billing" / "settings.py"
            uri = open_file(client, settings_file)
            text = settings_file.read_text()
            row = text[: text.index("def database_url")].count("\n")
            # The user types a token into the open buffer (never saved) ...
            line = f'GITHUB = "{TYPED_TOKEN}"\n'
            client.text_document_did_change(
                types.DidChangeTextDocumentParams(
                    text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
                    content_changes=[
                        types.TextDocumentContentChangePartial(
                            range=types.Range(types.Position(row, 0), types.Position(row, 0)), text=line
                        )
                    ],
                )
            )
            # ... and asks right after it: nothing is completed into a secret.
            after_token = types.Position(row, len('GITHUB = "') + len(TYPED_TOKEN))
            assert await client.text_document_inline_completion_async(inline_params(uri, after_token)) is None
            # Below it, the prompt and the request hold the masked line.
            cursor = types.Position(row + 2, 0)
            seen.append(await context(client, uri, cursor))
            seen.append(await client.text_document_inline_completion_async(inline_params(uri, cursor)))
            # Other files' prompts: their own secrets, and this edit as a recent-edit snippet.
            for rel in (
                "billing/notify.py",
                "config/app.yaml",
                "billing/client.ts",
                "notebooks/explore.ipynb",
            ):
                other = open_file(client, tiny_repo / rel)
                seen.append(await context(client, other, types.Position(2, 0)))
                seen.append(
                    await client.text_document_inline_completion_async(
                        inline_params(other, types.Position(2, 0))
                    )
                )
            seen.append(await status(client))
        finally:
            await client.shutdown_session()
        logs = "\n".join(m.message for m in client.log_messages)
        return seen, logs

    try:
        seen, logs = asyncio.run(session())
    finally:
        http.shutdown()
    answers = json.dumps(seen, default=lambda o: getattr(o, "__dict__", str(o)))
    assert leaks(answers) == [] and leaks(logs) == []
    assert Recorder.bodies, "the endpoint was never asked"
    sent = json.dumps(Recorder.bodies)
    assert leaks(sent) == []
    assert 'GITHUB = \\"****' in sent  # the typed line went out masked
    prompt = get(seen[0], "parts")
    assert any("GITHUB" in get(p, "text") for p in prompt)
    assert leaks(index_bytes(tiny_repo)) == []
