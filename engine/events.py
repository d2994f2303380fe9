"""The one event family a training session yields (frozen dataclasses: floats, strings, uint8 arrays only)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class StepMetrics:
    """One optimiser step: every loss term the family reports plus the values in force (β, C, lr)."""

    step: int
    epoch: int
    terms: dict[str, float]  # total, recon, kl, penalties… (nats per image)
    live: dict[str, float]  # beta, C, gamma, lr… as applied at this step
    samples_per_s: float
    progress: float  # 0…1 of the planned run
    eta_s: float | None = None


@dataclass(frozen=True)
class EpochSummary:
    epoch: int
    step: int
    train: dict[str, float]
    test: dict[str, float]
    kl_per_dim: tuple[float, ...] = ()  # test-set mean KL per latent dimension (variational families)


@dataclass(frozen=True)
class Preview:
    """Image grids for the dashboard: C-contiguous uint8 arrays (H×W grayscale or H×W×3 RGB)."""

    step: int
    reconstructions: np.ndarray  # rows alternate inputs / reconstructions
    samples: np.ndarray | None = None  # prior samples (generative families)
    traversal: np.ndarray | None = None
    kl_per_dim: tuple[float, ...] = ()


@dataclass(frozen=True)
class DisentanglementProbe:
    """MIG and the latent × factor normalised MI of the posterior means on a fixed factor sample (engine/probe.py)."""

    step: int
    mig: float
    mig_per_factor: tuple[float, ...]  # the gap per factor; mig is their mean
    mi: tuple[tuple[float, ...], ...]  # D×K: I(z_j; v_k) / H(v_k) ∈ [0, 1]
    factor_names: tuple[str, ...]  # the K varying factors
    best_factor: tuple[int, ...]  # per latent j: argmax_k of its MI row
    points: int  # factor rows in the sample
    seconds: float  # what this probe cost


@dataclass(frozen=True)
class CheckpointWritten:
    step: int
    path: str


@dataclass(frozen=True)
class Paused:
    step: int
    reason: str = "paused by user"


@dataclass(frozen=True)
class Resumed:
    step: int


@dataclass(frozen=True)
class Warning_:
    message: str


@dataclass(frozen=True)
class Finished:
    step: int
    epoch: int
    reason: str = "completed"  # completed | stopped
    final: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Failed:
    """The session ended (or paused, when recoverable) because something went wrong; `cause` is human-readable."""

    step: int
    cause: str
    recoverable: bool = False


Event = (StepMetrics | EpochSummary | Preview | DisentanglementProbe | CheckpointWritten | Paused | Resumed | Warning_
         | Finished | Failed)
