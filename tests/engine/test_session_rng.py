"""A training session owns its randomness and leaves process-wide state alone (issue 20, bug 2).

Building a second session used to call `torch.manual_seed` (reseeding every generator of the process), and its
threads/determinism settings applied to the whole process: a run's losses changed from the step after another
session was built beside it (the Sweep tab's in-process runs beside the app's run). Now each session draws its
initial weights, data order and noise from its own generators (engine/rng.py).
"""

from __future__ import annotations

import pytest
import torch

from engine.config import TrainConfig
from engine.control import Control
from engine.data import load_dataset
from engine.events import Failed, StepMetrics
from engine.training import TrainingSession

TINY = {"backbone": "mlp", "latent_dim": 3, "hidden": 16, "depth": 1}
EXTRA = {"vq-vae": {"positions": 2, "codebook_size": 8, "reset_every": 3},
         "factor-vae": {"disc_hidden": 8, "disc_layers": 1}, "hvae": {"z1_dim": 3}, "iwae": {"k": 2}}
STEPS = 8


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def _session(digits, family: str, seed: int, process_settings: bool | None = None, **changes) -> TrainingSession:
    config = TrainConfig(dataset="digits", family=family, hparams={**TINY, **EXTRA.get(family, {})},
                         max_steps=STEPS, batch_size=32, seed=seed, preview_every_s=3600.0, test_fraction=0.05,
                         **changes)
    return TrainingSession(config, digits, process_settings=process_settings)


def _next_loss(events) -> float:
    for event in events:
        assert not isinstance(event, Failed), event.cause
        if isinstance(event, StepMetrics):
            return event.terms["total"]
    raise AssertionError("the run ended early")


@pytest.mark.parametrize("family", ["vae", "dae", "factor-vae", "vq-vae", "hvae", "fullcov-vae"])
def test_a_second_session_beside_a_running_one_changes_none_of_its_losses(digits, family):
    alone = _session(digits, family, seed=3)
    events = alone.run(Control())
    expected = [_next_loss(events) for _ in range(STEPS)]
    events.close()

    a = _session(digits, family, seed=3)
    run_a = a.run(Control())
    losses = [_next_loss(run_a), _next_loss(run_a)]
    b = _session(digits, family, seed=11)  # built while A trains, with another seed
    run_b = b.run(Control())
    for _ in range(STEPS - 2):
        _next_loss(run_b)
        torch.manual_seed(12345)  # whatever else the process does with the global generators
        torch.randn(7)
        losses.append(_next_loss(run_a))
    run_a.close()
    run_b.close()
    assert losses == expected


def test_a_session_neither_reads_nor_reseeds_the_global_generators(digits):
    torch.manual_seed(77)
    before = torch.get_rng_state()
    session = _session(digits, "dae", seed=5)
    events = session.run(Control())
    for _ in range(3):
        _next_loss(events)
    events.close()
    assert torch.equal(torch.get_rng_state(), before)


def test_the_same_seed_repeats_and_another_seed_differs(digits):
    def losses(seed):
        events = _session(digits, "vae", seed=seed).run(Control())
        values = [_next_loss(events) for _ in range(3)]
        events.close()
        return values

    assert losses(4) == losses(4) != losses(5)


def test_a_session_built_while_another_trains_leaves_threads_and_determinism_alone(digits):
    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    a = _session(digits, "vae", seed=1)
    run_a = a.run(Control())
    _next_loss(run_a)
    b = _session(digits, "vae", seed=2, threads=threads + 1, deterministic=not deterministic)
    assert torch.get_num_threads() == threads
    assert torch.are_deterministic_algorithms_enabled() == deterministic
    assert any("leaves the process's torch settings alone" in w for w in b.warnings)
    run_a.close()
    asked = _session(digits, "vae", seed=2, threads=threads, deterministic=True, process_settings=True)
    try:
        assert torch.are_deterministic_algorithms_enabled() and not asked.warnings
    finally:
        torch.use_deterministic_algorithms(deterministic)


def test_a_users_model_that_samples_with_torch_itself_draws_from_its_sessions_stream(digits, tmp_path):
    """docs/your-model.md's TinyVAE calls `torch.randn_like` in its own loss: beside another session and a process
    that reseeds the global generators, its losses must still be those of the run alone."""
    from pathlib import Path

    from engine.models.user_file import load_model_file

    text = (Path(__file__).resolve().parents[2] / "docs" / "your-model.md").read_text(encoding="utf-8")
    model_file = tmp_path / "tiny_vae.py"
    model_file.write_text(text.split("```python\n", 1)[1].split("```", 1)[0], encoding="utf-8")
    family = load_model_file(model_file).family
    assert "torch.randn_like" in model_file.read_text(encoding="utf-8")

    def user_session(seed: int) -> TrainingSession:
        return TrainingSession(TrainConfig(dataset="digits", family=family, hparams={"latent_dim": 2, "hidden": 16},
                                           max_steps=STEPS, batch_size=32, seed=seed, preview_every_s=3600.0,
                                           test_fraction=0.05), digits)

    alone = user_session(3).run(Control())
    expected = [_next_loss(alone) for _ in range(STEPS)]
    alone.close()
    run_a = user_session(3).run(Control())
    run_b = _session(digits, "vae", seed=11).run(Control())
    losses = []
    for _ in range(STEPS):
        _next_loss(run_b)
        torch.manual_seed(12345)
        torch.randn(7)
        losses.append(_next_loss(run_a))
    run_a.close()
    run_b.close()
    assert losses == expected
