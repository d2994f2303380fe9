"""Hyperparameter sweeps: a queue of training runs, one after another, each in its own folder, then evaluated.

`plan_sweep(config, parse_grid("beta=1,2,4,8"), seeds=2, out_dir=...)` lists the runs (the Cartesian product of
the grid × seeds); `SweepRunner(runs).run(control)` trains them in turn and yields frozen events (progress, one
record per finished run, the end). Each record holds −ELBO = recon + KL (β = 1, whatever β trained with), its two
terms, active units, the IWAE-k NLL when the family has importance weights, the five disentanglement scores
(when the dataset has ground-truth factors) and the run's traversal image. `write_summary` writes the
comparison: summary.csv, summary.json and the rate–distortion plane (KL vs reconstruction) as a PNG.
The same `Control` as training: `stop()` ends the current run at its next step and skips the rest.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import math
import re
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import explore
from .config import TrainConfig
from .control import Control
from .data import Dataset, DatasetError
from .errors import CheckpointError, ConfigError
from .evaluate import evaluate
from .events import EpochSummary, Failed, Finished, StepMetrics, Warning_
from .imaging import save_png
from .metrics import DCI_ESTIMATORS, METRIC_NAMES, MetricsCancelled, MetricSizes, compute_metrics
from .models import ModelBase, model_class

TRAINING_GRID_KEYS = ("lr", "batch_size", "weight_decay", "epochs", "max_steps")
SCORE_KEYS = ("beta_vae", "factor_vae", "mig", "dci_disentanglement", "dci_completeness", "dci_informativeness",
              "sap")
ELBO_KEYS = ("neg_elbo", "recon", "kl", "active_units", "iwae_nll")
TRAVERSAL_STEPS = 9
TRAVERSAL_MAX_DIMS = 10
EVAL_MAX_IMAGES = 5000
_NOT_GRID = frozenset({"run", "seed", "status", "steps", "seconds", "folder", "traversal", "train_seconds", "error",
                       "mi_matrix", "factor_names", "kl_per_dim", "metric_sizes", "metric_seed", "metric_seconds",
                       *ELBO_KEYS, *SCORE_KEYS})  # record keys that are not grid parameters
_STAGE_SHARE = {"train": 0.75, "evaluate": 0.05, "metrics": 0.17, "traversal": 0.03}


# --- planning ------------------------------------------------------------------------------------------
def _parse_value(text: str) -> int | float | str:
    text = text.strip()
    if re.fullmatch(r"[+-]?\d+", text):
        return int(text)
    try:
        value = float(text)
    except ValueError:
        return text
    if not math.isfinite(value):
        raise ConfigError(f"grid value {text!r} is not a finite number")
    return value


def parse_grid(text: str | list[str] | tuple[str, ...]) -> dict[str, list[Any]]:
    """`"beta=1,2,4,8"` → {"beta": [1, 2, 4, 8]}; several parameters: `"beta=1,4;latent_dim=6,10"` or a list."""
    parts = [text] if isinstance(text, str) else list(text)
    grid: dict[str, list[Any]] = {}
    for part in parts:
        for item in str(part).split(";"):
            item = item.strip()
            if not item:
                continue
            name, sep, values = item.partition("=")
            name = name.strip()
            if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise ConfigError(f"grid entry {item!r}: expected NAME=V1,V2,… (e.g. beta=1,2,4,8)")
            parsed = [_parse_value(v) for v in values.split(",") if v.strip()]
            if not parsed:
                raise ConfigError(f"grid entry {item!r}: no values after '='")
            if name in grid:
                raise ConfigError(f"grid parameter {name!r} is given twice")
            if len(set(map(repr, parsed))) != len(parsed):
                raise ConfigError(f"grid entry {item!r}: a value is repeated")
            grid[name] = parsed
    if not grid:
        raise ConfigError("the grid is empty; give at least one NAME=V1,V2,… (e.g. beta=1,2,4,8)")
    return grid


def _format_value(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def run_name(values: dict[str, Any], seed: int) -> str:
    """Folder name of a run: `beta=4_seed0` (file-system safe)."""
    parts = [f"{k}={_format_value(v)}" for k, v in values.items()] + [f"seed{seed}"]
    return re.sub(r"[^A-Za-z0-9=._+-]", "-", "_".join(parts))


@dataclass(frozen=True)
class SweepRun:
    """One planned run: the grid values it takes, its seed, its full config (out_dir = its folder, or None)."""

    index: int
    name: str
    values: dict[str, Any]
    seed: int
    config: TrainConfig = field(compare=False)

    @property
    def label(self) -> str:
        return ", ".join(f"{k}={_format_value(v)}" for k, v in self.values.items())


def plan_sweep(base: TrainConfig, grid: dict[str, list[Any]], seeds: int = 1, out_dir: str | Path | None = None,
               max_steps: int | None = None) -> list[SweepRun]:
    """The runs of a sweep: every combination of the grid × `seeds` seeds (base.seed, base.seed + 1, …)."""
    if not isinstance(seeds, int) or isinstance(seeds, bool) or not 1 <= seeds <= 100:
        raise ConfigError(f"seeds must be an integer in [1, 100], got {seeds!r}")
    cls = model_class(base.family)
    hparam_names = {h.name for h in cls.all_hparams()}
    unknown = [k for k in grid if k not in hparam_names and k not in TRAINING_GRID_KEYS]
    if unknown:
        raise ConfigError(f"cannot sweep {', '.join(unknown)} for family {base.family!r}; sweepable: "
                          f"{', '.join(sorted(hparam_names) + list(TRAINING_GRID_KEYS))}")
    runs: list[SweepRun] = []
    combos = list(itertools.product(*grid.values()))
    for combo in combos:
        values = dict(zip(grid, combo, strict=True))
        hparams = dict(base.hparams)
        training: dict[str, Any] = {}
        for k, v in values.items():
            if k in TRAINING_GRID_KEYS:
                training[k] = float(v) if k in ("lr", "weight_decay") and isinstance(v, int) else v
            else:
                hparams[k] = v
        cls.validate_hparams(hparams)
        for s in range(seeds):
            seed = base.seed + s
            name = run_name(values, seed)
            folder = str(Path(out_dir) / name) if out_dir is not None else None
            changes: dict[str, Any] = {"hparams": hparams, "seed": seed, "out_dir": folder, **training}
            if max_steps is not None:
                changes["max_steps"] = int(max_steps)
            runs.append(SweepRun(len(runs), name, values, seed, base.replace(**changes)))
    return runs


# --- events ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SweepProgress:
    run_index: int
    runs: int
    stage: str  # train | evaluate | metrics | traversal
    fraction: float  # 0…1 of the whole sweep
    run_fraction: float  # 0…1 of this run
    message: str
    step: int = 0
    terms: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class RunDone:
    run_index: int
    record: dict[str, Any]
    traversal: np.ndarray | None = None  # uint8 grid (rows = latents by KL, largest first)


@dataclass(frozen=True)
class SweepWarning:
    message: str


@dataclass(frozen=True)
class SweepDone:
    records: tuple[dict[str, Any], ...]
    reason: str  # completed | stopped
    files: dict[str, str] = field(default_factory=dict)


SweepEvent = SweepProgress | RunDone | SweepWarning | SweepDone


# --- evaluation of one trained model ----------------------------------------------------------------------
def model_representation(model: ModelBase, dataset: Dataset,
                         batch: int | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """`represent(factors) → posterior means` for compute_metrics: render the factor rows, encode them (in batches
    of 1,024 images on a CPU, 8,192 on a GPU unless `batch` says)."""
    batch = batch or (1024 if model.device.type == "cpu" else 8192)
    if model.is_conditional:
        raise ValueError("disentanglement scores are not defined here for conditional models "
                         "(their encoder is given the label)")
    if model.latent_kind != "continuous":
        raise ValueError("disentanglement scores need a continuous code; this model's code is discrete")
    if not dataset.has_factors:
        raise ValueError(f"{dataset.name} has no ground-truth factors; the disentanglement scores need "
                         "dSprites or another dataset with factors")

    def represent(factors: np.ndarray) -> np.ndarray:
        return explore.encode_means(model, dataset.render_factors(factors), batch=batch)

    return represent


def elbo_numbers(model: ModelBase, dataset: Dataset, indices: torch.Tensor, iwae_k: int = 0) -> dict[str, Any]:
    """−ELBO (= recon + KL), recon, KL, active units, KL per dim and the IWAE-k NLL (engine.evaluate)."""
    result = evaluate(model, dataset, indices, iwae_k=iwae_k)
    out: dict[str, Any] = {k: float(result[k]) for k in ELBO_KEYS if result.get(k) is not None}
    if result.get("kl_per_dim") is not None:
        out["kl_per_dim"] = [round(float(v), 5) for v in result["kl_per_dim"]]
    return out


def traversal_image(model: ModelBase, dataset: Dataset, indices: torch.Tensor,
                    steps: int = TRAVERSAL_STEPS) -> np.ndarray | None:
    """Rows = latents by KL (largest first, at most 10), ±3 prior std around the first test image's code."""
    if model.latent_kind != "continuous" or model.is_conditional:
        return None
    stats = explore.latent_stats(model, dataset, indices, n=500)
    dims = [int(d) for d in stats.order[:TRAVERSAL_MAX_DIMS]]
    values = explore.traversal_values(stats, dims, steps)
    return explore.traversal_grid(model, stats.means[0], dims, values)


