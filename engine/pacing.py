"""When a training loop reads its metrics and does its occasional work, and how fast it went (for StepMetrics).

Metrics pulls come every `metrics_every` steps (`metrics_every_for`: on a GPU each pull is a host transfer, so by
default one per AUTO_METRICS_EVERY_ACCELERATOR steps; on a CPU every step, where it is free).

Epoch-end work (the summary, test scoring, the good copy, preview PNGs) is paced by wall time: a 200-image set ends
an epoch every step, and paying that work each time cost it most of its throughput. Previews are paced so that they
take at most ~10 % of the time. `clock` paces both (a test may fake it); rates and elapsed time use the real clock.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

AUTO_METRICS_EVERY_ACCELERATOR = 25  # metrics_every = 0 on a GPU: one pull per 25 steps (1 on a CPU)
EPOCH_WORK_EVERY_S = 2.0  # epoch-end work (summary, test scoring, good copy) at most this often on small datasets…
EPOCH_WORK_SHARE = 0.05  # …and taking at most ~this share of the time
PREVIEW_SHARE = 0.1  # previews take at most ~this share of the time


def metrics_every_for(asked: int, device_type: str) -> int:
    """Steps between metrics pulls: `asked`, or for 0 (auto) every step on a CPU and every 25 on an accelerator."""
    return asked or (AUTO_METRICS_EVERY_ACCELERATOR if device_type != "cpu" else 1)


class Pacing:
    """One run's pacing: when the next epoch-end work and preview are due; steps per second and training time."""

    def __init__(self, step: int, clock: Callable[[], float], preview_every_s: float) -> None:
        self.clock = clock
        self.preview_every_s = preview_every_s
        self.next_preview = self.next_epoch_work = clock()
        self.started = time.perf_counter()
        self.done_at_start = step
        self.paused_for = 0.0
        self.last_time, self.last_step = self.started, step

    # --- occasional work -----------------------------------------------------------------------------------
    def epoch_work_due(self, is_last: bool) -> bool:
        return is_last or self.clock() >= self.next_epoch_work

    def preview_due(self) -> bool:
        return self.clock() >= self.next_preview

    @contextlib.contextmanager
    def epoch_work(self) -> Iterator[None]:
        """Times the epoch-end work inside: the next is due after EPOCH_WORK_EVERY_S, or later if it was costly."""
        started = self.clock()
        yield
        self.next_epoch_work = self.clock() + max(EPOCH_WORK_EVERY_S, (self.clock() - started) / EPOCH_WORK_SHARE)

    @contextlib.contextmanager
    def preview(self) -> Iterator[None]:
        """Times the preview inside: the next is due after `preview_every_s`, or later if it was costly."""
        started = self.clock()
        yield
        cost = self.clock() - started
        self.next_preview = self.clock() + max(self.preview_every_s, cost / PREVIEW_SHARE)

    # --- rates ---------------------------------------------------------------------------------------------
    def paused(self, seconds: float, step: int) -> None:
        self.paused_for += seconds
        self.last_time, self.last_step = time.perf_counter(), step

    def training_time(self) -> float:
        """Seconds since the start without pauses (what the live probe's schedule counts)."""
        return time.perf_counter() - self.paused_for

    def emitted(self, now: float, step: int) -> tuple[float, float]:
        """(steps per second since the last emit, seconds elapsed without pauses); marks `now` as the last emit."""
        rate = (step - self.last_step) / max(now - self.last_time, 1e-9)
        self.last_time, self.last_step = now, step
        return rate, now - self.started - self.paused_for
