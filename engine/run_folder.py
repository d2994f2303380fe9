"""A run's folder, and the one place that writes it: config.toml, metrics.jsonl (+ metrics.csv), tensorboard/,
previews/ (bounded), checkpoints/step_N.safetensors and checkpoints/last.safetensors.

    runs/NAME/
      config.toml                  the run's settings (atomic: temp file + os.replace)
      metrics.jsonl                one JSON record per line: steps, epoch summaries, probes (appended)
      metrics.csv                  the step records as a table (the CLI writes it when a run ends)
      tensorboard/                 train/* and test/* scalars, when tensorboard is installed
      previews/step_00000120_{reconstructions,samples,traversal}.png   the last few sets + a bounded archive
      checkpoints/step_N.safetensors, checkpoints/last.safetensors (an atomic link to the newest)

A training session records into it while it runs (`open` … `close`); the CLI (metrics.csv), the app (the checkpoint
it saves on close) and sweeps (result.json, traversal.png) name their files through it.
"""

from __future__ import annotations

import csv
import io
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import checkpoint as ckpt
from .events import Preview
from .imaging import save_png

CONFIG_FILE = "config.toml"
METRICS_FILE = "metrics.jsonl"
METRICS_CSV = "metrics.csv"
LAST_CHECKPOINT = "last.safetensors"
PREVIEW_KINDS = ("reconstructions", "samples", "traversal")
PREVIEW_PNGS_KEEP_LAST = 3  # a run folder keeps the last few preview sets, plus one per `preview_png_every_s`
PREVIEW_PNGS_ARCHIVED = 40  # … at most this many of those (thinned by halving)


def checkpoint_name(step: int) -> str:
    """The file name of a run's checkpoint at `step` (inside its checkpoints/ folder)."""
    return f"step_{step}.safetensors"


class RunFolder:
    """One run folder. The path helpers never touch the disk; `open` creates it and starts recording."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._metrics: io.TextIOBase | None = None
        self._tensorboard: Any = None
        self._previews: PreviewArchive | None = None

    # --- where things are --------------------------------------------------------------------------------------
    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def last_checkpoint(self) -> Path:
        return self.checkpoints / LAST_CHECKPOINT

    def checkpoint_path(self, step: int) -> Path:
        return self.checkpoints / checkpoint_name(step)

    @property
    def metrics_file(self) -> Path:
        return self.path / METRICS_FILE

    def has_checkpoint(self) -> bool:
        """Whether this is a finished-or-saved run folder (it has checkpoints/last.safetensors)."""
        return self.last_checkpoint.is_file()

    def read_metrics(self) -> list[dict[str, Any]]:
        """The records of metrics.jsonl, in order ([] when it is missing or unreadable); a torn last line, from a
        killed run, and anything that is not a JSON object are skipped."""
        records = []
        try:
            with self.metrics_file.open(encoding="utf-8") as handle:
                for line in handle:
                    try:
                        record = json.loads(line)
                    except json.JSONDecodeError:
                        continue
                    if isinstance(record, dict):
                        records.append(record)
        except (OSError, UnicodeDecodeError):
            return []
        return records

    # --- recording a run ---------------------------------------------------------------------------------------
    def open(self, config_toml: str, *, preview_png_every_s: float, clock: Callable[[], float]) -> RunFolder:
        """Create the folder, write config.toml, and open metrics.jsonl for appending (a record a killed run left
        half-written is cut first), TensorBoard (when installed) and the bounded preview archive."""
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        write_text_atomically(self.path / CONFIG_FILE, config_toml)
        _drop_partial_last_line(self.path / METRICS_FILE)
        self._metrics = open(self.path / METRICS_FILE, "a", encoding="utf-8")  # noqa: SIM115 (closed by close())
        self._tensorboard = _tensorboard_writer(self.path / "tensorboard")
        self._previews = PreviewArchive(self.path / "previews", preview_png_every_s, clock)
        return self

    def close(self) -> None:
        if self._metrics is not None:
            self._metrics.close()
            self._metrics = None
        if self._tensorboard is not None:
            self._tensorboard.close()
            self._tensorboard = None

    def record_step(self, record: dict[str, Any]) -> None:
        """A step record (kind = step) → metrics.jsonl, and its terms → TensorBoard's train/*."""
        self._append(record)
        if self._tensorboard is not None:
            for k, v in record["terms"].items():
                self._tensorboard.add_scalar(f"train/{k}", v, record["step"])

    def record_epoch(self, record: dict[str, Any]) -> None:
        """An epoch summary (kind = epoch) → metrics.jsonl (flushed: an epoch end is a point to resume reading
        from), and its test scores → TensorBoard's test/*."""
        self._append(record)
        if self._metrics is not None:
            self._metrics.flush()
        if self._tensorboard is not None:
            for k, v in record["test"].items():
                self._tensorboard.add_scalar(f"test/{k}", v, record["step"])

    def record_probe(self, record: dict[str, Any]) -> None:
        """A live-probe record (kind = probe) → metrics.jsonl."""
        self._append(record)

    def save_previews(self, preview: Preview) -> None:
        """The preview's grids as PNGs in previews/ (bounded: see PreviewArchive)."""
        if self._previews is not None:
            self._previews.save(preview)

    def _append(self, record: dict[str, Any]) -> None:
        if self._metrics is not None:
            self._metrics.write(json.dumps(record) + "\n")

    # --- files written whole -----------------------------------------------------------------------------------
    def write_checkpoint(self, save: Callable[[Path], Path], step: int) -> Path:
        """`save(path)` writes the checkpoint of `step` (atomically); last.safetensors then becomes a link to it."""
        path = save(self.checkpoint_path(step))
        ckpt.link_or_copy(path, self.last_checkpoint)
        return path

    def write_metrics_csv(self, history: list[dict[str, Any]]) -> Path:
        return write_metrics_csv(history, self.path / METRICS_CSV)

    def write_json(self, name: str, doc: Any) -> Path:
        """A JSON file in the run folder (e.g. a sweep's result.json), written atomically."""
        return write_text_atomically(self.path / name, json.dumps(doc, indent=2))

    def write_png(self, name: str, image: Any) -> Path:
        """An image (uint8 grid, engine/imaging.py) as a PNG in the run folder (e.g. a sweep's traversal.png)."""
        return save_png(image, self.path / name)


