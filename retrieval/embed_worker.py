"""An embedder's runtime in a child process, for the batches of an index pass.

The language server keeps its resident memory near the generating model's by not loading the
fast indexing runtimes (OpenVINO, onnxruntime, torch) at all: it embeds queries with the NumPy
encoder (numpy_embedding.py) and hands large batches to this worker, which it starts for an index
pass and stops after it (`EmbeddingWorker.close`), so the runtime's libraries, weights and buffers
leave with the process.

The parent writes requests on the child's stdin and reads answers on its stdout, each a pickle
behind its length; the child moves its own stdout to stderr first, so that nothing a library prints
can break the stream. The child's stderr (its log, at the parent's level, and whatever a library
prints) is read line by line by the parent and logged through its own handlers, `embedding worker
PID:` first, so it reaches the server's log file like the rest. Run as
`python -m retrieval.embed_worker MODEL BACKEND MAX_TOKENS`.
"""

from __future__ import annotations

import logging
import os
import pickle
import select
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from .errors import EmbeddingModelError

log = logging.getLogger(__name__)

_HEADER = struct.Struct("<Q")
# How long the parent waits for the child: to load its runtime (the export and calibration are
# made before, in the server's choice; torch's import takes the longest, seconds), and for one
# batch (at most a few seconds for a few hundred texts). Past them the child is taken for hung.
START_TIMEOUT_S = 180.0
BATCH_TIMEOUT_S = 300.0
LOG_LEVEL_VARIABLE = "CODE_KB_EMBED_WORKER_LOG_LEVEL"  # the parent's logging level, for the child


def _send(stream: IO[bytes], message: Any) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def _read(stream: IO[bytes], size: int, deadline: float | None) -> bytes:
    """Exactly `size` bytes (fewer when the stream ends); TimeoutError past `deadline`."""
    chunks: list[bytes] = []
    left = size
    while left:
        if deadline is not None:
            wait = deadline - time.monotonic()
            if wait <= 0 or not select.select([stream], [], [], wait)[0]:
                raise TimeoutError(f"no answer within the time allowed ({size - left} of {size} bytes read)")
        chunk = os.read(stream.fileno(), min(left, 1 << 20)) if deadline is not None else stream.read(left)
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _receive(stream: IO[bytes], timeout_s: float | None = None) -> Any:
    """The next message; EOFError when the other side is gone, TimeoutError when it takes longer
    than `timeout_s` (None: as long as it takes). A stream read with a timeout must be unbuffered."""
    deadline = time.monotonic() + timeout_s if timeout_s is not None else None
    header = _read(stream, _HEADER.size, deadline)
    if len(header) < _HEADER.size:
        raise EOFError("the stream ended")
    (size,) = _HEADER.unpack(header)
    data = _read(stream, size, deadline)
    if len(data) < size:
        raise EOFError("the stream ended inside a message")
    return pickle.loads(data)


