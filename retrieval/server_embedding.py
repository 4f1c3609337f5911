"""The language server's embedder: queries and small batches in the process with NumPy, index
passes in a worker process on the runtime the choice made.

A server lives for a whole editing session beside the generating model; what it embeds is mostly
one query per completion and the few chunks of a saved file. The runtimes that make indexing fast
cost it tens of megabytes resident more than that needs (`benchmarks/typing_lsp.py` reports where
a server's memory lies: 778 MB with OpenVINO in the process, 708 MB without). So a server whose chosen
backend computes the model's own fp32 vectors (torch, onnx, openvino: one cache key) embeds
queries and batches of fewer than WORKER_TEXTS texts with the NumPy encoder, and larger batches
(a first index, a branch switch) in an EmbeddingWorker, stopped when the index pass ends
(`compact`). Where the worker cannot start, the chosen runtime runs in the process, as it did
before. Other choices (onnx-int8's own vectors, an endpoint, a model NumPy cannot run) embed
everything in the process, unchanged.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .config import IndexConfig
from .embed_worker import EmbeddingWorker
from .embedding import ChosenEmbedder, Embedder, embedder_for, make_embedder, resolve_model_path
from .errors import EmbeddingModelError

log = logging.getLogger(__name__)

# Texts in one call from which the worker embeds them: below it NumPy's slower pace costs less than
# starting a worker (its runtime's import and compilation, under a second on OpenVINO here; torch's
# import takes seconds), above it the worker's faster one wins.
WORKER_TEXTS = 64
SPLIT_BACKENDS = ("torch", "onnx", "openvino")  # the backends whose vectors NumPy's agree with


class ServerEmbedder:
    """The Embedder a server indexes and retrieves with (see the module's docstring)."""

    def __init__(self, chosen: ChosenEmbedder) -> None:
        self.chosen = chosen
        self._numpy: Embedder | None = None
        self._worker: EmbeddingWorker | None = None
        self._worker_failed = ""  # why the worker could not run: batches run in the process
        self._decided = False
        self._lock = threading.Lock()

    def _split(self) -> bool:
        """Whether queries run on NumPy and batches in the worker (decided once)."""
        with self._lock:
            if not self._decided:
                self._decided = True
                self._decide()
            return self._numpy is not None

    def _decide(self) -> None:
        from . import numpy_embedding
        from .onnx_embedding import OnnxEmbedder

        self.chosen.chosen()  # the choice itself: no runtime loaded
        backend = self.chosen.chosen_backend
        if backend not in SPLIT_BACKENDS:
            log.info("embedding in the server process: backend %s has vectors of its own", backend)
            return
        model_dir = Path(resolve_model_path(self.chosen.model))
        why = numpy_embedding.unsupported(model_dir) if model_dir.is_dir() else "no local model folder"
        if why is not None:
            log.info(
                "embedding in the server process with %s: the NumPy encoder cannot run it (%s)", backend, why
            )
            return
        numpy = OnnxEmbedder(self.chosen.model, model_dir, runtime="numpy", max_tokens=self.chosen.max_tokens)
        if numpy.name != self.chosen.name:  # cannot happen while both key on the model and the cut
            log.warning(
                "NumPy encoder's key %s differs from %s: embedding in the process",
                numpy.name,
                self.chosen.name,
            )
            return
        self._numpy = numpy
        self._worker = EmbeddingWorker(self.chosen.model, backend, self.chosen.max_tokens)
        log.info(
            "embedding queries with NumPy in the server, index batches with %s in a worker process", backend
        )

    @property
    def split(self) -> bool:
        """Whether queries run on NumPy here and index batches in a worker (deciding it if need be)."""
        return self._split()

    @property
    def worker_failed(self) -> str:
        """Why the worker could not run ("" while it can): batches then run in this process."""
        return self._worker_failed

    @property
    def name(self) -> str:
        return self.chosen.name

    @property
    def dim(self) -> int:
        return self._numpy.dim if self._split() and self._numpy is not None else self.chosen.dim

    @property
    def worker_pid(self) -> int | None:
        """The running worker's process id (None: none running)."""
        return self._worker.pid if self._worker is not None else None

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not self._split() or self._numpy is None:
            return self.chosen.embed(texts)
        if len(texts) < WORKER_TEXTS:
            return self._numpy.embed(texts)
        if self._worker is not None and not self._worker_failed:
            try:
                return self._worker.embed(texts)  # a worker that dies is started again once
            except EmbeddingModelError as exc:
                self._worker_failed = str(exc)
                log.warning("%s; embedding index batches in the server process from now on", exc)
        return self.chosen.embed(texts)

    def compact(self) -> None:
        """After an index pass: stop the worker (its runtime leaves with it) and let an in-process
        runtime give back what batches made it keep."""
        if self._worker is not None:
            self._worker.close()
        self.chosen.compact()

    def close(self) -> None:
        if self._worker is not None:
            self._worker.close()

    def describe(self) -> dict[str, str]:
        out = self.chosen.describe()
        if self._split():
            where = (
                f"in the server process ({self._worker_failed})"
                if self._worker_failed
                else "in a worker process"
            )
            out["embedding_runs"] = f"queries and small batches on NumPy in the server; index batches {where}"
        return out


def server_embedder_for(config: IndexConfig) -> Embedder:
    """What a server embeds with for these settings: the endpoint when one is set, else the local
    model split between NumPy and the worker where it can be (embedding.embedder_for otherwise)."""
    if config.embedding_endpoint:
        return embedder_for(config)
    return ServerEmbedder(
        make_embedder(config.embedding_model, config.embedding_backend, config.embedding_max_tokens)
    )
