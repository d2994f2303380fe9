"""The training session: runs step by step and yields events (engine/events.py); obeys a Control between steps.

Hot loop: data resident on the device, batches by slicing a per-epoch permutation, and no wait on the device
between metrics pulls: each step's loss terms are stacked into one small device tensor, and every
`metrics_every` steps (and at epoch ends, checkpoints, control requests) the queued rows go to the host in one
transfer (engine/term_puller.py: on CUDA a non-blocking copy read at the next pull), where they are checked, summed
into the epoch means and yielded. The NaN guard works on the device in between (see `_train_step`). Conv backbones
run channels_last on CUDA (`memory_format`). A session owns its random streams (engine/rng.py: its own generators
for init, data order and noise) and changes no process-wide state while another session trains. Previews and test
evaluation run under `torch.inference_mode` with a private random stream, so they never change the training stream:
a run is reproducible and resumes exactly from a checkpoint (on CUDA with `deterministic = true`).

Its neighbours: engine/run_folder.py writes the run folder (config.toml, metrics.jsonl, TensorBoard, preview PNGs,
checkpoint files), engine/compiling.py holds torch.compile, CUDA-graph step marking and the memory format, and
engine/pacing.py decides when epoch-end work and previews are due.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from . import checkpoint as ckpt
from . import probe as live_probe
from .compiling import StepLoss, apply_memory_format, wants_channels_last
from .config import TrainConfig
from .control import Control
from .data import Dataset, DatasetError, load_dataset
from .device import apply_threads, configure_backends, resolve_device
from .distributed import SINGLE, Parallel
from .errors import CheckpointError, ConfigError
from .events import (
    CheckpointWritten,
    EpochSummary,
    Event,
    Failed,
    Finished,
    Paused,
    Preview,
    Resumed,
    StepMetrics,
    Warning_,
)
from .imaging import tile
from .models import ModelBase, model_class
from .pacing import Pacing, metrics_every_for
from .rng import SessionRandom, initialising, private_rng
from .run_folder import RunFolder
from .term_puller import TermPuller

EPOCH_TEST_LIMIT = 4096  # held-out images scored at each epoch end (the full test set is engine/evaluate.py's job)
PREVIEW_IMAGES = 16
PREVIEW_SAMPLES = 32
TRAVERSAL_DIMS = 5
TRAVERSAL_STEPS = 7
HISTORY_STEP_LIMIT = 4000  # step records kept in `history` (thinned by halving beyond this)
RESUMABLE_OVERRIDES = ("epochs", "max_steps", "out_dir", "device", "threads", "preview_every_s", "metrics_every",
                       "checkpoint_every_steps", "compile", "compile_mode", "precision", "deterministic",
                       "memory_format", "probe_every_s", "preview_png_every_s")
EXACTNESS_KEYS = ("device", "compile", "compile_mode", "precision", "memory_format")  # changing one breaks exactness
_training_now: set[int] = set()  # id() of every session of this process inside run()
_training_now_lock = threading.Lock()


def another_session_training() -> bool:
    """Whether a TrainingSession of this process is inside `run()` now."""
    with _training_now_lock:
        return bool(_training_now)


def load_with_fallback(config: TrainConfig) -> tuple[Dataset, list[str]]:
    """The config's dataset, or the first fallback that loads (with a warning saying why and what was used)."""
    try:
        return load_dataset(config.dataset), []
    except DatasetError as first:
        if not config.fallback:
            raise
        reasons = [f"{config.dataset}: {first}"]
        for spec in config.fallback:
            try:
                dataset = load_dataset(spec)
            except DatasetError as exc:
                reasons.append(f"{spec}: {exc}")
                continue
            return dataset, [f"dataset {config.dataset!r} is not available on this machine ({first}); "
                             f"using {dataset.spec or spec!r} instead"]
        raise DatasetError("no dataset of this configuration could be loaded: " + "; ".join(reasons)) from None


