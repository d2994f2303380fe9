"""Shipped example models: float16 shareable checkpoints, `example:NAME` resolution, the manifest, and that `eval`
reproduces every shipped example's recorded scores."""

from __future__ import annotations

import json
import shlex

import pytest
import torch

from engine.checkpoint import load_checkpoint, read_checkpoint, shareable_copy
from engine.config import TrainConfig
from engine.data import load_dataset
from engine.errors import CheckpointError
from engine.examples import (
    DEFAULT_EXAMPLES_DIR,
    MANIFEST_NAME,
    MAX_EXAMPLE_BYTES,
    find_example,
    list_examples,
    resolve_checkpoint_path,
)
from engine.training import TrainingSession

SHIPPED = list_examples(DEFAULT_EXAMPLES_DIR)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("examples-src")
    config = TrainConfig(dataset="digits", family="vae", hparams={"latent_dim": 2, "hidden": 16, "depth": 1},
                         max_steps=6, batch_size=32)
    session = TrainingSession(config, load_dataset("digits"))
    list(session.run())
    return session, session.save_checkpoint(folder / "full.safetensors")


def entry(name: str, file: str, **extra) -> dict:
    return {"name": name, "description": f"{name} for a test", "file": file, "command": "python main.py train …",
            "eval_command": f"python main.py eval example:{name} --iwae-k 0 --json", "seed": 0, "steps": 6,
            "wall_s": 1.0, "machine": "test", "scores": {}, **extra}


@pytest.fixture
def examples(tmp_path, monkeypatch, trained):
    """A temporary examples folder (via $LATENT_EXPLORER_EXAMPLES) holding `tiny` and a manifest."""
    folder = tmp_path / "examples"
    shareable_copy(trained[1], folder / "tiny.safetensors")
    manifest = {"examples": [entry("tiny", "tiny.safetensors"), entry("gone", "gone.safetensors")]}
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest), encoding="utf-8")
    monkeypatch.setenv("LATENT_EXPLORER_EXAMPLES", str(folder))
    return folder


def test_shareable_copy_is_float16_weights_and_loads_as_float32(trained, tmp_path):
    session, full = trained
    small = shareable_copy(full, tmp_path / "small.safetensors")
    meta, tensors = read_checkpoint(small)
    assert meta["stored_dtype"] == "float16" and "optimizers" not in meta
    assert all(name.startswith("model.") for name in tensors)
    assert all(t.dtype == torch.float16 for t in tensors.values() if t.is_floating_point())
    assert small.stat().st_size < full.stat().st_size / 2
    loaded = load_checkpoint(small)
    for name, value in loaded.model.state_dict().items():
        original = session.model.state_dict()[name]
        assert value.dtype == original.dtype == torch.float32
        torch.testing.assert_close(value, original.half().float(), rtol=0, atol=0)
    assert loaded.step == 6 and loaded.history == session.history
    resumed = TrainingSession.from_checkpoint(small, max_steps=8)  # continuing starts a fresh optimiser
    list(resumed.run())
    assert resumed.step == 8


def test_float16_overflow_is_refused_not_written(trained, tmp_path):
    _, full = trained
    meta, tensors = read_checkpoint(full)
    name = next(n for n in tensors if n.startswith("model.") and tensors[n].is_floating_point())
    tensors[name] = tensors[name] + 1e6  # beyond float16's range (65504)
    from engine.checkpoint import write_checkpoint

    with pytest.raises(CheckpointError, match="non-finite"):
        write_checkpoint(tmp_path / "x.safetensors", tensors, {k: meta[k] for k in meta if k not in ("format",
                                                                                                    "version")},
                         float_dtype=torch.float16)


