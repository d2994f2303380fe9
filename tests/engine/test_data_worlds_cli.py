"""The CLI on a composed world (the 3-D shapes scene): train with the live probe, eval with every score, a labelled
colour traversal GIF, and a sweep — in process, on a small subset, a few steps each."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from engine.cli import main


def test_train_eval_traverse_sweep_on_shapes3d(tmp_path, capsys):
    spec = "shapes3d?subset=400"
    tiny = ["--set", "latent_dim=3", "--set", "hidden=16", "--set", "depth=1", "--set", "backbone=mlp"]
    out = tmp_path / "run"
    assert main(["train", "--model", "beta-vae", "--dataset", spec, *tiny, "--max-steps", "12", "--batch-size",
                 "32", "--threads", "1", "--probe-every", "0.01", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "probe (step" in err and "floor_hue" in err and "orientation" in err
    ckpt = str(out / "checkpoints" / "last.safetensors")

    assert main(["eval", ckpt, "--iwae-k", "0", "--metrics", "mig,sap", "--metric-sizes", "quick", "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)["metrics"]  # all five on every world: tests/gui/test_worlds.py
    assert 0.0 <= scores["mig"] <= 1.0 and 0.0 <= scores["sap"] <= 1.0

    gif = tmp_path / "t.gif"
    assert main(["traverse", ckpt, "--out", str(gif), "--steps", "5"]) == 0
    with Image.open(gif) as im:
        frame = np.asarray(im.convert("RGB"))
    assert (frame[..., 0] != frame[..., 2]).any(), "the traversal is in colour"
    assert (frame[:, :40].min(axis=2) < 100).any(), "rows are labelled"

    sweep = tmp_path / "sweep"
    assert main(["sweep", "--config", str(out / "config.toml"), "--grid", "beta=1,4", "--max-steps", "3",
                 "--out", str(sweep), "--metrics", "mig", "--metric-sizes", "quick", "--threads", "1",
                 "--quiet"]) == 0
    rows = json.loads((sweep / "summary.json").read_text())
    rows = rows["runs"] if isinstance(rows, dict) else rows
    assert len(rows) == 2 and all(0.0 <= float(r["mig"]) <= 1.0 for r in rows)
