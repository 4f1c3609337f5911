from pathlib import Path

from lsp_server.config import Settings


def test_precedence_init_options_then_env_then_file(tmp_path: Path, monkeypatch):
    config = tmp_path / "config.toml"
    config.write_text('model = "/from/file.gguf"\nbudget_tokens = 2048\nmax_tokens = 32\n')
    monkeypatch.setenv("CODE_KB_CONFIG", str(config))
    monkeypatch.delenv("CODE_KB_MODEL", raising=False)
    s = Settings.load()
    assert (s.engine.model_path, s.engine.budget_tokens, s.engine.max_tokens) == ("/from/file.gguf", 2048, 32)
    monkeypatch.setenv("CODE_KB_MODEL", "/from/env.gguf")
    assert Settings.load().engine.model_path == "/from/env.gguf"
    s = Settings.load({"modelPath": "/from/editor.gguf", "maxTokens": 16})
    assert (s.engine.model_path, s.engine.max_tokens, s.engine.budget_tokens) == (
        "/from/editor.gguf",
        16,
        2048,
    )
    assert s.problems == ()


def test_invalid_values_are_reported_and_defaults_used(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("CODE_KB_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.delenv("CODE_KB_MODEL", raising=False)
    s = Settings.load({"maxTokens": "lots", "budgetTokens": -5, "colour": "blue", "embeddingModel": ""})
    assert s.engine.max_tokens == 64 and s.engine.budget_tokens is None
    assert s.index.embedding_model == "all-MiniLM-L6-v2"
    assert len(s.problems) == 4
    assert any("unknown setting 'colour'" in p for p in s.problems)


def test_unreadable_config_file_is_a_problem_not_a_crash(tmp_path: Path, monkeypatch):
    bad = tmp_path / "config.toml"
    bad.write_text("model = [unclosed\n")
    monkeypatch.setenv("CODE_KB_CONFIG", str(bad))
    s = Settings.load()
    assert s.engine.model_path is None and "unreadable" in s.problems[0]
