"""Nothing leaves the machine unless a remote backend is configured, and then only the prompt.

The real server runs under a Python audit hook (sys.addaudithook) that records every socket
connect, send, bind and name lookup of the process to a file; the test reads it afterwards. With a
remote endpoint, a small recording OpenAI-compatible server on loopback keeps every request body.
"""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from .lsp_helpers import (
    CAPABILITIES,
    context,
    get,
    inline_params,
    open_file,
    track_registrations,
    wait_for_log,
)

CURSOR = types.Position(line=13, character=11)
SECRET = "PLANTED_SECRET_90d2e1"

AUDITED = """
import json, os, socket, sys
log = open(os.environ["CODE_KB_NET_LOG"], "a", buffering=1)
def hook(event, args):
    if event in ("socket.connect", "socket.sendto", "socket.sendmsg", "socket.bind", "socket.getaddrinfo",
                 "socket.gethostbyname", "socket.gethostbyaddr"):
        if event in ("socket.connect", "socket.bind", "socket.sendto") and args[0].family == socket.AF_UNIX:
            return
        on_socket = event in ("socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg")
        shown = args[1:] if on_socket else args  # the address, not the socket object
        log.write(json.dumps([event, repr(shown)]) + "\\n")
sys.addaudithook(hook)
from lsp_server.cli import main
sys.exit(main(sys.argv[1:]))
"""


def audited_server(log: Path) -> ClientServerConfig:
    return ClientServerConfig(
        server_command=[sys.executable, "-c", AUDITED, "serve"], server_env={"CODE_KB_NET_LOG": str(log)}
    )


# Not network use, and the one event let through: urllib3 (which detect-secrets imports through
# requests) asks at import whether the machine has IPv6 by binding a socket to [::1] port 0 and
# closing it at once; nothing listens, connects or sends.
IPV6_PROBE = ["socket.bind", "(('::1', 0),)"]


def events(log: Path) -> list[list[str]]:
    """What the audit hook recorded, less urllib3's IPv6 probe."""
    found = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return [e for e in found if e != IPV6_PROBE]


@pytest.fixture
def net_log(tmp_path: Path) -> Path:
    return tmp_path / "net.log"


@pytest.fixture
def workspace(tiny_repo: Path) -> Path:
    (tiny_repo / ".env").write_text(f"TOKEN={SECRET}\n")
    return tiny_repo


async def exercise(client: LanguageClient, root: Path, options: dict) -> None:
    track_registrations(client)
    await client.initialize_session(
        types.InitializeParams(
            capabilities=CAPABILITIES, root_uri=root.as_uri(), initialization_options=options
        )
    )
    await wait_for_log(client, "index ready")
    uri = open_file(client, root / "shop" / "checkout.py")
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[
                types.TextDocumentContentChangePartial(range=types.Range(CURSOR, CURSOR), text="c")
            ],
        )
    )
    after = types.Position(CURSOR.line, CURSOR.character + 1)
    await client.text_document_inline_completion_async(inline_params(uri, after))
    await client.text_document_completion_async(
        types.CompletionParams(text_document=types.TextDocumentIdentifier(uri=uri), position=after)
    )
    assert get(await context(client, uri, after), "parts")


async def test_a_local_model_sends_nothing_anywhere(workspace: Path, tiny_gguf: Path, net_log: Path):
    client_config = audited_server(net_log)
    client = await client_config.start()
    try:
        await exercise(client, workspace, {"modelPath": str(tiny_gguf), "maxTokens": 4, "debounceMs": 0})
    finally:
        await client.shutdown_session()
    assert net_log.exists(), "the audit hook did not run"
    assert events(net_log) == []


class Recorder(BaseHTTPRequestHandler):
    """Just enough of the OpenAI completions API: /v1/models and streamed /v1/completions."""

    bodies: list[dict] = []
    paths: list[str] = []

    def log_message(self, *args) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self.paths.append(self.path)
        payload = json.dumps({"object": "list", "data": [{"id": "recorder", "object": "model"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_POST(self) -> None:
        self.paths.append(self.path)
        self.bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for text in ("total", "\n"):
            chunk = {"choices": [{"index": 0, "text": text, "finish_reason": None}]}
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()


async def test_a_remote_endpoint_gets_only_the_prompt(workspace: Path, net_log: Path):
    Recorder.bodies, Recorder.paths = [], []
    http = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    port = http.server_address[1]
    client = await audited_server(net_log).start()
    try:
        await exercise(
            client,
            workspace,
            {
                "endpoint": f"http://127.0.0.1:{port}",
                "endpointApi": "completions",
                "maxTokens": 4,
                "debounceMs": 0,
            },
        )
    finally:
        await client.shutdown_session()
        http.shutdown()
    assert Recorder.bodies, "the endpoint was never asked"
    for body in Recorder.bodies:
        assert set(body) <= {
            "prompt",
            "max_tokens",
            "temperature",
            "stream",
            "stop",
            "model",
            "n_probs",
            "logprobs",
            "cache_prompt",
            "seed",
            "top_k",
            "top_p",
        }, set(body)
        assert isinstance(body["prompt"], str) and SECRET not in body["prompt"]
    assert all(p.startswith("/v1/") for p in Recorder.paths)
    # Every connection the server made went to the endpoint, on loopback (and the hook saw them).
    assert any(event == "socket.connect" for event, _ in events(net_log))
    for event, args in events(net_log):
        if event == "socket.connect":
            assert f"('127.0.0.1', {port})" in args, args
        elif event == "socket.getaddrinfo":
            assert "127.0.0.1" in args, args
        else:
            pytest.fail(f"unexpected network use: {event} {args}")
