"""The FAISS vector file: its name, what it holds, exact search or IVF, and reading and writing it.

SQLite stays the source of truth: every vector here is derived from the cached embeddings, so a file
that fails a check is rebuilt, never trusted. Two digests tie the file to SQLite: the sha1 of the file
as saved (checked before FAISS parses it) and the sha1 of the chunk ids it holds.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import faiss
import numpy as np

from .errors import IndexWriteError

log = logging.getLogger(__name__)

# One query vector at a time gains nothing from OpenMP threads, and right after torch embedded the
# query they contend with torch's own: measured on 2 cores, one retrieval took 23 ms with FAISS on
# two threads and 15-17 ms on one (pip's 6,560 chunks, benchmarks/retrieval_quality.py).
faiss.omp_set_num_threads(1)

FILE_NAME = "vectors.faiss"


class VectorFileError(Exception):
    """The vector file cannot be used as it is (damaged, or not the file that was saved); it is rebuilt."""


def vector_path(directory: Path) -> Path:
    return directory / FILE_NAME


def ids_digest(ids: Sequence[int]) -> str:
    """What a vector file holds, as recorded in the index's meta table (`vector_ids`)."""
    return hashlib.sha1(np.asarray(ids, dtype=np.int64).tobytes()).hexdigest()


def file_sha1(path: Path) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def read_vectors(path: Path, recorded_sha1: str | None) -> faiss.Index:
    """The vector file, or VectorFileError saying why it cannot be used.

    The digest recorded at the last save is checked before FAISS parses the file: a damaged
    header can make it allocate without bound (std::bad_alloc) rather than fail cleanly."""
    if recorded_sha1 is not None and file_sha1(path) != recorded_sha1:
        raise VectorFileError(f"vector index {path} does not match what was saved")
    try:
        return faiss.read_index(str(path))
    except (RuntimeError, MemoryError) as exc:
        raise VectorFileError(f"vector index {path} is unreadable ({exc})") from exc


def holds(index: faiss.Index, ids: Sequence[int], recorded_ids: str | None, dim: int | None = None) -> bool:
    """Whether `index` holds exactly the vectors of `ids` (of `dim` dimensions, when given)."""
    if dim is not None and index.d != dim:
        return False
    return index.ntotal == len(ids) and recorded_ids == ids_digest(ids)


def write_vectors(index: faiss.Index, path: Path) -> str:
    """Write the vector file whole or not at all (a temp file, then an atomic rename); its sha1."""
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    try:
        faiss.write_index(index, str(tmp))
        os.chmod(tmp, 0o600)
        digest = file_sha1(tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as exc:
        tmp.unlink(missing_ok=True)
        raise IndexWriteError(
            f"cannot write the vector index {path} ({exc}); free disk space or make "
            "the folder writable (the previous index is kept)"
        ) from exc
    return digest


def is_ivf(index: faiss.Index) -> bool:
    return isinstance(faiss.downcast_index(index), faiss.IndexIVF)


def wants_rebuild(index: faiss.Index, ivf_threshold: int, ivf_trained_on: int) -> bool:
    """Exact search below the threshold; IVF above it, retrained when the index outgrew its training."""
    n = index.ntotal
    if is_ivf(index):
        return n < ivf_threshold // 2 or n > 4 * max(ivf_trained_on, 1)
    return n >= ivf_threshold


def build_vectors(
    dim: int, ids: list[int], vectors_for: Callable[[list[int]], np.ndarray], ivf_threshold: int
) -> faiss.Index:
    """A vector index of `ids`: exact below `ivf_threshold` vectors, IVF (trained on them) above."""
    index: faiss.Index
    if len(ids) >= ivf_threshold:
        # About 4 sqrt(n) lists, but at least 39 training points a list, as k-means wants.
        nlist = max(1, min(int(4 * len(ids) ** 0.5), len(ids) // 39))
        ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        step = len(ids) // (64 * nlist)
        sample = ids if len(ids) <= 64 * nlist else [ids[i] for i in range(0, len(ids), step)]
        ivf.train(vectors_for(sample))
        ivf.nprobe = min(nlist, max(8, nlist // 16))
        log.info("vector index: IVF with %d lists over %d vectors (nprobe %d)", nlist, len(ids), ivf.nprobe)
        index = ivf
    else:
        index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
    for i in range(0, len(ids), 4096):
        part = ids[i : i + 4096]
        index.add_with_ids(vectors_for(part), np.asarray(part, dtype=np.int64))
    return index


def describe_vectors(index: faiss.Index | None) -> str:
    if index is not None and is_ivf(index):
        ivf = faiss.extract_index_ivf(index)
        return f"IVF, {ivf.nlist} lists, nprobe {ivf.nprobe} (approximate)"
    return "flat inner product (exact)"
