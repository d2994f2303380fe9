"""Hyperparameter sweeps: a grid of training runs, each in its own folder, then evaluated and compared.

`plan_sweep(config, parse_grid("beta=1,2,4,8"), seeds=2, out_dir=...)` lists the runs (the Cartesian product of
the grid × seeds); `SweepRunner(runs, backend=...).run(control)` trains them and yields frozen events (progress of
each run, one record per finished run, the end). Backends: `LocalBackend()` one run after another in this process
(the default), `LocalBackend(parallel=K)` K at a time in spawned processes, `RayBackend(address)` every run a Ray
task; `run_job` is the one body all of them execute. Each record holds −ELBO = recon + KL (β = 1, whatever β
trained with), its two terms, active units, the IWAE-k NLL when the family has importance weights, the five
disentanglement scores (when the dataset has ground-truth factors) and the run's traversal image (both computed
by engine/scoring.py, as every evaluation is). `write_summary` writes the comparison: summary.csv, summary.json and
the rate–distortion plane (KL vs reconstruction) as a PNG.
Resumable: a run whose result.json is complete (same training config) is skipped when the sweep is run again.
The same `Control` as training: `stop()` ends the runs in flight at their next step and skips the rest.

The rooms: planning.py (grid → runs), events.py, job.py (one run: train, evaluate, score), backend_local.py,
backend_ray.py, runner.py (SweepRunner, make_backend), summary.py (summary files, rate–distortion figure), cli.py.
"""

from .backend_local import MAX_PARALLEL, LocalBackend
from .backend_ray import RayBackend, SweepChannel
from .cli import add_metric_size_arguments, add_sweep_parser, cli_sweep, main, metric_sizes_from_args
from .events import RunDone, SweepDone, SweepEvent, SweepProgress, SweepWarning
from .job import RESULT_FILE, RunJob, completed_record, run_fraction, run_job
from .planning import TRAINING_GRID_KEYS, SweepRun, parse_grid, plan_sweep, run_name
from .runner import BACKENDS, SweepRunner, make_backend
from .summary import (
    load_summary,
    point_label,
    rate_distortion_figure,
    rate_distortion_points,
    summary_columns,
    write_summary,
)

__all__ = [
    "BACKENDS", "MAX_PARALLEL", "RESULT_FILE", "TRAINING_GRID_KEYS", "LocalBackend", "RayBackend", "RunDone", "RunJob",
    "SweepChannel", "SweepDone", "SweepEvent", "SweepProgress", "SweepRun", "SweepRunner", "SweepWarning",
    "add_metric_size_arguments", "add_sweep_parser", "cli_sweep", "completed_record", "load_summary", "main",
    "make_backend", "metric_sizes_from_args", "parse_grid", "plan_sweep", "point_label", "rate_distortion_figure",
    "rate_distortion_points", "run_fraction", "run_job", "run_name", "summary_columns", "write_summary",
]
