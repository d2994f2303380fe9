"""Every family trained through the CLI (in process) across epoch ends, previews and a checkpoint.

Until this test existed no family was ever trained across an epoch end in the suite, and `contractive-ae`
crashed at the end of its first epoch (its Jacobian penalty under the test pass's `inference_mode`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from engine.checkpoint import load_checkpoint
from engine.cli import main
from engine.models import families

TINY = {"backbone": "mlp", "hidden": 24, "depth": 1, "latent_dim": 4}
EXTRA = {  # the smallest sensible setting of each family's own hyperparameters
    "k-sparse-ae": {"k": 2},
    "hvae": {"z1_dim": 4},
    "iwae": {"k": 2},
    "factor-vae": {"disc_hidden": 16, "disc_layers": 1},
    "vq-vae": {"positions": 2, "codebook_size": 8},
}
EPOCHS = 3  # digits: 1,617 training images, batch 256 → 6 steps per epoch


def _train(family: str, out: Path) -> int:
    sets = [f"{k}={v}" for k, v in {**TINY, **EXTRA.get(family, {})}.items()]
    args = ["train", "--model", family, "--dataset", "digits", "--epochs", str(EPOCHS), "--batch-size", "256",
            "--lr", "3e-3", "--device", "cpu", "--out", str(out), "--quiet"]
    for item in sets:
        args += ["--set", item]
    return main(args)


@pytest.mark.parametrize("family", list(families()))
def test_family_trains_through_epoch_ends(family, tmp_path, capsys, monkeypatch):
    from engine import pacing

    # Epoch-end work is paced by wall time on small sets; here every epoch end must run it, on any machine.
    monkeypatch.setattr(pacing, "EPOCH_WORK_EVERY_S", 0.0)
    monkeypatch.setattr(pacing, "EPOCH_WORK_SHARE", float("inf"))
    out = tmp_path / family
    status = _train(family, out)
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert "error" not in captured.err.lower(), captured.err
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in records if r["kind"] == "epoch"]
    assert [r["epoch"] for r in epochs] == list(range(1, EPOCHS + 1))
    for record in epochs:  # the epoch-end test pass ran (the contractive AE crashed here) and is finite
        assert record["test"] and all(math.isfinite(v) for v in record["test"].values()), record
    first, last = epochs[0]["train"]["total"], epochs[-1]["train"]["total"]
    assert last < first, f"{family}: the training loss did not fall ({first:.3f} → {last:.3f})"
    previews = sorted((out / "previews").glob("*_reconstructions.png"))
    assert len(previews) >= EPOCHS, previews  # one per epoch end at least
    loaded = load_checkpoint(out / "checkpoints" / "last.safetensors")
    assert loaded.step == EPOCHS * 6 and loaded.epoch == EPOCHS and loaded.config.family == family
