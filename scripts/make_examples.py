"""Regenerate the shipped example models (resources/examples/) and their manifest with the project's own CLI.

For each example: `main.py train …` into runs/examples/NAME, a float16 copy of its last checkpoint (weights only)
into resources/examples/NAME.safetensors (≤ 5 MB), then `main.py eval example:NAME … --json`; the manifest records
the exact commands, seed, steps, training wall time, the machine and the scores eval reported.

    .venv/bin/python scripts/make_examples.py               # all of them (`make examples`)
    .venv/bin/python scripts/make_examples.py mnist-vae-2d  # only these (the other manifest entries are kept)
    .venv/bin/python scripts/make_examples.py --list
Exit status 1 when an example could not be made (the others are still made; the reason is printed).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.checkpoint import read_checkpoint, shareable_copy  # noqa: E402
from engine.examples import MANIFEST_NAME, MAX_EXAMPLE_BYTES, examples_dir, read_manifest  # noqa: E402
from engine.presets import list_presets  # noqa: E402
from engine.run_folder import CONFIG_FILE, RunFolder  # noqa: E402

MNIST_EVAL = ["--iwae-k", "100", "--seed", "0"]
# DCI's reference trees on the first 500 of the 10,000 points keep the reproduction test under a minute
DSPRITES_EVAL = ["--iwae-k", "0", "--metrics", "all", "--dci-train", "500", "--seed", "0"]
# The RGB worlds: the four scores (MIG, DCI, SAP, FactorVAE) at quick sizes (1,000 / 500 points), DCI with
# histogram trees — each reproduction in tests/engine/test_examples.py still costs 10-20 s of CPU (the test split's
# ELBO pass included); the exact trees added ~20 s and agreed within 0.015 on the colour and XYObject examples, the
# BetaVAE score ~8 s (docs/results.md reports both from separate evaluations)
WORLD_EVAL = ["--iwae-k", "0", "--metrics", "mig,dci,sap,factor_vae", "--metric-sizes", "quick", "--dci-estimator",
              "hist", "--seed", "0"]
# 11,800 steps: what the 128-wide presets make in 5 minutes on the idle 2-core machine (measured with
# bench/world_speed.py and a 5-minute idle run, docs/results.md) — the "MIG ≥ 0.3 within 5 minutes" budget
WORLD_STEPS = "11800"


def world_train(preset: str) -> list[str]:
    return ["--preset", preset, "--max-steps", WORLD_STEPS, "--seed", "0", "--threads", "1", "--checkpoint-every",
            "1000", "--probe-every", "60"]


# name → description, train arguments (without --out), eval arguments, preset it needs (None: none), optional note
EXAMPLES: dict[str, dict] = {
    "dsprites-disentangle": {
        "description": "dSprites, the disentangling recipe (preset dsprites-disentangle): one latent per factor",
        "train": ["--preset", "dsprites-disentangle", "--max-steps", "6000", "--seed", "0", "--threads", "1"],
        "eval": DSPRITES_EVAL, "needs_preset": "dsprites-disentangle"},
    "dsprites-vae": {
        "description": "dSprites, the same network and budget as a plain VAE (β = 1): the entangled contrast",
        "train": ["--preset", "dsprites-vae", "--max-steps", "6000", "--seed", "0", "--threads", "1"],
        "eval": DSPRITES_EVAL, "needs_preset": "dsprites-vae"},
    "mnist-cvae": {
        "description": "Conditional VAE on the MNIST sample: pick a digit, the 2-D code holds its style",
        "train": ["--preset", "mnist-cvae", "--dataset", "mnist-sample", "--epochs", "40", "--seed", "0",
                  "--threads", "1"],
        "eval": MNIST_EVAL, "needs_preset": "mnist-cvae"},
    "mnist-vae-2d": {
        "description": "VAE with a 2-D latent on the MNIST sample: the whole latent manifold on one map",
        "train": ["--preset", "mnist-vae", "--dataset", "mnist-sample", "--set", "latent_dim=2", "--epochs", "40",
                  "--seed", "0", "--threads", "1"],
        "eval": MNIST_EVAL, "needs_preset": "mnist-vae"},
    "shapes3d-disentangle": {
        "description": "3-D shapes (our procedural room), the world's recipe (β = 16, 6 latents, an MLP decoder) at "
                       "its 5-minute budget",
        "train": world_train("shapes3d-disentangle"), "eval": WORLD_EVAL, "needs_preset": "shapes3d-disentangle"},
    "color-dsprites-disentangle": {
        "description": "Colour dSprites (a random colour per sprite, a nuisance), the world's recipe at its 5-minute "
                       "budget",
        "train": world_train("color-dsprites-disentangle"), "eval": WORLD_EVAL,
        "needs_preset": "color-dsprites-disentangle"},
    "xyobject-disentangle": {
        "description": "XYObject (a coloured square: x, y, size, colour), the world's recipe at its 5-minute budget",
        "train": world_train("xyobject-disentangle"), "eval": WORLD_EVAL, "needs_preset": "xyobject-disentangle"},
    "noisy-dsprites-disentangle": {
        "description": "Noisy dSprites (a white sprite on uniform noise), the world's recipe at its 5-minute budget",
        "train": world_train("noisy-dsprites-disentangle"), "eval": WORLD_EVAL,
        "needs_preset": "noisy-dsprites-disentangle"},
}
SCORE_KEYS = ("neg_elbo", "recon", "kl", "iwae_nll", "active_units", "recon_error_nats")
METRIC_KEYS = ("beta_vae", "factor_vae", "mig", "dci_disentanglement", "dci_completeness", "dci_informativeness",
               "sap")


def machine() -> str:
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = f", load average {os.getloadavg()[0]:.1f} when training ended" if hasattr(os, "getloadavg") else ""
    return (f"{platform.system()} {platform.machine()}, {cores} CPU cores{load}, torch {torch.__version__}, "
            f"python {platform.python_version()}")


def command_text(args: list[str]) -> str:
    return shlex.join(["python", "main.py", *args])


def scores_of(result: dict) -> dict[str, float]:
    scores = {k: result[k] for k in SCORE_KEYS if isinstance(result.get(k), int | float)}
    metrics = result.get("metrics") or {}
    scores.update({k: metrics[k] for k in METRIC_KEYS if isinstance(metrics.get(k), int | float)})
    return scores


def make(name: str, spec: dict, folder: Path, reuse: bool = False) -> dict:
    """Train, shrink and evaluate one example; its manifest entry (RuntimeError with the reason on failure).

    `reuse`: take the finished run already in runs/examples/NAME instead of training again (its training wall
    time is the time from its config.toml to its last checkpoint)."""
    known = {preset for preset, _ in list_presets()}
    if spec["needs_preset"] not in known:
        raise RuntimeError(f"preset {spec['needs_preset']!r} does not exist in this checkout "
                           f"(resources/presets/); add it, then run `make examples` again")
    run = RunFolder(ROOT / "runs" / "examples" / name)
    train_args = ["train", *spec["train"], "--out", f"runs/examples/{name}", "--quiet"]
    print(f"== {name}: {command_text(train_args)}", flush=True)
    last, config_file = run.last_checkpoint, run.path / CONFIG_FILE
    kept_note = None
    if reuse and last.is_file() and config_file.is_file():
        wall = last.stat().st_mtime - config_file.stat().st_mtime
        print(f"   reusing {last} (trained in {wall:.0f} s)", flush=True)
        kept_note = note_of_same_run(folder, name, command_text(train_args))
    else:
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "main.py", *train_args], cwd=ROOT)
        wall = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"training failed (exit status {done.returncode})")
    target = folder / f"{name}.safetensors"
    shareable_copy(last, target)
    size = target.stat().st_size
    if size > MAX_EXAMPLE_BYTES:
        raise RuntimeError(f"{target} is {size / 2**20:.1f} MB, over the 5 MB limit for examples")
    meta, _ = read_checkpoint(target)
    eval_args = ["eval", f"example:{name}", *spec["eval"], "--json"]
    print(f"   {command_text(eval_args)}", flush=True)
    env = {**os.environ, "LATENT_EXPLORER_EXAMPLES": str(folder)}
    # The manifest must list the new file before `example:NAME` resolves: a provisional entry first.
    entry = {"name": name, "description": spec["description"], "file": target.name,
             "command": command_text(train_args), "eval_command": command_text(eval_args),
             "seed": _seed_of(spec["train"]), "steps": int(meta["step"]),
             "epochs": int(meta.get("epoch", 0)), "wall_s": round(wall, 1), "machine": machine(),
             "dataset": meta["dataset"]["spec"], "family": meta["family"], "bytes": size, "scores": {}}
    note = spec.get("note") or kept_note
    if note:
        entry["note"] = note
    manifest = folder / MANIFEST_NAME
    before = manifest.read_text(encoding="utf-8") if manifest.is_file() else None
    write_manifest(folder, {name: entry})
    done = subprocess.run([sys.executable, "main.py", *eval_args], cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        if before is None:
            manifest.unlink()
        else:
            manifest.write_text(before, encoding="utf-8")
        raise RuntimeError(f"eval failed: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ''}")
    entry["scores"] = scores_of(json.loads(done.stdout))
    print(f"   {size / 2**20:.2f} MB, {entry['steps']:,} steps in {wall:.0f} s; scores {entry['scores']}", flush=True)
    return entry


def note_of_same_run(folder: Path, name: str, command: str) -> str | None:
    """The manifest's note on `name` when it describes the run reused now (same training command): a note
    written about a run by hand survives `--reuse`, while a retrained example never inherits a stale one."""
    previous = {e["name"]: e for e in read_manifest(folder)}.get(name, {})
    return previous.get("note") if previous.get("command") == command else None


def _seed_of(train_args: list[str]) -> int:
    return int(train_args[train_args.index("--seed") + 1]) if "--seed" in train_args else 0


def write_manifest(folder: Path, updates: dict[str, dict]) -> None:
    """Merge `updates` into the manifest (entries kept in EXAMPLES' order, unknown ones after)."""
    entries = {e["name"]: e for e in read_manifest(folder)}
    entries.update(updates)
    order = [n for n in EXAMPLES if n in entries] + [n for n in entries if n not in EXAMPLES]
    text = json.dumps({"about": "Example models shipped with Latent Explorer; regenerate with `make examples` "
                                "(scripts/make_examples.py). Scores are what `eval_command` printed.",
                       "examples": [entries[n] for n in order]}, indent=2, ensure_ascii=False)
    tmp = folder / f".{MANIFEST_NAME}.tmp"
    tmp.write_text(text + "\n", encoding="utf-8")
    tmp.replace(folder / MANIFEST_NAME)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="examples to make (default: all)")
    parser.add_argument("--list", action="store_true", help="list the examples and their commands")
    parser.add_argument("--reuse", action="store_true", help="use a finished run already in runs/examples/NAME "
                                                             "instead of training it again")
    args = parser.parse_args(argv)
    if args.list:
        for name, spec in EXAMPLES.items():
            print(f"{name:22s} {spec['description']}\n{'':22s} {command_text(['train', *spec['train']])}")
        return 0
    unknown = [n for n in args.names if n not in EXAMPLES]
    if unknown:
        parser.error(f"unknown example(s) {', '.join(unknown)}; known: {', '.join(EXAMPLES)}")
    folder = examples_dir()
    folder.mkdir(parents=True, exist_ok=True)
    failed = []
    for name in args.names or list(EXAMPLES):
        try:
            write_manifest(folder, {name: make(name, EXAMPLES[name], folder, args.reuse)})
        except (RuntimeError, OSError, ValueError) as exc:
            failed.append(name)
            print(f"!! {name} skipped: {exc}", file=sys.stderr, flush=True)
    if failed:
        print(f"not made: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
