"""Your own data in the app (issue 21 §2): skipped files are named, a failed load leaves the Data dock consistent, the
test split is chosen in the Data dock, and the latent map / gallery draw from the split the user picks and say
when fewer images exist than were asked for."""

from __future__ import annotations

import numpy as np
from PIL import Image

from engine.data import load_dataset
from engine.models import create_model


def own_folder(root, count=30, broken=("broken.png", "notes.txt")):
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        Image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8)).save(root / f"img{i:02d}.png")
    for name in broken:
        (root / name).write_bytes(b"not an image")
    return root


def test_the_data_dock_names_skipped_files_and_recovers_from_a_failed_load(qtbot, main_window, tmp_path):
    dock = main_window.data_settings
    folder = own_folder(tmp_path / "mine")
    dock.open(str(folder))
    qtbot.waitUntil(lambda: main_window.state.dataset_spec == str(folder), timeout=20_000)
    assert len(main_window.state.dataset) == 30
    summary = dock.dataset_summary.text()
    assert "2 unreadable file(s) skipped: broken.png, notes.txt" in summary
    assert dock.skipped_button.isVisible() and not dock.skipped_details.isVisible()
    dock.skipped_button.click()
    assert dock.skipped_details.isVisible() and "notes.txt: not an image file" in dock.skipped_details.toPlainText()

    nothing_readable = tmp_path / "junk"
    nothing_readable.mkdir()
    (nothing_readable / "a.png").write_bytes(b"junk")
    dock.open(str(nothing_readable))
    qtbot.waitUntil(lambda: not main_window.state.is_busy("dataset"), timeout=20_000)
    assert "loading" not in dock.dataset_summary.text(), "no lingering 'loading…'"
    assert dock.spec == str(folder), "the previous dataset is selected again"
    assert main_window.state.dataset_spec == str(folder) and len(main_window.state.dataset) == 30
    assert "30 images from" in dock.dataset_summary.text()
    assert main_window.banner.isVisible() and "none of its 1 file(s) could be read" in main_window.banner.label.text()
    assert main_window.build_config().dataset == str(folder), "Start trains the dataset the dock shows"

    dock.open("digits")
    qtbot.waitUntil(lambda: main_window.state.dataset_spec == "digits", timeout=20_000)
    assert not main_window.banner.isVisible(), "the next successful load clears the error"
    assert not dock.skipped_button.isVisible()


def test_the_test_split_is_chosen_in_the_data_dock(qtbot, main_window, tmp_path):
    dock = main_window.data_settings
    folder = own_folder(tmp_path / "split", count=200, broken=())
    dock.open(str(folder))
    qtbot.waitUntil(lambda: main_window.state.dataset_spec == str(folder), timeout=20_000)
    dock.set_test_split(0.02)
    assert dock.test_split() == (0.02, 0) and dock.test_split_note.text() == "→ 32 of 200 (raised to the floor)"
    dock.test_split_unit.setCurrentIndex(dock.test_split_unit.findData("count"))
    assert dock.test_split() == (0.0, 32), "switching unit keeps the split's size"
    dock.test_split_value.setValue(50)
    assert dock.test_split_note.text() == "→ 50 of 200"
    config = main_window.build_config()
    assert config.test_count == 50 and config.dataset == str(folder)


