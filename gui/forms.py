"""The model form, generated from the engine's registry: one widget per hyperparameter, with range and formula."""

from __future__ import annotations

import math
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QLabel, QSpinBox, QWidget

from engine.models import families, model_class
from engine.models.base import HyperParam, ModelBase

_INT_LIMIT = 2**31 - 1


def hparam_tooltip(param: HyperParam, model: type[ModelBase] | None = None) -> str:
    """What a hyperparameter means, its range, whether it is live, and the objective it enters."""
    lines = [f"<b>{param.name}</b>: {param.help}" if param.help else f"<b>{param.name}</b>",
             f"range: {param.range_text()}; default {param.default!r}"]
    if param.live:
        lines.append("can be changed while training")
    if model is not None and model.formula:
        lines.append(f"<i>{model.formula}</i>")
    return "<br>".join(lines)


def _float_decimals(param: HyperParam) -> int:
    values = [abs(v) for v in (param.default, param.low, param.high) if isinstance(v, int | float) and v]
    smallest = min(values, default=1.0)
    return max(3, min(8, 2 - math.floor(math.log10(smallest)))) if smallest < 1 else 3


def make_editor(param: HyperParam) -> QWidget:
    """A widget for one hyperparameter: combo (choices), check box (bool), spin box (int/float)."""
    if param.choices:
        editor = QComboBox()
        editor.addItems(list(param.choices))
        editor.setCurrentText(str(param.default))
        return editor
    if param.kind is bool:
        editor = QCheckBox()
        editor.setChecked(bool(param.default))
        return editor
    if param.kind is int:
        editor = QSpinBox()
        low = int(param.low) if param.low is not None else -_INT_LIMIT
        high = int(param.high) if param.high is not None else _INT_LIMIT
        if not param.low_inclusive:
            low += 1
        if not param.high_inclusive:
            high -= 1
        editor.setRange(max(low, -_INT_LIMIT), min(high, _INT_LIMIT))
        editor.setValue(int(param.default))
        return editor
    if param.kind is float:
        editor = QDoubleSpinBox()
        decimals = _float_decimals(param)
        editor.setDecimals(decimals)
        low = param.low if param.low is not None else -1e9
        high = param.high if param.high is not None else 1e9
        if not param.low_inclusive:
            low += 10.0 ** -decimals
        if not param.high_inclusive:
            high -= 10.0 ** -decimals
        editor.setRange(low, high)
        editor.setStepType(QDoubleSpinBox.StepType.AdaptiveDecimalStepType)
        editor.setValue(float(param.default))
        return editor
    raise TypeError(f"no editor for hyperparameter {param.name} of kind {param.kind}")


def _editor_value(editor: QWidget) -> Any:
    if isinstance(editor, QComboBox):
        return editor.currentText()
    if isinstance(editor, QCheckBox):
        return editor.isChecked()
    if isinstance(editor, QSpinBox | QDoubleSpinBox):
        return editor.value()
    raise TypeError(type(editor).__name__)


def _set_editor_value(editor: QWidget, value: Any) -> None:
    if isinstance(editor, QComboBox):
        index = editor.findText(str(value))
        if index < 0:
            raise ValueError(f"{value!r} is not one of the choices")
        editor.setCurrentIndex(index)
    elif isinstance(editor, QCheckBox):
        editor.setChecked(bool(value))
    elif isinstance(editor, QSpinBox):
        editor.setValue(int(value))
    elif isinstance(editor, QDoubleSpinBox):
        editor.setValue(float(value))


def _changed_signal(editor: QWidget):
    if isinstance(editor, QComboBox):
        return editor.currentTextChanged
    if isinstance(editor, QCheckBox):
        return editor.toggled
    return editor.valueChanged


class HParamForm(QWidget):
    """The hyperparameters of one family; `values()` returns them validated by the family itself."""

    changed = Signal()
    family_changed = Signal(str)

    def __init__(self, family: str | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.layout_ = QFormLayout(self)
        self.layout_.setContentsMargins(0, 0, 0, 0)
        self.formula_label = QLabel()
        self.formula_label.setWordWrap(True)
        self.formula_label.setObjectName("formulaLabel")
        self.editors: dict[str, QWidget] = {}
        self.applies_when: dict[str, tuple[str, str]] = {}  # name → (controlling hparam, value), from the family
        self.family: str | None = None
        if family is None:
            family = next(iter(families()), None)
        if family is not None:
            self.set_family(family)

    def set_family(self, family: str) -> None:
        """Rebuild the form for `family` with its defaults."""
        cls = model_class(family)
        while self.layout_.rowCount():
            self.layout_.removeRow(0)
        self.formula_label = QLabel(cls.formula)
        self.formula_label.setWordWrap(True)
        self.formula_label.setObjectName("formulaLabel")
        self.formula_label.setToolTip(cls.title)
        self.layout_.addRow(self.formula_label)
        self.editors = {}
        for param in cls.all_hparams():
            editor = make_editor(param)
            editor.setObjectName(f"hparam_{param.name}")
            editor.setToolTip(hparam_tooltip(param, cls))
            label = QLabel(param.name + (" ⟳" if param.live else ""))
            label.setToolTip(editor.toolTip())
            self.layout_.addRow(label, editor)
            _changed_signal(editor).connect(self.changed)
            self.editors[param.name] = editor
        # Rows that matter only for one value of another hyperparameter (HyperParam.applies_when) show only then;
        # the controlling editor's tooltip names them.
        self.applies_when = {p.name: p.applies_when for p in cls.all_hparams()
                             if p.applies_when and p.applies_when[0] in self.editors}
        for controller in sorted({c for c, _ in self.applies_when.values()}):
            editor = self.editors[controller]
            dependents = [(n, v) for n, (c, v) in self.applies_when.items() if c == controller]
            editor.setToolTip(editor.toolTip() + "".join(f"<br><i>{name} appears when {controller} = {value}</i>"
                                                         for name, value in dependents))
            _changed_signal(editor).connect(self._show_applicable)
        self._show_applicable()
        self.family = family
        self.family_changed.emit(family)
        self.changed.emit()

    def applies(self, name: str) -> bool:
        """Whether `name` matters with the values now chosen (HyperParam.applies_when)."""
        controller, value = self.applies_when.get(name, (None, None))
        editor = self.editors.get(controller) if controller else None
        return editor is None or _editor_value(editor) == value

    def _show_applicable(self) -> None:
        for name in self.applies_when:
            self.layout_.setRowVisible(self.editors[name], self.applies(name))

    def raw_values(self) -> dict[str, Any]:
        return {name: _editor_value(editor) for name, editor in self.editors.items()}

    def values(self) -> dict[str, Any]:
        """Every hyperparameter, coerced and checked by the family (raises ConfigError with a clear cause)."""
        if self.family is None:
            return {}
        return model_class(self.family).validate_hparams(self.raw_values())

    def set_values(self, values: dict[str, Any]) -> list[str]:
        """Fill in known names; returns the names this family does not have (the caller may warn)."""
        unknown = []
        for name, value in values.items():
            editor = self.editors.get(name)
            if editor is None:
                unknown.append(name)
            else:
                _set_editor_value(editor, value)
        return unknown

    def changed_from_defaults(self) -> dict[str, Any]:
        """Only the values the user changed (what goes into a TrainConfig to keep it short)."""
        if self.family is None:
            return {}
        defaults = {h.name: h.default for h in model_class(self.family).all_hparams()}
        values = self.values()
        return {k: v for k, v in values.items() if v != defaults.get(k)}
