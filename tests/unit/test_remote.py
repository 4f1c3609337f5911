"""The OpenAI-compatible backend against a real server: llama-cpp-python's own, on 127.0.0.1, tiny model."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine import Completer, EngineConfig, EngineError
from engine.backends.llama_cpp import LlamaCppModel
from engine.backends.openai_compat import OpenAICompletionsBackend
from engine.config import NextEditConfig
from engine.errors import NextEditFormatError
from engine.next_edit import EditHistory, NextEditPredictor, SweepFormat
from engine.next_edit.predictor import neutralise, restore
from engine.recent import EditSnippet
from lsp_server.cli import main
from lsp_server.config import Settings
from lsp_server.next_edits import NextEdits
from lsp_server.session import Session
from tests.fixtures.gguf_builder import write_tiny_gguf
from tests.unit.test_session import Roots

SOURCE = "def area(radius):\n    return 3.14 * radius ** 2\n\n\ndef circumference(radius):\n    return "
CURSOR = len(SOURCE)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serving(gguf: Path, log: Path) -> Iterator[str]:
    """llama-cpp-python's OpenAI-compatible server on `gguf`, on a free local port: its URL."""
    port = free_port()
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "llama_cpp.server",
                "--model",
                str(gguf),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--n_ctx",
                "4096",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):  # up to a minute: the server imports FastAPI and loads the model
            try:
                with urllib.request.urlopen(url + "/v1/models", timeout=1) as r:
                    json.load(r)
                break
            except OSError:
                if proc.poll() is not None:
                    pytest.fail(f"llama_cpp.server exited: {log.read_text()[-2000:]}")
                threading.Event().wait(0.1)
        else:
            pytest.fail("llama_cpp.server did not start")
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="module")
def server(tiny_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serving(tiny_gguf, tmp_path_factory.mktemp("server") / "server.log") as url:
        yield url


@pytest.fixture(scope="module")
def sweep_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model under Sweep's next-edit name, in its metadata and its file name (which the
    server gives as its model's name)."""
    path = tmp_path_factory.mktemp("models") / "sweep-next-edit-tiny.gguf"
    return write_tiny_gguf(path, name="sweep-next-edit-1.5B")


@pytest.fixture(scope="module")
def sweep_server(sweep_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serving(sweep_gguf, tmp_path_factory.mktemp("sweep-server") / "server.log") as url:
        yield url


def test_remote_completion_with_exact_local_token_counts(server: str, tiny_gguf: Path):
    completer = Completer.load(EngineConfig(endpoint=server, model_path=str(tiny_gguf), max_tokens=12))
    assert completer.describe()["device"] == f"remote {server}"
    assert completer.template.name == "qwen2.5-coder" and completer.tokenizer.exact
    result = completer.complete("geo.py", SOURCE, CURSOR, None, "demo")
    g = result.generation
    assert result.text and 0 < g.n_generated <= 12
    assert g.stop_reason in {"eog", "rule", "max_tokens"}
    # The server counted the same prompt our local copy of the tokenizer built.
    assert g.n_prompt == result.prompt.n_tokens


def test_remote_completion_without_a_local_model_and_cancellation(server: str):
    completer = Completer.load(EngineConfig(endpoint=server, max_tokens=8))
    assert not completer.tokenizer.exact and completer.template.name == "qwen2.5-coder"
    assert completer.complete("geo.py", SOURCE, CURSOR, None).text
    cancel = threading.Event()
    cancel.set()
    typed = SOURCE[:CURSOR] + "\n" + SOURCE[CURSOR:]  # not what was suggested: no type-through answer
    result = completer.complete("geo.py", typed, CURSOR + 1, None, cancel=cancel)
    assert result.generation.stop_reason == "cancelled" and result.generation.n_generated <= 1


def test_cli_complete_through_an_endpoint(server: str, tiny_repo: Path, monkeypatch, capsys):
    monkeypatch.chdir(tiny_repo)
    assert (
        main(
            ["complete", "shop/checkout.py:14:12", "--endpoint", server, "--max-tokens", "6", "--json", "-q"]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["text"] and out["generated_tokens"] <= 6


def test_unreachable_endpoint_says_so():
    with pytest.raises(
        EngineError, match=r"cannot reach the inference server at http://127.0.0.1:\d+ .*running"
    ):
        Completer.load(EngineConfig(endpoint=f"http://127.0.0.1:{free_port()}"))


# -- next edits on a server ---------------------------------------------------------------------------


def numbered(n: int, name: str = "value") -> str:
    return "".join(f"line{i} = {name}\n" for i in range(n))


def edited_history(source: str, at: int, typed: str) -> tuple[EditHistory, str]:
    """`typed` typed into `source` at `at` key by key, and the text after."""
    history = EditHistory()
    for i, ch in enumerate(typed):
        new = source[: at + i] + ch + source[at + i :]
        history.record("shop.py", source, new, now_s=i * 0.2)
        source = new
    return history, source


def server_prompt_tokens(url: str, text: str) -> int:
    """How many tokens the server makes of `text` as a prompt (its `usage`, not streamed)."""
    body = json.dumps({"prompt": text, "max_tokens": 1, "temperature": 0}).encode()
    request = urllib.request.Request(
        url + "/v1/completions", body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as r:
        return int(json.load(r)["usage"]["prompt_tokens"])


def remote_predictor(url: str, tokenizer: LlamaCppModel | None = None) -> NextEditPredictor:
    return NextEditPredictor(
        OpenAICompletionsBackend(url), SweepFormat(), tokenizer=tokenizer, budget_tokens=2048, max_tokens=32
    )


def test_a_next_edit_through_the_endpoint_is_an_edit_or_nothing_with_its_verdict(
    sweep_server: str, sweep_gguf: Path
):
    predictor = remote_predictor(sweep_server, LlamaCppModel(sweep_gguf, vocab_only=True))
    assert not predictor.in_process and predictor.describe()["device"] == f"remote {sweep_server}"
    source = numbered(40)
    history, edited = edited_history(source, source.index("line20 = value") + 14, "_x")
    snippets = [EditSnippet("lib.py", "def price(item):\n    return item.cost\n", 0, 1)]
    result = predictor.predict("shop.py", edited, edited.index("_x") + 2, history, snippets)
    last = predictor.last
    assert last is not None and (result is None or result is last)
    assert last.verdict in ("edit", "unchanged", "undo", "max_tokens", "timeout")
    assert (result is not None) == (last.verdict == "edit") == bool(last.edits)
    # What was sent: the related file, the change, both windows, raw text with no chat template.
    sent = last.prompt.text
    assert sent.startswith("<|file_sep|>lib.py\ndef price(item):\n")
    assert "<|file_sep|>shop.py.diff\noriginal:\n" in sent and "line20 = value_x" in sent
    assert "<|file_sep|>original/shop.py\n" in sent and sent.endswith("<|file_sep|>updated/shop.py\n")
    assert last.generation.n_generated > 0 and last.n_prompt > 0
    for e in last.edits:
        assert last.window.start <= e.start <= e.end <= last.window.end


def test_user_text_spelling_a_special_token_is_neutralised_in_what_is_sent(
    sweep_server: str, sweep_gguf: Path
):
    vocab = LlamaCppModel(sweep_gguf, vocab_only=True)
    predictor = remote_predictor(sweep_server, vocab)
    source = numbered(10) + 'SEP = "<|file_sep|>"  # <|endoftext|>\n' + numbered(10, "after")
    history, edited = edited_history(source, source.index("line5 = value") + 13, "_y")
    predictor.predict("shop.py", edited, edited.index("SEP"), history)
    last = predictor.last
    assert last is not None
    sent = last.prompt.text
    # The user's spellings have a U+200B inside; only the format's own separators remain: one per
    # block (the change, the original window, the current window, the updated header).
    assert 'SEP = "<\u200b|file_sep|>"  # <\u200b|endoftext|>' in sent
    assert sent.count("<|file_sep|>") == 4 and "<|endoftext|>" not in sent
    assert neutralise('"<|file_sep|>"') == '"<\u200b|file_sep|>"'
    assert restore(neutralise("a <|x|> b <|")) == "a <|x|> b <|"
    # The model's answer is compared with the real window, whatever it copied of the neutralised one.
    assert (
        last.window.text == edited[last.window.start : last.window.end] and "<|file_sep|>" in last.window.text
    )
    # The server parses special tokens in the text it is sent: it counts the neutralised text as our
    # local vocabulary did, token for token, and the text as the user wrote it as fewer tokens.
    assert server_prompt_tokens(sweep_server, sent) == last.prompt.n_tokens
    raw = sent.replace("<\u200b|", "<|")
    assert server_prompt_tokens(sweep_server, raw) < last.prompt.n_tokens


def test_next_edits_without_a_local_model_take_the_format_from_the_servers_model_name(sweep_server: str):
    edits = NextEdits()
    predictor = edits.load(NextEditConfig(endpoint=sweep_server, max_tokens=16), EngineConfig(), 0)
    assert not predictor.tokenizer.exact and predictor.format.name == "sweep-next-edit"
    source = numbered(30)
    history, edited = edited_history(source, source.index("line9 = value") + 13, "s")
    result = edits.predict("shop.py", edited, edited.index("values") + 6, history, [])
    assert predictor.last is not None and (result is None or result is predictor.last)
    assert predictor.last.verdict in ("edit", "unchanged", "undo", "max_tokens", "timeout")


def test_a_server_whose_model_is_no_next_edit_model_needs_the_format_named(server: str):
    with pytest.raises(NextEditFormatError, match="nextEditFormat to sweep"):
        NextEdits().load(NextEditConfig(endpoint=server), EngineConfig(), 0)
    predictor = NextEdits().load(NextEditConfig(endpoint=server, format="sweep"), EngineConfig(), 0)
    assert predictor.format.name == "sweep-next-edit"


def test_an_unreachable_next_edit_endpoint_says_so():
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(
        EngineError, match=r"cannot reach the inference server at http://127.0.0.1:\d+ .*running"
    ):
        NextEdits().load(NextEditConfig(endpoint=url, format="sweep"), EngineConfig(), 0)


def test_the_session_loads_a_remote_next_edit_predictor_from_settings(
    sweep_server: str, sweep_gguf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("CODE_KB_CONFIG", str(tmp_path / "none.toml"))
    settings = Settings.load({"nextEditEndpoint": sweep_server, "nextEditModel": str(sweep_gguf)})
    assert settings.next_edit.endpoint == sweep_server and not settings.problems
    assert Settings.load({"nextEditFormat": "zeta"}).problems  # not a format we have
    roots = Roots(tmp_path)
    session = Session(settings, roots)
    try:
        assert session.next_edit_wanted
        session.load_next_edit_model()  # no completion model: nothing else to check memory against
        status = session.status().next_edit
        assert status["loaded"] and status["generated_by"] == f"remote {sweep_server}"
        assert status["memory_bytes"] == 0 and status["exact_token_counts"] is True
        assert status["format"] == "sweep-next-edit" and status["speculative"] is False
    finally:
        roots.close()
