"""The `/infill` backend against llama.cpp's own server (built from the sdist's sources), tiny model."""

from __future__ import annotations

import json
import threading
import urllib.request
from pathlib import Path

import pytest

from engine import Completer, EngineConfig
from engine.backends.llama_server import LlamaServerInfillBackend, is_llama_server
from engine.backends.openai_compat import OpenAICompletionsBackend, neutralised, restored
from tests.fixtures import llama_server, vocabs

SOURCE = "def area(radius):\n    return 3.14 * radius ** 2\n\n\ndef circumference(radius):\n    return \n"
CURSOR = SOURCE.rindex("return ") + len("return ")


class OneSnippet:
    path, start_line, end_line = "lib/consts.py", 0, 1
    text = "PI = 3.14159\nTAU = 2 * PI\n"
    prompt_kind, reason = "snippet", "fixed"

    def snippets(self, path, source, offset, limit=None):
        return [self]


@pytest.fixture(scope="module")
def server(tiny_gguf: Path, tmp_path_factory: pytest.TempPathFactory):
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    with llama_server.running(
        tiny_gguf, "-c", "4096", "--cache-reuse", "64", "-np", "1", log_file=log
    ) as url:
        yield url


def test_llama_server_is_recognised_and_used_through_infill(server: str, tiny_gguf: Path):
    assert is_llama_server(server)
    completer = Completer.load(EngineConfig(endpoint=server, model_path=str(tiny_gguf), max_tokens=8))
    assert isinstance(completer.backend, LlamaServerInfillBackend)
    assert completer.describe()["name"].endswith("(/infill)")
    assert completer.budget_tokens <= 4096 - 8  # the server's context, less the generated tokens
    forced = Completer.load(EngineConfig(endpoint=server, endpoint_api="completions", max_tokens=8))
    assert isinstance(forced.backend, OpenAICompletionsBackend)


def test_infill_reports_what_the_server_found_in_its_cache(server: str, tiny_gguf: Path):
    completer = Completer.load(EngineConfig(endpoint=server, model_path=str(tiny_gguf), max_tokens=8))
    first = completer.complete("geo.py", SOURCE, CURSOR, OneSnippet(), "demo")
    g = first.generation
    assert g.stop_reason in {"eog", "rule", "max_tokens"} and 0 < g.n_generated <= 8
    # The server's layout adds its own repository and file names, so it counts a few more tokens.
    assert g.n_prompt >= first.prompt.n_tokens - 8
    typed = SOURCE[:CURSOR] + "2" + SOURCE[CURSOR:]
    second = completer.complete("geo.py", typed, CURSOR + 1, OneSnippet(), "demo").generation
    assert second.n_reused > second.n_prompt * 0.6 and second.n_evaluated < second.n_prompt * 0.4
    assert second.n_reused + second.n_evaluated == second.n_prompt


def test_infill_cancel_and_unreachable_server(server: str, tiny_gguf: Path):
    completer = Completer.load(EngineConfig(endpoint=server, endpoint_api="infill", max_tokens=64))
    cancel = threading.Event()
    cancel.set()
    result = completer.complete("geo.py", SOURCE, CURSOR, None, "demo", cancel=cancel)
    assert result.generation.stop_reason == "cancelled" and result.generation.n_generated <= 1
    port = llama_server.free_port()
    with pytest.raises(Exception, match="cannot reach llama.cpp's server"):
        Completer.load(EngineConfig(endpoint=f"http://127.0.0.1:{port}", endpoint_api="infill"))


def server_tokens(url: str, text: str) -> list[int]:
    """llama.cpp's server tokenising `text` as it tokenises a text prompt: special-token text parsed."""
    body = json.dumps({"content": text, "add_special": False, "parse_special": True}).encode()
    request = urllib.request.Request(url + "/tokenize", body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as r:
        return list(json.load(r)["tokens"])


def test_v1_completions_send_token_ids_so_code_spelling_a_special_token_stays_text(
    server: str, tiny_gguf: Path
):
    config = EngineConfig(
        endpoint=server, endpoint_api="completions", model_path=str(tiny_gguf), max_tokens=8
    )
    completer = Completer.load(config)
    backend = completer.backend
    # llama.cpp's server takes ids, and tokenises the probe as the local model file does.
    assert isinstance(backend, OpenAICompletionsBackend) and backend.owned_by == "llamacpp"
    assert backend.token_ids
    source = 'MARK = "<|fim_prefix|>"  # <|endoftext|>\n' + SOURCE
    result = completer.complete("geo.py", source, CURSOR + source.index(SOURCE), OneSnippet(), "demo")
    assert result.generation.n_generated > 0  # the server generated from the ids
    fim = completer.tokenizer.special_id("<|fim_prefix|>")
    assert fim is not None and result.prompt.tokens.count(fim) == 1  # the user's spelling is text in our ids
    # Sent as text, the server would turn the user's spelling into the marker; neutralised, it does not.
    assert server_tokens(server, result.prompt.text).count(fim) == 2
    sent = neutralised(result.prompt)
    assert 'MARK = "<\u200b|fim_prefix|>"  # <\u200b|endoftext|>' in sent
    assert server_tokens(server, sent).count(fim) == 1
    assert restored(sent) == result.prompt.text
    # Without a local model file there are no ids to send: text, neutralised.
    text_only = Completer.load(EngineConfig(endpoint=server, endpoint_api="completions", max_tokens=8))
    assert isinstance(text_only.backend, OpenAICompletionsBackend) and not text_only.backend.token_ids
    assert (
        text_only.complete(
            "geo.py", source, CURSOR + source.index(SOURCE), None, "demo"
        ).generation.n_generated
        > 0
    )


def test_a_different_local_model_file_keeps_prompts_as_text(server: str, tmp_path: Path):
    # Another vocabulary than the server's (the shipped starcoder one): its ids would be garbage there.
    other = vocabs.shipped_vocab("starcoder")
    completer = Completer.load(
        EngineConfig(endpoint=server, endpoint_api="completions", model_path=str(other), max_tokens=4)
    )
    assert isinstance(completer.backend, OpenAICompletionsBackend) and not completer.backend.token_ids
