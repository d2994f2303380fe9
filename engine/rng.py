"""Random streams that belong to their user: a training session's own generators, and private ones for inference.

Several sessions may train in one process (the app's run, in-process sweep runs) beside panels that sample.
None of them may reseed or advance torch's global generators, or one changes another's numbers:

- A training session owns a `SessionRandom`: one `torch.Generator` per device, seeded from the run's seed, whose
  states a checkpoint saves for exact resume. Its step runs inside `stream.active()`, which makes it this thread's
  current stream; the families draw their noise through the helpers below (`randn_like`, `rand`, …), which pass
  the current stream's generator (or none, outside a session: then torch's usual rules apply).
- Where torch itself samples from the global generators — `nn.init` inside a model's constructor, the random ops
  of a compiled loss (`torch.compile` takes no generator argument) — `as_global()` lends them a stream's state for
  the block, under a process-wide lock, takes the advanced state back and restores theirs: model weights are
  built under `initialising(seed)`, a compiled step under the session's `as_global(device)`.
- Inside `private_rng(seed)` every random torch call of *this thread* draws from its own generators seeded from
  `seed` (a torch function mode; modes are thread-local): previews, panels and evaluation repeat for a seed and
  never touch a training stream.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

# Random factories and in-place samplers that take a `generator=` keyword.
_WITH_GENERATOR = {
    torch.randn, torch.rand, torch.randint, torch.randperm, torch.multinomial, torch.normal, torch.bernoulli,
    torch.poisson, torch.Tensor.uniform_, torch.Tensor.normal_, torch.Tensor.random_, torch.Tensor.bernoulli_,
    torch.Tensor.exponential_, torch.Tensor.geometric_, torch.Tensor.log_normal_, torch.Tensor.cauchy_,
    torch.Tensor.multinomial, torch.Tensor.bernoulli,
}
# `*_like` samplers have no `generator=`: they are rewritten as the factory with the template's shape/dtype/device.
_LIKE = {torch.randn_like: torch.randn, torch.rand_like: torch.rand}
_GLOBAL_LOCK = threading.Lock()  # held while a compiled step has lent its stream to the global generators
_current = threading.local()


def _concrete(device: Any) -> torch.device:
    device = torch.device(device if device is not None else "cpu")
    if device.type in ("cuda", "xpu") and device.index is None:
        device = torch.device(device.type, getattr(torch, device.type).current_device())
    return device


def _new_generator(device: torch.device, seed: int) -> torch.Generator | None:
    """A generator on `device` seeded with `seed`; None where torch has none (the data-less `meta` device)."""
    if device.type == "meta":
        return None
    return torch.Generator(device=device).manual_seed(int(seed))


class _Generators:
    """One lazily made generator per device, all seeded with the same seed."""

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)
        self.generators: dict[torch.device, torch.Generator | None] = {}

    def generator(self, device: Any) -> torch.Generator | None:
        device = _concrete(device)
        if device not in self.generators:
            self.generators[device] = _new_generator(device, self.seed)
        return self.generators[device]


class _PrivateGenerators(TorchFunctionMode):
    def __init__(self, streams: _Generators) -> None:
        super().__init__()
        self.streams = streams

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func in _LIKE:
            like = args[0]
            device = kwargs.get("device") or like.device
            return _LIKE[func](like.shape, dtype=kwargs.get("dtype") or like.dtype, device=device,
                               generator=self.streams.generator(device))
        if func in _WITH_GENERATOR and kwargs.get("generator") is None:
            tensor = next((a for a in args if isinstance(a, torch.Tensor)), None)
            device = kwargs.get("device") or (tensor.device if tensor is not None else None)
            kwargs["generator"] = self.streams.generator(device)
        return func(*args, **kwargs)


@contextlib.contextmanager
def private_rng(seed: int = 0) -> Iterator[None]:
    """Within the block, this thread's random torch calls draw from fresh generators seeded with `seed`."""
    previous = getattr(_current, "stream", None)
    _current.stream = None  # a session stream active on this thread is not drawn from inside the block
    try:
        with _PrivateGenerators(_Generators(seed)):
            yield
    finally:
        _current.stream = previous


