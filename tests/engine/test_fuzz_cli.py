"""Hypothesis fuzzing of the CLI in-process (`engine.cli.main(argv)`): any argument list ends with status 0, or a
non-zero status and exactly ONE `error:` line on stderr — never a traceback. argparse's own exits (usage errors,
--help) are SystemExit with an int code and are held to the same one-line rule.

Training commands that get through validation train for real but are stopped after two steps (the target is the
argument handling, not training); every other command runs unchanged on a tiny checkpoint. Derandomised."""

from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import training
from engine.cli import main
from engine.config import TrainConfig
from engine.data import load_dataset
from engine.events import StepMetrics

FUZZ = settings(derandomize=True, max_examples=1000, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
WORKDIR = Path(tempfile.mkdtemp(prefix="fuzz-cli-"))


def _tiny_checkpoint() -> Path:
    cfg = TrainConfig(dataset="digits", family="cvae", hparams={"latent_dim": 2, "hidden": 8, "depth": 1},
                      max_steps=2, batch_size=32)
    session = training.TrainingSession(cfg, load_dataset("digits"))
    list(session.run())
    return session.save_checkpoint(WORKDIR / "tiny.safetensors")


CHECKPOINT = str(_tiny_checkpoint())
GARBAGE = WORKDIR / "garbage.safetensors"
GARBAGE.write_bytes(b"\x00" * 100)
CONFIG = WORKDIR / "bad.toml"
CONFIG.write_text("[training]\nlr = 'fast'\n", encoding="utf-8")

PATHS = [CHECKPOINT, str(GARBAGE), str(WORKDIR / "missing.safetensors"), str(WORKDIR), "", "-", "\x7f"]
NUMBERS = ["0", "1", "2", "-1", "3", "x", "1e9", "99999999999999999999", "nan", "0.5", ""]
WORDS = ["vae", "cvae", "beta-vae", "vq-vae", "nope", "digits", "mnist", "dsprites?bogus=1", "digits?x=1", "mnist-vae",
         "digits-ae", "all", "mig", "lerp", "slerp", "prior", "0,1", "9", "a,b", "latent_dim=2", "beta=-1",
         "hidden=8", "depth=1", "latent_dim", "=3", "k=99", "likelihood=poisson"]
FLAGS = ["--help", "--json", "--quiet", "--compile", "--epochs", "--max-steps", "--batch-size", "--lr", "--seed",
         "--threads", "--device", "--model", "--dataset", "--set", "--preset", "--config", "--resume", "--out",
         "--checkpoint-every", "--iwae-k", "--iwae-subset", "--batch", "--metrics", "--n", "--label", "--cols",
         "--dims", "--steps", "--range", "--base", "--from", "--to", "--mode", "--show", "--bogus"]
COMMANDS = ["datasets", "models", "presets", "train", "eval", "sample", "traverse", "interpolate", "nope", ""]

tokens = st.sampled_from(FLAGS + NUMBERS + WORDS + PATHS + ["cuda", "cpu", str(CONFIG)]) | st.text(max_size=6)


@st.composite
def argvs(draw) -> list[str]:
    argv = [draw(st.sampled_from(COMMANDS))]
    if argv[0] in ("eval", "sample", "traverse", "interpolate") and draw(st.integers(0, 3)):
        argv.append(CHECKPOINT if draw(st.integers(0, 2)) else draw(st.sampled_from(PATHS)))
    if argv[0] in ("sample", "traverse", "interpolate", "train") and draw(st.integers(0, 3)):
        suffix = draw(st.sampled_from([".png", ".gif", ".txt", ""]))
        argv += ["--out", str(WORKDIR / ("out" + suffix)) if argv[0] != "train" else str(WORKDIR / "run")]
    if argv[0] == "eval":
        argv += ["--iwae-k", draw(st.sampled_from(["0", "2", "-1", "x"])), "--iwae-subset", "8"]
    argv += draw(st.lists(tokens, max_size=6))
    return argv


def stop_after_two_steps(monkeypatch_run):
    def run(self, control=None):
        from engine.control import Control

        control = control or Control()
        steps = 0
        for event in monkeypatch_run(self, control):
            if isinstance(event, StepMetrics):
                steps += 1
                if steps >= 2:
                    control.stop()
            yield event

    return run


REAL_RUN = training.TrainingSession.run


@FUZZ
@given(argvs())
def test_cli_arguments(argv):
    out, err = io.StringIO(), io.StringIO()
    training.TrainingSession.run = stop_after_two_steps(REAL_RUN)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as exc:  # argparse: usage error (2) or --help (0)
                assert isinstance(exc.code, int), f"{argv}: SystemExit({exc.code!r})"
                code = exc.code
    finally:
        training.TrainingSession.run = REAL_RUN
    stderr = err.getvalue()
    assert "Traceback" not in stderr, f"{argv}: {stderr}"
    if code != 0:
        errors = [line for line in stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and len(errors[0]) > len("error: ") + 5, f"{argv} → {code}: {stderr!r}"
