"""torch.compile and live changes: a new β (or γ, lr) between steps must not recompile the loss (issue 20, bug 5).

The compiled loss reads the live hyperparameters as 0-d tensors while dynamo traces it (`ModelBase.live_value`), so
a new value is new data, not a new constant: dynamo's counters show one compilation and no recompilation across
five live changes. CPU only; the model is tiny so the single compile stays short.
"""

from __future__ import annotations

import pytest
import torch
from torch._dynamo.utils import counters

from engine import compiling
from engine.config import TrainConfig
from engine.control import Control
from engine.data import load_dataset
from engine.events import Failed, StepMetrics, Warning_
from engine.training import TrainingSession

TINY = {"backbone": "mlp", "latent_dim": 2, "hidden": 8, "depth": 1}


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
@pytest.mark.parametrize(("family", "live"), [("beta-vae", "beta")])
def test_five_live_changes_compile_once(family, live, device, monkeypatch):
    import torch._inductor.config

    monkeypatch.setattr(torch._inductor.config, "compile_threads", 1)  # no compile-worker pool outliving the test
    torch._dynamo.reset()
    counters.clear()
    hparams = dict(TINY, **({"disc_hidden": 8, "disc_layers": 1} if family == "factor-vae" else {}))
    config = TrainConfig(dataset="digits", family=family, hparams=hparams, max_steps=12, batch_size=16,
                         compile=True, preview_every_s=3600.0, test_fraction=0.05, device=device, metrics_every=1)
    session = TrainingSession(config, load_dataset("digits"))
    control = Control()
    seen, compiled_after_first_step = [], None
    for event in session.run(control):
        assert not isinstance(event, Failed | Warning_), event
        if isinstance(event, StepMetrics):
            seen.append(event.live.get(live))
            if event.step == 1:
                compiled_after_first_step = counters["frames"]["total"]
            if 2 <= event.step <= 6:
                control.set(live, 1.0 + event.step)
                control.set("lr", 1e-3 / event.step)
    assert {3.0, 4.0, 5.0, 6.0, 7.0} <= set(seen)  # every change reached the loss and was echoed
    assert compiled_after_first_step and counters["stats"]["unique_graphs"] >= 1  # it did compile
    assert counters["frames"]["total"] == compiled_after_first_step, "a live change recompiled the loss"


@pytest.mark.parametrize("mode", ["reduce-overhead", "max-autotune"])
def test_every_compile_mode_that_records_cuda_graphs_takes_the_graphing_path(mode, monkeypatch):
    """Both graphing modes mark each step and clone the KL per latent kept past it (a replay overwrites the graph's
    outputs); checked on the CPU by making the session believe it is on CUDA and recording what the step does."""
    cuda = torch.device("cuda")
    assert compiling.uses_cuda_graphs(True, mode, cuda)
    assert not compiling.uses_cuda_graphs(True, "default", cuda)
    assert not compiling.uses_cuda_graphs(False, mode, cuda)
    assert not compiling.uses_cuda_graphs(True, mode, torch.device("cpu"))

    real = compiling.uses_cuda_graphs
    monkeypatch.setattr(compiling, "uses_cuda_graphs", lambda on, name, device: real(on, name, cuda))
    outputs, marks = [], []

    def compile_records(fn, mode=None):  # the session's path, not the compiler
        def loss(*args):
            out = fn(*args)
            outputs.append(out.kl_per_dim)
            return out
        return loss

    monkeypatch.setattr(torch, "compile", compile_records)
    monkeypatch.setattr(torch.compiler, "cudagraph_mark_step_begin", lambda: marks.append(len(outputs)))
    config = TrainConfig(dataset="digits", family="vae", hparams=dict(TINY), max_steps=4, batch_size=16,
                         compile=True, compile_mode=mode, preview_every_s=3600.0, test_fraction=0.05)
    session = TrainingSession(config, load_dataset("digits"))
    events = list(session.run(Control()))
    assert not [e for e in events if isinstance(e, Failed | Warning_)]
    assert marks == [0, 1, 2, 3]  # marked before every step's forward
    assert session._last_kl is not None and session._last_kl.data_ptr() != outputs[-1].data_ptr()
    assert torch.equal(session._last_kl, outputs[-1])
