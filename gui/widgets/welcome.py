"""The first-run welcome card over the empty window: "Explore a trained model" (a shipped example) or
"Train one yourself" (Start with the docks' settings). It closes for good once either is chosen or it is
dismissed, and hides whenever a model appears (a run starts or a checkpoint opens)."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

SEEN_KEY = "welcome/seen"


class WelcomeCard(QFrame):
    """A card centred over `host`; `explore_requested(name)` / `train_requested()` / `dismissed()`."""

    explore_requested = Signal(str)
    compare_requested = Signal()
    train_requested = Signal()
    dismissed = Signal()

    def __init__(self, host: QWidget, examples: list[tuple[str, str]]) -> None:
        super().__init__(host)
        self.setObjectName("welcomeCard")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setAutoFillBackground(True)
        self.setStyleSheet("#welcomeCard { background: palette(base); border: 1px solid palette(mid); "
                           "border-radius: 8px; }")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(20, 14, 20, 16)
        top = QHBoxLayout()
        title = QLabel("<h2>Welcome to Latent Explorer</h2>")
        top.addWidget(title, 1)
        self.close_button = QToolButton()
        self.close_button.setText("✕")
        self.close_button.setToolTip("Close; File → Examples lists the example models any time")
        self.close_button.clicked.connect(self.dismissed)
        top.addWidget(self.close_button, 0, Qt.AlignmentFlag.AlignTop)
        layout.addLayout(top)
        intro = QLabel("See what a VAE's latent space learns. Open a model trained with this app and move its "
                       "latents one at a time, or train your own and watch its code form live.")
        intro.setWordWrap(True)
        layout.addWidget(intro)
        self.example_combo = QComboBox()
        self.example_combo.setObjectName("welcomeExamples")
        self.example_note = QLabel()
        self.example_note.setObjectName("welcomeExampleNote")
        self.example_note.setWordWrap(True)
        for name, description in examples:
            self.example_combo.addItem(name, name)
            self.example_combo.setItemData(self.example_combo.count() - 1, description,
                                           Qt.ItemDataRole.ToolTipRole)
        self.example_combo.currentIndexChanged.connect(
            lambda index: self.example_note.setText(examples[index][1] if 0 <= index < len(examples) else ""))
        if examples:
            self.example_note.setText(examples[0][1])
        chooser = QHBoxLayout()
        chooser.addWidget(QLabel("Example:"))
        chooser.addWidget(self.example_combo, 1)
        layout.addLayout(chooser)
        layout.addWidget(self.example_note)
        buttons = QHBoxLayout()
        self.explore_button = QPushButton("Explore a trained model")
        self.explore_button.setDefault(True)
        self.explore_button.setToolTip("Open the chosen example model (File → Examples lists them too)")
        self.explore_button.clicked.connect(self._explore)
        self.train_button = QPushButton("Train one yourself")
        self.train_button.setToolTip("Start training with the settings in the Model and Training docks")
        self.train_button.clicked.connect(self.train_requested)
        self.compare_button = QPushButton("Compare β = 1 and β = 6")
        self.compare_button.setObjectName("welcomeCompare")
        self.compare_button.setToolTip("The two dSprites examples side by side in the Compare tab: the same network "
                                       "as a plain VAE (β = 1) and as a disentangling β-TCVAE (β = 6)")
        self.compare_button.clicked.connect(self.compare_requested)
        names = {name for name, _ in examples}
        self.compare_button.setEnabled({"dsprites-vae", "dsprites-disentangle"} <= names)
        if not examples:
            self.example_combo.addItem("(no example models installed: run `make examples`)")
            self.example_combo.setEnabled(False)
            self.explore_button.setEnabled(False)
        buttons.addWidget(self.explore_button)
        buttons.addWidget(self.compare_button)
        buttons.addWidget(self.train_button)
        layout.addLayout(buttons)
        self.setMaximumWidth(620)
        host.installEventFilter(self)
        self._place()

    def _explore(self) -> None:
        name = self.example_combo.currentData()
        if name:
            self.explore_requested.emit(str(name))

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt override)
        if watched is self.parentWidget() and event.type() in (QEvent.Type.Resize, QEvent.Type.Show):
            self._place()
        return False

    def _place(self) -> None:
        host = self.parentWidget()
        width = min(self.maximumWidth(), max(320, host.width() - 40))
        height = self.heightForWidth(width) if self.hasHeightForWidth() else self.sizeHint().height()
        height = max(height, self.sizeHint().height())
        self.setGeometry((host.width() - width) // 2, max(8, (host.height() - height) // 3), width, height)
        self.raise_()


def install_welcome_card(window: Any) -> WelcomeCard | None:
    """Show the card over the window's tabs on a first run (settings key welcome/seen unset); None otherwise."""
    if window.settings.value(SEEN_KEY, False, type=bool):
        return None
    from gui.examples_menu import installed_examples, open_example

    examples, _ = installed_examples()
    card = WelcomeCard(window.tabs, [(e.name, e.description) for e in examples])

    def close_for_good() -> None:
        window.settings.setValue(SEEN_KEY, True)
        card.hide()

    def explore(name: str) -> None:
        if open_example(window, name):
            close_for_good()

    def train() -> None:
        close_for_good()
        window.start_training()

    def compare() -> None:
        from gui.panels.compare import BETA_LESSON, open_comparison

        if open_comparison(window, list(BETA_LESSON)):
            close_for_good()

    card.explore_requested.connect(explore)
    card.train_requested.connect(train)
    card.compare_requested.connect(compare)
    card.dismissed.connect(close_for_good)
    window.source.changed.connect(lambda: card.hide() if window.source.has_model else None)
    card.show()
    return card
