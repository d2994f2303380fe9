"""The Training dock: epochs (or a maximum number of steps), batch size, learning rate, device, torch threads, seed,
the GPU run options (gui/widgets/run_options.py) and whether to write a run folder.

Reads from AppState: nothing — the window fills it from a preset or a checkpoint (`fill`) and writes a live
learning-rate change into it. Changes in AppState: nothing; the window reads `settings()` into a TrainConfig on
Start, or `continue_overrides()` when a loaded checkpoint is continued.
"""

from __future__ import annotations

from typing import Any

import torch
from PySide6.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QSpinBox, QWidget

from engine.config import TrainConfig
from gui.widgets.run_options import RunOptions

MAX_EPOCHS = 100_000


def device_choices() -> list[str]:
    """auto and cpu, then whatever accelerators this machine has."""
    devices = ["auto", "cpu"]
    if torch.cuda.is_available():
        devices += ["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        devices.append("mps")
    return devices


class TrainingDock(QWidget):
    """The run's settings as a form; `settings()` gives the TrainConfig fields they set."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        form = QFormLayout(self)
        self.epochs_spin = QSpinBox()
        self.epochs_spin.setObjectName("epochsSpin")
        self.epochs_spin.setRange(1, MAX_EPOCHS)
        self.epochs_spin.setValue(10)
        self.max_steps_spin = QSpinBox()
        self.max_steps_spin.setObjectName("maxStepsSpin")
        self.max_steps_spin.setRange(0, 1_000_000_000)
        self.max_steps_spin.setSpecialValueText("— (use epochs)")
        self.max_steps_spin.setToolTip("Stop after this many optimiser steps; overrides epochs when set")
        self.batch_spin = QSpinBox()
        self.batch_spin.setObjectName("batchSizeSpin")
        self.batch_spin.setRange(1, 65_536)
        self.batch_spin.setValue(128)
        self.lr_spin = QDoubleSpinBox()
        self.lr_spin.setObjectName("lrSpin")
        self.lr_spin.setDecimals(6)
        self.lr_spin.setRange(1e-6, 1.0)
        self.lr_spin.setStepType(QDoubleSpinBox.StepType.AdaptiveDecimalStepType)
        self.lr_spin.setValue(1e-3)
        self.device_combo = QComboBox()
        self.device_combo.setObjectName("deviceCombo")
        self.device_combo.addItems(device_choices())
        self.threads_spin = QSpinBox()
        self.threads_spin.setObjectName("threadsSpin")
        self.threads_spin.setRange(0, 256)
        self.threads_spin.setSpecialValueText("app default")
        self.threads_spin.setToolTip("torch intra-op threads; the app default leaves one core to the window")
        self.seed_spin = QSpinBox()
        self.seed_spin.setObjectName("seedSpin")
        self.seed_spin.setRange(0, 2**31 - 1)
        self.save_runs_check = QCheckBox("Write a run folder")
        self.save_runs_check.setObjectName("saveRunsCheck")
        self.save_runs_check.setChecked(True)
        self.save_runs_check.setToolTip("config.toml, metrics.jsonl, previews and the final checkpoint")
        form.addRow("Epochs", self.epochs_spin)
        form.addRow("Max steps", self.max_steps_spin)
        form.addRow("Batch size", self.batch_spin)
        form.addRow("Learning rate", self.lr_spin)
        form.addRow("Device", self.device_combo)
        form.addRow("Threads", self.threads_spin)
        form.addRow("Seed", self.seed_spin)
        self.run_options = RunOptions(self)
        self.run_options.add_rows(form)
        form.addRow(self.save_runs_check)

    @property
    def lr(self) -> float:
        return float(self.lr_spin.value())

    @property
    def writes_run_folder(self) -> bool:
        return self.save_runs_check.isChecked()

    def fill(self, config: TrainConfig) -> None:
        """Show a preset's or a checkpoint's training settings."""
        self.epochs_spin.setValue(config.epochs)
        self.max_steps_spin.setValue(config.max_steps or 0)
        self.batch_spin.setValue(config.batch_size)
        self.lr_spin.setValue(config.lr)
        self.device_combo.setCurrentIndex(max(self.device_combo.findText(config.device), 0))
        self.threads_spin.setValue(config.threads)
        self.seed_spin.setValue(config.seed)
        self.run_options.set_from_config(config)

    def settings(self) -> dict[str, Any]:
        """The TrainConfig fields this dock sets (epochs, max_steps, batch_size, lr, seed, device, threads, the run
        options)."""
        return {"epochs": self.epochs_spin.value(), "max_steps": self.max_steps_spin.value() or None,
                "batch_size": self.batch_spin.value(), "lr": self.lr, "seed": self.seed_spin.value(),
                "device": self.device_combo.currentText(), "threads": self.threads_spin.value(),
                **self.run_options.values()}

    def continue_overrides(self, step: int, epoch: int) -> dict[str, Any]:
        """Continuing a checkpoint at (`step`, `epoch`) trains the dock's epochs (or max steps) *more*."""
        more_steps = self.max_steps_spin.value()
        common = {"threads": self.threads_spin.value(), "device": self.device_combo.currentText()}
        if more_steps:
            return {"max_steps": step + more_steps, **common}
        return {"epochs": min(epoch + self.epochs_spin.value(), MAX_EPOCHS), "max_steps": None, **common}
