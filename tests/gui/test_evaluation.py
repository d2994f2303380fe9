"""The Evaluation tab, driven for real: compute on a tiny dSprites model, the no-factor message, cancel, exports."""

from __future__ import annotations

import csv
import json
import threading

import numpy as np
import pytest
import torch

from engine.data import load_dataset
from engine.metrics import MetricSizes, suite
from engine.models import create_model
from gui.model_source import ModelSource
from gui.panels.evaluation import PENDING_TEXT, SCORE_TITLES, EvaluationPanel

TINY = {"latent_dim": 3, "backbone": "mlp", "hidden": 16, "depth": 1}
SIZES = MetricSizes(train_points=200, test_points=100, batch_size=8, variance_points=200)


@pytest.fixture(scope="module")
def dsprites():
    return load_dataset("dsprites?subset=2000")


def make_panel(qtbot, dataset, family: str = "beta-vae"):
    torch.manual_seed(0)
    model = create_model(family, dataset.shape, dataset.num_classes if family == "cvae" else 0, **TINY)
    _, test = dataset.split(0.1, 0)
    source = ModelSource()
    panel = EvaluationPanel(source)
    qtbot.addWidget(panel)
    panel.resize(1200, 800)
    panel.show()
    source.set_static(model, dataset, test[:300], {"step": 7})
    return panel, source


def finish(qtbot, panel, timeout: int = 30_000):
    qtbot.waitUntil(lambda: not panel.computing, timeout=timeout)


def test_compute_shows_numbers_scores_heatmap_and_traversal_in_kl_order(qtbot, dsprites, tmp_path):
    panel, _ = make_panel(qtbot, dsprites)
    try:
        assert panel.factor_note.isHidden()
        assert panel.heat_hint.isVisible() and "Compute" in panel.heat_hint.toPlainText()
        panel.metrics_combo.setCurrentIndex(1)  # without DCI (its trees take ~30 s even on 200 points)
        panel.set_metric_sizes(SIZES)
        panel.iwae_spin.setValue(5)
        panel.compute_button.click()
        assert panel.computing and panel.cancel_button.isEnabled()
        finish(qtbot, panel)
        result = panel.result
        assert result is not None, panel.status.text()
        assert result["neg_elbo"] == pytest.approx(result["recon"] + result["kl"], rel=1e-6)
        assert panel.elbo_labels["neg_elbo"].text() == f"{result['neg_elbo']:.3f}"
        assert panel.elbo_labels["iwae_nll"].text() != "–"
        shown = {panel.score_table.item(r, 0).text() for r in range(panel.score_table.rowCount())}
        assert shown == {"BetaVAE score", "FactorVAE score", "MIG", "SAP (continuous)"}
        for key in ("beta_vae", "factor_vae", "mig", "sap"):
            assert 0.0 <= result[key] <= 1.0
        order = result["order"]
        kl = np.asarray(result["kl_per_dim"])
        assert sorted(order) == [0, 1, 2] and list(np.argsort(-kl, kind="stable")) == order
        heat = panel.heat_image.image
        assert heat.shape == (3, 5)
        np.testing.assert_allclose(heat, np.asarray(result["mi_matrix"])[order], rtol=1e-6)
        assert len(panel.heat_texts) == 15
        assert not panel.heat_hint.isVisible()
        assert panel.factor_axis.labels and all(panel.factor_axis.label_px(label) < panel.factor_axis.column_px()
                                                for label in panel.factor_axis.labels)
        assert tuple(panel.heat_bar.levels()) == (0.0, 1.0)  # a colour bar on the fixed 0–1 scale
        assert list(panel.heat_image.getLevels()) == [0.0, 1.0]
        assert panel.traversal_view.image is not None
        assert panel.traversal_view.image.shape[0] == 1 + 3 * (64 + 1)  # one row per latent, same order
        assert panel.progress_bar.value() == 1000 and "step 7" in panel.status.text()
        assert result["sizes"]["train_points"] == 200

        png = panel.export_png(tmp_path / "eval.png")
        assert png.stat().st_size > 1000
        rows = list(csv.reader(open(panel.export_csv(tmp_path / "eval.csv"), newline="")))
        values = {r[0]: float(r[1]) for r in rows[1:] if len(r) == 2}
        assert values["mig"] == pytest.approx(result["mig"]) and values["kl"] == pytest.approx(result["kl"])
        assert ["mutual_information", "shape", "scale", "orientation", "posX", "posY"] in rows
        doc = json.loads(panel.export_json(tmp_path / "eval.json").read_text())
        assert doc["beta_vae"] == pytest.approx(result["beta_vae"]) and doc["sizes"]["batch_size"] == 8
        assert "traversal" not in doc
    finally:
        panel.shutdown()