class PreviewArchive:
    """The preview PNGs of a run folder, bounded: the last PREVIEW_PNGS_KEEP_LAST sets, plus one set per `every_s`
    seconds (at most PREVIEW_PNGS_ARCHIVED of those, thinned by halving); older sets are deleted."""

    def __init__(self, folder: Path, every_s: float, clock: Callable[[], float]) -> None:
        self.folder = folder
        self.every_s = every_s
        self.clock = clock
        self.recent: list[int] = []
        self.archived: list[int] = []
        self.last_archived_at: float | None = None

    def save(self, preview: Preview) -> None:
        for kind in PREVIEW_KINDS:
            grid = getattr(preview, kind)
            if grid is not None:
                save_png(grid, self._path(preview.step, kind))
        now = self.clock()
        if preview.step in self.recent or preview.step in self.archived:
            return
        if self.every_s > 0 and (self.last_archived_at is None or now - self.last_archived_at >= self.every_s):
            self.archived.append(preview.step)
            self.last_archived_at = now
            if len(self.archived) > PREVIEW_PNGS_ARCHIVED:
                dropped, self.archived = self.archived[1::2], self.archived[0::2]
                for step in dropped:
                    self._delete(step)
            return
        self.recent.append(preview.step)
        while len(self.recent) > PREVIEW_PNGS_KEEP_LAST:
            self._delete(self.recent.pop(0))

    def _path(self, step: int, kind: str) -> Path:
        return self.folder / f"step_{step:08d}_{kind}.png"

    def _delete(self, step: int) -> None:
        for kind in PREVIEW_KINDS:
            self._path(step, kind).unlink(missing_ok=True)


def write_metrics_csv(history: list[dict[str, Any]], path: str | Path) -> Path:
    """The step records of a history as CSV: step, epoch, every term, every live value (written atomically)."""
    steps = [r for r in history if r.get("kind") == "step"]
    term_names = sorted({k for r in steps for k in r.get("terms", {})})
    live_names = sorted({k for r in steps for k in r.get("live", {})})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(["step", "epoch", *term_names, *live_names])
    for r in steps:
        writer.writerow([r["step"], r["epoch"], *(r["terms"].get(k, "") for k in term_names),
                         *(r["live"].get(k, "") for k in live_names)])
    return write_text_atomically(path, buffer.getvalue())


def write_text_atomically(path: Path, text: str) -> Path:
    """Temp file in the same folder, then os.replace: a crash leaves the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _tensorboard_writer(folder: Path) -> Any:
    """TensorBoard's SummaryWriter for `folder`, or None when tensorboard is not installed."""
    try:
        import tensorboard  # noqa: F401
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(folder))


def _drop_partial_last_line(path: Path) -> None:
    """A killed run can leave metrics.jsonl ending mid-record; cut it so appended records stay one per line."""
    try:
        with open(path, "rb+") as handle:
            size = handle.seek(0, os.SEEK_END)
            if size == 0:
                return
            handle.seek(max(0, size - 65536))
            tail = handle.read()
            if tail.endswith(b"\n"):
                return
            cut = tail.rfind(b"\n")
            handle.truncate(size - len(tail) + cut + 1 if cut >= 0 else (0 if size <= 65536 else size))
    except FileNotFoundError:
        return
