"""One run on two processes (torchrun, gloo on CPU): the same loss curve as one process with the global batch,
one run folder written by rank 0, a killed rank ends the job, checkpoints move between 2 ranks and 1 process.

Each torchrun launch costs ~10–30 s here (two fresh interpreters importing torch), so the 2-rank runs are module
fixtures shared by the tests that read them; the 1-process references run in this process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import torch

from engine.checkpoint import read_checkpoint
from engine.config import TrainConfig
from engine.distributed import SINGLE, Parallel, rand_like_batch, randn_like_batch
from engine.errors import ConfigError
from engine.events import Failed
from engine.training import TrainingSession

ROOT = Path(__file__).resolve().parents[2]
HPARAMS = {"latent_dim": 3, "hidden": 32, "depth": 1, "backbone": "mlp"}
STEPS, HALF, GLOBAL_BATCH, SEED = 12, 6, 64, 3
TOLERANCE = 1e-4  # relative; float summation order differs (two half-batch means averaged vs one mean)


def cli_args(family: str, out: Path, *extra: str) -> list[str]:
    sets = [a for k, v in HPARAMS.items() for a in ("--set", f"{k}={v}")]
    return ["main.py", "train", "--model", family, "--dataset", "digits", *sets, "--batch-size", str(GLOBAL_BATCH),
            "--device", "cpu", "--threads", "1", "--seed", str(SEED), "--quiet", "--out", str(out), *extra]


def torchrun(*args: str, **popen) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    env.update(popen.pop("env", {}))
    return subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                             *args], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, **popen)


def finish(proc: subprocess.Popen, timeout: float = 150.0) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of a torchrun job; a job still running after `timeout` fails the test."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"torchrun did not end within {timeout} s (a rank hangs?): {err[-2000:]}")
    return proc.returncode, out, err


def step_totals(run_dir: Path) -> dict[int, float]:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["terms"]["total"] for r in records if r["kind"] == "step"}


def one_process_run(family: str, out: Path, steps: int = STEPS, resume: Path | None = None) -> dict[int, float]:
    """The reference: one process, the same global batch and seed, trained here."""
    if resume is not None:
        session = TrainingSession.from_checkpoint(resume, max_steps=steps, out_dir=str(out))
    else:
        config = TrainConfig(dataset="digits", family=family, hparams=dict(HPARAMS), batch_size=GLOBAL_BATCH,
                             max_steps=steps, seed=SEED, device="cpu", threads=1, checkpoint_every_steps=HALF,
                             out_dir=str(out))
        session = TrainingSession(config)
    events = list(session.run())
    assert not any(isinstance(e, Failed) for e in events)
    return step_totals(out)


def assert_same_curve(two_ranks: dict[int, float], one: dict[int, float]) -> None:
    assert sorted(two_ranks) == sorted(one) and len(one) >= HALF
    for step, total in one.items():
        assert two_ranks[step] == pytest.approx(total, rel=TOLERANCE), f"step {step}"


@pytest.fixture(scope="module")
def two_rank_runs(tmp_path_factory):
    """vae and beta-vae trained by 2 ranks of batch 32 (global 64), a checkpoint every 6 steps."""
    base = tmp_path_factory.mktemp("ddp")
    runs = {}
    for family in ("vae", "beta-vae"):
        out = base / family
        code, stdout, err = finish(torchrun(*cli_args(family, out, "--max-steps", str(STEPS), "--checkpoint-every",
                                                      str(HALF))))
        assert code == 0, err[-3000:]
        runs[family] = (out, stdout + err)
    return runs


# --- the 2-rank runs ------------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("family", ["vae", "beta-vae"])
def test_two_ranks_match_one_process_with_the_global_batch(family, two_rank_runs, tmp_path):
    out, _ = two_rank_runs[family]
    assert_same_curve(step_totals(out), one_process_run(family, tmp_path / "one"))


@pytest.mark.slow
def test_only_rank_zero_writes_one_run_folder(two_rank_runs):
    out, printed = two_rank_runs["vae"]
    assert sorted(p.name for p in out.parent.iterdir()) == ["beta-vae", "vae"]
    assert sorted(p.name for p in out.iterdir() if p.name != "tensorboard") == [
        "checkpoints", "config.toml", "metrics.csv", "metrics.jsonl", "previews"]
    steps = [s for s in step_totals(out)]
    assert steps == list(range(1, STEPS + 1)), "one writer: each step logged once"
    assert printed.count("completed at step") == 1 and printed.count("training vae on digits") == 1
    meta, _ = read_checkpoint(out / "checkpoints" / "last.safetensors")
    assert meta["world_size"] == 2 and meta["step"] == STEPS


@pytest.mark.slow
def test_a_two_rank_checkpoint_resumes_in_one_process(two_rank_runs, tmp_path):
    out, _ = two_rank_runs["vae"]
    reference = one_process_run("vae", tmp_path / "reference")
    resumed = one_process_run("vae", tmp_path / "resumed", resume=out / "checkpoints" / f"step_{HALF}.safetensors")
    assert sorted(resumed) == list(range(HALF + 1, STEPS + 1))
    for step, total in resumed.items():
        assert total == pytest.approx(reference[step], rel=TOLERANCE), f"step {step}"


@pytest.mark.slow
def test_a_one_process_checkpoint_resumes_on_two_ranks(tmp_path):
    reference = one_process_run("vae", tmp_path / "one")
    checkpoint = tmp_path / "one" / "checkpoints" / f"step_{HALF}.safetensors"
    out = tmp_path / "two"
    proc = torchrun("main.py", "train", "--resume", str(checkpoint), "--max-steps", str(STEPS), "--quiet",
                    "--out", str(out))
    code, _, err = finish(proc)
    assert code == 0, err[-3000:]
    resumed = step_totals(out)
    assert sorted(resumed) == list(range(HALF + 1, STEPS + 1))
    for step, total in resumed.items():
        assert total == pytest.approx(reference[step], rel=TOLERANCE), f"step {step}"


@pytest.mark.slow
def test_a_killed_rank_ends_the_job_with_an_error(tmp_path):
    tag = uuid.uuid4().hex
    out = tmp_path / "killed"
    proc = torchrun(*cli_args("vae", out, "--max-steps", "1000000"), env={"LATENT_EXPLORER_TEST_TAG": tag})
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and len(step_totals(out) if (out / "metrics.jsonl").is_file() else {}) < 3:
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        time.sleep(0.3)
    ranks = _ranks_with_tag(tag)
    assert set(ranks) == {0, 1}, ranks
    os.kill(ranks[1], signal.SIGKILL)
    code, _, err = finish(proc, timeout=90)
    assert code != 0
    assert "failed" in err.lower() or "error" in err.lower()
    time.sleep(0.5)
    assert not _alive(ranks[0]), "rank 0 was left running"


@pytest.mark.slow
def test_ctrl_c_stops_every_rank_at_the_same_step_and_rank_zero_saves(tmp_path):
    out = tmp_path / "interrupted"
    proc = torchrun(*cli_args("vae", out, "--max-steps", "1000000"))
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and len(step_totals(out) if (out / "metrics.jsonl").is_file() else {}) < 3:
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        time.sleep(0.3)
    proc.send_signal(signal.SIGINT)  # what Ctrl+C in the terminal does: torchrun forwards it to every rank
    _, stdout, err = finish(proc, timeout=90)
    assert "stopped at step" in stdout, err[-2000:]
    meta, _ = read_checkpoint(out / "checkpoints" / "last.safetensors")
    assert 3 <= meta["step"] < 1_000_000 and meta["world_size"] == 2
    assert max(step_totals(out)) == meta["step"], "the ranks stopped after the same step, logged once"


PROBE_RUN = """
import json
from engine.config import TrainConfig
from engine.distributed import Parallel
from engine.events import DisentanglementProbe, Finished
from engine.training import TrainingSession

