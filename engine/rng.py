"""Private random streams for inference: previews, panels and evaluation never touch torch's global generators.

Training draws its noise (reparameterisation, corruption, permutations) from the global CPU/CUDA/MPS generators,
whose state a checkpoint saves for exact resume. Inference runs beside it — on another thread in the app — and
used to fork and reseed those generators (`fork_rng` + `manual_seed`), which changed the training stream (and
reseeded every CUDA generator for good). Instead, inside `private_rng(seed)` every random torch call of *this
thread* draws from its own `torch.Generator` per device, seeded from `seed`: the family code stays unchanged
(it calls `torch.randn_like` etc.), results repeat for a given seed, and the global generators are never read,
advanced or reseeded. (Torch function modes are thread-local, so the training thread is not affected.)
"""

from __future__ import annotations

import contextlib
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


class _PrivateGenerators(TorchFunctionMode):
    def __init__(self, seed: int) -> None:
        super().__init__()
        self.seed = int(seed)
        self.generators: dict[torch.device, torch.Generator] = {}

    def generator(self, device: Any) -> torch.Generator:
        device = torch.device(device if device is not None else "cpu")
        if device.type in ("cuda", "xpu") and device.index is None:
            device = torch.device(device.type, getattr(torch, device.type).current_device())
        gen = self.generators.get(device)
        if gen is None:
            gen = self.generators[device] = torch.Generator(device=device).manual_seed(self.seed)
        return gen

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func in _LIKE:
            like = args[0]
            factory = _LIKE[func]
            return factory(like.shape, dtype=kwargs.get("dtype") or like.dtype,
                           device=kwargs.get("device") or like.device, generator=self.generator(
                               kwargs.get("device") or like.device))
        if func in _WITH_GENERATOR and kwargs.get("generator") is None:
            tensor = next((a for a in args if isinstance(a, torch.Tensor)), None)
            device = kwargs.get("device") or (tensor.device if tensor is not None else None)
            kwargs["generator"] = self.generator(device)
        return func(*args, **kwargs)


@contextlib.contextmanager
def private_rng(seed: int = 0) -> Iterator[None]:
    """Within the block, this thread's random torch calls draw from fresh generators seeded with `seed`."""
    with _PrivateGenerators(seed):
        yield
