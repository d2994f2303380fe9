"""The app's name and where its things are kept: the settings store, the one remembered export folder, the folder
new runs go to. The one module every GUI module imports for these (it imports no other gui module)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

ORGANIZATION = "LatentExplorer"
APPLICATION = "Latent Explorer"
SETTINGS_ENV = "LATENT_EXPLORER_SETTINGS"  # path of an .ini file to use instead of the user's settings
RUNS_ENV = "LATENT_EXPLORER_RUNS"  # folder for run folders instead of the user's data folder
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


def runs_root() -> Path:
    """Where new run folders go: $LATENT_EXPLORER_RUNS, else the user's data folder."""
    from PySide6.QtCore import QStandardPaths

    env = os.environ.get(RUNS_ENV)
    if env:
        return Path(env)
    base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.GenericDataLocation)
    return Path(base or Path.home()) / "latent-explorer" / "runs"