parallel = Parallel.from_environment()
try:
    config = TrainConfig(dataset="dsprites?shape=square&scale=5&orientation=0", family="beta-vae", batch_size=32,
                         hparams={"latent_dim": 3, "hidden": 32, "depth": 1, "backbone": "mlp"}, max_steps=8,
                         device="cpu", threads=1, preview_every_s=3600.0, probe_every_s=0.001)
    session = TrainingSession(config, parallel=parallel)
    events = list(session.run())
    print("RANK", json.dumps({"rank": parallel.rank, "finished": isinstance(events[-1], Finished), "step": session.step,
                              "probes": sum(isinstance(e, DisentanglementProbe) for e in events),
                              "history": sum(r.get("kind") == "probe" for r in session.history)}), flush=True)
finally:
    parallel.close()
"""


@pytest.mark.slow
def test_only_rank_zero_runs_the_live_probe(tmp_path):
    """The probe scores on rank 0 alone (the writer); the other rank trains on and meets it at the next all-reduce."""
    script = tmp_path / "probe_run.py"
    script.write_text(PROBE_RUN)
    code, out, err = finish(torchrun(str(script)))
    assert code == 0, err[-3000:]
    ranks = {r["rank"]: r for r in (json.loads(line.split(" ", 1)[1]) for line in out.splitlines()
                                    if line.startswith("RANK "))}
    assert sorted(ranks) == [0, 1] and all(r["finished"] and r["step"] == 8 for r in ranks.values())
    assert ranks[0]["probes"] >= 2 and ranks[0]["history"] == ranks[0]["probes"]  # the first step and the last
    assert ranks[1]["probes"] == 0 and ranks[1]["history"] == 0


def _ranks_with_tag(tag: str) -> dict[int, int]:
    ranks = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            env = dict(item.split("=", 1) for item in (entry / "environ").read_text().split("\0") if "=" in item)
        except OSError:
            continue
        if env.get("LATENT_EXPLORER_TEST_TAG") == tag and "RANK" in env and "TORCHELASTIC_RUN_ID" in env:
            if "main.py" in (entry / "cmdline").read_text():
                ranks[int(env["RANK"])] = int(entry.name)
    return ranks


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "State:\tZ" not in status


# --- the pieces, in one process ---------------------------------------------------------------------------------
def test_without_torchrun_variables_the_run_is_single_process():
    assert Parallel.from_environment({}) is SINGLE
    assert Parallel.from_environment({"WORLD_SIZE": "1", "RANK": "0"}) is SINGLE
    assert not SINGLE.active and SINGLE.is_writer
    idx = torch.arange(10)
    assert SINGLE.shard(idx) is idx and SINGLE.local_batch(7) == 7
    stacked = torch.tensor([1.0, 2.0])
    assert SINGLE.reduce_terms(stacked, True) == (stacked, False)


def test_environment_is_read_and_checked():
    parallel = Parallel.from_environment({"WORLD_SIZE": "4", "RANK": "2", "LOCAL_RANK": "0", "MASTER_ADDR": "h",
                                          "MASTER_PORT": "1"})
    assert (parallel.rank, parallel.world_size, parallel.local_rank, parallel.is_writer) == (2, 4, 0, False)
    assert parallel.shard(torch.arange(8)).tolist() == [4, 5]
    assert parallel.local_batch(64) == 16
    with pytest.raises(ConfigError, match="divisible by the 4 processes"):
        parallel.local_batch(30)
    with pytest.raises(ConfigError, match="torchrun"):
        Parallel.from_environment({"WORLD_SIZE": "2", "RANK": "0"})
    with pytest.raises(ConfigError, match="integers"):
        Parallel.from_environment({"WORLD_SIZE": "two"})
    with pytest.raises(ConfigError):
        Parallel(rank=3, world_size=2)


def test_batch_noise_is_the_global_batchs_rows():
    torch.manual_seed(0)
    whole = torch.randn(8, 3)
    uniform = torch.rand(8, 3)
    for rank in (0, 1):
        torch.manual_seed(0)
        with Parallel(rank, 2).batch_noise():
            part = randn_like_batch(torch.empty(4, 3))
            part_u = rand_like_batch(torch.empty(4, 3))
        assert torch.equal(part, whole[rank * 4:(rank + 1) * 4])
        assert torch.equal(part_u, uniform[rank * 4:(rank + 1) * 4])
    torch.manual_seed(0)
    assert torch.equal(randn_like_batch(torch.empty(8, 3)), whole), "outside a step: plain randn_like"
