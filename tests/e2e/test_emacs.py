"""README.md's eglot snippet in real Emacs (batch mode) against the real `code-kb serve` and the tiny
model: Debian's emacs-nox with elpa-eglot. tests/e2e/emacs_scenario.el plays the session and writes JSON:
completions and the status and reindex commands; the next-edit command against the server's test hook
(CODE_KB_TEST_NEXT_EDIT in its environment, which Emacs passes on), as test_next_edit.py follows it
from a Python client.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from .editors import ROOT, emacs_binary, missing, version_of

SCENARIO = Path(__file__).with_name("emacs_scenario.el")
README_MODEL = '"~/models/qwen2.5-coder-1.5b-q4_k_m.gguf"'
LINE, COLUMN = 13, 11  # shop/checkout.py, 0-based: after "    return "
# An astral character (two UTF-16 units) and an accented one before the first "total", on its line.
LABELS = 'label = "😀é"; total = price * qty\nprint(label, total)\n'


def readme_snippet() -> str:
    editors = (ROOT / "README.md").read_text().split("## Editors", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```elisp\n(.*?)```", editors, re.S)
    assert len(blocks) == 1, "README's Editors section should hold one elisp block"
    return blocks[0]


def elisp_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def run_emacs(
    tmp_path: Path, tiny_repo: Path, options: str, settings: dict[str, str], env: dict[str, str]
) -> dict[str, Any]:
    """README's snippet, its model replaced by `options`, loaded into batch Emacs; the scenario run
    with `settings` (elisp variable -> elisp expression); its JSON, the server's log under "server_log"."""
    emacs = emacs_binary()
    if (
        emacs is None
        or subprocess.run(
            [str(emacs), "--batch", "--eval", "(require 'eglot)"], capture_output=True, timeout=60
        ).returncode
        != 0
    ):
        missing("Emacs with eglot", "`apt-get install emacs-nox elpa-eglot` (Emacs 29+ has eglot built in)")

    # The snippet as a user pastes it; `code-kb` on PATH is this checkout's.
    snippet = readme_snippet()
    assert snippet.count(README_MODEL) == 1
    (tmp_path / "snippet.el").write_text(snippet.replace(README_MODEL, options))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "code-kb"
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} -m lsp_server "$@"\n')
    wrapper.chmod(0o755)
    (tiny_repo / ".git").mkdir()  # a project root for project.el, as in a real checkout

    out = tmp_path / "result.json"
    prelude = tmp_path / "prelude.el"
    prelude.write_text(
        "\n".join(
            [
                f"(setq code-kb-test-out {elisp_string(str(out))})",
                *(f"(setq {name} {value})" for name, value in settings.items()),
                "(require 'eglot)",
                f"(load {elisp_string(str(tmp_path / 'snippet.el'))} nil t)",
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    home = tmp_path / "home"
    home.mkdir()
    env = dict(env, HOME=str(home), PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}")
    proc = subprocess.run(
        [str(emacs), "--batch", "-l", str(prelude), "-l", str(SCENARIO)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.is_file(), f"emacs exited {proc.returncode} without a result\n{proc.stdout}\n{proc.stderr}"
    r: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    log = r.get("server_log", "")  # the server's stderr, for a failure to show
    assert "error" not in r, f"{r['error']}\nsteps: {r['steps']}\n{proc.stderr[-6000:]}\n{log[-6000:]}"
    major, minor, _ = version_of(emacs) or (0, 0, 0)
    assert r["emacs"] == f"{major}.{minor}"  # the Emacs found is the one that ran (eglot: r["eglot"])
    assert r["server_name"] == "code-kb"
    return r


def test_eglot_snippet_in_real_emacs(tiny_repo: Path, tiny_gguf: Path, tmp_path: Path):
    # The suite's short generations: 64 random tokens may end at the time limit on a busy machine.
    options = f"{elisp_string(str(tiny_gguf))} :maxTokens 16"
    settings = {
        "code-kb-test-file": elisp_string(str(tiny_repo / "shop" / "checkout.py")),
        "code-kb-test-line": str(LINE),
        "code-kb-test-column": str(COLUMN),
    }
    r = run_emacs(tmp_path, tiny_repo, options, settings, dict(os.environ))
    log = r.pop("server_log", "")

    assert r["mode"] == "python-mode" and r["managed"] is True
    assert r["inline_provider"] is True

    # Completion and inline completion at the cursor: the greedy completion first, the same text.
    assert r["completion"] and r["inline"] and r["completion"][0]["new_text"] == r["inline"][0], log[-6000:]
    # eglot's completion-at-point offers the server's items and applies the chosen one's edit.
    assert r["capf_candidates"] and r["capf_candidates"][0] == r["completion"][0]["label"]
    assert r["line_after_capf"] == "    return " + r["completion"][0]["new_text"]

    # The snippet's commands reach the server.
    assert r["model_loaded"] is True and r["roots"] == [str(tiny_repo)]
    assert ":model" in r["status_buffer"]
    assert "code-kb:" in r["reindex_message"] and str(tiny_repo) in r["reindex_message"]
    assert r["shut_down"] is True


def test_next_edit_command_in_real_emacs(tiny_repo: Path, tiny_gguf: Path, sweep_gguf: Path, tmp_path: Path):
    labels = tiny_repo / "shop" / "labels.py"
    labels.write_text(LABELS, encoding="utf-8")
    plain = tiny_repo / "shop" / "names.py"
    plain.write_text('NAMES = ["apple", "pear"]\n')  # nothing for the test hook to replace
    options = f"{elisp_string(str(tiny_gguf))} :maxTokens 16 :nextEditModel {elisp_string(str(sweep_gguf))}"
    settings = {
        "code-kb-test-scenario": "#'code-kb-test-next-edit-run",
        "code-kb-test-file": elisp_string(str(labels)),
        "code-kb-test-plain-file": elisp_string(str(plain)),
    }
    env = {k: v for k, v in os.environ.items() if k != "CODE_KB_MODEL"}
    env["CODE_KB_TEST_NEXT_EDIT"] = json.dumps({"find": "total", "text": "grand_total"})
    r = run_emacs(tmp_path, tiny_repo, options, settings, env)
    log = r.pop("server_log", "")

    # Outside an eglot buffer: a user-error that says what to do.
    assert "not connected to code-kb" in r["not_connected"] and "M-x eglot" in r["not_connected"]

    # Applied: the change typed just before reached the server first (else it answers no edit for a
    # version it has not seen); the preview struck out the first "total", after the astral character
    # (so eglot converted the UTF-16 range), and showed "grand_total"; RET replaced it, point followed.
    assert r["pending"] is True
    typed = LABELS.replace("total)", "total, price)")
    at = typed.index("total")  # Emacs positions count characters from 1: at + 1
    first, second = r["prompts"]
    assert "RET" in first["prompt"] and "dismisses" in first["prompt"]
    assert first["previews"] == [
        {"start": at + 1, "removed": "total", "added": "grand_total", "struck": True}
    ]
    applied = typed.replace("total", "grand_total", 1)
    assert r["text_applied"] == applied, log[-6000:]
    assert r["point_applied"] == at + len("grand_total") + 1
    assert r["previews_left_applied"] == []
    assert r["applied"] == {"accepted": True}, log[-6000:]  # codeKb.acceptNextEdit's answer

    # Dismissed: the hook's next edit (the "total" inside "grand_total") shown, then nothing changed.
    at = applied.index("total")
    assert second["previews"] == [
        {"start": at + 1, "removed": "total", "added": "grand_total", "struck": True}
    ]
    assert r["dismissed"] == "code-kb: next edit dismissed"
    assert r["text_dismissed"] == applied
    assert r["point_dismissed"] == r["point_before_dismissed"] == len(applied) + 1
    assert r["previews_left_dismissed"] == []

    # No edit: said so, no prompt (a third would be in r["prompts"]), the buffer as it was.
    assert r["plain_managed"] is True
    assert r["none"] == "code-kb: no next edit here"
    assert r["plain_unchanged"] is True

    # The server counted the two suggestions, both shown (didShowInlineEdit) and one accepted.
    status = r["next_edit_status"]
    assert (status["suggested"], status["shown"], status["accepted"]) == (2, 2, 1), (status, log[-6000:])
