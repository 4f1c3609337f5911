"""The model catalogue, the models folder, and the one place a model setting becomes a file.

A model setting (`modelPath`, `model`, CODE_KB_MODEL, `--model`) is either a path to a GGUF file
or a catalogue name, optionally with a quantization: `qwen2.5-coder-1.5b` or
`qwen2.5-coder-1.5b:Q8_0`. `local_model_path` turns either into a file on disk, or says which
`code-kb model pull` command fetches it. `resolve_pull` turns a name (or a direct URL) into the
files to download, through huggingface_hub's API.

What the catalogue knows, and how: the Hugging Face repositories and their file naming were
checked against public references (the repositories' own file lists as other projects cite them:
Qwen's official base GGUF repositories, TheBloke's DeepSeek-Coder base conversions, second-state's
StarCoder2 conversions; Sweep's next-edit repositories and their Q8_0 file names as Sweep's own
JetBrains plugin and other clients name them). No entry pins a file size or sha256: those come at pull time from the
Hub's own file metadata (`model_info(files_metadata=True)`: the size of every file, and the sha256
of every LFS file, which GGUFs are), so every catalogue download is verified by size and sha256.
A direct URL is verified by the size its server announces, and by sha256 only when given one
(`--sha256`). The hyperparameters below (layers, KV heads, head size, trained context) are the
models' published config.json values; they serve only to estimate memory before a download
(`code-kb model list`); `code-kb model info` reads the real values from the GGUF.

Added for issue 18, with the GGUF repositories that other projects' configurations pull them from:
Seed-Coder-8B-Base (mradermacher's conversion, `Seed-Coder-8B-Base.Q4_K_M.gguf` and siblings; its
shape from the Seed-Coder technical report: 36 layers, 8 KV heads of 128), Mellum-4b-base
(JetBrains' own GGUF repository, one Q8_0 file; its layer and head counts are estimates for a 4B
Llama-style model with grouped-query attention, not read from its config.json) and
Qwen3-Coder-30B-A3B (unsloth's conversion of the instruct model, the only 30B-A3B release, trained
for FIM as every Qwen3-Coder is; 48 layers, 4 KV heads of 128, a mixture of experts with 3B active).
Licences as their model cards state them.
"""

from __future__ import annotations

import logging
import os
import re
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .download import DownloadError, RemoteFile, remote_size
from .errors import EngineError, ModelNotFoundError

log = logging.getLogger(__name__)

# Bits per weight of llama.cpp's quantization mixes, as llama.cpp's quantize tool reports them for
# 7B-class models: for size estimates only.
QUANT_BITS = {"Q4_K_M": 4.89, "Q5_K_M": 5.70, "Q6_K": 6.56, "Q8_0": 8.50, "F16": 16.0}
PREFERRED_QUANTS = ("Q4_K_M", "Q8_0", "Q5_K_M", "Q6_K", "F16")  # which pulled file a bare name picks

# "completion": a FIM-trained base model (`model`); "next-edit": a model that rewrites the window
# around the cursor from the recent changes (`next_edit_model`, engine/next_edit/).
ModelKind = Literal["completion", "next-edit"]


@dataclass(frozen=True)
class CatalogueEntry:
    name: str  # what users type: `code-kb model pull qwen2.5-coder-1.5b`
    title: str
    family: str  # the FIM template (engine/templates.py)
    params_b: float  # billions of parameters
    repo: str  # Hugging Face repository of base-model (FIM-trained) GGUF files
    n_layer: int
    n_head_kv: int
    head_dim: int
    context_tokens: int  # trained context length
    note: str = ""
    kind: ModelKind = (
        "completion"  # what code-kb uses it for; the hardware's choice is always a completion model
    )
    # Quantization -> exact file name, for repositories whose names the quantization pattern does not
    # match (Sweep's 1.5B: `sweep-next-edit-1.5b.q8_0.v2.gguf`); empty: any `...{quant}.gguf`.
    files: tuple[tuple[str, str], ...] = ()
    licence: str = ""  # as the model card states it

    @property
    def quants(self) -> tuple[str, ...]:
        """The quantizations the repository is known to have, when the entry names its files."""
        return tuple(q for q, _ in self.files)

    def file_for(self, quant: str) -> str | None:
        return dict(self.files).get(quant.upper())

    def weights_bytes(self, quant: str) -> int:
        """Estimated file size at a quantization."""
        return int(self.params_b * 1e9 * QUANT_BITS.get(quant.upper(), 8.5) / 8)

    def kv_bytes(self, n_ctx: int, cache_type: str = "f16") -> int:
        from .hardware import BYTES_PER_VALUE

        return int(self.n_layer * self.n_head_kv * 2 * self.head_dim * BYTES_PER_VALUE[cache_type] * n_ctx)


