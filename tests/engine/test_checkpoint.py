"""Checkpoints: round trip, atomic writes, and every kind of bad file → CheckpointError naming the file."""

from __future__ import annotations

import json
import os
import struct

import pytest
import torch
from safetensors.torch import save_file

from engine import checkpoint as ckpt
from engine.checkpoint import load_checkpoint, read_checkpoint, write_checkpoint
from engine.config import TrainConfig
from engine.data import load_dataset
from engine.errors import CheckpointError
from engine.training import TrainingSession


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ckpt")
    cfg = TrainConfig(dataset="digits", family="cvae", hparams={"latent_dim": 2, "hidden": 16, "depth": 1},
                      max_steps=6, batch_size=32)
    session = TrainingSession(cfg, load_dataset("digits"))
    list(session.run())
    return session, session.save_checkpoint(folder / "good.safetensors")


def test_round_trip(saved):
    session, path = saved
    loaded = load_checkpoint(path)
    assert loaded.step == 6 and loaded.config.family == "cvae" and loaded.dataset_spec == "digits"
    assert loaded.meta["dataset"]["shape"] == [1, 8, 8] and loaded.meta["dataset"]["num_classes"] == 10
    assert loaded.meta["hparams"]["latent_dim"] == 2 and loaded.meta["version"] == ckpt.FORMAT_VERSION
    assert not loaded.model.training
    x = torch.rand(4, 1, 8, 8)
    y = torch.tensor([0, 1, 2, 3])
    session.model.eval()
    torch.testing.assert_close(loaded.model.reconstruct(x, y), session.model.reconstruct(x, y))
    meta, tensors = read_checkpoint(path)
    assert "rng.cpu" in tensors and any(k.startswith("optim.main.") for k in tensors)


def test_loading_never_unpickles(saved, tmp_path):
    bad = tmp_path / "pickle.safetensors"
    torch.save({"x": torch.zeros(2)}, bad)
    with pytest.raises(CheckpointError, match="pickle.safetensors"):
        load_checkpoint(bad)


@pytest.mark.parametrize("cut", [3, 8, 100, -1])
def test_truncated_files(saved, tmp_path, cut):
    data = saved[1].read_bytes()
    bad = tmp_path / "cut.safetensors"
    bad.write_bytes(data[:cut] if cut > 0 else data[:len(data) - 50])
    with pytest.raises(CheckpointError, match="cut.safetensors"):
        load_checkpoint(bad)


def test_huge_header_length_is_refused_before_allocating(tmp_path):
    bad = tmp_path / "huge.safetensors"
    bad.write_bytes(struct.pack("<Q", 2**60) + b"{}")
    with pytest.raises(CheckpointError, match="header length"):
        load_checkpoint(bad)


def test_foreign_and_wrong_magic(tmp_path, saved):
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(3)}, foreign)
    with pytest.raises(CheckpointError, match="not a Latent Explorer checkpoint"):
        load_checkpoint(foreign)
    other = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(3)}, other, metadata={ckpt.META_KEY: json.dumps({"format": "something-else"})})
    with pytest.raises(CheckpointError, match="wrong format name"):
        load_checkpoint(other)
    newer = tmp_path / "newer.safetensors"
    meta, _ = read_checkpoint(saved[1])
    save_file({"w": torch.zeros(3)}, newer, metadata={ckpt.META_KEY: json.dumps({**meta, "version": 99})})
    with pytest.raises(CheckpointError, match="version 99"):
        load_checkpoint(newer)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(os.urandom(4096))
    with pytest.raises(CheckpointError, match="garbage.safetensors"):
        load_checkpoint(garbage)
    with pytest.raises(CheckpointError, match="cannot open"):
        load_checkpoint(tmp_path / "missing.safetensors")
    with pytest.raises(CheckpointError, match="not a file"):
        load_checkpoint(tmp_path)


def test_offsets_outside_the_file(tmp_path):
    header = json.dumps({"w": {"dtype": "F32", "shape": [1000], "data_offsets": [0, 4000]},
                         "__metadata__": {ckpt.META_KEY: "{}"}}).encode()
    bad = tmp_path / "offsets.safetensors"
    bad.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 16)
    with pytest.raises(CheckpointError, match="outside the file"):
        load_checkpoint(bad)


def test_weights_that_do_not_fit_the_model(tmp_path, saved):
    meta, tensors = read_checkpoint(saved[1])
    meta = {k: v for k, v in meta.items() if k not in ("format", "version")}
    meta["hparams"] = {**meta["hparams"], "latent_dim": 5}
    bad = write_checkpoint(tmp_path / "misfit.safetensors", tensors, meta)
    with pytest.raises(CheckpointError, match="do not fit"):
        load_checkpoint(bad)


def test_writes_are_atomic(tmp_path, saved, monkeypatch):
    meta, tensors = read_checkpoint(saved[1])
    meta = {k: v for k, v in meta.items() if k not in ("format", "version")}
    target = write_checkpoint(tmp_path / "a.safetensors", tensors, meta)
    before = target.read_bytes()

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(ckpt.os, "replace", broken_replace)
    changed = {**tensors, "model.extra": torch.ones(3)}
    with pytest.raises(OSError, match="disk full"):
        write_checkpoint(target, changed, meta)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.safetensors"]


def test_non_finite_weights_never_reach_a_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="non-finite"):
        write_checkpoint(tmp_path / "nan.safetensors", {"model.w": torch.tensor([1.0, float("nan")])}, {})
    assert not list(tmp_path.iterdir())
