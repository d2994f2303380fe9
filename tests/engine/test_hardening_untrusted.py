"""Untrusted files: a code-running pickle disguised as a checkpoint or an array never runs, and safetensors
headers that lie about shapes or offsets are refused before any tensor memory is allocated."""

from __future__ import annotations

import contextlib
import io
import json
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from engine import checkpoint as ckpt
from engine.checkpoint import load_checkpoint, read_checkpoint
from engine.cli import main as cli_main
from engine.config import TrainConfig
from engine.data import DatasetError, load_dataset
from engine.data.files import load_path
from engine.errors import CheckpointError
from engine.training import TrainingSession


class WritesMarker:
    """Unpickling this object calls Path.write_text(marker, …): the proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "code ran while loading"))


@pytest.fixture(scope="module")
def good_checkpoint(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("good")
    cfg = TrainConfig(dataset="digits", family="vae", hparams={"latent_dim": 2, "hidden": 8, "depth": 1},
                      max_steps=2, batch_size=32)
    session = TrainingSession(cfg, load_dataset("digits"))
    list(session.run())
    return session.save_checkpoint(folder / "good.safetensors")


@pytest.fixture(scope="module")
def good_meta(good_checkpoint) -> dict:
    """A complete header, so that in a forged file only the lie itself can cause a refusal."""
    return read_checkpoint(good_checkpoint)[0]


def malicious_pt(path: Path, marker: Path) -> Path:
    torch.save({"model": WritesMarker(marker), "weights": torch.zeros(3)}, path)
    return path


def test_the_payload_is_real(tmp_path):
    """Positive control: unpickling the very same file the unsafe way does run the code."""
    marker = tmp_path / "marker"
    path = malicious_pt(tmp_path / "evil.pt", marker)
    torch.load(path, weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize("name", ["evil.safetensors", "last.safetensors", "step_10.safetensors", "evil.pt"])
def test_a_pickle_renamed_as_a_checkpoint_is_refused_and_never_runs(tmp_path, name):
    marker = tmp_path / "marker"
    path = malicious_pt(tmp_path / name, marker)
    for opener in (read_checkpoint, load_checkpoint, TrainingSession.from_checkpoint):
        with pytest.raises(CheckpointError, match=name.replace(".", r"\.")):
            opener(path)
    for argv in (["eval", str(path), "--iwae-k", "0"], ["sample", str(path), "--out", str(tmp_path / "s.png")],
                 ["traverse", str(path), "--out", str(tmp_path / "t.png")],
                 ["train", "--resume", str(path), "--out", str(tmp_path / "run")]):
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = cli_main(argv)
        lines = err.getvalue().strip().splitlines()
        assert code != 0 and len(lines) == 1 and lines[0].startswith("error:") and name in lines[0]
    assert not marker.exists(), "loading ran code from the file"


def test_a_pickled_npy_or_npz_never_runs(tmp_path):
    marker = tmp_path / "marker"
    npy = tmp_path / "images.npy"
    np.save(npy, np.array([WritesMarker(marker)], dtype=object), allow_pickle=True)
    with pytest.raises(DatasetError, match="images.npy"):
        load_path(npy)
    npz = tmp_path / "images.npz"
    np.savez(npz, images=np.array([WritesMarker(marker)], dtype=object), labels=np.zeros(1, dtype=np.int64))
    with pytest.raises(DatasetError, match="images.npz"):
        load_path(npz)
    raw = tmp_path / "raw.npy"
    raw.write_bytes(pickle.dumps(WritesMarker(marker)))
    with pytest.raises(DatasetError, match="raw.npy"):
        load_path(raw)
    assert not marker.exists()


# --- lying safetensors headers --------------------------------------------------------------------------------
def forge(path: Path, entries: dict, data: bytes, meta: dict | None = None, header_len: int | None = None) -> Path:
    """A safetensors file with exactly the header we choose (no library in between to correct it)."""
    header = dict(entries)
    header["__metadata__"] = {ckpt.META_KEY: json.dumps(meta or {"format": ckpt.FORMAT_NAME, "version": 1})}
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw) if header_len is None else header_len) + raw + data)
    return path


@pytest.fixture
def no_allocation(monkeypatch):
    """Fail if the payload reaches the tensor decoder: a lying header must be refused before that."""
    import safetensors.torch

    decoded: list[int] = []

    def record(payload):
        decoded.append(len(payload))
        raise RuntimeError("decoder reached")

    monkeypatch.setattr(safetensors.torch, "load", record)
    yield
    assert not decoded, "the payload reached the tensor decoder despite a lying header"


LIES = {
    "shape bigger than its bytes": ({"w": {"dtype": "F32", "shape": [2**20, 2**20], "data_offsets": [0, 16]}}, 16),
    "offset past the end": ({"w": {"dtype": "F32", "shape": [2**30], "data_offsets": [0, 2**32]}}, 16),
    "end before begin": ({"w": {"dtype": "F32", "shape": [0], "data_offsets": [16, 0]}}, 16),
    "negative shape": ({"w": {"dtype": "F32", "shape": [-4], "data_offsets": [0, 16]}}, 16),
    "negative offsets": ({"w": {"dtype": "F32", "shape": [4], "data_offsets": [-16, 0]}}, 16),
    "overlapping tensors": ({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
                             "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}}, 24),
    "aliased tensors": ({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
                         "b": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, 32),
    "gap between tensors": ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                             "b": {"dtype": "F32", "shape": [2], "data_offsets": [16, 24]}}, 24),
    "unknown dtype": ({"w": {"dtype": "F128", "shape": [1], "data_offsets": [0, 16]}}, 16),
    "float shape": ({"w": {"dtype": "F32", "shape": [2.5], "data_offsets": [0, 8]}}, 8),
    "boolean offsets": ({"w": {"dtype": "U8", "shape": [1], "data_offsets": [False, True]}}, 1),
    "entry not a table": ({"w": [1, 2, 3]}, 8),
    "string shape": ({"w": {"dtype": "F32", "shape": "4", "data_offsets": [0, 16]}}, 16),
}


@pytest.mark.parametrize("lie", sorted(LIES))
def test_lying_headers_are_refused_before_allocation(tmp_path, good_meta, no_allocation, lie):
    entries, data_len = LIES[lie]
    path = forge(tmp_path / "lie.safetensors", entries, b"\0" * data_len, meta=good_meta)
    with pytest.raises(CheckpointError, match="lie.safetensors"):
        read_checkpoint(path)


@pytest.mark.parametrize("header_len", [0, 1, 2**63, 2**64 - 1, 10**12])
def test_lying_header_length_is_refused(tmp_path, no_allocation, header_len):
    path = forge(tmp_path / "len.safetensors", {}, b"", header_len=header_len)
    with pytest.raises(CheckpointError, match="header length"):
        read_checkpoint(path)


def test_deeply_nested_header_json_is_refused(tmp_path, no_allocation):
    raw = b"[" * 100_000 + b"]" * 100_000
    path = tmp_path / "deep.safetensors"
    path.write_bytes(struct.pack("<Q", len(raw)) + raw)
    with pytest.raises(CheckpointError, match="deep.safetensors"):
        read_checkpoint(path)
    meta = tmp_path / "deepmeta.safetensors"
    meta.write_bytes(b"")
    forge(meta, {}, b"")
    header = {"__metadata__": {ckpt.META_KEY: "[" * 100_000 + "]" * 100_000}}
    raw = json.dumps(header).encode()
    meta.write_bytes(struct.pack("<Q", len(raw)) + raw)
    with pytest.raises(CheckpointError, match="deepmeta.safetensors"):
        read_checkpoint(meta)


def test_an_honest_forged_file_passes_the_checks(tmp_path, good_meta):
    """The checks are not too strict: a correct hand-made layout reaches the decoder and the meta checks."""
    entries = {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
               "b": {"dtype": "U8", "shape": [3], "data_offsets": [8, 11]}}
    path = forge(tmp_path / "honest.safetensors", entries, bytes(11), meta=good_meta)
    header, tensors = read_checkpoint(path)
    assert header["family"] == "vae" and tensors["a"].shape == (2,) and tensors["b"].dtype == torch.uint8


WRONG_META = {
    "family not a string": {"family": 7},
    "hparams not a table": {"hparams": "latent_dim=2"},
    "dataset not a table": {"dataset": "digits"},
    "dataset shape wrong": {"dataset": {"spec": "digits", "shape": "1x8x8"}},
    "step negative": {"step": -5},
    "step a string": {"step": "ten"},
    "epoch a list": {"epoch": [1]},
    "history not a list": {"history": {"a": 1}},
    "optimizers not a table": {"optimizers": [1]},
    "config not text": {"config": {"model": {}}},
    "session not a table": {"session": 3},
}


@pytest.mark.parametrize("case", sorted(WRONG_META))
def test_wrongly_typed_header_fields_are_checkpoint_errors(tmp_path, good_checkpoint, case):
    meta, tensors = read_checkpoint(good_checkpoint)
    meta = {**meta, **WRONG_META[case]}
    path = tmp_path / "fields.safetensors"
    ckpt.write_checkpoint(path, tensors, meta)
    for opener in (load_checkpoint, TrainingSession.from_checkpoint):
        with pytest.raises(CheckpointError, match="fields.safetensors"):
            opener(path)


def test_a_deeply_nested_stored_config_is_a_checkpoint_error(tmp_path, good_meta):
    meta = {**good_meta, "config": "a = " + "[" * 50_000 + "]" * 50_000}
    path = ckpt.write_checkpoint(tmp_path / "deepconfig.safetensors", {"model.w": torch.zeros(1)}, meta)
    with pytest.raises(CheckpointError, match="deepconfig.safetensors"):
        load_checkpoint(path)
