"""The VS Code extension (editors/vscode) in a real VS Code: code-server from npm, driven through
playwright-core by Debian's headless chromium, against this repository's server and the tiny model.

Needs node/npm, chromium and ripgrep (code-server's install seeds its rg from it). Without them the
tests skip on a developer machine and fail under CI (CI=true). code-server is installed once into
$CODE_KB_TEST_CACHE (default ~/.cache/code-kb-tests); the extension's npm packages into
editors/vscode/node_modules. Screenshots and the browser's record go to editors/vscode/test/artifacts/.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import pytest

REPO = Path(__file__).resolve().parents[2]
EXTENSION = REPO / "editors" / "vscode"
ARTIFACTS = EXTENSION / "test" / "artifacts"
CODE_SERVER_VERSION = "4.100.3"  # VS Code 1.100.3; the newest code-server that runs on Node 20
CACHE = Path(os.environ.get("CODE_KB_TEST_CACHE") or Path.home() / ".cache" / "code-kb-tests")
UNDER_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing(reason: str) -> NoReturn:
    """A tool the tests need is missing: skip on a developer machine, fail under CI."""
    if UNDER_CI:
        pytest.fail(reason)
    pytest.skip(reason)


def require(tool: str, *alternatives: str) -> str:
    """The path of a tool (or of the first alternative name found)."""
    for name in (tool, *alternatives):
        if path := shutil.which(name):
            return path
    missing(
        f"{tool} is not installed (VS Code end-to-end tests need node/npm, chromium and ripgrep; see .ci/run)"
    )


def run(cmd: list[str], cwd: Path, timeout_s: float, env: dict[str, str] | None = None) -> str:
    """Runs a command; on failure the test fails with its output."""
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout_s)
    if done.returncode != 0:
        pytest.fail(
            f"{' '.join(cmd)} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    return done.stdout


def require_node() -> None:
    """node 20 or newer (code-server 4.100.3 needs 20) and npm."""
    node = require("node")
    require("npm")
    major = int(run([node, "-p", "process.versions.node.split('.')[0]"], REPO, 30).strip())
    if major < 20:
        missing(f"node {major} is too old: code-server {CODE_SERVER_VERSION} needs Node 20 (see .ci/run)")


@pytest.fixture(scope="session")
def chromium() -> str:
    return require("chromium", "chromium-browser")


@pytest.fixture(scope="session")
def npm_packages() -> Path:
    """editors/vscode/node_modules, installed with `npm ci` when package-lock.json changed since the last time."""
    require_node()
    npm = require("npm")
    lock_hash = hashlib.sha256((EXTENSION / "package-lock.json").read_bytes()).hexdigest()
    stamp = EXTENSION / "node_modules" / ".code-kb-lock-sha256"
    if not (stamp.is_file() and stamp.read_text() == lock_hash):
        run([npm, "ci", "--no-audit", "--no-fund"], EXTENSION, 600)
        stamp.write_text(lock_hash)
    return EXTENSION / "node_modules"


@pytest.fixture(scope="session")
def vsix(npm_packages: Path) -> Path:
    """The packaged extension: `npm run package` (esbuild bundle, then `vsce package`, offline)."""
    run([shutil.which("npm") or "npm", "run", "package"], EXTENSION, 300)
    return EXTENSION / "code-kb.vsix"


@pytest.fixture(scope="session")
def code_server() -> Path:
    """code-server's executable, installed into the test cache on first use (about a minute)."""
    require_node()
    require("rg")
    if not (CACHE / f"code-server-{CODE_SERVER_VERSION}").is_dir():
        require("make")  # node-pty compiles with node-gyp
        require("g++")
    CACHE.mkdir(parents=True, exist_ok=True)
    out = run(
        ["bash", str(EXTENSION / "test" / "install-code-server.sh"), str(CACHE), CODE_SERVER_VERSION],
        REPO,
        900,
    )
    return Path(out.strip().splitlines()[-1])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"code-server exited with status {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    pytest.fail(f"code-server did not answer {url}/healthz within {timeout_s:.0f} s")