def test_dataset_without_factors_says_so_and_still_evaluates(qtbot):
    panel, _ = make_panel(qtbot, load_dataset("digits"))
    try:
        assert panel.factor_note.isVisible()
        assert "no ground-truth factors" in panel.factor_note.text() and "dSprites" in panel.factor_note.text()
        assert not panel.metrics_combo.isEnabled()
        panel.iwae_spin.setValue(0)
        panel.compute()
        finish(qtbot, panel)
        assert panel.result is not None and panel.result["kl"] is not None
        assert panel.score_table.rowCount() == 0 and panel.heat_image.image is None
        assert panel.heat_hint.isVisible() and "no ground-truth factors" in panel.heat_hint.toPlainText()
        assert panel.traversal_view.image is not None
    finally:
        panel.shutdown()


def test_cancel_stops_a_long_computation(qtbot, dsprites):
    panel, _ = make_panel(qtbot, dsprites)
    try:
        panel.sizes_combo.setCurrentIndex(1)  # standard sizes with DCI: minutes unless cancelled
        panel.iwae_spin.setValue(0)
        panel.compute()
        qtbot.waitUntil(lambda: "scores" in panel.progress_bar.format() or panel.progress_bar.value() > 300,
                        timeout=20_000)
        panel.cancel_button.click()
        finish(qtbot, panel, timeout=20_000)
        assert panel.result is None
        assert panel.status.text() == "Cancelled."
        assert panel.compute_button.isEnabled() and not panel.cancel_button.isEnabled()
    finally:
        panel.shutdown()


def test_new_model_clears_old_results_and_live_weights_mark_them_stale(qtbot, dsprites):
    panel, source = make_panel(qtbot, dsprites)
    try:
        panel.metrics_combo.setCurrentIndex(1)
        panel.set_metric_sizes(SIZES)
        panel.iwae_spin.setValue(0)
        panel.compute()
        finish(qtbot, panel)
        assert panel.result is not None
        source.notify_step(50)
        panel.refresh()
        assert "step 7" in panel.status.text() and "step 50" in panel.status.text()
        source.set_static(source.snapshot(), dsprites, None, {"step": 0})
        assert panel.result is None and panel.score_table.rowCount() == 0
        with pytest.raises(ValueError, match="press Compute"):
            panel.export_csv("unused.csv")
    finally:
        panel.shutdown()


def test_score_choice_picks_metrics_and_dci_estimator(qtbot, dsprites):
    panel, _ = make_panel(qtbot, dsprites)
    texts = [panel.metrics_combo.itemText(i) for i in range(panel.metrics_combo.count())]
    assert texts == ["All five", "Without DCI", "All five, fast approximate DCI"]
    panel.set_metric_sizes(SIZES)
    for index, has_dci, estimator in ((0, True, "exact"), (1, False, "exact"), (2, True, "hist")):
        panel.metrics_combo.setCurrentIndex(index)
        assert ("dci" in panel.metric_names()) == has_dci
        assert panel.metric_sizes().dci_estimator == estimator
        assert panel.metric_sizes().train_points == SIZES.train_points


