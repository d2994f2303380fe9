"""At 1366×768: the Model dock shows only the settings that apply, empty views say what will appear there in text
that fits them, and the MI heatmaps' factor names fit their columns (abbreviated, full names in the tooltip)."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
import pytest
from PySide6.QtWidgets import QApplication

from engine.data.dsprites import FACTOR_NAMES
from engine.events import DisentanglementProbe
from engine.models import families
from gui.forms import HParamForm
from gui.widgets.disentanglement import DisentanglementView
from gui.widgets.factor_axis import FactorAxis, abbreviate

LAPTOP = (1366, 768)


def probe(step: int = 10, latents: int = 10) -> DisentanglementProbe:
    rng = np.random.default_rng(0)
    mi = rng.uniform(0, 1, size=(latents, len(FACTOR_NAMES)))
    return DisentanglementProbe(step=step, mig=0.3, mig_per_factor=(0.3,) * len(FACTOR_NAMES),
                                mi=tuple(map(tuple, mi)), factor_names=FACTOR_NAMES,
                                best_factor=tuple(int(k) for k in mi.argmax(1)), points=2000, seconds=0.1)


def at_laptop_size(window) -> None:
    window.resize(*LAPTOP)
    QApplication.processEvents()
    QApplication.processEvents()


def labels_fit(axis: FactorAxis) -> bool:
    """No two shown labels overlap: centres one column apart, each label narrower than the space it has."""
    column = axis.column_px()
    shown = [(k * column, axis.label_px(label)) for k, label in enumerate(axis.labels) if label]
    return column > 0 and bool(shown) and all(
        x1 - x0 >= (w0 + w1) / 2 + 2 for (x0, w0), (x1, w1) in zip(shown, shown[1:], strict=False))


@pytest.mark.parametrize("family", list(families()))
def test_broadcast_settings_appear_only_with_the_broadcast_decoder(qtbot, family):
    form = HParamForm(family)
    qtbot.addWidget(form)
    form.show()
    if "decoder" not in form.editors:
        pytest.skip(f"{family} has no decoder choice")
    dependent = [name for name in ("broadcast_width", "broadcast_resolution") if name in form.editors]
    assert dependent, family
    for name in dependent:
        assert not form.editors[name].isVisible() and not form.layout_.labelForField(form.editors[name]).isVisible()
    assert "broadcast_width appears when decoder = broadcast" in form.editors["decoder"].toolTip()
    form.set_values({"decoder": "broadcast"})
    assert all(form.editors[name].isVisible() for name in dependent)
    form.set_values({"broadcast_width": 64})
    assert form.values()["broadcast_width"] == 64
    form.set_values({"decoder": "mlp"})
    assert not any(form.editors[name].isVisible() for name in dependent)
    if "sigma" in form.editors and "likelihood" in form.editors:  # the same rule: σ only for a Gaussian likelihood
        assert not form.editors["sigma"].isVisible()
        form.set_values({"likelihood": "gaussian"})
        assert form.editors["sigma"].isVisible()


def test_the_model_dock_hides_the_broadcast_rows_of_the_default_preset(main_window):
    form = main_window.model_settings.hparam_form
    decoder = form.raw_values()["decoder"]
    shown = form.editors["broadcast_width"].isVisibleTo(main_window)
    assert shown == (decoder == "broadcast")


def test_empty_training_views_have_hints_that_fit_and_leave_when_data_arrives(main_window, qtbot):
    window = main_window
    at_laptop_size(window)
    panel = window.training_panel
    kl_hint = panel.kl_bars.empty_hint
    assert kl_hint.isVisible() and "latent dimension" in kl_hint.toPlainText()
    assert kl_hint.fits(), (kl_hint.sceneBoundingRect(), panel.kl_bars.plotItem.vb.sceneBoundingRect())
    view = panel.disentanglement
    view.set_unavailable(None)  # dSprites: a probe is expected
    assert view.heat_hint.isVisible() and "mutual information" in view.heat_hint.toPlainText()
    assert view.heat_hint.fits()
    panel.kl_bars.set_values([0.5, 0.01, 2.0])
    view.add_probes([probe()])
    assert not kl_hint.isVisible() and not view.heat_hint.isVisible()
    panel.reset(None)  # a new run: the hints come back
    assert kl_hint.isVisible() and view.heat_hint.isVisible()


def test_mi_heatmap_factor_labels_fit_their_columns_at_1366(main_window, qtbot):
    window = main_window
    at_laptop_size(window)
    view = window.training_panel.disentanglement
    view.set_unavailable(None)
    view.add_probes([probe()])
    QApplication.processEvents()
    axis = view.factor_axis
    assert len(axis.labels) == len(FACTOR_NAMES)
    assert labels_fit(axis), (axis.labels, axis.column_px())
    ticks = [label for _, label in axis._tickLevels[0]]
    assert ticks == axis.labels
    if axis.labels != list(FACTOR_NAMES):
        assert "orientation" in axis.toolTip()


def test_factor_axis_shows_full_names_when_they_fit_and_abbreviates_when_not(qtbot):
    view = DisentanglementView()
    qtbot.addWidget(view)
    view.resize(1800, 400)
    view.show()
    view.set_unavailable(None)
    view.add_probes([probe()])
    QApplication.processEvents()
    assert view.factor_axis.labels == list(FACTOR_NAMES) and view.factor_axis.toolTip() == ""
    view.resize(300, 300)  # abbreviations (down to two letters: every dSprites column keeps a label)
    QApplication.processEvents()
    assert view.factor_axis.labels != list(FACTOR_NAMES) and labels_fit(view.factor_axis)
    assert all(view.factor_axis.labels) and "orientation" in view.factor_axis.toolTip()
    view.factor_axis.set_names([f"factor{k}" for k in range(12)])  # too many columns: every k-th is labelled
    assert "" in view.factor_axis.labels and labels_fit(view.factor_axis)


def test_abbreviations_stay_short_and_distinct():
    assert abbreviate("orientation", 6) == "orient" and abbreviate("posX", 3) == "pX"
    assert abbreviate("floor_hue", 4) == "fhue" and abbreviate("shape", 6) == "shape"
    names = ["floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation"]
    assert all(len(abbreviate(n, 3)) <= 3 for n in names)
    assert len({abbreviate(n, 3) for n in names}) == len(names)


def test_the_evaluation_heatmap_says_what_will_appear_before_compute(main_window, qtbot):
    evaluation = main_window.panels["evaluationPanel"]
    hint = evaluation.heat_hint
    assert "Compute" in hint.toPlainText() and "mutual information" in hint.toPlainText()
    assert isinstance(evaluation.factor_axis, pg.AxisItem)


def test_the_sweep_tab_works_before_any_model_exists(main_window, qtbot):
    """A sweep trains its own runs: without a model only "This model" shows the empty state."""
    evaluation = main_window.panels["evaluationPanel"]
    main_window.tabs.setCurrentWidget(evaluation)
    assert not main_window.source.has_model
    assert evaluation.stack.currentWidget() is evaluation.content and evaluation.tabs.isVisible()
    assert evaluation.model_stack.currentWidget() is evaluation.model_empty
    evaluation.tabs.setCurrentIndex(1)
    assert evaluation.sweep_panel.isVisible() and evaluation.sweep_panel.start_button.isEnabled()
