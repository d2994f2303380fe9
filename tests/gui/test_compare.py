"""The Compare tab (issue 19 §2) in the real window: the β lesson from the welcome card, every view with 2 and with 6
models (a VQ-VAE, a conditional model and a non-factor dataset among them), labels, highlight and exports."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from PIL import Image

from engine.compare import MAX_MODELS, PALETTE
from gui.model_source import ModelSource
from gui.panels.compare import VIEWS, ComparePanel, open_comparison


def idle(panel) -> bool:
    return panel.is_idle


def visit_every_view(panel, qtbot) -> None:
    for index, (name, _) in enumerate(VIEWS):
        panel.views.setCurrentIndex(index)
        qtbot.waitUntil(lambda name=name: name in panel.results and idle(panel), timeout=60_000)


@pytest.fixture
def compare_panel(qtbot):
    panel = ComparePanel(ModelSource())
    qtbot.addWidget(panel)
    panel.resize(1100, 700)
    panel.show()
    yield panel
    panel.shutdown()
    assert panel.runner.is_shut_down and panel.score_runner.is_shut_down


def test_welcome_card_compares_beta_1_and_beta_6_in_every_view(main_window, qtbot, tmp_path):
    window = main_window
    window.welcome_card.compare_button.click()
    panel = window.panels["comparePanel"]
    assert window.tabs.currentWidget() is panel
    qtbot.waitUntil(lambda: len(panel.keys) == 2 and idle(panel), timeout=60_000)
    labels = panel.comparison.labels()
    assert list(labels.values()) == ["VAE β=1", "β-TCVAE β=6"]
    assert [panel.comparison.colour(k) for k in panel.keys] == list(PALETTE[:2])
    visit_every_view(panel, qtbot)

    assert set(panel.curve_items) == set(panel.keys) and panel.term_combo.currentText() == "total"
    scores = panel.score_table
    assert scores.columns[:2] == ["model", "seeds"] and "mig" in scores.columns
    mig = {row[0]: row[scores.columns.index("mig")] for row in scores.rows}
    assert mig["β-TCVAE β=6"] > 0.3 > 0.05 > mig["VAE β=1"], "the manifest's scores: β = 6 disentangles"
    assert panel.hparam_table.columns[0] == "model" and "beta" in panel.hparam_table.columns

    cells = panel.results["traversals"]
    factors = [[label.split(" · ")[0].split(":")[0] for label in cells[k].row_labels] for k in panel.keys]
    shared = len([f for f in factors[0] if f in ("shape", "scale", "orientation", "posX", "posY")])
    assert shared >= 2 and factors[0][:3] == factors[1][:3], "rows matched to factors across the two models"
    assert all(panel.traversal_grids[k].view.image is not None for k in panel.keys)
    panel.views.setCurrentIndex([name for name, _ in VIEWS].index("traversals"))
    width = panel._thumb_layout[1]
    panel.base_thumbs.click_pixel(3 * width + 2, 2)  # the synced picker: one base image for every model
    assert panel.base_spin.value() == 3
    qtbot.waitUntil(lambda: idle(panel) and "traversals" not in panel._stale and
                    panel.results["traversals"] is not cells, timeout=30_000)
    first, second = (panel.results["traversals"][k].base_images for k in panel.keys)
    entry = panel.comparison.entries[0]
    assert np.array_equal(first, second)
    assert np.array_equal(first, entry.dataset.images_at(entry.test_indices[3:4]).cpu().numpy())
    traversals = panel.results["traversals"]
    calls = []
    job = panel._traversal_job
    panel._traversal_job = lambda view: calls.append(panel.span_slider.value()) or job(view)
    for value in (2.6, 2.4, 2.2, 2.0):  # the synced range slider dragged: one re-render for every model, throttled
        panel.span_slider.setValue(value)
    qtbot.waitUntil(lambda: idle(panel) and bool(calls) and panel.results["traversals"] is not traversals,
                    timeout=30_000)
    assert calls == [2.0] and panel.figure_choices()["span"] == 2.0
    assert all(panel.results["traversals"][k].values.max() == pytest.approx(2.0) for k in panel.keys)
    assert all(panel.recon_grids[k].view.image is not None for k in panel.keys)
    assert set(panel.kl_items) == set(panel.keys) and panel.colour_bar.image is not None
    assert all(panel.mi_grids[k].view.image is not None for k in panel.keys)
    assert set(panel.rd_items) == set(panel.keys)

    tcvae = panel.keys[1]
    panel.chips[tcvae].clicked.emit(tcvae)  # click: highlighted in every view
    assert panel.highlighted == tcvae
    assert panel.curve_items[tcvae].opts["pen"].widthF() > panel.curve_items[panel.keys[0]].opts["pen"].widthF()
    assert panel.rd_items[tcvae].opts["size"] > panel.rd_items[panel.keys[0]].opts["size"]
    panel.chips[tcvae].edit.setText("disentangled")
    panel.chips[tcvae].edit.editingFinished.emit()
    assert panel.comparison.label(tcvae) == "disentangled"

    figure = panel.export_png(tmp_path / "all.png")
    one = panel.export_png(tmp_path / "rd.png", ("rd",))
    with Image.open(figure) as big, Image.open(one) as small:
        assert big.size[1] > small.size[1] > 100
    with Image.open(panel.export_gif(tmp_path / "t.gif")) as gif:
        assert gif.n_frames == 2 * panel.steps_spin.value() - 2
    with panel.export_csv(tmp_path / "c.csv").open(encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert rows[0][0] == "model" and [r[0] for r in rows[1:]] == ["VAE β=1", "disentangled"]


def test_six_models_of_every_kind_say_why_where_they_cannot_take_part(compare_panel, qtbot, tiny_runs, tmp_path):
    panel = compare_panel
    specs = ["example:dsprites-disentangle", "example:dsprites-vae", str(tiny_runs["vae-a"]),
             str(tiny_runs["cvae-a"]), str(tiny_runs["vq"]), str(tiny_runs["vae-b"] / "checkpoints" /
                                                               "last.safetensors")]
    assert panel.add_specs(specs)
    qtbot.waitUntil(lambda: len(panel.keys) == 6 and idle(panel), timeout=60_000)
    assert not panel.add_specs([str(tiny_runs["cvae-b"])]) and str(MAX_MODELS) in panel.status.text()
    visit_every_view(panel, qtbot)
    vq, cvae, digits_vae = str(tiny_runs["vq"]), str(tiny_runs["cvae-a"]), str(tiny_runs["vae-a"])

    assert "discrete" in panel.traversal_grids[vq].note.text(), "the VQ-VAE says why it has no traversal"
    assert panel.traversal_grids[cvae].view.image is not None, "the conditional model is traversed"
    assert "digits" in panel.traversal_grids[digits_vae].note.text(), "a model on other data uses its own images"
    assert vq not in panel.kl_items and "VQ-VAE" in panel.heat_note.text()
    assert "no ground-truth factors" in panel.mi_grids[digits_vae].note.text()
    assert panel.mi_grids[digits_vae].view.image is None
    assert panel.recon_grids[vq].view.image is not None, "a VQ-VAE still reconstructs"
    assert vq not in panel.rd_items and "VQ-VAE" in panel.rd_note.text()
    assert len(panel.score_table.rows) == 6 and len(panel.hparam_table.rows) == 6

    panel.remove(vq)
    assert vq not in panel.keys and len(panel.chips) == 5
    qtbot.waitUntil(lambda: "rd" in panel.results and idle(panel), timeout=30_000)
    assert vq not in panel.rd_items
    panel.views.setCurrentIndex(0)
    qtbot.waitUntil(lambda: "curves" in panel.results and idle(panel), timeout=30_000)
    assert set(panel.curve_items) <= set(panel.keys) and len(panel.curve_items) == 5
    with Image.open(panel.export_png(tmp_path / "five.png")) as image:
        assert image.size[0] > 600


def test_scores_are_computed_off_the_gui_thread_for_models_without_them(compare_panel, qtbot, tiny_runs):
    panel = compare_panel
    assert panel.add_specs([str(tiny_runs["vae-a"]), str(tiny_runs["vae-b"])])
    panel.views.setCurrentIndex([name for name, _ in VIEWS].index("table"))
    qtbot.waitUntil(lambda: len(panel.keys) == 2 and "table" in panel.results and idle(panel), timeout=30_000)
    assert "No scores yet" in panel.table_note.text()
    panel.compute_scores()
    assert panel.computing_scores and not panel.scores_button.isEnabled()
    qtbot.waitUntil(lambda: not panel.computing_scores and idle(panel), timeout=60_000)
    columns = panel.score_table.columns
    assert "neg_elbo" in columns and "recon" in columns and "mig" not in columns, "digits has no factors"
    values = [row[columns.index("neg_elbo")] for row in panel.score_table.rows]
    assert all(isinstance(v, float) and np.isfinite(v) and v > 0 for v in values)
    assert panel.score_progress.value() == 1000


def test_curves_export_draws_the_term_and_x_axis_on_screen(compare_panel, qtbot, tiny_runs, tmp_path):
    from engine.compare_figure import comparison_figure

    panel = compare_panel
    assert panel.add_specs([str(tiny_runs["vae-a"]), str(tiny_runs["vae-b"])])
    qtbot.waitUntil(lambda: len(panel.keys) == 2 and "curves" in panel.results and idle(panel), timeout=30_000)
    panel.term_combo.setCurrentText("test/total")
    panel.x_combo.setCurrentIndex(panel.x_combo.findData("images"))
    with Image.open(panel.export_png(tmp_path / "curves.png", ("curves",))) as image:
        exported = np.asarray(image.convert("RGB"))
    expected = comparison_figure(panel.comparison, ("curves",), panel.base_spin.value(), terms=["test/total"],
                                 x="images", log_y=False)
    assert np.array_equal(exported, expected)
    assert exported.shape != comparison_figure(panel.comparison, ("curves",)).shape  # not the default recon + KL
    panel.log_check.setChecked(True)  # the tab's log-scale toggle: the export's curves are on a log scale too
    with Image.open(panel.export_png(tmp_path / "log.png", ("curves",))) as image:
        logged = np.asarray(image.convert("RGB"))
    assert np.array_equal(logged, comparison_figure(panel.comparison, ("curves",), terms=["test/total"], x="images",
                                                    log_y=True))
    assert not np.array_equal(logged, exported)


def test_table_shows_final_and_best_of_the_logged_terms(compare_panel, qtbot, tiny_runs):
    from PySide6.QtCore import Qt

    from engine.compare_figure import figure_table

    panel = compare_panel
    assert panel.add_specs([str(tiny_runs["vae-a"]), str(tiny_runs["vae-b"])])
    panel.views.setCurrentIndex([name for name, _ in VIEWS].index("table"))
    qtbot.waitUntil(lambda: len(panel.keys) == 2 and "table" in panel.results and idle(panel), timeout=30_000)
    table = panel.score_table
    column = table.columns.index("test/recon best")
    assert table.columns[column - 1] == "test/recon final"
    header = table.model.horizontalHeaderItem(column)
    assert header.text() == "test recon best (min)" and "lower is better" in header.toolTip()
    for key, row in zip(panel.keys, table.rows, strict=True):
        logged = [r["test"]["recon"] for r in panel.comparison.entry(key).history if r.get("kind") == "epoch"]
        assert row[column] == pytest.approx(min(logged)) and row[column - 1] == pytest.approx(logged[-1])
    shown = table.proxy.headerData(column, Qt.Orientation.Horizontal, Qt.ItemDataRole.ToolTipRole)
    assert shown == header.toolTip()  # what the sortable view's header shows on hover
    figure = figure_table(panel.comparison)  # the exported figure's table: the same columns, titles and values
    for name in ("test/recon final", "test/recon best", "test/total best"):
        title = table.model.horizontalHeaderItem(table.columns.index(name)).text()
        assert [row[figure.columns.index(title)] for row in figure.rows] == \
            [row[table.columns.index(name)] for row in table.rows]


def test_bad_input_is_reported_and_loses_nothing(compare_panel, qtbot, tiny_runs, tmp_path):
    panel = compare_panel
    assert panel.add_specs([str(tiny_runs["vae-a"])])
    qtbot.waitUntil(lambda: len(panel.keys) == 1 and idle(panel), timeout=30_000)
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x00" * 64)
    assert panel.add_specs([str(broken)])
    qtbot.waitUntil(lambda: idle(panel) and "broken.safetensors" in panel.status.text(), timeout=30_000)
    assert panel.status.text().startswith("⚠") and len(panel.keys) == 1
    assert not panel.add_specs([str(tmp_path)]) and "neither a run folder" in panel.status.text()


def test_file_compare_with_and_sweep_folder_open_in_the_tab(main_window, qtbot, tiny_runs, tmp_path, monkeypatch):
    from PySide6.QtGui import QAction
    from PySide6.QtWidgets import QFileDialog

    window = main_window
    chosen = [str(tiny_runs["vae-a"] / "checkpoints" / "last.safetensors")]
    monkeypatch.setattr(QFileDialog, "getOpenFileNames", staticmethod(lambda *a, **k: (chosen, "")))
    window.findChild(QAction, "compareAction").trigger()
    panel = window.panels["comparePanel"]
    assert window.tabs.currentWidget() is panel
    qtbot.waitUntil(lambda: len(panel.keys) == 1 and idle(panel), timeout=30_000)
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    for name in ("vae-a", "vae-b"):
        (sweep / name).symlink_to(tiny_runs[name], target_is_directory=True)
    assert open_comparison(window, [str(sweep)])
    qtbot.waitUntil(lambda: len(panel.keys) == 2 and idle(panel), timeout=30_000)
    assert sorted(panel.keys) == sorted(str(sweep / n) for n in ("vae-a", "vae-b"))


def test_runs_of_one_sweep_are_joined_on_the_rate_distortion_plane_and_stay_highlightable(compare_panel, qtbot,
                                                                                         tiny_runs):
    """Sweep runs are joined by a line; highlighting a model resizes its point and leaves the line alone (the
    line used to sit among the points and highlighting it raised AttributeError)."""
    panel = compare_panel
    assert panel.add_specs([str(tiny_runs["vae-a"]), str(tiny_runs["vae-b"])])
    qtbot.waitUntil(lambda: len(panel.keys) == 2 and idle(panel), timeout=30_000)
    for key, beta in zip(panel.keys, (1.0, 4.0), strict=True):  # what a sweep folder's summary gives its runs
        entry = panel.comparison.entry(key)
        entry.swept, entry.sweep, entry.seed = {"beta": beta}, "sweep", 0
    panel.views.setCurrentIndex([name for name, _ in VIEWS].index("rd"))
    qtbot.waitUntil(lambda: "rd" in panel.results and idle(panel), timeout=60_000)
    assert set(panel.rd_items) == set(panel.keys) and len(panel.rd_lines) == 1
    assert len(panel.rd_lines[0].getData()[0]) == 2
    panel.highlight(panel.keys[1])
    assert panel.rd_items[panel.keys[1]].opts["size"] > panel.rd_items[panel.keys[0]].opts["size"]
    panel._invalidate("rd")
    qtbot.waitUntil(lambda: idle(panel) and len(panel.rd_lines) == 1, timeout=60_000)
    lines_on_plot = [i for i in panel.rd_plot.getPlotItem().listDataItems() if i in panel.rd_lines]
    assert len(lines_on_plot) == 1, "a refresh replaces the line, it does not add another"
