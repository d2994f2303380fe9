"""Device choice (cuda → mps → cpu unless the config names one), backend settings, and torch thread settings."""

from __future__ import annotations

import os

import torch

from . import DETERMINISTIC_CUBLAS_WORKSPACE
from .errors import ConfigError


def resolve_device(name: str = "auto") -> torch.device:
    """`auto` picks cuda, then mps, then cpu; an explicit device that is not available is a ConfigError.

    `auto` and a bare `cuda` mean `cuda:$LOCAL_RANK` under torchrun (one GPU per process) and `cuda:0` otherwise;
    `cuda:N` is taken as given."""
    if name == "auto":
        if torch.cuda.is_available():
            return resolve_device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "mps":
        if not _mps_available():
            raise ConfigError("device mps was requested but Apple's Metal backend is not available here")
        return torch.device("mps")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name} was requested but this torch build has no usable CUDA GPU")
        device = torch.device(name) if name != "cuda" else torch.device("cuda", local_rank())
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"device {device} does not exist: {torch.cuda.device_count()} CUDA device(s) found")
        return device
    raise ConfigError(f"device must be auto, cpu, cuda, cuda:N or mps, got {name!r}")


def local_rank() -> int:
    """This process's GPU index under torchrun (`LOCAL_RANK`), 0 otherwise; a malformed value is a ConfigError."""
    value = os.environ.get("LOCAL_RANK", "0").strip() or "0"
    if not value.isdigit():
        raise ConfigError(f"LOCAL_RANK must be a GPU index (0, 1, …), got {value!r}")
    return int(value)


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def apply_threads(threads: int) -> None:
    """Set torch's intra-op thread count (0 leaves torch's default)."""
    if threads and threads > 0 and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def configure_backends(device: torch.device, *, deterministic: bool = False, conv: bool = False) -> None:
    """Process-wide settings for a run on `device`.

    CUDA: TF32 matmuls (`set_float32_matmul_precision("high")`, ~8× the fp32 rate on Ampere and later, 10-bit
    mantissa products with fp32 accumulation) and, for conv backbones, `cudnn.benchmark` (the fastest algorithm
    per shape). `deterministic`: `torch.use_deterministic_algorithms(True)`, cuDNN deterministic and not
    benchmarking, and `CUBLAS_WORKSPACE_CONFIG` (needed by cuBLAS, read at its first use: engine/__init__.py sets it
    when the engine is imported; here it only covers a caller that removed it since) — the
    settings under which a CUDA run repeats, and so resumes, exactly.
    """
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.set_float32_matmul_precision("high")
        torch.backends.cudnn.benchmark = bool(conv and not deterministic)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", DETERMINISTIC_CUBLAS_WORKSPACE)
        torch.use_deterministic_algorithms(True, warn_only=False)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    elif torch.are_deterministic_algorithms_enabled():
        torch.use_deterministic_algorithms(False)  # a previous deterministic run in this process must not linger
        torch.backends.cudnn.deterministic = False
