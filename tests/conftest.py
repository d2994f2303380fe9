"""Suite-wide fixtures: headless Qt, a fixed torch thread count, no thread may outlive its test, and the device.

The engine tests run on the CPU unless asked: `pytest --device cuda` (or LATENT_EXPLORER_TEST_DEVICE=cuda) runs the
tests that take the `device` fixture on a GPU. Tests marked `cuda` need one and are skipped without it;
`pytest -m cuda` runs just those (bench/gpu_check.sh does both).
"""

from __future__ import annotations

import os
import threading
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402


def pytest_addoption(parser):
    parser.addoption("--device", default=os.environ.get("LATENT_EXPLORER_TEST_DEVICE", "cpu"),
                     help="device of the tests that take the `device` fixture: cpu (default), cuda, cuda:N or mps")


def pytest_collection_modifyitems(config, items):
    if not any("cuda" in item.keywords for item in items):
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (none here)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def device(request) -> str:
    """The device the engine tests run on: `--device` (CPU by default); skipped where it is not available."""
    import torch

    name = request.config.getoption("--device")
    if name.startswith("cuda") and not torch.cuda.is_available():
        pytest.skip(f"--device {name}: no CUDA GPU here")
    if name == "mps" and not torch.backends.mps.is_available():
        pytest.skip("--device mps: no Metal backend here")
    return name


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

        self.loss.fn = loss

    monkeypatch.setattr(training.TrainingSession, "__init__", init)
    return faults
