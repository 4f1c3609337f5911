"""What this machine offers a model (cores, memory, GPU backends and their memory), what a model's KV
cache will take of it, and what code-kb chooses for it: model size, quantization, budget, KV type, offload."""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

BYTES_PER_VALUE = {"f16": 2.0, "q8_0": 34 / 32}  # q8_0: blocks of 32 int8 plus one f16 scale


def memory_bytes() -> int | None:
    """Physical memory, or None where the platform does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def kv_cache_bytes(metadata: dict[str, str], n_ctx: int, cache_type: str) -> int | None:
    """Bytes of K and V for `n_ctx` tokens, from a GGUF's hyperparameters; None if they are missing."""
    arch = metadata.get("general.architecture")
    try:
        n_layer = int(metadata[f"{arch}.block_count"])
        n_head = int(metadata[f"{arch}.attention.head_count"])
        n_head_kv = int(metadata.get(f"{arch}.attention.head_count_kv", n_head))
        n_embd = int(metadata[f"{arch}.embedding_length"])
    except (KeyError, ValueError):
        return None
    head_k = int(metadata.get(f"{arch}.attention.key_length", n_embd // n_head))
    head_v = int(metadata.get(f"{arch}.attention.value_length", n_embd // n_head))
    per_token = n_layer * n_head_kv * (head_k + head_v) * BYTES_PER_VALUE[cache_type]
    return int(per_token * n_ctx)


# -- what this machine has, and what code-kb chooses for it ------------------------------

GGML_DEVICE_TYPES = {0: "cpu", 1: "gpu", 2: "igpu", 3: "accel"}


@dataclass(frozen=True)
class Device:
    """One ggml compute device (the CPU counts as one)."""

    name: str  # CUDA0, Metal, Vulkan0, CPU
    backend: str  # the ggml backend registry: CUDA, Metal, Vulkan, CPU, ...
    kind: str  # cpu, gpu, igpu, accel
    description: str
    total_bytes: int | None
    free_bytes: int | None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Machine:
    cpu_cores: int  # cores this process may run on
    ram_bytes: int | None
    gpu_offload: bool  # llama-cpp-python was built with a GPU backend that found a device
    backends: tuple[str, ...]  # the GPU backends llama.cpp was built with (CUDA, Metal, Vulkan, ...)
    devices: tuple[Device, ...]
    cpu_features: str  # llama.cpp's system info line (SIMD features)

    @property
    def gpus(self) -> tuple[Device, ...]:
        return tuple(d for d in self.devices if d.kind in ("gpu", "igpu"))

    @property
    def vram_bytes(self) -> int | None:
        """Free memory of the largest GPU (llama.cpp splits layers across several; we plan for one)."""
        sizes = [size for d in self.gpus if (size := d.free_bytes or d.total_bytes)]
        return max(sizes) if sizes else None

    def to_dict(self) -> dict:
        return {
            "cpu_cores": self.cpu_cores,
            "ram_bytes": self.ram_bytes,
            "gpu_offload": self.gpu_offload,
            "backends": list(self.backends),
            "vram_bytes": self.vram_bytes,
            "devices": [d.to_dict() for d in self.devices],
            "cpu_features": self.cpu_features,
        }


def cpu_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _ggml_devices() -> list[Device]:
    """The devices llama.cpp's ggml sees, through its C API (llama-cpp-python binds none of it)."""
    import ctypes

    import llama_cpp

    lib_dir = Path(llama_cpp.__file__).parent / "lib"
    names = {"linux": "libggml.so", "darwin": "libggml.dylib", "win32": "ggml.dll"}
    lib = lib_dir / names.get(sys.platform, "libggml.so")
    if not lib.exists():
        return []
    ggml = ctypes.CDLL(str(lib))
    p, size = ctypes.c_void_p, ctypes.c_size_t
    for fn, res, args in (
        ("ggml_backend_dev_count", size, []),
        ("ggml_backend_dev_get", p, [size]),
        ("ggml_backend_dev_name", ctypes.c_char_p, [p]),
        ("ggml_backend_dev_description", ctypes.c_char_p, [p]),
        ("ggml_backend_dev_type", ctypes.c_int, [p]),
        ("ggml_backend_dev_backend_reg", p, [p]),
        ("ggml_backend_reg_name", ctypes.c_char_p, [p]),
        ("ggml_backend_dev_memory", None, [p, ctypes.POINTER(size), ctypes.POINTER(size)]),
    ):
        getattr(ggml, fn).restype = res
        getattr(ggml, fn).argtypes = args
    devices = []
    for i in range(ggml.ggml_backend_dev_count()):
        dev = ggml.ggml_backend_dev_get(i)
        free, total = size(), size()
        ggml.ggml_backend_dev_memory(dev, ctypes.byref(free), ctypes.byref(total))
        reg = ggml.ggml_backend_dev_backend_reg(dev)
        devices.append(
            Device(
                name=(ggml.ggml_backend_dev_name(dev) or b"?").decode(),
                backend=(ggml.ggml_backend_reg_name(reg) or b"?").decode() if reg else "?",
                kind=GGML_DEVICE_TYPES.get(ggml.ggml_backend_dev_type(dev), "other"),
                description=(ggml.ggml_backend_dev_description(dev) or b"").decode(errors="replace"),
                total_bytes=total.value or None,
                free_bytes=free.value or None,
            )
        )
    return devices


@functools.lru_cache(maxsize=1)
def detect() -> Machine:
    """This machine as llama.cpp sees it (cached: devices do not come and go while we run)."""
    import llama_cpp

    info = llama_cpp.llama_print_system_info().decode(errors="replace").strip()
    try:
        devices = tuple(_ggml_devices())
    except (OSError, AttributeError) as exc:  # a build without the device API: fall back on the flags
        log.debug("ggml device query failed: %s", exc)
        devices = ()
    backends = tuple(dict.fromkeys(d.backend for d in devices if d.kind != "cpu"))
    return Machine(
        cpu_cores=cpu_cores(),
        ram_bytes=memory_bytes(),
        gpu_offload=bool(llama_cpp.llama_supports_gpu_offload()),
        backends=backends,
        devices=devices,
        cpu_features=info,
    )


@dataclass(frozen=True)
class Choice:
    """What code-kb picks for a machine, and why (`code-kb status` prints the reasons)."""

    model: str  # a catalogue name (engine/models.py)
    quant: str
    budget_tokens: int
    kv_cache_type: str
    gpu_layers: str  # "all" or "none": a model's own size refines it at load time (gpu_layers_for)
    reasons: tuple[str, ...]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


GIB = 1 << 30


def choose(machine: Machine) -> Choice:
    """Model size, quantization, prompt budget, KV cache type and GPU offload for this machine.

    A GPU evaluates long prompts in stride, so it gets the larger budget and, memory permitting,
    a larger model at 8 bits. A CPU's latency grows with the model's size and the prompt's length,
    so it gets 4-bit weights, the smaller budget, and a model sized to its cores and memory.
    """
    from .config import DEFAULT_BUDGET_CPU_TOKENS, DEFAULT_BUDGET_GPU_TOKENS

    reasons = []
    ram = machine.ram_bytes or 0
    vram = machine.vram_bytes if machine.gpu_offload else None
    if vram:
        gpu = max(machine.gpus, key=lambda d: d.free_bytes or d.total_bytes or 0)
        reasons.append(
            f"GPU offload: {gpu.backend} device {gpu.name} ({gpu.description}) with {vram / GIB:.1f} GiB free"
        )
        if vram >= 14 * GIB:
            model, quant = "qwen2.5-coder-7b", "Q8_0"
        elif vram >= 7 * GIB:
            model, quant = "qwen2.5-coder-3b", "Q8_0"
        elif vram >= 3 * GIB:
            model, quant = "qwen2.5-coder-1.5b", "Q8_0"
        else:
            model, quant = "qwen2.5-coder-1.5b", "Q4_K_M"
        reasons.append(
            f"{model} {quant}: the largest model whose weights and a 16k-token KV cache fit that memory"
        )
        budget = DEFAULT_BUDGET_GPU_TOKENS
        reasons.append(f"prompt budget {budget} tokens: a GPU evaluates long prompts quickly")
        gpu_layers = "all"
    else:
        if machine.gpu_offload:
            reasons.append("GPU offload is built in but no GPU memory was reported: planning for the CPU")
        else:
            reasons.append(
                "no GPU offload (llama-cpp-python was built for the CPU only; rebuild it with "
                'CMAKE_ARGS="-DGGML_CUDA=on", -DGGML_METAL=on or -DGGML_VULKAN=on for a GPU)'
            )
        cores = machine.cpu_cores
        if cores >= 8 and ram >= 16 * GIB:
            model = "qwen2.5-coder-3b"
        elif cores >= 4 and ram >= 8 * GIB:
            model = "qwen2.5-coder-1.5b"
        else:
            model = "qwen2.5-coder-0.5b"
        quant = "Q4_K_M"
        reasons.append(
            f"{model} {quant}: {cores} CPU cores and {ram / GIB:.0f} GiB RAM; on a CPU latency "
            "grows with model size, and 4-bit weights are the fastest to read"
        )
        budget = DEFAULT_BUDGET_CPU_TOKENS
        reasons.append(f"prompt budget {budget} tokens: what a CPU evaluates in a few seconds cold")
        gpu_layers = "none"
    kv = "auto"
    reasons.append("KV cache f16, or q8_0 where f16 would take over a quarter of the memory it lives in")
    return Choice(model, quant, budget, kv, gpu_layers, tuple(reasons))


def kv_cache_type_for(kv_f16_bytes: int | None, machine: Machine, on_gpu: bool) -> str:
    """f16 unless its cache would take more than a quarter of the memory it lives in (VRAM on a GPU)."""
    total = (machine.vram_bytes if on_gpu else None) or machine.ram_bytes
    return "q8_0" if kv_f16_bytes and total and kv_f16_bytes > total / 4 else "f16"


def gpu_layers_for(model_bytes: int, n_layer: int | None, kv_bytes: int | None, machine: Machine) -> int:
    """-1 (every layer) when the weights and the KV cache fit the GPU with room to spare, else the
    number of layers that do (0 without a GPU)."""
    if not machine.gpu_offload:
        return 0
    vram = machine.vram_bytes
    if vram is None or not n_layer:
        return -1  # offload is built in but the size is unknown: let llama.cpp try all
    room = vram * 0.9 - (kv_bytes or 0) - 512 * (1 << 20)  # compute buffers and the driver's share
    if model_bytes <= room:
        return -1
    return max(0, min(n_layer, int(n_layer * room / model_bytes)))