class TrainingSession:
    """One training run. `run(control)` yields events; `snapshot_model()` may be called from any thread."""

    def __init__(self, config: TrainConfig, dataset: Dataset | None = None, *, pause_on_error: bool = False,
                 parallel: Parallel | None = None, process_settings: bool | None = None) -> None:
        """`parallel`: this process's rank in a multi-process run (engine/distributed.py); None = one process.

        `process_settings`: whether this session sets the process-wide torch state its config asks for (thread
        count, determinism flags, TF32, cuDNN benchmark): True for a process that runs this one session (the CLI),
        False never, None (default) unless another session of this process is training — a session never changes
        them under a running one (the run says which settings it left alone)."""
        config.validate()
        self.config = config
        self.pause_on_error = pause_on_error
        self.warnings: list[str] = []
        self.parallel = parallel or SINGLE
        self.device = self.parallel.connect(resolve_device(config.device))
        if dataset is None:
            dataset, self.warnings = load_with_fallback(config)
        if process_settings is None:
            process_settings = not another_session_training()
            asked = [f"threads = {config.threads}"] * bool(config.threads) + ["deterministic = true"] * bool(
                config.deterministic)
            if not process_settings and asked:
                self.warnings.append("another run is training in this process, so this one leaves the process's "
                                     f"torch settings alone ({' and '.join(asked)} not applied)")
        if process_settings:
            apply_threads(config.threads)
            configure_backends(self.device, deterministic=config.deterministic,
                               conv=len(dataset.shape) == 3 and min(dataset.shape[1:]) >= 28)
        self.dataset = dataset.to(self.device)
        self.dataset_spec = dataset.spec or config.dataset
        train, test = dataset.split(config.test_fraction, config.seed, config.test_count)
        self.warnings += _data_notes(dataset, config, len(test))
        if len(train) == 0:
            raise DatasetError(f"{self.dataset_spec}: no training images after the test split")
        self.train_indices = train.to(self.device)
        self.test_indices = test.to(self.device)

        cls = model_class(config.family)
        hparams = dict(config.hparams)
        if any(h.name == "dataset_size" for h in cls.all_hparams()) and int(hparams.get("dataset_size", 0) or 0) == 0:
            hparams["dataset_size"] = len(train)
        # The session's own random streams (engine/rng.py): its noise, data order and initial weights depend on
        # its seed alone, whatever else this process runs; the global generators are never read or reseeded.
        self.random = SessionRandom(config.seed)
        with initialising(config.seed):
            self.model: ModelBase = cls(dataset.shape, dataset.num_classes, **hparams).to(self.device)
        if self.model.is_conditional:
            _check_labels_once(dataset, self.model.num_classes)
            self.model.labels_checked = True
        with initialising(config.seed):
            self._template = cls(dataset.shape, dataset.num_classes, **hparams).to(self.device)
        self._template.requires_grad_(False)
        self.optimizer = self._make_optimizer()
        # --- distributed: identical config, data and start weights on every rank ---
        self.parallel.check_same("config and dataset", f"{config.to_toml()}|{self.dataset_spec}|{len(dataset)}")
        self.parallel.broadcast_module(self.model)
        self.channels_last = wants_channels_last(config.memory_format, self.device, self.model)
        if config.memory_format == "channels_last" and not self.channels_last:
            self.warnings.append("memory_format = channels_last applies to conv layers: this model has none, so it "
                                 "stays contiguous")
        self._apply_memory_format()

        self.batch_size = min(config.batch_size, len(train))  # the global batch (split over the ranks)
        self.local_batch_size = self.parallel.local_batch(self.batch_size)
        self.steps_per_epoch = max(1, len(train) // self.batch_size)
        self.step = 0
        self.epoch = 0  # completed epochs
        self.history: list[dict[str, Any]] = []
        self._history_stride = 1
        self._history_steps = 0
        self._epoch_sums: dict[str, float] = {}
        self._epoch_steps = 0
        self._live_set: dict[str, float] = {}
        self._lock = threading.Lock()
        self._good: tuple[int, dict, dict] | None = None
        self._pause_reason = "paused by user"
        self._preview_broken = False
        self._last_kl: torch.Tensor | None = None
        self._preview_idx = (self.test_indices if len(self.test_indices) else self.train_indices)[:PREVIEW_IMAGES]
        self.probe_note = live_probe.unavailable_reason(self.dataset, self.model)  # None: a live probe is possible
        self._probe: live_probe.FactorProbe | None = None
        self._probe_schedule: live_probe.ProbeSchedule | None = None
        # Rank 0 alone probes (it alone writes the history): no collective runs inside a probe, so the other ranks
        # simply meet it at the next step's all-reduce.
        if config.probe_every_s > 0 and self.probe_note is None and self.parallel.is_writer:
            try:
                self._probe = live_probe.FactorProbe(self.dataset, config.seed)
                self._probe_schedule = live_probe.ProbeSchedule(config.probe_every_s)
            except (DatasetError, ValueError) as exc:
                self.probe_note = f"no disentanglement curve: {exc}"
        accelerator = self.device.type != "cpu"
        self.metrics_every = metrics_every_for(config.metrics_every, self.device.type)
        self._window: list[tuple[tuple[str, ...], torch.Tensor, dict[str, float]]] = []  # steps not yet pulled
        self._window_bad: torch.Tensor | None = None  # device flag: a queued step had a non-finite loss
        self._bad_step_seen = False
        self._last_terms: dict[str, float] = {}
        self._puller = TermPuller(self.device)  # deferred on CUDA: a pull never waits for the device
        self._fused_optimizers = [o for o in (self.optimizer, *self.model.auxiliary_optimizers().values())
                                  if o.defaults.get("fused")]
        self._guard_on_device = accelerator and bool(self.optimizer.defaults.get("fused"))
        self.loss = StepLoss(self.model, self.device, self.random, compile_loss=config.compile,
                             compile_mode=config.compile_mode)  # eager or compiled (engine/compiling.py)
        self.clock = time.perf_counter  # what paces epoch-end work, previews and preview PNGs (a test may fake it)

    def _apply_memory_format(self) -> None:
        """channels_last weights and optimiser state when the run uses them (engine/compiling.py)."""
        if self.channels_last:
            apply_memory_format(self.model, [self.optimizer, *self.model.auxiliary_optimizers().values()])

    def _images(self, idx: torch.Tensor) -> torch.Tensor:
        """The images at `idx` as floats in [0, 1] (n×C×H×W), in channels_last layout when the run uses it."""
        images = self.dataset.images_at(idx)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)  # on the uint8 bytes: 4× less to move
        return images.float().div_(255.0)

    def _make_optimizer(self) -> torch.optim.Adam:
        params = [p for p in self.model.main_parameters() if p.requires_grad]
        # Fused Adam: on this 2-core CPU (torch 2.13) its update took 0.25 ms vs 0.75 ms for the default
        # (MLP VAE 784-400-20); on CUDA it is the fastest variant too.
        fused = self.device.type in ("cpu", "cuda") and all(p.dtype == torch.float32 for p in params)
        return torch.optim.Adam(params, lr=self.config.lr, weight_decay=self.config.weight_decay,
                                fused=fused or None)

    @property
    def last_kl_per_latent(self) -> torch.Tensor | None:
        """KL(q(z_d|x) ‖ p(z_d)) per latent d of the last step's batch (mean over it), as a float32 CPU copy; None
        before the first step or for a family without a per-latent KL. Reading it waits for the device."""
        kl = self._last_kl
        return None if kl is None else kl.detach().float().cpu().clone()

    # --- planned length -------------------------------------------------------------------------------
    @property
    def total_steps(self) -> int:
        if self.config.max_steps is not None:
            return int(self.config.max_steps)
        return int(self.config.epochs) * self.steps_per_epoch

    def info(self) -> dict[str, Any]:
        """A JSON-able summary (for the GUI's status line and the CLI's header)."""
        return {"family": self.model.family, "dataset": self.dataset_spec, "device": str(self.device),
                "train_size": len(self.train_indices), "test_size": len(self.test_indices),
                "batch_size": self.batch_size, "steps_per_epoch": self.steps_per_epoch,
                "total_steps": self.total_steps, "parameters": sum(p.numel() for p in self.model.parameters()),
                "world_size": self.parallel.world_size}

    # --- the loop ----------------------------------------------------------------------------------------
    def run(self, control: Control | None = None) -> Iterator[Event]:
        """Train until the planned length, a stop, or a failure; yield events (see engine/events.py)."""
        control = control or Control()
        with _training_now_lock:
            _training_now.add(id(self))
        try:
            yield from self._run(control)
        except torch.OutOfMemoryError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            saved = ""
            if self.config.out_dir is not None and self.step > 0 and self.parallel.is_writer:
                # Memory runs out in the forward or backward pass, before the update: the weights are step N's.
                self.optimizer.zero_grad(set_to_none=True)
                try:
                    written = self._write_run_checkpoint(RunFolder(self.config.out_dir))
                    yield written
                    saved = (f" The weights of step {self.step} were saved to {written.path} (resume from it with "
                             "--resume, e.g. on another device).")
                except OSError as save_error:
                    saved = f" Saving the weights of step {self.step} failed too ({save_error})."
            yield Failed(self.step, f"out of memory on {self.device} at step {self.step + 1} ({first}). Try a smaller "
                                    f"batch (now {self.batch_size}) or a smaller model.{saved}",
                         recoverable=False)
        except (ConfigError, DatasetError, CheckpointError, OSError, RuntimeError, ValueError) as exc:
            yield Failed(self.step, f"{type(exc).__name__}: {exc}", recoverable=False)
        finally:
            with _training_now_lock:
                _training_now.discard(id(self))

    def _run(self, control: Control) -> Iterator[Event]:
        """The loop: obey the control between steps, take a step, then whatever work that step made due."""
        for message in self.warnings:
            yield Warning_(message)
        loop = _Loop(self._open_run_folder(), Pacing(self.step, self.clock, self.config.preview_every_s))
        try:
            warning = self.loss.compile_once()
            if warning is not None:
                yield warning
            self.loss.set_step(self.step)
            self._keep_good_copy()
            self.model.train()
            loop.order = self._epoch_order(self.epoch)
            while self.step < self.total_steps:
                loop.reason = yield from self._between_steps(control, loop)
                if loop.reason == "again":
                    continue
                if loop.reason is not None:
                    break
                warning, stop_all = self._train_step(loop.order, control.stopped)
                if warning is not None:
                    yield warning
                if stop_all:  # data-parallel: a rank asked to stop; every rank stops before the same update
                    loop.reason = "stopped"
                    break
                yield from self._after_step(loop)
            yield from self._end(loop)
        finally:
            self._window.clear()
            self._puller.discard()
            if loop.folder is not None:
                loop.folder.close()

    def _between_steps(self, control: Control, loop: _Loop) -> Iterator[Event]:
        """Apply the control's changes, handle a failure, a save request, a pause or a stop; returns None to take
        the next step, "again" to look again (after a pause), or why the loop ends ("stopped", "failed")."""
        changes = control.drain()
        failed, loop.carried = loop.carried, None
        if failed is None and self._queued() and (changes or control.paused or control.stopped
                                                  or control.save_requested.is_set()):
            failed = yield from self._pull(loop)  # the host acts on known, finite weights only
        if changes:
            for warning in self._apply_changes(changes):
                yield Warning_(warning)
            loop.force_emit = True
        if failed is not None:
            yield failed
            if not failed.recoverable:
                return "failed"
            self._pause_after_failure(control)
            return "again"
        yield from self._requested_checkpoint(control, loop.folder)
        if control.paused and not control.stopped:
            pause_began = time.perf_counter()
            yield Paused(self.step, self._pause_reason)
            while not control.wait_while_paused(0.2):
                yield from self._requested_checkpoint(control, loop.folder)  # saving works while paused
            self._pause_reason = "paused by user"
            loop.pacing.paused(time.perf_counter() - pause_began, self.step)
            if not control.stopped:
                yield Resumed(self.step)
            return "again"
        if control.stopped and not self.parallel.active:  # ranks stop together after reduce_terms
            return "stopped"
        return None

    def _after_step(self, loop: _Loop) -> Iterator[Event]:
        """The work a step made due: a metrics pull, the epoch's end (summary, test scores, good copy, preview
        PNGs), a preview, a live probe, a periodic checkpoint."""
        cfg, pacing = self.config, loop.pacing
        at_epoch_end = self.step % self.steps_per_epoch == 0
        is_last = self.step >= self.total_steps
        checkpoint_due = bool(loop.folder is not None and cfg.checkpoint_every_steps
                              and self.step % cfg.checkpoint_every_steps == 0 and not is_last)
        epoch_work_due = at_epoch_end and pacing.epoch_work_due(is_last)
        must_know = epoch_work_due or is_last or checkpoint_due or self._bad_step_seen
        if must_know or loop.force_emit or self.step % self.metrics_every == 0:
            loop.force_emit = False
            loop.carried = yield from self._pull(loop, wait=must_know)
            if loop.carried is not None:
                return
        if at_epoch_end:
            self.epoch += 1
            loop.order = self._epoch_order(self.epoch)
        if epoch_work_due:
            with pacing.epoch_work():
                summary = self._epoch_summary(self.epoch)
                self._record_epoch(summary, loop.folder)
                yield summary
                self._keep_good_copy()
        if epoch_work_due or is_last or pacing.preview_due():
            with pacing.preview():
                preview = self._preview_event()
                if preview is not None:
                    if loop.folder is not None and isinstance(preview, Preview) and (epoch_work_due or is_last):
                        loop.folder.save_previews(preview)
                    yield preview
        if self._probe_schedule is not None:  # live disentanglement probe (engine/probe.py)
            clock = pacing.training_time()  # pauses excluded
            if is_last or self._probe_schedule.due(clock):
                yield from self._probe_events(clock, loop.folder)
        if checkpoint_due:
            yield self._write_run_checkpoint(loop.folder)

    def _end(self, loop: _Loop) -> Iterator[Event]:
        """Read what is still queued, summarise a partial last epoch, write the final checkpoint, say Finished."""
        reason = loop.reason if loop.reason in ("stopped", "failed") else "completed"
        if reason != "failed" and self._queued():  # e.g. stopped right after a deferred pull
            failed = yield from self._pull(loop)
            if failed is not None:  # the loop is over: nothing left to pause
                yield dataclasses.replace(failed, recoverable=False)
                reason = "failed"
        if self._epoch_steps and reason == "completed":
            summary = self._epoch_summary(self.epoch + 1)
            self._record_epoch(summary, loop.folder, partial=True)
            yield summary
        if loop.folder is not None:
            yield self._write_run_checkpoint(loop.folder)
        if reason != "failed":
            yield Finished(self.step, self.epoch, reason, dict(self._last_terms))

    # --- one step, and the metrics pull -------------------------------------------------------------------------
    def _train_step(self, order: torch.Tensor, stop_requested: bool = False) -> tuple[Warning_ | None, bool]:
        """Forward, backward, update — queued on the device without waiting for it.

        On a GPU the NaN guard stays on the device too: a non-finite loss sets the fused optimisers' `found_inf` flag,
        which skips their update (as torch.amp's GradScaler does), sticky until the next pull, where the host sees it
        and rolls the step count back to the bad step. On the CPU, where reading a number costs nothing, and with
        optimisers that have no such flag (MPS), the host checks the loss before the update. Data-parallel
        (torchrun), the ranks all-reduce their terms and stop flags every step and check on the host, so every
        rank takes the same guard and stop decision; returns (a warning or None, whether the ranks agreed to stop)."""
        position = self.step - self.epoch * self.steps_per_epoch
        idx = self.parallel.shard(order[position * self.batch_size:(position + 1) * self.batch_size])
        x = self._images(idx)
        y = self.dataset.labels_at(idx) if self.model.is_conditional else None
        with self._autocast() if self.config.precision != "fp32" else contextlib.nullcontext(), \
                self.parallel.batch_noise(), self.random.active():
            out, warning = self.loss(x, y, self.step)
        total = out.total.detach().float().reshape(())
        names = list(out.terms)
        reduced = None
        if self.parallel.active:  # every rank logs the global mean and takes the same guard/stop decision
            reduced, stop_all = self.parallel.reduce_terms(
                torch.stack([total] + [out.terms[n].detach().float().reshape(()) for n in names]), stop_requested)
            if stop_all:
                return warning, True
        found_inf = None
        skip_on_host = False
        if reduced is not None:
            skip_on_host = not math.isfinite(float(reduced[0]))
        elif self._guard_on_device:
            bad = torch.isnan(total) | torch.isinf(total)
            self._window_bad = bad if self._window_bad is None else bad | self._window_bad
            found_inf = self._window_bad.float()
        else:
            skip_on_host = not math.isfinite(total.item())
        extra: dict[str, Any] = {}
        if not skip_on_host:
            self.optimizer.zero_grad(set_to_none=True)
            out.total.backward()
            self.parallel.average_gradients(self.optimizer)
        with self._lock:
            if not skip_on_host:
                if found_inf is not None:
                    for optimizer in self._fused_optimizers:
                        optimizer.found_inf = found_inf
                self.optimizer.step()
                with self.random.active():
                    extra = self.model.after_step(x, y, self.step) or {}
            self.step += 1
            self.loss.stepped()
        device_values = ([total] + [out.terms[n].detach().float().reshape(()) for n in names] if reduced is None
                         else list(reduced))
        host_extra = {}
        for k, v in extra.items():
            if isinstance(v, torch.Tensor) and reduced is not None:
                host_extra[k] = float(v)
            elif isinstance(v, torch.Tensor):
                names.append(k)
                device_values.append(v.detach().float().reshape(()))
            else:
                host_extra[k] = float(v)
        self._window.append((tuple(names), torch.stack(device_values), host_extra))
        self._bad_step_seen = skip_on_host
        self._last_kl = self.loss.keep(out.kl_per_dim)
        return warning, False

    def _pull(self, loop: _Loop, wait: bool = True) -> Iterator[Event]:
        """Hand the queued steps' loss terms to the puller (engine/term_puller.py) and take in every pull whose
        values reached the host: check them, add them to the epoch sums, yield one StepMetrics per pull; returns a
        Failed (and rolls the step count back to the bad step) on a non-finite loss.

        `wait=False` (the every-`metrics_every` pull): on CUDA this pull's values are read at the next one, so the
        host never waits for the device here. `wait=True` (epoch ends, checkpoints, control requests, the end):
        everything queued is read now. The device-side NaN guard's flag stays set until then: a bad step found one
        pull late has had every update after it skipped all the same."""
        window, self._window = self._window, []
        self._bad_step_seen = False
        first_step = self.step - len(window)
        ready = self._puller.pull([vec for _, vec, _ in window],
                                  (first_step, [(names, extra) for names, _, extra in window]))
        if wait:
            ready += self._puller.flush()
        if not self._puller.pending:
            self._window_bad = None  # every queued step is known finite (or handled below)
        for pulled in ready:
            first, meta = pulled.tag
            bad = pulled.first_non_finite
            for row, ((names, host_extra), values) in enumerate(zip(meta, pulled.rows[:bad], strict=False)):
                step_terms = dict(zip(names, values[1:], strict=True))
                step_terms.setdefault("total", values[0])
                step_terms.update(host_extra)
                step_terms.update({k: float(v) for k, v in self.model.live_values(first + row).items()})
                for k, v in step_terms.items():
                    self._epoch_sums[k] = self._epoch_sums.get(k, 0.0) + v
                self._epoch_steps += 1
                self._last_terms = step_terms
            if bad is not None:
                skipped = self.step - (first + bad) - 1  # every step queued after the bad one was skipped too
                self._puller.discard()
                self._window_bad = None
                with self._lock:
                    self.step = first + bad
                    self.loss.set_step(self.step)
                return self._discard_non_finite(pulled.rows[bad][0], skipped)
            yield self._step_metrics(first + len(pulled.rows), loop)
        return None

    def _queued(self) -> bool:
        """Steps whose loss terms the host has not read yet (queued, or in a deferred pull)."""
        return bool(self._window) or self._puller.pending

    def _step_metrics(self, step: int, loop: _Loop) -> StepMetrics:
        """The StepMetrics of the pull that ended at `step` (its last step's terms), recorded in the history."""
        rate, elapsed = loop.pacing.emitted(time.perf_counter(), step)
        done = step - loop.pacing.done_at_start
        eta = (self.total_steps - step) * elapsed / done if done > 0 else None
        metrics = StepMetrics(step=step, epoch=self.epoch + 1, terms=dict(self._last_terms),
                              live=self._live_in_force(), samples_per_s=rate * self.batch_size,
                              progress=step / self.total_steps, eta_s=eta)
        self._record_step(metrics, loop.folder)
        return metrics

    def _pause_after_failure(self, control: Control) -> None:
        self._pause_reason = "the loss became non-finite"
        control.pause()

    def _autocast(self) -> contextlib.AbstractContextManager:
        """bf16 autocast around forward passes when `precision = "bf16"` (weights and optimiser stay float32)."""
        if self.config.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    # --- controls ------------------------------------------------------------------------------------------
    def _requested_checkpoint(self, control: Control, folder: RunFolder | None) -> Iterator[Event]:
        if not control.save_requested.is_set():
            return
        control.save_requested.clear()
        if folder is None:
            yield Warning_("no run folder is set, so the checkpoint was not written")
        else:
            yield self._write_run_checkpoint(folder)

    def _apply_changes(self, changes: list[tuple[str, Any]]) -> list[str]:
        warnings = []
        for name, value in changes:
            try:
                if name == "lr":
                    lr = float(value)
                    if not (math.isfinite(lr) and 1e-8 <= lr <= 10.0):
                        raise ConfigError(f"lr must be in [1e-08, 10], got {value!r}")
                    for group in self.optimizer.param_groups:
                        group["lr"] = lr
                    self._live_set["lr"] = lr
                else:
                    self.model.set_hparam(name, value)
                    new = self.model.hparams[name]
                    if isinstance(new, int | float):
                        self._live_set[name] = float(new)
            except (ConfigError, TypeError, ValueError) as exc:
                warnings.append(f"cannot set {name}: {exc}")
        return warnings

    def _live_in_force(self) -> dict[str, float]:
        live = dict(self._live_set)
        live.update({k: float(v) for k, v in self.model.live_values(self.step).items()})
        live["lr"] = float(self.optimizer.param_groups[0]["lr"])
        return live

    # --- non-finite guard ------------------------------------------------------------------------------------
    def _keep_good_copy(self) -> None:
        """Remember finite weights (at run start and epoch ends) in case an update itself turns them non-finite."""
        with self._lock:
            model_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            optim_state = copy.deepcopy(self.optimizer.state_dict())
        self._good = (self.step, model_state, optim_state)

    def _discard_non_finite(self, value: float, skipped: int = 0) -> Failed:
        """The update of the bad step was skipped (fused `found_inf`, or the host check); say so, and restore the last
        good copy if the weights are non-finite all the same (an update that itself overflowed)."""
        self.optimizer.zero_grad(set_to_none=True)
        weights_ok = all(bool(torch.isfinite(t).all()) for t in self.model.state_dict().values()
                         if t.is_floating_point())
        if weights_ok:
            kept = f"the weights of step {self.step} are kept"
        elif self._good is not None:
            good_step, model_state, optim_state = self._good
            with self._lock:
                self.model.load_state_dict(model_state)
                self.optimizer.load_state_dict(copy.deepcopy(optim_state))
            kept = f"the weights had become non-finite and were restored from step {good_step}"
        else:
            kept = "no finite weights were available to restore"
        action = "training is paused" if self.pause_on_error else "training stopped"
        also = f" (and the {skipped} queued after it)" if skipped else ""
        cause = (f"the loss became {value} at step {self.step + 1}: that step{also} was discarded, {kept}; "
                 f"{action}. Try a lower learning rate or β, or a Bernoulli likelihood for binary data."
                 + self.model.explain_non_finite())
        return Failed(self.step, cause, recoverable=self.pause_on_error)

    # --- batches -------------------------------------------------------------------------------------------
    def _epoch_order(self, epoch: int) -> torch.Tensor:
        """The training indices in this epoch's order: a permutation seeded by (seed, epoch), so resume is exact."""
        gen = torch.Generator().manual_seed(self.config.seed * 1_000_003 + epoch)
        perm = torch.randperm(len(self.train_indices), generator=gen).to(self.device)
        return self.train_indices[perm]

    def _batches(self, indices: torch.Tensor, batch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor | None, int]]:
        for start in range(0, len(indices), batch):
            idx = indices[start:start + batch]
            x = self._images(idx)
            y = self.dataset.labels_at(idx) if self.model.is_conditional else None
            yield x, y, len(idx)

    # --- epoch summaries and previews ---------------------------------------------------------------------------
    def _epoch_summary(self, epoch: int) -> EpochSummary:
        train = {k: v / self._epoch_steps for k, v in self._epoch_sums.items()} if self._epoch_steps else {}
        self._epoch_sums, self._epoch_steps = {}, 0
        test: dict[str, float] = {}
        kl_dims: tuple[float, ...] = ()
        indices = self.test_indices[:EPOCH_TEST_LIMIT]
        if len(indices) and self.parallel.is_writer:
            test, kl_dims = self._score(indices)
        return EpochSummary(epoch=epoch, step=self.step, train=train, test=test, kl_per_dim=kl_dims)

    def _score(self, indices: torch.Tensor) -> tuple[dict[str, float], tuple[float, ...]]:
        """Mean loss terms (and KL per dimension) over `indices`, without touching the training RNG stream."""
        sums: dict[str, torch.Tensor] = {}
        kl_sum: torch.Tensor | None = None
        count = 0
        with self._evaluating():
            for x, y, n in self._batches(indices, 512):
                out = self.model.loss(x, y, self.step)
                terms = dict(out.terms)
                terms.setdefault("total", out.total)
                for k, v in terms.items():
                    sums[k] = sums.get(k, 0.0) + v.detach().float() * n
                if out.kl_per_dim is not None:
                    kl_sum = out.kl_per_dim.float() * n if kl_sum is None else kl_sum + out.kl_per_dim.float() * n
                count += n
        names = list(sums)
        values = torch.stack([sums[k] for k in names]).div(count).tolist()
        kl = tuple(kl_sum.div(count).tolist()) if kl_sum is not None else ()
        return dict(zip(names, values, strict=True)), kl

    @contextlib.contextmanager
    def _evaluating(self) -> Iterator[None]:
        """Eval mode, no autograd, the run's precision, and a private random stream (engine/rng.py): training's
        global generators are neither advanced nor reseeded, and every preview draws the same prior samples."""
        with private_rng(self.config.seed), torch.inference_mode(), self._autocast():
            self.model.eval()
            try:
                yield
            finally:
                self.model.train()

    def _probe_events(self, clock: float, folder: RunFolder | None) -> Iterator[Event]:
        """Score the live probe, record it in the history (→ checkpoint) and metrics.jsonl, and yield it."""
        try:
            with self._evaluating():
                event = self._probe.measure(self.model, self.step)
        except (RuntimeError, ValueError) as exc:
            self._probe_schedule.done(clock, 1.0)
            yield Warning_(f"disentanglement probe skipped at step {self.step}: {exc}")
            return
        self._probe_schedule.done(clock + event.seconds, event.seconds)
        record = live_probe.probe_record(event)
        self.history = live_probe.thin_probe_records(self.history + [record])
        if folder is not None:
            folder.record_probe(record)
        yield event

    def _preview_event(self) -> Preview | Warning_ | None:
        if self._preview_broken or not self.parallel.is_writer:
            return None
        try:
            return self.make_preview()
        except (RuntimeError, ValueError, ConfigError) as exc:
            self._preview_broken = True
            return Warning_(f"previews are off for this run: {type(exc).__name__}: {exc}")

    def make_preview(self) -> Preview:
        """Inputs vs reconstructions, prior samples and a traversal of the top dims, as uint8 grids."""
        model = self.model
        with self._evaluating():
            x = self._images(self._preview_idx)
            y = self.dataset.labels_at(self._preview_idx) if model.is_conditional else None
            code = model.encode(x, y)
            recon = model.decode_images(code.mean, y)
            half = (len(x) + 1) // 2
            pairs = torch.cat([x[:half], recon[:half], x[half:], recon[half:]])
            recon_grid = tile(pairs, ncols=half)
            samples = None
            if model.can_sample:
                ys = None
                if model.is_conditional:
                    ys = torch.arange(PREVIEW_SAMPLES, device=self.device) % max(model.num_classes, 1)
                samples = tile(model.sample(PREVIEW_SAMPLES, ys), ncols=8)
            kl = tuple(self._last_kl.float().tolist()) if self._last_kl is not None else ()
            traversal = None
            if model.latent_kind == "continuous" and code.mean.dim() == 2:
                traversal = self._traversal(code.mean, y, kl)
        return Preview(step=self.step, reconstructions=recon_grid, samples=samples, traversal=traversal,
                       kl_per_dim=kl)

    def _traversal(self, means: torch.Tensor, y: torch.Tensor | None, kl: tuple[float, ...]):
        dim = means.shape[1]
        if self.model.is_variational:
            scores = torch.tensor(kl) if len(kl) == dim else means.var(0).cpu()
            lows = torch.full((dim,), -2.5, device=self.device)
            highs = torch.full((dim,), 2.5, device=self.device)
        else:
            scores = means.var(0).cpu() if len(means) > 1 else torch.zeros(dim)
            spread = 2.0 * means.std(0) if len(means) > 1 else torch.ones(dim, device=self.device)
            lows, highs = means.mean(0) - spread, means.mean(0) + spread
        dims = torch.argsort(scores, descending=True)[:TRAVERSAL_DIMS].tolist()
        steps = torch.linspace(0.0, 1.0, TRAVERSAL_STEPS, device=self.device)
        z = means[:1].repeat(len(dims) * TRAVERSAL_STEPS, 1)
        for row, d in enumerate(dims):
            z[row * TRAVERSAL_STEPS:(row + 1) * TRAVERSAL_STEPS, d] = lows[d] + steps * (highs[d] - lows[d])
        ys = y[:1].repeat(len(z)) if y is not None else None
        return tile(self.model.decode_images(z, ys), ncols=TRAVERSAL_STEPS)

    # --- snapshots --------------------------------------------------------------------------------------------
    def snapshot_model(self) -> ModelBase:
        """An eval-mode copy of the weights after the last completed step; safe to call from any thread."""
        copy_model = copy.deepcopy(self._template)
        with self._lock:
            copy_model.load_state_dict(self.model.state_dict())
            copy_model.hparams = dict(self.model.hparams)
        return copy_model.eval()

    # --- checkpoints and run folder ---------------------------------------------------------------------------
    def _open_run_folder(self) -> RunFolder | None:
        """The run folder this run records into (rank 0 alone writes), opened; None when the run keeps no folder."""
        if not self.config.out_dir or not self.parallel.is_writer:
            return None
        return RunFolder(self.config.out_dir).open(self._stored_config().to_toml(),
                                                   preview_png_every_s=self.config.preview_png_every_s,
                                                   clock=self.clock)

    def _stored_config(self) -> TrainConfig:
        lr = float(self.optimizer.param_groups[0]["lr"])
        return self.config.replace(dataset=self.dataset_spec, fallback=[], hparams=dict(self.model.hparams), lr=lr)

    def _write_run_checkpoint(self, folder: RunFolder) -> CheckpointWritten:
        return CheckpointWritten(self.step, str(folder.write_checkpoint(self.save_checkpoint, self.step)))

    def save_checkpoint(self, path: str | Path) -> Path:
        """Write the full state (weights, optimisers, RNG, history) atomically; exact resume from it."""
        with self._lock:
            tensors: dict[str, torch.Tensor] = {f"model.{k}": v for k, v in self.model.state_dict().items()}
            optimizers = {"main": self.optimizer, **self.model.auxiliary_optimizers()}
            structures = {}
            for name, optimizer in optimizers.items():
                flat, structure = ckpt.flatten_optimizer(f"optim.{name}", optimizer)
                tensors.update(flat)
                structures[name] = structure
            tensors.update({f"rng.{kind}": state for kind, state in self.random.state(self.device).items()})
            header = {
                "family": self.model.family,
                "hparams": dict(self.model.hparams),
                "backbone": self.model.hparams.get("backbone", ""),
                "dataset": {"spec": self.dataset_spec, "name": self.dataset.name, "shape": list(self.dataset.shape),
                            "num_classes": self.dataset.num_classes, "size": len(self.dataset),
                            "is_sample": bool(self.dataset.is_sample)},
                "config": self._stored_config().to_toml(),
                "step": self.step,
                "epoch": self.epoch,
                "world_size": self.parallel.world_size,
                "history": list(self.history),
                "optimizers": structures,
                "session": {"epoch_sums": dict(self._epoch_sums), "epoch_steps": self._epoch_steps,
                            "live_set": dict(self._live_set), "history_stride": self._history_stride,
                            "device": str(self.device)},
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                **ckpt.model_source_meta(self.model),
            }
            return ckpt.write_checkpoint(path, tensors, header)

    @classmethod
    def from_checkpoint(cls, path: str | Path, *, pause_on_error: bool = False, parallel: Parallel | None = None,
                        process_settings: bool | None = None, model_file: str | Path | None = None,
                        **config_overrides: Any) -> TrainingSession:
        """Resume a run exactly where its checkpoint left it (only run-length/output settings may change); a user's
        model needs `model_file` (see checkpoint.resolve_model_file)."""
        meta, tensors = ckpt.read_checkpoint(path)
        config = ckpt.config_from_meta(path, meta)
        file_warnings = ckpt.resolve_model_file(path, meta, model_file)
        bad = sorted(set(config_overrides) - set(RESUMABLE_OVERRIDES))
        if bad:
            raise ConfigError(f"cannot change {', '.join(bad)} when resuming; "
                              f"allowed: {', '.join(RESUMABLE_OVERRIDES)}")
        stored = config
        config = config.replace(**config_overrides, hparams=dict(meta["hparams"]))
        dataset = load_dataset(meta["dataset"]["spec"])
        if list(dataset.shape) != list(meta["dataset"]["shape"]):
            raise CheckpointError(f"{path}: the dataset {meta['dataset']['spec']!r} now has images of shape "
                                  f"{list(dataset.shape)}, the checkpoint was trained on {meta['dataset']['shape']}")
        session = cls(config, dataset, pause_on_error=pause_on_error, parallel=parallel,
                      process_settings=process_settings)
        model_state = {k[len("model."):]: v.to(session.device) for k, v in tensors.items() if k.startswith("model.")}
        try:
            session.model.load_state_dict(model_state, strict=True)
        except RuntimeError as exc:
            raise CheckpointError(f"{path}: the weights do not fit the model ({str(exc).splitlines()[0]})") from None
        optimizers = {"main": session.optimizer, **session.model.auxiliary_optimizers()}
        for name, structure in meta.get("optimizers", {}).items():
            if name not in optimizers:
                raise CheckpointError(f"{path}: the checkpoint has optimiser {name!r}, the model has none")
            # Left where they are: the optimiser's load_state_dict moves moments to the parameters' device and keeps a
            # non-fused Adam's step counters on the CPU (on the device, each step would wait for it).
            state = {k: v for k, v in tensors.items() if k.startswith(f"optim.{name}.")}
            ckpt.restore_optimizer(path, f"optim.{name}", optimizers[name], structure, state)
        session._apply_memory_format()
        session.random.load_state({k[len("rng."):]: v for k, v in tensors.items() if k.startswith("rng.")},
                                  session.device)
        session.warnings.extend(file_warnings)
        session.warnings.extend(_exactness_warnings(stored, config, str(meta.get("session", {}).get("device", "")),
                                                    session.device))
        state = meta.get("session", {})
        session.step = int(meta["step"])
        session.epoch = int(meta.get("epoch", 0))
        session.history = list(meta.get("history", []))
        session._history_stride = int(state.get("history_stride", 1))
        session._history_steps = sum(1 for r in session.history if r.get("kind") == "step")
        session._epoch_sums = {k: float(v) for k, v in state.get("epoch_sums", {}).items()}
        session._epoch_steps = int(state.get("epoch_steps", 0))
        session._live_set = {k: float(v) for k, v in state.get("live_set", {}).items()}
        return session

    # --- history (→ checkpoints) and the run folder's records ---------------------------------------------------
    def _record_step(self, metrics: StepMetrics, folder: RunFolder | None) -> None:
        """The step's record → the run folder, and → the history (thinned by halving beyond HISTORY_STEP_LIMIT)."""
        record = {"kind": "step", "step": metrics.step, "epoch": metrics.epoch, "terms": metrics.terms,
                  "live": metrics.live, "samples_per_s": round(metrics.samples_per_s, 1)}
        if folder is not None:
            folder.record_step(record)
        if metrics.step % self._history_stride:
            return
        self.history.append(record)
        self._history_steps += 1
        if self._history_steps > HISTORY_STEP_LIMIT:
            self._history_stride *= 2
            self.history = [r for r in self.history if r["kind"] != "step" or r["step"] % self._history_stride == 0]
            self._history_steps = sum(1 for r in self.history if r["kind"] == "step")

    def _record_epoch(self, summary: EpochSummary, folder: RunFolder | None, partial: bool = False) -> None:
        record = {"kind": "epoch", "epoch": summary.epoch, "step": summary.step, "train": summary.train,
                  "test": summary.test, "kl_per_dim": list(summary.kl_per_dim)}
        if partial:
            record["partial"] = True
        self.history.append(record)
        if folder is not None:
            folder.record_epoch(record)


