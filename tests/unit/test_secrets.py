"""Inline secrets (retrieval/secrets.py): every planted kind found and masked in the file it is found
in, offsets and lines kept, ordinary code left alone, the user's patterns, the per-line memory that
keeps an open buffer's re-scan cheap, and the session's use of it (cursor, recent edits)."""

from __future__ import annotations

from pathlib import Path

import pytest

import retrieval.secrets as secrets_module
from lsp_server.config import Settings
from lsp_server.session import Buffer, Refused, Session
from retrieval.secrets import MASK, SecretScanner, overlaps
from tests.fixtures.planted_secrets import CORPUS, SECRETS, TYPED_TOKEN, USER_PATTERNS
from tests.unit.test_session import Roots


def pieces(value: str, n: int = 8) -> list[str]:
    """Every run of `n` characters of a value: no part of a secret may survive."""
    return [value[i : i + n] for i in range(0, max(len(value) - n, 0) + 1)]


@pytest.fixture(scope="module")
def scanner() -> SecretScanner:
    return SecretScanner(USER_PATTERNS)


@pytest.fixture(scope="module")
def masked(scanner: SecretScanner) -> dict[str, str]:
    return {path: scanner.mask(text, path) for path, text in CORPUS.items()}


@pytest.mark.parametrize(("kind", "value"), SECRETS, ids=[k for k, _ in SECRETS])
def test_every_planted_kind_is_masked_wherever_it_is(kind: str, value: str, masked: dict[str, str]):
    planted_in = [p for p, text in CORPUS.items() if value in text]
    assert planted_in, f"{kind} is planted nowhere"
    for path, text in masked.items():
        left = [piece for piece in pieces(value) if piece in text]
        assert not left, f"{kind} survives in {path}: {left[:3]}"


def test_masking_keeps_every_offset_and_line(masked: dict[str, str]):
    for path, text in CORPUS.items():
        out = masked[path]
        assert len(out) == len(text)
        assert out.count("\n") == text.count("\n")
        # Only secret characters changed, each to the mask.
        assert all(a == b or b == MASK for a, b in zip(text, out)), path
        assert out != text, f"nothing masked in {path}"
    # The rest of the file stays useful: names, structure and ordinary strings are untouched.
    settings = masked["billing/settings.py"]
    assert 'AWS_ACCESS_KEY_ID = "' in settings and "def database_url() -> str:" in settings
    assert "postgres://billing_admin:" in settings and "@db.internal:5432/billing" in settings


ORDINARY = """import hashlib
import os

password = get_password()
api_key = os.environ["API_KEY"]
SECRET_KEY = settings.SECRET_KEY
token = "${TOKEN}"
request_id = "123e4567-e89b-12d3-a456-426614174000"
url = "https://example.com/api/v1/items?page=2"
digest = hashlib.sha256(data).hexdigest()


def authenticate(username: str, password: str) -> bool:
    return check(username, password)
"""


def test_ordinary_code_is_left_alone(scanner: SecretScanner):
    assert scanner.spans(ORDINARY, "auth.py") == []


def test_user_patterns_mask_the_match_or_its_groups():
    text = 'A = "acme-int-7Q2Z9K4M"\nB = "ref=ZZ-12345-end"\n'
    plain = SecretScanner([r"acme-int-[0-9A-Z]{8}"]).mask(text, "x.py")
    assert plain.splitlines()[0] == 'A = "' + MASK * len("acme-int-7Q2Z9K4M") + '"'
    grouped = SecretScanner([r"ref=(ZZ-\d+)-end"]).mask(text, "x.py")
    assert grouped.splitlines()[1] == 'B = "ref=' + MASK * len("ZZ-12345") + '-end"'
    with pytest.raises(ValueError, match="not a regular expression"):
        SecretScanner(["acme-(unclosed"])


def test_an_open_buffer_is_rescanned_only_where_it_changed(monkeypatch: pytest.MonkeyPatch):
    scanned: list[int] = []
    real = secrets_module._scan

    def counting(lines, filename):
        scanned.append(len(lines))
        return real(lines, filename)

    monkeypatch.setattr(secrets_module, "_scan", counting)
    scanner = SecretScanner()
    text = CORPUS["billing/settings.py"]
    first = scanner.spans(text, "billing/settings.py")
    assert scanned == [text.count("\n")]  # every line once
    typed = text.replace("def database_url", f'GITHUB = "{TYPED_TOKEN}"\n\n\ndef database_url')
    second = scanner.spans(typed, "billing/settings.py")
    assert scanned[1] == 1  # the new line only: blank lines were seen before
    assert len(second) == len(first) + 1
    assert TYPED_TOKEN not in scanner.mask(typed, "billing/settings.py")


def test_overlaps():
    spans = SecretScanner().spans('K = "ghp_' + "a1B2c3D4e5" * 3 + 'Zz9Yx8"\n', "k.py")
    (s,) = spans
    assert overlaps(spans, s.start, s.start) and overlaps(spans, s.end, s.end + 3)
    assert not overlaps(spans, 0, s.start - 1) and not overlaps(spans, s.end + 1, s.end + 2)


