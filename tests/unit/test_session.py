"""The application core without a server or a subprocess: the tiny real GGUF, real indexes with the
hash embedder, and the path, secret and settings rules the server and the CLI share."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from engine import EngineConfig
from lsp_server.config import ServerConfig, Settings
from lsp_server.session import Buffer, Refused, Session
from retrieval import CodeIndex, IndexConfig
from tests.conftest import FIXTURES
from tests.fixtures.hash_embedder import HashEmbedder

CHECKOUT = "shop/checkout.py"


class Roots:
    """A real IndexSource: one CodeIndex per root, as the server's Indexes keeps them."""

    def __init__(self, *roots: Path) -> None:
        self.open = {r.resolve(): CodeIndex(r, IndexConfig(), embedder=HashEmbedder()) for r in roots}
        for index in self.open.values():
            index.reindex()

    def root_for(self, path: Path) -> Path | None:
        path = path.resolve()
        holders = [r for r in self.open if path == r or path.is_relative_to(r)]
        return max(holders, key=lambda r: len(r.parts)) if holders else None

    def searchable(self, root: Path | None) -> CodeIndex | None:
        return self.open.get(root) if root is not None else None

    def close(self) -> None:
        for index in self.open.values():
            index.close()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(FIXTURES / "tiny_repo", root)
    (root / ".env").write_text("API_TOKEN=sk-live-0123456789abcdef\n")
    (root / "shop" / "settings.py").symlink_to(root / ".env")
    return root


@pytest.fixture
def session(repo: Path, tiny_gguf: Path):
    roots = Roots(repo)
    settings = Settings(engine=EngineConfig(model_path=str(tiny_gguf), max_tokens=8, budget_tokens=1024))
    s = Session(settings, roots)
    s.load_model()
    yield s
    roots.close()


def test_a_file_reached_through_a_linked_workspace_is_placed_under_the_resolved_root(
    session: Session, repo: Path, tmp_path: Path
):
    link = tmp_path / "link"
    link.symlink_to(repo, target_is_directory=True)
    file = link / CHECKOUT
    place = session.place(Buffer(file, file.read_text()))
    assert (place.root, place.path, place.in_repository) == (repo.resolve(), CHECKOUT, True)
    cursor = session.cursor(Buffer(file, file.read_text()), file.read_text().index("return ") + 7)
    result = session.complete(cursor)
    assert result.prompt.parts and result.generation.n_prompt > 0
    assert session.status().last_completion is not None
    assert session.status().to_dict()["last_completion"]["prompt_tokens"] == result.generation.n_prompt


def test_a_file_linked_to_a_secret_is_refused_and_never_recorded(session: Session, repo: Path):
    linked = repo / "shop" / "settings.py"
    with pytest.raises(Refused, match="holds secrets"):
        session.place(Buffer(linked, "DEBUG = True\n"))
    assert session.edited(Buffer(linked, "DEBUG = True\nPASSWORD = 'hunter2'\n"), 5) is None
    checkout = repo / CHECKOUT
    prompt, _ = session.prompt(session.cursor(Buffer(checkout, checkout.read_text()), 0))
    assert "hunter2" not in prompt.text and "sk-live" not in prompt.text
    with pytest.raises(Refused, match="holds secrets"):  # a private key in the text, whatever the name
        session.place(Buffer(repo / "shop" / "keys.py", "K = '''-----BEGIN RSA PRIVATE KEY-----'''\n"))


def test_an_unsaved_buffer_completes_from_its_own_text_only(session: Session, repo: Path):
    session.edited(Buffer(repo / CHECKOUT, (repo / CHECKOUT).read_text()), 10)  # a recent edit elsewhere
    text = "def total(prices):\n    return sum(prices)\n\nprint(total("
    cursor = session.cursor(Buffer(None, text, "python", label="Untitled-1"), len(text))
    assert (cursor.place.root, cursor.place.path, cursor.place.in_repository) == (None, "Untitled-1", False)
    result = session.complete(cursor)
    assert {p.kind for p in result.prompt.parts} <= {"prefix", "suffix"}
    assert session.warm_up(Buffer(None, text, label="Untitled-1"), None) is None


def test_a_file_outside_every_root_gets_no_repository_context_and_feeds_none(
    session: Session, tmp_path: Path
):
    outside = tmp_path / "elsewhere.py"
    outside.write_text("import os\n")
    place = session.place(Buffer(outside, outside.read_text()))
    assert place.root is None and not place.in_repository and place.path == outside.as_posix()
    assert session.context_for(place) is None
    assert session.edited(Buffer(outside, "import os\nx = 1\n"), 12) is None
    assert session.recent_edits.snippets_for("other.py") == []
    assert session.warm_up(Buffer(outside, "import os\n"), None) is None


def test_paths_no_system_takes_offsets_outside_and_disabled_languages_are_refused(
    session: Session, repo: Path
):
    with pytest.raises(Refused, match="NUL"):
        session.place(Buffer(Path("/tmp/a\0b.py"), ""))
    with pytest.raises(Refused, match="longer than the system allows"):
        session.place(Buffer(Path("/" + "d/" * 3000 + "x.py"), ""))
    with pytest.raises(Refused, match="longer than the system allows"):
        session.place(Buffer(Path("/tmp/" + "n" * 300 + ".py"), ""))
    with pytest.raises(Refused, match="outside the document"):
        session.cursor(Buffer(repo / CHECKOUT, "abc"), 4)
    session.settings = dataclasses.replace(
        session.settings, server=ServerConfig(disabled_languages=("python",))
    )
    with pytest.raises(Refused, match="completions are off for python"):
        session.place(Buffer(repo / CHECKOUT, "x", "python"))


def test_settings_say_what_must_be_reloaded_and_keep_the_model_otherwise(session: Session):
    backend = session.completer.backend
    change = session.apply_settings(
        dataclasses.replace(
            session.settings,
            engine=dataclasses.replace(session.settings.engine, max_lines=3),
            server=ServerConfig(debounce_ms=10),
        )
    )
    assert (change.reload_model, change.reindex) == (False, False)
    assert session.completer.backend is backend and session.completer.config.max_lines == 3
    change = session.apply_settings(
        dataclasses.replace(session.settings, index=IndexConfig(deny_patterns=("*.sql",)))
    )
    assert (change.reload_model, change.reindex) == (False, True)
    change = session.apply_settings(
        dataclasses.replace(
            session.settings, engine=dataclasses.replace(session.settings.engine, budget_tokens=512)
        )
    )
    assert change.reload_model


def test_idle_work_follows_a_shown_completion_and_warms_only_repository_files(session: Session, repo: Path):
    checkout = repo / CHECKOUT
    buffer = Buffer(checkout, checkout.read_text())
    warm = session.warm_up(buffer, None)
    assert warm is not None
    import threading

    warm(threading.Event())
    cursor = session.cursor(buffer, buffer.source.index("return ") + 7)
    result = session.complete(cursor)
    follow = session.follow_up(cursor, dataclasses.replace(result, text="x"))
    assert follow is not None
    session.settings = dataclasses.replace(session.settings, server=ServerConfig(speculate=False, warm=False))
    assert session.follow_up(cursor, dataclasses.replace(result, text="x")) is None
    assert session.warm_up(buffer, None) is None
