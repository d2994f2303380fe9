"""Loss terms from the device to the host at the metrics pulls of a training session, without stalling the device.

A pull hands over the rows queued since the last one (one 1-d float tensor per step: the total first, then the
terms). On the CPU, where reading a number costs nothing, they are read at once. On CUDA the pull is deferred: the
rows are copied with `non_blocking=True` into a pinned host buffer (allocated once, grown if a pull is longer) and a
CUDA event is recorded after the copy; the values are read at the next pull, after that event completed (by then
it long has: a pull is `metrics_every` steps away), or at `flush()`. So the host keeps queueing steps while the
copy runs, and waits for the device only where the session must know the values now (epoch ends, checkpoints,
control requests, the end of a run).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

INITIAL_CAPACITY = 1024  # floats in the pinned buffer (25 steps × ~10 terms fit four times over)


@dataclass(frozen=True)
class PulledRows:
    """The host values of one pull: `rows[i]` is the i-th queued row (its total first); `tag` as given to `pull`."""

    tag: Any
    rows: list[list[float]]

    @property
    def first_non_finite(self) -> int | None:
        """Index of the first row whose total (its first value) is NaN or infinite; None when every total is finite."""
        return next((i for i, row in enumerate(self.rows) if not math.isfinite(row[0])), None)


class TermPuller:
    """Brings queued rows of loss terms to the host: at once (CPU), or one pull later without waiting (CUDA).

    `deferred` defaults to True on CUDA only; a CPU puller may be deferred too (the same bookkeeping without the
    pinned buffer and the event), which is how the tests check the session's handling of a deferred pull."""

    def __init__(self, device: torch.device | str, deferred: bool | None = None) -> None:
        self.device = torch.device(device)
        self.deferred = self.device.type == "cuda" if deferred is None else bool(deferred)
        self._buffer: torch.Tensor | None = None  # pinned host memory (CUDA only)
        self._event: torch.cuda.Event | None = None
        self._pending: tuple[Any, list[int], torch.Tensor, bool] | None = None  # tag, lengths, host values, via event

    @property
    def pending(self) -> bool:
        """True while a deferred pull's values have not been read yet."""
        return self._pending is not None

    def pull(self, rows: Sequence[torch.Tensor], tag: Any = None) -> list[PulledRows]:
        """Queue `rows` (1-d float tensors) with `tag`; returns the pulls whose values are on the host now, oldest
        first: this one when the puller is not deferred, else the one queued at the previous pull."""
        ready = self.flush()
        if not rows:
            return ready
        lengths = [int(r.numel()) for r in rows]
        flat = torch.cat([r.reshape(-1) for r in rows]) if len(rows) > 1 else rows[0].reshape(-1)
        if not self.deferred:
            ready.append(_split(tag, flat.tolist(), lengths))
            return ready
        if flat.device.type == "cuda":
            host = self._pinned(flat.numel())
            host.copy_(flat.float(), non_blocking=True)
            if self._event is None:
                self._event = torch.cuda.Event()
            self._event.record()
            self._pending = (tag, lengths, host, True)
        else:  # already on the host (a data-parallel run's all-reduced terms, or a deferred CPU puller)
            self._pending = (tag, lengths, flat, False)
        return ready

    def flush(self) -> list[PulledRows]:
        """The deferred pull's values, if one is queued (the host waits for its copy here, and only here)."""
        if self._pending is None:
            return []
        tag, lengths, host, via_event = self._pending
        self._pending = None
        if via_event:
            self._event.synchronize()
        return [_split(tag, host.tolist(), lengths)]

    def discard(self) -> None:
        """Forget a queued pull without reading it (its steps were discarded, or the run ended)."""
        self._pending = None

    def _pinned(self, size: int) -> torch.Tensor:
        """A view of `size` floats of the pinned buffer; no copy into it is in flight (flush ran first)."""
        if self._buffer is None or self._buffer.numel() < size:
            capacity = max(size, INITIAL_CAPACITY, 2 * (0 if self._buffer is None else self._buffer.numel()))
            self._buffer = torch.empty(capacity, dtype=torch.float32, pin_memory=True)
        return self._buffer[:size]


def _split(tag: Any, values: list[float], lengths: list[int]) -> PulledRows:
    rows, offset = [], 0
    for n in lengths:
        rows.append(values[offset:offset + n])
        offset += n
    return PulledRows(tag, rows)
