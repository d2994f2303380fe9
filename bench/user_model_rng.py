"""Cost of routing a user model file's own torch samplers to its session's stream (engine/rng.py
`routed_to_current_stream`, a torch function mode around every call into the file), side by side with the same
training without it, in one process. The model is docs/your-model.md's TinyVAE (a tiny MLP: the worst case, since
the mode's cost is per torch call, not per FLOP).

    .venv/bin/python bench/user_model_rng.py [--quick]

Last line: RESULT user_model_routed_s=<s> plain_s=<s> routed_vs_plain=<plain ÷ routed, 1 = free>
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import engine.models.user_file as user_file  # noqa: E402
from engine.config import TrainConfig  # noqa: E402
from engine.data import load_dataset  # noqa: E402
from engine.training import TrainingSession  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="200 steps × 2 rounds instead of 400 × 3")
    args = parser.parse_args(argv)
    steps, rounds = (200, 2) if args.quick else (400, 3)
    text = (ROOT / "docs" / "your-model.md").read_text(encoding="utf-8")
    model_file = Path(tempfile.mkdtemp()) / "tiny_vae.py"
    model_file.write_text(text.split("```python\n", 1)[1].split("```", 1)[0], encoding="utf-8")
    family = user_file.load_model_file(model_file).family
    dataset = load_dataset("digits")
    routed = user_file.routed_to_current_stream

    def train() -> float:
        session = TrainingSession(TrainConfig(dataset="digits", family=family, hparams={"latent_dim": 2},
                                              max_steps=steps, batch_size=64, threads=1, preview_every_s=3600.0),
                                  dataset)
        started = time.perf_counter()
        list(session.run())
        return time.perf_counter() - started

    times: dict[str, list[float]] = {"routed": [], "plain": []}
    try:
        for _ in range(rounds):  # interleaved, best of each
            user_file.routed_to_current_stream = routed
            times["routed"].append(train())
            user_file.routed_to_current_stream = contextlib.nullcontext
            times["plain"].append(train())
    finally:
        user_file.routed_to_current_stream = routed
    best_routed, best_plain = min(times["routed"]), min(times["plain"])
    print(f"RESULT user_model_routed_s={best_routed:.2f} plain_s={best_plain:.2f} "
          f"routed_vs_plain={best_plain / best_routed:.3f}")


if __name__ == "__main__":
    main()
