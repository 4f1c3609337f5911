"""`code-kb next-edit`, run as users run it: a real index of the tiny repository, the tiny real GGUF
named as Sweep's next-edit model (its output is noise: the answer is a diff or nothing, with a
verdict, never an error), and the errors a user can meet."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from lsp_server.cli import main
from tests.fixtures.gguf_builder import write_tiny_gguf

EDIT_KEYS = {"start_line", "start_col", "end_line", "end_col", "text"}
RESULT_KEYS = {
    "path",
    "line",
    "col",
    "edits",
    "verdict",
    "prompt_tokens",
    "evaluated_tokens",
    "reused_tokens",
    "total_ms",
}
VERDICTS = {"edit", "unchanged", "undo", "max_tokens", "timeout", "cancelled"}
SUMMARY = re.compile(
    r"-- (edit|unchanged|undo|max_tokens|timeout|cancelled): \d+ edits; prompt \d+ tokens: "
    r"\d+ evaluated, \d+ reused"
)


@pytest.fixture(scope="module")
def sweep_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model under Sweep's 1.5B file name and GGUF name: recognised as a Sweep next-edit model."""
    folder = tmp_path_factory.mktemp("sweep")
    return write_tiny_gguf(folder / "sweep-next-edit-1.5b.q8_0.v2.gguf", name="sweep-next-edit-1.5B")


