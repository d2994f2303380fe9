"""Faults in the headless CLI: a non-finite loss mid-run, a disk that fills up during a checkpoint write, a run
folder that cannot be created, an out-of-memory error, and Ctrl+C twice at an arbitrary moment. Each ends with a
non-zero status and one clear `error:` line; the run folder keeps only complete, loadable files."""

from __future__ import annotations

import contextlib
import errno
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from engine import checkpoint as ckpt
from engine.checkpoint import load_checkpoint
from engine.cli import main

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--model", "vae", "--dataset", "digits", "--set", "latent_dim=2", "--set", "hidden=16", "--set", "depth=1",
        "--batch-size", "64", "--quiet"]


def run_cli(argv: list[str]) -> tuple[int, list[str]]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    return code, [line for line in err.getvalue().splitlines() if line.startswith("error:")]


def assert_consistent(out: Path) -> list[int]:
    """Every checkpoint in the run folder loads with finite weights; no temporary file is left."""
    assert not list(out.rglob("*.tmp"))
    steps = []
    for path in sorted((out / "checkpoints").glob("*.safetensors")):
        loaded = load_checkpoint(path)
        assert all(bool(torch.isfinite(t).all()) for t in loaded.model.state_dict().values())
        steps.append(loaded.step)
    return steps


def test_nan_mid_training_stops_with_good_weights_and_resume_works(tmp_path, loss_fault):
    def poison(session, out, step):
        if step == 6 and session.step == 6:
            with torch.no_grad():
                next(session.model.parameters()).view(-1)[0] = float("nan")
            out.total = out.total * float("nan")

    loss_fault["fault"] = poison
    out = tmp_path / "run"
    code, errors = run_cli(["train", *TINY, "--max-steps", "20", "--checkpoint-every", "4", "--out", str(out)])
    assert code == 1 and len(errors) == 1 and "non-finite" in errors[0] or "nan" in errors[0], errors
    assert load_checkpoint(out / "checkpoints" / "last.safetensors").step == 6
    assert assert_consistent(out) and (out / "metrics.csv").exists()
    loss_fault.clear()
    code, errors = run_cli(["train", "--resume", str(out / "checkpoints" / "last.safetensors"), "--max-steps", "10",
                            "--out", str(out), "--quiet"])
    assert code == 0 and not errors
    assert load_checkpoint(out / "checkpoints" / "last.safetensors").step == 10


def test_disk_full_during_a_checkpoint_write(tmp_path, monkeypatch):
    real_fsync, calls = os.fsync, []

    def fsync(fd):
        calls.append(fd)
        if len(calls) > 2:  # the first checkpoint (file + folder) succeeds, then the disk is full
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_fsync(fd)

    monkeypatch.setattr(ckpt.os, "fsync", fsync)
    out = tmp_path / "run"
    code, errors = run_cli(["train", *TINY, "--max-steps", "12", "--checkpoint-every", "4", "--out", str(out)])
    assert code == 1 and len(errors) == 1 and "No space left on device" in errors[0], errors
    monkeypatch.undo()
    assert assert_consistent(out) == [4, 4], "step_4 and last.safetensors (a link to it) remain, complete"


def test_a_run_folder_that_cannot_be_created(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    code, errors = run_cli(["train", *TINY, "--max-steps", "3", "--out", str(blocker / "run")])
    assert code != 0 and len(errors) == 1 and str(blocker) in errors[0], errors


def test_out_of_memory_is_explained_with_a_smaller_batch(tmp_path, loss_fault):
    def oom(session, out, step):
        if step == 3:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    loss_fault["fault"] = oom
    code, errors = run_cli(["train", *TINY, "--max-steps", "8", "--out", str(tmp_path / "run")])
    assert code == 1 and len(errors) == 1 and "out of memory" in errors[0].lower()
    assert "smaller batch" in errors[0], errors
    assert_consistent(tmp_path / "run")
    assert "weights of step 3 were saved" in errors[0], errors
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "last.safetensors").step == 3
    loss_fault.clear()  # memory is there again (another device, or other jobs gone): resume where it stopped
    code, errors = run_cli(["train", "--resume", str(tmp_path / "run" / "checkpoints" / "last.safetensors"),
                            "--max-steps", "8", "--out", str(tmp_path / "run")])
    assert code == 0, errors
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "last.safetensors").step == 8


@pytest.mark.slow
def test_ctrl_c_twice_at_an_arbitrary_moment_leaves_no_half_written_file(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "main.py", "train", *TINY, "--max-steps", "100000",
                             "--checkpoint-every", "3", "--out", str(out)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (out / "checkpoints" / "last.safetensors").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode in (0, 130), err
    assert len([line for line in err.splitlines() if line.startswith("error:")]) <= 1, err
    assert "Traceback" not in err, err
    assert assert_consistent(out)
