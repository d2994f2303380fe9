"""The GPU rules of DESIGN.md, checked on any machine (the `device` fixture; CPU unless asked):

- the training step never waits on the device between metrics pulls (host syncs counted by a torch function mode,
  a CPU stand-in for `torch.cuda.set_sync_debug_mode("error")`; the GPU code path — NaN guard on the device — is
  forced on the CPU, which otherwise checks the loss on the host because there it costs nothing);
- tensors reach numpy only through `.cpu()`;
- no float64 tensor is made by evaluation or exploration (MPS has none);
- inference draws from its own generators: the global ones are never reseeded, and training losses are identical
  with and without panel sampling beside them (the same thread, or another one);
- the NaN guard holds on the device: no NaN reaches the weights or a checkpoint when the loss is pulled every N steps.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from engine import explore
from engine.checkpoint import load_checkpoint
from engine.config import TrainConfig
from engine.control import Control
from engine.data import load_dataset
from engine.evaluate import evaluate
from engine.events import CheckpointWritten, EpochSummary, Failed, Finished, StepMetrics
from engine.models import families
from engine.rng import private_rng
from engine.term_puller import TermPuller
from engine.training import TrainingSession

TINY = {"backbone": "mlp", "latent_dim": 3, "hidden": 24, "depth": 1}
EXTRA = {"k-sparse-ae": {"k": 2}, "hvae": {"z1_dim": 3}, "iwae": {"k": 2},
         "vq-vae": {"positions": 2, "codebook_size": 8}, "factor-vae": {"disc_hidden": 16, "disc_layers": 1}}
SYNCING = {"item", "tolist", "numpy", "__array__", "__bool__", "__int__", "__float__", "__index__", "nonzero",
           "masked_select", "unique", "cpu"}


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def config(device: str, **changes) -> TrainConfig:
    base = TrainConfig(dataset="digits", family="vae", hparams=dict(TINY), max_steps=20, batch_size=32, device=device,
                       preview_every_s=3600.0)
    return base.replace(**changes)


class HostSyncs(TorchFunctionMode):
    """Records every call that makes the host wait for a tensor's value (or builds a tensor from host data on a
    device): on a GPU each is a sync; on a CPU they are counted as if they were."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", str(func))
        kwargs = kwargs or {}
        if name in SYNCING or (name in ("tensor", "as_tensor") and kwargs.get("device") is not None):
            self.calls.append(name)
        return func(*args, **kwargs)


@pytest.mark.parametrize("family", list(families()))
def test_training_steps_never_wait_on_the_device_between_pulls(family, digits, device):
    hparams = {**TINY, **EXTRA.get(family, {})}
    session = TrainingSession(config(device, family=family, hparams=hparams, metrics_every=10, max_steps=30),
                              digits)
    session._guard_on_device = True  # the accelerator path, as on a GPU
    real_step, per_step = session._train_step, []

    def watched(order, stop_requested=False):
        with HostSyncs() as syncs:
            result = real_step(order, stop_requested)
        per_step.append(syncs.calls)
        return result

    session._train_step = watched
    events = list(session.run())
    assert isinstance(events[-1], Finished), events[-1]
    assert [e.step for e in events if isinstance(e, StepMetrics)] == [10, 20, 30]
    assert len(per_step) == 30 and all(not calls for calls in per_step), [c for c in per_step if c]


class PretendDevice(TorchFunctionMode):
    """Counts the run's tensors (weights, dataset, indices) and every tensor computed from them, or made with an
    explicit device, as living on the device — as they would on a GPU. `.cpu()` brings one back; `.numpy()` on
    one that is still "on the device" is what raises TypeError on a GPU, and is recorded."""

    def __init__(self, *roots: torch.Tensor) -> None:
        super().__init__()
        self.on_device = {id(t): t for t in roots}  # id → tensor (kept alive so that ids are not reused)
        self.offenders: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name in ("numpy", "__array__") and id(args[0]) in self.on_device:
            self.offenders.append(f"{name}() of a {tuple(args[0].shape)} {args[0].dtype} device tensor")
        result = func(*args, **kwargs)
        if name == "cpu":
            self.on_device.pop(id(result), None)
            return result
        inputs, _ = tree_flatten((args, kwargs))
        if kwargs.get("device") is not None or any(id(t) in self.on_device for t in inputs
                                                   if isinstance(t, torch.Tensor)):
            for t in tree_flatten(result)[0]:
                if isinstance(t, torch.Tensor):
                    self.on_device[id(t)] = t
        return result