# --- the runner --------------------------------------------------------------------------------------------
class SweepRunner:
    """Trains the planned runs one after another; `run(control)` yields SweepEvents (see module docstring)."""

    def __init__(self, runs: list[SweepRun], *, dataset: Dataset | None = None, out_dir: str | Path | None = None,
                 metrics: tuple[str, ...] = METRIC_NAMES, metric_sizes: MetricSizes | None = None,
                 metric_seed: int = 0, iwae_k: int = 0, traversals: bool = True,
                 listener: Callable[[SweepEvent], None] | None = None) -> None:
        """`listener` (optional, called on the running thread) also receives the progress of the metric stage,
        which runs inside one call and so cannot be yielded."""
        if not runs:
            raise ConfigError("the sweep has no runs")
        self.runs = list(runs)
        self.dataset = dataset
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.metrics = tuple(metrics)
        self.metric_sizes = metric_sizes or MetricSizes()
        self.metric_seed = int(metric_seed)
        self.iwae_k = int(iwae_k)
        self.traversals = traversals
        self.listener = listener
        self.records: list[dict[str, Any]] = []

    def _fraction(self, index: int, stage: str, within: float) -> tuple[float, float]:
        stages = list(_STAGE_SHARE)
        before = sum(_STAGE_SHARE[k] for k in stages[:stages.index(stage)])
        run_fraction = min(1.0, before + _STAGE_SHARE[stage] * min(max(within, 0.0), 1.0))
        return (index + run_fraction) / len(self.runs), run_fraction

    def _progress(self, run: SweepRun, stage: str, within: float, message: str, step: int = 0,
                  terms: dict[str, float] | None = None) -> SweepProgress:
        total, own = self._fraction(run.index, stage, within)
        return SweepProgress(run.index, len(self.runs), stage, total, own, message, step, dict(terms or {}))

    def run(self, control: Control | None = None) -> Iterator[SweepEvent]:
        from .training import TrainingSession

        control = control or Control()
        reason = "completed"
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            self._write_plan()
        for run in self.runs:
            if control.stopped:
                reason = "stopped"
                break
            started = time.perf_counter()
            record: dict[str, Any] = {"run": run.name, **{k: v for k, v in run.values.items()}, "seed": run.seed,
                                      "folder": run.config.out_dir or "", "status": "failed"}
            yield self._progress(run, "train", 0.0, f"run {run.index + 1}/{len(self.runs)} ({run.label}): starting")
            traversal = None
            try:
                session = TrainingSession(run.config, self.dataset)
                for message in session.warnings:
                    yield SweepWarning(f"{run.name}: {message}")
                if self.dataset is None:
                    self.dataset = session.dataset
                finished: Finished | None = None
                for event in session.run(control):
                    if isinstance(event, StepMetrics):
                        yield self._progress(run, "train", event.progress,
                                             f"run {run.index + 1}/{len(self.runs)} ({run.label}): step "
                                             f"{event.step:,}/{session.total_steps:,}", event.step, event.terms)
                    elif isinstance(event, Warning_):
                        yield SweepWarning(f"{run.name}: {event.message}")
                    elif isinstance(event, Failed):
                        raise RuntimeError(event.cause)
                    elif isinstance(event, Finished):
                        finished = event
                    elif isinstance(event, EpochSummary):
                        pass
                record["steps"] = session.step
                record["train_seconds"] = round(time.perf_counter() - started, 1)
                if finished is None or finished.reason != "completed":
                    record["status"] = "stopped"
                    self.records.append(record)
                    reason = "stopped"
                    yield RunDone(run.index, dict(record))
                    break
                model = session.model.eval()
                indices = session.test_indices[:EVAL_MAX_IMAGES]
                yield self._progress(run, "evaluate", 0.0, f"{run.name}: −ELBO and KL on {len(indices):,} test images")
                record.update(elbo_numbers(model, session.dataset, indices, self.iwae_k))
                if self.metrics and session.dataset.has_factors:
                    record.update(self._scores(run, model, session.dataset, control))
                    if control.stopped:
                        record["status"] = "stopped"
                        self.records.append(record)
                        reason = "stopped"
                        yield RunDone(run.index, dict(record))
                        break
                    yield self._progress(run, "metrics", 1.0, f"{run.name}: scores done")
                if self.traversals:
                    traversal = traversal_image(model, session.dataset, indices)
                    if traversal is not None and run.config.out_dir:
                        record["traversal"] = str(save_png(traversal, Path(run.config.out_dir) / "traversal.png"))
                record["status"] = "completed"
            except (ConfigError, DatasetError, CheckpointError, OSError, RuntimeError, ValueError, TypeError) as exc:
                # TypeError included: a failing run (e.g. a device tensor handed to numpy) must not end the sweep
                # before the other runs and the summary are written.
                record["error"] = f"{type(exc).__name__}: {exc}"
                yield SweepWarning(f"{run.name} failed: {record['error']}")
            record["seconds"] = round(time.perf_counter() - started, 1)
            if run.config.out_dir:
                Path(run.config.out_dir).mkdir(parents=True, exist_ok=True)
                (Path(run.config.out_dir) / "result.json").write_text(json.dumps(_jsonable(record), indent=2),
                                                                      encoding="utf-8")
            self.records.append(record)
            yield RunDone(run.index, dict(record), traversal)
        files = write_summary(self.records, self.out_dir) if self.out_dir is not None and self.records else {}
        yield SweepDone(tuple(dict(r) for r in self.records), reason, files)

    def _scores(self, run: SweepRun, model: ModelBase, dataset: Dataset, control: Control) -> dict[str, Any]:
        """The disentanglement scores (and the MI matrix) of one run; progress goes to the listener."""

        def progress(fraction: float, message: str) -> None:
            if self.listener is not None:
                self.listener(self._progress(run, "metrics", fraction, f"{run.name}: {message}"))

        try:
            result = compute_metrics(model_representation(model, dataset), dataset, self.metrics, self.metric_seed,
                                     self.metric_sizes, progress, lambda: control.stopped)
        except MetricsCancelled:
            return {}
        out = {k: float(result[k]) for k in SCORE_KEYS if k in result}
        out["mi_matrix"] = result["mi_matrix"]
        out["factor_names"] = result["factor_names"]
        out["metric_sizes"] = result["sizes"]
        out["metric_seed"] = result["seed"]
        out["metric_seconds"] = round(sum(result["seconds"].values()), 1)
        return out

    def _write_plan(self) -> None:
        plan = [{"run": r.name, **r.values, "seed": r.seed, "folder": r.config.out_dir} for r in self.runs]
        doc = {"runs": plan, "metrics": list(self.metrics), "metric_sizes": self.metric_sizes.to_dict(),
               "metric_seed": self.metric_seed, "iwae_k": self.iwae_k,
               "base_config": self.runs[0].config.replace(out_dir=None).to_toml()}
        (self.out_dir / "sweep.json").write_text(json.dumps(_jsonable(doc), indent=2), encoding="utf-8")


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# --- the comparison -----------------------------------------------------------------------------------------
def summary_columns(records: list[dict[str, Any]]) -> list[str]:
    """CSV columns: run, the grid parameters, seed, status, steps, the ELBO numbers, the scores, seconds."""
    fixed = ["run", "seed", "status", "steps", *ELBO_KEYS, *SCORE_KEYS, "seconds", "folder"]
    grid_keys = [k for r in records for k in r if k not in _NOT_GRID]
    grid_keys = list(dict.fromkeys(grid_keys))
    present = [k for k in fixed if any(k in r for r in records)]
    return [present[0], *grid_keys, *present[1:]]


