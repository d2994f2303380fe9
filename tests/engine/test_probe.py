"""The live disentanglement probe: cadence, equality with the engine's MIG, history through checkpoints."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
import torch

from engine import explore
from engine import probe as live_probe
from engine.checkpoint import load_checkpoint
from engine.config import TrainConfig
from engine.control import Control
from engine.data import load_dataset
from engine.errors import ConfigError
from engine.events import DisentanglementProbe, Paused, StepMetrics
from engine.metrics import MetricSizes, compute_metrics
from engine.training import TrainingSession

POSITION_ONLY = "dsprites?shape=square&scale=5&orientation=0"
TINY = {"latent_dim": 4, "hidden": 32, "depth": 1, "backbone": "mlp", "beta": 4.0}


@pytest.fixture(scope="module")
def squares():
    return load_dataset(POSITION_ONLY)


def config(**changes) -> TrainConfig:
    base = TrainConfig(dataset=POSITION_ONLY, family="beta-vae", hparams=dict(TINY), max_steps=12, batch_size=32,
                       preview_every_s=3600.0, probe_every_s=3600.0)
    return base.replace(**changes)


def probes(events) -> list[DisentanglementProbe]:
    return [e for e in events if isinstance(e, DisentanglementProbe)]


def test_probe_off_by_default_and_at_zero(squares):
    assert TrainConfig().probe_every_s == 0.0
    events = list(TrainingSession(config(probe_every_s=0.0), squares).run())
    assert probes(events) == []
    with pytest.raises(ConfigError, match="probe_every_s"):
        config(probe_every_s=-1.0)


def test_first_probe_at_once_then_at_the_cadence_and_at_the_end(squares):
    events = list(TrainingSession(config(), squares).run())
    found = probes(events)
    assert [p.step for p in found] == [1, 12]  # the untrained baseline, then (cadence 1 h) only the run's end
    first = found[0]
    assert first.factor_names == ("posX", "posY") and first.points == live_probe.PROBE_POINTS
    assert len(first.mi) == 4 and all(len(row) == 2 for row in first.mi)
    assert all(0.0 <= v <= 1.0 for row in first.mi for v in row)
    assert first.best_factor == tuple(int(np.argmax(row)) for row in first.mi)
    assert first.mig == pytest.approx(np.mean(first.mig_per_factor))
    # each probe follows the step metrics of its step
    order = [(type(e).__name__, e.step) for e in events if isinstance(e, StepMetrics | DisentanglementProbe)]
    assert order.index(("DisentanglementProbe", 1)) == order.index(("StepMetrics", 1)) + 1


def test_schedule_keeps_the_cadence_and_the_cost_share():
    schedule = live_probe.ProbeSchedule(every_s=5.0, max_share=0.05)
    assert schedule.due(0.0)
    schedule.done(clock=0.1, cost_s=0.1)
    assert not schedule.due(5.0) and schedule.due(5.1)
    schedule.done(clock=10.0, cost_s=1.0)  # a 1 s probe: the next waits 19 s so probing stays at 5 %
    assert not schedule.due(28.9) and schedule.due(29.0)


def test_probes_wait_while_paused(squares):
    session = TrainingSession(config(max_steps=5000, probe_every_s=0.01), squares)
    control = Control()
    seen: list = []
    for event in session.run(control):
        seen.append(event)
        if isinstance(event, StepMetrics) and event.step == 3:
            control.pause()
            threading.Timer(0.3, control.resume).start()
        if isinstance(event, DisentanglementProbe) and event.step > 3:
            control.stop()  # the first probe after the pause
    paused_at = next(i for i, e in enumerate(seen) if isinstance(e, Paused))
    resumed_at = next(i for i, e in enumerate(seen) if type(e).__name__ == "Resumed")
    assert not probes(seen[paused_at:resumed_at])
    assert [p.step for p in probes(seen)][0] == 1 and len(probes(seen[resumed_at:])) == 1


def test_probe_equals_the_engines_mig_on_the_same_sample(squares):
    session = TrainingSession(config(max_steps=40), squares)
    last = probes(list(session.run()))[-1]
    model = session.snapshot_model()

    def represent(factors):
        return explore.encode_means(model, squares.render_factors(factors))

    sizes = MetricSizes(train_points=live_probe.PROBE_POINTS, test_points=10)
    reference = compute_metrics(represent, squares, names=["mig"], seed=session.config.seed, sizes=sizes)
    assert last.mig == pytest.approx(reference["mig"], abs=1e-9)
    np.testing.assert_allclose(np.asarray(last.mi), np.asarray(reference["mi_matrix"]), atol=1e-9)
    assert list(last.factor_names) == reference["factor_names"]


def test_a_probed_run_trains_exactly_like_an_unprobed_one(squares):
    plain = TrainingSession(config(max_steps=15, probe_every_s=0.0), squares)
    list(plain.run())  # each session seeds the global RNG when built: build the second after the first ran
    probed = TrainingSession(config(max_steps=15, probe_every_s=0.001), squares)
    assert len(probes(list(probed.run()))) >= 2
    for a, b in zip(plain.model.state_dict().values(), probed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_history_round_trips_through_a_checkpoint_and_resume(squares, tmp_path):
    out = tmp_path / "run"
    session = TrainingSession(config(out_dir=str(out)), squares)
    seen = probes(list(session.run()))
    loaded = load_checkpoint(out / "checkpoints" / "last.safetensors")
    restored = live_probe.probes_in_history(loaded.history)
    assert [p.step for p in restored] == [p.step for p in seen] == [1, 12]
    assert restored[-1].mig == pytest.approx(seen[-1].mig, abs=1e-6)
    np.testing.assert_allclose(np.asarray(restored[-1].mi), np.asarray(seen[-1].mi), atol=1e-4)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "probe"] == [1, 12]

    resumed = TrainingSession.from_checkpoint(out / "checkpoints" / "last.safetensors", max_steps=20)
    more = probes(list(resumed.run()))
    assert [p.step for p in more] == [13, 20]
    assert [p.step for p in live_probe.probes_in_history(resumed.history)] == [1, 12, 13, 20]


def test_probe_not_possible_says_why(squares):
    digits = load_dataset("digits")
    session = TrainingSession(TrainConfig(dataset="digits", family="vae", hparams={"latent_dim": 2, "hidden": 16,
                                                                                   "depth": 1},
                                          max_steps=3, probe_every_s=1.0), digits)
    assert "no ground-truth factors" in session.probe_note
    assert probes(list(session.run())) == []
    vq = TrainingSession(config(family="vq-vae", hparams={"hidden": 16, "depth": 1, "backbone": "mlp"}), squares)
    assert "discrete" in vq.probe_note
    assert live_probe.unavailable_reason(squares, TrainingSession(config(), squares).model) is None


def test_history_thinning_keeps_the_newest_and_malformed_records_are_skipped():
    history = [{"kind": "step", "step": 0}] + [{"kind": "probe", "step": i} for i in range(7)]
    thinned = live_probe.thin_probe_records(history, limit=4)
    steps = [r["step"] for r in thinned if r["kind"] == "probe"]
    assert steps[-1] == 6 and len(steps) <= 4 and thinned[0]["kind"] == "step"
    good = {"kind": "probe", "step": 3, "mig": 0.5, "mi": [[0.1, 0.9], [0.8, 0.2]], "factor_names": ["a", "b"]}
    bad = [{"kind": "probe", "step": 4, "mig": "x", "mi": [[1]], "factor_names": ["a"]},
           {"kind": "probe", "step": 5, "mig": 0.1, "mi": [[0.1]], "factor_names": ["a", "b"]}, "junk", None]
    found = live_probe.probes_in_history([good, *bad])
    assert len(found) == 1 and found[0].best_factor == (1, 0)
    assert live_probe.factor_labels(found[0], [1, 0, 7]) == ["a 0.80", "b 0.90", ""]
