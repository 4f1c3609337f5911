"""Completion engine: FIM templates, budgeted prompts, llama.cpp generation. Knows nothing of LSP or retrieval."""

from .completer import Completer, Completion
from .config import EngineConfig
from .errors import (
    EngineError,
    GenerationError,
    ModelLoadError,
    ModelNotConfiguredError,
    ModelNotFoundError,
    NoFimSupportError,
)
from .prompt import ContextSource, Prompt, Snippet

__all__ = [
    "Completer",
    "Completion",
    "ContextSource",
    "EngineConfig",
    "EngineError",
    "GenerationError",
    "ModelLoadError",
    "ModelNotConfiguredError",
    "ModelNotFoundError",
    "NoFimSupportError",
    "Prompt",
    "Snippet",
]