def test_the_session_masks_buffers_and_refuses_a_cursor_in_a_secret(tmp_path: Path):
    root = tmp_path / "repo"
    (root / "billing").mkdir(parents=True)
    file = root / "billing" / "settings.py"
    text = CORPUS["billing/settings.py"]
    file.write_text(text)
    session = Session(Settings.load({"secretPatterns": USER_PATTERNS}))
    # Right after a secret (typing it) and inside one: no completion there.
    end = text.index("AKIA") + 20
    for offset in (end, end - 5):
        with pytest.raises(Refused, match="inline secret"):
            session.cursor(Buffer(file, text), offset)
    # Elsewhere the cursor's text is masked, offsets unchanged.
    at = text.index("def database_url")
    cursor = session.cursor(Buffer(file, text), at)
    assert cursor.offset == at and len(cursor.source) == len(text)
    assert cursor.source[at:].startswith("def database_url")
    for _, value in SECRETS:
        assert value not in cursor.source
    assert cursor.secrets and all(
        cursor.source[s.start : s.end] == MASK * (s.end - s.start) for s in cursor.secrets
    )


def test_what_the_session_remembers_of_edits_is_masked(tmp_path: Path, sweep_gguf: Path):
    root = tmp_path / "repo"
    (root / "billing").mkdir(parents=True)
    (root / ".git").mkdir()
    file = root / "billing" / "settings.py"
    text = CORPUS["billing/settings.py"]
    file.write_text(text)
    session = Session(
        Settings.load({"nextEditModel": str(sweep_gguf), "secretPatterns": USER_PATTERNS}), Roots(root)
    )
    session.opened(Buffer(file, text))
    at = text.index("\n\ndef database_url")
    typed = text[:at] + f'\nGITHUB = "{TYPED_TOKEN}"' + text[at:]
    assert session.edited(Buffer(file, typed), at + 5) is not None
    recent = session.recent_edits.snippets_for("billing/other.py")
    assert recent and all(TYPED_TOKEN not in s.text for s in recent)
    assert any('GITHUB = "****' in s.text for s in recent)
    changes = session.next_edits.history.changes()
    assert changes and all(TYPED_TOKEN not in c.updated and TYPED_TOKEN not in c.original for c in changes)
    for _, value in SECRETS:
        assert all(value not in c.original + c.updated for c in changes)


def test_the_lines_skipped_before_detect_secrets_could_not_hold_a_secret(monkeypatch: pytest.MonkeyPatch):
    """Most lines never reach most detectors (no literal of a token format, no secret-sounding name,
    no quoted string long enough to be high-entropy); what is found is the same as when every line
    goes through every detector."""
    root = Path(__file__).resolve().parents[2]
    texts = dict(CORPUS)
    for path in (
        "retrieval/secrets.py",
        "retrieval/index.py",
        "README.md",
        "tests/fixtures/planted_secrets.py",
        "tests/unit/test_literals.py",
    ):
        texts[path] = (root / path).read_text(encoding="utf-8")
    # Tokens of every format the detectors know, in lines that test the prefilters' edges: a line
    # start, upper and lower case, a non-ASCII text, a dotless i where an ASCII one is expected.
    texts["edges.py"] = "\n".join(
        [
            "AKIAIOSFODNN7EXAMPLE = 1",
            'x = "AKIA" + "IOSFODNN7EXAMPLE"',
            "AP6xxxxxxxxxxAKCp8nnqKvw5dD2MR9 is not one",
            'Pässwörd = "kT9$wQ2!xLm4#pR7"',
            "password = 'hunter2-but-l0nger-Xy9'",
            'Sk = "SK0123456789abcdef0123456789abcdef"',
            "token: xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
            "İ api_key = 'Zm9vYmFyYmF6cXV4cXV1eHh5enp6eXl4eHd3dnY='",
            "clıent_secret = 'abcdefabcdefabcdefabcdef01234567'",
            "-----BEGIN RSA PRIVATE KEY-----",
        ]
    )
    assert secrets_module._in_context_filter() is not None
    fast = {p: SecretScanner().spans(t, p) for p, t in texts.items()}
    scan = secrets_module._scan
    monkeypatch.setattr(secrets_module, "_scan", lambda lines, name: scan(lines, name, prefilter=False))
    every_line = {p: SecretScanner().spans(t, p) for p, t in texts.items()}
    assert fast == every_line
    assert sum(len(found) for found in fast.values()) >= len(SECRETS)
    assert len(fast["edges.py"]) >= 6


def test_most_format_detectors_are_ruled_out_by_their_literals():
    """The prefilters are worth having: most of detect-secrets' format plugins and all of ours have
    literals (a file without them skips the plugin), and the rest have guards."""
    formats, _ = secrets_module._plugins()
    with_literals = [f.kind for f in formats if f.literals is not None]
    assert len(with_literals) >= len(formats) * 2 // 3, with_literals
    assert "AWS Access Key" in with_literals and "GitHub Token" in with_literals
    assert all(f.literals is not None or f.guards is not None for f in formats)
