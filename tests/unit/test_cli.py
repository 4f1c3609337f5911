"""The code-kb command, run as users run it: real index, real embedding model, tiny real GGUF."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lsp_server.cli import main

CONTEXT_KEYS = {"path", "line", "col", "budget_tokens", "prompt_tokens", "template", "parts"}
PART_KEYS = {"kind", "reason", "path", "start_line", "end_line", "text", "tokens"}
# shop/checkout.py line 14 is "    return ": the cursor sits after it (1-based column 12).
CURSOR = "shop/checkout.py:14:12"


@pytest.fixture
def indexed_repo(tiny_repo: Path, monkeypatch) -> Path:
    monkeypatch.chdir(tiny_repo)
    assert main(["reindex", ".", "-q"]) == 0
    return tiny_repo


def test_reindex_reports_and_is_incremental(indexed_repo: Path, capsys):
    capsys.readouterr()
    assert main(["reindex", str(indexed_repo)]) == 0
    err = capsys.readouterr().err
    assert "7 files (0 changed, 0 removed)" in err and "0 embedded" in err
    assert (indexed_repo / ".code-kb" / "vectors.faiss").is_file()


def test_context_json_shape_and_retrieved_parts(indexed_repo: Path, tiny_gguf: Path, capsys):
    capsys.readouterr()
    assert main(["context", CURSOR, "--json", "--model", str(tiny_gguf), "--budget", "2000", "-q"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) == CONTEXT_KEYS
    assert (result["path"], result["line"], result["col"]) == ("shop/checkout.py", 14, 12)
    assert result["template"] == "qwen2.5-coder" and result["budget_tokens"] == 2000
    assert 0 < result["prompt_tokens"] <= 2000
    parts = result["parts"]
    assert all(set(p) == PART_KEYS for p in parts)
    assert [p["kind"] for p in parts][-2:] == ["prefix", "suffix"]
    snippets = [p for p in parts if p["kind"] == "snippet"]
    assert snippets and all(p["path"] != "shop/checkout.py" for p in snippets)
    assert "shop/pricing.py" in {p["path"] for p in snippets}
    assert sum(p["tokens"] for p in parts) < result["prompt_tokens"]  # markers and headers count too
    prefix = parts[-2]
    assert prefix["end_line"] == 14 and prefix["text"].endswith("    return ")
    pricing = next(p for p in snippets if p["path"] == "shop/pricing.py")
    lines = (indexed_repo / "shop/pricing.py").read_text().split("\n")
    assert lines[pricing["start_line"] - 1] == pricing["text"].split("\n")[0]


def test_context_batch_keeps_order_and_uses_buffers(
    indexed_repo: Path, tiny_gguf: Path, capsys, tmp_path: Path
):
    unsaved = (
        indexed_repo / "shop/cart.py"
    ).read_text() + "\n    def unsaved_method(self):\n        return \n"
    requests = [
        {"path": "shop/checkout.py", "line": 14, "col": 12},
        {"path": "shop/cart.py", "line": unsaved.count("\n"), "col": 16, "buffer": unsaved},
        {"path": "shop/checkout.py", "line": 999, "col": 1},
        {"path": "shop/inventory.py", "line": 1, "col": 1},
    ]
    batch = tmp_path / "requests.jsonl"
    batch.write_text("\n".join(json.dumps(r) for r in requests) + "\n")
    capsys.readouterr()
    status = main(["context", "--batch", str(batch), "--model", str(tiny_gguf), "-q"])
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert status == 1  # one request was bad
    assert [x["path"] for x in lines] == [r["path"] for r in requests]
    assert set(lines[0]) == CONTEXT_KEYS and set(lines[1]) == CONTEXT_KEYS and set(lines[3]) == CONTEXT_KEYS
    assert "line 999 is outside the file" in lines[2]["error"]
    assert "unsaved_method" in next(p for p in lines[1]["parts"] if p["kind"] == "prefix")["text"]


def test_complete_prints_the_models_completion(indexed_repo: Path, tiny_gguf: Path, capsys):
    capsys.readouterr()
    assert main(["complete", CURSOR, "--model", str(tiny_gguf), "--max-tokens", "12", "--json", "-q"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["text"] and 0 < result["generated_tokens"] <= 12
    assert result["prompt_tokens"] == result["evaluated_tokens"] + result["reused_tokens"]


def test_errors_are_one_line_with_exit_status(indexed_repo: Path, capsys):
    assert main(["complete", CURSOR, "-q"]) == 1
    assert "code-kb: error: no model configured" in capsys.readouterr().err
    assert main(["context", "shop/checkout.py:14", "-q"]) == 2
    assert "expected PATH:LINE:COL" in capsys.readouterr().err
    assert main(["complete", CURSOR, "--model", "nope.gguf", "-q"]) == 1
    assert "model file not found: nope.gguf" in capsys.readouterr().err


def test_console_script_and_module_entry_point(indexed_repo: Path):
    for command in (["code-kb"], [sys.executable, "-m", "lsp_server"]):
        out = subprocess.run(command + ["--version"], capture_output=True, text=True, check=True)
        assert out.stdout.startswith("code-kb ")
    out = subprocess.run(
        ["code-kb", "context", CURSOR, "--json", "-q"],
        capture_output=True,
        text=True,
        cwd=indexed_repo,
        check=True,
    )
    result = json.loads(out.stdout)
    assert result["prompt_tokens"] > 0 and "token counts are estimates" in out.stderr


def test_search_ranks_chunks_and_status_describes_the_index(indexed_repo: Path, capsys):
    capsys.readouterr()
    assert main(["search", "reduce a price by a percentage discount", "-k", "3", "--json", "-q"]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert len(hits) == 3 and hits[0]["path"] == "shop/pricing.py" and hits[0]["name"] == "apply_discount"
    assert hits[0]["score"] >= hits[1]["score"] >= hits[2]["score"]
    assert main(["search", "inventory restock", "--no-reindex"]) == 0
    assert " shop/inventory.py:" in capsys.readouterr().out
    assert main(["status", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    # The key follows the backend auto chose on this machine (int8 vectors have their own).
    model = (
        "all-MiniLM-L6-v2@128+int8" if info["embedding_backend"] == "onnx-int8" else "all-MiniLM-L6-v2@128"
    )
    assert (info["files"], info["embedding_model"]) == (7, model)
    assert (
        info["embedding_backend"] in ("torch", "onnx", "onnx-int8", "openvino")
        and info["embedding_backend_reason"]
    )
    assert info["chunks"] == info["vectors"] > 0 and info["disk_bytes"] > 0 and info["updated_at"]
    assert main(["status", str(indexed_repo / "docs")]) == 1
    assert "no index at" in capsys.readouterr().err
