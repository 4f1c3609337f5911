"""The OpenAI-compatible backend against a real server: llama-cpp-python's own, on 127.0.0.1, tiny model."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import pytest

from engine import Completer, EngineConfig, EngineError
from lsp_server.cli import main

SOURCE = "def area(radius):\n    return 3.14 * radius ** 2\n\n\ndef circumference(radius):\n    return "
CURSOR = len(SOURCE)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tiny_gguf: Path, tmp_path_factory: pytest.TempPathFactory):
    port = free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "llama_cpp.server",
                "--model",
                str(tiny_gguf),
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
