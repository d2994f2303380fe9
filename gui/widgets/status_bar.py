"""The window's status bar: permanent device / step / samples-per-second / run labels, and one-line messages
(a long message is in the banner; the bar shows its first line, cut, so it never overlaps the labels)."""

from __future__ import annotations

from pathlib import Path

import torch
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QStatusBar, QWidget

RUN_LABEL_MAX_WIDTH = 260  # px: permanent status widgets leave room for messages
STATUS_MESSAGE_CHARS = 120
MESSAGE_MS = 8000


def default_device_name() -> str:
    if torch.cuda.is_available():
        return "cuda"
    threads = torch.get_num_threads()
    return f"cpu ({threads} thread{'s' if threads != 1 else ''})"


class StatusBar(QStatusBar):
    """`show_note` for messages; `show_step`, `show_run`, `show_checkpoint`, `clear_run` for the labels."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.device_label = QLabel(f"device: {default_device_name()}")
        self.step_label = QLabel("step: –")
        self.speed_label = QLabel("samples/s: –")
        self.run_label = QLabel("run folder: –")
        self.run_label.setMaximumWidth(RUN_LABEL_MAX_WIDTH)  # the full path is its tooltip
        for label, name in ((self.device_label, "deviceLabel"), (self.step_label, "stepLabel"),
                            (self.speed_label, "speedLabel"), (self.run_label, "runFolderLabel")):
            label.setObjectName(name)
            self.addPermanentWidget(label)

    def show_note(self, text: str, ms: int = MESSAGE_MS) -> None:
        """The first line of a message, cut to STATUS_MESSAGE_CHARS."""
        self.showMessage(text.splitlines()[0][:STATUS_MESSAGE_CHARS] if text else "", ms)

    def show_busy(self, text: str) -> None:
        """What the job thread is doing ("loading …"); an ended job's text goes away."""
        if text:
            self.showMessage(text)
        elif self.currentMessage().endswith("…"):
            self.clearMessage()

    def show_step(self, step: int, epoch: int, samples_per_s: float) -> None:
        self.step_label.setText(f"step: {step:,}  epoch: {epoch}")
        self.speed_label.setText(f"samples/s: {samples_per_s:,.0f}")

    def _set_run_text(self, text: str, tooltip: str) -> None:
        """The run label cut in the middle to its width ("checkpoint: dsprites-d…gle.safetensors"), whole in the
        tooltip, so a long name never runs off the window's edge."""
        metrics = self.run_label.fontMetrics()
        self.run_label.setText(metrics.elidedText(text, Qt.TextElideMode.ElideMiddle, RUN_LABEL_MAX_WIDTH - 8))
        self.run_label.setToolTip(tooltip or text)

    def show_run(self, out_dir: str | None, device: str) -> None:
        self._set_run_text(f"run folder: {Path(out_dir).name if out_dir else '– (not saved)'}", out_dir or "")
        self.device_label.setText(f"device: {device}")

    def show_checkpoint(self, path: str, position: str) -> None:
        self.step_label.setText(position)
        self._set_run_text(f"checkpoint: {Path(path).name}", path)

    def clear_run(self) -> None:
        self.run_label.setText("run folder: –")
        self.step_label.setText("step: –")
