"""Suite-wide fixtures: headless Qt, a fixed torch thread count, and no thread may outlive its test."""

from __future__ import annotations

import os
import threading
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def no_leftover_threads():
    """Fail any test that leaves a Python thread running (Qt threads are checked by the GUI fixtures)."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 2.0
    while True:
        extra = [t for t in threading.enumerate() if t not in before and t.is_alive() and not t.daemon]
        if not extra or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert not extra, f"test left threads running: {[t.name for t in extra]}"


@pytest.fixture
def loss_fault(monkeypatch):
    """`faults["fault"](session, out, step)` runs inside the loss of every TrainingSession built (CLI or window)."""
    from engine import training

    faults = {}
    real_init = training.TrainingSession.__init__

    def init(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        real_loss = self.model.loss

        def loss(x, y=None, step=0):
            out = real_loss(x, y, step)
            if "fault" in faults:
                faults["fault"](self, out, step)
            return out

        self._loss_fn = loss

    monkeypatch.setattr(training.TrainingSession, "__init__", init)
    return faults
