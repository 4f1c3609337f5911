"""`code-kb model pull/list/info` and model-name resolution, against a local Hub on 127.0.0.1.

Downloads go through huggingface_hub's real API client (HF_ENDPOINT pointed at tests/fixtures/
hub_server.py) and engine/download.py's real HTTP transfer; the files are generated GGUFs that
llama.cpp loads.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine import Completer, EngineConfig, ModelNotFoundError
from engine.download import DownloadError, RemoteFile, download
from engine.models import (
    BY_NAME,
    NEXT_EDIT_NAMES,
    ModelNotPulledError,
    local_model_path,
    models_dir,
    resolve_pull,
)
from lsp_server.cli import main
from lsp_server.config import Settings
from tests.fixtures.gguf_builder import write_tiny_gguf
from tests.fixtures.hub_server import COMMIT, Faults, HubServer, file_sha256, start

REPO = "Qwen/Qwen2.5-Coder-0.5B-GGUF"
Q4 = "qwen2.5-coder-0.5b-q4_k_m.gguf"
Q8 = "qwen2.5-coder-0.5b-q8_0.gguf"


@pytest.fixture(scope="module")
def ggufs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("hub-files")
    return {
        Q4: write_tiny_gguf(folder / Q4).read_bytes(),
        Q8: write_tiny_gguf(folder / Q8, seed=1).read_bytes(),
    }


@pytest.fixture
def hub(ggufs: dict[str, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A Hub with the Qwen 0.5B repository (two quantizations and a README), our models folder in tmp."""
    import huggingface_hub.constants

    server = HubServer()
    for name, content in ggufs.items():
        server.add(REPO, name, content)
    server.add(REPO, "README.md", b"# Qwen2.5-Coder-0.5B GGUF\n")
    httpd, _ = start(server)
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setenv("CODE_KB_MODELS", str(tmp_path / "models"))
    # Loading the embedding model elsewhere in this process sets HF_HUB_OFFLINE, which huggingface_hub
    # reads once at import; a pull is an explicit request for the network.
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    yield server
    httpd.shutdown()
    httpd.server_close()


def test_pull_resolves_the_name_through_the_hub_api_and_verifies(hub: HubServer, ggufs, capsys):
    assert main(["model", "pull", "qwen2.5-coder-0.5b", "--quant", "Q4_K_M", "-q"]) == 0
    out, err = capsys.readouterr()
    path = Path(out.strip())
    assert path == models_dir() / "qwen2.5-coder-0.5b" / Q4
    assert path.read_bytes() == ggufs[Q4]
    assert "verified: size and sha256" in err and 'model = "qwen2.5-coder-0.5b"' in err
    assert not list(path.parent.glob("*.part*"))
    # huggingface_hub listed the repository; the file came from the commit that listing named.
    assert hub.requests[0][0] == f"/api/models/{REPO}"
    assert hub.file_requests() == [(f"/{REPO}/resolve/{COMMIT}/{Q4}", None)]
    # A second pull finds it and downloads nothing.
    assert main(["model", "pull", "qwen2.5-coder-0.5b:q4_k_m", "-q"]) == 0
    assert "already downloaded" in capsys.readouterr().err
    assert len(hub.file_requests()) == 1


