"""Property-based: random sequences of LSP edits and requests against the real server.

Hypothesis draws a document (emoji, CJK, every kind of line break) and a sequence of incremental and
whole-document edits, completion and inline-completion requests at any position (out of range and
inside surrogate pairs included), cancellations and context requests. The test keeps its own copy
of the document and, at the end, reads the server's back through `codeKb/context` (prefix + suffix):
the two must agree, every request must be answered or cancelled, and the server must still run.

One server for all examples (pytest-lsp's client on an event loop of its own thread), so each
example costs requests, not a start-up.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import LanguageClient

from .lsp_helpers import context, get, inline_params, start_client

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
PIECES = list("abxyz_ ():=.,'\"#\t0123456789") + [
    "def ",
    "return ",
    "\n",
    "\n    ",
    "\r\n",
    "\r",
    "😋",
    "é",
    "中文",
    "\u2028",
    "\f",
    "𝔘",
]
TEXT = st.lists(st.sampled_from(PIECES), max_size=80).map("".join)
FRACTION = st.floats(0, 1)
ANY_POSITION = st.tuples(st.integers(0, 40), st.integers(0, 300)) | st.tuples(
    st.integers(0, 10**7), st.integers(0, 10**7)
)
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("edit"), FRACTION, FRACTION, TEXT),
        st.tuples(st.just("replace"), TEXT),
        st.tuples(st.just("inline"), ANY_POSITION),
        st.tuples(st.just("completion"), ANY_POSITION),
        st.tuples(st.just("context"), ANY_POSITION),
        st.tuples(st.just("cancel"), ANY_POSITION),
    ),
    max_size=14,
)


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def position_of(text: str, offset: int) -> types.Position:
    """LSP position of a code-point offset: lines end at \\r\\n, \\r or \\n; characters are UTF-16 units."""
    lines = re.split(r"\r\n|\r|\n", text[:offset])
    return types.Position(line=len(lines) - 1, character=utf16_len(lines[-1]))


def offset_at(text: str, fraction: float) -> int:
    offset = round(fraction * len(text))
    if 0 < offset < len(text) and text[offset - 1] == "\r" and text[offset] == "\n":
        offset -= 1  # never between the halves of a \r\n: no client can name that place
    return offset


class ServerThread:
    """The real server, driven by pytest-lsp's client on an event loop in a thread of its own."""

    def __init__(self, root: Path, options: dict[str, Any], env: dict[str, str]) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.client: LanguageClient = self.run(start_client(root, options, env))

    def run(self, coro, timeout_s: float = 300) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    def close(self) -> None:
        try:
            self.run(self.client.shutdown_session(), 60)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(30)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_gguf: Path):
    import shutil

    root = tmp_path_factory.mktemp("fuzz-lsp") / "repo"
    shutil.copytree(FIXTURES / "tiny_repo", root)
    env = {k: v for k, v in os.environ.items() if k != "CODE_KB_MODEL"}
    env["CODE_KB_CONFIG"] = str(tmp_path_factory.getbasetemp() / "no-config.toml")
    running = ServerThread(
        root,
        {"modelPath": str(tiny_gguf), "maxTokens": 4, "debounceMs": 0, "warm": False, "speculate": False},
        env,
    )
    running.root = root  # type: ignore[attr-defined]
    yield running
    running.close()


_uris = itertools.count()
FIGURES = {"examples": 0, "operations": 0, "requests": 0, "cancelled": 0}


async def play(client: LanguageClient, root: Path, initial: str, ops: list[tuple]) -> None:
    uri = (root / "shop" / f"fuzz_{next(_uris)}.py").as_uri()
    text, version = initial, 1
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id="python", version=version, text=text)
        )
    )
    pending = []
    for op in ops:
        FIGURES["operations"] += 1
        kind = op[0]
        if kind in ("edit", "replace"):
            version += 1
            if kind == "edit":
                a, b = sorted((offset_at(text, op[1]), offset_at(text, op[2])))
                change: Any = types.TextDocumentContentChangePartial(
                    range=types.Range(position_of(text, a), position_of(text, b)), text=op[3]
                )
                text = text[:a] + op[3] + text[b:]
            else:
                change = types.TextDocumentContentChangeWholeDocument(text=op[1])
                text = op[1]
            client.text_document_did_change(
                types.DidChangeTextDocumentParams(
                    text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
                    content_changes=[change],
                )
            )
            continue
        position = types.Position(line=op[1][0], character=op[1][1])
        FIGURES["requests"] += 1
        if kind == "context":
            result = await context(client, uri, position)
            assert get(result, "prompt_tokens") > 0
        elif kind == "completion":
            pending.append(
                asyncio.wrap_future(
                    client.protocol.send_request(
                        types.TEXT_DOCUMENT_COMPLETION,
                        types.CompletionParams(
                            text_document=types.TextDocumentIdentifier(uri=uri), position=position
                        ),
                    )
                )
            )
        else:
            msg_id = f"fuzz-{next(_uris)}"
            pending.append(
                asyncio.wrap_future(
                    client.protocol.send_request(
                        types.TEXT_DOCUMENT_INLINE_COMPLETION, inline_params(uri, position), msg_id=msg_id
                    )
                )
            )
            if kind == "cancel":
                client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=msg_id))
    for outcome in await asyncio.wait_for(asyncio.gather(*pending, return_exceptions=True), 120):
        if isinstance(outcome, BaseException):
            assert isinstance(outcome, JsonRpcException) and "cancel" in str(outcome).lower(), repr(outcome)
            FIGURES["cancelled"] += 1
    # The server's copy of the document is the test's: the prompt's prefix and suffix at the end.
    end = position_of(text, len(text))
    parts = get(await context(client, uri, end), "parts")
    seen = "".join(get(p, "text") for p in parts if get(p, "kind") in ("prefix", "suffix"))
    assert seen == text
    client.text_document_did_close(
        types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri))
    )
    FIGURES["examples"] += 1


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(initial=TEXT, ops=OPS)
def test_random_edit_and_request_sequences_keep_the_server_in_step(
    server: ServerThread, initial: str, ops: list[tuple]
):
    server.run(play(server.client, server.root, initial, ops))  # type: ignore[attr-defined]
    assert server.client._server.returncode is None  # type: ignore[attr-defined]


def test_fuzz_figures(server: ServerThread):
    """Runs after the property above (same module, same server): report what it tried."""
    report = server.run(
        server.client.workspace_execute_command_async(types.ExecuteCommandParams(command="codeKb.status"))
    )
    assert get(report, "version")
    print(f"\nLSP fuzz: {FIGURES}")
