"""README's set-up commands are the ones CI runs: keep them one and the same."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def setup_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Set-up", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    return [line for line in block.splitlines() if line.strip()]


def test_readme_has_two_setup_commands_and_ci_runs_both():
    commands = setup_commands()
    assert len(commands) == 2
    install, tests = commands
    assert "pip install torch==2.13.0 && pip install -e '.[dev]'" in install
    assert install.index("torch==2.13.0") < install.index(".[dev]")  # CPU torch before sentence-transformers
    assert "pytest" in tests
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert install in ci and tests in ci


def test_main_job_cursor_exists():
    install = setup_commands()[0]
    path, line, col = re.search(r"code-kb context (\S+):(\d+):(\d+)", install).groups()
    lines = (ROOT / path).read_text().split("\n")
    assert len(lines[int(line) - 1]) + 1 >= int(col)