def test_eval_explore_and_panels_reach_numpy_only_through_cpu(digits, device):
    session = TrainingSession(config(device, family="cvae", max_steps=5), digits)
    list(session.run())
    model = session.snapshot_model()
    dataset, indices = session.dataset, session.test_indices  # on the run's device, as the panels get them
    roots = [*model.parameters(), *model.buffers(), dataset.images, dataset.labels, indices]
    with PretendDevice(*roots) as mode:
        stats = explore.latent_stats(model, dataset, indices, n=50)
        explore.encode_means(model, dataset.images_at(indices[:20]), dataset.labels_at(indices[:20]))
        explore.reconstruction_errors(model, dataset.images_at(indices[:20]), dataset.labels_at(indices[:20]))
        evaluate(model, dataset, indices, iwae_k=3, iwae_subset=10)
    assert stats.indices.shape == (50,)
    assert not mode.offenders, mode.offenders


class Float64Made(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, tuple | list) else (out,):
            if isinstance(t, torch.Tensor) and t.dtype == torch.float64:
                self.ops.append(str(func))
        return out


@pytest.mark.parametrize("family", ["vae", "fullcov-vae", "ae"])
def test_evaluation_and_exploration_make_no_float64_tensor(family, digits, device):
    session = TrainingSession(config(device, family=family, max_steps=5), digits)
    list(session.run())
    model, indices = session.snapshot_model(), session.test_indices
    with Float64Made() as mode:
        result = evaluate(model, session.dataset, indices, iwae_k=4 if model.is_variational else 0, iwae_subset=20)
        explore.latent_stats(model, session.dataset, indices, n=60)
        errors = explore.reconstruction_errors(model, session.dataset.images_at(indices[:30]))
    assert not mode.ops, sorted(set(mode.ops))
    assert errors.dtype == np.float64 and np.isfinite(errors).all()  # float64 on the host is fine
    assert np.isfinite(result["recon"]) and len(result["code_variance"]) == 3


@pytest.fixture(scope="module")
def dae(digits):
    from engine.models import create_model

    return create_model("dae", digits.shape, **TINY).eval()


def _panel_sampling(model, dae, dataset, indices) -> None:
    """What the panels do while a run trains: prior samples, denoising noise, evaluation (reparameterised z)."""
    explore.sample_images(model, 8, seed=3)
    explore.denoise_triplets(dae.to(model.device), dataset.images_at(indices[:4]), seed=3)
    evaluate(model, dataset, indices[:64], iwae_k=4, iwae_subset=8, seed=1)


def test_inference_never_reseeds_or_advances_the_global_generators(digits, dae, device, monkeypatch):
    session = TrainingSession(config(device, max_steps=3), digits)
    list(session.run())
    model = session.snapshot_model()

    def forbidden(*args, **kwargs):
        raise AssertionError("inference touched a global generator")

    for target in ("manual_seed", "seed", "set_rng_state"):
        monkeypatch.setattr(torch, target, forbidden)
    monkeypatch.setattr(torch.random, "fork_rng", forbidden)
    monkeypatch.setattr(torch.cuda, "manual_seed_all", forbidden)
    state = torch.get_rng_state()
    cuda_state = torch.cuda.get_rng_state() if torch.cuda.is_available() else None
    _panel_sampling(model, dae, session.dataset, session.test_indices)
    session.make_preview()
    assert torch.equal(state, torch.get_rng_state())
    if cuda_state is not None:
        assert torch.equal(cuda_state, torch.cuda.get_rng_state())


def test_private_rng_repeats_for_a_seed_and_leaves_the_global_stream(device):
    before = torch.get_rng_state()
    with private_rng(7):
        a = torch.randn(5, device=device), torch.rand_like(torch.zeros(3, device=device)), torch.randperm(6)
    with private_rng(7):
        b = torch.randn(5, device=device), torch.rand_like(torch.zeros(3, device=device)), torch.randperm(6)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert torch.equal(before, torch.get_rng_state())


def _losses(session: TrainingSession, between=None) -> list[float]:
    out = []
    for event in session.run():
        if isinstance(event, StepMetrics):
            out.append(event.terms["total"])
            if between is not None:
                between()
    return out


def test_training_losses_identical_with_and_without_panel_sampling_between_steps(digits, dae, device):
    reference = _losses(TrainingSession(config(device, max_steps=15), digits))
    session = TrainingSession(config(device, max_steps=15), digits)
    sampled = _losses(session, lambda: _panel_sampling(session.snapshot_model(), dae, session.dataset,
                                                       session.test_indices))
    assert sampled == reference


