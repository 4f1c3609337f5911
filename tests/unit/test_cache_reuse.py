"""Architectures whose KV cache cannot be reused between requests: recognised from GGUF metadata
(real GGUFs written by tests/fixtures/gguf_builder.py with those keys), explained by `code-kb model
info`, `code-kb status` and `code-kb doctor`, given a quarter of the default budget, and evaluated
whole at every request."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine import Completer, EngineConfig
from engine.cache_reuse import cache_reuse
from engine.completer import auto_budget
from engine.hardware import choose, detect
from lsp_server.cli import main
from tests.fixtures.gguf_builder import write_tiny_gguf
from tests.fixtures.hash_embedder import as_configured


@pytest.mark.parametrize(
    "metadata, kind",
    [
        ({"general.architecture": "qwen2", "qwen2.block_count": "28"}, "attention"),
        # Mistral 7B v0.1 GGUFs carry a window that llama.cpp's llama architecture ignores.
        ({"general.architecture": "llama", "llama.attention.sliding_window": "4096"}, "attention"),
        ({"general.architecture": "gemma3"}, "attention"),  # Gemma 3 without a window: dense
        ({"general.architecture": "gemma3", "gemma3.attention.sliding_window": "1024"}, "sliding-window"),
        ({"general.architecture": "gemma2"}, "sliding-window"),  # always, 4096 by default
        ({"general.architecture": "mellum", "mellum.attention.sliding_window": "4096"}, "sliding-window"),
        ({"general.architecture": "qwen3next", "qwen3next.ssm.state_size": "128"}, "hybrid"),
        ({"general.architecture": "granitehybrid"}, "hybrid"),
        ({"general.architecture": "lfm2", "lfm2.shortconv.l_cache": "3"}, "hybrid"),
        ({"general.architecture": "mamba2"}, "recurrent"),
        ({"general.architecture": "rwkv7"}, "recurrent"),
        ({"general.architecture": "newhybrid", "newhybrid.ssm.conv_kernel": "4"}, "hybrid"),  # by its keys
        (
            {
                "general.architecture": "newswa",
                "newswa.attention.sliding_window": "512",
                "newswa.attention.sliding_window_pattern": "[true, true, false]",
            },
            "sliding-window",
        ),
    ],
)
def test_cache_reuse_is_read_from_the_metadata(metadata: dict, kind: str):
    reuse = cache_reuse(metadata)
    assert reuse.kind == kind and reuse.reusable == (kind == "attention")
    assert (reuse.cost == "a keystroke re-evaluates the whole prompt") == (kind != "attention")


def test_sliding_layers_are_counted_from_the_pattern_or_the_architecture_default():
    gemma3 = {
        "general.architecture": "gemma3",
        "gemma3.attention.sliding_window": "1024",
        "gemma3.block_count": "34",
    }
    assert "sliding-window attention (1024 tokens) on 29 of 34 layers" in cache_reuse(gemma3).why
    listed = {**gemma3, "gemma3.attention.sliding_window_pattern": "[true, false, true, false]"}
    assert "on 2 of 4 layers" in cache_reuse(listed).why


# Mellum2-shaped (sliding window) and Qwen3-Coder-Next-shaped (qwen3next: hybrid) GGUFs.
MELLUM2 = {"mellum.attention.sliding_window": 4096, "mellum.attention.sliding_window_pattern": 4}
QWEN3_NEXT = {
    "qwen3next.ssm.state_size": 128,
    "qwen3next.ssm.conv_kernel": 4,
    "qwen3next.full_attention_interval": 4,
}


@pytest.fixture(scope="module")
def not_reusable(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("no-reuse")
    return {
        "mellum": write_tiny_gguf(
            folder / "mellum2-shape.gguf", arch="mellum", n_merges=60, metadata=MELLUM2
        ),
        "qwen3next": write_tiny_gguf(
            folder / "qwen3-coder-next-shape.gguf", arch="qwen3next", n_merges=60, metadata=QWEN3_NEXT
        ),
    }


@pytest.mark.parametrize("arch, kind", [("mellum", "sliding-window"), ("qwen3next", "hybrid")])
def test_model_info_explains_what_a_cache_that_is_not_reused_costs(
    not_reusable, arch: str, kind: str, capsys
):
    path = not_reusable[arch]
    capsys.readouterr()
    assert main(["model", "info", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["cache_reuse"]["kind"] == kind and info["cache_reuse"]["reusable"] is False
    assert info["cache_reuse"]["cost"] == "a keystroke re-evaluates the whole prompt"
    on_gpu = detect().gpu_offload and detect().vram_bytes is not None
    assert info["budget_tokens"] == (16384 if on_gpu else 4096) // 4
    assert main(["model", "info", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"KV reuse      no: {arch}: " in out
    assert "a keystroke re-evaluates the whole prompt; its default budget here is" in out


def test_auto_budget_is_a_quarter_for_a_cache_that_is_not_reused():
    hybrid = cache_reuse({"general.architecture": "qwen3next"})
    dense = cache_reuse({"general.architecture": "qwen2"})
    chosen = choose(detect()).budget_tokens
    assert auto_budget(EngineConfig(), 32768, dense) == chosen
    assert auto_budget(EngineConfig(), 32768, hybrid) == chosen // 4
    assert auto_budget(EngineConfig(budget_tokens=3000), 32768, hybrid) == 3000  # a setting wins


def test_a_model_whose_cache_is_not_reused_evaluates_every_prompt_whole(tmp_path: Path):
    """A real qwen2 model whose GGUF carries a recurrent-layer key (qwen2's loader ignores it, our
    reading does not): the engine takes the no-reuse path with llama.cpp's real cache underneath."""
    path = write_tiny_gguf(tmp_path / "hybrid-keys.gguf", metadata={"qwen2.ssm.state_size": 16})
    completer = Completer.load(EngineConfig(model_path=str(path), max_tokens=8, budget_tokens=512))
    assert not completer.warms and completer.describe()["cache_reuse"]["kind"] == "hybrid"
    assert completer.describe()["kv_shift"] is False
    source = "def area(radius):\n    return 3.14 * radius * radius\n\n\ndef half(x):\n    return x"
    first = completer.complete("a.py", source, len(source), None, "demo", n_candidates=3)
    again = completer.complete("a.py", source + " /", len(source) + 2, None, "demo", n_candidates=3)
    for c in (first, again):
        g = c.generation
        assert g.n_reused == 0 and g.n_evaluated == g.n_prompt > 0
        assert c.alternatives == []  # one candidate: a second would start from the first one's state
    assert completer.warm("a.py", source, len(source), None, "demo") == 0


