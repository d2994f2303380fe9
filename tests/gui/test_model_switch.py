"""Opening another model resets every latent point a panel holds to the new model's encoding (issue 19 §1): the
Traversal base and sliders, *Reset to base*, exports, Interpolation's endpoints, the Latent map's selection and the
Conditional panel's codes — checked in the real window against the second model's own posterior means."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from engine import explore
from engine.checkpoint import load_checkpoint
from engine.imaging import tile, to_uint8


def last(folder) -> str:
    return str(folder / "checkpoints" / "last.safetensors")


def show(window, qtbot, name: str):
    """Bring a panel's tab to the front (a hidden panel does no inference) and wait until it has nothing to do."""
    panel = window.panels[name]
    window.tabs.setCurrentWidget(panel)
    qtbot.waitUntil(lambda: not panel.runner.is_busy, timeout=10_000)
    return panel


def test_traversal_base_sliders_reset_and_export_follow_the_opened_model(main_window, qtbot, tiny_runs, tmp_path):
    window = main_window
    assert window.open_checkpoint(last(tiny_runs["vae-a"])), window.messages
    panel = show(window, qtbot, "traversalPanel")
    qtbot.waitUntil(lambda: panel.current_z is not None, timeout=10_000)
    panel.pick_image(3)
    base_index = int(panel.thumb_indices[3])
    qtbot.waitUntil(lambda: not panel.runner.is_busy and panel.base_index == base_index, timeout=10_000)
    first_z = panel.current_z.copy()
    panel.set_slider(int(panel.row_order[0]), 1.5)  # a moved slider must not survive the switch either

    assert window.open_checkpoint(last(tiny_runs["vae-b"])), window.messages
    qtbot.waitUntil(lambda: panel.current_z is not None and not panel.runner.is_busy, timeout=10_000)
    second = load_checkpoint(last(tiny_runs["vae-b"])).model.eval()
    dataset = window.source.dataset
    expected = explore.encode_means(second, dataset.images_at(torch.tensor([base_index])))[0]
    assert panel.base_index == base_index, "the selected image stays selected"
    assert not np.allclose(expected, first_z, atol=1e-3), "the two models encode the image differently"
    np.testing.assert_allclose(panel.base_z, expected, atol=1e-6)
    np.testing.assert_allclose(panel.current_z, expected, atol=1e-6)
    for dim, slider in panel.sliders.items():
        shown = np.clip(expected[dim], slider.minimum(), slider.maximum())
        assert abs(slider.value() - shown) < 0.006, (dim, slider.value(), expected[dim])

    dim = int(panel.row_order[0])
    panel.set_slider(dim, float(panel.sliders[dim].maximum()))
    assert panel.current_z[dim] != expected[dim]
    panel.reset_to_base()
    np.testing.assert_allclose(panel.current_z, expected, atol=1e-6)
    qtbot.waitUntil(lambda: not panel.runner.is_busy, timeout=10_000)
    assert np.array_equal(panel.single, to_uint8(explore.decode_codes(second, expected))[0, 0])

    exported = panel.export_png(tmp_path / "switched.png")
    dims = panel.visible_dims()
    values = explore.traversal_values(panel.stats, dims, panel.steps_spin.value())
    figure = explore.traversal_figure(second, expected, dims, values, None, **panel._figure_labels(dims, values))
    with Image.open(exported) as image:
        assert np.array_equal(np.asarray(image), figure)


def test_interpolation_and_latent_map_selection_follow_the_opened_model(main_window, qtbot, tiny_runs):
    window = main_window
    assert window.open_checkpoint(last(tiny_runs["vae-a"])), window.messages
    interpolation = show(window, qtbot, "interpolationPanel")
    interpolation.set_pairs([(2, 5)])
    latent_map = show(window, qtbot, "latentMapPanel")
    qtbot.waitUntil(lambda: latent_map.embedding is not None, timeout=10_000)
    latent_map.show_point(7)
    selected = int(latent_map.indices[7])
    qtbot.waitUntil(lambda: latent_map.probe is not None and not latent_map.runner.is_busy, timeout=10_000)
    first_probe = latent_map.probe.copy()

    assert window.open_checkpoint(last(tiny_runs["vae-b"])), window.messages
    second = load_checkpoint(last(tiny_runs["vae-b"])).model.eval()
    dataset, test = window.source.dataset, latent_map.test_indices()
    latent_map = show(window, qtbot, "latentMapPanel")
    qtbot.waitUntil(lambda: latent_map.embedding is not None and not latent_map.runner.is_busy, timeout=10_000)
    assert latent_map.selected_index == selected
    x = dataset.images_at(torch.tensor([selected]))
    expected_probe = tile(np.concatenate([to_uint8(x), to_uint8(explore.reconstructions(second, x))]), 2)
    assert np.array_equal(latent_map.probe, expected_probe) and not np.array_equal(first_probe, expected_probe)
    position = int((latent_map.indices == selected).nonzero()[0])
    marker = latent_map.marker.getData()
    assert np.allclose([marker[0][0], marker[1][0]], latent_map.embedding.coords[position])

    interpolation = show(window, qtbot, "interpolationPanel")
    qtbot.waitUntil(lambda: interpolation.path_images is not None and not interpolation.runner.is_busy, timeout=10_000)
    ends = to_uint8(explore.reconstructions(second, dataset.images_at(test[torch.tensor([2, 5])])))
    assert np.array_equal(interpolation.path_images[0, 0], ends[0])
    assert np.array_equal(interpolation.path_images[0, -1], ends[1])


def test_conditional_codes_follow_the_opened_model(main_window, qtbot, tiny_runs):
    window = main_window
    assert window.open_checkpoint(last(tiny_runs["cvae-a"])), window.messages
    panel = show(window, qtbot, "conditionalPanel")
    qtbot.waitUntil(lambda: panel.analogy is not None and panel.grid is not None, timeout=10_000)
    panel.image_spin.setValue(4)
    qtbot.waitUntil(lambda: not panel.runner.is_busy, timeout=10_000)
    first_analogy = panel.analogy.copy()

    assert window.open_checkpoint(last(tiny_runs["cvae-b"])), window.messages
    second = load_checkpoint(last(tiny_runs["cvae-b"])).model.eval()
    qtbot.waitUntil(lambda: not panel.runner.is_busy and not np.array_equal(panel.analogy, first_analogy),
                    timeout=10_000)
    dataset, test = window.source.dataset, panel.test_indices()
    index = test[4].reshape(1)
    x, y = dataset.images_at(index), dataset.labels_at(index)
    row = to_uint8(explore.analogies(second, x, y))
    assert np.array_equal(panel.analogy, tile(np.concatenate([to_uint8(x), row]), row.shape[0] + 1))
    assert np.array_equal(panel.grid, explore.conditional_grid(second, panel.samples_spin.value(), seed=panel.seed))
