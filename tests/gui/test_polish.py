"""Issue 23 §1: help that matches the app, plots that explain themselves, one checkpoint per save, labelled exports."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QApplication, QTextBrowser

from engine.presets import DEFAULT_PRESET, list_presets
from gui.quick_start import menu_shortcuts
from tests.gui.test_main_window import tiny_checkpoint  # noqa: F401  (a fixture)


def test_quick_start_names_the_default_preset_and_the_real_shortcuts(main_window):
    window = main_window
    dialog = window.show_quick_start()
    text = dialog.findChild(QTextBrowser).toPlainText()
    dialog.close()
    assert DEFAULT_PRESET in text and dict(list_presets())[DEFAULT_PRESET][:40] in text
    assert "β-VAE (β = 4" not in text  # the old, hand-written default
    for name, _ in list_presets():
        assert name in text
    shortcuts = menu_shortcuts(window)
    shown = {keys for _, _, keys in shortcuts}
    native = QKeySequence.SequenceFormat.NativeText
    for keys in ("Ctrl+R", "Space", "Ctrl+."):  # what Training → Start / Pause / Stop carry today
        assert QKeySequence(keys).toString(native) in shown
    for menu, action, keys in shortcuts:
        assert f"{menu} → {action}" in text and keys in text
    for topic in ("MIG curve", "heatmap", "Sweep", "Examples", "Your own data", "Open folder"):
        assert topic in text, topic


# --- §1.3 the heatmap labels every factor column at 1366×768 ------------------------------------------------
def test_the_training_heatmap_labels_all_five_factor_columns_at_1366(main_window):
    from tests.gui.test_laptop_views import FACTOR_NAMES, at_laptop_size, labels_fit, probe

    at_laptop_size(main_window)
    view = main_window.training_panel.disentanglement
    view.set_unavailable(None)
    view.add_probes([probe()])
    QApplication.processEvents()
    labels = view.factor_axis.labels
    assert len(labels) == len(FACTOR_NAMES) and all(labels), labels  # no column left unlabelled
    assert labels_fit(view.factor_axis), (labels, view.factor_axis.column_px())


# --- §1.4 empty plots say why; a new run resets the axes ----------------------------------------------------
def test_a_checkpoint_without_probes_says_so_and_new_run_resets_the_mig_axis(main_window, tiny_checkpoint):  # noqa: F811
    from tests.gui.test_laptop_views import probe

    window = main_window
    view = window.training_panel.disentanglement
    assert window.open_checkpoint(tiny_checkpoint[0]), window.messages  # digits: no factors → the reason shows
    window.training_panel.set_probe_note(None)  # as for a dataset with factors whose history has no probe
    window.training_panel.disentanglement.show_no_recorded_probe()
    assert "holds no MIG probe" in view.note.text() and "no probe recorded" in view.heat_hint.toPlainText().lower()
    view.add_probes([probe(step=1000), probe(step=5000)])
    QApplication.processEvents()
    assert view.curve_plot.getPlotItem().vb.viewRange()[0][1] >= 5000
    window.new_run()
    QApplication.processEvents()
    (x0, x1), _ = view.curve_plot.getPlotItem().vb.viewRange()
    assert x1 <= 1.5, (x0, x1)  # not the last run's 0–5,000 steps
    assert "first MIG probe comes" in view.note.text() and view.curve_hint.isVisible()


def test_empty_kl_bars_show_no_milli_axis_after_a_run(qtbot):
    from gui.widgets.kl_bars import KLBarChart

    bars = KLBarChart()
    qtbot.addWidget(bars)
    bars.resize(400, 200)
    bars.show()
    bars.set_values([1.0, 2.0, 3.0])
    bars.set_values([])  # a reopened run stopped mid-epoch has no KL per dimension
    QApplication.processEvents()
    axis = bars.plotItem.getAxis("bottom")
    assert axis.labelUnitPrefix == "" and "0.001" not in axis.label.toPlainText()
    assert not axis.style["showValues"] and bars.empty_hint.isVisible()
    assert bars.plotItem.vb.viewRange()[0] == [0.0, 1.0]


# --- §1.5 legends and axes -------------------------------------------------------------------------------------
def test_test_terms_share_the_train_colour_and_one_legend_entry(qtbot):
    import numpy as np

    from gui.widgets.curves import TEST_LEGEND, LossCurves

    curves = LossCurves()
    qtbot.addWidget(curves)
    steps = np.arange(1.0, 11.0)
    terms = {name: 100.0 / steps + k for k, name in enumerate(("total", "recon", "kl", "mi", "tc", "dim_kl"))}
    curves.add_train(steps, terms)
    curves.add_test([10.0], {name: [v[-1]] for name, v in terms.items()})
    curves.redraw()
    texts = [label.text for _, label in curves.loss_legend.items]
    assert texts == [*terms, TEST_LEGEND]  # 7 entries, not 12
    for name in terms:
        train, test = curves._items[("train", name)], curves._items[("test", name)]
        assert train.opts["pen"].color().name() == test.opts["pen"].color().name()
        assert test.opts["pen"].style() == Qt.PenStyle.DashLine


def test_the_values_axis_shows_only_for_a_value_in_force(qtbot):
    import numpy as np

    from gui.widgets.curves import LossCurves

    curves = LossCurves()
    qtbot.addWidget(curves)
    steps = np.arange(1.0, 6.0)
    curves.add_live(steps, {"lr": np.full(5, 1e-3)})  # a plain VAE: only the learning rate is live
    curves.redraw()
    assert not curves.live_plot.getAxis("left").style["showValues"]
    assert curves.live_plot.getAxis("right").style["showValues"]
    assert "lr (right axis)" in curves.live_title()
    curves.add_live(steps + 5, {"lr": np.full(5, 1e-3), "beta": np.full(5, 4.0)})
    curves.redraw()
    assert curves.live_plot.getAxis("left").style["showValues"] and "beta" in curves.live_title()
    curves.clear()
    assert not curves.live_plot.getAxis("left").style["showValues"] and "beta" not in curves.live_title()


# --- §1.6 one checkpoint on close; recent runs say what they are; the description follows the run ----------------
def test_save_on_close_writes_one_copy_and_recent_runs_name_the_run(main_window, qtbot, isolated_settings):
    from PySide6.QtWidgets import QMessageBox

    from tests.gui.test_main_window import start, use_tiny_setup

    window = main_window
    use_tiny_setup(window, qtbot, save_runs=True)
    start(window, qtbot)
    qtbot.waitUntil(lambda: window.training_panel.curves.point_count() > 5, timeout=20_000)
    window.ask_save_on_close = lambda: QMessageBox.StandardButton.Save
    window.close()
    run = next((isolated_settings / "runs").iterdir())
    files = sorted(p.relative_to(run).as_posix() for p in run.rglob("*.safetensors"))
    steps = [f for f in files if not f.endswith("last.safetensors")]
    assert len(steps) == 1 and steps[0].startswith("checkpoints/step_"), files
    path, text = window.state.recent_entries()[0]
    assert path == str((run / steps[0]).resolve())
    step = int(steps[0].removeprefix("checkpoints/step_").removesuffix(".safetensors"))
    assert text.startswith(run.name) and "digits" in text and "beta-vae" in text and f"step {step:,}" in text


def test_save_on_close_without_a_run_folder_writes_one_named_like_a_run_folders(main_window, qtbot,
                                                                               isolated_settings):
    from PySide6.QtWidgets import QMessageBox

    from engine.checkpoint import load_checkpoint
    from tests.gui.test_main_window import start, use_tiny_setup

    window = main_window
    use_tiny_setup(window, qtbot, save_runs=False)
    start(window, qtbot)
    qtbot.waitUntil(lambda: window.training_panel.curves.point_count() > 5, timeout=20_000)
    assert window.run_dir is None
    window.ask_save_on_close = lambda: QMessageBox.StandardButton.Save
    window.close()
    files = list((isolated_settings / "runs").rglob("*.safetensors"))
    assert len(files) == 1 and files[0].parent.name == "checkpoints", files
    step = load_checkpoint(files[0]).step
    assert files[0].name == f"step_{step}.safetensors"
    assert window.state.recent_entries()[0][0] == str(files[0].resolve())


def test_the_preset_description_is_dropped_when_family_or_dataset_change():
    from engine.presets import load_preset
    from gui.main_window import preset_description_for

    preset = load_preset(DEFAULT_PRESET)
    assert preset_description_for(preset, preset.family, preset.dataset + "?subset=2000") == preset.description
    assert preset_description_for(preset, "vae", preset.dataset) == ""
    assert preset_description_for(preset, preset.family, "mnist") == ""


# --- §1.7 the Training tab exports one labelled figure, and each plot alone ------------------------------------------
def test_training_export_is_a_labelled_figure_and_each_plot_exports_alone(main_window, tmp_path,
                                                                           tiny_checkpoint):  # noqa: F811
    import numpy as np
    from PIL import Image

    window = main_window
    panel = window.training_panel
    assert window.open_checkpoint(tiny_checkpoint[0])
    QApplication.processEvents()
    assert window.export_current(tmp_path / "fig.png")
    figure = np.asarray(Image.open(tmp_path / "fig.png").convert("RGB"))
    assert (figure[:6, :6] == 255).all()  # the figure's white margin, not the dark tab
    assert figure.shape[0] != panel.height() or figure.shape[1] != panel.width()
    assert panel.start_button.grab().size().width() > 0
    for widget, title, _ in panel.plot_widgets():
        actions = [a.text() for a in widget.scene().contextMenu]
        assert actions == ["Export this plot as PNG…", "Export the Training figure…"], title
    written = panel.export_plot(panel.kl_bars, tmp_path / "kl")
    image = Image.open(written)
    assert written.suffix == ".png" and image.size == (panel.kl_bars.width(), panel.kl_bars.height())


def test_evaluation_and_sweep_plots_say_what_will_appear_and_score_labels_stay_apart(main_window, qtbot):
    from tests.gui.test_laptop_views import at_laptop_size, labels_fit

    window = main_window
    at_laptop_size(window)
    evaluation = window.panels["evaluationPanel"]
    window.tabs.setCurrentWidget(evaluation)
    evaluation._show_model_page()  # the results page, as with a model (here: before any compute)
    QApplication.processEvents()
    assert evaluation.bar_hint.isVisible() and "Compute" in evaluation.bar_hint.toPlainText()
    assert evaluation.traversal_view.empty_hint.isVisible()
    scores = {"beta_vae": 0.8, "factor_vae": 0.7, "mig": 0.3, "dci_disentanglement": 0.4, "dci_completeness": 0.4,
              "dci_informativeness": 0.9, "sap": 0.2}  # what a compute hands the view, to draw the bars
    evaluation.computed_step = 0
    evaluation._show_result({"kl": None, "images": 500, **scores})
    QApplication.processEvents()
    labels = evaluation.score_axis.labels
    assert len(labels) == 7 and all(labels) and labels_fit(evaluation.score_axis), labels
    assert not evaluation.bar_hint.isVisible()
    sweep = evaluation.sweep_panel
    assert sweep.plot.empty_hint.isVisible()
    assert "appear here" in sweep.table.model.headerData(0, Qt.Orientation.Horizontal)