def write_summary(records: list[dict[str, Any]], out_dir: str | Path) -> dict[str, str]:
    """summary.csv, summary.json and rate_distortion.png in `out_dir`; returns their paths by kind."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    columns = summary_columns(records)
    csv_path = out_dir / "summary.csv"
    with csv_path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        for r in records:
            writer.writerow([_csv_cell(r.get(c, "")) for c in columns])
    json_path = out_dir / "summary.json"
    json_path.write_text(json.dumps(_jsonable({"columns": columns, "runs": records}), indent=2), encoding="utf-8")
    files = {"csv": str(csv_path), "json": str(json_path)}
    points = rate_distortion_points(records)
    if points:
        files["png"] = str(save_png(rate_distortion_figure(points), out_dir / "rate_distortion.png"))
    return files


def _csv_cell(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.6g}" if math.isfinite(value) else ""
    return value


def load_summary(path: str | Path) -> list[dict[str, Any]]:
    """The run records of a sweep folder's summary.json (or of the file itself)."""
    path = Path(path)
    if path.is_dir():
        path = path / "summary.json"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: not a sweep summary ({exc})") from None
    runs = doc.get("runs") if isinstance(doc, dict) else None
    if not isinstance(runs, list) or not all(isinstance(r, dict) for r in runs):
        raise ConfigError(f"{path}: not a sweep summary (no list of runs)")
    return runs


