"""The Training dock's run options of a GPU user: precision, torch.compile mode, memory format, deterministic kernels.

Self-contained: owns its widgets, adds them as rows of the dock's form (`add_rows`), and reads and writes the
TrainConfig fields `precision`, `compile`, `compile_mode`, `memory_format` and `deterministic` (the device choice
stays the dock's Device combo). docs/cli.md describes the same options for the CLI.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QCheckBox, QComboBox, QFormLayout

from engine.config import COMPILE_MODES, MEMORY_FORMATS, PRECISIONS

COMPILE_CHOICES = ("off", *COMPILE_MODES)


class RunOptions(QObject):
    """Precision, compile mode and deterministic: `add_rows(form)` puts them in the dock's form (aligned with its
    other rows), `values()` → TrainConfig fields, `set_from_config(config)`."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.precision_combo = QComboBox()
        self.precision_combo.setObjectName("precisionCombo")
        self.precision_combo.addItems(list(PRECISIONS))
        self.precision_combo.setToolTip("fp32: float32 everywhere (TF32 matmuls on CUDA). bf16: bfloat16 autocast "
                                        "around the loss, scores and previews; weights and Adam stay float32")
        self.compile_combo = QComboBox()
        self.compile_combo.setObjectName("compileCombo")
        self.compile_combo.addItems(list(COMPILE_CHOICES))
        self.compile_combo.setToolTip("torch.compile the loss: default (fused kernels), reduce-overhead (also CUDA "
                                      "graphs), max-autotune; the first steps compile (~30 s on a CPU)")
        self.memory_format_combo = QComboBox()
        self.memory_format_combo.setObjectName("memoryFormatCombo")
        self.memory_format_combo.addItems(list(MEMORY_FORMATS))
        self.memory_format_combo.setToolTip("Layout of conv weights and batches: auto = channels_last (NHWC) on CUDA, "
                                            "contiguous (NCHW) elsewhere; MLP models are unaffected")
        self.deterministic_check = QCheckBox("Deterministic kernels")
        self.deterministic_check.setObjectName("deterministicCheck")
        self.deterministic_check.setToolTip("torch.use_deterministic_algorithms + cuDNN/cuBLAS settings: a CUDA run "
                                            "repeats, and resumes, exactly (slower)")

    def add_rows(self, form: QFormLayout) -> None:
        form.addRow("Precision", self.precision_combo)
        form.addRow("Compile", self.compile_combo)
        form.addRow("Memory format", self.memory_format_combo)
        form.addRow(self.deterministic_check)

    def values(self) -> dict[str, Any]:
        mode = self.compile_combo.currentText()
        return {"precision": self.precision_combo.currentText(), "compile": mode != "off",
                "compile_mode": mode if mode != "off" else "default",
                "memory_format": self.memory_format_combo.currentText(),
                "deterministic": self.deterministic_check.isChecked()}

    def set_from_config(self, config: Any) -> None:
        self.precision_combo.setCurrentText(config.precision)
        self.compile_combo.setCurrentText(config.compile_mode if config.compile else "off")
        self.memory_format_combo.setCurrentText(config.memory_format)
        self.deterministic_check.setChecked(bool(config.deterministic))