def sent_messages(log_file: Path) -> list[dict]:
    """The JSON-RPC messages the server sent, from its log (pygls logs each at INFO: "Sending data: {...}")."""
    marker = "Sending data: "
    messages = []
    for line in log_file.read_text(encoding="utf-8", errors="replace").splitlines():
        if marker in line:
            try:
                messages.append(json.loads(line.split(marker, 1)[1]))
            except json.JSONDecodeError:
                continue  # a message logged over several lines; not one we look for
    return messages


@contextmanager
def running_code_server(
    chromium: str,
    tmp_path: Path,
    repo: Path,
    model: Path,
    vsix: Path,
    code_server: Path,
    more_settings: dict | None = None,
    more_env: dict[str, str] | None = None,
) -> Iterator[dict]:
    """code-server with the extension installed, serving `repo`, with user settings that start this
    checkout's server on `model` (plus `more_settings`), the server's environment plus `more_env`."""
    home = tmp_path / "vscode"
    user_data, extensions, xdg = home / "user-data", home / "extensions", home / "xdg"
    for d in (user_data / "User", extensions, xdg / "config", xdg / "data"):
        d.mkdir(parents=True)
    port = free_port()
    config = home / "config.yaml"
    config.write_text(f"bind-addr: 127.0.0.1:{port}\nauth: none\ncert: false\n")
    server_log = tmp_path / "code-kb-server.log"
    settings = {
        "codeKb.serverPath": sys.executable,
        # -v: debug logging, so a failure's log shows each request the server received.
        "codeKb.serverArgs": ["-m", "lsp_server", "serve", "-v", "--log-file", str(server_log)],
        "codeKb.modelPath": str(model),
        "codeKb.debounceMs": 10,
        "codeKb.maxTokens": 16,
        # One line: the scenario checks the accepted line against the ghost text, and the tiny
        # model's noise after "return price" may run onto a second line.
        "codeKb.maxLines": 1,
        "editor.wordBasedSuggestions": "off",  # the completion widget then holds only code-kb's items
        "workbench.startupEditor": "none",
        "workbench.tips.enabled": False,
        "telemetry.telemetryLevel": "off",
        "update.mode": "none",
        "extensions.autoCheckUpdates": False,
        "extensions.autoUpdate": False,
        "security.workspace.trust.enabled": False,
        "chat.disableAIFeatures": True,
        **(more_settings or {}),
    }
    (user_data / "User" / "settings.json").write_text(json.dumps(settings, indent=2))
    env = {
        **os.environ,
        "XDG_CONFIG_HOME": str(xdg / "config"),
        "XDG_DATA_HOME": str(xdg / "data"),
        **(more_env or {}),
    }
    common = [
        str(code_server),
        "--config",
        str(config),
        "--user-data-dir",
        str(user_data),
        "--extensions-dir",
        str(extensions),
    ]
    run([*common, "--install-extension", str(vsix)], tmp_path, 120, env)
    proc = subprocess.Popen(
        [
            *common,
            "--bind-addr",
            f"127.0.0.1:{port}",
            "--auth",
            "none",
            "--disable-telemetry",
            "--disable-update-check",
            "--disable-workspace-trust",
            str(repo),
        ],
        cwd=tmp_path,
        env=env,
        stdout=(home / "code-server.log").open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, proc)
        yield {
            "url": f"{url}/?folder={repo}",
            "chromium": chromium,
            "workspace": repo,
            "server_log": server_log,
        }
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # code-server, its extension host and our server
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture
def vscode(
    chromium: str, tmp_path: Path, tiny_repo: Path, tiny_gguf: Path, vsix: Path, code_server: Path
) -> Iterator[dict]:
    """code-server on a copy of the tiny repository and the tiny model."""
    with running_code_server(chromium, tmp_path, tiny_repo, tiny_gguf, vsix, code_server) as running:
        yield running


def test_vscode_extension_lints_and_passes_its_unit_tests(npm_packages: Path) -> None:
    npm = shutil.which("npm") or "npm"
    run([npm, "run", "lint"], EXTENSION, 300)
    out = run([npm, "test"], EXTENSION, 300)
    assert "# fail 0" in out


