"""The exploration panels hand numpy only tensors that went through `.cpu()`: their jobs run inline on this thread
under `PretendDevice` (tests/engine/test_device_rules.py), which counts the model's and the dataset's tensors, and
everything computed from them, as living on a GPU. On a real CUDA model, such a `.numpy()` raises TypeError."""

from __future__ import annotations

import pytest

from engine.data import load_dataset
from gui.inference import InferenceRunner
from gui.model_source import ModelSource
from tests.engine.test_device_rules import PretendDevice
from tests.helpers import train_digits_model


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def cvae():
    return train_digits_model("cvae", steps=10)


@pytest.fixture
def inline_jobs(monkeypatch):
    """Panel jobs run at once on the calling thread (where the torch function mode is active)."""

    def submit(self, channel, job, on_result=None, on_error=None):
        result = job()
        if on_result is not None:
            on_result(result)
        return 0

    monkeypatch.setattr(InferenceRunner, "submit", submit)


@pytest.mark.parametrize("panel_name", ["gallery", "latent_map", "traversal"])
def test_panel_jobs_reach_numpy_through_cpu(panel_name, qtbot, inline_jobs, cvae, digits):
    from gui.panels.gallery import GalleryPanel
    from gui.panels.latent_map import LatentMapPanel
    from gui.panels.traversal import TraversalPanel

    cls = {"gallery": GalleryPanel, "latent_map": LatentMapPanel, "traversal": TraversalPanel}[panel_name]
    _, test = digits.split(0.2, seed=0)
    roots = [*cvae.parameters(), *cvae.buffers(), digits.images, digits.labels, test]
    source = ModelSource()
    panel = cls(source)
    qtbot.addWidget(panel)
    panel.resize(900, 600)
    panel.show()
    try:
        with PretendDevice(*roots) as mode:
            source.set_static(cvae, digits, test, {"step": 10})
            panel.rebuild()
            if panel_name == "gallery":
                panel.set_view("Anomalies")
                panel.request()
                assert panel.errors is not None
            elif panel_name == "latent_map":
                assert panel.embedding is not None
                panel.color_combo.setCurrentText("label")
                assert panel._color_values() is not None
            else:
                assert panel.stats is not None
        assert not mode.offenders, mode.offenders
    finally:
        panel.shutdown()


@pytest.mark.cuda
@pytest.mark.parametrize("panel_name", ["gallery", "latent_map", "traversal"])
def test_panels_on_a_cuda_model(panel_name, qtbot):
    """The real panels (jobs on their inference thread) on a CUDA model, dataset and test indices."""
    import torch

    from gui.panels.gallery import GalleryPanel
    from gui.panels.latent_map import LatentMapPanel
    from gui.panels.traversal import TraversalPanel

    model = train_digits_model("cvae", steps=10).to("cuda").eval()
    dataset = load_dataset("digits").to("cuda")
    _, test = dataset.split(0.2, seed=0)
    cls = {"gallery": GalleryPanel, "latent_map": LatentMapPanel, "traversal": TraversalPanel}[panel_name]
    source = ModelSource()
    panel = cls(source)
    qtbot.addWidget(panel)
    panel.resize(900, 600)
    panel.show()
    try:
        source.set_static(model, dataset, test.to("cuda"), {"step": 10})
        if panel_name == "gallery":
            panel.set_view("Anomalies")
            qtbot.waitUntil(lambda: panel.errors is not None, timeout=20_000)
        elif panel_name == "latent_map":
            qtbot.waitUntil(lambda: panel.embedding is not None and panel.manifold is not None, timeout=20_000)
            panel.color_combo.setCurrentText("label")
            assert panel._color_values() is not None
        else:
            qtbot.waitUntil(lambda: panel.grid is not None, timeout=20_000)
        assert "Error" not in panel.status.text(), panel.status.text()
        assert torch.cuda.is_available()
    finally:
        panel.shutdown()