def test_status_and_doctor_say_the_cache_is_not_reused(
    not_reusable, tiny_repo: Path, hash_embedder, monkeypatch, capsys, tmp_path: Path
):
    from retrieval import CodeIndex, IndexConfig

    index = CodeIndex(tiny_repo, IndexConfig(embedding_model=hash_embedder.name), embedder=as_configured())
    index.reindex()
    index.close()
    model = not_reusable["qwen3next"]
    config = tmp_path / "config.toml"
    config.write_text(f'model = "{model}"\n')
    monkeypatch.setenv("CODE_KB_CONFIG", str(config))
    monkeypatch.chdir(tiny_repo)
    capsys.readouterr()
    assert main(["status", "--json", "--embedding-model", hash_embedder.name]) == 0
    report = json.loads(capsys.readouterr().out)["hardware"]["model"]
    assert report["cache_reuse"]["reusable"] is False
    assert report["budget_tokens"] == choose(detect()).budget_tokens // 4
    assert main(["status", "--embedding-model", hash_embedder.name]) == 0
    out = capsys.readouterr().out
    assert "  KV reuse    no: qwen3next: hybrid" in out
    assert (
        f"a keystroke re-evaluates the whole prompt; budget {report['budget_tokens']} tokens (a quarter"
        in out
    )