def drive(vscode: dict, scenario: str, capsys: pytest.CaptureFixture) -> tuple[dict, list[dict], str]:
    """Runs test/e2e.mjs's `scenario` in the browser: its record, the messages the server sent, and
    the server's log. Fails with the driver's output and the log's tail if the browser run failed."""
    out = ARTIFACTS / scenario
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    started = time.monotonic()
    driver = subprocess.Popen(
        [
            shutil.which("node") or "node",
            str(EXTENSION / "test" / "e2e.mjs"),
            "--url",
            vscode["url"],
            "--chromium",
            vscode["chromium"],
            "--out",
            str(out),
            "--scenario",
            scenario,
            "--saved-file",
            str(vscode["workspace"] / "shop" / "checkout.py"),
        ],
        cwd=EXTENSION,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = driver.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(driver.pid, signal.SIGKILL)  # node and the chromium it started
        output, _ = driver.communicate()
    with capsys.disabled():
        print(
            f"\nVS Code e2e ({scenario}): {time.monotonic() - started:.1f} s; screenshots and result.json in {out}"
        )
    record_file = out / "result.json"
    record = json.loads(record_file.read_text()) if record_file.is_file() else {}
    server_log = vscode["server_log"]
    log_text = server_log.read_text(errors="replace") if server_log.is_file() else "(no server log)"
    assert driver.returncode == 0 and "error" not in record, (
        f"the browser run failed: {record.get('error')}\n--- driver ---\n{output[-4000:]}\n"
        f"--- server log (tail) ---\n{log_text[-4000:]}"
    )
    return record, sent_messages(server_log), log_text


def test_vscode_shows_code_kb_ghost_text_and_completion_items(
    vscode: dict, capsys: pytest.CaptureFixture
) -> None:
    record, sent, _ = drive(vscode, "completion", capsys)

    # The status bar showed indexing, then the tiny model once the index was ready, and a latency
    # after completions.
    assert any("indexing" in t for t in record["status_bar_seen"]), record["status_bar_seen"]
    assert "code-kb tiny qwen2" in record["status_bar_ready"]
    assert record["status_bar_after"].endswith(" ms")

    # The ghost text came from code-kb: the server answered textDocument/inlineCompletion with it.
    ghost = "\n".join([record["ghost_inline"], *record["ghost_below"]])
    assert ghost.strip()
    inserts = [
        item["insertText"]
        for m in sent
        if isinstance(m.get("result"), dict)
        for item in m["result"].get("items", [])
        if "insertText" in item
    ]
    assert inserts, "the server never answered an inline completion with text"
    assert any(i.rstrip() == ghost.rstrip() for i in inserts), (ghost, inserts[-5:])

    # Tab accepted it: the saved file has the typed text followed by the suggestion.
    # (split at newlines only: splitlines() also splits at the separators the tiny model may emit)
    line_14 = (vscode["workspace"] / "shop" / "checkout.py").read_text().split("\n")[13]
    assert record["line_typed"].rstrip() == "    return price"
    assert line_14 == record["line_accepted"] == "    return price" + record["ghost_inline"]

    # The completion widget listed the server's items, the best one first, with its detail.
    labels = [r["label"] for r in record["completion_rows"]]
    served = [
        item["label"]
        for m in sent
        if isinstance(m.get("result"), dict) and m["result"].get("items")
        for item in m["result"]["items"]
        if "label" in item
    ]
    assert labels and labels[0] in served, (labels, served[-5:])
    focused = [r for r in record["completion_rows"] if r["focused"]]
    assert focused and "code-kb" in focused[0]["detail"] + focused[0]["aria"]

    # Toggling python off reached the server as workspace/didChangeConfiguration: the status it
    # answered while python was off lists it, and Show Status displayed that answer.
    statuses = [m["result"] for m in sent if isinstance(m.get("result"), dict) and "scheduler" in m["result"]]
    assert any(s["settings"]["disabled_languages"] == ["python"] for s in statuses)
    assert '"version"' in record["status_document"] and '"model"' in record["status_document"]
    assert record["status_bar_off"].endswith("code-kb: off")
    assert (
        '"path": "shop/checkout.py"' in record["context_document"]
        and '"prompt_tokens"' in record["context_document"]
    )
    assert "code-kb: reindexed" in record["reindex_message"]


# The server's test hook (lsp_server/server.py): the first edit of the list whose text is in the
# document. Line 7 is edited, away from the cursor, until that is done; then line 13 gets an append.
PREVIEW_FIND, PREVIEW_TEXT = (
    "cart.total(region, coupon_percent)",
    "cart.total(region, coupon_percent, rounding=2)",
)
APPEND_FIND, APPEND_TEXT = "min(years * 2, 20)", "min(years * 2, 20) + 1"


@pytest.fixture
def vscode_next_edit(
    chromium: str,
    tmp_path: Path,
    tiny_repo: Path,
    tiny_gguf: Path,
    sweep_gguf: Path,
    vsix: Path,
    code_server: Path,
) -> Iterator[dict]:
    """code-server whose server has a next-edit model and the next-edit test hook."""
    hook = [{"find": PREVIEW_FIND, "text": PREVIEW_TEXT}, {"find": APPEND_FIND, "text": APPEND_TEXT}]
    with running_code_server(
        chromium,
        tmp_path,
        tiny_repo,
        tiny_gguf,
        vsix,
        code_server,
        more_settings={"codeKb.nextEditModel": str(sweep_gguf), "codeKb.nextEditDelayMs": 300},
        more_env={"CODE_KB_TEST_NEXT_EDIT": json.dumps(hook)},
    ) as running:
        yield running


def test_vscode_previews_jumps_to_applies_and_dismisses_next_edits(
    vscode_next_edit: dict, capsys: pytest.CaptureFixture
) -> None:
    record, sent, log_text = drive(vscode_next_edit, "next-edit", capsys)
    checkout = vscode_next_edit["workspace"] / "shop" / "checkout.py"
    original = (REPO / "tests" / "fixtures" / "tiny_repo" / "shop" / "checkout.py").read_text().splitlines()

    # The status bar said a next-edit model was loaded.
    assert "next edit" in record["status_bar_ready"], record["status_bar_seen"]

    # A pause after typing asked for a next edit; the edit of line 7 was previewed in place: the
    # text it removes struck through, the text it adds beside it, a mark in the gutter.
    for seen in (record["preview_after_pause"], record["preview_shown"], record["preview_command"]):
        assert seen["struck"] == PREVIEW_FIND and seen["added"] == PREVIEW_TEXT and seen["gutter"] >= 1, seen
    assert record["lines_before"][6] == original[6]

    # Escape dismissed it and changed nothing.
    assert record["preview_dismissed"] == {"struck": "", "added": "", "gutter": 0}
    assert record["lines_dismissed"] == record["lines_before"]

    # Tab jumped to the edit's start (line 7, after "    total = "), the preview still shown ...
    assert record["cursor_before_jump"]["line"] == 14
    assert record["cursor_after_jump"] == {"line": 7, "column": len("    total = ") + 1}
    assert record["preview_after_jump"]["struck"] == PREVIEW_FIND
    assert record["lines_after_jump"] == record["lines_before"]
    # ... and Tab again applied it, the cursor after the new text.
    assert record["lines_applied"][6] == original[6].replace(PREVIEW_FIND, PREVIEW_TEXT)
    assert record["cursor_after_apply"] == {"line": 7, "column": len("    total = " + PREVIEW_TEXT) + 1}

    # With the cursor on line 13 before the edit, the append was ghost text, accepted with Tab.
    assert record["next_edit_ghost"] == " + 1"
    assert record["lines_ghost_accepted"][12] == original[12].replace(APPEND_FIND, APPEND_TEXT)

    # What was saved: both edits and the typed text, nothing else.
    expected = list(original)
    expected[6] = expected[6].replace(PREVIEW_FIND, PREVIEW_TEXT)
    expected[12] = expected[12].replace(APPEND_FIND, APPEND_TEXT)
    expected[13] = "    return price"
    assert checkout.read_text().splitlines() == expected

    # The server heard both: each shown edit reported (didShowInlineEdit), each taken one accepted.
    answers = [m["result"] for m in sent if isinstance(m.get("result"), dict) and "edits" in m["result"]]
    assert any(a["edits"] for a in answers)
    assert log_text.count("next edit shown in shop/checkout.py") >= 2
    accepted = [m["result"] for m in sent if isinstance(m.get("result"), dict) and "accepted" in m["result"]]
    assert accepted.count({"accepted": True}) == 2, accepted