CATALOGUE: tuple[CatalogueEntry, ...] = (
    CatalogueEntry(
        "qwen2.5-coder-0.5b",
        "Qwen2.5-Coder 0.5B",
        "qwen2.5-coder",
        0.49,
        "Qwen/Qwen2.5-Coder-0.5B-GGUF",
        24,
        2,
        64,
        32768,
        "fastest; for slow CPUs",
        licence="Apache-2.0",
    ),
    CatalogueEntry(
        "qwen2.5-coder-1.5b",
        "Qwen2.5-Coder 1.5B",
        "qwen2.5-coder",
        1.54,
        "Qwen/Qwen2.5-Coder-1.5B-GGUF",
        28,
        2,
        128,
        32768,
        "recommended on a laptop CPU",
        licence="Apache-2.0",
    ),
    CatalogueEntry(
        "qwen2.5-coder-3b",
        "Qwen2.5-Coder 3B",
        "qwen2.5-coder",
        3.09,
        "Qwen/Qwen2.5-Coder-3B-GGUF",
        36,
        2,
        128,
        32768,
        licence="Qwen Research (non-commercial)",
    ),
    CatalogueEntry(
        "qwen2.5-coder-7b",
        "Qwen2.5-Coder 7B",
        "qwen2.5-coder",
        7.62,
        "Qwen/Qwen2.5-Coder-7B-GGUF",
        28,
        4,
        128,
        32768,
        "best quality; wants a GPU",
        licence="Apache-2.0",
    ),
    CatalogueEntry(
        "deepseek-coder-1.3b",
        "DeepSeek-Coder 1.3B base",
        "deepseek-coder",
        1.35,
        "TheBloke/deepseek-coder-1.3b-base-GGUF",
        24,
        16,
        128,
        16384,
        licence="DeepSeek License",
    ),
    CatalogueEntry(
        "deepseek-coder-6.7b",
        "DeepSeek-Coder 6.7B base",
        "deepseek-coder",
        6.74,
        "TheBloke/deepseek-coder-6.7B-base-GGUF",
        32,
        32,
        128,
        16384,
        licence="DeepSeek License",
    ),
    CatalogueEntry(
        "starcoder2-3b",
        "StarCoder2 3B",
        "starcoder2",
        3.03,
        "second-state/StarCoder2-3B-GGUF",
        30,
        2,
        128,
        16384,
        licence="BigCode OpenRAIL-M",
    ),
    CatalogueEntry(
        "starcoder2-7b",
        "StarCoder2 7B",
        "starcoder2",
        7.17,
        "second-state/StarCoder2-7B-GGUF",
        32,
        4,
        128,
        16384,
        licence="BigCode OpenRAIL-M",
    ),
    CatalogueEntry(
        "seed-coder-8b",
        "Seed-Coder 8B base",
        "seed-coder",
        8.25,
        "mradermacher/Seed-Coder-8B-Base-GGUF",
        36,
        8,
        128,
        32768,
        "suffix-first FIM; wants a GPU",
        licence="MIT",
    ),
    CatalogueEntry(
        "mellum-4b",
        "Mellum 4B base",
        "mellum",
        4.02,
        "JetBrains/Mellum-4b-base-gguf",
        32,
        8,
        128,
        8192,
        "suffix-first FIM; 8k context",
        files=(("Q8_0", "mellum-4b-base.Q8_0.gguf"),),
        licence="Apache-2.0",
    ),
    CatalogueEntry(
        "qwen3-coder-30b-a3b",
        "Qwen3-Coder 30B-A3B (instruct, FIM-trained)",
        "qwen2.5-coder",
        30.5,
        "unsloth/Qwen3-Coder-30B-A3B-Instruct-GGUF",
        48,
        4,
        128,
        262144,
        "GPU class: 3B active of 30B (MoE); 19 GB at Q4_K_M",
        licence="Apache-2.0",
    ),
    # Sweep's next-edit models: Qwen2.5-Coder 1.5B / 0.5B fine-tunes (their shapes), one Q8_0 file each,
    # 8k context as Sweep trained them (the 0.5B's taken to be its sibling's; `model info` reads it).
    CatalogueEntry(
        "sweep-next-edit-1.5b",
        "Sweep Next-Edit 1.5B",
        "qwen2.5-coder",
        1.54,
        "sweepai/sweep-next-edit-1.5B",
        28,
        2,
        128,
        8192,
        "next edits (nextEditModel)",
        kind="next-edit",
        files=(("Q8_0", "sweep-next-edit-1.5b.q8_0.v2.gguf"),),
    ),
    CatalogueEntry(
        "sweep-next-edit-0.5b",
        "Sweep Next-Edit 0.5B",
        "qwen2.5-coder",
        0.49,
        "sweepai/sweep-next-edit-0.5B",
        24,
        2,
        64,
        8192,
        "next edits, faster (nextEditModel)",
        kind="next-edit",
        files=(("Q8_0", "sweep-next-edit-0.5b.q8_0.gguf"),),
    ),
)
BY_NAME = {e.name: e for e in CATALOGUE}
NEXT_EDIT_NAMES = tuple(e.name for e in CATALOGUE if e.kind == "next-edit")


