"""The worker seam with a scripted session (a real generator of engine events, no torch): batching, dropping, errors."""

from __future__ import annotations

import time

import numpy as np

from engine.events import Failed, Finished, Preview, StepMetrics
from gui.worker import TrainingWorker


class ScriptedSession:
    """Yields `steps` metrics as fast as it can, a preview every `preview_every` steps, then Finished."""

    def __init__(self, steps: int = 3000, preview_every: int = 10, fail_at: int | None = None) -> None:
        self.steps, self.preview_every, self.fail_at = steps, preview_every, fail_at

    def run(self, control):
        for step in range(1, self.steps + 1):
            if control.stopped:
                yield Finished(step - 1, 0, "stopped")
                return
            if self.fail_at == step:
                raise RuntimeError("boom in step")
            yield StepMetrics(step, 1, {"total": float(step)}, {"beta": 1.0}, 1000.0, step / self.steps)
            if step % self.preview_every == 0:
                yield Preview(step, np.full((4, 4), step % 256, dtype=np.uint8))
            if step % 100 == 0:
                time.sleep(0.002)  # let the GUI thread in, as real steps do
        yield Finished(self.steps, 1, "completed")


class Recorder:
    def __init__(self, worker: TrainingWorker) -> None:
        self.batches: list[list[StepMetrics]] = []
        self.previews: list[Preview] = []
        self.failed: list[Failed] = []
        self.finished: list[Finished] = []
        self.stopped = False
        worker.metrics.connect(self.batches.append)
        worker.preview.connect(self.previews.append)
        worker.failed.connect(self.failed.append)
        worker.finished.connect(self.finished.append)
        worker.stopped.connect(self.on_stopped)

    def on_stopped(self) -> None:
        self.stopped = True


def test_metrics_are_batched_and_previews_dropped_not_queued(qtbot):
    worker = TrainingWorker(ScriptedSession(steps=3000))
    rec = Recorder(worker)
    began = time.monotonic()
    worker.start()
    qtbot.waitUntil(lambda: rec.stopped, timeout=20_000)
    elapsed = time.monotonic() - began
    steps = [m.step for batch in rec.batches for m in batch]
    assert steps == list(range(1, 3001)), "every metric arrives once, in order"
    assert len(rec.batches) <= 30 * elapsed + 3, f"{len(rec.batches)} emits in {elapsed:.2f} s"
    assert len(rec.batches) < 3000 / 5, "metrics were not batched"
    assert worker.previews_dropped > 0
    assert len(rec.previews) + worker.previews_dropped == 300
    assert rec.previews[-1].step == 3000, "the newest preview is the one shown"
    assert rec.finished and rec.finished[0].reason == "completed"
    assert not worker.thread_alive and not worker.is_running


def test_an_exception_in_the_session_becomes_a_failed_signal(qtbot):
    worker = TrainingWorker(ScriptedSession(steps=500, fail_at=123))
    rec = Recorder(worker)
    worker.start()
    qtbot.waitUntil(lambda: rec.stopped, timeout=10_000)
    assert len(rec.failed) == 1
    assert "boom in step" in rec.failed[0].cause and rec.failed[0].step == 122
    assert not rec.finished


def test_stop_joins_the_thread_and_delivers_the_rest(qtbot):
    worker = TrainingWorker(ScriptedSession(steps=10**9, preview_every=1000))
    rec = Recorder(worker)
    worker.start()
    qtbot.waitUntil(lambda: len(rec.batches) > 2, timeout=10_000)
    began = time.monotonic()
    assert worker.stop(timeout=2.0)
    assert time.monotonic() - began < 2.0
    assert rec.finished and rec.finished[0].reason == "stopped"
    assert rec.stopped and not worker.thread_alive
