"""What several models share for a comparison (the Compare tab and `main.py compare` both render it); Qt-free.

Open: `Comparison.open(["example:dsprites-disentangle", "runs/b1", "sweeps/lesson"])` expands sweep folders into their
runs (`expand_specs`), loads each model with `load_entry` (a checkpoint path, a run folder — its `metrics.jsonl`
history and last checkpoint — or `example:NAME`) and loads every dataset once (entries with the same dataset spec
share one `Dataset`). A GUI may also add a live model with `entry_from_model` and `replace` it as newer weights
come. At most MAX_MODELS models.

Every view returns data per entry key, or `Unavailable(reason)` for a model that cannot take part (a VQ-VAE has no
KL bars; a dataset without factors has no factor rows) — never an exception for a model that merely does not fit:

- `default_labels()` / `label(key)`: family + the hyperparameters that differ (`β-TCVAE β=6`, `VAE β=1`);
  `colour(key)`: one RGB tuple per model from PALETTE, kept while the model stays in the comparison.
- `terms()`, `curve(key, term, x)`: logged curves; x = "step", "images" (step × batch size) or "wall" (seconds,
  summed from the logged throughput); test terms are `test/<term>`, the live MIG probe `probe/mig`.
- `hyperparam_table(differences_only)`, `score_table()`: rows per model; seeds of one configuration grouped as
  mean ± std; beside the final scores, the final and best of the logged history terms (`history_scores`).
  Scores come from where the model was made (the examples' manifest, a sweep run's result.json) or from
  `compute_scores(progress, cancel)` (engine.evaluate + engine.metrics; cancellable, off-thread safe).
- `matched_factor_rows(key)`: latent dims ordered by the factor they carry most MI about (MI on a fixed factor
  sample, engine.probe), unmatched dims last. `traversal_cells(base, span, steps)`: the same base images and
  range for every model, rows aligned by factor across models; a model on other data uses its own images.
- `reconstructions(positions)`, `prior_samples(n, seed)` (the same noise seed), `kl_per_dim()`,
  `mi_matrices()` (each on one shared colour scale: its `vmax`), `rate_distortion()` (KL vs recon; runs of
  one sweep joined in the order of their swept value), `csv_table()` (one row per model: hyperparameters, scores).

engine/compare_figure.py draws all of it as one labelled PNG (`comparison_figure`) and the traversals of every model
moving together as GIF frames (`traversal_frames`). Views compute on the calling thread (the GUI calls them off its
thread); entries' models are only read.

Base images are named by *position in the test split* (0 = the first test image) of the first model's dataset;
models on the same dataset use exactly those images (the same dataset indices).
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import CheckpointError, ConfigError
from .run_folder import RunFolder

MAX_MODELS = 6
# One colour per model, six hues apart: Okabe–Ito blue, orange, bluish green and reddish purple, Tableau red and
# brown (no two blues, no orange beside vermilion); readable on the figures' white and the tab's dark background.
PALETTE: tuple[tuple[int, int, int], ...] = ((0, 114, 178), (230, 159, 0), (0, 158, 115), (214, 39, 40),
                                             (204, 121, 167), (156, 117, 95))
X_AXES = ("step", "images", "wall")
FAMILY_SHORT = {"ae": "AE", "vae": "VAE", "beta-vae": "β-VAE", "beta-tcvae": "β-TCVAE", "capacity-vae": "Capacity-VAE",
                "contractive-ae": "CAE", "cvae": "CVAE", "dae": "DAE", "factor-vae": "FactorVAE",
                "fullcov-vae": "Full-cov VAE", "hvae": "HVAE", "iwae": "IWAE", "k-sparse-ae": "k-sparse AE",
                "sparse-ae": "Sparse AE", "vq-vae": "VQ-VAE"}
# Families whose objective weights KL(q‖p) by exactly 1: their β is 1 when compared with a β family.
IMPLICIT_HPARAMS = {family: {"beta": 1.0} for family in ("vae", "cvae", "fullcov-vae", "hvae", "iwae")}
HPARAM_SYMBOLS = {"beta": "β", "gamma": "γ", "alpha": "α", "lam": "λ", "rho": "ρ", "c_max": "C_max",
                  "latent_dim": "D"}
TRAINING_KEYS = ("lr", "batch_size", "weight_decay")
LABEL_HPARAMS = 3  # at most this many differing hyperparameters in a default label
SCORE_NAMES = ("neg_elbo", "recon", "kl", "active_units", "mig", "dci_disentanglement", "dci_completeness",
               "dci_informativeness", "sap", "factor_vae", "beta_vae")
LOWER_IS_BETTER = frozenset({"neg_elbo", "recon"})
# Logged history terms the table shows twice, as `<term> final` (last logged) and `<term> best`: the min of a loss,
# the max of the live MIG probe.
HISTORY_SCORES = {"test/total": "min", "test/recon": "min", "probe/mig": "max"}
HISTORY_TITLES = {"test/total": "test loss", "test/recon": "test recon", "probe/mig": "MIG probe"}
SCORE_TITLES = {"neg_elbo": "−ELBO", "recon": "recon", "kl": "KL", "active_units": "active", "mig": "MIG",
                "dci_disentanglement": "DCI-D", "dci_completeness": "DCI-C", "dci_informativeness": "DCI-I",
                "sap": "SAP", "factor_vae": "FactorVAE", "beta_vae": "BetaVAE"}
MATCH_MIN_MI = 0.2  # a latent counts as carrying a factor when I(z_j; v_k)/H(v_k) ≥ this
INACTIVE_KL_NATS = 0.01
STATS_IMAGES = 500  # test images behind KL per dim and the traversal bounds
MI_POINTS = 1000  # factor rows behind the MI matrix that matches latents to factors (20 bins, as the probe)
ELBO_IMAGES = 2000  # test images behind on-demand −ELBO / recon / KL


def score_title(name: str) -> str:
    """A score column's short title (the app's table and the figure's): `−ELBO`, `MIG`, `test loss final`,
    `test loss best (min)` — a history term's best is the min of a loss, the max of the MIG probe."""
    term, _, which = name.rpartition(" ")
    if term in HISTORY_SCORES and which == "final":
        return f"{HISTORY_TITLES[term]} final"
    if term in HISTORY_SCORES and which == "best":
        return f"{HISTORY_TITLES[term]} best ({HISTORY_SCORES[term]})"
    return SCORE_TITLES.get(name, name)