class SessionRandom(_Generators):
    """A training session's random streams: a generator per device, seeded from the run's seed."""

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        """Within the block, the helpers below draw from this stream (on this thread only)."""
        previous = getattr(_current, "stream", None)
        _current.stream = self
        try:
            yield
        finally:
            _current.stream = previous

    @contextlib.contextmanager
    def as_global(self, device: torch.device) -> Iterator[None]:
        """For a compiled step: the global CPU (and `device`'s) generators run on this stream inside the block,
        which then takes the advanced states back and restores the global ones."""
        cuda = device.type == "cuda"
        cpu_gen, device_gen = self.generator("cpu"), self.generator(device) if cuda else None
        with _GLOBAL_LOCK:
            saved_cpu = torch.get_rng_state()
            saved_cuda = torch.cuda.get_rng_state(device) if cuda else None
            torch.set_rng_state(cpu_gen.get_state())
            if cuda:
                torch.cuda.set_rng_state(device_gen.get_state(), device)
            try:
                yield
            finally:
                cpu_gen.set_state(torch.get_rng_state())
                torch.set_rng_state(saved_cpu)
                if cuda:
                    device_gen.set_state(torch.cuda.get_rng_state(device))
                    torch.cuda.set_rng_state(saved_cuda, device)

    def state(self, device: torch.device) -> dict[str, torch.Tensor]:
        """The generator states a checkpoint stores: `cpu` and the run's device type (`cuda`, `mps`)."""
        states = {"cpu": self.generator("cpu").get_state()}
        if device.type in ("cuda", "mps"):
            states[device.type] = self.generator(device).get_state()
        return states

    def load_state(self, states: dict[str, torch.Tensor], device: torch.device) -> None:
        """Continue from stored states (a checkpoint's `rng.cpu`, `rng.cuda`, `rng.mps`)."""
        for kind, value in states.items():
            target = "cpu" if kind == "cpu" else device
            if kind == "cpu" or kind == device.type:
                self.generator(target).set_state(value.to(torch.uint8).cpu())


@contextlib.contextmanager
def initialising(seed: int) -> Iterator[None]:
    """Model construction: weight init draws from a CPU generator seeded with `seed`, whatever else the process
    does. (`nn.init` samples through torch's global CPU generator from inside its own functions, which no function
    mode reaches: that generator is lent this seed's state for the block, under the lock, and restored after.)"""
    with SessionRandom(seed).as_global(torch.device("cpu")):
        yield


@contextlib.contextmanager
def routed_to_current_stream() -> Iterator[None]:
    """For code that calls torch's samplers itself (a user's model file: `torch.randn_like(mean)`): within the
    block, this thread's random torch calls draw from the active session's stream, so two sessions training side
    by side do not share the global generators. Outside a session, or while compiling (a compiled step already
    runs on its stream via `as_global`), torch's usual rules apply."""
    stream = getattr(_current, "stream", None)
    if stream is None or torch.compiler.is_compiling():
        yield
        return
    with _PrivateGenerators(stream):
        yield


def current_generator(device: Any) -> torch.Generator | None:
    """The generator of the session stream active on this thread for `device`, or None outside one."""
    stream = getattr(_current, "stream", None)
    return None if stream is None else stream.generator(device)


# --- the draws the families make (noise of a training step) ----------------------------------------------
def randn(*size: int, device: Any = None, dtype: torch.dtype | None = None) -> torch.Tensor:
    """N(0, 1) of shape `size` from the current stream (see the module docstring)."""
    if torch.compiler.is_compiling():
        return torch.randn(*size, device=device, dtype=dtype)
    return torch.randn(*size, device=device, dtype=dtype, generator=current_generator(device))


def rand(*size: int, device: Any = None, dtype: torch.dtype | None = None) -> torch.Tensor:
    """U(0, 1) of shape `size` from the current stream."""
    if torch.compiler.is_compiling():
        return torch.rand(*size, device=device, dtype=dtype)
    return torch.rand(*size, device=device, dtype=dtype, generator=current_generator(device))


def randint(high: int, size: tuple[int, ...], device: Any = None) -> torch.Tensor:
    """Integers uniform in 0…high−1 from the current stream."""
    if torch.compiler.is_compiling():
        return torch.randint(0, high, size, device=device)
    return torch.randint(0, high, size, device=device, generator=current_generator(device))


def randn_like(t: torch.Tensor) -> torch.Tensor:
    """N(0, 1) shaped like `t` from the current stream."""
    return randn(*t.shape, device=t.device, dtype=t.dtype)


def rand_like(t: torch.Tensor) -> torch.Tensor:
    """U(0, 1) shaped like `t` from the current stream."""
    return rand(*t.shape, device=t.device, dtype=t.dtype)
