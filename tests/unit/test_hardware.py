"""Hardware detection on this machine's real values, and the choices made from them."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import llama_cpp

from engine import Completer, EngineConfig
from engine.hardware import GIB, Device, Machine, choose, detect, gpu_layers_for, kv_cache_type_for
from engine.models import BY_NAME
from lsp_server.cli import main
from tests.fixtures.hash_embedder import as_configured


def test_detect_reads_this_machine():
    machine = detect()
    assert machine.cpu_cores == len(os.sched_getaffinity(0))
    assert machine.ram_bytes == os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert machine.gpu_offload == bool(llama_cpp.llama_supports_gpu_offload())
    cpus = [d for d in machine.devices if d.kind == "cpu"]
    assert cpus and cpus[0].backend == "CPU" and cpus[0].total_bytes  # ggml's CPU device reports the RAM
    assert machine.cpu_features == llama_cpp.llama_print_system_info().decode().strip()
    if not machine.gpu_offload:  # this CPU-only build: no GPU backends, no VRAM
        assert machine.backends == () and machine.gpus == () and machine.vram_bytes is None
    json.dumps(machine.to_dict())


def test_choice_for_this_machine_is_explained():
    machine = detect()
    choice = choose(machine)
    assert choice.model in BY_NAME and choice.quant in ("Q4_K_M", "Q8_0")
    assert choice.kv_cache_type == "auto" and len(choice.reasons) >= 3
    if not machine.gpu_offload:
        assert (choice.budget_tokens, choice.gpu_layers, choice.quant) == (4096, "none", "Q4_K_M")
        assert "no GPU offload" in choice.reasons[0] and "-DGGML_CUDA=on" in choice.reasons[0]
        assert f"{machine.cpu_cores} CPU cores" in choice.reasons[1]


def _machine(cores: int, ram_gib: float, vram_gib: float | None = None, backend: str = "CUDA") -> Machine:
    devices = [Device("CPU", "CPU", "cpu", "test cpu", int(ram_gib * GIB), int(ram_gib * GIB))]
    if vram_gib is not None:
        devices.append(
            Device(f"{backend}0", backend, "gpu", "test gpu", int(vram_gib * GIB), int(vram_gib * GIB))
        )
    return Machine(
        cores, int(ram_gib * GIB), vram_gib is not None, (backend,) if vram_gib else (), tuple(devices), ""
    )


def test_choices_scale_with_the_hardware():
    assert (choose(_machine(2, 8)).model, choose(_machine(2, 8)).quant) == ("qwen2.5-coder-0.5b", "Q4_K_M")
    assert choose(_machine(4, 8)).model == "qwen2.5-coder-1.5b"
    assert choose(_machine(16, 64)).model == "qwen2.5-coder-3b"
    big = choose(_machine(8, 32, vram_gib=24))
    assert (big.model, big.quant, big.budget_tokens, big.gpu_layers) == (
        "qwen2.5-coder-7b",
        "Q8_0",
        16384,
        "all",
    )
    assert "CUDA device CUDA0" in big.reasons[0]
    assert choose(_machine(8, 32, vram_gib=8, backend="Vulkan")).model == "qwen2.5-coder-3b"
    assert choose(_machine(8, 16, vram_gib=4, backend="Metal")).model == "qwen2.5-coder-1.5b"


def test_gpu_layers_and_kv_type_follow_the_memory_they_live_in():
    gpu = _machine(8, 32, vram_gib=8)
    assert gpu_layers_for(2 * GIB, 28, GIB // 2, gpu) == -1  # fits whole
    partial = gpu_layers_for(12 * GIB, 32, GIB, gpu)
    assert 0 < partial < 32
    assert gpu_layers_for(2 * GIB, 28, None, _machine(8, 32)) == 0  # no GPU
    assert kv_cache_type_for(3 * GIB, gpu, on_gpu=True) == "q8_0"  # over a quarter of 8 GiB VRAM
    assert kv_cache_type_for(3 * GIB, gpu, on_gpu=False) == "f16"  # under a quarter of 32 GiB RAM
    assert kv_cache_type_for(None, gpu, on_gpu=True) == "f16"


def test_the_loaded_model_uses_the_detected_hardware(tiny_gguf: Path):
    completer = Completer.load(EngineConfig(model_path=str(tiny_gguf), max_tokens=8))
    hardware = completer.describe()
    expected_layers = -1 if detect().gpu_offload else 0
    assert hardware["gpu_layers"] == expected_layers and hardware["kv_cache_type"] == "f16"
    assert hardware["budget_tokens"] == choose(detect()).budget_tokens


def test_status_explains_the_choice(tiny_repo: Path, hash_embedder, monkeypatch, capsys):
    from retrieval import CodeIndex, IndexConfig

    index = CodeIndex(tiny_repo, IndexConfig(embedding_model=hash_embedder.name), embedder=as_configured())
    index.reindex()
    index.close()
    monkeypatch.chdir(tiny_repo)
    assert main(["status", "--json", "--embedding-model", hash_embedder.name]) == 0
    report = json.loads(capsys.readouterr().out)["hardware"]
    choice = choose(detect())
    assert report["choice"] == json.loads(json.dumps(dataclasses.asdict(choice)))
    assert report["machine"]["cpu_cores"] == detect().cpu_cores
    assert report["model"]["problem"] == f"no model configured; run: code-kb model pull {choice.model}"
    assert main(["status", "--embedding-model", hash_embedder.name]) == 0
    out = capsys.readouterr().out
    assert (
        f"chosen        model {choice.model} {choice.quant} (what `code-kb model list` marks), budget "
        f"{choice.budget_tokens} tokens" in out
    )
    assert out.count("  because     ") == len(choice.reasons) and "set by you" not in out
    config = tiny_repo / "config.toml"
    config.write_text('budget_tokens = 2048\nkv_cache_type = "q8_0"\n')
    monkeypatch.setenv("CODE_KB_CONFIG", str(config))
    assert main(["status", "--embedding-model", hash_embedder.name]) == 0
    assert "  set by you  budget 2048, kv_cache_type q8_0" in capsys.readouterr().out


def test_status_shows_both_models_and_what_each_takes_loaded(
    tiny_repo: Path, tiny_gguf: Path, hash_embedder, monkeypatch, capsys, tmp_path: Path
):
    from retrieval import CodeIndex, IndexConfig
    from tests.fixtures.gguf_builder import write_tiny_gguf

    sweep = write_tiny_gguf(tmp_path / "sweep-next-edit-1.5b.q8_0.v2.gguf", name="sweep-next-edit-1.5B")
    index = CodeIndex(tiny_repo, IndexConfig(embedding_model=hash_embedder.name), embedder=as_configured())
    index.reindex()
    index.close()
    config = tmp_path / "config.toml"
    config.write_text(f'model = "{tiny_gguf}"\nbudget_tokens = 1024\nnext_edit_model = "{sweep}"\n')
    monkeypatch.setenv("CODE_KB_CONFIG", str(config))
    monkeypatch.chdir(tiny_repo)
    assert main(["status", "--json", "--embedding-model", hash_embedder.name]) == 0
    report = json.loads(capsys.readouterr().out)["hardware"]
    model, next_edit = report["model"], report["next_edit"]
    # Weights plus a KV cache for the budget and the tokens generated: more than the file alone.
    assert model["path"] == str(tiny_gguf) and model["memory_bytes"] > tiny_gguf.stat().st_size
    assert model["memory_context_tokens"] == 1024 + 64
    assert next_edit["path"] == str(sweep) and next_edit["memory_bytes"] > sweep.stat().st_size
    assert next_edit["enabled"] is True and next_edit["endpoint"] is None
    assert main(["status", "--embedding-model", hash_embedder.name]) == 0
    out = capsys.readouterr().out
    assert f"next edit     {sweep} -> {sweep} (about " in out and "GB loaded, with a" in out
