"""The Model dock: a preset, the model family, and the family's hyperparameters (generated from the engine's
registry, each with its range and, in the tooltip, the objective it enters).

Reads from AppState: nothing by itself — the window fills it from a preset, an opened checkpoint or a live change.
Changes in AppState: nothing directly; choosing a preset emits `preset_chosen(name)` (the window applies it to every
dock and AppState loads its dataset), and choosing a family by hand turns the preset back to "(custom)".
Problems (an unknown family, a broken presets folder) go to `AppState.report`.
"""

from __future__ import annotations

import importlib
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QComboBox, QFormLayout, QVBoxLayout, QWidget

from engine.models import families
from gui.forms import HParamForm
from gui.state import AppState


def presets_module() -> Any:
    """`engine.presets`, or None in a build without it."""
    try:
        return importlib.import_module("engine.presets")
    except ModuleNotFoundError:
        return None


class ModelDock(QWidget):
    """Preset and family combos above the family's `HParamForm`."""

    preset_chosen = Signal(str)

    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        layout = QVBoxLayout(self)
        form = QFormLayout()
        self.preset_combo = QComboBox()
        self.preset_combo.setObjectName("presetCombo")
        self.preset_combo.addItem("(custom)", "")
        for name, description in self._preset_entries():
            self.preset_combo.addItem(name, name)
            if description:
                self.preset_combo.setItemData(self.preset_combo.count() - 1, description, Qt.ItemDataRole.ToolTipRole)
        self.preset_combo.activated.connect(self._preset_activated)
        form.addRow("Preset", self.preset_combo)
        self.family_combo = QComboBox()
        self.family_combo.setObjectName("familyCombo")
        self._fill_families()
        self.family_combo.activated.connect(self._family_activated)
        for combo in (self.preset_combo, self.family_combo):  # long names must not widen the dock: elide, full popup
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(14)
            combo.view().setMinimumWidth(combo.view().sizeHintForColumn(0) + 24)
        form.addRow("Family", self.family_combo)
        layout.addLayout(form)
        self.hparam_form = HParamForm(self.family_combo.currentData())
        self.hparam_form.setObjectName("hparamForm")
        layout.addWidget(self.hparam_form)
        layout.addStretch(1)

    @property
    def family(self) -> str | None:
        return self.hparam_form.family

    def _fill_families(self) -> None:
        for name, cls in families().items():
            self.family_combo.addItem(f"{name} — {cls.title}" if cls.title else name, name)
            self.family_combo.setItemData(self.family_combo.count() - 1, cls.formula, Qt.ItemDataRole.ToolTipRole)

    def refresh_families(self) -> None:
        """Re-read the registry (a user's model file was opened or rebuilt): the combo lists it, and the form of a
        rebuilt family shows its new hyperparameters."""
        current = self.hparam_form.family
        self.family_combo.clear()
        self._fill_families()
        self.family_combo.view().setMinimumWidth(self.family_combo.view().sizeHintForColumn(0) + 24)
        if current is not None and self.family_combo.findData(current) >= 0:
            self.family_combo.setCurrentIndex(self.family_combo.findData(current))
            self.hparam_form.set_family(current)

    def has_preset(self, name: str) -> bool:
        return self.preset_combo.findData(name) >= 0

    def show_preset(self, name: str | None) -> None:
        """Name the preset the docks were filled from (None: "(custom)")."""
        index = self.preset_combo.findData(name) if name else 0
        if index >= 0:
            self.preset_combo.setCurrentIndex(index)

    def select_family(self, family: str) -> bool:
        """Show `family`'s form (its defaults when the family changes); an unknown name is reported."""
        index = self.family_combo.findData(family)
        if index < 0:
            self.state.report("error", f"Unknown model family {family!r}")
            return False
        self.family_combo.setCurrentIndex(index)
        if self.hparam_form.family != family:
            self.hparam_form.set_family(family)
        return True

    def fill(self, family: str, hparams: dict[str, Any]) -> None:
        """The family and its values (a preset's, a checkpoint's); names the family lacks are reported."""
        self.select_family(family)
        unknown = self.hparam_form.set_values(hparams)
        if unknown:
            self.state.report("warning", f"Ignored hyperparameters {', '.join(unknown)} unknown to {family}")

    def _preset_activated(self, index: int) -> None:
        name = self.preset_combo.itemData(index)
        if name:
            self.preset_chosen.emit(name)

    def _family_activated(self, index: int) -> None:
        self.select_family(self.family_combo.itemData(index))
        self.preset_combo.setCurrentIndex(0)

    def _preset_entries(self) -> list[tuple[str, str]]:
        """(name, description) of every preset; a broken presets folder is reported, not fatal."""
        presets = presets_module()
        if presets is None:
            return []
        try:
            entries = presets.list_presets()
        except Exception as exc:
            self.state.messages.append(("warning", f"Could not list presets: {exc}"))
            return []
        out = []
        for entry in entries:
            if isinstance(entry, str):
                out.append((entry, ""))
            elif isinstance(entry, tuple | list) and entry:
                out.append((str(entry[0]), str(entry[1]) if len(entry) > 1 else ""))
        return out
