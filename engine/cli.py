"""The headless CLI: `python main.py <command>` (datasets, models, presets, train, eval, sample, traverse, interpolate,
sweep, compare).

Errors end the program with a non-zero status and ONE line on stderr (`error: …`), never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

PROG = "latent-explorer"


class CliError(Exception):
    """A usage problem found after parsing (reported as one `error:` line, exit status 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line instead of argparse's usage block
        print(f"error: {message} (see `{self.prog} --help`)", file=sys.stderr)
        raise SystemExit(2)


def _formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32, width=100)


def build_parser(command: str | None = "sweep") -> argparse.ArgumentParser:
    """The CLI's parser. `command`: the sub-command about to run; the sweep module (torch, scikit-learn) is
    imported only for the commands that take its options, so `main.py --help` answers in well under a second."""
    light = command not in ("sweep", "eval")
    if light:
        add_metric_size_arguments, add_sweep_parser = _no_arguments, _sweep_stub
    else:
        from .sweep import add_metric_size_arguments, add_sweep_parser

    parser = _Parser(prog=PROG, formatter_class=_formatter,
                     description="Train autoencoders and VAEs and explore their latent spaces.\n"
                                 "Run without a command to open the app.",
                     epilog="examples:\n"
                            "  main.py train --preset mnist-vae --out runs/mnist-vae\n"
                            "  main.py train --model beta-vae --dataset 'dsprites?subset=20000' --set beta=4 "
                            "--max-steps 2000 --out runs/b4\n"
                            "  main.py eval runs/mnist-vae/checkpoints/last.safetensors --iwae-k 1000\n"
                            "  main.py traverse runs/b4/checkpoints/last.safetensors --out traversal.gif")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("datasets", help="list the datasets and whether they are on this machine",
                       description="List every dataset: embedded, found on this machine, or missing (with how "
                                   "to get it).", formatter_class=_formatter)
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = sub.add_parser("models", help="list the model families with their hyperparameters",
                       description="Every family with its objective and hyperparameters (default, range, live).",
                       formatter_class=_formatter)
    p.add_argument("family", nargs="?", help="show one family only")
    p.add_argument("--model-file", metavar="FILE.py[:CLASS]", dest="model_file",
                   help="show the model class in your own Python file (it runs; docs/your-model.md)")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = sub.add_parser("presets", help="list the presets (resources/presets/*.toml)",
                       description="List the presets; --show NAME prints one as TOML.", formatter_class=_formatter)
    p.add_argument("--show", metavar="NAME", help="print this preset's TOML")

    p = sub.add_parser("train", help="train a model (Ctrl+C stops cleanly and saves)", formatter_class=_formatter,
                       description="Train a model and write a run folder (config.toml, metrics.jsonl, metrics.csv, "
                                   "checkpoints/, previews/).\nCtrl+C stops after the current step and writes a "
                                   "final checkpoint; a second Ctrl+C aborts.",
                       epilog="examples:\n  main.py train --preset digits-ae --out runs/ae\n"
                              "  main.py train --model vae --dataset digits --set latent_dim=2 --epochs 20 "
                              "--out runs/vae2\n  main.py train --config my_run.toml --out runs/mine")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--preset", metavar="NAME", help="start from a preset (see `presets`)")
    source.add_argument("--config", metavar="FILE", help="start from a TOML file in the preset format")
    p.add_argument("--model", metavar="FAMILY", help="model family (see `models`)")
    p.add_argument("--model-file", metavar="FILE.py[:CLASS]", dest="model_file",
                   help="train the model class in your own Python file (docs/your-model.md; `new-model` writes a "
                        "starter); with --resume: the file the checkpoint's model came from")
    p.add_argument("--dataset", metavar="SPEC", help="dataset spec, e.g. digits, mnist, 'dsprites?subset=20000', "
                                                     "or a path")
    p.add_argument("--set", metavar="KEY=VALUE", action="append", default=[], dest="sets",
                   help="set a hyperparameter of the family (repeatable), e.g. --set beta=4")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=int, metavar="N", help="train for N epochs")
    length.add_argument("--max-steps", type=int, metavar="N", help="train for N optimiser steps")
    p.add_argument("--batch-size", type=int, metavar="B")
    p.add_argument("--lr", type=float, metavar="LR", help="Adam learning rate")
    p.add_argument("--device", metavar="D", help="auto (default; cuda:$LOCAL_RANK under torchrun), cpu, cuda, cuda:N "
                                                 "or mps")
    p.add_argument("--seed", type=int, metavar="S")
    p.add_argument("--threads", type=int, metavar="T", help="torch threads (0 = torch's default)")
    p.add_argument("--test-split", metavar="F|N", dest="test_split",
                   help="held-out test images: a fraction (0.1 or 10%%) or a count (40); 0 = none. A non-empty split "
                        "is raised to min(32, a fifth of the images) so that test scores mean something")
    p.add_argument("--checkpoint-every", type=int, metavar="N", help="also write a checkpoint every N steps")
    p.add_argument("--compile", nargs="?", const="default", metavar="MODE",
                   choices=("default", "reduce-overhead", "max-autotune"),
                   help="torch.compile the loss (slow first start); MODE: default, reduce-overhead (CUDA graphs) "
                        "or max-autotune")
    p.add_argument("--precision", choices=("fp32", "bf16"), help="fp32 (default; TF32 matmuls on CUDA) or bf16 "
                                                                 "(autocast)")
    p.add_argument("--deterministic", action="store_true", help="deterministic kernels (exact repeat and resume "
                                                                "on CUDA; slower)")
    p.add_argument("--memory-format", choices=("auto", "channels_last", "contiguous"), dest="memory_format",
                   help="layout of conv weights and batches: auto (default; channels_last on CUDA), channels_last or "
                        "contiguous")
    p.add_argument("--metrics-every", type=int, metavar="N", help="pull the loss terms every N steps (0 = auto: "
                                                                  "1 on a CPU, 25 on a GPU)")
    p.add_argument("--probe-every", type=float, metavar="S", dest="probe_every",
                   help="score MIG on a fixed factor sample every S s of training (datasets with factors; 0 = off)")
    p.add_argument("--resume", metavar="CKPT", help="continue this checkpoint (with --epochs/--max-steps as the "
                                                    "new total length)")
    p.add_argument("--out", metavar="DIR", required=True, help="run folder to write")
    p.add_argument("--quiet", action="store_true", help="no progress bar (epoch lines only)")

    p = sub.add_parser("eval", help="evaluate a checkpoint on its test split", formatter_class=_formatter,
                       description="Test-set −ELBO (recon + KL), KL per dimension, active units and the IWAE-k NLL, "
                                   "in nats per image; reconstruction error for non-variational models.")
    p.add_argument("checkpoint", metavar="CKPT")
    p.add_argument("--iwae-k", type=int, default=1000, metavar="K", help="importance samples (0 = skip; default "
                                                                         "1000)")
    p.add_argument("--iwae-subset", type=int, default=500, metavar="N", help="test images for the IWAE estimate "
                                                                             "(default 500)")
    p.add_argument("--batch", type=int, default=256, metavar="B", help="images per batch for the ELBO pass")
    p.add_argument("--metrics", metavar="NAMES", help="disentanglement scores on datasets with factors: 'all' or "
                                                      "a comma list of beta_vae,factor_vae,mig,dci,sap")
    add_metric_size_arguments(p)
    p.add_argument("--seed", type=int, default=0, metavar="S")
    p.add_argument("--device", default="cpu", metavar="D")
    p.add_argument("--json", action="store_true", help="print one JSON object (for scripts)")
    p.add_argument("--model-file", metavar="FILE.py[:CLASS]", dest="model_file",
                   help="run this Python model file to rebuild a checkpoint of a model from your own file "
                        "(docs/your-model.md); never run unless given")

    p = sub.add_parser("sample", help="prior samples as a PNG grid", formatter_class=_formatter,
                       description="Draw N images from the model's prior (generative families).")
    p.add_argument("checkpoint", metavar="CKPT")
    p.add_argument("--out", required=True, metavar="FILE.png")
    p.add_argument("--n", type=int, default=64, metavar="N")
    p.add_argument("--label", type=int, metavar="Y", help="class to condition on (conditional models)")
    p.add_argument("--seed", type=int, default=0, metavar="S")
    p.add_argument("--cols", type=int, default=8, metavar="C")
    p.add_argument("--model-file", metavar="FILE.py[:CLASS]", dest="model_file",
                   help="run this Python model file to rebuild a checkpoint of a model from your own file "
                        "(docs/your-model.md); never run unless given")

    p = sub.add_parser("traverse", help="latent traversal as a PNG grid or animated GIF", formatter_class=_formatter,
                       description="Vary one latent dimension at a time around a base code: rows = dims "
                                   "(by KL, largest first), columns = values.")
    p.add_argument("checkpoint", metavar="CKPT")
    p.add_argument("--out", required=True, metavar="FILE.png|FILE.gif")
    p.add_argument("--dims", metavar="D,D,…", help="latent dims to traverse (default: the 10 with most KL)")
    p.add_argument("--steps", type=int, default=11, metavar="N")
    p.add_argument("--range", type=float, dest="radius", metavar="R",
                   help="traverse ±R around 0 (default: ±3 prior std, or the data's range for autoencoders)")
    p.add_argument("--base", default="0", metavar="index|prior",
                   help="base code: a test-image index (default 0) or 'prior' (the prior mean)")
    p.add_argument("--cell-size", type=int, default=64, metavar="PX", dest="cell_size",
                   help="height of each image in the labelled figure, 8…1024 pixels (default 64)")
    p.add_argument("--model-file", metavar="FILE.py[:CLASS]", dest="model_file",
                   help="run this Python model file to rebuild a checkpoint of a model from your own file "
                        "(docs/your-model.md); never run unless given")

    p = sub.add_parser("interpolate", help="decode the latent path between two test images",
                       formatter_class=_formatter, description="Encode test images I and J and decode the path "
                                                               "between their codes.")
    p.add_argument("checkpoint", metavar="CKPT")
    p.add_argument("--out", required=True, metavar="FILE.png")
    p.add_argument("--from", dest="start", type=int, default=0, metavar="I", help="test-image index")
    p.add_argument("--to", dest="end", type=int, default=1, metavar="J", help="test-image index")
    p.add_argument("--steps", type=int, default=10, metavar="N")
    p.add_argument("--mode", choices=("lerp", "slerp"), default="lerp")
    p.add_argument("--model-file", metavar="FILE.py[:CLASS]", dest="model_file",
                   help="run this Python model file to rebuild a checkpoint of a model from your own file "
                        "(docs/your-model.md); never run unless given")

    p = sub.add_parser("new-model", help="write a commented starter model file to edit and train",
                       formatter_class=_formatter,
                       description="Write a small convolutional VAE for 64×64 images as a Python file that trains as "
                                   "it is (docs/your-model.md explains the contract).",
                       epilog="example:\n  main.py new-model my_vae.py\n"
                              "  main.py train --model-file my_vae.py --dataset 'dsprites?subset=20000' "
                              "--max-steps 2000 --out runs/mine")
    p.add_argument("path", metavar="FILE.py")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")

    p = sub.add_parser("compare", help="compare models side by side in one labelled figure (and a CSV)",
                       formatter_class=_formatter,
                       description="Up to 6 models side by side in one PNG: training curves, hyperparameters and "
                                   "scores,\ntraversals of the same test image with rows matched to factors, "
                                   "reconstructions, prior\nsamples, KL per latent, MI heatmaps on one colour "
                                   "scale and the rate–distortion plane.\n--csv writes one row per model "
                                   "(hyperparameters and scores).",
                       epilog="examples:\n"
                              "  main.py compare example:dsprites-disentangle example:dsprites-vae --out c.png "
                              "--csv c.csv\n"
                              "  main.py compare sweeps/beta-lesson --views traversals,mi,rd --out lesson.png\n"
                              "  main.py compare runs/a runs/b/checkpoints/last.safetensors --labels A B "
                              "--metrics all --out ab.png")
    p.add_argument("models", nargs="+", metavar="MODEL",
                   help="a checkpoint, a run folder, a sweep folder (all its runs) or example:NAME")
    p.add_argument("--out", required=True, metavar="FILE.png")
    p.add_argument("--csv", metavar="FILE.csv", help="also write one row per model: hyperparameters and scores")
    p.add_argument("--views", default="all", metavar="V,V,…",
                   help="all (default) or a comma list of curves,table,traversals,recon,kl,mi,rd")
    p.add_argument("--labels", nargs="+", metavar="LABEL", help="one label per model, in order (default: the "
                                                                "family and the hyperparameters that differ)")
    p.add_argument("--metrics", default="none", metavar="NAMES",
                   help="compute the disentanglement scores a model lacks: none (default), all or a comma list "
                        "of beta_vae,factor_vae,mig,dci,sap (−ELBO, recon and KL are always measured when missing)")
    p.add_argument("--metric-sizes", choices=("quick", "standard"), default="quick",
                   help="quick (default): 1,000 / 500 points; standard: 10,000 / 5,000")
    p.add_argument("--terms", metavar="T,T,…", help="logged terms the curves show, one plot each (default "
                                                    "recon,kl; e.g. total,test/recon,probe/mig)")
    p.add_argument("--x", default="step", choices=("step", "images", "wall"),
                   help="the curves' x axis: step (default), images seen or wall time (from logged throughput)")
    p.add_argument("--log-y", action="store_true", dest="log_y",
                   help="the curves' y axis on a log scale (default: log only for a curve whose values span more "
                        "than 20×)")
    p.add_argument("--base", type=int, default=0, metavar="I", help="test image traversed (default 0)")
    p.add_argument("--range", type=float, default=3.0, dest="span", metavar="R",
                   help="traverse ±R prior standard deviations (default 3)")
    p.add_argument("--steps", type=int, default=7, metavar="N", help="traversal columns (default 7)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="noise seed of the prior samples and scores")
    p.add_argument("--device", default="cpu", metavar="D")
    p.add_argument("--model-file", metavar="FILE.py[:CLASS]", dest="model_files", action="append", default=[],
                   help="run this Python model file first, so checkpoints of a model from your own file can be "
                        "compared (repeat for several files; docs/your-model.md)")

    add_sweep_parser(sub)
    return parser


def _no_arguments(parser: argparse.ArgumentParser) -> None:
    """Stands in for options of commands that are not about to run (see build_parser)."""


def _sweep_stub(subparsers: Any) -> argparse.ArgumentParser:
    return subparsers.add_parser("sweep", help="train a grid of runs one after another and compare them")


def _command_of(argv: list[str]) -> str | None:
    return next((arg for arg in argv if not arg.startswith("-")), None)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(_command_of(argv))
    args = parser.parse_args(argv)
    from .errors import CheckpointError, ConfigError, DatasetError
    if args.command is None:
        parser.print_help()
        return 2
    handler = {"datasets": cmd_datasets, "models": cmd_models, "presets": cmd_presets, "train": cmd_train,
               "eval": cmd_eval, "sample": cmd_sample, "traverse": cmd_traverse,
               "interpolate": cmd_interpolate, "sweep": cmd_sweep, "new-model": cmd_new_model,
               "compare": cmd_compare}[args.command]
    try:
        return handler(args)
    except (ConfigError, DatasetError, CheckpointError, CliError) as exc:
        _error(str(exc))
        return 2 if isinstance(exc, CliError | ConfigError) else 1
    except OSError as exc:
        _error(f"{exc.filename + ': ' if exc.filename else ''}{exc.strerror or exc}")
        return 1
    except KeyboardInterrupt:
        _error("interrupted")
        return 130
    except Exception as exc:  # the last line of defence: one line, never a traceback (set LATENT_EXPLORER_DEBUG=1)
        if os.environ.get("LATENT_EXPLORER_DEBUG"):
            raise
        _error(f"unexpected {type(exc).__name__}: {exc}")
        return 1


def cmd_sweep(args: argparse.Namespace) -> int:
    """`sweep`, then the comparison of its completed runs as `compare.png` + `compare.csv` in the sweep folder."""
    from .sweep import cli_sweep

    status = cli_sweep(args)
    if status in (0, 1) and Path(args.out).is_dir():
        _compare_sweep(Path(args.out))
    return status


def _compare_sweep(folder: Path) -> None:
    """The sweep's end: its completed runs side by side (at most 6); a failure here is a warning, not an error."""
    from .compare import MAX_MODELS, Comparison, expand_specs
    from .errors import CheckpointError, ConfigError, DatasetError

    try:
        runs = [p for p in expand_specs([str(folder)]) if _completed(Path(p))]
    except (ConfigError, OSError) as exc:
        print(f"warning: no comparison figure ({exc})", file=sys.stderr)
        return
    if not runs:
        return
    if len(runs) > MAX_MODELS:
        print(f"note: {len(runs)} runs; the comparison figure shows {MAX_MODELS} at most — pick them with "
              f"`main.py compare RUN RUN … --out FILE.png`", file=sys.stderr)
        return
    try:
        comparison = Comparison.open(runs)
        _write_comparison(comparison, folder / "compare.png", folder / "compare.csv")
    except (ConfigError, DatasetError, CheckpointError, OSError, ValueError, RuntimeError) as exc:
        print(f"warning: no comparison figure ({exc})", file=sys.stderr)
        return
    print(f"compare: {folder / 'compare.png'}")
    print(f"compare csv: {folder / 'compare.csv'}")


def _completed(run: Path) -> bool:
    try:
        return json.loads((run / "result.json").read_text(encoding="utf-8")).get("status") == "completed"
    except (OSError, ValueError, AttributeError):
        return False


def _write_comparison(comparison, png: Path, csv_path: Path | None, views=None, **figure) -> None:
    from .compare_figure import VIEWS, comparison_figure
    from .imaging import save_png

    save_png(comparison_figure(comparison, tuple(views or VIEWS), **figure), png)
    if csv_path is not None:
        import csv

        table = comparison.csv_table()
        csv_path.parent.mkdir(parents=True, exist_ok=True)
        with csv_path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(table.columns)
            for row in table.rows:
                writer.writerow([f"{v:.6g}" if isinstance(v, float) else v for v in row])


def cmd_compare(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .compare import Comparison
    from .compare_figure import VIEWS, check_curve_choice

    if not args.out.lower().endswith(".png"):
        raise CliError(f"--out must be a .png file, got {args.out}")
    if args.csv and not args.csv.lower().endswith(".csv"):
        raise CliError(f"--csv must be a .csv file, got {args.csv}")
    views = VIEWS if args.views.strip() == "all" else tuple(v.strip() for v in args.views.split(",") if v.strip())
    unknown = [v for v in views if v not in VIEWS]
    if unknown or not views:
        raise CliError(f"--views: unknown view(s) {', '.join(unknown) or '(none)'}; choose all or from "
                       f"{', '.join(VIEWS)}")
    if not 2 <= args.steps <= 64:
        raise CliError(f"--steps must be in 2…64, got {args.steps}")
    if not args.span > 0:
        raise CliError(f"--range must be positive, got {args.span}")
    metrics = _compare_metric_names(args.metrics)
    if args.model_files:
        from .models.user_file import load_model_file

        for ref in args.model_files:  # the user's explicit choice: a checkpoint never runs a model file on its own
            load_model_file(ref)
    with tqdm(total=len(args.models), unit="model", file=sys.stderr, dynamic_ncols=True, desc="open") as bar:
        def opened(done: int, total: int, message: str) -> None:
            bar.total = total
            bar.update(done - bar.n)

        comparison = Comparison.open(args.models, args.device, progress=opened)
    if args.labels:
        if len(args.labels) != len(comparison.keys):
            raise CliError(f"--labels: {len(args.labels)} label(s) for {len(comparison.keys)} model(s)")
        for key, label in zip(comparison.keys, args.labels, strict=True):
            comparison.set_label(key, label)
    terms = [t.strip() for t in args.terms.split(",") if t.strip()] if args.terms else None
    if "curves" in views:
        try:
            check_curve_choice(comparison, terms, args.x)
        except ValueError as exc:
            raise CliError(f"--terms/--x: {exc}") from None
    test = len(comparison.entries[0].test_indices)
    if not 0 <= args.base < test:
        raise CliError(f"--base must be a test-image index in 0…{test - 1}, got {args.base}")
    from .metrics import MetricSizes

    with tqdm(total=1000, unit="‰", file=sys.stderr, dynamic_ncols=True, desc="scores") as bar:
        def scored(fraction: float, message: str) -> None:
            bar.set_description_str(message[:40], refresh=False)
            bar.update(max(0, round(1000 * fraction) - bar.n))

        comparison.compute_scores(metrics=metrics, sizes=MetricSizes.named(args.metric_sizes), seed=args.seed,
                                  progress=scored)
    _write_comparison(comparison, Path(args.out), Path(args.csv) if args.csv else None, views, base=args.base,
                      span=args.span, steps=args.steps, terms=terms, x=args.x, log_y=True if args.log_y else None)
    for key, label in comparison.labels().items():
        entry = comparison.entry(key)
        numbers = "  ".join(f"{k} {entry.scores[k]:.4g}" for k in ("neg_elbo", "recon", "kl", "mig")
                            if k in entry.scores)
        print(f"{label}: {entry.spec} (step {entry.step:,})  {numbers}")
    print(args.out)
    if args.csv:
        print(args.csv)
    return 0


def _compare_metric_names(text: str) -> tuple[str, ...]:
    from .metrics import METRIC_NAMES

    text = text.strip().lower()
    if text in ("none", ""):
        return ()
    if text == "all":
        return METRIC_NAMES
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in METRIC_NAMES]
    if unknown:
        raise CliError(f"--metrics: unknown metric(s) {', '.join(unknown)}; choose all, none or from "
                       f"{', '.join(METRIC_NAMES)}")
    return names


def _error(message: str) -> None:
    print(f"error: {' '.join(str(message).split())}", file=sys.stderr)


# --- listings --------------------------------------------------------------------------------------------
def cmd_datasets(args: argparse.Namespace) -> int:
    from .data import available_datasets

    rows = available_datasets()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        shape = "×".join(str(s) for s in row.get("shape", []))
        size = f"{row['size']:,}" if isinstance(row.get("size"), int) else "?"
        print(f"{row['name']:<20} {row.get('status', ''):<9} {size:>8} images {shape:<9} {row.get('description', '')}")
        if row.get("status") == "missing" and row.get("hint"):
            print(f"{'':<20} → {row['hint']}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from .models import families, model_class

    chosen = [model_class(args.family)] if args.family else list(families().values())
    if args.model_file:
        from .models.user_file import load_model_file

        chosen = [load_model_file(args.model_file)]
    if args.json:
        print(json.dumps([{"family": cls.family, "title": cls.title, "formula": cls.formula,
                           "variational": cls.is_variational, "conditional": cls.is_conditional,
                           "can_sample": cls.can_sample,
                           "hyperparameters": [{"name": h.name, "type": h.kind.__name__, "default": h.default,
                                                "range": h.range_text(), "live": h.live, "help": h.help}
                                               for h in cls.all_hparams()]} for cls in chosen], indent=2))
        return 0
    for cls in chosen:
        print(f"{cls.family} — {cls.title}")
        print(f"  {cls.formula}")
        for h in cls.all_hparams():
            live = "  (live)" if h.live else ""
            print(f"    {h.name:<16} {h.kind.__name__:<5} default {h.default!s:<9} {h.range_text():<22}"
                  f" {h.help}{live}")
        print()
    return 0


def cmd_presets(args: argparse.Namespace) -> int:
    from .presets import list_presets, load_preset

    if args.show:
        print(load_preset(args.show).to_toml(), end="")
        return 0
    for name, description in list_presets():
        print(f"{name:<24} {description}")
    return 0


# --- train ---------------------------------------------------------------------------------------------------
def _coerce_sets(family: str, sets: list[str]) -> dict[str, Any]:
    from .errors import ConfigError
    from .models import model_class

    spec = {h.name: h for h in model_class(family).all_hparams()}
    out: dict[str, Any] = {}
    for item in sets:
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or not key:
            raise CliError(f"--set expects KEY=VALUE, got {item!r}")
        if key not in spec:
            raise ConfigError(f"unknown hyperparameter {key!r} for {family}; known: {', '.join(spec)}")
        out[key] = spec[key].coerce(value.strip())
    return out


def train_config(args: argparse.Namespace):
    """The TrainConfig the `train` arguments describe (preset/config file, then the explicit options on top)."""
    from .config import TrainConfig
    from .presets import load_preset

    if args.preset:
        config = load_preset(args.preset)
    elif args.config:
        config = TrainConfig.load(args.config)
    else:
        if not (args.model or args.model_file) or not args.dataset:
            raise CliError("give --preset NAME, --config FILE, or both --model FAMILY and --dataset SPEC (or "
                           "--model-file FILE.py and --dataset SPEC)")
        config = TrainConfig(dataset=args.dataset, family=args.model or "vae")
    changes: dict[str, Any] = {"out_dir": args.out}
    family = _model_file_family(args) or args.model
    if family and family != config.family:
        changes["family"] = family
        changes["hparams"] = _network_settings(config.hparams, config.family, family)
        changes["description"] = ""  # the preset's description names its own family
    if args.dataset and (args.preset or args.config):
        changes["dataset"] = args.dataset
        changes["fallback"] = []
    if args.epochs is not None:
        changes["epochs"], changes["max_steps"] = args.epochs, None
    if args.max_steps is not None:
        changes["max_steps"] = args.max_steps
    for option, key in (("batch_size", "batch_size"), ("lr", "lr"), ("device", "device"), ("seed", "seed"),
                        ("threads", "threads"), ("checkpoint_every", "checkpoint_every_steps"),
                        ("probe_every", "probe_every_s"), ("precision", "precision"),
                        ("metrics_every", "metrics_every"), ("memory_format", "memory_format")):
        if getattr(args, option) is not None:
            changes[key] = getattr(args, option)
    changes.update(_run_option_changes(args))
    if getattr(args, "test_split", None) is not None:
        from .data.base import parse_test_split

        changes["test_fraction"], changes["test_count"] = parse_test_split(args.test_split)
    config = config.replace(**changes)
    if args.sets:
        config.hparams.update(_coerce_sets(config.family, args.sets))
    return config


def _network_settings(hparams: dict[str, Any], old_family: str, new_family: str) -> dict[str, Any]:
    """The settings of `hparams` that mean the same in both families — the shared network and likelihood
    (latent_dim, backbone, hidden, decoder, likelihood, σ, …) — so `--preset P --model F` trains F on P's network;
    each family's own terms (β, γ, estimator, …) are dropped, since a name like γ means different things."""
    from .errors import ConfigError
    from .models import model_class
    from .models.base import COMMON_HPARAMS

    def own_names(family: str) -> set[str]:
        try:
            return {h.name for h in model_class(family).hparams_spec}
        except ConfigError:  # unknown here: the session reports it
            return set()

    try:
        new_names = {h.name for h in model_class(new_family).all_hparams()}
    except ConfigError:
        return {}
    shared = new_names & {h.name for h in COMMON_HPARAMS} - own_names(old_family) - own_names(new_family)
    return {k: v for k, v in hparams.items() if k in shared}


def _model_file_family(args: argparse.Namespace) -> str | None:
    """Run the file named by --model-file (the user's explicit choice) and return its family name."""
    if not args.model_file:
        return None
    if args.model:
        raise CliError("give either --model FAMILY or --model-file FILE.py, not both")
    from .models.user_file import load_model_file

    return load_model_file(args.model_file).family


def _run_option_changes(args: argparse.Namespace) -> dict[str, Any]:
    """--compile [MODE] and --deterministic as TrainConfig fields (only when given)."""
    changes: dict[str, Any] = {}
    if args.compile:
        changes.update(compile=True, compile_mode=args.compile)
    if args.deterministic:
        changes["deterministic"] = True
    return changes


def cmd_train(args: argparse.Namespace) -> int:
    """`train`, alone or as one rank of `torchrun --nproc-per-node=N main.py train …` (docs/scale-out.md)."""
    from .distributed import Parallel

    parallel = Parallel.from_environment()  # torchrun: this process is one rank of the run
    try:
        return _train(args, parallel)
    finally:
        parallel.close()


def _train(args: argparse.Namespace, parallel) -> int:
    from tqdm import tqdm

    from .control import Control
    from .events import CheckpointWritten, DisentanglementProbe, EpochSummary, Failed, Finished, StepMetrics, Warning_
    from .run_folder import RunFolder
    from .training import TrainingSession

    writer = parallel.is_writer  # under torchrun only rank 0 prints progress and writes files
    if args.resume:
        if args.preset or args.config or args.model or args.dataset or args.sets:
            raise CliError("--resume continues a checkpoint as it was: only --epochs/--max-steps, --device, "
                           "--threads, --compile, --precision, --deterministic, --memory-format, --metrics-every, "
                           "--model-file and --out may be given with it")
        overrides: dict[str, Any] = {"out_dir": args.out}
        if args.epochs is not None:
            overrides.update(epochs=args.epochs, max_steps=None)
        if args.max_steps is not None:
            overrides["max_steps"] = args.max_steps
        for key, name in (("device", "device"), ("threads", "threads"), ("probe_every", "probe_every_s"),
                          ("precision", "precision"), ("metrics_every", "metrics_every"),
                          ("memory_format", "memory_format")):
            if getattr(args, key) is not None:
                overrides[name] = getattr(args, key)
        overrides.update(_run_option_changes(args))
        session = TrainingSession.from_checkpoint(args.resume, parallel=parallel, process_settings=True,
                                                  model_file=args.model_file, **overrides)
    else:
        session = TrainingSession(train_config(args), parallel=parallel, process_settings=True)
    info = session.info()
    ranks = f" × {info['world_size']} processes" if info["world_size"] > 1 else ""
    if writer:
        for message in session.warnings:
            print(f"warning: {message}", file=sys.stderr)
        for line in (session.dataset.extra.get("skipped") or [])[:1000]:
            print(f"  skipped {line[0]}: {line[1]}", file=sys.stderr)
        if session.config.probe_every_s and session.probe_note:
            print(f"warning: {session.probe_note}", file=sys.stderr)
        print(f"training {info['family']} on {info['dataset']} ({info['train_size']:,} train / {info['test_size']:,} "
              f"test images, {info['parameters']:,} parameters) on {info['device']}{ranks}: "
              f"{info['total_steps']:,} steps of batch {info['batch_size']} → {args.out}", file=sys.stderr)
    control = Control()
    interrupts = {"count": 0}

    def on_sigint(signum, frame):
        interrupts["count"] += 1
        if interrupts["count"] > 1:
            raise KeyboardInterrupt
        control.stop()

    previous = signal.signal(signal.SIGINT, on_sigint)
    bar = tqdm(total=session.total_steps, initial=session.step, unit="step", dynamic_ncols=True, file=sys.stderr,
               disable=args.quiet or not writer, leave=True)
    status = 0
    finished = None
    last_postfix = 0.0
    seen_warnings = set(session.warnings)
    try:
        for event in session.run(control):
            if isinstance(event, StepMetrics):
                bar.update(event.step - bar.n)
                now = time.monotonic()
                if now - last_postfix > 0.5:
                    bar.set_postfix(loss=f"{event.terms.get('total', float('nan')):.3f}",
                                    img_s=f"{event.samples_per_s:,.0f}", refresh=False)
                    last_postfix = now
            elif isinstance(event, EpochSummary) and writer:
                bar.write(_epoch_line(event), file=sys.stderr)
            elif isinstance(event, DisentanglementProbe) and writer:
                bar.write(_probe_line(event), file=sys.stderr)
            elif isinstance(event, Warning_) and writer:
                if event.message not in seen_warnings:
                    bar.write(f"warning: {event.message}", file=sys.stderr)
            elif isinstance(event, CheckpointWritten):
                bar.write(f"checkpoint: {event.path}", file=sys.stderr)
            elif isinstance(event, Failed):
                bar.close()
                _error(f"rank {parallel.rank}: {event.cause}" if parallel.active else event.cause)
                status = 1
            elif isinstance(event, Finished):
                finished = event
            if interrupts["count"] and interrupts.get("told") is None and writer:
                interrupts["told"] = True
                bar.write("stopping after this step and saving (Ctrl+C again aborts)…", file=sys.stderr)
    finally:
        signal.signal(signal.SIGINT, previous)
        bar.close()
    if not writer:
        return status
    if session.history:
        RunFolder(args.out).write_metrics_csv(session.history)
    if finished is not None:
        final = ", ".join(f"{k} {v:.4g}" for k, v in finished.final.items())
        print(f"{finished.reason} at step {finished.step:,} ({final}); run folder: {args.out}")
    return status


def _probe_line(event) -> str:
    """'probe (step 1,200): MIG 0.412 | posX → z3 0.81, posY → z7 0.64' (each factor's best latent)."""
    best = []
    for k, name in enumerate(event.factor_names):
        column = [row[k] for row in event.mi]
        j = max(range(len(column)), key=column.__getitem__)
        best.append(f"{name} → z{j} {column[j]:.2f}")
    return f"probe (step {event.step:,}): MIG {event.mig:.3f} | " + ", ".join(best)


def _epoch_line(event) -> str:
    def fmt(terms: dict[str, float]) -> str:
        keys = [k for k in ("total", "recon", "kl") if k in terms] or list(terms)[:3]
        return " ".join(f"{k} {terms[k]:.4g}" for k in keys)

    line = f"epoch {event.epoch} (step {event.step:,}): train {fmt(event.train)}"
    if event.test:
        line += f" | test {fmt(event.test)}"
    return line


# --- checkpoints: eval, sample, traverse, interpolate -------------------------------------------------------------
def _open(checkpoint: str, device: str = "cpu", model_file: str | None = None):
    """(loaded checkpoint, its dataset, the test indices it was evaluated on); a user's model file runs only when
    given as `model_file` (--model-file)."""
    from .checkpoint import load_checkpoint
    from .data import load_dataset
    from .errors import CheckpointError

    loaded = load_checkpoint(checkpoint, device, model_file=model_file)
    for message in loaded.warnings:
        print(f"warning: {message}", file=sys.stderr)
    dataset = load_dataset(loaded.dataset_spec)
    if list(dataset.shape) != list(loaded.meta["dataset"]["shape"]):
        raise CheckpointError(f"{checkpoint}: trained on images of shape {loaded.meta['dataset']['shape']}, but "
                              f"{loaded.dataset_spec} now gives {list(dataset.shape)}")
    train, test = dataset.split(loaded.config.test_fraction, loaded.config.seed, loaded.config.test_count)
    if len(test) == 0:
        test = train
    return loaded, dataset, test


def cmd_eval(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .device import resolve_device
    from .evaluate import evaluate

    loaded, dataset, test = _open(args.checkpoint, str(resolve_device(args.device)), args.model_file)
    model = loaded.model
    sizes = None
    if args.metrics:
        _check_metrics_possible(model, dataset)
        from .sweep import metric_sizes_from_args

        try:
            sizes = metric_sizes_from_args(args)
        except ValueError as exc:
            raise CliError(str(exc)) from None
    with tqdm(total=len(test), unit="img", file=sys.stderr, dynamic_ncols=True, desc="evaluate",
              disable=args.json and not sys.stderr.isatty()) as bar:
        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        result = evaluate(model, dataset, test, iwae_k=args.iwae_k, iwae_subset=args.iwae_subset, batch=args.batch,
                          progress=progress, seed=args.seed)
    result = {"checkpoint": str(args.checkpoint), "step": loaded.step, "epoch": loaded.epoch,
              "dataset": loaded.dataset_spec, **result}
    if args.metrics:
        result["metrics"] = _disentanglement(model, dataset, args.metrics, args.seed, sizes)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    _print_evaluation(result)
    return 0


def _check_metrics_possible(model, dataset) -> None:
    if not dataset.has_factors:
        raise CliError(f"{dataset.name} has no ground-truth factors: --metrics needs dSprites or a dataset with "
                       "factors")
    if model.latent_kind != "continuous" or model.is_conditional:
        raise CliError(f"--metrics needs an unconditional model with a continuous code ({model.family} is not)")


def _disentanglement(model, dataset, names_text: str, seed: int, sizes) -> dict:
    """The disentanglement scores of engine.metrics (needs ground-truth factors, e.g. dSprites)."""
    from tqdm import tqdm

    from . import explore
    from .metrics import METRIC_NAMES, compute_metrics

    _check_metrics_possible(model, dataset)
    names = METRIC_NAMES if names_text.strip() == "all" else tuple(n.strip() for n in names_text.split(",")
                                                                  if n.strip())

    def represent(factors):
        return explore.encode_means(model, dataset.render_factors(factors))

    with tqdm(total=100, unit="%", file=sys.stderr, dynamic_ncols=True, desc="metrics") as bar:
        def progress(fraction: float, message: str) -> None:
            bar.set_description_str(f"metrics: {message}"[:40], refresh=False)
            bar.update(round(100 * fraction) - bar.n)

        try:
            return compute_metrics(represent, dataset, names=names, seed=seed, sizes=sizes, progress=progress)
        except ValueError as exc:
            raise CliError(str(exc)) from None


def _print_evaluation(r: dict) -> None:
    def nats(value) -> str:
        return "n/a" if value is None else f"{value:.3f} nats/image"

    print(f"checkpoint    {r['checkpoint']} ({r['family']}, step {r['step']:,}, epoch {r['epoch']})")
    print(f"data          {r['dataset']}: {r['images']:,} test images")
    if r["neg_elbo"] is not None:
        print(f"−ELBO         {nats(r['neg_elbo'])}  (recon {r['recon']:.3f} + KL {r['kl']:.3f})")
    elif r.get("kl") is None and r["recon"] is not None:
        print(f"recon error   {nats(r['recon_error_nats'])} (−log p(x|x̂)); squared error {r['sq_error']:.4f} per "
              "image")
    extra = {k: v for k, v in r["terms"].items() if k not in ("total", "recon", "kl")}
    if extra:
        print("loss terms    " + ", ".join(f"{k} {v:.4g}" for k, v in extra.items()))
    if r["iwae_nll"] is not None:
        print(f"NLL (IWAE-{r['iwae_k']}) {nats(r['iwae_nll'])} on {r['iwae_images']:,} images")
    else:
        print(f"NLL (IWAE)    n/a: {r.get('iwae_note', '')}")
    if r.get("active_units") is not None:
        print(f"active units  {r['active_units']} of {len(r['code_variance'])} (Cov_x E_q[z] > "
              f"{r['active_threshold']})")
    if r.get("kl_per_dim"):
        print("KL per dim    " + " ".join(f"{v:.2f}" for v in r["kl_per_dim"]))
    score_prefixes = ("beta_vae", "factor_vae", "mig", "dci_", "sap")
    for name, value in (r.get("metrics") or {}).items():
        if name.startswith(score_prefixes) and isinstance(value, float | int) and not isinstance(value, bool):
            print(f"{name:<13} {value:.4f}")
    for name, reason in ((r.get("metrics") or {}).get("unavailable") or {}).items():
        print(f"{name:<13} n/a: {reason}")


def _save(grid, out: str) -> str:
    from .imaging import save_png

    if not out.lower().endswith(".png"):
        raise CliError(f"--out must be a .png file, got {out}")
    save_png(grid, out)
    return out


def cmd_sample(args: argparse.Namespace) -> int:
    from . import explore
    from .imaging import tile

    loaded, _, _ = _open(args.checkpoint, model_file=args.model_file)
    if args.n < 1 or args.n > 4096:
        raise CliError(f"--n must be in 1…4096, got {args.n}")
    labels = None
    if args.label is not None:
        if not loaded.model.is_conditional:
            raise CliError(f"--label needs a conditional model; {loaded.model.family} is not")
        if not 0 <= args.label < loaded.model.num_classes:
            raise CliError(f"--label must be in 0…{loaded.model.num_classes - 1}, got {args.label}")
        labels = [args.label] * args.n
    elif loaded.model.is_conditional:
        labels = [i % loaded.model.num_classes for i in range(args.n)]  # every class in turn
    images = explore.sample_images(loaded.model, args.n, labels, seed=args.seed)
    print(_save(tile(images, max(1, args.cols)), args.out))
    return 0


def cmd_traverse(args: argparse.Namespace) -> int:
    import numpy as np

    from . import explore
    from .imaging import save_gif

    loaded, dataset, test = _open(args.checkpoint, model_file=args.model_file)
    model = loaded.model
    if args.steps < 2 or args.steps > 64:
        raise CliError(f"--steps must be in 2…64, got {args.steps}")
    stats = explore.latent_stats(model, dataset, test, n=min(1000, len(test)))
    if args.dims:
        try:
            dims = [int(d) for d in args.dims.split(",") if d.strip()]
        except ValueError:
            raise CliError(f"--dims must be comma-separated integers, got {args.dims!r}") from None
    else:
        dims = [int(d) for d in stats.order[:10]]
    if args.radius is not None:
        if not args.radius > 0:
            raise CliError(f"--range must be positive, got {args.radius}")
        values = np.linspace(-args.radius, args.radius, args.steps, dtype=np.float32)
    else:
        values = explore.traversal_values(stats, dims, args.steps)
    label = None
    if args.base == "prior":
        base = np.zeros((1, model.latent_dim), dtype=np.float32)
        if model.is_conditional:
            label = [0]
    else:
        try:
            index = int(args.base)
        except ValueError:
            raise CliError(f"--base must be a test-image index or 'prior', got {args.base!r}") from None
        if not 0 <= index < len(test):
            raise CliError(f"--base index must be in 0…{len(test) - 1} (the test split), got {index}")
        item = test[index:index + 1]
        labels = dataset.labels_at(item) if model.is_conditional else None
        label = None if labels is None else labels.tolist()
        base = explore.encode_means(model, dataset.images_at(item), labels)
    if not 8 <= args.cell_size <= 1024:
        raise CliError(f"--cell-size must be in 8…1024 pixels, got {args.cell_size}")
    factors = _factor_labels(model, dataset, loaded.config.seed, loaded.step, dims)
    figure = {"row_labels": [explore.latent_label(stats, d, f) for d, f in zip(dims, factors, strict=True)],
              "dimmed": [not bool(stats.active()[d]) for d in dims], "cell_size": args.cell_size}
    figure["col_labels"], figure["axis_title"] = explore.traversal_axis(stats, values)
    out = args.out
    if out.lower().endswith(".gif"):
        save_gif(explore.traversal_figure_frames(model, base, dims, values, label, **figure), out)
    else:
        _save(explore.traversal_figure(model, base, dims, values, label, **figure), out)
    print(f"{out} (dims {', '.join(map(str, dims))})")
    return 0


def _factor_labels(model, dataset, seed: int, step: int, dims: list[int]) -> list[str]:
    """Per dim, its best-matching ground-truth factor and normalised MI ('posX 0.62'), or '' without factors."""
    from .probe import FactorProbe, factor_labels, unavailable_reason

    if unavailable_reason(dataset, model) is not None:
        return [""] * len(dims)
    return factor_labels(FactorProbe(dataset, seed).measure(model, step), dims)


def cmd_interpolate(args: argparse.Namespace) -> int:
    from . import explore
    from .imaging import tile

    loaded, dataset, test = _open(args.checkpoint, model_file=args.model_file)
    for name, index in (("--from", args.start), ("--to", args.end)):
        if not 0 <= index < len(test):
            raise CliError(f"{name} must be a test-image index in 0…{len(test) - 1}, got {index}")
    if args.steps < 2 or args.steps > 64:
        raise CliError(f"--steps must be in 2…64, got {args.steps}")
    a, b = test[args.start:args.start + 1], test[args.end:args.end + 1]
    ya = yb = None
    if loaded.model.is_conditional:
        ya, yb = dataset.labels_at(a).tolist(), dataset.labels_at(b).tolist()
    path = explore.interpolate(loaded.model, dataset.images_at(a), dataset.images_at(b), args.steps, args.mode,
                               ya, yb)
    print(_save(tile(path, args.steps), args.out))
    return 0


def cmd_new_model(args: argparse.Namespace) -> int:
    """`new-model FILE.py`: copy the commented starter (resources/templates/starter_model.py) there."""
    from .models.user_file import write_starter

    print(write_starter(args.path, overwrite=args.force))
    print(f"train it: main.py train --model-file {args.path} --dataset 'dsprites?subset=20000' --max-steps 2000 "
          "--out runs/mine", file=sys.stderr)
    return 0