def test_latent_map_and_gallery_use_the_chosen_split_and_say_how_many_exist(qtbot):
    from gui.model_source import ModelSource
    from gui.panels.gallery import GalleryPanel
    from gui.panels.latent_map import LatentMapPanel

    dataset = load_dataset("digits")
    model = create_model("vae", dataset.shape, dataset.num_classes, latent_dim=3, hidden=16, depth=1,
                         backbone="mlp").eval()
    _, test = dataset.split(0.0, seed=0, test_count=40)
    source = ModelSource()
    latent_map, gallery = LatentMapPanel(source), GalleryPanel(source)
    for panel in (latent_map, gallery):
        qtbot.addWidget(panel)
        panel.resize(1000, 600)
        panel.show()
    source.set_static(model, dataset, test, {"step": 1})
    qtbot.waitUntil(lambda: latent_map.embedding is not None, timeout=20_000)
    assert len(latent_map.indices) == 40 and set(latent_map.indices.tolist()) == set(test.tolist())
    assert latent_map.status.text() == ("Showing 40 points: the test split has only 40 images (choose the training "
                                        "split or all images for more).")
    latent_map.embedding = None
    latent_map.split_combo.setCurrentIndex(latent_map.split_combo.findData("train"))
    qtbot.waitUntil(lambda: latent_map.embedding is not None, timeout=20_000)
    assert len(latent_map.indices) == 1000 and not set(latent_map.indices.tolist()) & set(test.tolist())
    assert latent_map.status.text() == ""
    gallery.count_spin.setValue(48)
    qtbot.waitUntil(lambda: gallery.grid is not None, timeout=20_000)
    assert "Showing 40 images: the test split has only 40 images" in gallery.status.text()
    gallery.split_combo.setCurrentIndex(gallery.split_combo.findData("both"))
    assert gallery.status.text() == ""
    for panel in (latent_map, gallery):
        panel.shutdown()


def test_a_label_column_of_factors_csv_colours_the_latent_map_with_its_labels(qtbot, tmp_path):
    from gui.model_source import ModelSource
    from gui.panels.latent_map import LatentMapPanel
    from tests.engine.test_own_data import shapes_folder

    dataset = load_dataset(str(shapes_folder(tmp_path / "shapes")))
    model = create_model("vae", dataset.shape, 0, latent_dim=2, hidden=8, depth=1, backbone="mlp").eval()
    source = ModelSource()
    panel = LatentMapPanel(source)
    qtbot.addWidget(panel)
    panel.show()
    source.set_static(model, dataset, None, {"step": 1})
    qtbot.waitUntil(lambda: panel.embedding is not None, timeout=20_000)
    panel.color_combo.setCurrentText("kind")
    assert [label.text for _, label in panel.legend.items] == ["disc", "square"] and panel.colour_bar is None
    panel.color_combo.setCurrentText("radius")
    assert panel.colour_bar is not None, "a numeric factor keeps its colour bar"
    panel.shutdown()


def test_evaluation_on_own_factors_scores_mig_and_says_what_needs_a_full_grid(qtbot, tmp_path):
    from engine.metrics import MetricSizes
    from gui.model_source import ModelSource
    from gui.panels.evaluation import EvaluationPanel
    from tests.engine.test_own_data import shapes_folder

    dataset = load_dataset(str(shapes_folder(tmp_path / "partial", drop=5)))
    model = create_model("beta-vae", dataset.shape, 0, latent_dim=3, hidden=16, depth=1, backbone="mlp").eval()
    source = ModelSource()
    panel = EvaluationPanel(source)
    qtbot.addWidget(panel)
    panel.resize(1200, 800)
    panel.show()
    source.set_static(model, dataset, dataset.split(0.0, 0, test_count=8)[1], {"step": 1})
    assert panel.factor_note.isHidden(), "a folder with factors.csv is a factor world"
    panel.metrics_combo.setCurrentIndex(1)  # without DCI (its trees are slow)
    panel.set_metric_sizes(MetricSizes(train_points=200, test_points=100, batch_size=8, variance_points=200))
    panel.iwae_spin.setValue(0)
    qtbot.waitUntil(lambda: source.has_model and panel.compute_button.isEnabled(), timeout=10_000)
    panel.compute_button.click()
    assert panel.computing
    qtbot.waitUntil(lambda: not panel.computing, timeout=30_000)
    rows = {panel.score_table.item(r, 0).text(): panel.score_table.item(r, 1)
            for r in range(panel.score_table.rowCount())}
    assert "MIG" in rows, (panel.status.text(), panel.factor_note.text(), sorted(panel.result or {}))
    assert 0.0 <= float(rows["MIG"].text()) <= 1.0
    assert rows["BetaVAE score"].text() == "needs a full factor grid"
    assert "19 items for 24 factor combinations" in rows["BetaVAE score"].toolTip()
    assert rows["FactorVAE score"].text() == "needs a full factor grid"
    assert np.asarray(panel.result["mi_matrix"]).shape == (3, 3), "the MI heatmap's matrix: latents × factors"
    panel.shutdown()
