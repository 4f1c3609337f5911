"""The application core without a server or a subprocess: the tiny real GGUF, real indexes with the
hash embedder, and the path, secret and settings rules the server and the CLI share."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from engine import EngineConfig, EngineError
from engine.config import NextEditConfig
from engine.next_edit import TextEdit
from lsp_server.config import ServerConfig, Settings
from lsp_server.next_edits import GB, MemoryNeed, NextEditMemoryError, check_memory
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


# -- next edits -------------------------------------------------------------------------------------


@pytest.fixture
def nes(repo: Path, tiny_gguf: Path, sweep_gguf: Path):
    roots = Roots(repo)
    settings = Settings(
        engine=EngineConfig(model_path=str(tiny_gguf), max_tokens=8, budget_tokens=1024),
        next_edit=NextEditConfig(model_path=str(sweep_gguf), budget_tokens=1024, max_tokens=48),
    )
    s = Session(settings, roots)
    s.load_model()
    s.load_next_edit_model()
    yield s
    roots.close()


def type_into(session: Session, file: Path, text: str, at: str, typed: str) -> str:
    """Open `file` with `text`, type `typed` after `at` key by key; the text after."""
    session.opened(Buffer(file, text))
    offset = text.index(at) + len(at)
    for ch in typed:
        text = text[:offset] + ch + text[offset:]
        offset += 1
        session.edited(Buffer(file, text), offset)
    return text


def test_a_next_edit_is_predicted_from_the_history_and_reported(nes: Session, repo: Path, sweep_gguf: Path):
    checkout = repo / CHECKOUT
    text = type_into(nes, checkout, checkout.read_text(), "    total", "_due")
    assert [c.path for c in nes.next_edits.history.changes()] == [CHECKOUT]
    cursor = nes.cursor(Buffer(checkout, text), text.index("total_due") + 9)
    result = nes.next_edit(cursor)
    predictor = nes.next_edits.predictor
    assert predictor is not None and predictor.last is not None
    last = predictor.last
    assert result is None or result is last
    assert (result is not None) == (last.verdict == "edit")
    assert f"<|file_sep|>{CHECKOUT}.diff\noriginal:\n" in last.prompt.text
    assert f"<|file_sep|>current/{CHECKOUT}\n" in last.prompt.text and "total_due =" in last.prompt.text
    for edit in last.edits:
        assert last.window.start <= edit.start <= edit.end <= last.window.end <= len(text)
    report = nes.status().to_dict()
    model = report["next_edit"]
    assert model["loaded"] and model["name"] == "sweep-next-edit-1.5B" and model["path"] == str(sweep_gguf)
    assert model["memory_bytes"] > sweep_gguf.stat().st_size and model["format"] == "sweep-next-edit"
    assert model["requests"] == 1 and model["documents_tracked"] == 1
    assert report["last_next_edit"]["prompt_tokens"] == last.n_prompt > 0
    assert report["last_next_edit"]["verdict"] == last.verdict
    # The same document and cursor again: the same answer, without the model.
    assert nes.next_edit(cursor) is result and nes.status().next_edit["requests"] == 1


def test_secrets_and_files_outside_every_root_never_enter_the_history(
    nes: Session, repo: Path, tmp_path: Path
):
    outside = tmp_path / "elsewhere.py"
    type_into(nes, outside, "import os\n", "os", "ys")
    type_into(nes, repo / "shop" / "settings.py", "DEBUG = True\n", "True", "  # x")  # links to .env
    type_into(nes, repo / ".env", "A=1\n", "1", "2")
    nes.opened(Buffer(None, "x = 1\n", label="Untitled-1"))
    assert nes.next_edits.history.changes() == [] and nes.next_edits.tracked() == []
    # A document that comes to hold a secret: its earlier changes leave the history.
    pricing = repo / "shop" / "pricing.py"
    text = type_into(nes, pricing, pricing.read_text(), "def ", "x")
    assert [c.path for c in nes.next_edits.history.changes()] == ["shop/pricing.py"]
    nes.edited(Buffer(pricing, text + "KEY = '-----BEGIN RSA PRIVATE KEY-----'\n"), len(text))
    assert nes.next_edits.history.changes() == [] and nes.next_edits.tracked() == []
    # Closing forgets too.
    text = type_into(nes, pricing, pricing.read_text(), "def ", "y")
    assert nes.next_edits.tracked() == ["shop/pricing.py"]
    nes.closed(pricing)
    assert nes.next_edits.history.changes() == [] and nes.next_edits.tracked() == []
    # A file outside every root is predicted from its own text: no other document's changes.
    type_into(nes, pricing, pricing.read_text(), "def ", "z")
    cursor = nes.cursor(Buffer(outside, "import oss\n"), 10)
    nes.next_edit(cursor)
    last = nes.next_edits.predictor.last  # type: ignore[union-attr]
    assert last is not None and "pricing" not in last.prompt.text and ".diff" not in last.prompt.text


def test_without_next_edits_nothing_is_tracked_and_asking_says_what_to_set(session: Session, repo: Path):
    checkout = repo / CHECKOUT
    type_into(session, checkout, checkout.read_text(), "    total", "_due")
    assert session.next_edits.tracked() == [] and session.next_edits.history.changes() == []
    cursor = session.cursor(Buffer(checkout, checkout.read_text()), 10)
    with pytest.raises(EngineError, match="nextEditModel"):
        session.next_edit(cursor)
    assert session.status().next_edit["loaded"] is False


def test_settings_changes_reload_or_drop_the_next_edit_model(nes: Session, repo: Path):
    checkout = repo / CHECKOUT
    type_into(nes, checkout, checkout.read_text(), "    total", "_due")
    change = nes.apply_settings(
        dataclasses.replace(
            nes.settings, next_edit=dataclasses.replace(nes.settings.next_edit, max_tokens=32)
        )
    )
    assert change.reload_next_edit and not change.reload_model
    change = nes.apply_settings(
        dataclasses.replace(
            nes.settings, next_edit=dataclasses.replace(nes.settings.next_edit, enabled=False)
        )
    )
    assert change.reload_next_edit and not nes.next_edit_wanted
    nes.unload_next_edit_model()
    assert nes.next_edits.predictor is None and nes.status().next_edit["loaded"] is False
    assert nes.next_edits.history.changes() == [] and nes.next_edits.tracked() == []


def test_a_machine_that_cannot_hold_both_models_is_told_which_setting_to_change():
    check_memory(MemoryNeed(3 * GB, 2 * GB, 8 * GB))
    check_memory(MemoryNeed(3 * GB, 2 * GB, None))  # the platform does not say: load and see
    with pytest.raises(NextEditMemoryError) as caught:
        check_memory(MemoryNeed(3 * GB, 2 * GB, 4 * GB))
    message = str(caught.value)
    assert "3.0 GB" in message and "2.0 GB" in message and "5.0 GB" in message and "4.0 GB" in message
    assert "nextEditModel" in message and "sweep-next-edit-0.5b" in message and "nextEdit to false" in message


def test_suggestions_are_counted_when_offered_shown_and_accepted(nes: Session):
    edits = [TextEdit(3, 5, "ab"), TextEdit(9, 9, "c")]
    ids = nes.next_edits.offer(CHECKOUT, edits)
    assert len(set(ids)) == 2
    assert nes.next_edits.shown(ids[0]) is not None and nes.next_edits.shown(ids[0]) is not None
    accepted = nes.next_edits.accepted(ids[0])
    assert accepted is not None and accepted.edit == edits[0]
    assert nes.next_edits.accepted(ids[0]) is None and nes.next_edits.accepted("unknown") is None
    counts = nes.status().next_edit
    assert (counts["suggested"], counts["shown"], counts["accepted"]) == (2, 1, 1)