def test_all_five_scores_with_the_default_dci(qtbot, dsprites):
    panel, _ = make_panel(qtbot, dsprites)
    try:
        panel.set_metric_sizes(SIZES)
        panel.iwae_spin.setValue(0)
        panel.compute_button.click()
        finish(qtbot, panel, timeout=120_000)
        result = panel.result
        assert result is not None, panel.status.text()
        assert result["dci_estimator"] == "exact" and 0.0 <= result["dci_disentanglement"] <= 1.0
        assert "reference GradientBoostingClassifier" in panel.status.text()
        assert panel.score_table.rowCount() == 7
    finally:
        panel.shutdown()


def shown_scores(panel) -> dict[str, str]:
    table = panel.score_table
    return {table.item(r, 0).text(): table.item(r, 1).text() for r in range(table.rowCount())}


@pytest.fixture
def slow_mig(monkeypatch):
    """MIG waits until the test sets the returned event (BetaVAE and FactorVAE run before it, SAP after it)."""
    release = threading.Event()
    original = suite.mig_per_factor

    def waiting_mig(mi):
        release.wait(30)
        return original(mi)

    monkeypatch.setattr(suite, "mig_per_factor", waiting_mig)
    yield release
    release.set()  # never leave the worker waiting


def start_without_dci(panel) -> None:
    panel.metrics_combo.setCurrentIndex(1)  # BetaVAE, FactorVAE, MIG, SAP
    panel.set_metric_sizes(SIZES)
    panel.iwae_spin.setValue(0)
    panel.compute_button.click()


def test_finished_scores_show_while_a_slow_metric_is_pending(qtbot, dsprites, slow_mig):
    panel, _ = make_panel(qtbot, dsprites)
    try:
        start_without_dci(panel)
        names = [SCORE_TITLES[k] for k in ("beta_vae", "factor_vae", "mig", "sap")]
        assert shown_scores(panel) == dict.fromkeys(names, PENDING_TEXT)
        qtbot.waitUntil(lambda: shown_scores(panel)["FactorVAE score"] != PENDING_TEXT, timeout=30_000)
        early = shown_scores(panel)
        assert early["MIG"] == early["SAP (continuous)"] == PENDING_TEXT
        assert panel.computing and panel.result is None and panel.progress_bar.value() < 1000
        assert len(panel.bars.opts["height"]) == 2 and panel.score_axis.names == ["BetaVAE", "FactorVAE"]
        slow_mig.set()
        finish(qtbot, panel)
        result = panel.result
        assert result is not None, panel.status.text()
        final = shown_scores(panel)
        assert final == {SCORE_TITLES[k]: f"{result[k]:.3f}" for k in ("beta_vae", "factor_vae", "mig", "sap")}
        assert early["BetaVAE score"] == final["BetaVAE score"] and early["FactorVAE score"] == final["FactorVAE score"]
        assert list(panel.bars.opts["height"]) == [result[k] for k in ("beta_vae", "factor_vae", "mig", "sap")]
    finally:
        panel.shutdown()


def test_cancel_keeps_the_finished_scores_and_marks_the_rest(qtbot, dsprites, slow_mig):
    panel, _ = make_panel(qtbot, dsprites)
    try:
        start_without_dci(panel)
        qtbot.waitUntil(lambda: shown_scores(panel)["FactorVAE score"] != PENDING_TEXT, timeout=30_000)
        early = shown_scores(panel)
        panel.cancel_button.click()
        slow_mig.set()
        finish(qtbot, panel)
        assert panel.result is None and panel.status.text() == "Cancelled."
        after = shown_scores(panel)
        assert after["BetaVAE score"] == early["BetaVAE score"] and after["FactorVAE score"] == early["FactorVAE score"]
        assert after["MIG"] == after["SAP (continuous)"] == "cancelled"
        assert panel.compute_button.isEnabled() and not panel.cancel_button.isEnabled()
    finally:
        panel.shutdown()
