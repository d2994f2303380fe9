"""The Training dock's run options (precision, compile mode, memory format, deterministic) in the real window."""

from __future__ import annotations

import torch

from engine.config import TrainConfig
from gui.widgets.run_options import RunOptions


def test_dock_options_reach_the_config_and_back(main_window):
    window = main_window
    options = window.findChild(RunOptions)
    assert options is not None and options.precision_combo.isVisibleTo(window.training_dock)
    assert window.build_config().precision == "fp32" and not window.build_config().compile
    options.precision_combo.setCurrentText("bf16")
    options.compile_combo.setCurrentText("reduce-overhead")
    options.deterministic_check.setChecked(True)
    assert window.build_config().memory_format == "auto"
    options.memory_format_combo.setCurrentText("channels_last")
    config = window.build_config()
    assert (config.precision, config.compile, config.compile_mode, config.deterministic, config.memory_format) == (
        "bf16", True, "reduce-overhead", True, "channels_last")
    window.fill_from_config(TrainConfig(dataset="digits", family="vae", precision="fp32", compile=False,
                                        deterministic=False, memory_format="contiguous"))
    assert options.values() == {"precision": "fp32", "compile": False, "compile_mode": "default",
                                "memory_format": "contiguous", "deterministic": False}
    for widget in (options.precision_combo, options.compile_combo, options.memory_format_combo,
                   options.deterministic_check):
        assert widget.toolTip()


def test_a_bf16_run_from_the_dock_trains(main_window, qtbot):
    window = main_window
    assert window.open_dataset("digits")
    window.model_settings.select_family("vae")
    window.model_settings.hparam_form.set_values({"latent_dim": 2, "hidden": 16, "depth": 1, "backbone": "mlp"})
    window.training_settings.max_steps_spin.setValue(30)
    window.training_settings.batch_spin.setValue(64)
    window.training_settings.save_runs_check.setChecked(False)
    window.findChild(RunOptions).precision_combo.setCurrentText("bf16")
    assert window.start_training(), window.messages
    qtbot.waitUntil(lambda: window.finished_event is not None, timeout=60_000)
    assert window.finished_event.reason == "completed" and window.session.config.precision == "bf16"
    assert all(p.dtype == torch.float32 for p in window.session.model.parameters())
