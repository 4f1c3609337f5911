"""Planted secrets never reach the index, the embedder or a prompt; nothing outside the root is read.

The real walker, chunker and store; a recording hash embedder (it keeps every text it was given);
the real `code-kb context` command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lsp_server.cli import main
from retrieval import CodeIndex, IndexConfig
from retrieval.files import is_secret
from tests.fixtures.hash_embedder import HashEmbedder

SECRET = "PLANTED_SECRET_c41e0b"

PLANTED = {
    ".env": f"API_TOKEN={SECRET}\n",
    ".env.local": f"TOKEN={SECRET}\n",
    "config/prod.env": f"TOKEN={SECRET}\n",
    "deploy/tls.key": f"{SECRET}\n",
    "deploy/tls.pem": f"{SECRET}\n",
    "home/.ssh/id_ed25519": f"{SECRET}\n",
    "home/.aws/credentials": f"[default]\naws_secret_access_key = {SECRET}\n",
    "home/.netrc": f"machine x login y password {SECRET}\n",
    "home/.npmrc": f"//registry/:_authToken={SECRET}\n",
    "gcp/service-account-prod.json": json.dumps({"private_key": SECRET}) + "\n",
    "k8s/secrets.yaml": f"token: {SECRET}\n",
    "shop/vault.py": f'KEY = """-----BEGIN PRIVATE KEY-----\n{SECRET}\n-----END PRIVATE KEY-----"""\n',
    "ops/terraform.tfvars": f'db_password = "{SECRET}"\n',  # only the deny list knows this one
    "internal/payroll.py": f"def salary():\n    return '{SECRET}'\n",  # ditto, by folder
}
DENY = ["*.tfvars", "internal/"]


@pytest.fixture
def planted(tiny_repo: Path, tmp_path: Path) -> Path:
    for rel, text in PLANTED.items():
        (tiny_repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (tiny_repo / rel).write_text(text)
    (tiny_repo / "shop" / "settings.py").symlink_to(tiny_repo / ".env")  # a secret behind an innocent name
    (tiny_repo / "shop" / "ops_vars.py").symlink_to(tiny_repo / "ops" / "terraform.tfvars")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "elsewhere.py").write_text(f"def elsewhere():\n    return '{SECRET}'\n")
    (tiny_repo / "shop" / "elsewhere.py").symlink_to(outside / "elsewhere.py")
    (tiny_repo / "linked").symlink_to(outside, target_is_directory=True)
    return tiny_repo


def test_planted_secrets_are_never_indexed_nor_embedded(planted: Path):
    embedder = HashEmbedder()
    index = CodeIndex(planted, IndexConfig(deny_patterns=tuple(DENY)), embedder=embedder)
    index.reindex()
    assert embedder.embedded, "nothing embedded at all"
    assert not [t for t in embedder.embedded if SECRET in t]
    files = set(index.store.files())
    assert files == {
        ".gitignore",
        "docs/notes.txt",
        "shop/__init__.py",
        "shop/cart.py",
        "shop/checkout.py",
        "shop/inventory.py",
        "shop/pricing.py",
    }
    for name in ("index.sqlite3", "index.sqlite3-wal", "vectors.faiss"):
        path = planted / ".code-kb" / name
        if path.exists():
            assert SECRET.encode() not in path.read_bytes(), name
    # Adding a pattern to the deny list later takes an indexed file out.
    index.close()
    later = CodeIndex(planted, IndexConfig(deny_patterns=(*DENY, "shop/pricing.py")), embedder=embedder)
    later.reindex()
    assert "shop/pricing.py" not in later.store.files()


def test_is_secret_knows_paths_the_deny_list_and_key_blocks():
    assert is_secret(".env") and is_secret("app/.env.production") and is_secret("/home/u/.ssh/config")
    assert is_secret("keys/id_rsa") and is_secret("x/credentials.json") and is_secret("ci/deploy.pem")
    assert not is_secret("shop/cart.py") and not is_secret("docs/environment.md")
    assert is_secret("ops/prod.tfvars", DENY) and is_secret("internal/a/b.py", DENY)
    assert not is_secret("ops/prod.tfvars")
    assert is_secret("notes.py", head="x = '''-----BEGIN OPENSSH PRIVATE KEY-----\n'''")


def test_code_kb_context_builds_no_prompt_from_or_for_a_secret(
    planted: Path, capsys, monkeypatch: pytest.MonkeyPatch
):
    config = planted.parent / "config.toml"
    config.write_text(f"deny_patterns = {json.dumps(DENY)}\n")
    monkeypatch.setenv("CODE_KB_CONFIG", str(config))
    monkeypatch.chdir(planted)
    assert main(["context", "shop/checkout.py:14:12", "--root", str(planted), "--json", "-q"]) == 0
    out = capsys.readouterr().out
    assert json.loads(out)["parts"] and SECRET not in out
    for target in (
        ".env",
        "shop/settings.py",
        "ops/terraform.tfvars",
        "internal/payroll.py",
        "shop/vault.py",
    ):
        assert main(["context", f"{target}:1:1", "--root", str(planted), "--no-reindex", "-q"]) == 2, target
        captured = capsys.readouterr()
        assert "code-kb: error:" in captured.err and (
            "secrets" in captured.err or "private key" in captured.err
        )
        assert SECRET not in captured.out + captured.err
