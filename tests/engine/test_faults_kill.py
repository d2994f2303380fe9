"""SIGKILL a training process at chosen and at random moments — inside checkpoint writes too — and check that
the last complete checkpoint always loads, resuming from it works, and the run folder stays consistent."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from engine.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[2]
CHILD = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from engine import checkpoint as ckpt
    from engine.config import TrainConfig
    from engine.data import load_dataset
    from engine.events import CheckpointWritten, Finished
    from engine.training import TrainingSession

    out, trap, max_steps = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    if trap != "none":  # die by SIGKILL at the N-th call of a step inside write_checkpoint/link_or_copy
        name, count = trap.split(":")
        real, calls = getattr(os, name), [0]
        def trapped(*args, **kwargs):
            calls[0] += 1
            if calls[0] == int(count):
                os.kill(os.getpid(), signal.SIGKILL)
            return real(*args, **kwargs)
        setattr(ckpt.os, name, trapped)
    last = out / "checkpoints" / "last.safetensors"
    if last.exists():
        session = TrainingSession.from_checkpoint(last, max_steps=max_steps)
    else:
        cfg = TrainConfig(dataset="digits", family="vae", hparams={"latent_dim": 3, "hidden": 64, "depth": 1},
                          max_steps=max_steps, batch_size=32, checkpoint_every_steps=2, out_dir=str(out),
                          preview_every_s=3600.0, threads=1)
        session = TrainingSession(cfg, load_dataset("digits"))
    print("start", session.step, flush=True)
    for event in session.run():
        if isinstance(event, CheckpointWritten):
            print("checkpoint", event.step, flush=True)
        elif isinstance(event, Finished):
            print("finished", event.step, flush=True)
""")


def run_child(out: Path, trap: str = "none", max_steps: int = 400, kill_after_s: float | None = None,
              tmp_script: Path | None = None) -> tuple[int, list[str]]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(out), trap, str(max_steps)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if kill_after_s is not None:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # "start N": the process is past its imports and training
        time.sleep(kill_after_s)
        proc.send_signal(signal.SIGKILL)
        rest, err = proc.communicate(timeout=60)
        return proc.returncode, [first.strip(), *rest.splitlines()]
    stdout, err = proc.communicate(timeout=120)
    assert "Traceback" not in err, err
    return proc.returncode, stdout.splitlines()


def check_run_folder(out: Path) -> int:
    """Every visible checkpoint loads; last.safetensors (when present) is one of them; metrics.jsonl parses."""
    folder = out / "checkpoints"
    steps = {}
    for path in sorted(folder.glob("*.safetensors")):
        steps[path.name] = load_checkpoint(path).step
    lines = (out / "metrics.jsonl").read_text(encoding="utf-8").splitlines() if (out / "metrics.jsonl").exists() \
        else []
    for line in lines:
        json.loads(line)
    if "last.safetensors" not in steps:
        return 0
    last = steps.pop("last.safetensors")
    assert f"step_{last}.safetensors" in steps, "last.safetensors is not a complete step checkpoint"
    return last


@pytest.mark.slow
def test_sigkill_inside_checkpoint_writes_and_at_random_moments(tmp_path):
    out = tmp_path / "run"
    # Deterministic kills inside the write: before the temp file is fsynced, before the rename, before the link
    # to last.safetensors (the 1st, 2nd, … checkpoint of the run, so the run has progressed in between).
    traps = ["fsync:1", "replace:3", "link:2"]
    rng = random.Random(8)
    expected_start = 0
    for attempt in range(len(traps) + 1):
        trap = traps[attempt] if attempt < len(traps) else "none"
        kill_after = None if attempt < len(traps) else rng.uniform(0.05, 0.6)
        code, lines = run_child(out, trap, kill_after_s=kill_after)
        assert code == -signal.SIGKILL, lines
        assert lines[0] == f"start {expected_start}", (attempt, lines)
        expected_start = check_run_folder(out)
    code, lines = run_child(out, max_steps=expected_start + 4)
    assert code == 0 and lines[0] == f"start {expected_start}" and lines[-1] == f"finished {expected_start + 4}"
    assert check_run_folder(out) == expected_start + 4
    assert not list(out.rglob("*.tmp")), "temporary files of killed writes were left behind"


def test_only_temp_files_of_dead_writers_are_removed(tmp_path):
    from engine.checkpoint import remove_stale_temp_files

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".step_3.safetensors.{int(dead.stdout)}.1.tmp"
    live = tmp_path / f".step_4.safetensors.{os.getppid()}.1.tmp"
    other = tmp_path / "notes.tmp"
    for path in (stale, live, other):
        path.write_bytes(b"x")
    assert remove_stale_temp_files(tmp_path) == [stale]
    assert live.exists() and other.exists() and not stale.exists()


def test_a_record_cut_by_a_kill_is_dropped_before_appending(tmp_path):
    from engine.config import TrainConfig
    from engine.data import load_dataset
    from engine.training import TrainingSession

    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.jsonl").write_text('{"kind": "step", "step": 1}\n{"kind": "st', encoding="utf-8")
    cfg = TrainConfig(dataset="digits", family="ae", hparams={"latent_dim": 2, "hidden": 8, "depth": 1},
                      max_steps=2, batch_size=32, out_dir=str(out))
    list(TrainingSession(cfg, load_dataset("digits")).run())
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    assert records[0] == {"kind": "step", "step": 1} and [r["step"] for r in records[1:3]] == [1, 2]
    assert not list(out.rglob("*.tmp")) and (out / "config.toml").read_text().startswith("[data]")