def point_label(record: dict[str, Any]) -> str:
    """`β=4` for a β sweep, else the grid values; the seed is added when it is not the only one."""
    parts = [("β" if k == "beta" else k) + f"={_format_value(v)}" for k, v in record.items() if k not in _NOT_GRID]
    return ", ".join(parts) or str(record.get("run", "?"))


def rate_distortion_points(records: list[dict[str, Any]]) -> list[tuple[float, float, str]]:
    """(KL = rate, recon = distortion, label) of every run that has both numbers."""
    points = []
    for r in records:
        kl, recon = r.get("kl"), r.get("recon")
        if isinstance(kl, int | float) and isinstance(recon, int | float) and math.isfinite(kl) and \
                math.isfinite(recon):
            seeds = {x.get("seed") for x in records}
            label = point_label(r) + (f" s{r.get('seed')}" if len(seeds) > 1 else "")
            points.append((float(kl), float(recon), label))
    return points


def rate_distortion_figure(points: list[tuple[float, float, str]], width: int = 720, height: int = 520) -> np.ndarray:
    """The rate–distortion plane as an RGB uint8 image (Pillow only: the engine draws without Qt)."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    try:
        font = ImageFont.truetype("DejaVuSans.ttf", 13)
        plain = False
    except OSError:  # no DejaVu on this system: Pillow's own font, and ASCII for β and ‖
        font = ImageFont.load_default()
        plain = True

    def text(s: str) -> str:
        return s.replace("β", "beta").replace("‖", "||") if plain else s
    left, right, top, bottom = 80, width - 30, 40, height - 60
    xs = np.array([p[0] for p in points])
    ys = np.array([p[1] for p in points])

    def padded(values: np.ndarray) -> tuple[float, float]:
        lo, hi = float(values.min()), float(values.max())
        span = hi - lo if hi > lo else max(abs(hi), 1.0)
        return lo - 0.12 * span, hi + 0.12 * span

    x0, x1 = padded(xs)
    y0, y1 = padded(ys)

    def to_px(x: float, y: float) -> tuple[float, float]:
        return (left + (x - x0) / (x1 - x0) * (right - left), bottom - (y - y0) / (y1 - y0) * (bottom - top))

    draw.rectangle([left, top, right, bottom], outline="black")
    for tick in np.linspace(x0, x1, 6):
        px, _ = to_px(tick, y0)
        draw.line([px, bottom, px, bottom + 5], fill="black")
        draw.text((px - 15, bottom + 8), f"{tick:.3g}", fill="black", font=font)
    for tick in np.linspace(y0, y1, 6):
        _, py = to_px(x0, tick)
        draw.line([left - 5, py, left, py], fill="black")
        draw.text((8, py - 7), f"{tick:.4g}", fill="black", font=font)
    draw.text(((left + right) // 2 - 110, height - 28), text("rate: KL(q(z|x) ‖ p(z))  [nats]"), fill="black",
              font=font)
    draw.text((left, 12), "distortion: reconstruction NLL [nats]  vs  rate, one point per run", fill="black",
              font=font)
    order = np.argsort(xs)
    line = [to_px(xs[i], ys[i]) for i in order]
    if len(line) > 1:
        draw.line(line, fill=(170, 170, 220), width=1)
    for x, y, label in points:
        px, py = to_px(x, y)
        draw.ellipse([px - 5, py - 5, px + 5, py + 5], fill=(40, 90, 200), outline="black")
        draw.text((px + 8, py - 16), text(label), fill=(20, 20, 20), font=font)
    return np.ascontiguousarray(np.asarray(image, dtype=np.uint8))


# --- the CLI sub-command -------------------------------------------------------------------------------------
def add_sweep_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `sweep` on an argparse sub-parsers object (engine/cli.py calls this)."""
    parser = subparsers.add_parser(
        "sweep", help="train a grid of runs one after another and compare them",
        description="Train one run per grid point (× seeds), each in its own folder under --out, then evaluate "
                    "each (−ELBO, recon, KL, active units, disentanglement scores) and write summary.csv, "
                    "summary.json and rate_distortion.png.")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--preset", help="a preset name (resources/presets/NAME.toml)")
    source.add_argument("--config", help="a run config TOML file")
    parser.add_argument("--grid", action="append", required=True,
                        help="NAME=V1,V2,… (repeat or separate with ';' for several parameters), e.g. beta=1,2,4,8")
    parser.add_argument("--seeds", type=int, default=1, help="seeds per grid point (config seed, +1, …)")
    parser.add_argument("--max-steps", type=int, default=None, help="training steps per run (overrides the config)")
    parser.add_argument("--dataset", default=None, help="dataset spec overriding the config's")
    parser.add_argument("--out", required=True, help="sweep folder (one sub-folder per run)")
    parser.add_argument("--metrics", default="all",
                        help="'all', 'none' or a comma list of beta_vae,factor_vae,mig,dci,sap")
    add_metric_size_arguments(parser)
    parser.add_argument("--metric-seed", type=int, default=0)
    parser.add_argument("--iwae-k", type=int, default=0, help="importance samples for the IWAE-k NLL (0 = skip)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: the config's)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=cli_sweep)
    return parser


def add_metric_size_arguments(parser: argparse.ArgumentParser) -> None:
    """--metric-sizes, --dci-train and --dci-estimator (shared by `sweep` and `eval --metrics`)."""
    parser.add_argument("--metric-sizes", choices=("standard", "quick"), default="standard",
                        help="standard: 10,000 train / 5,000 test points, batches of 64; quick: 1,000 / 500 / 32")
    parser.add_argument("--dci-train", type=int, default=None, metavar="N",
                        help="training points for DCI's gradient-boosted trees (default: all train points)")
    parser.add_argument("--dci-estimator", choices=DCI_ESTIMATORS, default=DCI_ESTIMATORS[0],
                        help="DCI's boosted trees: hist (histogram-based, default) or exact "
                             "(GradientBoostingClassifier, the reference estimator, ~35x slower)")


def metric_sizes_from_args(args: argparse.Namespace) -> MetricSizes:
    """The MetricSizes that `add_metric_size_arguments`' options ask for (ValueError when out of range)."""
    return MetricSizes.named(args.metric_sizes, dci_train_points=args.dci_train, dci_estimator=args.dci_estimator)


def _base_config(args: argparse.Namespace) -> TrainConfig:
    if args.preset:
        try:
            from .presets import load_preset
        except ImportError:
            raise ConfigError("presets are not available in this build; use --config FILE.toml") from None
        return load_preset(args.preset)
    return TrainConfig.load(args.config)


def _metric_names(text: str) -> tuple[str, ...]:
    text = text.strip().lower()
    if text == "all":
        return METRIC_NAMES
    if text in ("none", ""):
        return ()
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in METRIC_NAMES]
    if unknown:
        raise ConfigError(f"unknown metric(s) {', '.join(unknown)}; choose from all, none, {', '.join(METRIC_NAMES)}")
    return names


