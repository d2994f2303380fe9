"""Where the app's models come from: `ModelSource`, what the exploration panels look at (the latest weights of a live
run, or a loaded checkpoint, with its data), and `ModelFiles`, the user's own model files the app has run.

The main window owns one `ModelSource` and hands it to every panel. Panels never touch the training session:
they ask for `snapshot()` — a model copy that is theirs to use off the GUI thread — and listen to two signals.

`ModelFiles` reads: the model dock (to show a new family), the settings store (remembered "run this file?" answers,
per file and SHA-256). It changes: the engine's family registry (only after the user opened a file or said yes) and
the model dock's family combo; it watches each opened file and offers to rebuild when it changes on disk.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QFileSystemWatcher, QObject, Signal
from PySide6.QtWidgets import QMessageBox


class ModelSource(QObject):
    """Lives on the GUI thread. `changed`: a different model/dataset; `weights_updated(step)`: newer live weights."""

    changed = Signal()
    weights_updated = Signal(int)
    probe_updated = Signal()  # a newer live disentanglement probe (`latest_probe`)
    settled = Signal()  # the live weights stopped changing for now (training paused): panels may re-sort

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._lock = threading.Lock()
        self._snapshotter: Callable[[], Any] | None = None
        self._model: Any = None
        self._dataset: Any = None
        self._test_indices: Any = None
        self._info: dict[str, Any] = {}
        self._step = 0
        self._probe: Any = None
        self._generation = 0  # counts model changes: what a panel measured belongs to one generation

    # --- written by the main window -------------------------------------------------------------
    def set_static(self, model: Any, dataset: Any, test_indices: Any = None, info: dict | None = None) -> None:
        """A loaded checkpoint (or a finished run): the model is fixed; panels may copy it freely."""
        if model is not None:
            model.eval()
        with self._lock:
            self._snapshotter = None
            self._model, self._dataset, self._test_indices = model, dataset, test_indices
            self._info = dict(info or {})
            self._step = int(self._info.get("step", 0))
            self._probe = None
            self._generation += 1
        self.changed.emit()

    def set_live(self, snapshotter: Callable[[], Any], dataset: Any, test_indices: Any = None,
                 info: dict | None = None) -> None:
        """A running session: `snapshotter()` returns a fresh eval-mode copy of the latest weights (thread-safe)."""
        with self._lock:
            self._snapshotter = snapshotter
            self._model = None
            self._dataset, self._test_indices = dataset, test_indices
            self._info = dict(info or {})
            self._step = 0
            self._probe = None
            self._generation += 1
        self.changed.emit()

    def notify_step(self, step: int) -> None:
        """Called (throttled) by the main window while training: newer weights exist."""
        self._step = int(step)
        self.weights_updated.emit(self._step)

    def set_probe(self, probe: Any) -> None:
        """The newest DisentanglementProbe of the live run (which factor each latent has become)."""
        self._probe = probe
        self.probe_updated.emit()

    def notify_settled(self) -> None:
        """Training paused: the weights hold still until it resumes."""
        self.settled.emit()

    def clear(self) -> None:
        with self._lock:
            self._snapshotter = None
            self._model = self._dataset = self._test_indices = None
            self._info = {}
            self._generation += 1
        self.changed.emit()

    # --- read by panels (any thread) -------------------------------------------------------------
    def snapshot(self) -> Any:
        """An eval-mode model the caller may use off the GUI thread, or None when there is no model yet."""
        with self._lock:
            snapshotter, model = self._snapshotter, self._model
        if snapshotter is not None:
            return snapshotter()
        return model

    @property
    def dataset(self) -> Any:
        return self._dataset

    @property
    def test_indices(self) -> Any:
        return self._test_indices

    @property
    def info(self) -> dict[str, Any]:
        return dict(self._info)

    @property
    def generation(self) -> int:
        """Changes whenever a different model (or a run's final weights) is set: cached results are then stale."""
        return self._generation

    @property
    def step(self) -> int:
        return self._step

    @property
    def latest_probe(self) -> Any:
        return self._probe

    @property
    def is_live(self) -> bool:
        return self._snapshotter is not None

    @property
    def has_model(self) -> bool:
        return self._snapshotter is not None or self._model is not None


class ModelFiles(QObject):
    """The user's model files for one window: open (File → Open model file…), ask before a checkpoint's file runs,
    rebuild when a file changes on disk. `ask_to_run` and `ask_to_rebuild` are the two questions (tests replace
    them)."""

    opened = Signal(str)  # a family from a user's file was registered (or rebuilt)

    def __init__(self, window: Any) -> None:
        super().__init__(window)
        self.window = window
        self.watcher = QFileSystemWatcher(self)
        self.watcher.setObjectName("modelFileWatcher")
        self.watcher.fileChanged.connect(self._file_changed)
        self._families: dict[str, tuple[str, str]] = {}  # resolved path → (family, class name)
        self._asking: set[str] = set()

    # --- File → Open model file… ---------------------------------------------------------------------------
    def open_model_file(self, path: str | Path, class_name: str | None = None, family: str | None = None,
                        announce: bool = True) -> str | None:
        """Run the file (the user chose it), register its family, show it in the Model dock; errors → the banner."""
        from engine.errors import ConfigError
        from engine.models.user_file import load_model_file

        if announce and (self.window.is_training or self.window.is_preparing):
            self.window.show_message("Stop the current run before opening a model file.", "warning")
            return None
        try:
            cls = load_model_file(path, class_name, family)
        except ConfigError as exc:
            self.window.show_message(f"Could not open the model file: {exc}", "error")
            return None
        self._families[cls.source.path] = (cls.family, cls.source.class_name)
        if cls.source.path not in self.watcher.files():
            self.watcher.addPath(cls.source.path)
        dock = self.window.model_settings
        dock.refresh_families()
        dock.select_family(cls.family)
        dock.show_preset(None)
        self.opened.emit(cls.family)
        if announce:
            self.window.show_message(f"Opened {cls.title}: press Start to train it.", "info")
        return cls.family

    # --- a checkpoint of a user's model: ask before its file runs ---------------------------------------------
    def ready_for_checkpoint(self, checkpoint: str | Path) -> bool:
        """True when the checkpoint can open without running anything new (built-in, or its file already run here),
        or the user agreed (now or before, for this file and hash) to run the file it names."""
        from engine.checkpoint import read_meta, registered_model_fits
        from engine.errors import CheckpointError
        from engine.models.user_file import file_sha256

        try:
            meta = read_meta(checkpoint)
        except CheckpointError:
            return True  # the normal open reports what is wrong with the file
        if registered_model_fits(meta):
            return True
        source = meta["model_file"]
        model_path = source["path"]
        try:
            current = file_sha256(model_path)
        except OSError:
            self.window.show_message(f"This checkpoint was trained with the model {source['class']} in {model_path}, "
                                     "which is not on this machine: put the file back there to open it.", "error")
            return False
        key = answer_key(model_path, current)
        answer = self.window.settings.value(key)
        if answer is None:
            agreed = self.ask_to_run(model_path, source["class"], changed=current != source["sha256"])
            answer = "yes" if agreed else "no"
            self.window.settings.setValue(key, answer)
        if answer != "yes":
            self.window.show_message(f"Not opened: the checkpoint needs its model file {model_path}, which you chose "
                                     "not to run.", "warning")
            return False
        return self.open_model_file(model_path, source["class"], meta["family"], announce=False) is not None

    def ask_to_run(self, model_path: str, class_name: str, changed: bool) -> bool:
        """The question, once per file and hash: running a Python file runs its code with the user's permissions."""
        text = f"This checkpoint was trained with the model in {short_path(model_path)} — run that file?"
        detail = (f"Opening it builds the model class {class_name} by running {model_path}. Python files can do "
                  "anything your account can: say yes only to files you trust. Your answer is remembered for this "
                  "file as it is now.")
        if changed:
            detail += "\n\nThe file has changed since the checkpoint was trained: its weights may not fit."
        box = QMessageBox(QMessageBox.Icon.Question, "Run the model file?", text,
                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, self.window)
        box.setObjectName("runModelFileQuestion")
        box.setInformativeText(detail)
        box.setDefaultButton(QMessageBox.StandardButton.No)
        return box.exec() == QMessageBox.StandardButton.Yes

    # --- the file changed on disk ---------------------------------------------------------------------------------
    def _file_changed(self, path: str) -> None:
        if Path(path).exists() and path not in self.watcher.files():
            self.watcher.addPath(path)  # editors that save by renaming drop the watch
        if path in self._asking or path not in self._families:
            return
        self._asking.add(path)
        try:
            if self.ask_to_rebuild(path):
                family, class_name = self._families[path]
                if self.open_model_file(path, class_name, family, announce=False) is not None:
                    self.window.show_message(f"Rebuilt {family} from {Path(path).name}.", "info")
        finally:
            self._asking.discard(path)

    def ask_to_rebuild(self, path: str) -> bool:
        answer = QMessageBox.question(self.window, "Model file changed",
                                      f"{short_path(path)} changed on disk. Rebuild the model from it? (A run in "
                                      "progress keeps the model it started with.)",
                                      QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                      QMessageBox.StandardButton.Yes)
        return answer == QMessageBox.StandardButton.Yes

    @property
    def watched(self) -> list[str]:
        return list(self.watcher.files())


def answer_key(path: str, sha256: str) -> str:
    """Settings key of the remembered "run this file?" answer for one file (by path) and content (by hash)."""
    return f"modelFiles/{hashlib.sha1(str(path).encode()).hexdigest()[:16]}_{sha256[:32]}"


def short_path(path: str | Path) -> str:
    """'…/folder/file.py' (the last two parts) for a question's first line; the full path goes in its details."""
    parts = Path(path).parts
    return str(path) if len(parts) <= 3 else "…/" + "/".join(parts[-2:])