class EmbeddingWorker:
    """The client side: starts the child on first use, embeds through it one batch at a time."""

    def __init__(self, model: str, backend: str, max_tokens: int) -> None:
        self.model = model
        self.backend = backend
        self.max_tokens = max_tokens
        self.name = ""  # the child's cache key, once started
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_threads: dict[int, threading.Thread] = {}  # per child: its stderr, logged here
        self._lock = threading.Lock()

    @property
    def pid(self) -> int | None:
        """The running child's process id (None: none running)."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def _start(self) -> subprocess.Popen[bytes]:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "retrieval.embed_worker", self.model, self.backend, str(self.max_tokens)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=0,  # answers are read with select and a deadline
            cwd=str(Path(__file__).resolve().parent.parent),
            # It logs at this process's level (quiet under `doctor`), to stderr, logged here.
            env={**os.environ, LOG_LEVEL_VARIABLE: str(logging.getLogger().getEffectiveLevel())},
        )
        assert proc.stderr is not None
        forward = threading.Thread(
            target=_log_lines, args=(proc.stderr, proc.pid), name=f"embed-worker-{proc.pid}-log", daemon=True
        )
        forward.start()
        self._log_threads[proc.pid] = forward
        try:
            ready = self._answer(proc, f"starting the {self.backend} embedding worker", START_TIMEOUT_S)
        except EmbeddingModelError:
            self._stop(proc)
            raise
        self.name = ready["name"]
        log.info(
            "embedding worker %d (%s, %s) started in %.1f s",
            proc.pid,
            self.backend,
            self.name,
            time.perf_counter() - t0,
        )
        return proc

    def _answer(self, proc: subprocess.Popen[bytes], doing: str, timeout_s: float) -> Any:
        assert proc.stdout is not None
        try:
            kind, payload = _receive(proc.stdout, timeout_s)
        except TimeoutError as exc:
            proc.kill()  # hung: a new one is started (once) by embed
            proc.wait()
            raise EmbeddingModelError(f"{doing}: the worker process hung, stopped ({exc})") from exc
        except (EOFError, OSError, pickle.UnpicklingError) as exc:
            code = proc.wait(timeout=10) if proc.poll() is None else proc.returncode
            raise EmbeddingModelError(f"{doing}: the worker process ended (exit code {code}; {exc})") from exc
        if kind == "error":
            raise EmbeddingModelError(f"{doing}: {payload}")
        return payload

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors for `texts` from the child (started here when not running). A child found gone,
        or that dies on the batch, is started again once; EmbeddingModelError when it cannot start,
        reports an error, or dies twice."""
        with self._lock:
            for attempt in (1, 2):
                if self._proc is None or self._proc.poll() is not None:
                    self._proc = self._start()
                proc = self._proc
                assert proc.stdin is not None
                try:
                    _send(proc.stdin, list(texts))
                    answer = self._answer(proc, f"embedding {len(texts)} texts", BATCH_TIMEOUT_S)
                    return np.asarray(answer, dtype=np.float32)
                except (OSError, EmbeddingModelError) as exc:
                    if proc.poll() is None and not isinstance(exc, OSError):
                        raise  # the child reported an error and lives on: not a crash
                    self._stop(proc)
                    self._proc = None
                    if attempt == 2:
                        raise EmbeddingModelError(f"embedding worker ended twice: {exc}") from exc
                    log.warning("embedding worker %d ended (%s); starting another", proc.pid, exc)
            raise AssertionError("unreachable")

    def close(self) -> None:
        """Stop the child (after an index pass); the next embed starts another."""
        with self._lock:
            proc, self._proc = self._proc, None
        if proc is not None:
            self._stop(proc)
            log.info("embedding worker %d stopped", proc.pid)

    def _stop(self, proc: subprocess.Popen[bytes]) -> None:
        for stream in (proc.stdin, proc.stdout):
            try:
                if stream is not None:
                    stream.close()  # stdin's end: the child's loop ends
            except OSError:
                pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if (forward := self._log_threads.pop(proc.pid, None)) is not None:
            forward.join(timeout=5)  # its last lines logged before the stop is


def _log_lines(stream: IO[bytes], pid: int) -> None:
    """Log each line the child writes on stderr, at the level its own log line names ("WARNING
    name: message", main's format); a line without one continues the one before (a traceback), or,
    first of all, is logged as a warning (a library printing: unexpected)."""
    level = logging.WARNING
    try:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip()
            head, _, rest = line.partition(" ")
            named = logging.getLevelName(head)
            if isinstance(named, int) and rest:
                level, line = named, rest
            if line:
                log.log(level, "embedding worker %d: %s", pid, line)
    except (OSError, ValueError):  # the stream closed under the read: the child is gone
        pass
    finally:
        stream.close()


def serve(model: str, backend: str, max_tokens: int, requests: IO[bytes], answers: IO[bytes]) -> int:
    """The child's loop: load the embedder, say so, then answer each batch until stdin ends."""
    from .embedding import make_embedder

    try:
        embedder = make_embedder(model, backend, max_tokens)
        ready = {"name": embedder.name, "dim": embedder.dim, **embedder.describe()}
    except Exception as exc:  # noqa: BLE001 (whatever stops it is the parent's message)
        _send(answers, ("error", f"{type(exc).__name__}: {exc}"))
        return 1
    _send(answers, ("ready", ready))
    while True:
        try:
            texts = _receive(requests)
        except EOFError:
            return 0
        try:
            _send(answers, ("ok", embedder.embed(texts)))
        except Exception as exc:  # noqa: BLE001 (one bad batch is reported; the worker goes on)
            log.exception("embedding %d texts failed", len(texts))
            _send(answers, ("error", f"{type(exc).__name__}: {exc}"))


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: python -m retrieval.embed_worker MODEL BACKEND MAX_TOKENS", file=sys.stderr)
        return 2
    # The answers go to a private copy of stdout; what libraries print goes to stderr.
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    level = os.environ.get(LOG_LEVEL_VARIABLE, "")
    logging.basicConfig(
        level=int(level) if level.isdigit() else logging.INFO,
        stream=sys.stderr,
        format="%(levelname)s %(name)s: %(message)s",  # _log_lines reads the level back
    )
    return serve(argv[0], argv[1], int(argv[2]), sys.stdin.buffer, answers)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
