"""Decode latency of the exploration panels: one slider image and a full 10×10 traversal grid, for the MLP and the
64×64 conv decoder, side by side with a naive per-image decode loop (untrained weights: latency only).

    .venv/bin/python bench/decode_latency.py [--quick] [--threads N]

Last line: RESULT slider_p95_ms_mlp=<x> slider_p95_ms_conv=<x> grid_ms_mlp=<x> grid_ms_conv=<x>
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import torch  # noqa: E402

from engine import explore
from engine.imaging import tile, to_uint8
from engine.models import create_model

GRID = 10


def timed(fn, reps: int) -> np.ndarray:
    fn()
    out = np.empty(reps)
    for i in range(reps):
        start = time.perf_counter()
        fn()
        out[i] = (time.perf_counter() - start) * 1000.0
    return out


def bench(name: str, model, reps: int) -> tuple[float, float]:
    model.eval()
    rng = np.random.default_rng(0)
    base = torch.zeros(model.latent_dim)
    dims = list(range(GRID))
    values = np.linspace(-3, 3, GRID)

    def slider():
        z = base.clone()
        z[int(rng.integers(GRID))] = float(rng.uniform(-3, 3))
        return to_uint8(explore.decode_codes(model, z))

    def grid():
        return explore.traversal_grid(model, base, dims, values)

    def naive_grid():
        images = []
        with torch.inference_mode():
            for d in dims:
                for v in values:
                    z = base.clone().unsqueeze(0)
                    z[0, d] = float(v)
                    images.append(model.decode_images(z))
        return tile(torch.cat(images), GRID)

    assert np.array_equal(grid(), naive_grid()) or np.abs(grid().astype(int) - naive_grid()).max() <= 1
    s = timed(slider, reps * 5)
    g = timed(grid, reps)
    n = timed(naive_grid, max(3, reps // 3))
    s95, g50, n50 = np.percentile(s, 95), np.median(g), np.median(n)
    print(f"{name:5s} slider p50 {np.median(s):6.2f} ms  p95 {s95:6.2f} ms | 10×10 grid batched {g50:7.2f} ms  "
          f"naive per-image loop {n50:7.2f} ms  ({n50 / g50:4.1f}× slower)")
    return float(s95), float(g50)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the app leaves a core to the GUI)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    reps = 10 if args.quick else 40
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), reps {reps}")
    mlp = create_model("beta-vae", (1, 28, 28), latent_dim=GRID, backbone="mlp")
    conv = create_model("beta-vae", (1, 64, 64), latent_dim=GRID, backbone="conv")
    s_mlp, g_mlp = bench("mlp", mlp, reps)
    s_conv, g_conv = bench("conv", conv, reps)
    print(f"RESULT slider_p95_ms_mlp={s_mlp:.2f} slider_p95_ms_conv={s_conv:.2f} "
          f"grid_ms_mlp={g_mlp:.2f} grid_ms_conv={g_conv:.2f}")


if __name__ == "__main__":
    main()
