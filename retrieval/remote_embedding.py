"""Embedding on an OpenAI-compatible server (`POST /v1/embeddings`: text-embeddings-inference, vLLM,
Ollama, llama.cpp's server with --embeddings): batched, retried, cached like local vectors.

The cache key is `endpoint:MODEL`, MODEL being the name the server reports: vectors of another model
(or another server's idea of one) never mix with these. A server that changes the size of a model's
vectors is caught by the index (CodeIndex checks the stored dimension), which rebuilds.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

import numpy as np

from .errors import EmbeddingModelError

log = logging.getLogger(__name__)

BATCH_TEXTS = 32
ATTEMPTS = 4  # one try and three retries, 0.5 s, 1 s and 2 s apart
RETRY_STATUS = {408, 429, 500, 502, 503, 504}
MAX_TEXT_CHARS = 8_000  # servers truncate at their context; no need to send megabytes


class RemoteEmbedder:
    """The Embedder protocol over HTTP. `model` None: the server's first model (`GET /v1/models`)."""

    def __init__(
        self, endpoint: str, model: str | None = None, timeout_s: float = 60.0, batch_texts: int = BATCH_TEXTS
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        if self.endpoint.endswith("/v1"):
            self.endpoint = self.endpoint[: -len("/v1")]
        self.model = model
        self.timeout_s = timeout_s
        self.batch_texts = batch_texts
        self._dim: int | None = None
        self._lock = threading.Lock()
        self.backend = "endpoint"
        self.reason = f"embeddingEndpoint {self.endpoint}"
        self.chosen_backend = "endpoint"
        self.dim_may_change = True  # the server's model may be replaced under the same name

    # -- HTTP -----------------------------------------------------------------------
    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        url = self.endpoint + path
        data = json.dumps(body).encode() if body is not None else None
        delay_s = 0.5
        for attempt in range(1, ATTEMPTS + 1):
            request = urllib.request.Request(url, data=data, method=method)
            request.add_header("Content-Type", "application/json")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    return json.load(response)
            except urllib.error.HTTPError as exc:
                detail = exc.read().decode("utf-8", "replace")[:300]
                if exc.code not in RETRY_STATUS or attempt == ATTEMPTS:
                    raise EmbeddingModelError(
                        f"the embedding endpoint {url} answered {exc.code}: {detail}; check "
                        "embeddingEndpoint and embeddingEndpointModel (the model the server serves)"
                    ) from exc
                log.info("embedding endpoint %s answered %d; retrying in %.1f s", url, exc.code, delay_s)
            except (urllib.error.URLError, OSError, ValueError) as exc:
                if attempt == ATTEMPTS:
                    raise EmbeddingModelError(
                        f"cannot reach the embedding endpoint {url} ({exc}); start the server, "
                        "or unset embeddingEndpoint to embed on this machine"
                    ) from exc
                log.info("embedding endpoint %s failed (%s); retrying in %.1f s", url, exc, delay_s)
            time.sleep(delay_s)
            delay_s *= 2
        raise AssertionError("unreachable")

    def served_model(self) -> str:
        """The model to ask for: the configured one, else the server's first."""
        with self._lock:
            if self.model is None:
                models = self._request("GET", "/v1/models").get("data") or []
                if not models:
                    raise EmbeddingModelError(
                        f"the embedding endpoint {self.endpoint} lists no model; set embeddingEndpointModel"
                    )
                self.model = str(models[0]["id"])
                log.info("embedding endpoint %s serves %s", self.endpoint, self.model)
            return self.model

    # -- Embedder -------------------------------------------------------------------
    @property
    def name(self) -> str:
        return f"endpoint:{self.served_model()}"

    @property
    def dim(self) -> int:
        """Asked of the server each time a reindex starts, so a replaced model is noticed."""
        self._dim = int(self._embed_batch(["dimension probe"]).shape[1])
        return self._dim

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        parts = [
            self._embed_batch(texts[i : i + self.batch_texts]) for i in range(0, len(texts), self.batch_texts)
        ]
        out = np.concatenate(parts)
        if self._dim is not None and out.shape[1] != self._dim:
            raise EmbeddingModelError(
                f"the embedding endpoint {self.endpoint} now returns {out.shape[1]}-dimensional vectors "
                f"for {self.model}, {self._dim} before: the server's model changed; restart code-kb"
            )
        self._dim = out.shape[1]
        return out

    def _embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        model = self.served_model()
        answer = self._request(
            "POST", "/v1/embeddings", {"model": model, "input": [t[:MAX_TEXT_CHARS] for t in texts]}
        )
        rows = sorted(answer.get("data") or [], key=lambda row: row.get("index", 0))
        if len(rows) != len(texts):
            raise EmbeddingModelError(
                f"the embedding endpoint {self.endpoint} returned {len(rows)} vectors for {len(texts)} "
                "texts; is it an embedding model (llama.cpp: --embeddings, with a pooling type)?"
            )
        vectors = np.asarray([row["embedding"] for row in rows], dtype=np.float32)
        if vectors.ndim != 2:
            raise EmbeddingModelError(
                f"the embedding endpoint {self.endpoint} returned one vector per token, not per text; "
                "start it with a pooling type (llama.cpp: --pooling mean)"
            )
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms > 0, norms, 1.0)

    def describe(self) -> dict[str, str]:
        return {
            "embedding_backend": "endpoint",
            "embedding_backend_reason": f"{self.endpoint}, model {self.model}",
        }
