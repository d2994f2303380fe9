"""Time to a disentangled dSprites code: MIG against seconds of training, contender and reference in one run.

The contender is a preset (default `dsprites-disentangle`, the shipped first-run recipe); the reference is the
β-VAE recipe of disentanglement_lib's study run through our engine (β = 4; conv encoder 32-32-64-64 with stride 2,
FC 256, mirrored decoder; Adam 1e-4; batch 64 — our conv blocks use 4×4 kernels throughout where the study's last
two use 2×2). Both train on the full procedural dSprites (all 737,280 images, nothing held out) for the same
*training* wall time; every `--score-every` seconds of it the clock stops and MIG is scored the engine's way
(disentanglement_lib's definition: posterior means of 10,000 factor draws from a fixed seed, 20 bins, all five
factors, shape included). The FactorVAE score (quick sizes: 1,000 / 500 votes of 32 — the standard 15,000 votes
of 64 images took over 15 minutes for the conv reference on a busy CPU) closes each curve. `--rung` trains the
easier rungs of the ladder instead (position only: squares of one scale and orientation; + scale; full);
`--dataset WORLD` trains both on another factor world (colour/noisy dSprites, xyobject, shapes3d), the contender
being that world's `<world>-disentangle` preset unless `--recipe` names another.

`--steps N` makes the budget N optimiser steps per recipe (scored every `--score-every-steps`) instead of minutes:
on a shared machine wall time says little, a step count says the same everywhere. Steps arrive in the session's
metric events, 25 at a time, so a budget or mark is reached at the first multiple of 25 at or after it.

Last line: RESULT seconds_to_mig_0_2=<s|inf> seconds_to_mig_0_3=<s|inf> mig_end=<x> reference_mig_end=<x> minutes=<m>
(with --steps: RESULT steps_to_mig_0_2=<n|inf> steps_to_mig_0_3=<n|inf> mig_end=<x> reference_mig_end=<x> steps=<n>)
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.config import TrainConfig  # noqa: E402
from engine.data import load_dataset  # noqa: E402
from engine.events import Failed, Finished, StepMetrics  # noqa: E402
from engine.metrics import MetricSizes, compute_metrics  # noqa: E402
from engine.presets import load_preset  # noqa: E402
from engine.scoring import model_representation  # noqa: E402
from engine.training import TrainingSession  # noqa: E402

RUNGS = {
    "position": "dsprites?shape=square&scale=5&orientation=0",
    "scale": "dsprites?shape=square&orientation=0",
    "full": "dsprites",
}
REFERENCE = TrainConfig(
    dataset="dsprites", family="beta-vae", batch_size=64, lr=1e-4,
    hparams={"backbone": "conv", "hidden": 256, "depth": 1, "latent_dim": 10, "beta": 4.0,
             "likelihood": "bernoulli"},
)
MIG_SIZES = MetricSizes(train_points=10_000, test_points=10)
PRESETS = Path(__file__).resolve().parents[1] / "resources" / "presets"


def contender_config(recipe: str) -> TrainConfig:
    """A preset name or a TOML file of the run format."""
    path = Path(recipe)
    return TrainConfig.load(path) if path.suffix == ".toml" and path.exists() else load_preset(recipe)


def score(session: TrainingSession, names: tuple[str, ...] = ("mig",)) -> dict:
    """The engine's disentanglement scores of the session's current weights (seed 0: the same factor draws)."""
    model = session.model
    was_training = model.training
    try:
        represent = model_representation(model, session.dataset)
        result = compute_metrics(represent, session.dataset, names=("mig",), seed=0, sizes=MIG_SIZES)
        if "factor_vae" in names:
            result.update(factor_vae=compute_metrics(represent, session.dataset, names=("factor_vae",), seed=0,
                                                     sizes=MetricSizes.quick())["factor_vae"])
        return result
    finally:
        model.train(was_training)


def train_curve(label: str, config: TrainConfig, seconds: float, score_every: float, log,
                steps: int = 0, score_every_steps: int = 0) -> list[dict]:
    """Train for `seconds` of training wall time, scoring MIG every `score_every` seconds of it — or, with `steps`,
    for that many optimiser steps, scoring every `score_every_steps` (a budget that load cannot change)."""
    session = TrainingSession(config)
    info = session.info()
    log(f"== {label}: {config.family} {config.hparams} batch {config.batch_size} lr {config.lr:g} "
        f"on {info['dataset']} ({info['train_size']} images), {info['parameters']} parameters")
    events = session.run()
    trained, next_score, curve = 0.0, score_every, []
    next_score_step = score_every_steps
    last_terms: dict = {}
    while (session.step < steps) if steps else (trained < seconds):
        began = time.perf_counter()
        event = next(events, None)
        trained += time.perf_counter() - began
        if event is None or isinstance(event, Finished):
            break
        if isinstance(event, Failed):
            raise SystemExit(f"{label} failed: {event.message}")
        if isinstance(event, StepMetrics):
            last_terms = event.terms
        due = (session.step >= next_score_step or session.step >= steps) if steps else \
            (trained >= next_score or trained >= seconds)
        if due:
            next_score += score_every
            next_score_step += score_every_steps
            mig = score(session)["mig"]
            kl = session.last_kl_per_latent
            active = int((kl > 0.1).sum()) if kl is not None else 0
            row = {"seconds": round(trained, 1), "steps": session.step, "mig": round(mig, 4),
                   "steps_per_s": round(session.step / trained, 1), "active": active,
                   "loss": round(float(last_terms.get("total", math.nan)), 2)}
            curve.append(row)
            log(f"  t={row['seconds']:7.1f}s  step {row['steps']:7d}  {row['steps_per_s']:6.1f} steps/s  "
                f"MIG {row['mig']:.3f}  active {active}  loss {row['loss']}")
    events.close()
    end = score(session, ("mig", "factor_vae"))
    curve.append({"seconds": round(trained, 1), "steps": session.step, "mig": round(end["mig"], 4),
                  "factor_vae": round(end["factor_vae"], 4), "final": True})
    log(f"  end: MIG {end['mig']:.3f}  FactorVAE {end['factor_vae']:.3f} after {session.step} steps")
    mi = np.asarray(end["mi_matrix"])
    log("  normalised MI (rows = factors " + ", ".join(end["factor_names"]) + "; columns = latents):")
    for name, row in zip(end["factor_names"], mi.T, strict=True):
        log(f"    {name:>12} " + " ".join(f"{v:4.2f}" for v in row))
    return curve


def first_reaching(curve: list[dict], level: float, key: str = "seconds") -> float:
    return next((row[key] for row in curve if row["mig"] >= level), math.inf)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=15.0, help="training wall time per recipe (default 15)")
    ap.add_argument("--steps", type=int, default=0, help="train each recipe for this many optimiser steps instead "
                    "of --minutes (a budget that machine load does not change; e.g. 7000 ≈ 5 idle minutes of the "
                    "world presets, docs/results.md)")
    ap.add_argument("--score-every-steps", type=int, default=0, help="with --steps: steps between scores "
                    "(default: steps/10)")
    ap.add_argument("--quick", action="store_true", help="a short form (1 minute each) that prints the RESULT line")
    ap.add_argument("--recipe", default=None, help="contender: preset name or run TOML (default: the world's "
                    "<world>-disentangle preset, else dsprites-disentangle)")
    ap.add_argument("--rung", choices=sorted(RUNGS), default="full", help="dataset of the ladder (default full)")
    ap.add_argument("--dataset", default=None, help="another factor world instead of the dSprites ladder, e.g. "
                    "shapes3d, color-dsprites, noisy-dsprites, xyobject (both recipes train on it)")
    ap.add_argument("--score-every", type=float, default=0.0, help="seconds of training between scores "
                    "(default: minutes·6, i.e. ten points per curve)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default: all cores)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-reference", action="store_true", help="skip the reference recipe (recipe searches)")
    ap.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE",
                    help="override contender hyperparameters or training keys (batch_size, lr)")
    ap.add_argument("--json", type=Path, help="append both curves to this JSON-lines file")
    args = ap.parse_args(argv)
    minutes = 1.0 if args.quick else args.minutes
    seconds = minutes * 60.0
    every = args.score_every or seconds / 10.0
    if args.steps < 0 or args.score_every_steps < 0:
        raise SystemExit("--steps and --score-every-steps must be positive")
    every_steps = args.score_every_steps or max(1, args.steps // 10)
    spec = args.dataset or RUNGS[args.rung]
    dataset = load_dataset(spec)
    if dataset.factor_spec is None:
        raise SystemExit(f"{spec}: not a factor world (MIG needs ground-truth factors)")
    if args.recipe is None:
        own = f"{spec.partition('?')[0]}-disentangle"
        args.recipe = own if (PRESETS / f"{own}.toml").is_file() else "dsprites-disentangle"
    common = {"dataset": spec, "test_fraction": 0.0, "max_steps": 10**9, "threads": args.threads,
              "device": args.device, "seed": args.seed, "preview_every_s": 3600.0, "metrics_every": 25,
              "out_dir": None, "fallback": []}
    contender = replace(contender_config(args.recipe), **common)
    for item in args.set:
        name, _, value = item.partition("=")
        if name in ("batch_size",):
            contender.batch_size = int(value)
        elif name == "lr":
            contender.lr = float(value)
        else:
            contender.hparams[name] = value
    contender.validate()
    budget = f"{args.steps:,} steps" if args.steps else f"{minutes:g} min"
    print(f"# {budget} per recipe, {spec} ({len(dataset)} images), torch threads "
          f"{args.threads or torch.get_num_threads()}", flush=True)
    curves = {"contender": train_curve(f"contender {args.recipe}", contender, seconds, every, print, args.steps,
                                       every_steps)}
    if not args.no_reference:
        reference = replace(REFERENCE, **common)
        curves["reference"] = train_curve("reference (disentanglement_lib β-VAE)", reference, seconds, every, print,
                                          args.steps, every_steps)
    if args.json:
        with args.json.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps({"recipe": args.recipe, "dataset": spec, "minutes": minutes, "steps": args.steps,
                                 "set": args.set,
                                 "threads": args.threads, "curves": curves}) + "\n")
    ours = curves["contender"]
    ref_end = curves["reference"][-1]["mig"] if "reference" in curves else math.nan
    if args.steps:
        print(f"RESULT steps_to_mig_0_2={first_reaching(ours, 0.2, 'steps'):g} "
              f"steps_to_mig_0_3={first_reaching(ours, 0.3, 'steps'):g} mig_end={ours[-1]['mig']:.3f} "
              f"reference_mig_end={ref_end:.3f} steps={args.steps}")
    else:
        print(f"RESULT seconds_to_mig_0_2={first_reaching(ours, 0.2):g} "
              f"seconds_to_mig_0_3={first_reaching(ours, 0.3):g} mig_end={ours[-1]['mig']:.3f} "
              f"reference_mig_end={ref_end:.3f} minutes={minutes:g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
