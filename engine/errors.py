"""Typed, user-fixable engine errors: each message says what to do."""


class EngineError(Exception):
    """A problem the user can fix (model missing, unreadable, unsuitable)."""


class ModelNotConfiguredError(EngineError):
    def __init__(self) -> None:
        super().__init__(
            "no model configured; run `code-kb model pull qwen2.5-coder-1.5b` (or the model "
            "`code-kb model list` marks for this machine) and set the model to its name or to a GGUF "
            'file: --model, the CODE_KB_MODEL environment variable, `model = "qwen2.5-coder-1.5b"` in '
            "~/.config/code-kb/config.toml, or the editor's modelPath setting; or point --endpoint "
            "(the editor's endpoint setting) at an OpenAI-compatible inference server"
        )


class ModelNotFoundError(EngineError):
    def __init__(self, path: str) -> None:
        super().__init__(
            f"model file not found: {path}; set the model (--model, CODE_KB_MODEL, or the editor's "
            "modelPath setting) to a GGUF file or a model name from `code-kb model list` (then "
            "`code-kb model pull NAME`)"
        )


class ModelLoadError(EngineError):
    """The file exists but llama.cpp cannot load it."""


class GenerationError(EngineError):
    """The model is loaded but failed at run time (tokenising, evaluating or decoding a prompt)."""


class NoFimSupportError(EngineError):
    """The model's vocabulary has no fill-in-the-middle tokens."""


class NextEditFormatError(EngineError):
    """The next-edit model's prompt format is unknown or cannot be recognised."""
