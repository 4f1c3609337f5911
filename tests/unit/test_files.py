import logging
from pathlib import Path

from retrieval.files import walk


def paths(root: Path, max_bytes: int = 1_000_000) -> set[str]:
    return {f.path for f in walk(root, max_bytes)}


def test_gitignore_binary_and_huge_files_are_skipped(tiny_repo: Path, caplog):
    caplog.set_level(logging.INFO, logger="retrieval.files")
    found = paths(tiny_repo)
    assert "shop/pricing.py" in found and "docs/notes.txt" in found and ".gitignore" in found
    assert "build/generated.py" not in found  # .gitignore: build/
    assert "debug.log" not in found  # .gitignore: *.log
    assert "logo.dat" not in found and "huge.py" not in found
    assert any("huge.py" in r.message and "limit" in r.message for r in caplog.records)
    assert any("logo.dat" in r.message and "binary" in r.message for r in caplog.records)


def test_editor_lock_backup_and_swap_files_are_not_indexed(tiny_repo: Path):
    (tiny_repo / "shop" / ".#checkout.py").symlink_to("root@host.1234:1700000000")  # Emacs lock: dangling
    for name in ("#checkout.py#", "checkout.py~", ".checkout.py.swp"):
        (tiny_repo / "shop" / name).write_text("x = 1\n")
    assert not {p for p in paths(tiny_repo) if p.startswith("shop/") and not p.endswith(".py")}
    assert "shop/checkout.py" in paths(tiny_repo)


def test_nested_gitignore_and_always_ignored_dirs(tiny_repo: Path):
    (tiny_repo / "shop" / ".gitignore").write_text("secret_*.py\n")
    (tiny_repo / "shop" / "secret_keys.py").write_text("KEY = 1\n")
    (tiny_repo / "docs" / "secret_plan.py").write_text("PLAN = 1\n")
    (tiny_repo / ".git").mkdir()
    (tiny_repo / ".git" / "config.py").write_text("x = 1\n")
    (tiny_repo / "node_modules" / "pkg").mkdir(parents=True)
    (tiny_repo / "node_modules" / "pkg" / "index.js").write_text("module.exports = 1\n")
    found = paths(tiny_repo)
    assert "shop/secret_keys.py" not in found
    assert "docs/secret_plan.py" in found  # the rule lives in shop/ and applies only there
    assert not any(p.startswith((".git/", "node_modules/")) for p in found)


def test_symlinked_directories_are_not_followed(tiny_repo: Path, tmp_path: Path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "leak.py").write_text("SECRET = 1\n")
    (tiny_repo / "link").symlink_to(outside, target_is_directory=True)
    assert not any(p.startswith("link/") for p in paths(tiny_repo))


def test_secrets_vendored_and_build_folders_never_enter_the_index(tiny_repo: Path, caplog):
    caplog.set_level(logging.INFO, logger="retrieval.files")
    secrets = {
        ".env": "API_TOKEN=abc\n",
        "config/.env.production": "DB_PASSWORD=x\n",
        "deploy/server.pem": "cert\n",
        "keys/id_ed25519": "key\n",
        ".ssh/config": "Host x\n",
        "gcp/service-account-prod.json": "{}\n",
        "shop/embedded_key.py": 'KEY = """-----BEGIN RSA PRIVATE KEY-----\nMIIE...\n"""\n',
    }
    vendored = {
        "dist/bundle.js": "x\n",
        "target/debug/out.rs": "fn main() {}\n",
        "vendor/lib/dep.go": "package dep\n",
        ".venv/lib/site.py": "x = 1\n",
    }
    for rel, text in {**secrets, **vendored}.items():
        (tiny_repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (tiny_repo / rel).write_text(text)
    found = paths(tiny_repo)
    assert not found & set(secrets) and not found & set(vendored)
    assert "shop/pricing.py" in found
    assert any("embedded_key.py" in r.message and "private key" in r.message for r in caplog.records)
    assert any(".env" in r.message and "secret" in r.message for r in caplog.records)


def test_code_kbignore_works_like_gitignore(tiny_repo: Path):
    (tiny_repo / ".code-kbignore").write_text("docs/\n")
    (tiny_repo / "shop" / ".code-kbignore").write_text("inventory.py\n")
    found = paths(tiny_repo)
    assert "docs/notes.txt" not in found and "shop/inventory.py" not in found and "shop/cart.py" in found
    from retrieval.files import check

    assert check(tiny_repo, "shop/inventory.py", 1_000_000) is None
    assert check(tiny_repo, ".env", 1_000_000) is None
    assert check(tiny_repo, "shop/cart.py", 1_000_000) is not None
