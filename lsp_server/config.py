"""Settings: the one reader of the wire dict, the config file and the environment.

Precedence, highest first: the editor's initializationOptions (camelCase keys), the
CODE_KB_MODEL environment variable (model only), the config file (snake_case keys,
$CODE_KB_CONFIG or $XDG_CONFIG_HOME/code-kb/config.toml), the built-in defaults.
Invalid values are reported and replaced by defaults; they never stop the server.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine import EngineConfig
from engine.config import NextEditConfig
from retrieval import IndexConfig
from retrieval.config import EMBEDDING_BACKENDS

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

log = logging.getLogger(__name__)

# wire key -> (config, field, type). The README's settings table lists the same keys.
SETTINGS: dict[str, tuple[str, str, type]] = {
    "modelPath": ("engine", "model_path", str),
    "endpoint": ("engine", "endpoint", str),
    "endpointApi": ("engine", "endpoint_api", str),
    "remoteModel": ("engine", "remote_model", str),
    "template": ("engine", "template", str),
    "budgetTokens": ("engine", "budget_tokens", int),
    "maxTokens": ("engine", "max_tokens", int),
    "maxLines": ("engine", "max_lines", int),
    "timeoutS": ("engine", "timeout_s", float),
    "snippetLimit": ("engine", "snippet_limit", int),
    "nGpuLayers": ("engine", "n_gpu_layers", int),
    "nThreads": ("engine", "n_threads", int),
    "flashAttn": ("engine", "flash_attn", bool),
    "kvCacheType": ("engine", "kv_cache_type", str),
    "candidates": ("engine", "candidates", int),
    "quickPromptTokens": ("engine", "quick_prompt_tokens", int),
    "embeddingModel": ("index", "embedding_model", str),
    "embeddingBackend": ("index", "embedding_backend", str),
    "embeddingMaxTokens": ("index", "embedding_max_tokens", int),
    "embeddingEndpoint": ("index", "embedding_endpoint", str),
    "embeddingEndpointModel": ("index", "embedding_endpoint_model", str),
    "maxFileBytes": ("index", "max_file_bytes", int),
    "maxFiles": ("index", "max_files", int),
    "indexDir": ("index", "index_dir", Path),
    "denyPatterns": ("index", "deny_patterns", tuple),
    "secretPatterns": ("index", "secret_patterns", tuple),
    "debounceMs": ("server", "debounce_ms", int),
    "disabledLanguages": ("server", "disabled_languages", tuple),
    "warm": ("server", "warm", bool),
    "speculate": ("server", "speculate", bool),
    "nextEdit": ("next_edit", "enabled", bool),
    "nextEditModel": ("next_edit", "model_path", str),
    "nextEditEndpoint": ("next_edit", "endpoint", str),
    "nextEditFormat": ("next_edit", "format", str),
}


@dataclass(frozen=True)
class ServerConfig:
    debounce_ms: int = 50  # a request waits this long; a newer one for the same document replaces it
    disabled_languages: tuple[str, ...] = ()  # LSP languageIds that get no completions
    warm: bool = True  # fill the KV cache when a file opens and when the user pauses
    speculate: bool = True  # compute the completion after a shown one while the user reads it


def config_file_path() -> Path:
    explicit = os.environ.get("CODE_KB_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "code-kb" / "config.toml"


def _snake(key: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in key)


@dataclass(frozen=True)
class Settings:
    engine: EngineConfig = field(default_factory=EngineConfig)
    index: IndexConfig = field(default_factory=IndexConfig)
    server: ServerConfig = field(default_factory=ServerConfig)
    problems: tuple[str, ...] = ()  # what was invalid and ignored, for one message to the user
    next_edit: NextEditConfig = field(default_factory=NextEditConfig)

    @classmethod
    def load(
        cls, options: Mapping[str, Any] | None = None, *, overrides: Mapping[str, Any] | None = None
    ) -> Settings:
        """Settings from the config file, the environment, the editor's `options` and CLI `overrides` (wire keys)."""
        problems: list[str] = []
        merged: dict[str, Any] = {}
        path = config_file_path()
        if path.is_file():
            try:
                data = tomllib.loads(path.read_text(encoding="utf-8"))
            except (OSError, tomllib.TOMLDecodeError) as exc:
                problems.append(f"config file {path} is unreadable ({exc}); using defaults")
                data = {}
            by_snake = {_snake(k): k for k in SETTINGS}
            by_snake["model"] = "modelPath"
            for key, value in data.items():
                if key in by_snake:
                    merged[by_snake[key]] = value
                else:
                    problems.append(f"unknown setting {key!r} in {path}")
        if os.environ.get("CODE_KB_MODEL"):
            merged["modelPath"] = os.environ["CODE_KB_MODEL"]
        for source in (options or {}, overrides or {}):
            for key, value in source.items():
                if value is None:
                    continue
                if key in SETTINGS:
                    merged[key] = value
                else:
                    problems.append(f"unknown setting {key!r}")
        values: dict[str, dict[str, Any]] = {"engine": {}, "index": {}, "server": {}, "next_edit": {}}
        for key, value in merged.items():
            target, name, kind = SETTINGS[key]
            try:
                values[target][name] = _convert(value, kind)
            except (TypeError, ValueError) as exc:
                problems.append(f"setting {key}={value!r} is invalid ({exc}); using the default")
        engine = values["engine"]
        for key, name, section in (
            ("maxTokens", "max_tokens", engine),
            ("candidates", "candidates", engine),
            ("maxFiles", "max_files", values["index"]),
        ):
            if section.get(name) == 0:
                del section[name]
                problems.append(
                    f"setting {key}=0 is invalid (at least 1; to turn completions off for a language, "
                    "use disabledLanguages); using the default"
                    if key != "maxFiles"
                    else f"setting {key}=0 is invalid (at least 1); using the default"
                )
        if engine.get("endpoint_api", "auto") not in ("auto", "infill", "completions"):
            problems.append(
                f"setting endpointApi={engine.pop('endpoint_api')!r} is invalid (use auto, infill or "
                "completions); using the default"
            )
        if engine.get("kv_cache_type", "auto") not in ("auto", "f16", "q8_0"):
            problems.append(
                f"setting kvCacheType={engine.pop('kv_cache_type')!r} is invalid (use auto, f16 or "
                "q8_0); using the default"
            )
        if values["index"].get("embedding_backend", "auto") not in EMBEDDING_BACKENDS:
            problems.append(
                f"setting embeddingBackend={values['index'].pop('embedding_backend')!r} is invalid (use "
                f"{', '.join(EMBEDDING_BACKENDS)}); using the default"
            )
        if values["index"].get("embedding_max_tokens", 0) < 0:
            problems.append(
                f"setting embeddingMaxTokens={values['index'].pop('embedding_max_tokens')!r} is invalid "
                "(use a number of tokens, or 0 for the model's own limit); using the default"
            )
        if values["next_edit"].get("format", "auto") not in ("auto", "sweep"):
            problems.append(
                f"setting nextEditFormat={values['next_edit'].pop('format')!r} is invalid (use auto or "
                "sweep); using the default"
            )
        if values["index"].get("secret_patterns"):
            kept = []
            for pattern in values["index"]["secret_patterns"]:
                try:
                    re.compile(pattern)
                    kept.append(pattern)
                except re.error as exc:
                    problems.append(
                        f"setting secretPatterns: {pattern!r} is not a regular expression ({exc}); left out"
                    )
            values["index"]["secret_patterns"] = tuple(kept)
        for section in (engine, values["next_edit"]):
            if section.get("model_path"):
                section["model_path"] = str(Path(section["model_path"]).expanduser())
        for p in problems:
            log.warning("%s", p)
        return cls(
            dataclasses.replace(EngineConfig(), **engine),
            dataclasses.replace(IndexConfig(), **values["index"]),
            dataclasses.replace(ServerConfig(), **values["server"]),
            tuple(problems),
            dataclasses.replace(NextEditConfig(), **values["next_edit"]),
        )


def _convert(value: Any, kind: type) -> Any:
    if kind is str:
        if not isinstance(value, str) or not value.strip():
            raise ValueError("expected a non-empty string")
        return value
    if kind is tuple:
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ValueError("expected a list of strings")
        return tuple(value)
    if kind is bool:
        if not isinstance(value, bool):
            raise TypeError(f"expected true or false, got {type(value).__name__}")
        return value
    if kind is Path:
        if not isinstance(value, str) or not value.strip():
            raise ValueError("expected a path")
        return Path(value).expanduser()
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise TypeError(f"expected a number, got {type(value).__name__}")
    number = kind(value)
    if number < 0 or (kind is not float and number != float(value)):
        raise ValueError(
            "expected a non-negative whole number" if kind is int else "expected a non-negative number"
        )
    return number