class CompareError(ConfigError):
    """A comparison cannot be opened as asked (too many models, a path that is neither model nor run)."""


@dataclass(frozen=True)
class Unavailable:
    """Why a model cannot take part in one view (shown in its place)."""

    reason: str


@dataclass
class CompareEntry:
    """One model of a comparison (model in eval mode; `dataset` shared with the entries on the same data)."""

    key: str  # unique within the comparison
    spec: str  # what was opened: a checkpoint path, run folder or example:NAME ("live" for a running session)
    model: Any  # engine.models.ModelBase
    family: str
    hyperparams: dict[str, Any]  # the family's hyperparameters + lr, batch size, weight decay
    dataset_name: str  # the dataset spec
    dataset: Any  # engine.data.Dataset
    test_indices: torch.Tensor  # dataset indices of its test split
    history: list[dict[str, Any]]
    step: int
    seed: int
    batch_size: int
    scores: dict[str, float] = field(default_factory=dict)
    score_source: str = ""  # where `scores` came from (manifest, result.json, computed here)
    swept: dict[str, Any] = field(default_factory=dict)  # grid values when the model is a sweep run
    sweep: str = ""  # the sweep folder it belongs to, if any
    mi: tuple[np.ndarray, tuple[str, ...]] | None = None  # D×K normalised MI and factor names, once measured
    tag: str = ""  # shown after the default label: "live" while it follows a running session, then its run's name

    @property
    def family_name(self) -> str:
        return FAMILY_SHORT.get(self.family, self.family)

    @property
    def config_key(self) -> tuple:
        """What makes two entries the same configuration (all but the seed): grouped as mean ± std."""
        return (self.family, self.dataset_name, json.dumps(self.hyperparams, sort_keys=True, default=str))


# --- opening -------------------------------------------------------------------------------------------------
def _is_run_folder(path: Path) -> bool:
    return RunFolder(path).has_checkpoint()


def _sweep_runs(path: Path) -> list[Path] | None:
    """The run folders of a sweep folder in plan order (None when `path` is not a sweep folder)."""
    plan = path / "sweep.json"
    folders: list[Path] = []
    if plan.is_file():
        try:
            doc = json.loads(plan.read_text(encoding="utf-8"))
            for run in doc.get("runs", []):
                folder = path / Path(str(run.get("folder") or run.get("run", ""))).name
                if _is_run_folder(folder):
                    folders.append(folder)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError, TypeError):
            folders = []
    if not folders:
        folders = sorted(p for p in path.iterdir() if p.is_dir() and _is_run_folder(p)) if path.is_dir() else []
    if not folders and not plan.is_file():
        return None
    return folders


def expand_specs(specs: Iterable[str]) -> list[str]:
    """Each spec as it is, except a sweep folder, which becomes its run folders (in plan order)."""
    out: list[str] = []
    for spec in specs:
        text = str(spec)
        path = Path(text).expanduser()
        if not text.startswith("example:") and path.is_dir() and not _is_run_folder(path):
            runs = _sweep_runs(path)
            if runs is None:
                raise CompareError(f"{text}: a folder, but neither a run folder (checkpoints/last.safetensors) nor a "
                                   "sweep folder (sweep.json)")
            if not runs:
                raise CompareError(f"{text}: a sweep folder without a finished run yet")
            out.extend(str(p) for p in runs)
        else:
            out.append(text)
    return out


class DatasetCache:
    """Datasets by spec, each loaded once; test splits by (spec, fraction, seed). Thread-safe."""

    def __init__(self) -> None:
        self._datasets: dict[str, Any] = {}
        self._splits: dict[tuple[str, float, int], torch.Tensor] = {}
        self._lock = threading.Lock()

    def get(self, spec: str) -> Any:
        from .data import load_dataset

        with self._lock:
            if spec not in self._datasets:
                self._datasets[spec] = load_dataset(spec)
            return self._datasets[spec]

    def test_indices(self, spec: str, fraction: float, seed: int) -> torch.Tensor:
        dataset = self.get(spec)
        with self._lock:
            key = (spec, float(fraction), int(seed))
            if key not in self._splits:
                train, test = dataset.split(fraction, seed)
                self._splits[key] = test if len(test) else train
            return self._splits[key]


def _hyperparams(family: str, hparams: dict[str, Any], config: Any) -> dict[str, Any]:
    out = dict(hparams)
    out.pop("dataset_size", None)  # filled from the data at training time, not a choice
    for key in TRAINING_KEYS:
        out[key] = getattr(config, key)
    return out


def entry_from_model(key: str, spec: str, model: Any, config: Any, dataset: Any, test_indices: torch.Tensor,
                     history: list[dict[str, Any]] | None = None, step: int = 0) -> CompareEntry:
    """An entry for a model already in memory (the app's running session): weights are used as they are."""
    return CompareEntry(key=key, spec=spec, model=model, family=model.family,
                        hyperparams=_hyperparams(model.family, model.hparams, config),
                        dataset_name=str(getattr(dataset, "spec", "") or config.dataset), dataset=dataset,
                        test_indices=test_indices, history=list(history or []), step=int(step),
                        seed=int(config.seed), batch_size=int(config.batch_size))


