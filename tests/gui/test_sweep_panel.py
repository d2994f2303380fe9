"""The app's sweep view, driven for real: a two-run β sweep on digits in the worker thread, cancel, load, exports."""

from __future__ import annotations

import csv

import pytest

from engine.config import TrainConfig
from gui.panels.sweep import THREAD_NAME, SweepPanel

TINY = {"latent_dim": 3, "backbone": "mlp", "hidden": 16, "depth": 1}


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "base.toml"
    path.write_text(TrainConfig(dataset="digits", family="beta-vae", hparams=dict(TINY), batch_size=32,
                                preview_every_s=60.0).to_toml())
    return path


def make_panel(qtbot, config_file, tmp_path, steps: int):
    panel = SweepPanel()
    qtbot.addWidget(panel)
    panel.resize(1100, 600)
    panel.show()
    panel.set_config_file(config_file)
    panel.steps_spin.setValue(steps)
    panel.metrics_combo.setCurrentIndex(2)  # digits has no factors: no scores
    panel.out_edit.setText(str(tmp_path / "sweep"))
    return panel


def test_sweep_runs_in_a_thread_and_fills_plot_and_table(qtbot, config_file, tmp_path):
    panel = make_panel(qtbot, config_file, tmp_path, steps=5)
    try:
        panel.grid_edit.setText("beta=1,8")
        panel.start_button.click()
        assert panel.is_running and not panel.start_button.isEnabled() and panel.cancel_button.isEnabled()
        qtbot.waitUntil(lambda: not panel.is_running and panel.start_button.isEnabled(), timeout=30_000)
        assert [r["status"] for r in panel.records] == ["completed", "completed"], panel.status.text()
        assert panel.progress_bar.value() == 1000
        assert [p[2] for p in panel.plot.points] == ["β=1", "β=8"]
        assert [label.toPlainText() for label in panel.plot.labels] == ["β=1", "β=8"]
        headers = [panel.table.horizontalHeaderItem(c).text() for c in range(panel.table.columnCount())]
        assert headers[:2] == ["run", "beta"] and "−ELBO" in headers and "KL" in headers
        kl_col = headers.index("KL")
        assert float(panel.table.item(1, kl_col).text()) == pytest.approx(panel.records[1]["kl"], abs=1e-3)
        assert (tmp_path / "sweep" / "summary.csv").is_file()
        assert (tmp_path / "sweep" / "beta=8_seed0" / "checkpoints" / "last.safetensors").is_file()

        png = panel.export_png(tmp_path / "rd.png")
        assert png.stat().st_size > 1000
        rows = list(csv.DictReader(open(panel.export_csv(tmp_path / "table.csv"), newline="")))
        assert [r["beta"] for r in rows] == ["1", "8"]

        other = SweepPanel()
        qtbot.addWidget(other)
        other.load_sweep(tmp_path / "sweep")
        assert [p[2] for p in other.plot.points] == ["β=1", "β=8"] and other.table.rowCount() == 2
    finally:
        panel.shutdown()


def test_cancel_stops_the_sweep_thread(qtbot, config_file, tmp_path):
    panel = make_panel(qtbot, config_file, tmp_path, steps=100_000)
    try:
        panel.grid_edit.setText("beta=1,2")
        panel.metrics_combo.setCurrentIndex(3)  # all five with the fast DCI: the choice reaches the runner
        panel.sizes_combo.setCurrentIndex(0)
        assert panel.start()
        sizes = panel.worker.runner.metric_sizes
        assert sizes.dci_estimator == "hist" and sizes.train_points == 1_000
        qtbot.waitUntil(lambda: panel.progress_bar.value() > 0, timeout=20_000)
        panel.cancel_button.click()
        qtbot.waitUntil(lambda: not panel.is_running and panel.start_button.isEnabled(), timeout=20_000)
        assert "stopped" in panel.status.text()
        assert len(panel.records) == 1 and panel.records[0]["status"] == "stopped"
    finally:
        panel.shutdown()
    import threading

    assert not [t for t in threading.enumerate() if t.name == THREAD_NAME]


def test_bad_grid_is_reported_and_nothing_starts(qtbot, config_file, tmp_path):
    panel = make_panel(qtbot, config_file, tmp_path, steps=5)
    panel.grid_edit.setText("gamma=1,2")
    assert not panel.start()
    assert "cannot sweep gamma" in panel.status.text() and not panel.is_running
    with pytest.raises(ValueError, match="no finished runs"):
        panel.export_png(tmp_path / "x.png")


@pytest.mark.slow
def test_local_parallel_sweep_shows_each_runs_progress(qtbot, config_file, tmp_path):
    panel = make_panel(qtbot, config_file, tmp_path, steps=5)
    seen: list[tuple[int, float]] = []
    try:
        panel.grid_edit.setText("beta=1,8")
        panel.parallel_spin.setValue(2)
        assert not panel.address_edit.isEnabled() and not panel.gpus_spin.isEnabled()
        assert panel.start()
        assert panel.worker.runner.backend.parallel == 2 and not panel.parallel_spin.isEnabled()
        assert [panel.runs_table.item(r, 0).text() for r in range(2)] == ["beta=1_seed0", "beta=8_seed0"]
        panel.worker.progress.connect(lambda e: seen.append((e.run_index, e.run_fraction)))
        qtbot.waitUntil(lambda: not panel.is_running, timeout=120_000)
        assert [r["status"] for r in panel.records] == ["completed", "completed"], panel.status.text()
        assert panel.run_fractions() == [1.0, 1.0]
        assert {index for index, _ in seen} == {0, 1}, "progress of both runs reached the panel"
        assert all(panel.runs_table.item(r, 1).text() == "completed" for r in range(2))
    finally:
        panel.shutdown()


def test_ray_backend_choice_and_a_bad_address(qtbot, config_file, tmp_path):
    panel = make_panel(qtbot, config_file, tmp_path, steps=5)
    panel.backend_combo.setCurrentIndex(panel.backend_combo.findData("ray"))
    assert panel.address_edit.isEnabled() and panel.gpus_spin.isEnabled() and not panel.parallel_spin.isEnabled()
    panel.address_edit.setText("no-port-here")
    assert not panel.start()
    assert "not a Ray address" in panel.status.text() and not panel.is_running
    assert not (tmp_path / "sweep").exists()
