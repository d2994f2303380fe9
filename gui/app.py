"""`run_app()`: the desktop app — QApplication, torch threads capped and warmed up, the main window."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESOURCES = Path(__file__).resolve().parent.parent / "resources"
ORGANIZATION = "LatentExplorer"
APPLICATION = "Latent Explorer"
SETTINGS_ENV = "LATENT_EXPLORER_SETTINGS"  # path of an .ini file to use instead of the user's settings
EXPORT_FOLDER_KEY = "folders/export"  # one remembered folder for every export (panels' buttons and Ctrl+E)


def app_settings() -> Any:
    """The user's QSettings, or the .ini file named by $LATENT_EXPLORER_SETTINGS (tests isolate themselves so)."""
    from PySide6.QtCore import QSettings

    path = os.environ.get(SETTINGS_ENV)
    if path:
        return QSettings(path, QSettings.Format.IniFormat)
    return QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, ORGANIZATION, APPLICATION)


def export_folder() -> str:
    """Where export dialogs open: the folder of the last export, else the home folder."""
    return str(app_settings().value(EXPORT_FOLDER_KEY, str(Path.home())))


def remember_export_folder(path: str | Path) -> None:
    path = Path(path)
    settings = app_settings()
    settings.setValue(EXPORT_FOLDER_KEY, str(path if path.is_dir() else path.parent))
    settings.sync()


def clamp_to_screen(window: Any) -> None:
    """Keep a window inside the screen it is on (a geometry saved on a larger monitor must not run off)."""
    from PySide6.QtWidgets import QApplication

    screen = window.screen() or QApplication.primaryScreen()
    if screen is None:
        return
    available = screen.availableGeometry()
    frame = window.frameGeometry()
    extra_w, extra_h = frame.width() - window.width(), frame.height() - window.height()
    width = min(window.width(), available.width() - extra_w)
    height = min(window.height(), available.height() - extra_h)
    if (width, height) != (window.width(), window.height()):
        window.resize(max(width, 200), max(height, 200))
    frame = window.frameGeometry()
    x = min(max(frame.x(), available.x()), available.right() + 1 - frame.width())
    y = min(max(frame.y(), available.y()), available.bottom() + 1 - frame.height())
    if (x, y) != (frame.x(), frame.y()):
        window.move(max(x, available.x()), max(y, available.y()))


def guard_singleton_refcounts() -> None:
    """Work around PySide6 6.12 (abi3 build) on Python 3.11: every call of a void Qt method drops one reference
    to None (bool setters to True/False) that it never took. Python ≥ 3.12 makes these objects immortal, which
    hides the bug; on 3.11 None's count reaches zero after a few thousand calls and the process aborts with
    "none_dealloc". Giving the singletons an enormous count makes them as immortal as 3.12 would."""
    if sys.version_info >= (3, 12) or getattr(guard_singleton_refcounts, "done", False):
        return
    import ctypes

    for singleton in (None, True, False, Ellipsis, NotImplemented):
        ctypes.c_ssize_t.from_address(id(singleton)).value += 1 << 40  # ob_refcnt is the object's first field
    guard_singleton_refcounts.done = True  # type: ignore[attr-defined]


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

    from gui.main_window import APPLICATION, ORGANIZATION

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