def test_a_pulled_name_works_wherever_a_path_does(hub: HubServer, tmp_path: Path, capsys):
    with pytest.raises(ModelNotPulledError, match=r"run: code-kb model pull qwen2\.5-coder-0\.5b$"):
        Completer.load(EngineConfig(model_path="qwen2.5-coder-0.5b"), vocab_only=True)
    assert main(["model", "pull", "qwen2.5-coder-0.5b:Q8_0", "-q"]) == 0
    capsys.readouterr()
    q8 = models_dir() / "qwen2.5-coder-0.5b" / Q8
    assert local_model_path("qwen2.5-coder-0.5b") == str(q8)  # the one pulled
    assert local_model_path("qwen2.5-coder-0.5b:Q8_0") == str(q8)
    with pytest.raises(ModelNotPulledError, match="code-kb model pull qwen2.5-coder-0.5b:Q4_K_M"):
        local_model_path("qwen2.5-coder-0.5b:Q4_K_M")
    assert main(["model", "pull", "qwen2.5-coder-0.5b", "--quant", "Q4_K_M", "-q"]) == 0
    capsys.readouterr()
    assert local_model_path("qwen2.5-coder-0.5b").endswith(Q4)  # Q4_K_M is preferred when both are there
    # The engine (CLI and server alike) and the settings take the name.
    completer = Completer.load(EngineConfig(model_path="qwen2.5-coder-0.5b:Q8_0"), vocab_only=True)
    assert completer.config.model_path == str(q8) and completer.template.name == "qwen2.5-coder"
    assert Settings.load({"modelPath": "qwen2.5-coder-0.5b"}).engine.model_path == "qwen2.5-coder-0.5b"
    # `model info` takes a name too.
    assert main(["model", "info", "qwen2.5-coder-0.5b:Q8_0", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["path"] == str(q8) and info["family"] == "qwen2.5-coder"
    # A path still is a path, and a missing one says what to do.
    with pytest.raises(ModelNotFoundError, match="code-kb model list"):
        local_model_path(str(tmp_path / "nope.gguf"))


def test_interrupted_pull_resumes_with_a_range_request(hub: HubServer, ggufs, capsys):
    cut = 200_000
    hub.faults = Faults(drop_after_bytes=cut, drops_left=1)
    plan = resolve_pull("qwen2.5-coder-0.5b", "Q4_K_M")
    (remote,) = plan.files
    with pytest.raises(
        DownloadError, match="interrupted at 200000 bytes.*run the same command again to resume"
    ):
        download(remote, attempts=1)
    assert not remote.dest.exists()
    assert remote.part.stat().st_size == cut
    # The user runs the same command again: only the rest is fetched, and the whole verifies.
    assert main(["model", "pull", "qwen2.5-coder-0.5b", "--quant", "Q4_K_M", "-q"]) == 0
    assert "verified: size and sha256" in capsys.readouterr().err
    files = hub.file_requests()
    assert [r[1] for r in files] == [None, f"bytes={cut}-"]
    assert remote.dest.read_bytes() == ggufs[Q4]
    assert file_sha256(remote.dest) == remote.sha256
    assert not remote.part.exists() and not remote.part_meta.exists()


def test_a_dropped_connection_is_resumed_within_one_pull(hub: HubServer, ggufs, capsys):
    hub.faults = Faults(drop_after_bytes=100_000, drops_left=1)
    assert main(["model", "pull", "qwen2.5-coder-0.5b:Q8_0", "-q"]) == 0
    capsys.readouterr()
    assert [r[1] for r in hub.file_requests()] == [None, "bytes=100000-"]
    assert (models_dir() / "qwen2.5-coder-0.5b" / Q8).read_bytes() == ggufs[Q8]


def test_a_server_that_ignores_the_range_starts_the_file_over(hub: HubServer, ggufs, capsys):
    hub.faults = Faults(drop_after_bytes=100_000, drops_left=1, ignore_range=True)
    assert main(["model", "pull", "qwen2.5-coder-0.5b:Q8_0", "-q"]) == 0
    capsys.readouterr()
    assert (models_dir() / "qwen2.5-coder-0.5b" / Q8).read_bytes() == ggufs[Q8]


def test_a_corrupted_download_fails_verification_and_is_not_kept(hub: HubServer, capsys):
    hub.faults = Faults(corrupt=True)
    assert main(["model", "pull", "qwen2.5-coder-0.5b:Q4_K_M", "-q"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("code-kb: error: ") and "sha256" in err and "corrupt and was deleted" in err
    folder = models_dir() / "qwen2.5-coder-0.5b"
    assert list(folder.iterdir()) == []
    with pytest.raises(ModelNotPulledError):
        local_model_path("qwen2.5-coder-0.5b")
    hub.faults = Faults()  # the next pull starts afresh and succeeds
    assert main(["model", "pull", "qwen2.5-coder-0.5b:Q4_K_M", "-q"]) == 0


def test_direct_url_pull_verifies_size_and_a_given_sha256(hub: HubServer, ggufs, capsys):
    url = f"{hub.url}/files/{Q8}"
    assert main(["model", "pull", url, "-q"]) == 0
    out, err = capsys.readouterr()
    assert Path(out.strip()) == models_dir() / Q8 and "verified: size" in err
    assert (models_dir() / Q8).read_bytes() == ggufs[Q8]
    (models_dir() / Q8).unlink()
    assert main(["model", "pull", url, "--sha256", "0" * 64, "-q"]) == 1
    assert "sha256" in capsys.readouterr().err
    assert list(models_dir().iterdir()) == []
    good = file_sha256_bytes(ggufs[Q8])
    assert main(["model", "pull", url, "--sha256", good, "-q"]) == 0
    assert "verified: size and sha256" in capsys.readouterr().err


def file_sha256_bytes(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def test_pull_errors_say_what_exists(hub: HubServer, capsys):
    assert main(["model", "pull", "qwen2.5-coder-0.5b:Q3_K_S", "-q"]) == 1
    assert "has no Q3_K_S GGUF; it has Q4_K_M, Q8_0" in capsys.readouterr().err
    assert main(["model", "pull", "no-such-model", "-q"]) == 1
    assert "unknown model 'no-such-model'" in capsys.readouterr().err
    assert main(["model", "pull", "starcoder2-3b", "-q"]) == 1  # not on this Hub
    assert "cannot list second-state/StarCoder2-3B-GGUF" in capsys.readouterr().err
    assert main(["model", "pull", f"{hub.url}/files/missing.gguf", "-q"]) == 1
    assert "HTTP 404" in capsys.readouterr().err


def test_download_of_a_whole_part_only_verifies(tmp_path: Path, hub: HubServer, ggufs):
    """A part file that already holds every byte (the process died before the rename) is not fetched again."""
    remote = RemoteFile(f"{hub.url}/files/{Q4}", tmp_path / Q4, len(ggufs[Q4]), file_sha256_bytes(ggufs[Q4]))
    remote.part.write_bytes(ggufs[Q4])
    remote.part_meta.write_text(json.dumps({"url": remote.url, "size": remote.size, "sha256": remote.sha256}))
    assert download(remote) == remote.dest and remote.dest.read_bytes() == ggufs[Q4]
    assert hub.file_requests() == []


def test_model_list_marks_what_fits_here(capsys):
    assert main(["model", "list", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    names = [m["name"] for m in listing["models"]]
    assert names == [
        "qwen2.5-coder-0.5b",
        "qwen2.5-coder-1.5b",
        "qwen2.5-coder-3b",
        "qwen2.5-coder-7b",
        "deepseek-coder-1.3b",
        "deepseek-coder-6.7b",
        "starcoder2-3b",
        "starcoder2-7b",
        "seed-coder-8b",
        "mellum-4b",
        "qwen3-coder-30b-a3b",
        "sweep-next-edit-1.5b",
        "sweep-next-edit-0.5b",
    ]
    by_name = {m["name"]: m for m in listing["models"]}
    assert (by_name["seed-coder-8b"]["family"], by_name["seed-coder-8b"]["licence"]) == ("seed-coder", "MIT")
    mellum = by_name["mellum-4b"]
    assert (mellum["family"], mellum["quants"], mellum["licence"]) == ("mellum", ["Q8_0"], "Apache-2.0")
    assert mellum["repository"] == "JetBrains/Mellum-4b-base-gguf"
    qwen3 = by_name["qwen3-coder-30b-a3b"]
    assert qwen3["family"] == "qwen2.5-coder" and qwen3["context_tokens"] == 262144
    # Whether it fits is this machine's memory against its weights and KV cache at the chosen budget.
    memory = (
        listing["machine"]["vram_bytes"] if listing["choice"]["gpu_layers"] == "all" else None
    ) or listing["machine"]["ram_bytes"]
    need = qwen3["est_bytes"]["Q4_K_M"] + BY_NAME["qwen3-coder-30b-a3b"].kv_bytes(
        listing["choice"]["budget_tokens"]
    )
    assert qwen3["fits"] == (need <= memory * 0.75)
    recommended = [m for m in listing["models"] if m["recommended"]]
    assert (
        len(recommended) == 1
        and recommended[0]["name"] == listing["choice"]["model"]
        and recommended[0]["fits"]
    )
    assert recommended[0]["kind"] == "completion"
    next_edit = {m["name"]: m for m in listing["models"] if m["kind"] == "next-edit"}
    assert set(next_edit) == {"sweep-next-edit-1.5b", "sweep-next-edit-0.5b"}
    assert all(
        m["quant"] == "Q8_0" and m["quants"] == ["Q8_0"] and m["context_tokens"] == 8192
        for m in next_edit.values()
    )
    assert next_edit["sweep-next-edit-1.5b"]["repository"] == "sweepai/sweep-next-edit-1.5B"
    assert main(["model", "list"]) == 0
    out = capsys.readouterr().out
    assert f"* {listing['choice']['model']}" in out
    completion, _, next_edits = out.partition("next-edit models")
    assert "sweep-next-edit" not in completion and "qwen2.5-coder" not in next_edits.replace(
        "qwen2.5-coder ", ""
    )
    assert "  sweep-next-edit-1.5b" in next_edits and "1.6 GB Q8_0" in next_edits


def test_the_hardware_choice_is_never_a_next_edit_model():
    from engine.hardware import Device, Machine, choose

    for cores, ram_gib, vram_gib in ((2, 4, None), (4, 8, None), (16, 64, None), (8, 32, 8), (16, 64, 24)):
        devices = [Device("CPU", "CPU", "cpu", "test cpu", ram_gib << 30, ram_gib << 30)]
        if vram_gib:
            devices.append(Device("CUDA0", "CUDA", "gpu", "test gpu", vram_gib << 30, vram_gib << 30))
        machine = Machine(
            cores, ram_gib << 30, vram_gib is not None, ("CUDA",) if vram_gib else (), tuple(devices), ""
        )
        model = choose(machine).model
        assert BY_NAME[model].kind == "completion" and model not in NEXT_EDIT_NAMES


def test_a_sweep_model_is_pulled_by_its_exact_file_name(hub: HubServer, ggufs, tmp_path: Path, capsys):
    """Sweep's 1.5B file is `...q8_0.v2.gguf`: no `...q8_0.gguf` pattern finds it; the entry names it."""
    repo, name = "sweepai/sweep-next-edit-1.5B", "sweep-next-edit-1.5b.q8_0.v2.gguf"
    sweep = write_tiny_gguf(tmp_path / name, name="sweep-next-edit-1.5B").read_bytes()
    hub.add(repo, name, sweep)
    hub.add(repo, "README.md", b"# Sweep Next-Edit 1.5B\n")
    assert main(["model", "pull", "sweep-next-edit-1.5b", "-q"]) == 0  # Q8_0 without asking: its only file
    out, err = capsys.readouterr()
    path = Path(out.strip())
    assert path == models_dir() / "sweep-next-edit-1.5b" / name and path.read_bytes() == sweep
    assert "verified: size and sha256" in err and 'next_edit_model = "sweep-next-edit-1.5b"' in err
    assert (
        local_model_path("sweep-next-edit-1.5b") == str(path) == local_model_path("sweep-next-edit-1.5b:Q8_0")
    )
    assert main(["model", "list", "--json"]) == 0
    rows = {m["name"]: m for m in json.loads(capsys.readouterr().out)["models"]}
    assert rows["sweep-next-edit-1.5b"]["pulled"] == ["Q8_0"] and rows["sweep-next-edit-0.5b"]["pulled"] == []
    assert main(["model", "pull", "sweep-next-edit-1.5b:Q4_K_M", "-q"]) == 1
    assert f"has no Q4_K_M GGUF (code-kb knows Q8_0: {name}); it lists {name}" in capsys.readouterr().err


def test_a_renamed_sweep_upload_with_one_q8_0_file_is_pulled_in_its_stead(
    hub: HubServer, tmp_path: Path, capsys
):
    repo, name = "sweepai/sweep-next-edit-0.5B", "sweep-next-edit-0.5b.q8_0.v3.gguf"
    hub.add(repo, name, write_tiny_gguf(tmp_path / name, name="sweep-next-edit-0.5B").read_bytes())
    assert main(["model", "pull", "sweep-next-edit-0.5b", "-q"]) == 0
    path = Path(capsys.readouterr().out.strip())
    assert path == models_dir() / "sweep-next-edit-0.5b" / name
    assert local_model_path("sweep-next-edit-0.5b") == str(path)


def test_model_info_says_a_sweep_gguf_is_a_next_edit_model(tiny_gguf: Path, tmp_path: Path, capsys):
    sweep = write_tiny_gguf(tmp_path / "sweep-next-edit-0.5b.q8_0.gguf", name="sweep-next-edit-0.5B")
    assert main(["model", "info", str(sweep), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["next_edit"] == "sweep-next-edit" and info["family"] == "qwen2.5-coder"
    assert main(["model", "info", str(sweep)]) == 0
    assert "next edit     yes: a next-edit model (sweep-next-edit format)" in capsys.readouterr().out
    assert main(["model", "info", str(tiny_gguf), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["next_edit"] is None


def test_model_info_reports_fim_context_quantization_and_kv_memory(tiny_gguf: Path, tmp_path: Path, capsys):
    assert main(["model", "info", str(tiny_gguf), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["architecture"], info["family"], info["context_tokens"], info["quantization"]) == (
        "qwen2",
        "qwen2.5-coder",
        32768,
        "F32",
    )
    assert info["repo_layout"] and info["fim_tokens"]["prefix"] == "<|fim_prefix|>"
    # 2 layers x 2 KV heads x (16 + 16) values x 2 bytes = 256 bytes a token
    assert info["kv_bytes"]["f16"] == {"8192": 8192 * 256, "16384": 16384 * 256, "32768": 32768 * 256}
    assert info["kv_bytes"]["q8_0"]["8192"] < info["kv_bytes"]["f16"]["8192"]
    assert info["fits"]["ram"].startswith("yes")
    assert main(["model", "info", str(tiny_gguf)]) == 0
    out = capsys.readouterr().out
    assert "FIM           yes: qwen2.5-coder" in out and "KV f16" in out and "fits in ram" in out
    chat = write_tiny_gguf(
        tmp_path / "chat.gguf", special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    )
    assert main(["model", "info", str(chat)]) == 1
    assert "FIM           no:" in capsys.readouterr().out


def test_the_session_names_the_pull_to_run_for_a_model_not_yet_pulled(tmp_path: Path, monkeypatch):
    # The server shows this message as it is (window/showMessage) and the CLI prints it.
    from engine import EngineError
    from lsp_server.session import Session

    monkeypatch.setenv("CODE_KB_MODELS", str(tmp_path / "models"))
    session = Session(Settings.load({"modelPath": "qwen2.5-coder-1.5b"}))
    with pytest.raises(EngineError) as caught:
        session.load_model()
    assert str(caught.value) == (
        "model qwen2.5-coder-1.5b is not downloaded yet; run: code-kb model pull qwen2.5-coder-1.5b"
    )
    assert session.completer is None


def test_a_file_larger_than_the_free_disk_is_refused_before_any_transfer(tmp_path: Path, hub: HubServer):
    remote = RemoteFile(f"{hub.url}/files/{Q4}", tmp_path / Q4, 1 << 60, None)  # an exbibyte
    with pytest.raises(DownloadError, match="GB free; free some space or set CODE_KB_MODELS"):
        download(remote)
    assert hub.file_requests() == [] and not remote.part.exists()


def test_two_pulls_of_one_file_do_not_write_it_at_once(tmp_path: Path, hub: HubServer, ggufs):
    import fcntl

    remote = RemoteFile(f"{hub.url}/files/{Q4}", tmp_path / Q4, len(ggufs[Q4]), None)
    with open(tmp_path / (Q4 + ".lock"), "w") as held:  # as a running pull holds it
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(DownloadError, match="another download of .* is running"):
            download(remote)
    assert hub.file_requests() == []
    assert download(remote).read_bytes() == ggufs[Q4]
    assert not (tmp_path / (Q4 + ".lock")).exists()


def test_pull_suggests_the_setting_that_picks_the_file_it_pulled(hub: HubServer, capsys):
    assert main(["model", "pull", "qwen2.5-coder-0.5b:Q4_K_M", "-q"]) == 0
    assert 'set model = "qwen2.5-coder-0.5b" in' in capsys.readouterr().err
    assert main(["model", "pull", "qwen2.5-coder-0.5b", "--quant", "Q8_0", "-q"]) == 0
    assert 'set model = "qwen2.5-coder-0.5b:Q8_0" in' in capsys.readouterr().err  # the bare name picks Q4_K_M
