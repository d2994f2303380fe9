"""The app's state, without Qt: dataset, model source, session lifecycle, recent runs — and the one home of the
work that must not run on the GUI thread (loading datasets and checkpoints, resolving presets, building sessions).

The pattern of napari's viewer model: this object owns the state and announces changes through `Emitter`s; the
window and the panels render it. Background work runs on ONE job thread; its result reaches the listeners through
`post` (the window passes a function that queues the call onto the GUI thread; tests pass nothing and get the call
on the job thread, then `Job.wait()`). A newer job of a kind supersedes an older one: the older result is dropped.
"""

from __future__ import annotations

import json
import struct
import threading
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

MAX_RECENT = 8
THUMBNAILS = 16
PREVIEW_IMAGES = 32
PREVIEW_COLUMNS = 8
JOB_THREAD_NAME = "latent-explorer-jobs"


class Emitter:
    """A plain observer list: `connect(slot)`, `emit(*args)` calls every slot in the emitting thread."""

    def __init__(self) -> None:
        self._slots: list[Callable[..., Any]] = []

    def connect(self, slot: Callable[..., Any]) -> None:
        self._slots.append(slot)

    def disconnect(self, slot: Callable[..., Any]) -> None:
        if slot in self._slots:
            self._slots.remove(slot)

    def emit(self, *args: Any) -> None:
        for slot in list(self._slots):
            slot(*args)


class Job:
    """One piece of background work; `done` is set once its result (or error) was delivered to the listeners."""

    def __init__(self, kind: str, generation: int) -> None:
        self.kind = kind
        self.generation = generation
        self.result: Any = None
        self.error: BaseException | None = None
        self.superseded = False
        self.done = threading.Event()
        self._on_done: list[Callable[[Job], None]] = []

    def add_done_callback(self, callback: Callable[[Job], None]) -> None:
        """`callback(job)` in the listeners' thread when delivered (at once if it already was)."""
        if self.done.is_set():
            callback(self)
        else:
            self._on_done.append(callback)

    def wait(self, timeout: float | None = None) -> bool:
        return self.done.wait(timeout)

    @property
    def ok(self) -> bool:
        return self.done.is_set() and self.error is None and not self.superseded


@dataclass(frozen=True)
class DatasetView:
    """A loaded dataset with what the Data dock shows: thumbnails (uint8 grid), summary lines, how it was chosen."""

    dataset: Any
    spec: str
    thumbnails: np.ndarray | None
    summary_html: str
    note: str = ""  # e.g. "mnist is not on this machine: training mnist-sample instead"


@dataclass(frozen=True)
class OpenedCheckpoint:
    """A checkpoint loaded off the GUI thread, with its dataset (if one could be loaded) and preview grids."""

    path: str
    loaded: Any  # engine.checkpoint.LoadedCheckpoint
    dataset_view: DatasetView | None
    test_indices: Any
    recon_grid: np.ndarray | None
    samples_grid: np.ndarray | None
    warnings: list[str] = field(default_factory=list)
    preset: str | None = None  # the preset whose recipe the checkpoint's run used (engine.presets.matching_preset)
    preset_config: Any = None  # that preset's TrainConfig (what a new run from the docks builds on)


class SettingsStore:
    """Where recent runs and folders persist: a dict here; the window passes a QSettings-backed one."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def value(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def setValue(self, key: str, value: Any) -> None:  # noqa: N802 (QSettings' spelling, so QSettings fits)
        self.values[key] = value


def summary_html(dataset: Any) -> str:
    """The Data dock's description of a dataset: name, size and shape, labels, factors."""
    summary = dataset.summary()
    n = len(dataset)
    lines = [f"<b>{summary.get('name', '')}</b>" + (" (sample)" if summary.get("is_sample") else ""),
             summary.get("description", ""),
             f"{summary.get('size', n):,} images, shape {'×'.join(str(s) for s in summary.get('shape', []))}"]
    if summary.get("num_classes"):
        names = summary.get("class_names") or []
        lines.append(f"labels: {summary['num_classes']} classes" + (f" ({', '.join(names[:10])})" if names else ""))
    if summary.get("factors"):
        lines.append("factors: " + ", ".join(f"{k} ({v})" for k, v in summary["factors"].items()))
    return "<br>".join(x for x in lines if x)


