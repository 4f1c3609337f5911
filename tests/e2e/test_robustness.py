"""`code-kb serve` against what real clients send: bad positions, malformed JSON-RPC, unknown methods,
changes to documents never opened, huge edits, broken model files, an empty workspace, planted
secrets. Each case gets a clear error or nothing, never a crash, and the server keeps answering.

The real server over stdio (pytest-lsp), the tiny GGUF, the packaged MiniLM.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import ClientServerConfig, LanguageClient

from .lsp_helpers import (
    CAPABILITIES,
    SERVER,
    context,
    get,
    inline_params,
    open_file,
    status,
    track_registrations,
    wait_for_log,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
CURSOR = types.Position(line=13, character=11)  # shop/checkout.py, after "    return "
SECRET = "PLANTED_SECRET_7f3a9c"


async def start(client: LanguageClient, root: Path, options: dict) -> None:
    track_registrations(client)
    await client.initialize_session(
        types.InitializeParams(
            capabilities=CAPABILITIES,
            root_uri=root.as_uri(),
            workspace_folders=[types.WorkspaceFolder(uri=root.as_uri(), name=root.name)],
            initialization_options=options,
        )
    )


async def alive(client: LanguageClient) -> None:
    """The server still answers, and is still the same process."""
    report = await asyncio.wait_for(status(client), 60)
    assert get(report, "version")
    assert client._server.returncode is None  # type: ignore[attr-defined]


def plant_secrets(root: Path, outside: Path) -> None:
    files = {
        ".env": f"API_TOKEN={SECRET}\n",
        "config/.env.production": f"DB_PASSWORD={SECRET}\n",
        "keys/id_rsa": f"-----BEGIN OPENSSH PRIVATE KEY-----\n{SECRET}\n",
        "creds/credentials.json": json.dumps({"token": SECRET}) + "\n",
        "shop/keyholder.py": f'KEY = """-----BEGIN RSA PRIVATE KEY-----\n{SECRET}\n"""\n',
        "deploy/prod_settings.py": f"def prod_password():\n    return '{SECRET}'\n",  # the deny list
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    (root / "shop" / "settings.py").symlink_to(root / ".env")  # an innocent name for a secret
    outside.mkdir(exist_ok=True)
    (outside / "leak.py").write_text(f"def leak():\n    return '{SECRET}'\n")
    (root / "shop" / "external.py").symlink_to(outside / "leak.py")


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    return tmp_path / "outside"


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER))
async def client(lsp_client: LanguageClient, tiny_repo: Path, tiny_gguf: Path, outside: Path):
    plant_secrets(tiny_repo, outside)
    await start(
        lsp_client,
        tiny_repo,
        {"modelPath": str(tiny_gguf), "maxTokens": 8, "debounceMs": 0, "denyPatterns": ["deploy/"]},
    )
    await wait_for_log(lsp_client, "index ready")
    yield
    await lsp_client.shutdown_session()


def frame(body: bytes) -> bytes:
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


async def test_bad_requests_get_an_error_or_nothing_and_the_server_keeps_serving(
    client: LanguageClient, tiny_repo: Path
):
    tried = 0
    uri = open_file(client, tiny_repo / "shop" / "checkout.py")
    # Positions out of range: past the last line, past the end of a line.
    for position in (
        types.Position(line=10**6, character=0),
        types.Position(line=13, character=10**6),
        types.Position(line=10**6, character=10**6),
        types.Position(line=0, character=0),
    ):
        await client.text_document_inline_completion_async(inline_params(uri, position))
        await client.text_document_completion_async(
            types.CompletionParams(text_document=types.TextDocumentIdentifier(uri=uri), position=position)
        )
        tried += 2
    # Inside a UTF-16 surrogate pair: character 6 splits the first emoji of `s = "😋😋"`.
    emoji = tiny_repo / "shop" / "emoji.py"
    emoji_uri = open_file(client, emoji, text='s = "😋😋"\nt = s + \n')
    for character in range(0, 12):
        await client.text_document_inline_completion_async(
            inline_params(emoji_uri, types.Position(0, character))
        )
        result = await context(client, emoji_uri, types.Position(0, character))
        prefix = next(get(p, "text") for p in get(result, "parts") if get(p, "kind") == "prefix")
        assert "\ud83d" not in prefix and "\ude0b" not in prefix  # never half a character
        tried += 2
    # An edit whose range splits a surrogate pair.
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=emoji_uri, version=2),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(types.Position(0, 6), types.Position(0, 7)), text="x"
                )
            ],
        )
    )
    tried += 1
    await alive(client)

    # Unknown methods: a request gets MethodNotFound, a notification is ignored.
    with pytest.raises(JsonRpcException, match="not found|Method Not Found|-32601"):
        await client.protocol.send_request_async("codeKb/noSuchMethod", {"x": 1})
    client.protocol.notify("codeKb/noSuchNotification", {"x": 1})
    client.protocol.notify("$/noSuchThing", None)
    tried += 3
    # Wrong parameter shapes for a known method.
    with pytest.raises(JsonRpcException):
        await client.protocol.send_request_async("codeKb/context", {"textDocument": 5})
    tried += 1
    await alive(client)

    # didChange for a document never opened, then a request on it: nothing is read from disk.
    ghost = (tiny_repo / "shop" / "ghost.py").as_uri()
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=ghost, version=7),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text="x = 1\n")],
        )
    )
    assert await client.text_document_inline_completion_async(inline_params(ghost, CURSOR)) is None
    with pytest.raises(JsonRpcException, match="not open"):
        await context(client, ghost, CURSOR)
    tried += 3
    await alive(client)

    # Malformed JSON-RPC on the wire: bad JSON, not JSON-RPC, wrong types, an empty batch.
    stdin = client._server.stdin  # type: ignore[attr-defined]
    for body in (
        b"{not json",
        b'{"foo": 1}',
        b'{"jsonrpc": "2.0", "id": 99001, "method": 5}',
        b'{"jsonrpc": "2.0", "id": 99002, "method": "textDocument/completion", "params": "oops"}',
        b"[]",
        b'"just a string"',
        b"\xff\xfe\x00garbage",
        b"{}" + b" " * 100_000,
    ):
        stdin.write(frame(body))
        tried += 1
    await stdin.drain()
    await alive(client)

    # A huge didChange: the whole document replaced by 5 MB, then an incremental edit inside it.
    big = "def f():\n    return 1\n" * 220_000
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=big)],
        )
    )
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=3),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(types.Position(100_000, 0), types.Position(100_000, 0)), text="# here\n"
                )
            ],
        )
    )
    result = await context(client, uri, types.Position(100_000, 7))
    assert any(get(p, "kind") == "prefix" for p in get(result, "parts"))
    await client.text_document_inline_completion_async(inline_params(uri, types.Position(100_001, 4)))
    # 10k-character lines.
    long_uri = open_file(client, tiny_repo / "shop" / "long.py", text=("x = '" + "a" * 10_000 + "'\n") * 50)
    await client.text_document_inline_completion_async(inline_params(long_uri, types.Position(25, 5_000)))
    tried += 4
    await alive(client)
    # Nothing above was a server error in the log either (a traceback is a bug).
    assert not [
        m for m in client.log_messages if m.type == types.MessageType.Error and "Traceback" in m.message
    ]
    print(f"\nbad requests tried: {tried}, server crashes: 0")


async def test_planted_secrets_never_reach_the_index_or_a_prompt(client: LanguageClient, tiny_repo: Path):
    db = (tiny_repo / ".code-kb" / "index.sqlite3").read_bytes()
    assert SECRET.encode() not in db
    report = await status(client)
    assert get(get(report, "indexes")[0], "files") == 7  # the shop and its notes, nothing planted
    # Editing a secret file: no completion, no prompt, and its edits never become recent-edit snippets.
    env_uri = open_file(client, tiny_repo / ".env", language_id="dotenv")
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=env_uri, version=2),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(types.Position(1, 0), types.Position(1, 0)), text=f"OTHER={SECRET}\n"
                )
            ],
        )
    )
    key_uri = open_file(
        client,
        tiny_repo / "notes" / "pasted.py",
        text=f'K = """-----BEGIN EC PRIVATE KEY-----\n{SECRET}\n"""\n',
    )  # unsaved, any name
    for secret_uri in (env_uri, key_uri, open_file(client, tiny_repo / "deploy" / "prod_settings.py")):
        assert (
            await client.text_document_inline_completion_async(
                inline_params(secret_uri, types.Position(0, 3))
            )
            is None
        )
        with pytest.raises(JsonRpcException, match="secrets"):
            await context(client, secret_uri, types.Position(0, 3))
    uri = open_file(client, tiny_repo / "shop" / "checkout.py")
    prompt = await context(client, uri, CURSOR)
    assert SECRET not in json.dumps(prompt, default=lambda o: o.__dict__)
    # The model runs there as usual (the tiny model's text may be empty), from a prompt with no secret file.
    await client.text_document_inline_completion_async(inline_params(uri, CURSOR))
    last = get(await status(client), "last_completion")
    assert last is not None and get(last, "prompt_tokens") > 0
    assert not [
        p for p in get(last, "context_from") if p in (".env", "notes/pasted.py", "deploy/prod_settings.py")
    ]
    assert not [m for m in client.log_messages if SECRET in m.message]


async def test_files_outside_the_workspace_are_never_read(client: LanguageClient, outside: Path):
    # A request naming a file the client never opened, outside every folder: pygls would read it.
    uri = (outside / "leak.py").as_uri()
    assert (
        await client.text_document_inline_completion_async(inline_params(uri, types.Position(1, 4))) is None
    )
    assert (
        await client.text_document_completion_async(
            types.CompletionParams(
                text_document=types.TextDocumentIdentifier(uri=uri), position=types.Position(1, 4)
            )
        )
        is None
    )
    with pytest.raises(JsonRpcException, match="not open"):
        await context(client, uri, types.Position(1, 4))
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text="x")],
        )
    )
    await alive(client)
    assert not [m for m in client.log_messages if SECRET in m.message]


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER))
async def empty_workspace(lsp_client: LanguageClient, tmp_path: Path, tiny_gguf: Path):
    root = tmp_path / "empty"
    root.mkdir()
    await start(lsp_client, root, {"modelPath": str(tiny_gguf), "maxTokens": 4, "debounceMs": 0})
    lsp_client.root = root  # type: ignore[attr-defined]
    yield
    await lsp_client.shutdown_session()


async def test_an_empty_workspace_serves(empty_workspace: LanguageClient):
    client = empty_workspace
    ready = await wait_for_log(client, "index ready")
    assert "0 files" in ready.message
    uri = open_file(client, client.root / "new.py", text="def main():\n    ")  # type: ignore[attr-defined]
    await client.text_document_inline_completion_async(inline_params(uri, types.Position(1, 4)))
    prompt = await context(client, uri, types.Position(1, 4))
    assert not [p for p in get(prompt, "parts") if get(p, "kind") == "snippet"]
    await alive(client)


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER))
async def broken_model(lsp_client: LanguageClient, tiny_repo: Path, tiny_gguf: Path, tmp_path: Path):
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(tiny_gguf.read_bytes()[:300_000])
    await start(lsp_client, tiny_repo, {"modelPath": str(truncated), "maxTokens": 4, "debounceMs": 0})
    yield
    await lsp_client.shutdown_session()


async def test_missing_truncated_and_incompatible_models_are_reported_and_the_server_serves(
    broken_model: LanguageClient, tiny_repo: Path, tiny_gguf: Path, tmp_path: Path
):
    client = broken_model
    uri = open_file(client, tiny_repo / "shop" / "checkout.py")
    incompatible = tmp_path / "incompatible.gguf"
    incompatible.write_bytes(b"GGUF" + os.urandom(4096))  # the magic, then nothing llama.cpp can read
    cases = [
        ("truncated.gguf", None),
        ("missing.gguf", tmp_path / "missing.gguf"),
        ("incompatible.gguf", incompatible),
        ("tiny", tiny_gguf),
    ]
    for name, path in cases:
        if path is not None:
            client.workspace_did_change_configuration(
                types.DidChangeConfigurationParams(
                    settings={"codeKb": {"modelPath": str(path), "maxTokens": 4, "debounceMs": 0}}
                )
            )
        result = await client.text_document_inline_completion_async(inline_params(uri, CURSOR))
        await alive(client)
        prompt = await context(client, uri, CURSOR)  # retrieval and prompts work without a model
        assert get(prompt, "prompt_tokens") > 0
        if name == "tiny":
            assert result is not None
        else:
            assert result is None
            shown = [
                m.message for m in client.messages if m.type == types.MessageType.Error and name in m.message
            ]
            assert shown, [m.message for m in client.messages]
            assert "modelPath" in shown[0] or "Re-download" in shown[0] or "pick another" in shown[0]
    # The CLI says the same, with exit status 1.
    for path in (tmp_path / "truncated.gguf", tmp_path / "missing.gguf", incompatible):
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "lsp_server",
                "complete",
                "--no-reindex",
                "--model",
                str(path),
                f"{tiny_repo / 'shop' / 'checkout.py'}:14:12",
            ],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 1 and done.stderr.strip().splitlines()[-1].startswith("code-kb: error:")
        assert path.name in done.stderr


def test_serve_tcp_refuses_any_address_but_loopback():
    for host in ("0.0.0.0", "::", "10.0.0.1", "192.168.1.20", "example.com"):
        done = subprocess.run(
            [sys.executable, "-m", "lsp_server", "serve", "--tcp", "0", "--host", host],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2, (host, done.stderr)
        assert "not a loopback address" in done.stderr


def test_serve_tcp_answers_on_loopback():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "lsp_server", "serve", "--tcp", str(port)],
        cwd=REPO_ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for line in proc.stderr:  # type: ignore[union-attr]
            if "Serving on" in line:  # pygls logs it once the socket listens
                break
        with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
            body = json.dumps(
                {
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "initialize",
                    "params": {"capabilities": {}, "processId": None, "rootUri": None},
                }
            ).encode()
            conn.sendall(frame(body))
            reply = b""
            while b"capabilities" not in reply:
                chunk = conn.recv(65536)
                assert chunk, "connection closed"
                reply += chunk
        assert b'"id":1' in reply.replace(b" ", b"")
    finally:
        proc.kill()
        proc.wait(30)
        proc.stderr.close()  # type: ignore[union-attr]
