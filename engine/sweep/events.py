"""What a sweep yields: progress of a run, one record per finished run, warnings, the end (frozen dataclasses)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


# --- events ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SweepProgress:
    run_index: int
    runs: int
    stage: str  # train | evaluate | metrics | traversal
    fraction: float  # 0…1 of the whole sweep
    run_fraction: float  # 0…1 of this run
    message: str
    step: int = 0
    terms: dict[str, float] = field(default_factory=dict)



@dataclass(frozen=True)
class RunDone:
    run_index: int
    record: dict[str, Any]
    traversal: np.ndarray | None = None  # uint8 grid (rows = latents by KL, largest first)



@dataclass(frozen=True)
class SweepWarning:
    message: str



@dataclass(frozen=True)
class SweepDone:
    records: tuple[dict[str, Any], ...]
    reason: str  # completed | stopped
    files: dict[str, str] = field(default_factory=dict)


SweepEvent = SweepProgress | RunDone | SweepWarning | SweepDone