def dataset_view(dataset: Any, spec: str, note: str = "") -> DatasetView:
    """Thumbnails and summary of a dataset (job thread: indexing a large dataset costs tens of ms)."""
    import torch

    from engine.imaging import tile

    n = len(dataset)
    count = min(THUMBNAILS, n)
    thumbnails = None
    if count:
        idx = torch.linspace(0, n - 1, count).round().long()
        thumbnails = tile(dataset.images_at(idx).cpu(), ncols=8, pad=1)
    return DatasetView(dataset, spec, thumbnails, summary_html(dataset), note)


def paired_rows(inputs: Any, recon: Any, ncols: int = PREVIEW_COLUMNS) -> Any:
    """Inputs and reconstructions interleaved row by row (row 2k: inputs, 2k+1: their reconstructions)."""
    import torch

    rows = []
    for start in range(0, inputs.shape[0], ncols):
        rows += [inputs[start:start + ncols], recon[start:start + ncols]]
    return torch.cat(rows)


def checkpoint_previews(model: Any, dataset: Any, test_indices: Any) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Reconstructions of test images (paired rows, as the live preview) and prior samples from loaded weights."""
    import torch

    from engine import explore
    from engine.imaging import tile

    recon_grid = samples_grid = None
    with torch.inference_mode():
        if dataset is not None and len(dataset):
            has_test = test_indices is not None and len(test_indices) > 0
            pool = test_indices if has_test else torch.arange(len(dataset))
            idx = pool[:PREVIEW_IMAGES]
            count = (idx.numel() // PREVIEW_COLUMNS) * PREVIEW_COLUMNS or idx.numel()
            idx = idx[:count]
            images = dataset.images_at(idx).cpu()
            recon = explore.reconstructions(model, images, dataset.labels_at(idx))
            grid = paired_rows(images.float() / 255.0, recon.float().cpu(), min(PREVIEW_COLUMNS, count))
            recon_grid = tile(grid, ncols=min(PREVIEW_COLUMNS, count), pad=1)
        if getattr(model, "can_sample", False) and not getattr(model, "is_conditional", False):
            samples = explore.sample_images(model, PREVIEW_IMAGES, seed=0)
            samples_grid = tile(samples.cpu(), ncols=PREVIEW_COLUMNS, pad=1)
    return recon_grid, samples_grid


def _call_now(fn: Callable[[], None]) -> None:
    fn()


class AppState:
    """The application's state and its background work; no Qt. The window listens and renders."""

    def __init__(self, post: Callable[[Callable[[], None]], None] | None = None,
                 store: Any = None) -> None:
        self.post = post or _call_now
        self.store = store if store is not None else SettingsStore()
        self.dataset: Any = None
        self.dataset_spec = ""
        self.dataset_note = ""
        self.preset_config: Any = None  # the chosen preset's TrainConfig (its dataset resolved when chosen)
        self.checkpoint_path: str | None = None  # a loaded checkpoint: Start continues it
        self.checkpoint_position = (0, 0)  # (step, epoch) of the loaded checkpoint
        self.session: Any = None
        self.run_dir: str | None = None
        self.messages: list[tuple[str, str]] = []  # (level, text), newest last
        self.busy: dict[str, str] = {}  # kind → what the job thread is doing, for a status line

        self.dataset_changed = Emitter()  # DatasetView
        self.checkpoint_opened = Emitter()  # OpenedCheckpoint
        self.session_ready = Emitter()  # (session, continuing)
        self.busy_changed = Emitter()  # (text or "")
        self.message = Emitter()  # (level, text)
        self.recent_changed = Emitter()  # list[str]

        self._executor: ThreadPoolExecutor | None = None
        self._generations: dict[str, int] = {}
        self._lock = threading.Lock()
        self._closed = False

    # --- background work ------------------------------------------------------------------------------
    def submit(self, kind: str, label: str, work: Callable[[], Any], on_done: Callable[[Any], None],
               on_error: Callable[[BaseException], None] | None = None) -> Job:
        """Run `work()` on the job thread; `on_done(result)` / `on_error(exc)` run where `post` puts them.

        A later job of the same kind supersedes this one: its result is then dropped (and `Job.superseded` set).
        After `shutdown` nothing runs: the job comes back done and superseded (a timer of a closed window may
        still fire)."""
        if self._closed:
            job = Job(kind, 0)
            job.superseded = True
            job.done.set()
            return job
        with self._lock:
            generation = self._generations.get(kind, 0) + 1
            self._generations[kind] = generation
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=JOB_THREAD_NAME)
            executor = self._executor
        job = Job(kind, generation)
        self._set_busy(kind, label)

        def run() -> None:
            try:
                job.result = work()
            except BaseException as exc:  # delivered to on_error, never lost in the thread
                if not isinstance(exc, Exception):
                    raise
                job.error = exc
            self.post(lambda: self._deliver(job, on_done, on_error))

        executor.submit(run)
        return job

    def _deliver(self, job: Job, on_done: Callable[[Any], None],
                 on_error: Callable[[BaseException], None] | None) -> None:
        try:
            current = self._generations.get(job.kind) == job.generation
            if current:
                self._set_busy(job.kind, "")
            if not current or self._closed:
                job.superseded = True
            elif job.error is not None:
                if on_error is not None:
                    on_error(job.error)
                else:
                    self.report("error", f"{type(job.error).__name__}: {job.error}")
            else:
                on_done(job.result)
        except Exception as exc:  # a listener's bug must not lose the job's completion
            traceback.print_exc()
            self.report("error", f"{type(exc).__name__}: {exc}")
        finally:
            job.done.set()
            for callback in job._on_done:
                callback(job)

    def _set_busy(self, kind: str, label: str) -> None:
        if label:
            self.busy[kind] = label
        else:
            self.busy.pop(kind, None)
        self.busy_changed.emit(next(iter(self.busy.values()), ""))

    def is_busy(self, kind: str) -> bool:
        return kind in self.busy

    def cancel(self, kind: str) -> None:
        """Forget a pending job of this kind: its result will be dropped."""
        with self._lock:
            self._generations[kind] = self._generations.get(kind, 0) + 1
        self._set_busy(kind, "")

    def shutdown(self, wait: bool = True) -> None:
        """No more deliveries; wait for the job thread to finish its current job."""
        self._closed = True
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=wait, cancel_futures=True)

    def report(self, level: str, text: str) -> None:
        self.messages.append((level, text))
        self.message.emit(level, text)

    # --- dataset ---------------------------------------------------------------------------------------
    def load_dataset(self, spec: str, fallback: list[str] | None = None) -> Job:
        """Load `spec` (or the first of `fallback` that loads) off the GUI thread; `dataset_changed` on success."""
        spec = str(spec).strip()

        def work() -> DatasetView:
            from engine.config import TrainConfig
            from engine.data import load_dataset
            from engine.training import load_with_fallback

            if not fallback:
                dataset = load_dataset(spec)
                return dataset_view(dataset, spec)
            probe = TrainConfig(dataset=spec, fallback=list(fallback), family="vae")
            dataset, warnings = load_with_fallback(probe)
            used = dataset.spec or spec
            note = ""
            if warnings:
                first_line = str(warnings[0]).split(" (")[0]
                note = f"{first_line.removeprefix('dataset ')}: {used!r} will be trained instead."
            return dataset_view(dataset, used, note)

        def failed(exc: BaseException) -> None:
            self.report("error", f"Could not load dataset {spec!r}: {exc}")

        return self.submit("dataset", f"loading {spec}…", work, self._dataset_loaded, failed)

    def _dataset_loaded(self, view: DatasetView) -> None:
        self.dataset, self.dataset_spec, self.dataset_note = view.dataset, view.spec, view.note
        self.dataset_changed.emit(view)

    def adopt_dataset(self, dataset: Any, spec: str) -> DatasetView:
        """A dataset that arrived another way (a session loaded it): make it current and announce it."""
        view = dataset_view(dataset, spec)
        self._dataset_loaded(view)
        return view

    # --- presets ---------------------------------------------------------------------------------------
    def choose_preset(self, name: str) -> Any:
        """The preset's config, remembered; its dataset (or the first fallback on this machine) loads at once,
        so what the Data dock shows is what Start will train. Raises the preset's error (bad name, bad TOML)."""
        from engine.presets import load_preset

        config = load_preset(name)
        self.preset_config = config
        self.load_dataset(config.dataset, list(config.fallback))
        return config

    def resolved_fallback(self, spec: str) -> list[str]:
        """Fallbacks a run of `spec` may still use: the preset's, when the dock still names its dataset."""
        base = self.preset_config
        return list(base.fallback) if base is not None and base.dataset == spec else []

    # --- checkpoints -----------------------------------------------------------------------------------
    def open_checkpoint(self, path: str | Path) -> Job:
        """Load a checkpoint, its dataset (the loaded one if it matches) and preview grids off the GUI thread."""
        path = str(path)
        current_dataset, current_spec = self.dataset, self.dataset_spec

        def work() -> OpenedCheckpoint:
            from engine.checkpoint import load_checkpoint

            loaded = load_checkpoint(path)
            config = loaded.config
            warnings: list[str] = []
            view = None
            dataset = current_dataset if current_dataset is not None and current_spec == config.dataset else None
            if dataset is None:
                for spec in [config.dataset, *config.fallback]:
                    try:
                        view = dataset_view(_load(spec), spec)
                    except Exception as exc:
                        warnings.append(f"The checkpoint's dataset {spec!r} is not available: {exc}")
                        continue
                    dataset = view.dataset
                    break
            test_indices = None
            if dataset is not None:
                _, test_indices = dataset.split(config.test_fraction, config.seed, config.test_count)
            try:
                recon, samples = checkpoint_previews(loaded.model, dataset, test_indices)
            except Exception as exc:
                recon = samples = None
                warnings.append(f"Could not draw previews of the checkpoint: {exc}")
            from engine.presets import load_preset, matching_preset

            preset = matching_preset(config)
            return OpenedCheckpoint(path, loaded, view, test_indices, recon, samples, warnings, preset,
                                    load_preset(preset) if preset else None)

        def failed(exc: BaseException) -> None:
            if type(exc).__name__ in ("CheckpointError", "ConfigError") or isinstance(exc, OSError | ValueError):
                self.report("error", f"Could not open checkpoint: {exc}")
            else:
                traceback.print_exception(exc)
                self.report("error", f"Could not open checkpoint {path}: {type(exc).__name__}: {exc}")

        return self.submit("checkpoint", f"opening {Path(path).name}…", work, self._checkpoint_loaded, failed)

    def _checkpoint_loaded(self, opened: OpenedCheckpoint) -> None:
        for warning in opened.warnings:
            self.report("warning", warning)
        if opened.dataset_view is not None:
            self._dataset_loaded(opened.dataset_view)
        self.session = None
        self.preset_config = opened.preset_config
        self.checkpoint_path = opened.path
        self.checkpoint_position = (int(opened.loaded.step), int(opened.loaded.epoch))
        self.add_recent(opened.path)
        self.checkpoint_opened.emit(opened)

    def forget_run(self) -> None:
        """New run: no checkpoint to continue, no finished session."""
        self.checkpoint_path = None
        self.checkpoint_position = (0, 0)
        self.session = None

    # --- sessions --------------------------------------------------------------------------------------
    def prepare_session(self, config: Any = None, continue_overrides: dict[str, Any] | None = None) -> Job:
        """Build a TrainingSession off the GUI thread (a new run from `config`, or continuing the loaded
        checkpoint with `continue_overrides`); `session_ready(session, continuing)` when it is built."""
        checkpoint = self.checkpoint_path
        dataset = self.dataset
        use_loaded = config is not None and dataset is not None and self.dataset_spec == config.dataset

        def work() -> Any:
            from engine.training import TrainingSession

            if checkpoint is not None:
                return TrainingSession.from_checkpoint(checkpoint, pause_on_error=True, **(continue_overrides or {}))
            return TrainingSession(config, dataset=dataset if use_loaded else None, pause_on_error=True)

        def ready(session: Any) -> None:
            self.session = session
            self.run_dir = session.config.out_dir
            for warning in getattr(session, "warnings", []) or []:
                self.report("warning", warning)
            if session.dataset is not None and session.dataset is not self.dataset:
                self.adopt_dataset(session.dataset, session.dataset_spec)
            self.session_ready.emit(session, checkpoint is not None)

        def failed(exc: BaseException) -> None:
            known = ("ConfigError", "DatasetError", "CheckpointError")
            if type(exc).__name__ not in known and not isinstance(exc, OSError | ValueError | RuntimeError):
                traceback.print_exception(exc)
            self.report("error", f"Cannot start training: {exc}")

        return self.submit("session", "preparing the run…", work, ready, failed)

    # --- recent runs -----------------------------------------------------------------------------------
    def recent_runs(self) -> list[str]:
        value = self.store.value("recent/checkpoints", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in (value or [])]

    def add_recent(self, path: str | Path) -> list[str]:
        path = str(Path(path).resolve())
        recent = [path, *(p for p in self.recent_runs() if p != path)][:MAX_RECENT]
        self.store.setValue("recent/checkpoints", recent)
        details = {p: d for p, d in self._recent_details().items() if p in recent}
        details[path] = recent_summary(path)  # read once here (one header, a few ms), not at every menu build
        self.store.setValue("recent/details", json.dumps(details))
        self.recent_changed.emit(recent)
        return recent

    def recent_entries(self) -> list[tuple[str, str]]:
        """(path, menu text) of every recent run, newest first: run name, dataset, family, step and date."""
        details = self._recent_details()
        return [(path, recent_label(path, details.get(path) or {})) for path in self.recent_runs()]

    def _recent_details(self) -> dict[str, dict[str, Any]]:
        try:
            value = json.loads(str(self.store.value("recent/details", "{}") or "{}"))
        except json.JSONDecodeError:
            return {}
        return value if isinstance(value, dict) else {}

    # --- remembered folders ----------------------------------------------------------------------------
    def folder(self, key: str) -> str:
        return str(self.store.value(f"folders/{key}", str(Path.home())))

    def remember_folder(self, key: str, path: str | Path) -> None:
        path = Path(path)
        self.store.setValue(f"folders/{key}", str(path if path.is_dir() else path.parent))