def load_entry(spec: str, device: str = "cpu", datasets: DatasetCache | None = None,
               key: str | None = None) -> CompareEntry:
    """A checkpoint path, a run folder or `example:NAME` → a CompareEntry (CheckpointError/DatasetError if not)."""
    from .checkpoint import load_checkpoint
    from .examples import EXAMPLE_PREFIX, find_example

    datasets = datasets or DatasetCache()
    text = str(spec)
    path = Path(text).expanduser()
    run_dir: Path | None = None
    if not text.startswith(EXAMPLE_PREFIX) and path.is_dir():
        if not _is_run_folder(path):
            raise CompareError(f"{text}: not a run folder (no checkpoints/last.safetensors)")
        run_dir = path
        path = RunFolder(path).last_checkpoint
    loaded = load_checkpoint(text if text.startswith(EXAMPLE_PREFIX) else path, device)
    dataset = datasets.get(loaded.dataset_spec)
    if list(dataset.shape) != list(loaded.meta["dataset"]["shape"]):
        raise CheckpointError(f"{text}: trained on images of shape {loaded.meta['dataset']['shape']}, but "
                              f"{loaded.dataset_spec} now gives {list(dataset.shape)}")
    test = datasets.test_indices(loaded.dataset_spec, loaded.config.test_fraction, loaded.config.seed)
    history = loaded.history
    if run_dir is not None:
        history = RunFolder(run_dir).read_metrics() or history
    entry = entry_from_model(key or text, text, loaded.model, loaded.config, dataset, test, history, loaded.step)
    entry.dataset_name = loaded.dataset_spec
    if text.startswith(EXAMPLE_PREFIX):
        example = find_example(text[len(EXAMPLE_PREFIX):])
        entry.scores = {k: float(v) for k, v in example.scores.items() if isinstance(v, int | float)}
        entry.score_source = "examples manifest"
    elif run_dir is not None:
        _read_sweep_record(entry, run_dir)
    return entry


