"""The app's sweep view, driven for real: a two-run β sweep on digits in the worker thread, cancel, load, exports."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from PySide6.QtCore import Qt

from engine.config import TrainConfig
from gui.panels.sweep import COLUMN_TITLES, THREAD_NAME, SweepPanel

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
        headers = [COLUMN_TITLES.get(c, c) for c in panel.table.columns]
        assert headers[:2] == ["run", "beta"] and "−ELBO" in headers and "KL" in headers
        kl_col = headers.index("KL")
        assert panel.table.rows[1][kl_col] == pytest.approx(panel.records[1]["kl"], abs=1e-3)
        shown = [c for c in range(len(headers)) if not panel.table.left.isColumnHidden(c)]
        assert shown == [0, 1], "run and β stay frozen while the scores scroll"
        assert all(panel.table.right.isColumnHidden(c) for c in shown)
        qtbot.waitUntil(lambda: panel.table.model.item(1, 0).icon() is not None and
                        panel.table.model.item(1, 0).data(Qt.ItemDataRole.DecorationRole) is not None,
                        timeout=10_000)  # each row's traversal thumbnail
        panel.plots.setCurrentIndex(1)
        panel.score_combo.setCurrentIndex(panel.score_combo.findData("kl"))
        (label, xs, means, stds), = panel.score_lines
        assert list(xs) == [1.0, 8.0] and means == pytest.approx([r["kl"] for r in panel.records])
        assert (tmp_path / "sweep" / "summary.csv").is_file()
        assert (tmp_path / "sweep" / "beta=8_seed0" / "checkpoints" / "last.safetensors").is_file()

        png = panel.export_png(tmp_path / "rd.png")
        assert png.stat().st_size > 1000
        rows = list(csv.DictReader(open(panel.export_csv(tmp_path / "table.csv"), newline="")))
        assert [r["beta"] for r in rows] == ["1", "8"]

        other = SweepPanel()
        qtbot.addWidget(other)
        other.load_sweep(tmp_path / "sweep")
        assert [p[2] for p in other.plot.points] == ["β=1", "β=8"] and len(other.table.rows) == 2
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


def test_the_beta_lesson_preset_fills_its_grid(qtbot, config_file, tmp_path):
    panel = make_panel(qtbot, config_file, tmp_path, steps=5)
    index = next(i for i in range(panel.config_combo.count())
                 if tuple(panel.config_combo.itemData(i)) == ("preset", "dsprites-beta-lesson"))
    panel.config_combo.setCurrentIndex(index)
    assert panel.lesson() == "dsprites-beta-lesson"
    assert panel.grid_edit.text() == "beta=1,2,4,6,10" and panel.steps_spin.value() == 0


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


def test_sweep_runs_open_on_double_click_plot_by_seed_and_go_to_compare(main_window, qtbot, tiny_runs, tmp_path):
    """A sweep folder of two configurations × seeds (the tiny runs, with their recorded numbers): drill in."""
    import json

    window = main_window
    records = [{"run": "vae-a", "beta": 1.0, "seed": 0, "status": "completed", "kl": 2.0, "recon": 30.0,
                "folder": str(tiny_runs["vae-a"])},
               {"run": "vae-b", "beta": 4.0, "seed": 1, "status": "completed", "kl": 1.0, "recon": 34.0,
                "folder": str(tiny_runs["vae-b"])},
               {"run": "vae-c", "beta": 4.0, "seed": 2, "status": "completed", "kl": 1.5, "recon": 33.0,
                "folder": str(tmp_path / "gone")}]
    (tmp_path / "summary.json").write_text(json.dumps({"runs": records}))
    evaluation = window.panels["evaluationPanel"]
    panel = evaluation.sweep_panel
    panel.load_sweep(tmp_path)
    panel.score_combo.setCurrentIndex(panel.score_combo.findData("kl"))
    (label, xs, means, stds), = panel.score_lines
    assert list(xs) == [1.0, 4.0] and means == pytest.approx([2.0, 1.25])
    assert stds == pytest.approx([0.0, np.std([1.0, 1.5], ddof=1)]), "mean ± std over seeds"

    assert not panel.open_run(2) and "no checkpoint" in panel.status.text()
    index = panel.table.proxy.index(1, 0)
    panel.table.left.doubleClicked.emit(index)
    path = str(tiny_runs["vae-b"] / "checkpoints" / "last.safetensors")
    qtbot.waitUntil(lambda: window.checkpoint_path == path, timeout=20_000)
    assert window.source.info["checkpoint"] == path

    panel.table.left.selectRow(0)
    panel.table.left.selectionModel().select(panel.table.proxy.index(1, 0),
                                             panel.table.left.selectionModel().SelectionFlag.Select |
                                             panel.table.left.selectionModel().SelectionFlag.Rows)
    assert panel.table.selected_rows() == [0, 1]
    assert panel.compare_selected()
    compare = window.panels["comparePanel"]
    assert window.tabs.currentWidget() is compare
    qtbot.waitUntil(lambda: len(compare.keys) == 2 and compare.is_idle, timeout=30_000)
    assert compare.keys == [str(tiny_runs["vae-a"]), str(tiny_runs["vae-b"])]