def _data_notes(dataset: Dataset, config: TrainConfig, n_test: int) -> list[str]:
    """What a user should know about their data before the run: skipped files, a test split raised to its floor."""
    from .data.files import skipped_files_text

    notes = []
    skipped = skipped_files_text(dataset)
    if skipped:
        notes.append(f"{dataset.name}: {skipped}")
    asked = config.test_count or int(round(len(dataset) * config.test_fraction))
    if n_test > asked:
        notes.append(f"the test split was raised from {asked} to {n_test} images (of {len(dataset):,}): fewer would "
                     "make the test scores noise")
    return notes


def _check_labels_once(dataset: Dataset, num_classes: int) -> None:
    """Conditional families: every label of the dataset in 0…K−1, checked once here so that no training step has to
    (on a GPU such a check waits for the device at every encode and decode)."""
    labels = dataset.labels
    if labels is None or labels.numel() == 0:
        return
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= num_classes:
        raise DatasetError(f"{dataset.name}: labels must lie in 0…{num_classes - 1}, found {low}…{high}")


def _exactness_warnings(stored: TrainConfig, config: TrainConfig, trained_on: str, device: torch.device) -> list[str]:
    """What makes a resumed run differ from the uninterrupted one (said, not refused: continuing is still useful)."""
    changed = [key for key in EXACTNESS_KEYS if key != "device" and getattr(stored, key) != getattr(config, key)]
    if trained_on and torch.device(trained_on).type != device.type:
        changed.insert(0, f"device {trained_on} → {device}")
    warnings = []
    if changed:
        warnings.append("resuming with a different " + ", ".join(
            c if c.startswith("device") else f"{c} {getattr(stored, c)!r} → {getattr(config, c)!r}" for c in changed)
            + ": training continues, but not bit-exactly as the uninterrupted run would have (other kernels and "
            "random streams)")
    if device.type == "cuda" and not config.deterministic:
        warnings.append("resuming on CUDA without deterministic = true: the continuation is close to, not exactly, "
                        "the uninterrupted run (set deterministic = true in [training] for exact resume)")
    return warnings


@dataclasses.dataclass
class _Loop:
    """What one `run()` carries from step to step besides the session's own state."""

    folder: RunFolder | None  # the run folder it records into
    pacing: Pacing
    order: torch.Tensor | None = None  # this epoch's training indices
    carried: Failed | None = None  # a non-finite loss found by the pull after a step, handled before the next
    force_emit: bool = False  # a control change: the next step's metrics go out at once
    reason: str | None = None  # why the loop ended ("stopped", "failed"), or None