def _read_sweep_record(entry: CompareEntry, run_dir: Path) -> None:
    """A sweep run's scores (result.json) and grid values (the sweep's sweep.json)."""
    try:
        record = json.loads((run_dir / "result.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        record = None
    if isinstance(record, dict) and record.get("status") == "completed":
        entry.scores = {k: float(record[k]) for k in SCORE_NAMES
                        if isinstance(record.get(k), int | float) and not isinstance(record.get(k), bool)}
        entry.score_source = "sweep result.json"
        mi, names = record.get("mi_matrix"), record.get("factor_names")
        if isinstance(mi, list) and isinstance(names, list) and mi:
            try:
                matrix = np.asarray(mi, dtype=np.float64)
                if matrix.ndim == 2 and matrix.shape == (entry.model.latent_dim, len(names)):
                    entry.mi = (matrix, tuple(str(n) for n in names))
            except (TypeError, ValueError):
                pass
    try:
        plan = json.loads((run_dir.parent / "sweep.json").read_text(encoding="utf-8"))
        for run in plan.get("runs", []):
            if Path(str(run.get("folder", ""))).name == run_dir.name or run.get("run") == run_dir.name:
                entry.swept = {k: v for k, v in run.items() if k not in ("run", "seed", "folder")}
                entry.sweep = str(run_dir.parent)
                break
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError, TypeError):
        pass


# --- the comparison ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Curve:
    x: np.ndarray
    y: np.ndarray
    x_title: str


@dataclass(frozen=True)
class Table:
    columns: list[str]
    rows: list[list[Any]]  # rows[i][0] is the model's label (the frozen name column)
    keys: list[list[str]]  # the entry keys behind each row (several when seeds are grouped)


@dataclass(frozen=True)
class FactorRow:
    dim: int
    factor: str  # "" when the latent carries no factor
    mi: float  # its normalised MI with that factor (0 when unmatched)
    matched: bool


@dataclass(frozen=True)
class TraversalCells:
    """One model's traversal: rows × columns of decoded images, one row per latent (aligned by factor)."""

    cells: np.ndarray  # uint8 rows×cols×H×W or rows×cols×H×W×3 (an empty row is mid-grey)
    row_labels: list[str]
    dimmed: list[bool]
    values: np.ndarray  # the column values (latent values, or data percentiles for autoencoders)
    col_labels: list[str]
    base_images: np.ndarray  # uint8 n×C×H×W: the base image(s) traversed (the first is drawn)
    note: str = ""  # e.g. "its own data: digits"


@dataclass(frozen=True)
class ImagePair:
    inputs: np.ndarray  # uint8 n×C×H×W
    outputs: np.ndarray  # uint8 n×C×H×W
    note: str = ""


@dataclass(frozen=True)
class SharedScale:
    """Per-model arrays drawn on one colour (or bar) scale 0…vmax."""

    values: dict[str, np.ndarray | Unavailable]
    vmax: float
    factor_names: dict[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class RatePoint:
    key: str
    kl: float
    recon: float


@dataclass(frozen=True)
class RateDistortion:
    points: list[RatePoint]
    lines: list[list[str]]  # keys joined in order of their swept value
    unavailable: dict[str, Unavailable]


def _label_values(entry: CompareEntry) -> dict[str, Any]:
    """The hyperparameters a label may name: those the family uses with its settings (a broadcast decoder's width
    only when the decoder is the broadcast one), β = 1 for the families whose KL weight is 1."""
    from .models import model_class

    values = {**IMPLICIT_HPARAMS.get(entry.family, {}), **entry.hyperparams}
    try:
        spec = {h.name: h for h in model_class(entry.family).all_hparams()}
    except ConfigError:
        return values
    for name, h in spec.items():
        if h.applies_when is not None and str(values.get(h.applies_when[0])) != str(h.applies_when[1]):
            values.pop(name, None)
    return values


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _labels_conditional(entry: CompareEntry, indices: torch.Tensor) -> torch.Tensor | None:
    if not entry.model.is_conditional:
        return None
    labels = entry.dataset.labels_at(indices)
    if labels is None:
        raise ConfigError(f"{entry.family} is conditional, but {entry.dataset_name} has no labels")
    return labels


class Comparison:
    """Up to MAX_MODELS entries with stable colours and labels; views are computed on request (any thread)."""

    def __init__(self, entries: Iterable[CompareEntry] = (), datasets: DatasetCache | None = None) -> None:
        self.datasets = datasets or DatasetCache()
        self.entries: list[CompareEntry] = []
        self._colours: dict[str, int] = {}
        self._labels: dict[str, str] = {}
        self._stats: dict[str, Any] = {}
        self._lock = threading.RLock()
        for entry in entries:
            self.add(entry)

    # --- membership ------------------------------------------------------------------------------------------
    @classmethod
    def open(cls, specs: Iterable[str], device: str = "cpu",
             progress: Callable[[int, int, str], None] | None = None,
             cancel: Callable[[], bool] | None = None) -> Comparison:
        """Expand and load every spec (sweep folders become their runs); CompareError past MAX_MODELS."""
        expanded = expand_specs(specs)
        if not expanded:
            raise CompareError("give at least one model to compare")
        if len(expanded) > MAX_MODELS:
            raise CompareError(f"{len(expanded)} models to compare (sweep folders count each run); at most "
                               f"{MAX_MODELS} fit side by side")
        comparison = cls()
        for i, spec in enumerate(expanded):
            if cancel is not None and cancel():
                break
            if progress is not None:
                progress(i, len(expanded), f"loading {spec}")
            comparison.add(load_entry(spec, device, comparison.datasets, key=comparison._free_key(spec)))
        if progress is not None:
            progress(len(expanded), len(expanded), "loaded")
        return comparison

    def _free_key(self, spec: str) -> str:
        keys = {e.key for e in self.entries}
        key, n = spec, 2
        while key in keys:
            key, n = f"{spec} #{n}", n + 1
        return key

    def add(self, entry: CompareEntry) -> CompareEntry:
        with self._lock:
            if len(self.entries) >= MAX_MODELS:
                raise CompareError(f"a comparison holds at most {MAX_MODELS} models; remove one first")
            if any(e.key == entry.key for e in self.entries):
                raise CompareError(f"{entry.key} is already in the comparison")
            used = set(self._colours.values())
            self._colours[entry.key] = next(i for i in range(len(PALETTE)) if i not in used)
            self.entries.append(entry)
            return entry

    def replace(self, entry: CompareEntry) -> CompareEntry:
        """Put newer weights (and history) in place of the entry with the same key: its colour and label stay; what
        was measured on the old weights (latent statistics, MI) is dropped."""
        with self._lock:
            index = next((i for i, e in enumerate(self.entries) if e.key == entry.key), None)
            if index is None:
                raise CompareError(f"{entry.key} is not in the comparison")
            self.entries[index] = entry
            self._stats.pop(entry.key, None)
            return entry

    def remove(self, key: str) -> None:
        with self._lock:
            self.entries = [e for e in self.entries if e.key != key]
            self._colours.pop(key, None)
            self._labels.pop(key, None)
            self._stats.pop(key, None)

    def entry(self, key: str) -> CompareEntry:
        for e in self.entries:
            if e.key == key:
                return e
        raise KeyError(key)

    @property
    def keys(self) -> list[str]:
        return [e.key for e in self.entries]

    # --- identity: colours and labels --------------------------------------------------------------------------
    def colour(self, key: str) -> tuple[int, int, int]:
        return PALETTE[self._colours[key]]

    def default_labels(self) -> dict[str, str]:
        """Family + the hyperparameters that differ between models (β for VAEs counts as 1), the objective's
        weights first, at most LABEL_HPARAMS of them, the dataset when it differs; the seed when still equal."""
        values = [_label_values(e) for e in self.entries]
        names = list(dict.fromkeys(k for v in values for k in v))
        differing = [n for n in names if len([v[n] for v in values if n in v]) >= 2
                     and len({json.dumps(v[n], default=str) for v in values if n in v}) > 1]
        differing.sort(key=lambda n: list(HPARAM_SYMBOLS).index(n) if n in HPARAM_SYMBOLS else len(HPARAM_SYMBOLS))
        labels = {}
        many_datasets = len({e.dataset_name for e in self.entries}) > 1
        for entry, vals in zip(self.entries, values, strict=True):
            parts = [entry.family_name]
            if many_datasets:
                parts.append(entry.dataset_name.split("?")[0])
            parts += [f"{HPARAM_SYMBOLS.get(n, n)}={_format_value(vals[n])}" for n in differing if n in vals]
            labels[entry.key] = " ".join(parts[:LABEL_HPARAMS + 1 + many_datasets])
            if entry.tag:
                labels[entry.key] += f" ({entry.tag})"
        counts: dict[str, int] = {}
        for text in labels.values():
            counts[text] = counts.get(text, 0) + 1
        for entry in self.entries:
            if counts[labels[entry.key]] > 1:
                labels[entry.key] += f" s{entry.seed}"
        seen: dict[str, int] = {}
        for entry in self.entries:  # still equal (the same model twice): number them
            text = labels[entry.key]
            seen[text] = seen.get(text, 0) + 1
            if seen[text] > 1:
                labels[entry.key] = f"{text} ({seen[text]})"
        return labels

    def set_label(self, key: str, text: str) -> None:
        """A user's own label ('' returns to the default)."""
        text = " ".join(str(text).split())
        if text:
            self._labels[key] = text[:60]
        else:
            self._labels.pop(key, None)

    def label(self, key: str) -> str:
        return self._labels.get(key) or self.default_labels()[key]

    def labels(self) -> dict[str, str]:
        defaults = self.default_labels()
        return {k: self._labels.get(k) or defaults[k] for k in self.keys}

    # --- curves ----------------------------------------------------------------------------------------------
    def terms(self) -> list[str]:
        """Every logged term of any model: step terms, then `test/<term>`, then `probe/mig`."""
        step_terms: dict[str, None] = {}
        test_terms: dict[str, None] = {}
        probe = False
        for e in self.entries:
            for r in e.history:
                kind = r.get("kind")
                if kind == "step" and isinstance(r.get("terms"), dict):
                    step_terms.update(dict.fromkeys(r["terms"]))
                elif kind == "epoch" and isinstance(r.get("test"), dict):
                    test_terms.update(dict.fromkeys(f"test/{k}" for k in r["test"]))
                elif kind == "probe":
                    probe = True
        return [*step_terms, *test_terms, *(["probe/mig"] if probe else [])]

    def curve(self, key: str, term: str, x: str = "step") -> Curve | Unavailable:
        """One model's logged `term` against step, images seen or wall seconds (estimated from throughput)."""
        if x not in X_AXES:
            raise ValueError(f"x must be one of {', '.join(X_AXES)}, got {x!r}")
        entry = self.entry(key)
        steps = [r for r in entry.history if r.get("kind") == "step" and isinstance(r.get("step"), int)]
        points: list[tuple[int, float]] = []
        if term.startswith("test/"):
            name = term[5:]
            points = [(int(r["step"]), r["test"][name]) for r in entry.history
                      if r.get("kind") == "epoch" and isinstance(r.get("test"), dict) and name in r["test"]]
        elif term == "probe/mig":
            points = [(int(r["step"]), r["mig"]) for r in entry.history if r.get("kind") == "probe" and "mig" in r]
        else:
            points = [(int(r["step"]), r["terms"][term]) for r in steps
                      if isinstance(r.get("terms"), dict) and term in r["terms"]]
        points = [(s, float(v)) for s, v in points if isinstance(v, int | float) and math.isfinite(float(v))]
        if not points:
            where = "no history" if not entry.history else f"{term} was not logged"
            return Unavailable(f"{self.label(key)}: {where}")
        xs = np.array([p[0] for p in points], dtype=np.float64)
        ys = np.array([p[1] for p in points], dtype=np.float64)
        if x == "images":
            return Curve(xs * entry.batch_size, ys, "images seen")
        if x == "wall":
            clock = self._wall_clock(entry, steps)
            if clock is None:
                return Unavailable(f"{self.label(key)}: no throughput logged, so no wall time")
            return Curve(np.interp(xs, clock[0], clock[1]), ys, "training seconds (from logged throughput)")
        return Curve(xs, ys, "step")

    @staticmethod
    def _wall_clock(entry: CompareEntry, steps: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray] | None:
        """(step, seconds) pairs: Σ Δstep · batch / (images per second) over the logged step records."""
        pairs = [(int(r["step"]), float(r.get("samples_per_s") or 0.0)) for r in steps]
        if not pairs or not any(rate > 0 for _, rate in pairs):
            return None
        seconds, previous, out_s, out_t = 0.0, 0, [], []
        for step, rate in pairs:
            if rate > 0:
                seconds += (step - previous) * entry.batch_size / rate
            previous = step
            out_s.append(step)
            out_t.append(seconds)
        return np.asarray(out_s, dtype=np.float64), np.asarray(out_t, dtype=np.float64)

    # --- tables ----------------------------------------------------------------------------------------------
    def hyperparam_table(self, differences_only: bool = False) -> Table:
        """Rows per model: family, dataset, step, seed and every hyperparameter ('—' where a family has none; β = 1
        for the families whose KL weight is fixed at 1)."""
        values = [{**IMPLICIT_HPARAMS.get(e.family, {}), **e.hyperparams} for e in self.entries]
        names = list(dict.fromkeys(k for v in values for k in v))
        columns = ["model", "family", "dataset", "step", "seed", *names]
        rows = [[self.label(e.key), e.family_name, e.dataset_name, e.step, e.seed, *(v.get(n, "—") for n in names)]
                for e, v in zip(self.entries, values, strict=True)]
        if differences_only and len(rows) > 1:
            keep = [0] + [c for c in range(1, len(columns))
                          if len({json.dumps(r[c], default=str) for r in rows}) > 1]
            columns = [columns[c] for c in keep]
            rows = [[r[c] for c in keep] for r in rows]
        return Table(columns, rows, [[e.key] for e in self.entries])

    def history_scores(self, key: str) -> dict[str, float]:
        """`<term> final` (last logged value) and `<term> best` (min of a loss, max of the MIG probe: HISTORY_SCORES)
        of the logged history terms this model has."""
        out: dict[str, float] = {}
        for term, best in HISTORY_SCORES.items():
            curve = self.curve(key, term)
            if isinstance(curve, Unavailable):
                continue
            out[f"{term} final"] = float(curve.y[-1])
            out[f"{term} best"] = float(curve.y.min() if best == "min" else curve.y.max())
        return out

    def all_scores(self) -> dict[str, dict[str, float]]:
        """Per model: its final scores and the final and best of its logged history terms."""
        return {e.key: {**e.scores, **self.history_scores(e.key)} for e in self.entries}

    def _score_columns(self, scores: dict[str, dict[str, float]]) -> list[str]:
        """The score names any model has: SCORE_NAMES, then the history terms' final/best, then the rest sorted."""
        history = [f"{t} {w}" for t in HISTORY_SCORES for w in ("final", "best")]
        names = [n for n in (*SCORE_NAMES, *history) if any(n in scores.get(e.key, {}) for e in self.entries)]
        return names + sorted({n for e in self.entries for n in scores.get(e.key, {})} - set(names))

    def score_table(self, scores: dict[str, dict[str, float]] | None = None, group_seeds: bool = True) -> Table:
        """Rows per configuration: every score any model has (its final scores, then the final and best of its
        logged history terms); cells are floats, or 'mean ± std (n)' strings when seeds of one configuration are
        grouped, or '' where a model has no such score."""
        scores = scores or self.all_scores()
        names = self._score_columns(scores)
        groups: dict[tuple, list[CompareEntry]] = {}
        for e in self.entries:
            groups.setdefault(e.config_key if group_seeds else (e.key,), []).append(e)
        columns = ["model", "seeds", *names]
        rows, keys = [], []
        for members in groups.values():
            label = self.label(members[0].key)
            if len(members) > 1:
                label = label.rsplit(" s", 1)[0] if label.rsplit(" s", 1)[-1].isdigit() else label
            row: list[Any] = [label, len(members)]
            for n in names:
                values = [float(scores[m.key][n]) for m in members if n in scores.get(m.key, {})]
                if not values:
                    row.append("")
                elif len(values) == 1:
                    row.append(values[0])
                else:
                    row.append(f"{np.mean(values):.4g} ± {np.std(values, ddof=1):.2g} ({len(values)})")
            rows.append(row)
            keys.append([m.key for m in members])
        return Table(columns, rows, keys)

    # --- latent statistics (cached per entry) ------------------------------------------------------------------
    def _latent_stats(self, entry: CompareEntry):
        from . import explore

        with self._lock:
            cached = self._stats.get(entry.key)
        if cached is None:
            cached = explore.latent_stats(entry.model, entry.dataset, entry.test_indices, n=STATS_IMAGES)
            with self._lock:
                self._stats[entry.key] = cached
        return cached

    def mi_unavailable(self, entry: CompareEntry) -> Unavailable | None:
        from .probe import unavailable_reason

        if entry.mi is not None:
            return None
        reason = unavailable_reason(entry.dataset, entry.model)
        if reason is None:
            return None
        if entry.dataset is None or getattr(entry.dataset, "factor_spec", None) is None:
            return Unavailable(f"{entry.dataset_name.split('?')[0]} has no ground-truth factors: no MI matrix "
                               "(dSprites has them)")
        return Unavailable(reason.replace("no disentanglement curve: ", "no MI matrix: "))

    def mutual_information(self, key: str) -> tuple[np.ndarray, tuple[str, ...]] | Unavailable:
        """D×K normalised MI I(z_j; v_k)/H(v_k) of the posterior means on a fixed factor sample (engine.probe)."""
        entry = self.entry(key)
        if entry.mi is not None:
            return entry.mi
        missing = self.mi_unavailable(entry)
        if missing is not None:
            return missing
        from .probe import FactorProbe

        probe_key = f"probe:{entry.dataset_name}"
        with self._lock:
            probe = self._stats.get(probe_key)
        if probe is None:
            probe = FactorProbe(entry.dataset, seed=0, points=MI_POINTS)
            with self._lock:
                self._stats[probe_key] = probe
        with torch.inference_mode():
            result = probe.measure(entry.model, entry.step)
        entry.mi = (np.asarray(result.mi, dtype=np.float64), tuple(result.factor_names))
        return entry.mi

    def matched_factor_rows(self, key: str) -> list[FactorRow] | Unavailable:
        """Latent dims ordered by the factor they carry most MI about (dataset factor order, then MI); dims
        that carry no factor (MI < MATCH_MIN_MI) or are inactive come last, by KL (or variance)."""
        entry = self.entry(key)
        if entry.model.latent_kind != "continuous":
            return Unavailable(f"{entry.family_name} has a discrete code: no latent rows to match")
        mi = self.mutual_information(key)
        if isinstance(mi, Unavailable):
            return mi
        matrix, names = mi
        stats = self._latent_stats(entry)
        active = stats.active(INACTIVE_KL_NATS)
        score = stats.kl_per_dim if stats.kl_per_dim is not None else stats.variance
        matched, unmatched = [], []
        for j in range(matrix.shape[0]):
            k = int(np.argmax(matrix[j]))
            value = float(matrix[j, k])
            if value >= MATCH_MIN_MI and bool(active[j]):
                matched.append(FactorRow(j, names[k], value, True))
            else:
                unmatched.append(FactorRow(j, "", 0.0, False))
        matched.sort(key=lambda r: (names.index(r.factor), -r.mi))
        unmatched.sort(key=lambda r: -float(score[r.dim]))
        return matched + unmatched

    # --- images ----------------------------------------------------------------------------------------------
    def _reference(self) -> CompareEntry:
        if not self.entries:
            raise CompareError("the comparison is empty")
        return self.entries[0]

    def base_indices(self, entry: CompareEntry, positions: Iterable[int]) -> tuple[torch.Tensor, str]:
        """Dataset indices of test positions: the reference model's when `entry` shares its data, else its own."""
        reference = self._reference()
        same = entry.dataset_name == reference.dataset_name
        test = reference.test_indices if same else entry.test_indices
        pos = [int(p) for p in positions]
        if not pos:
            raise ConfigError("choose at least one base image")
        bad = [p for p in pos if not 0 <= p < len(test)]
        if bad:
            raise ConfigError(f"base image {bad[0]} is outside the test split (0…{len(test) - 1})")
        note = "" if same else f"its own data: {entry.dataset_name}"
        return test[torch.as_tensor(pos, dtype=torch.long)], note

    def traversal_cells(self, base_positions: Iterable[int] = (0,), span: float = 3.0, steps: int = 9,
                        max_rows: int = 10) -> dict[str, TraversalCells | Unavailable]:
        """Traversals of every model around the same base image, values linspace(−span, span, steps) for variational
        models (1st–99th data percentile per latent for autoencoders). Rows: factors any model matched, in the
        dataset's factor order (a model without a latent for that factor gets a grey row), then each model's other
        latents (dimmed when inactive or unmatched), at most `max_rows` rows per model."""
        from . import explore
        from .imaging import to_uint8

        if not 2 <= int(steps) <= 64:
            raise ConfigError(f"steps must be in 2…64, got {steps}")
        if not span > 0:
            raise ConfigError(f"the traversal range must be positive, got {span}")
        positions = list(base_positions)
        rows_by_key: dict[str, list[FactorRow] | Unavailable] = {}
        out: dict[str, TraversalCells | Unavailable] = {}
        for entry in self.entries:
            if entry.model.latent_kind != "continuous":
                out[entry.key] = Unavailable(f"{entry.family_name} has a discrete code: no latent traversal (its "
                                             "codebook traversal is in the Traversal tab)")
                continue
            rows_by_key[entry.key] = self.matched_factor_rows(entry.key)
        factor_order = self._shared_factor_order(rows_by_key)
        values = np.linspace(-float(span), float(span), int(steps), dtype=np.float32)
        for entry in self.entries:
            if entry.key in out:
                continue
            try:
                indices, note = self.base_indices(entry, positions)
            except ConfigError as exc:
                out[entry.key] = Unavailable(str(exc))
                continue
            stats = self._latent_stats(entry)
            matched = rows_by_key[entry.key]
            layout = self._row_layout(entry, stats, matched, factor_order, max_rows)
            if isinstance(matched, Unavailable):
                note = "; ".join(p for p in (note, f"rows by KL ({matched.reason.split(': no ')[0]})") if p)
            labels = _labels_conditional(entry, indices[:1])
            base_images = entry.dataset.images_at(indices)
            base_z = explore.encode_means(entry.model, base_images[:1], labels)
            dims = [row.dim for row in layout if row is not None]
            if entry.model.is_variational:
                row_values = np.tile(values, (len(dims), 1))
                col_labels = [f"{v:+.1f}" for v in values]
            else:
                row_values = explore.traversal_values(stats, dims, steps)
                col_labels = [f"{p:.0f}%" for p in np.linspace(1, 99, int(steps))]
            images = explore.traversal_images(entry.model, base_z, dims, row_values,
                                              None if labels is None else labels[:1])
            decoded = to_uint8(images).reshape(len(dims), int(steps), *images.shape[1:])
            c, h, w = decoded.shape[2:]
            cells = np.full((len(layout), int(steps), c, h, w), 96, dtype=np.uint8)
            row_labels, dimmed = [], []
            filled = 0
            active = stats.active(INACTIVE_KL_NATS)
            for r, row in enumerate(layout):
                if row is None:
                    row_labels.append(f"{factor_order[r]}: no latent")
                    dimmed.append(True)
                    continue
                cells[r] = decoded[filled]
                filled += 1
                kl = (f"{stats.kl_per_dim[row.dim]:.2f} nats" if stats.kl_per_dim is not None
                      else f"var {stats.variance[row.dim]:.2g}")
                row_labels.append(" · ".join(p for p in (row.factor, f"z{row.dim}", kl) if p))
                dimmed.append(not row.matched and not (isinstance(matched, Unavailable) and bool(active[row.dim])))
            cells = cells[:, :, 0] if c == 1 else np.ascontiguousarray(cells.transpose(0, 1, 3, 4, 2))
            out[entry.key] = TraversalCells(np.ascontiguousarray(cells), row_labels, dimmed, values.copy()
                                            if entry.model.is_variational else row_values.copy(), col_labels,
                                            base_images.cpu().numpy(), note)
        return {k: out[k] for k in self.keys}

    def _shared_factor_order(self, rows_by_key: dict[str, Any]) -> list[str]:
        """The factors any model matched, in the dataset's factor order."""
        position: dict[str, int] = {}
        for key, rows in rows_by_key.items():
            if not isinstance(rows, list):
                continue
            names = self.entry(key).mi[1] if self.entry(key).mi is not None else ()
            for row in rows:
                if row.matched:
                    rank = names.index(row.factor) if row.factor in names else len(names)
                    position[row.factor] = min(position.get(row.factor, rank), rank)
        return sorted(position, key=lambda f: (position[f], f))

    @staticmethod
    def _row_layout(entry: CompareEntry, stats, matched: list[FactorRow] | Unavailable, factor_order: list[str],
                    max_rows: int) -> list[FactorRow | None]:
        """One slot per shared factor (this model's best latent for it, or None), then its other latents."""
        if isinstance(matched, Unavailable):
            order = [int(d) for d in stats.order]
            return [FactorRow(d, "", 0.0, False) for d in order[:max_rows]]
        best: dict[str, FactorRow] = {}
        for row in matched:
            if row.matched and (row.factor not in best or row.mi > best[row.factor].mi):
                best[row.factor] = row
        used = {row.dim for row in best.values()}
        layout: list[FactorRow | None] = [best.get(f) for f in factor_order]
        layout += [row for row in matched if row.dim not in used]
        return layout[:max(max_rows, len(factor_order))]

    def reconstructions(self, positions: Iterable[int] = range(8)) -> dict[str, ImagePair | Unavailable]:
        """The same test inputs (by position) and each model's deterministic reconstruction."""
        from . import explore
        from .imaging import to_uint8

        out: dict[str, ImagePair | Unavailable] = {}
        for entry in self.entries:
            try:
                indices, note = self.base_indices(entry, positions)
                images = entry.dataset.images_at(indices)
                recon = explore.reconstructions(entry.model, images, _labels_conditional(entry, indices))
            except ConfigError as exc:
                out[entry.key] = Unavailable(str(exc))
                continue
            out[entry.key] = ImagePair(images.cpu().numpy(), to_uint8(recon), note)
        return out

    def prior_samples(self, n: int = 8, seed: int = 0) -> dict[str, np.ndarray | Unavailable]:
        """n prior samples per model from the same noise seed (conditional models: classes 0, 1, … in turn)."""
        from . import explore
        from .imaging import to_uint8

        out: dict[str, np.ndarray | Unavailable] = {}
        for entry in self.entries:
            model = entry.model
            if not model.can_sample:
                out[entry.key] = Unavailable(f"{entry.family_name} is not generative: it has no prior to sample")
                continue
            labels = [i % model.num_classes for i in range(n)] if model.is_conditional else None
            out[entry.key] = to_uint8(explore.sample_images(model, n, labels, seed=seed))
        return out

    def kl_per_dim(self) -> SharedScale:
        """KL(q(z_j|x) ‖ N(0,1)) per latent (nats, mean over test images), all on one scale 0…vmax."""
        values: dict[str, np.ndarray | Unavailable] = {}
        for entry in self.entries:
            if not entry.model.is_variational:
                values[entry.key] = Unavailable(f"{entry.family_name} is not variational: no KL per dimension")
            elif entry.model.latent_kind != "continuous":
                values[entry.key] = Unavailable(f"{entry.family_name} has a discrete code: no KL per dimension")
            else:
                kl = self._latent_stats(entry).kl_per_dim
                values[entry.key] = (Unavailable(f"{entry.family_name} reports no KL per dimension") if kl is None
                                     else np.asarray(kl, dtype=np.float64))
        arrays = [v for v in values.values() if isinstance(v, np.ndarray) and v.size]
        vmax = max((float(v.max()) for v in arrays), default=1.0)
        return SharedScale(values, vmax if vmax > 0 else 1.0)

    def mi_matrices(self) -> SharedScale:
        """The D×K normalised MI of every model, on one colour scale 0…vmax (vmax ≤ 1)."""
        values: dict[str, np.ndarray | Unavailable] = {}
        names: dict[str, tuple[str, ...]] = {}
        for entry in self.entries:
            mi = self.mutual_information(entry.key)
            if isinstance(mi, Unavailable):
                values[entry.key] = mi
            else:
                values[entry.key], names[entry.key] = mi
        arrays = [v for v in values.values() if isinstance(v, np.ndarray) and v.size]
        vmax = max((float(v.max()) for v in arrays), default=1.0)
        return SharedScale(values, vmax if vmax > 0 else 1.0, names)

    def rate_distortion(self, compute_missing: bool = True) -> RateDistortion:
        """KL (rate) and reconstruction (distortion) per model; the runs of one sweep that differ only in one
        swept value are joined in that value's order. Missing numbers are measured on ELBO_IMAGES test images."""
        points, unavailable = [], {}
        for entry in self.entries:
            if not entry.model.is_variational or entry.model.latent_kind != "continuous":
                unavailable[entry.key] = Unavailable(f"{entry.family_name} has no KL term: not on the "
                                                     "rate–distortion plane")
                continue
            if compute_missing and not {"kl", "recon"} <= set(entry.scores):
                self.compute_scores([entry.key], metrics=())
            kl, recon = entry.scores.get("kl"), entry.scores.get("recon")
            if kl is None or recon is None:
                unavailable[entry.key] = Unavailable(f"{self.label(entry.key)}: no KL/recon measured yet")
                continue
            points.append(RatePoint(entry.key, float(kl), float(recon)))
        lines: dict[tuple, list[tuple[Any, str]]] = {}
        on_plane = {p.key for p in points}
        for entry in self.entries:
            if entry.key not in on_plane or not entry.swept:
                continue
            for name, value in entry.swept.items():
                others = tuple(sorted((k, json.dumps(v)) for k, v in entry.swept.items() if k != name))
                lines.setdefault((entry.sweep, name, others, entry.seed), []).append((value, entry.key))
        joined = [[key for _, key in sorted(members, key=lambda m: (str(type(m[0])), m[0]))]
                  for members in lines.values() if len(members) > 1]
        return RateDistortion(points, joined, unavailable)

    def csv_table(self) -> Table:
        """One row per model: label, spec, family, dataset, step, seed, every hyperparameter, every score (with the
        final and best of the logged history terms), and where the scores came from (what `main.py compare --csv`
        writes)."""
        values = [{**IMPLICIT_HPARAMS.get(e.family, {}), **e.hyperparams} for e in self.entries]
        names = list(dict.fromkeys(k for v in values for k in v))
        every = self.all_scores()
        scores = self._score_columns(every)
        swept = list(dict.fromkeys(k for e in self.entries for k in e.swept))
        columns = ["model", "spec", "family", "dataset", "step", "seed", *names, *scores, "score_source",
                   *(f"swept_{k}" for k in swept)]
        rows = [[self.label(e.key), e.spec, e.family, e.dataset_name, e.step, e.seed,
                 *(v.get(n, "") for n in names), *(every[e.key].get(n, "") for n in scores), e.score_source,
                 *(e.swept.get(k, "") for k in swept)] for e, v in zip(self.entries, values, strict=True)]
        return Table(columns, rows, [[e.key] for e in self.entries])

    # --- scores on demand ------------------------------------------------------------------------------------
    def score_unavailable(self, key: str) -> Unavailable | None:
        """Why the disentanglement scores cannot be computed for this model (None: they can)."""
        entry = self.entry(key)
        if entry.model.is_conditional:
            return Unavailable(f"{entry.family_name} is conditional (its code depends on the label): no "
                               "disentanglement scores")
        if entry.model.latent_kind != "continuous":
            return Unavailable(f"{entry.family_name} has a discrete code: no disentanglement scores")
        if not entry.dataset.has_factors:
            return Unavailable(f"{entry.dataset_name} has no ground-truth factors: no disentanglement scores")
        return None

    def compute_scores(self, keys: Iterable[str] | None = None, metrics: Iterable[str] | None = None,
                       sizes: Any = None, elbo_images: int = ELBO_IMAGES, seed: int = 0,
                       progress: Callable[[float, str], None] | None = None,
                       cancel: Callable[[], bool] | None = None, recompute: bool = False) -> dict[str, dict]:
        """−ELBO, recon, KL, active units (engine.evaluate) and the disentanglement scores (engine.metrics, quick
        sizes unless `sizes`) for the models that lack them; merged into each entry's `scores`. progress(fraction,
        message); raises engine.evaluate.EvaluationCancelled or engine.metrics.MetricsCancelled when cancelled
        (scores finished before that are kept)."""
        from .evaluate import evaluate
        from .metrics import METRIC_NAMES, MetricSizes, compute_metrics
        from .scoring import model_representation

        chosen = [self.entry(k) for k in (keys if keys is not None else self.keys)]
        names = tuple(METRIC_NAMES if metrics is None else metrics)
        sizes = sizes or MetricSizes.quick()
        todo = []
        for entry in chosen:
            need_elbo = recompute or "recon" not in entry.scores or (entry.model.is_variational
                                                                     and "kl" not in entry.scores)
            wanted = () if self.score_unavailable(entry.key) is not None else names
            need_metrics = tuple(n for n in wanted if recompute or not any(s.startswith(n) for s in entry.scores))
            if need_elbo or need_metrics:
                todo.append((entry, need_elbo, need_metrics))
        results: dict[str, dict] = {}
        for i, (entry, need_elbo, need_metrics) in enumerate(todo):
            share = 1.0 / len(todo)

            def report(fraction: float, message: str, i: int = i, share: float = share,
                       label: str = self.label(entry.key)) -> None:
                if progress is not None:
                    progress(min(1.0, (i + fraction) * share), f"{label}: {message}")

            new: dict[str, float] = {}
            elbo_share = 0.15 if need_metrics else 1.0
            if need_elbo:
                indices = entry.test_indices[:max(1, int(elbo_images))]
                result = evaluate(entry.model, entry.dataset, indices, iwae_k=0, seed=seed, cancel=cancel,
                                  progress=lambda done, total, r=report, s=elbo_share: r(s * done / total,
                                                                                          "−ELBO"))
                for name in ("neg_elbo", "recon", "kl", "active_units"):
                    if result.get(name) is not None:
                        new[name] = float(result[name])
            if need_metrics:
                scores = compute_metrics(
                    model_representation(entry.model, entry.dataset), entry.dataset, need_metrics, seed, sizes,
                    progress=lambda f, m, r=report, s=elbo_share: r(s + (1 - s) * f, m), cancel=cancel)
                new.update({k: float(v) for k, v in scores.items() if k in SCORE_NAMES})
                entry.mi = (np.asarray(scores["mi_matrix"], dtype=np.float64), tuple(scores["factor_names"]))
            with self._lock:
                entry.scores.update(new)
                source = f"computed here ({sizes.train_points:,} metric points)" if need_metrics else "computed here"
                entry.score_source = f"{entry.score_source} + {source}" if entry.score_source else source
            results[entry.key] = new
        if progress is not None:
            progress(1.0, "scores done")
        return results
