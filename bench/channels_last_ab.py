"""channels_last against contiguous on the reference dSprites conv recipe, interleaved in one process.

The recipe of bench/recipe_speed.py (the capacity-annealed β-VAE preset with the conv backbone, batch 64) trains
as two sessions that differ only in `memory_format` (`contiguous` and `channels_last`), alternating chunks of
`--chunk` steps for `--rounds` rounds in ABBA order, so other load on the machine hits both alike. Both sessions
run as a user's would (metrics pulls every `metrics_every` steps; previews off). Prints steps/s per format (median
and best of the rounds), the channels_last/contiguous ratios and a RESULT line: a ratio above 1 means
channels_last is faster. `memory_format = "auto"` follows this measurement (channels_last on CUDA only).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.data import load_dataset  # noqa: E402
from engine.presets import load_preset  # noqa: E402
from engine.training import TrainingSession  # noqa: E402


def session(dataset, spec: str, device: str, memory_format: str):
    preset = load_preset("dsprites-capacity-vae")
    config = preset.replace(dataset=spec, fallback=[], batch_size=64, max_steps=10**9, device=device,
                            preview_every_s=3600.0, memory_format=memory_format,
                            hparams={**preset.hparams, "backbone": "conv"})
    s = TrainingSession(config, dataset)
    return s, s.run()


def advance(s: TrainingSession, events, steps: int, device: str) -> float:
    """Train `steps` steps (to the next metrics pull after them); steps per second."""
    start, t0 = s.step, time.perf_counter()
    for event in events:
        if s.step - start >= steps and type(event).__name__ == "StepMetrics":
            break
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return (s.step - start) / (time.perf_counter() - t0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N")
    parser.add_argument("--dataset", default="dsprites?subset=20000", help="dataset spec (default: 20,000 dSprites)")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--chunk", type=int, default=100, help="steps per chunk")
    parser.add_argument("--warmup", type=int, default=20, help="untimed steps per format first (cuDNN autotuning)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    parser.add_argument("--quick", action="store_true", help="2 rounds of 20 steps (a smoke run)")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.chunk, args.warmup = 2, 20, 5
    if args.threads:
        torch.set_num_threads(args.threads)
    dataset = load_dataset(args.dataset)
    runs = {fmt: session(dataset, args.dataset, args.device, fmt) for fmt in ("contiguous", "channels_last")}
    assert not runs["contiguous"][0].channels_last and runs["channels_last"][0].channels_last
    for s, events in runs.values():
        advance(s, events, args.warmup, args.device)
    rates: dict[str, list[float]] = {k: [] for k in runs}
    for round_ in range(args.rounds):
        order = list(runs.items()) if round_ % 2 == 0 else list(runs.items())[::-1]  # ABBA: no order bias
        for key, (s, events) in order:
            rates[key].append(advance(s, events, args.chunk, args.device))
    for _, events in runs.values():
        events.close()
    info = runs["contiguous"][0].info()
    print(f"{info['family']} conv on {info['dataset']} ({info['parameters']:,} parameters), batch 64, on "
          f"{info['device']}, {torch.get_num_threads()} thread(s); {args.rounds} rounds of {args.chunk} steps, "
          "alternating")
    for key, values in rates.items():
        print(f"  {key:13}: median {statistics.median(values):8.1f} steps/s, best {max(values):8.1f}  "
              f"({', '.join(f'{v:.1f}' for v in values)})")
    median = statistics.median(rates["channels_last"]) / statistics.median(rates["contiguous"])
    best = max(rates["channels_last"]) / max(rates["contiguous"])
    print(f"RESULT bench=channels_last_ab device={info['device']} channels_last_vs_contiguous_median={median:.3f} "
          f"channels_last_vs_contiguous_best={best:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