class ModelNotPulledError(EngineError):
    """A catalogue name whose file is not in the models folder yet."""

    def __init__(self, spec: str) -> None:
        super().__init__(f"model {spec} is not downloaded yet; run: code-kb model pull {spec}")


def models_dir() -> Path:
    """$CODE_KB_MODELS, else $XDG_CACHE_HOME/code-kb/models, else ~/.cache/code-kb/models."""
    explicit = os.environ.get("CODE_KB_MODELS")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "code-kb" / "models"


def parse_name(spec: str) -> tuple[CatalogueEntry, str | None] | None:
    """(entry, quantization or None) for `name` or `name:QUANT`; None when `spec` is no catalogue name."""
    name, _, quant = spec.strip().partition(":")
    entry = BY_NAME.get(name.lower())
    if entry is None:
        return None
    return entry, (quant.upper() or None)


def is_url(spec: str) -> bool:
    return urllib.parse.urlsplit(spec).scheme in ("http", "https")


def _loose_quant_pattern(quant: str) -> re.Pattern:
    # `sweep-next-edit-1.5b.q8_0.v2.gguf`: the quantization anywhere between separators
    return re.compile(rf"(?:^|[-._]){re.escape(quant)}(?:[-._]|$)", re.I)


def _quant_pattern(quant: str) -> re.Pattern:
    # `...-q4_k_m.gguf`, `....Q4_K_M.gguf`, and split files `...-q4_k_m-00001-of-00002.gguf`
    return re.compile(rf"(?:^|[-._]){re.escape(quant)}(?:-(\d{{5}})-of-(\d{{5}}))?\.gguf$", re.I)


def pulled_files(entry: CatalogueEntry, quant: str) -> list[Path]:
    """The files of a pulled model at a quantization, first shard first; [] when not pulled."""
    folder = models_dir() / entry.name
    if not folder.is_dir():
        return []
    if entry.files:  # the name it knows, else a renamed upload pulled in its stead
        named = entry.file_for(quant)
        if named and (folder / named).is_file():
            return [folder / named]
        loose = _loose_quant_pattern(quant)
        return sorted(
            p
            for p in folder.iterdir()
            if p.is_file() and p.name.lower().endswith(".gguf") and loose.search(p.name)
        )[:1]
    pattern = _quant_pattern(quant)
    return sorted(p for p in folder.iterdir() if p.is_file() and pattern.search(p.name))


def pulled_quants(entry: CatalogueEntry) -> list[str]:
    """The quantizations of `entry` in the models folder, preferred first."""
    folder = models_dir() / entry.name
    if entry.files:
        return [q for q in entry.quants if pulled_files(entry, q)]
    found = []
    if folder.is_dir():
        for p in folder.iterdir():
            m = re.search(r"[-._]([a-z0-9_]+?)(?:-\d{5}-of-\d{5})?\.gguf$", p.name, re.I)
            if m and p.is_file():
                found.append(m.group(1).upper())
    ranked = [q for q in PREFERRED_QUANTS if q in found]
    return ranked + sorted(set(found) - set(ranked))


def local_model_path(spec: str) -> str:
    """The GGUF file a model setting names: a path as it is (expanded), or the pulled file of a
    catalogue name. Raises ModelNotPulledError (with the `pull` command to run) for a name not yet
    pulled, ModelNotFoundError for a path that is no file."""
    parsed = parse_name(spec)
    if parsed is None:
        path = Path(spec).expanduser()
        if not path.is_file():
            raise ModelNotFoundError(str(path))
        return str(path)
    entry, quant = parsed
    quants = [quant] if quant else pulled_quants(entry)
    for q in quants:
        files = pulled_files(entry, q)
        if files:
            return str(files[0])  # llama.cpp finds the other shards of a split file beside the first
    raise ModelNotPulledError(spec.strip())


@dataclass(frozen=True)
class PullPlan:
    """What `code-kb model pull` fetches: one file, or the shards of a split one (first is the model)."""

    spec: str
    files: tuple[RemoteFile, ...]
    quant: str | None
    source: str  # the repository, or the URL

    @property
    def path(self) -> Path:
        return self.files[0].dest