def test_example_names_resolve_wherever_checkpoints_load(examples, capsys):
    assert resolve_checkpoint_path("example:tiny") == examples / "tiny.safetensors"
    assert str(resolve_checkpoint_path("runs/a/last.safetensors")) == "runs/a/last.safetensors"
    assert [e.name for e in list_examples()] == ["tiny", "gone"] and find_example("tiny").reference == "example:tiny"
    loaded = load_checkpoint("example:tiny")
    assert loaded.step == 6 and loaded.path == "example:tiny"
    from engine.cli import main

    assert main(["eval", "example:tiny", "--iwae-k", "0", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["checkpoint"] == "example:tiny" and result["neg_elbo"] > 0


@pytest.mark.parametrize("name, damage, message", [
    ("nosuch", None, "no such example model; shipped: tiny, gone"),
    ("gone", None, "cannot open"),
    ("tiny", "truncate", "truncated"),
    ("tiny", "garbage", "not a Latent Explorer checkpoint"),
])
def test_missing_unknown_or_damaged_examples_give_the_loaders_clear_error(examples, capsys, name, damage, message):
    path = examples / "tiny.safetensors"
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "garbage":
        path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}" + bytes(100))
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(f"example:{name}")
    from engine.cli import main

    assert main(["traverse", f"example:{name}", "--out", str(examples / "t.png")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message.split(";")[0] in err[0]


@pytest.mark.parametrize("manifest", ["{not json", '{"examples": 3}', '{"examples": [{"name": "x"}]}',
                                      json.dumps({"examples": [entry("x", "../outside.safetensors")]})])
def test_a_malformed_manifest_is_a_clear_error(examples, manifest):
    (examples / MANIFEST_NAME).write_text(manifest, encoding="utf-8")
    with pytest.raises(CheckpointError, match="manifest"):
        load_checkpoint("example:tiny")


def test_the_small_examples_are_shipped():
    assert {"mnist-cvae", "mnist-vae-2d"} <= {e.name for e in SHIPPED}


def test_every_embedded_factor_world_ships_an_example():
    """File → Examples opens a trained model of each world (issue 22), made by scripts/make_examples.py."""
    from engine.data import available_datasets

    worlds = {"dsprites", "color-dsprites", "noisy-dsprites", "xyobject", "shapes3d"}
    assert worlds <= {row["name"] for row in available_datasets() if row["status"] == "embedded"}
    shipped = {e.dataset.partition("?")[0]: e for e in SHIPPED}
    assert worlds <= set(shipped), f"no example for {sorted(worlds - set(shipped))}"
    for world in worlds - {"dsprites"}:
        example = shipped[world]
        assert example.family == "beta-tcvae" and "mig" in example.scores, world
        assert f"--preset {world}-disentangle" in example.command, world


@pytest.mark.parametrize("example", SHIPPED, ids=[e.name for e in SHIPPED])
def test_shipped_example_loads_small_and_float16(example):
    assert example.path.is_file() and example.path.stat().st_size <= MAX_EXAMPLE_BYTES
    assert example.command.startswith("python main.py train ") and example.steps > 0 and example.wall_s > 0
    loaded = load_checkpoint(example.reference)
    assert loaded.meta["stored_dtype"] == "float16" and loaded.step == example.steps
    assert all(p.dtype == torch.float32 for p in loaded.model.parameters())
    assert example.scores, "the manifest records the scores eval reported"


@pytest.mark.parametrize("example", [pytest.param(e, marks=[pytest.mark.slow] if "metrics" in e.eval_command else [])
                                     for e in SHIPPED], ids=[e.name for e in SHIPPED])
def test_eval_reproduces_the_manifest_scores(example, capsys):
    """The manifest's own eval command, run again (same seed): every recorded score within ±0.02."""
    from engine.cli import main

    words = shlex.split(example.eval_command)
    assert words[:3] == ["python", "main.py", "eval"] and "--json" in words
    assert main(words[2:]) == 0
    result = json.loads(capsys.readouterr().out)
    scores = {**{k: v for k, v in result.items() if isinstance(v, int | float)}, **(result.get("metrics") or {})}
    for key, recorded in example.scores.items():
        assert scores[key] == pytest.approx(recorded, abs=0.02), key


def test_make_examples_keeps_a_hand_written_note_only_for_the_same_run(examples):
    """`make examples --reuse` takes a finished run again: the manifest's note about that run (same training
    command) stays; a different command means a retrained model, whose old note would describe another run."""
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "scripts" / "make_examples.py"
    spec = importlib.util.spec_from_file_location("make_examples_under_test", script)
    make_examples = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_examples)
    manifest = json.loads((examples / MANIFEST_NAME).read_text(encoding="utf-8"))
    manifest["examples"][0]["note"] = "trained in two parts"
    (examples / MANIFEST_NAME).write_text(json.dumps(manifest), encoding="utf-8")
    same = manifest["examples"][0]["command"]
    assert make_examples.note_of_same_run(examples, "tiny", same) == "trained in two parts"
    assert make_examples.note_of_same_run(examples, "tiny", same + " --max-steps 11800") is None
    assert make_examples.note_of_same_run(examples, "gone", same) is None
    assert make_examples.note_of_same_run(examples, "never-made", same) is None