def cli_sweep(args: argparse.Namespace) -> int:
    """`sweep`: plan, run with a progress bar (Ctrl-C stops after the current step), print the comparison."""
    try:
        base = _base_config(args)
        changes: dict[str, Any] = {}
        if args.dataset:
            changes.update(dataset=args.dataset, fallback=[])
        if args.threads is not None:
            changes["threads"] = args.threads
        if changes:
            base = base.replace(**changes)
        runs = plan_sweep(base, parse_grid(args.grid), args.seeds, args.out, args.max_steps)
        names = _metric_names(args.metrics)
        sizes = metric_sizes_from_args(args)
        runner = SweepRunner(runs, out_dir=args.out, metrics=names, metric_sizes=sizes, metric_seed=args.metric_seed,
                             iwae_k=args.iwae_k)
    except (ConfigError, DatasetError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"sweep: {len(runs)} run(s) of {base.family} on {base.dataset} → {args.out}", file=sys.stderr)
    control = Control()
    bar = None
    if not args.quiet:
        from tqdm import tqdm

        bar = tqdm(total=1000, unit="‰", file=sys.stderr, dynamic_ncols=True, mininterval=0.5)
    done: SweepDone | None = None

    def show(event: SweepProgress) -> None:
        bar.set_description(event.message[:60], refresh=False)
        bar.update(max(0, int(event.fraction * 1000) - bar.n))

    if bar is not None:
        runner.listener = show
    try:
        for event in runner.run(control):
            if isinstance(event, SweepProgress) and bar is not None:
                show(event)
            elif isinstance(event, SweepWarning):
                (bar.write if bar is not None else print)(f"warning: {event.message}")
            elif isinstance(event, RunDone):
                line = _record_line(event.record)
                (bar.write if bar is not None else print)(line)
            elif isinstance(event, SweepDone):
                done = event
    except KeyboardInterrupt:
        control.stop()
        print("interrupted: the sweep stops (finished runs are kept)", file=sys.stderr)
        return 130
    finally:
        if bar is not None:
            bar.close()
    if done is None:
        return 1
    for kind, path in done.files.items():
        print(f"{kind}: {path}")
    failed = [r for r in done.records if r.get("status") == "failed"]
    return 1 if failed or done.reason != "completed" else 0


def _record_line(record: dict[str, Any]) -> str:
    numbers = [f"{k}={record[k]:.4g}" for k in (*ELBO_KEYS, *SCORE_KEYS) if isinstance(record.get(k), float)]
    return f"{record['run']}: {record.get('status')}  " + "  ".join(numbers) + \
        (f"  ({record['error']})" if record.get("error") else "")


def main(argv: list[str] | None = None) -> int:
    """`python -m engine.sweep …` (the same as `python main.py sweep …`)."""
    parser = argparse.ArgumentParser(prog="python -m engine.sweep")
    sub = parser.add_subparsers(dest="command", required=True)
    add_sweep_parser(sub)
    args = parser.parse_args(["sweep", *(sys.argv[1:] if argv is None else argv)])
    return args.handler(args)


if __name__ == "__main__":
    raise SystemExit(main())
