"""Typed, user-fixable engine errors: each message says what to do."""


class EngineError(Exception):
    """A problem the user can fix (model missing, unreadable, unsuitable)."""


class ModelNotConfiguredError(EngineError):
    def __init__(self) -> None:
        super().__init__(
            "no model configured; set codeKb.modelPath (initializationOptions.modelPath), "
            "the CODE_KB_MODEL environment variable, or `model = \"/path/to/model.gguf\"` in "
            "~/.config/code-kb/config.toml (recommended: a Qwen2.5-Coder 1.5B Q4_K_M GGUF); "
            "or codeKb.endpoint for an OpenAI-compatible inference server")


class ModelNotFoundError(EngineError):
    def __init__(self, path: str) -> None:
        super().__init__(f"model file not found: {path}; set codeKb.modelPath or CODE_KB_MODEL to a GGUF file")


class ModelLoadError(EngineError):
    """The file exists but llama.cpp cannot load it."""


class NoFimSupportError(EngineError):
    """The model's vocabulary has no fill-in-the-middle tokens."""
