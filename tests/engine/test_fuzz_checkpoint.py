"""Hypothesis fuzzing of checkpoint files: mutated bytes of a real checkpoint, and real layouts whose JSON header
fields are replaced by arbitrary JSON. Loading gives a model or a CheckpointError naming the file, never another
exception. Derandomised: the same 1,000 cases per target every run."""

from __future__ import annotations

import json
import struct
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import checkpoint as ckpt
from engine.checkpoint import load_checkpoint
from engine.config import TrainConfig
from engine.data import load_dataset
from engine.errors import CheckpointError
from engine.training import TrainingSession

FUZZ = settings(derandomize=True, max_examples=1000, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])
WORKDIR = Path(tempfile.mkdtemp(prefix="fuzz-checkpoint-"))


def tiny_checkpoint() -> bytes:
    cfg = TrainConfig(dataset="digits", family="vae", hparams={"latent_dim": 2, "hidden": 8, "depth": 1},
                      max_steps=2, batch_size=32)
    session = TrainingSession(cfg, load_dataset("digits"))
    list(session.run())
    return session.save_checkpoint(WORKDIR / "good.safetensors").read_bytes()


GOOD = tiny_checkpoint()
HEADER_LEN = struct.unpack("<Q", GOOD[:8])[0]
ENTRIES = json.loads(GOOD[8:8 + HEADER_LEN])
META = json.loads(ENTRIES["__metadata__"][ckpt.META_KEY])
DATA = GOOD[8 + HEADER_LEN:]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8)


def check_loads_or_names_the_file(data: bytes) -> None:
    """The only allowed outcomes: a model that loads, or a CheckpointError naming the file (anything else fails)."""
    path = WORKDIR / "fuzzed.safetensors"
    path.write_bytes(data)
    try:
        loaded = load_checkpoint(path)
    except CheckpointError as exc:
        assert str(path) in str(exc), f"the error does not name the file: {exc}"
        return
    assert loaded.model is not None and loaded.step >= 0


def assemble(entries: dict, meta: object, data: bytes = DATA) -> bytes:
    entries = {**entries, "__metadata__": {ckpt.META_KEY: json.dumps(meta)}}
    raw = json.dumps(entries).encode()
    return struct.pack("<Q", len(raw)) + raw + data


def test_the_unmodified_file_loads():
    check_loads_or_names_the_file(GOOD)
    assert load_checkpoint(WORKDIR / "fuzzed.safetensors").meta["family"] == "vae"


@FUZZ
@given(st.lists(st.tuples(st.integers(0, len(GOOD) - 1), st.integers(0, 255)), max_size=6),
       st.one_of(st.none(), st.integers(0, len(GOOD))), st.binary(max_size=16))
def test_mutated_bytes(flips, cut_at, tail):
    data = bytearray(GOOD)
    for pos, value in flips:
        data[pos] = value
    if cut_at is not None:
        del data[cut_at:]
    check_loads_or_names_the_file(bytes(data) + tail)


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(sorted(META) + ["dataset.shape", "dataset.spec", "dataset.num_classes",
                                                          "hparams.latent_dim", "hparams.hidden", "optimizers.main",
                                                          "session.epoch_steps", "bogus"]),
                          json_values), min_size=1, max_size=3))
def test_header_fields_replaced(changes):
    meta = json.loads(json.dumps(META))
    for dotted, value in changes:
        target = meta
        *parents, key = dotted.split(".")
        for parent in parents:
            if not isinstance(target.get(parent), dict):
                target[parent] = {}
            target = target[parent]
        target[key] = value
    check_loads_or_names_the_file(assemble(ENTRIES, meta))


@FUZZ
@given(st.dictionaries(st.sampled_from(sorted(k for k in ENTRIES if k != "__metadata__")),
                       st.fixed_dictionaries({"dtype": st.sampled_from(["F32", "F64", "U8", "I64", "XX"]),
                                              "shape": st.lists(st.integers(-2, 2**40), max_size=3),
                                              "data_offsets": st.lists(st.integers(-2, 2**40), max_size=3)}),
                       min_size=1, max_size=3))
def test_tensor_entries_replaced(replaced):
    entries = {k: v for k, v in ENTRIES.items() if k != "__metadata__"}
    check_loads_or_names_the_file(assemble({**entries, **replaced}, META))


@pytest.mark.parametrize("meta", [None, [], "text", 3, {"format": ckpt.FORMAT_NAME}])
def test_metadata_that_is_not_a_header(meta):
    check_loads_or_names_the_file(assemble({k: v for k, v in ENTRIES.items() if k != "__metadata__"}, meta))