def recent_summary(path: str | Path) -> dict[str, Any]:
    """Run name, dataset, family, step and date of a checkpoint, from its safetensors header only (no tensors);
    {} when the file cannot be read (the menu then shows the file name)."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            size = struct.unpack("<Q", handle.read(8))[0]
            if not 0 < size < 256 * 1024 * 1024:
                return {}
            header = json.loads(handle.read(size))
        meta = json.loads(header.get("__metadata__", {}).get("latent_explorer", "{}"))
    except (OSError, ValueError, struct.error, AttributeError, TypeError):
        return {}
    if not isinstance(meta, dict):
        return {}
    dataset = meta.get("dataset") if isinstance(meta.get("dataset"), dict) else {}
    run = path.parent.parent.name if path.parent.name == "checkpoints" else path.stem
    return {"run": run, "dataset": str(dataset.get("spec") or dataset.get("name") or ""),
            "family": str(meta.get("family", "")), "step": meta.get("step"),
            "created": str(meta.get("created") or "")[:10]}


def recent_label(path: str, details: dict[str, Any]) -> str:
    """`run — dataset · family · step 814 · 2026-12-05`, or the file name and folder when nothing is known."""
    if not details:
        return f"{Path(path).name}  —  {Path(path).parent}"
    step = details.get("step")
    parts = [details.get("dataset"), details.get("family"),
             f"step {step:,}" if isinstance(step, int) else None, details.get("created")]
    return f"{details.get('run') or Path(path).stem}  —  " + " · ".join(str(p) for p in parts if p)


def _load(spec: str) -> Any:
    from engine.data import load_dataset

    return load_dataset(spec)