def test_training_losses_identical_while_another_thread_samples(digits, dae, device):
    """The app's case: panel inference on its own thread while the run trains (fork_rng + manual_seed there used
    to reseed the generator the training thread was drawing from)."""
    reference = _losses(TrainingSession(config(device, max_steps=40), digits))
    session = TrainingSession(config(device, max_steps=40), digits)
    model = session.snapshot_model()
    done = threading.Event()
    rounds = []

    def panels():
        while not done.is_set():
            _panel_sampling(model, dae, session.dataset, session.test_indices)
            rounds.append(1)

    worker = threading.Thread(target=panels)
    worker.start()
    try:
        concurrent = _losses(session)
    finally:
        done.set()
        worker.join(30)
    assert rounds, "the sampling thread never ran"
    assert concurrent == reference


# --- the NaN guard, with the loss pulled every N steps ---------------------------------------------------------
def poison_at(session: TrainingSession, bad_step: int, corrupt_weights: bool = False) -> None:
    real_loss = session.model.loss
    seen = {"done": False}

    def loss(x, y=None, step=0):
        out = real_loss(x, y, step)
        if int(step) == bad_step and not seen["done"]:
            seen["done"] = True
            if corrupt_weights:
                with torch.no_grad():
                    next(session.model.parameters()).view(-1)[0] = float("nan")
            out.total = out.total * float("nan")
        return out

    session.loss.fn = loss


def test_nan_guard_on_the_device_between_pulls(digits, device, tmp_path):
    """The loss turns NaN at step 13 of a run pulled every 8 steps: the fused optimiser skipped that update (and the
    queued ones after it), the step count goes back to 12, no NaN reaches the weights or the checkpoint."""
    session = TrainingSession(config(device, max_steps=40, metrics_every=8, out_dir=str(tmp_path / "run")), digits)
    session._guard_on_device = True  # the accelerator path, as on a GPU
    poison_at(session, 12)
    events = list(session.run())
    failed = [e for e in events if isinstance(e, Failed)]
    queued = 3 + (8 if session._puller.deferred else 0)  # on CUDA the pull at 16 is read at 24
    assert len(failed) == 1 and not failed[0].recoverable
    assert "at step 13" in failed[0].cause and f"the {queued} queued after it" in failed[0].cause, failed[0].cause
    assert "kept" in failed[0].cause and session.step == 12
    assert all(bool(torch.isfinite(t).all()) for t in session.model.state_dict().values())
    written = [e for e in events if isinstance(e, CheckpointWritten)]
    loaded = load_checkpoint(written[-1].path)
    assert loaded.step == 12 and all(bool(torch.isfinite(t).all()) for t in loaded.model.state_dict().values())
    steps = [e.step for e in events if isinstance(e, StepMetrics)]
    assert steps == [8]


def test_nan_guard_restores_weights_a_bad_update_poisoned(digits, device):
    session = TrainingSession(config(device, max_steps=40, metrics_every=8), digits)
    session._guard_on_device = True
    poison_at(session, 10, corrupt_weights=True)
    events = list(session.run())
    failed = next(e for e in events if isinstance(e, Failed))
    assert "restored from step 0" in failed.cause and session.step == 10
    assert all(bool(torch.isfinite(p).all()) for p in session.model.parameters())


def test_nan_guard_on_the_host_stops_at_once_between_pulls(digits, device):
    """The CPU path (and MPS): the host sees the bad loss before the update, whatever metrics_every is."""
    session = TrainingSession(config(device, max_steps=40, metrics_every=8), digits)
    session._guard_on_device = False
    poison_at(session, 12)
    events = list(session.run())
    failed = next(e for e in events if isinstance(e, Failed))
    assert "at step 13: that step was discarded" in failed.cause and session.step == 12
    assert [e.step for e in events if isinstance(e, StepMetrics)] == [8]


