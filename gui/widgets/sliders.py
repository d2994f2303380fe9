"""A labelled slider with a spin box, linear or logarithmic, that commits a float when the user lets go."""

from __future__ import annotations

import math

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QDoubleSpinBox, QHBoxLayout, QLabel, QSlider, QWidget

_TICKS = 1000


class LabeledSlider(QWidget):
    """`value_committed(float)` fires on slider release or spin-box edit — not on every pixel of a drag."""

    value_committed = Signal(float)

    def __init__(self, label: str, low: float, high: float, value: float, log: bool = False,
                 decimals: int = 3, tooltip: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        if not low < high:
            raise ValueError(f"{label}: slider needs low < high, got {low} and {high}")
        if log and low <= 0:
            raise ValueError(f"{label}: a logarithmic slider needs low > 0, got {low}")
        self.low, self.high, self.log = float(low), float(high), log
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.label = QLabel(label)
        self.label.setMinimumWidth(48)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, _TICKS)
        self.spin = QDoubleSpinBox()
        self.spin.setRange(self.low, self.high)
        self.spin.setDecimals(decimals)
        self.spin.setKeyboardTracking(False)
        if log:
            self.spin.setStepType(QDoubleSpinBox.StepType.AdaptiveDecimalStepType)
        else:
            self.spin.setSingleStep((self.high - self.low) / 100)
        self.spin.setMinimumWidth(84)
        layout.addWidget(self.label)
        layout.addWidget(self.slider, 1)
        layout.addWidget(self.spin)
        if tooltip:
            self.setToolTip(tooltip)
        self.set_value(value)
        self.slider.valueChanged.connect(self._slider_moved)
        self.slider.sliderReleased.connect(self._commit)
        self.slider.actionTriggered.connect(self._slider_action)
        self.spin.valueChanged.connect(self._spin_changed)

    def _to_tick(self, value: float) -> int:
        value = min(max(value, self.low), self.high)
        if self.log:
            frac = (math.log(value) - math.log(self.low)) / (math.log(self.high) - math.log(self.low))
        else:
            frac = (value - self.low) / (self.high - self.low)
        return round(frac * _TICKS)

    def _from_tick(self, tick: int) -> float:
        frac = tick / _TICKS
        if self.log:
            return math.exp(math.log(self.low) + frac * (math.log(self.high) - math.log(self.low)))
        return self.low + frac * (self.high - self.low)

    def value(self) -> float:
        return float(self.spin.value())

    def set_value(self, value: float) -> None:
        """Set without committing (e.g. echoing what the session reports)."""
        for widget in (self.slider, self.spin):
            widget.blockSignals(True)
        self.spin.setValue(float(value))
        self.slider.setValue(self._to_tick(float(value)))
        for widget in (self.slider, self.spin):
            widget.blockSignals(False)

    def _slider_moved(self, tick: int) -> None:
        self.spin.blockSignals(True)
        self.spin.setValue(self._from_tick(tick))
        self.spin.blockSignals(False)

    def _slider_action(self, action: int) -> None:
        if not self.slider.isSliderDown():  # keyboard / page clicks commit at once
            self.slider.setValue(self.slider.sliderPosition())
            self._commit()

    def _spin_changed(self, value: float) -> None:
        self.slider.blockSignals(True)
        self.slider.setValue(self._to_tick(value))
        self.slider.blockSignals(False)
        self._commit()

    def _commit(self) -> None:
        self.value_committed.emit(self.value())