def hub_endpoint() -> str:
    """HF_ENDPOINT (a mirror, or a test server), read at call time; else the Hub itself."""
    return (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")


def resolve_pull(spec: str, quant: str | None = None, *, sha256: str | None = None) -> PullPlan:
    """The files a `pull` of `spec` (catalogue name, `name:QUANT`, or URL) downloads, with their
    expected sizes and sha256 as the source states them. `quant` overrides the one in `spec`; a
    name without either gets the hardware's choice (engine/hardware.py)."""
    if is_url(spec):
        name = Path(urllib.parse.unquote(urllib.parse.urlsplit(spec).path)).name
        if not name.lower().endswith(".gguf"):
            raise DownloadError(f"{spec} does not name a .gguf file")
        size = remote_size(spec)  # what the server announces; a transfer that ends short of it fails
        return PullPlan(spec, (RemoteFile(spec, models_dir() / name, size, sha256),), None, spec)
    parsed = parse_name(spec)
    if parsed is None:
        raise DownloadError(
            f"unknown model {spec!r}; give a catalogue name ({', '.join(BY_NAME)}) or a URL "
            "of a .gguf file; `code-kb model list` shows the catalogue"
        )
    entry, named_quant = parsed
    quant = (quant or named_quant or "").upper() or None
    if quant is None and entry.quants:  # the repository's own file (Sweep's: one Q8_0)
        quant = entry.quants[0]
    if quant is None:
        from .hardware import choose, detect

        choice = choose(detect())
        quant = choice.quant
    files = _hub_files(entry, quant)
    if sha256 and len(files) == 1:
        files = [RemoteFile(files[0].url, files[0].dest, files[0].size, sha256)]
    return PullPlan(f"{entry.name}:{quant}", tuple(files), quant, entry.repo)


def _hub_files(entry: CatalogueEntry, quant: str) -> list[RemoteFile]:
    """The repository's file(s) for a quantization, with the Hub's sizes and LFS sha256, pinned to
    the commit the listing came from (so a resumed download fetches the same bytes)."""
    from huggingface_hub import HfApi, hf_hub_url
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    endpoint = hub_endpoint()
    try:
        info = HfApi(endpoint=endpoint).model_info(entry.repo, files_metadata=True)
    except OfflineModeIsEnabled as exc:
        raise DownloadError(
            "HF_HUB_OFFLINE is set: pulling from Hugging Face needs the network; unset it for this command"
        ) from exc
    except HfHubHTTPError as exc:
        raise DownloadError(f"cannot list {entry.repo} on {endpoint}: {exc}") from exc
    except OSError as exc:  # httpx's connection errors are not OSErrors; see below
        raise DownloadError(f"cannot reach {endpoint}: {exc}") from exc
    except Exception as exc:  # httpx.ConnectError and friends, without importing httpx ourselves
        if type(exc).__module__.split(".")[0].startswith("httpx"):
            raise DownloadError(f"cannot reach {endpoint}: {exc}") from exc
        raise
    pattern = _quant_pattern(quant)
    siblings = sorted(
        (s for s in info.siblings or [] if pattern.search(s.rfilename)), key=lambda s: s.rfilename
    )
    if entry.files:
        siblings = _named_sibling(entry, quant, info.siblings or [])
    if not siblings and entry.files:
        listed = ", ".join(sorted(s.rfilename for s in info.siblings or [] if s.rfilename.endswith(".gguf")))
        raise DownloadError(
            f"{entry.repo} has no {quant} GGUF (code-kb knows "
            f"{', '.join(f'{q}: {n}' for q, n in entry.files)}); it lists {listed or 'no GGUF'}"
        )
    if not siblings:
        available = sorted(
            {
                m.group(1).upper()
                for s in info.siblings or []
                if (m := re.search(r"[-._]([a-z0-9_]+?)(?:-\d{5}-of-\d{5})?\.gguf$", s.rfilename, re.I))
            }
        )
        raise DownloadError(
            f"{entry.repo} has no {quant} GGUF; it has {', '.join(available) or 'none'} "
            f"(pull {entry.name}:QUANT)"
        )
    folder = models_dir() / entry.name
    files = []
    for s in siblings:
        sha = s.lfs.sha256 if s.lfs is not None else None
        size = s.lfs.size if s.lfs is not None else s.size
        url = hf_hub_url(entry.repo, s.rfilename, revision=info.sha or "main", endpoint=endpoint)
        files.append(RemoteFile(url, folder / Path(s.rfilename).name, size, sha))
    return files


def _named_sibling(entry: CatalogueEntry, quant: str, siblings: list) -> list:
    """The entry's file for `quant` in the repository's listing: the name it knows, else the one GGUF
    whose name holds the quantization (a renamed upload, e.g. `.v3`), else none."""
    named = entry.file_for(quant)
    exact = [s for s in siblings if s.rfilename == named]
    if exact:
        return exact
    loose = _loose_quant_pattern(quant)
    renamed = [s for s in siblings if s.rfilename.lower().endswith(".gguf") and loose.search(s.rfilename)]
    if len(renamed) == 1:
        log.warning("%s has no %s; pulling %s instead", entry.repo, named, renamed[0].rfilename)
        return renamed
    return []