def test_nan_guard_holds_when_pulls_are_read_one_pull_late(digits, device, tmp_path):
    """The CUDA pull (deferred: read at the next pull), forced on any device: the NaN at step 13 is seen at the pull
    of step 24; every update after it was skipped on the device, the step count goes back to 12, and neither the
    weights nor the checkpoint hold a NaN."""
    session = TrainingSession(config(device, max_steps=40, metrics_every=8, out_dir=str(tmp_path / "run")), digits)
    session._guard_on_device = True
    session._puller = TermPuller(session.device, deferred=True)
    poison_at(session, 12)
    events = list(session.run())
    failed = [e for e in events if isinstance(e, Failed)]
    assert len(failed) == 1 and "at step 13" in failed[0].cause and "the 11 queued after it" in failed[0].cause
    assert session.step == 12 and "kept" in failed[0].cause
    assert all(bool(torch.isfinite(t).all()) for t in session.model.state_dict().values())
    loaded = load_checkpoint([e for e in events if isinstance(e, CheckpointWritten)][-1].path)
    assert loaded.step == 12 and all(bool(torch.isfinite(t).all()) for t in loaded.model.state_dict().values())
    assert [e.step for e in events if isinstance(e, StepMetrics)] == [8]


def test_a_stop_after_a_deferred_pull_reads_what_is_queued_before_the_checkpoint(digits, device, tmp_path):
    session = TrainingSession(config(device, max_steps=40, metrics_every=4, out_dir=str(tmp_path / "run")), digits)
    session._guard_on_device = True
    session._puller = TermPuller(session.device, deferred=True)
    control, events = Control(), []
    for event in session.run(control):
        events.append(event)
        if isinstance(event, StepMetrics):
            control.stop()
    metrics = [e for e in events if isinstance(e, StepMetrics)]
    assert [m.step for m in metrics] == [4, 8]  # the pull at 8 read steps 1–4; the stop read 5–8
    assert isinstance(events[-1], Finished) and events[-1].reason == "stopped" and session.step == 8
    assert events[-1].final == metrics[-1].terms
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "last.safetensors").step == 8


@pytest.mark.parametrize("family", ["vae", "factor-vae"])
def test_deferred_pulls_report_what_immediate_pulls_report(family, digits, device):
    """Read one pull late or at once, the same StepMetrics (step, terms) and epoch means come out; epoch ends and
    the last step read everything queued."""
    def run(deferred: bool):
        hparams = {**TINY, **EXTRA.get(family, {})}
        session = TrainingSession(config(device, family=family, hparams=hparams, max_steps=70, metrics_every=4),
                                  digits)
        session._guard_on_device = True
        session._puller = TermPuller(session.device, deferred=deferred)
        events = list(session.run())
        assert isinstance(events[-1], Finished)
        return ([(e.step, e.terms) for e in events if isinstance(e, StepMetrics)],
                [(e.epoch, e.train) for e in events if isinstance(e, EpochSummary)],
                [{k: v for k, v in r.items() if k != "samples_per_s"} for r in session.history])

    immediate, deferred = run(False), run(True)
    assert deferred == immediate
    steps = [step for step, _ in immediate[0]]
    assert steps[:3] == [4, 8, 12] and 50 in steps and steps[-1] == 70 and len(immediate[1]) == 2


def test_a_sweep_run_that_hands_a_device_tensor_to_numpy_does_not_end_the_sweep(tmp_path, digits, monkeypatch):
    """On CUDA `.numpy()` of a device tensor raises TypeError; the runner used to let it end the sweep, so the
    other runs never trained and no summary was written."""
    from engine import sweep
    from engine.sweep import job

    real = job.traversal_image
    calls = []

    def first_run_fails(model, dataset, indices, *args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise TypeError("can't convert cuda:0 device type tensor to numpy. Use Tensor.cpu() first.")
        return real(model, dataset, indices, *args, **kwargs)

    monkeypatch.setattr(job, "traversal_image", first_run_fails)
    out = tmp_path / "sweep"
    base = config("cpu", family="beta-vae", max_steps=4)
    runs = sweep.plan_sweep(base, {"beta": [1.0, 4.0]}, out_dir=out, max_steps=4)
    events = list(sweep.SweepRunner(runs, dataset=digits, out_dir=out, metrics=()).run())
    done = events[-1]
    assert isinstance(done, sweep.SweepDone) and len(done.records) == 2
    assert "TypeError" in done.records[0]["error"] and done.records[1]["status"] == "completed"
    assert (out / "summary.csv").is_file()


def test_factor_vae_trains_in_bf16(digits, device):
    """Its discriminator step runs after the loss, outside autocast, on codes sampled in bf16: they are cast to
    float32 first (it failed with "mat1 and mat2 must have the same dtype")."""
    session = TrainingSession(config(device, family="factor-vae", precision="bf16", max_steps=4,
                                     hparams={**TINY, **EXTRA["factor-vae"]}), digits)
    events = list(session.run(Control()))
    assert isinstance(events[-1], Finished), events[-1]
