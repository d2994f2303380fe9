"""`run_app()`: the desktop app — QApplication, torch threads capped and warmed up, the main window."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gui.refcounts import guard_singleton_refcounts
from gui.settings import APPLICATION, ORGANIZATION

RESOURCES = Path(__file__).resolve().parent.parent / "resources"


def gui_torch_threads(cpu_count: int | None = None) -> int:
    """Torch intra-op threads for the app: every core but one, which is left to the GUI thread."""
    cores = cpu_count if cpu_count is not None else (os.cpu_count() or 1)
    return max(1, cores - 1)


def prepare_torch_environment() -> None:
    """Before torch is imported: idle OpenMP workers must sleep, not spin against the GUI thread."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def configure_torch() -> float:
    """Cap torch's threads and run a tiny forward/backward so the first real step does not stall the window.

    Returns the warm-up time in seconds (the first torch use in a process costs ~200 ms)."""
    prepare_torch_environment()
    import torch

    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(gui_torch_threads())
    start = time.perf_counter()
    layer = torch.nn.Linear(64, 64)
    x = torch.randn(32, 64)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(layer(torch.relu(layer(x))), torch.sigmoid(x))
    loss.backward()
    with torch.inference_mode():
        layer(x)
    return time.perf_counter() - start


def warm_up_optimizer_in_background() -> threading.Thread:
    """Adam's first construction imports torch._dynamo (~1.5 s): do it off the GUI thread while the user looks."""

    def build_adam() -> None:
        import torch

        torch.optim.Adam(torch.nn.Linear(2, 2).parameters(), lr=1e-3)

    thread = threading.Thread(target=build_adam, name="torch-optimizer-warm-up")
    thread.start()
    return thread


def run_app(argv: list[str] | None = None, on_shown: Callable[[Any], None] | None = None) -> int:
    """Open the window on the embedded default (dSprites + β-VAE) and run the event loop.

    `on_shown(window)` runs at the first event-loop turn after the window is shown (bench/startup.py)."""
    guard_singleton_refcounts()
    configure_torch()  # torch first: PySide6's import hook inspects the source of every module imported after it
    from PySide6.QtCore import QCoreApplication
    from PySide6.QtWidgets import QApplication

    QCoreApplication.setOrganizationName(ORGANIZATION)
    QCoreApplication.setApplicationName(APPLICATION)
    app = QApplication.instance() or QApplication(sys.argv if argv is None else argv)
    from gui.gc_guard import install_gui_thread_gc

    install_gui_thread_gc(app)
    style = RESOURCES / "style.qss"
    if style.is_file():
        app.setStyleSheet(style.read_text(encoding="utf-8"))

    from gui.main_window import MainWindow

    window = MainWindow(defer_panels=True)
    window.show()
    warm_up_optimizer_in_background()
    if on_shown is not None:
        from PySide6.QtCore import QTimer

        QTimer.singleShot(0, lambda: on_shown(window))
    return app.exec()
