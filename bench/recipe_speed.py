"""Steps per second of the reference dSprites recipe (conv backbone, batch 64) for a fixed wall-clock time.

The recipe: the capacity-annealed β-VAE preset (`dsprites-capacity-vae`: γ = 1000, C → 25 nats, z = 10) on the full
737,280-image dSprites with the conv backbone and batch 64 — the setting whose 300,000-step budget the GPU target
asks to fit in ≤ 5 minutes (≥ 1,000 steps/s). The session runs as a user would run it (metrics pulled every
`metrics_every` steps, previews, epoch-end test pass of 4,096 images), after `--warmup` steps that are not timed
(first CUDA kernels, cuDNN autotuning, compilation). Prints steps/s, the projected time of 300,000 steps, and a
machine-readable RESULT line.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.events import Failed, StepMetrics, Warning_  # noqa: E402
from engine.presets import load_preset  # noqa: E402
from engine.training import TrainingSession  # noqa: E402

BUDGET_STEPS = 300_000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N or mps")
    parser.add_argument("--seconds", type=float, default=60.0, help="timed wall-clock seconds (default 60)")
    parser.add_argument("--warmup", type=int, default=50, help="untimed steps first (default 50)")
    parser.add_argument("--dataset", default="dsprites", help="dataset spec (default: the full dsprites)")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--compile", nargs="?", const="default", choices=("default", "reduce-overhead",
                                                                          "max-autotune"))
    parser.add_argument("--metrics-every", type=int, default=0, help="0 = auto (CPU 1, GPU 25)")
    parser.add_argument("--quick", action="store_true", help="10 timed seconds after 10 warm-up steps (make bench)")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.warmup = min(args.seconds, 10.0), min(args.warmup, 10)

    preset = load_preset("dsprites-capacity-vae")
    config = preset.replace(dataset=args.dataset, fallback=[], batch_size=64, max_steps=10**9, device=args.device,
                            precision=args.precision, compile=args.compile is not None,
                            compile_mode=args.compile or "default", metrics_every=args.metrics_every,
                            preview_every_s=2.0, hparams={**preset.hparams, "backbone": "conv"})
    started = time.perf_counter()
    session = TrainingSession(config)
    info = session.info()
    setup = time.perf_counter() - started
    print(f"{info['family']} conv on {info['dataset']} ({info['train_size']:,} train images, "
          f"{info['parameters']:,} parameters), batch 64, on {info['device']}; set-up {setup:.1f} s", flush=True)
    events = session.run()
    timed_from = None
    first_step = 0
    for event in events:
        if isinstance(event, Warning_):
            print(f"warning: {event.message}")
        elif isinstance(event, Failed):
            print(f"failed: {event.cause}")
            return 1
        elif isinstance(event, StepMetrics):
            now = time.perf_counter()
            if timed_from is None:
                if event.step >= args.warmup:
                    timed_from, first_step = now, event.step
                continue
            if now - timed_from >= args.seconds:
                break
    events.close()
    seconds = time.perf_counter() - timed_from
    steps = session.step - first_step
    rate = steps / seconds
    budget_min = BUDGET_STEPS / rate / 60.0
    print(f"{steps:,} steps in {seconds:.1f} s = {rate:,.1f} steps/s = {rate * 64:,.0f} images/s; "
          f"{BUDGET_STEPS:,} steps would take {budget_min:.1f} min (target ≥ 1,000 steps/s, ≤ 5 min on an H100/H200)")
    print(f"RESULT recipe=dsprites_conv_bs64 device={info['device']} steps_per_s={rate:.1f} "
          f"budget_300k_min={budget_min:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
