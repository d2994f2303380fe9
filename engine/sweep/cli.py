"""The `sweep` sub-command (`main.py sweep …`, `python -m engine.sweep …`) and the metric-size options it shares with
`eval --metrics`."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..config import TrainConfig
from ..control import Control
from ..data import DatasetError
from ..errors import ConfigError
from ..metrics import DCI_ESTIMATORS, METRIC_NAMES, MetricSizes
from ..scoring import ELBO_KEYS, SCORE_KEYS
from .events import RunDone, SweepDone, SweepProgress, SweepWarning
from .planning import parse_grid, plan_sweep
from .runner import BACKENDS, SweepRunner, make_backend


def add_sweep_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `sweep` on an argparse sub-parsers object (engine/cli.py calls this)."""
    parser = subparsers.add_parser(
        "sweep", help="train a grid of runs (here, in parallel processes, or on a Ray cluster) and compare them",
        description="Train one run per grid point (× seeds), each in its own folder under --out, then evaluate "
                    "each (−ELBO, recon, KL, active units, disentanglement scores) and write summary.csv, "
                    "summary.json and rate_distortion.png. Re-running the same command resumes: runs whose "
                    "result.json is complete are skipped.",
        epilog="examples:\n"
               "  main.py sweep --preset dsprites-beta-vae --grid beta=1,4,16 --seeds 3 --out sweeps/b\n"
               "  main.py sweep --preset dsprites-beta-vae --grid beta=1,4,16 --parallel 2 --out sweeps/b\n"
               "  main.py sweep --preset dsprites-beta-vae --grid beta=1,4,16 --backend ray --address auto "
               "--gpus-per-run 0.25 --out /shared/sweeps/b",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--preset", help="a preset name (resources/presets/NAME.toml)")
    source.add_argument("--config", help="a run config TOML file")
    parser.add_argument("--model-file", metavar="FILE.py[:CLASS]", dest="model_file",
                        help="sweep the model class in your own Python file (docs/your-model.md) instead of the "
                             "config's family")
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
    parser.add_argument("--backend", choices=BACKENDS, default="local",
                        help="local (default): this machine; ray: every run a Ray task (pip install -e '.[cluster]')")
    parser.add_argument("--parallel", type=int, default=1, metavar="K",
                        help="local backend: K runs at a time, each in its own process (default 1: one after another)")
    parser.add_argument("--address", default=None, metavar="ADDR",
                        help="ray backend: a running cluster (auto, HOST:PORT or ray://HOST:10001); default: "
                             "$RAY_ADDRESS, else a new local Ray instance")
    parser.add_argument("--gpus-per-run", type=float, default=0.0, metavar="F",
                        help="ray backend: GPUs per run, fractions allowed (0.25 = four runs share a GPU)")
    parser.add_argument("--cpus-per-run", type=float, default=1.0, metavar="C", help="ray backend: CPUs per run")
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
                        help="DCI's boosted trees: exact (GradientBoostingClassifier, the reference estimator, "
                             "default; one factor per core) or hist (histogram-based, faster, approximate: misreads "
                             "redundant and noisy codes, see docs/metrics.md)")


def metric_sizes_from_args(args: argparse.Namespace) -> MetricSizes:
    """The MetricSizes that `add_metric_size_arguments`' options ask for (ValueError when out of range)."""
    return MetricSizes.named(args.metric_sizes, dci_train_points=args.dci_train, dci_estimator=args.dci_estimator)


def _base_config(args: argparse.Namespace) -> TrainConfig:
    if args.preset:
        try:
            from ..presets import load_preset
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
        if getattr(args, "model_file", None):
            from ..models.user_file import load_model_file

            family = load_model_file(args.model_file).family
            if family != base.family:
                changes.update(family=family, hparams={})
        if changes:
            base = base.replace(**changes)
        runs = plan_sweep(base, parse_grid(args.grid), args.seeds, args.out, args.max_steps)
        names = _metric_names(args.metrics)
        sizes = metric_sizes_from_args(args)
        backend = make_backend(args.backend, args.parallel, args.address, args.gpus_per_run, args.cpus_per_run)
        runner = SweepRunner(runs, out_dir=args.out, metrics=names, metric_sizes=sizes, metric_seed=args.metric_seed,
                             iwae_k=args.iwae_k, backend=backend)
    except (ConfigError, DatasetError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"sweep: {len(runs)} run(s) of {base.family} on {base.dataset} ({backend.describe()}) → {args.out}",
          file=sys.stderr)
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
    except (ConfigError, RuntimeError) as exc:  # no Ray, a bad cluster address, another sweep's run, a dead cluster
        if bar is not None:
            bar.close()
        print(f"error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ConfigError) else 1
    except KeyboardInterrupt:
        control.stop()
        print("interrupted: the sweep stops (finished runs are kept; the same command resumes)", file=sys.stderr)
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
