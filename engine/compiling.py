"""How a training session runs its loss fast: torch.compile (with an eager fallback on any compiler failure), the
step as a device tensor for compiled losses, CUDA-graph step marking, and the channels_last memory format.

`StepLoss` is what the step loop calls each step; `wants_channels_last` / `apply_memory_format` decide and apply
the layout of conv weights, their optimiser state and the batches (on the CPU it was slower: docs/benchmarks.md,
bench/channels_last_ab.py).
"""

from __future__ import annotations

from typing import Any

import torch

from .events import Warning_
from .models import ModelBase
from .rng import SessionRandom

GRAPHING_COMPILE_MODES = ("reduce-overhead", "max-autotune")  # the torch.compile modes that record CUDA graphs


def uses_cuda_graphs(compile_loss: bool, compile_mode: str, device: torch.device) -> bool:
    """Whether the compiled loss replays CUDA graphs: then each step is marked (`cudagraph_mark_step_begin`) and an
    output kept past the step (the KL per latent) is cloned, since the next replay overwrites the graph's outputs."""
    return bool(compile_loss) and compile_mode in GRAPHING_COMPILE_MODES and device.type == "cuda"


class StepLoss:
    """The loss a session calls each step: the model's own (`fn` = model.loss), or torch.compile's of it.

    Compiled, the loss sees the step as a device tensor (`step_tensor`, kept equal to the session's step) so that
    schedules such as the β warm-up or the capacity C(t) do not recompile and CUDA graphs can replay; it runs with
    the session's random streams as the global ones (a compiled graph draws from the global generators)."""

    def __init__(self, model: ModelBase, device: torch.device, random: SessionRandom, *, compile_loss: bool,
                 compile_mode: str) -> None:
        self.model = model
        self.device = device
        self.random = random
        self.compile_loss = compile_loss
        self.compile_mode = compile_mode
        self.fn = model.loss  # the loss in use (a test may wrap it)
        self.compiled = False  # `fn` is torch.compile's
        self.tried = False
        self.first_call_pending = False
        self.cuda_graphs = uses_cuda_graphs(compile_loss, compile_mode, device)
        self.step_tensor = torch.zeros((), dtype=torch.int64, device=device) if compile_loss else None

    def compile_once(self) -> Warning_ | None:
        """Wrap the loss in torch.compile (compilation itself happens at the first call); a warning if unusable."""
        if not self.compile_loss or self.tried:
            return None
        self.tried = True
        try:
            mode = None if self.compile_mode == "default" else self.compile_mode
            self.model.use_live_tensors(self.device)  # live β, γ, … as data: a new value does not recompile
            self.fn = torch.compile(self.model.loss, mode=mode)
            self.first_call_pending = True
            self.compiled = True
            return None
        except Exception as exc:  # torch.compile is optional: any failure falls back to eager mode
            self.fn = self.model.loss
            self.compiled = False
            return Warning_(f"torch.compile is not usable here ({type(exc).__name__}: {exc}); running eagerly")

    def set_step(self, step: int) -> None:
        """Keep the compiled loss's step tensor equal to the session's step (at start, and after a rollback)."""
        if self.step_tensor is not None:
            self.step_tensor.fill_(step)

    def stepped(self) -> None:
        if self.step_tensor is not None:
            self.step_tensor.add_(1)

    def __call__(self, x: torch.Tensor, y: torch.Tensor | None, step: int) -> tuple[Any, Warning_ | None]:
        """The loss output of one training step, and a warning if compiling failed at this (first) call."""
        if self.cuda_graphs:
            torch.compiler.cudagraph_mark_step_begin()
        if self.first_call_pending:
            return self._first_compiled_call(x, y, step)
        if self.compiled:
            with self.random.as_global(self.device):
                return self.fn(x, y, self._step_argument(step)), None
        return self.fn(x, y, self._step_argument(step)), None

    def keep(self, tensor: torch.Tensor | None) -> torch.Tensor | None:
        """An output to keep past this step: cloned when a CUDA-graph replay would overwrite it."""
        return tensor.clone() if self.cuda_graphs and tensor is not None else tensor

    def _step_argument(self, step: int) -> int | torch.Tensor:
        """The step as the loss sees it: a Python int eagerly, the device tensor when compiled."""
        return self.step_tensor if self.step_tensor is not None else step

    def _first_compiled_call(self, x: torch.Tensor, y: torch.Tensor | None, step: int) -> tuple[Any, Warning_ | None]:
        """Compilation happens at the first call: if it fails, say so and run the loss eagerly from then on."""
        self.first_call_pending = False
        state = self.random.state(self.device)
        try:
            with self.random.as_global(self.device):
                return self.fn(x, y, self._step_argument(step)), None
        except Exception as exc:  # any compiler failure (missing toolchain, unsupported op) → eager fallback
            self.random.load_state(state, self.device)
            self.fn = self.model.loss
            self.compiled = False
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            return self.fn(x, y, step), Warning_(f"torch.compile failed ({type(exc).__name__}: {first}); "
                                                 "running eagerly")


def wants_channels_last(memory_format: str, device: torch.device, model: torch.nn.Module) -> bool:
    """Whether a run keeps its conv weights and batches channels_last: only a model with conv layers; `auto` means on
    CUDA only (on the CPU it was slower: docs/benchmarks.md, bench/channels_last_ab.py)."""
    has_conv = any(isinstance(m, torch.nn.Conv2d | torch.nn.ConvTranspose2d) for m in model.modules())
    if memory_format == "auto":
        return has_conv and device.type == "cuda"
    return has_conv and memory_format == "channels_last"


def apply_memory_format(model: torch.nn.Module, optimizers: list[torch.optim.Optimizer]) -> None:
    """channels_last (NHWC) conv weights, and each such weight's optimiser state in the same layout (a fused Adam
    steps a parameter, its gradient and its moments as alike-strided tensors). Called again after a checkpoint's
    optimiser state is loaded (checkpoints hold contiguous tensors)."""
    model.to(memory_format=torch.channels_last)  # in place: the optimisers keep the same Parameters
    for optimizer in optimizers:
        for param, state in optimizer.state.items():
            for key, value in state.items():
                if param.dim() == 4 and isinstance(value, torch.Tensor) and value.shape == param.shape:
                    state[key] = value.contiguous(memory_format=torch.channels_last)