@pytest.fixture
def renamed(tiny_repo: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """shop/checkout.py with `region` renamed `zone` in the signature only (the uses not yet), indexed,
    and the file as it was before, kept outside the repository."""
    monkeypatch.chdir(tiny_repo)
    assert main(["reindex", ".", "-q"]) == 0
    file = tiny_repo / "shop" / "checkout.py"
    before = file.read_text()
    after = before.replace("cart: Cart, region: str", "cart: Cart, zone: str")
    assert after != before
    file.write_text(after)
    old = tiny_repo.parent / "checkout.before.py"
    old.write_text(before)
    return file, old


def test_next_edit_prints_a_unified_diff_or_nothing_with_a_verdict(renamed, sweep_gguf: Path, capsys):
    file, old = renamed
    capsys.readouterr()
    # line 6 is the signature: the cursor after `zone`
    status = main(
        [
            "next-edit",
            "shop/checkout.py:6:32",
            "--before",
            str(old),
            "--model",
            str(sweep_gguf),
            "--max-tokens",
            "48",
            "--no-reindex",
            "-q",
        ]
    )
    out, err = capsys.readouterr()
    assert status == 0
    assert SUMMARY.search(err), err
    if out:  # the noise model suggested something: a diff of this file
        assert out.startswith("--- a/shop/checkout.py\n+++ b/shop/checkout.py\n@@ ")
        assert "-- edit:" in err
    else:
        assert "-- edit:" not in err


def test_next_edit_json_is_well_formed(renamed, sweep_gguf: Path, capsys):
    file, old = renamed
    capsys.readouterr()
    assert (
        main(
            [
                "next-edit",
                "shop/checkout.py:7:13",
                "--before",
                str(old),
                "--model",
                str(sweep_gguf),
                "--max-tokens",
                "32",
                "--json",
                "--no-reindex",
                "-q",
            ]
        )
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert set(result) == RESULT_KEYS
    assert (result["path"], result["line"], result["col"]) == ("shop/checkout.py", 7, 13)
    assert result["verdict"] in VERDICTS
    assert result["prompt_tokens"] == result["evaluated_tokens"] + result["reused_tokens"] > 0
    assert result["total_ms"] > 0
    assert all(set(e) == EDIT_KEYS for e in result["edits"])
    assert (result["verdict"] == "edit") == bool(result["edits"])
    lines = file.read_text().split("\n")
    for e in result["edits"]:  # inside the file and inside the 21-line window
        assert 1 <= e["start_line"] <= e["end_line"] <= len(lines) and abs(e["start_line"] - 7) <= 10


def test_the_prompt_holds_the_change_and_the_repositorys_context(renamed, sweep_gguf: Path, capsys):
    """With -vv the predictor logs the prompt's layout: the recent change and related files are in it."""
    file, old = renamed
    capsys.readouterr()
    assert (
        main(
            [
                "next-edit",
                "shop/checkout.py:6:32",
                "--before",
                str(old),
                "--model",
                str(sweep_gguf),
                "--max-tokens",
                "8",
                "--no-reindex",
                "-q",
                "-vv",
            ]
        )
        == 0
    )
    err = capsys.readouterr().err
    found = re.search(r"next-edit prompt \d+ tokens \(budget \d+\): (\d+) related files, (\d+) changes", err)
    assert found, err
    assert int(found.group(2)) == 1  # the rename
    assert int(found.group(1)) >= 1  # shop/cart.py at least, from the index


def test_without_before_the_model_sees_no_change(renamed, sweep_gguf: Path, capsys):
    capsys.readouterr()
    assert (
        main(
            [
                "next-edit",
                "shop/checkout.py:6:1",
                "--model",
                str(sweep_gguf),
                "--max-tokens",
                "8",
                "--no-reindex",
                "-q",
            ]
        )
        == 0
    )
    assert "no --before given" in capsys.readouterr().err


def test_a_secret_file_gets_no_prompt(tiny_repo: Path, sweep_gguf: Path, monkeypatch, capsys):
    monkeypatch.chdir(tiny_repo)
    (tiny_repo / ".env").write_text("API_TOKEN=abc\n")
    before = tiny_repo.parent / "env.before"
    before.write_text("API_TOKEN=old\n")
    capsys.readouterr()
    assert main(["next-edit", ".env:1:1", "--before", str(before), "--model", str(sweep_gguf), "-q"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "code-kb builds no prompt for .env" in err


def test_a_before_text_holding_a_secret_gets_no_prompt(renamed, sweep_gguf: Path, tmp_path: Path, capsys):
    leaked = tmp_path / "before.py"
    leaked.write_text("-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----\n")
    capsys.readouterr()
    assert (
        main(
            [
                "next-edit",
                "shop/checkout.py:6:1",
                "--before",
                str(leaked),
                "--model",
                str(sweep_gguf),
                "--no-reindex",
                "-q",
            ]
        )
        == 2
    )
    assert "code-kb builds no prompt for shop/checkout.py: the --before text" in capsys.readouterr().err


def test_no_next_edit_model_configured_says_how(tiny_repo: Path, monkeypatch, capsys):
    monkeypatch.chdir(tiny_repo)
    capsys.readouterr()
    assert main(["next-edit", "shop/checkout.py:6:1", "--no-reindex", "-q"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("code-kb: error: no next-edit model configured")
    assert "code-kb model pull sweep-next-edit-1.5b" in err and "next_edit_model" in err


def test_the_config_files_next_edit_model_is_used(
    renamed, sweep_gguf: Path, tmp_path: Path, monkeypatch, capsys
):
    config = tmp_path / "config.toml"
    config.write_text(f'next_edit_model = "{sweep_gguf}"\n')
    monkeypatch.setenv("CODE_KB_CONFIG", str(config))
    file, old = renamed
    capsys.readouterr()
    assert (
        main(
            [
                "next-edit",
                "shop/checkout.py:6:1",
                "--before",
                str(old),
                "--max-tokens",
                "8",
                "--json",
                "--no-reindex",
                "-q",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["verdict"] in VERDICTS


def test_a_completion_model_is_refused_with_what_to_use(
    tiny_repo: Path, tiny_gguf: Path, monkeypatch, capsys
):
    monkeypatch.chdir(tiny_repo)
    capsys.readouterr()
    assert main(["next-edit", "shop/checkout.py:6:1", "--model", str(tiny_gguf), "--no-reindex", "-q"]) == 1
    err = capsys.readouterr().err
    assert (
        "tiny-qwen2.gguf is not a next-edit model: it is a completion model (qwen2.5-coder FIM tokens)" in err
    )
    assert "sweep-next-edit-1.5b" in err
    # A catalogue name of a completion model is refused before anything is looked up.
    assert (
        main(["next-edit", "shop/checkout.py:6:1", "--model", "qwen2.5-coder-1.5b", "--no-reindex", "-q"])
        == 1
    )
    err = capsys.readouterr().err
    assert "qwen2.5-coder-1.5b is a completion model" in err and "sweep-next-edit-0.5b" in err


def test_format_names_the_format_of_a_gguf_whose_name_does_not_tell(renamed, tiny_gguf: Path, capsys):
    file, old = renamed
    capsys.readouterr()
    assert (
        main(
            [
                "next-edit",
                "shop/checkout.py:6:1",
                "--before",
                str(old),
                "--model",
                str(tiny_gguf),
                "--format",
                "sweep",
                "--max-tokens",
                "8",
                "--json",
                "--no-reindex",
                "-q",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["verdict"] in VERDICTS


def test_the_diff_is_the_files_unified_diff_of_the_suggested_edits():
    from engine.next_edit import TextEdit, apply_edits
    from lsp_server.cli.next_edit import unified_diff

    source = "def f(zone):\n    return region + region\n"
    at = source.index("region")
    edits = [TextEdit(at, at + 6, "zone"), TextEdit(at + 9, at + 15, "zone")]
    diff = unified_diff("a.py", source, apply_edits(source, edits))
    assert diff == (
        "--- a/a.py\n+++ b/a.py\n@@ -1,2 +1,2 @@\n def f(zone):\n-    return region + region\n"
        "+    return zone + zone\n"
    )
    assert unified_diff("a.py", source, source) == ""
    assert unified_diff("a.py", "x", "y").endswith("+y\n\\ No newline at end of file\n")
