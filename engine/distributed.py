"""One run on many processes (torchrun): process group from the environment, sharded batches, averaged gradients.

`torchrun --nproc-per-node=N main.py train …` starts N copies of the CLI; each builds a `Parallel` from the
variables torchrun sets (WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR/PORT) and hands it to its TrainingSession.
Without those variables `Parallel.from_environment()` is `SINGLE`, whose every method is a no-op: the
single-process path is exactly the default one.

How a step is shared (`config.batch_size` is the *global* batch B; each of N ranks takes B/N of it):
- every rank draws the same epoch permutation and takes its contiguous slice of each global batch (`shard`);
- per-sample noise (reparameterisation ε, DAE corruption) is drawn for the global batch and sliced
  (`randn_like_batch`), and all ranks seed their session streams alike and make the same draws, so their RNG
  streams stay in lockstep: N ranks × B/N compute exactly what one process computes with batch B;
- after backward the gradients of the main optimiser are averaged with ONE all-reduce of a flat buffer
  (`average_gradients`); the loss terms and a stop flag are all-reduced together (`reduce_terms`), so every
  rank logs the global mean, takes the same non-finite-guard decision and stops at the same step.

Why an explicit all-reduce and not `DistributedDataParallel`: DDP prepares its gradient reducer in `forward()`,
but the model contract trains through `model.loss(x, y, step)`; FactorVAE back-propagates a second loss
into its discriminator inside `after_step` (DDP would see a second backward in one iteration), and VQ-VAE
edits its codebook and buffers outside autograd (DDP's buffer broadcast would overwrite the ranks' code
statistics with rank 0's). One flat all-reduce after backward is what DDP does minus the overlap of
communication with backward, which is negligible for these model sizes, and it works for every family,
`torch.compile`d losses included. Families with state of their own call the module functions below
(`average_gradients`, `all_mean_`, `broadcast_`), which do nothing outside a data-parallel run.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterable, Iterator, Mapping
from datetime import timedelta

import torch
from torch import nn

from . import rng
from .errors import ConfigError

COLLECTIVE_TIMEOUT = timedelta(minutes=10)  # rank 0 scores the test set and writes checkpoints while others wait

_ACTIVE: Parallel | None = None  # the connected data-parallel context of this process, if any
_NOISE_SHARD: tuple[int, int] | None = None  # (rank, world size) while a training step's loss runs


class Parallel:
    """This process's place in a data-parallel run (rank, world size) and the collectives the session needs."""

    def __init__(self, rank: int = 0, world_size: int = 1, local_rank: int = 0) -> None:
        if world_size < 1 or not 0 <= rank < world_size:
            raise ConfigError(f"invalid rank {rank} of world size {world_size}")
        self.rank = rank
        self.world_size = world_size
        self.local_rank = local_rank
        self.device: torch.device | None = None
        self.backend = ""

    @property
    def active(self) -> bool:
        """True when this process is one of several ranks of one run."""
        return self.world_size > 1

    @property
    def is_writer(self) -> bool:
        """Only rank 0 writes files (run folder, metrics, previews, checkpoints) and computes test passes."""
        return self.rank == 0

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Parallel:
        """The rank torchrun (or a Slurm/ MPI launcher exporting the same variables) gave this process."""
        env = os.environ if environ is None else environ
        try:
            world = int(env.get("WORLD_SIZE", "1"))
            rank = int(env.get("RANK", "0"))
            local = int(env.get("LOCAL_RANK", str(rank)))
        except ValueError:
            raise ConfigError("WORLD_SIZE, RANK and LOCAL_RANK must be integers (torchrun sets them)") from None
        if world <= 1:
            return SINGLE
        if "MASTER_ADDR" not in env or "MASTER_PORT" not in env:
            raise ConfigError("WORLD_SIZE > 1 but MASTER_ADDR/MASTER_PORT are not set: start the processes with "
                              "torchrun (see docs/scale-out.md)")
        return cls(rank, world, local)

    # --- set-up -------------------------------------------------------------------------------------------
    def connect(self, device: torch.device) -> torch.device:
        """Bind this rank's device (cuda:LOCAL_RANK on GPUs) and join the process group (nccl on CUDA, else gloo)."""
        global _ACTIVE
        if not self.active:
            return device
        if self.device is not None:
            return self.device
        import torch.distributed as dist

        if not dist.is_available():
            raise ConfigError("this torch build has no torch.distributed; multi-process training is unavailable")
        if device.type == "cuda":
            if self.local_rank >= torch.cuda.device_count():
                raise ConfigError(f"local rank {self.local_rank} has no GPU: {torch.cuda.device_count()} CUDA "
                                  "device(s) on this node; start at most that many processes per node")
            device = torch.device("cuda", self.local_rank)
            torch.cuda.set_device(device)
            backend = "nccl"
        elif device.type == "cpu":
            backend = "gloo"
        else:
            raise ConfigError(f"multi-process training runs on CUDA (nccl) or CPU (gloo), not on {device.type}")
        if not dist.is_initialized():
            dist.init_process_group(backend=backend, timeout=COLLECTIVE_TIMEOUT)
        self.device, self.backend = device, backend
        _ACTIVE = self
        return device

    def close(self) -> None:
        """Leave the process group (end of `train`)."""
        global _ACTIVE
        if not self.active or self.device is None:
            return
        import torch.distributed as dist

        if dist.is_initialized():
            try:  # leave together: a rank that tears gloo down while its peer still talks to it can abort
                dist.barrier()
            except RuntimeError:
                pass  # a peer is gone (killed, failed): torchrun ends the job anyway
            dist.destroy_process_group()
        if _ACTIVE is self:
            _ACTIVE = None
        self.device = None

    def check_same(self, what: str, text: str) -> None:
        """ConfigError unless every rank passes the same `text` (config, dataset): mismatches would train garbage."""
        if not self.active:
            return
        import torch.distributed as dist

        digest = int.from_bytes(hashlib.sha256(text.encode()).digest()[:7], "big")
        low = torch.tensor([digest], dtype=torch.int64, device=self.device)
        high = low.clone()
        dist.all_reduce(low, op=dist.ReduceOp.MIN)
        dist.all_reduce(high, op=dist.ReduceOp.MAX)
        if int(low) != int(high):
            raise ConfigError(f"the ranks of this run do not agree on the {what}: start every process with the same "
                              "command line and data")

    def local_batch(self, global_batch: int) -> int:
        """Images per rank per step: the global batch divided by the world size (which must divide it)."""
        if global_batch % self.world_size:
            raise ConfigError(f"batch size {global_batch} is the global batch of a step: it must be divisible by the "
                              f"{self.world_size} processes (each takes an equal share)")
        return global_batch // self.world_size

    # --- the step ---------------------------------------------------------------------------------------------
    def shard(self, batch_indices: torch.Tensor) -> torch.Tensor:
        """This rank's contiguous share of a global batch (the whole batch in a single process)."""
        if not self.active:
            return batch_indices
        share = len(batch_indices) // self.world_size
        return batch_indices[self.rank * share:(self.rank + 1) * share]

    def batch_noise(self) -> contextlib.AbstractContextManager:
        """While a training loss runs: per-sample noise is drawn for the global batch and sliced to this rank."""
        if not self.active:
            return contextlib.nullcontext()
        return _noise_shard(self.rank, self.world_size)

    def reduce_terms(self, stacked: torch.Tensor, stop: bool) -> tuple[torch.Tensor, bool]:
        """(mean of the loss terms over ranks, whether any rank asked to stop), from one all-reduce."""
        if not self.active:
            return stacked, False
        import torch.distributed as dist

        flag = torch.tensor([1.0 if stop else 0.0], device=stacked.device, dtype=stacked.dtype)
        buffer = torch.cat([stacked, flag])
        dist.all_reduce(buffer)
        host = buffer.cpu()
        return host[:-1] / self.world_size, bool(host[-1] > 0)

    def average_gradients(self, parameters: Iterable[nn.Parameter] | torch.optim.Optimizer) -> None:
        """Average the gradients of `parameters` (or of an optimiser's) over ranks: one flat all-reduce."""
        if not self.active:
            return
        if isinstance(parameters, torch.optim.Optimizer):
            parameters = [p for group in parameters.param_groups for p in group["params"]]
        _average_gradients(list(parameters), self.world_size)

    def broadcast_module(self, module: nn.Module) -> None:
        """Rank 0's weights and buffers to every rank (same start even if a rank's init differed)."""
        if not self.active:
            return
        with torch.no_grad():
            for tensor in module.state_dict().values():
                broadcast_(tensor)


SINGLE = Parallel()


# --- what families call (no-ops outside a data-parallel run) ---------------------------------------------------
def active() -> Parallel | None:
    """The connected data-parallel context of this process (None in a single process)."""
    return _ACTIVE


def average_gradients(parameters: Iterable[nn.Parameter]) -> None:
    """Average these parameters' gradients over ranks (e.g. FactorVAE's discriminator before its own step)."""
    if _ACTIVE is not None:
        _average_gradients(list(parameters), _ACTIVE.world_size)


def all_mean_(tensor: torch.Tensor) -> torch.Tensor:
    """In place: the mean of `tensor` over ranks (e.g. VQ-VAE's code-assignment frequencies of a batch)."""
    if _ACTIVE is not None:
        import torch.distributed as dist

        dist.all_reduce(tensor)
        tensor.div_(_ACTIVE.world_size)
    return tensor


def broadcast_(tensor: torch.Tensor) -> torch.Tensor:
    """In place: rank 0's values of `tensor` on every rank (e.g. a codebook initialised or reset on rank 0)."""
    if _ACTIVE is not None:
        import torch.distributed as dist

        dist.broadcast(tensor, src=0)
    return tensor


def randn_like_batch(t: torch.Tensor) -> torch.Tensor:
    """N(0, 1) noise shaped like `t` (batch first): in a data-parallel step, this rank's rows of the global batch's."""
    return _global_batch_noise(t, rng.randn_like, rng.randn)


def rand_like_batch(t: torch.Tensor) -> torch.Tensor:
    """U(0, 1) noise shaped like `t` (batch first), sliced from the global batch's like `randn_like_batch`."""
    return _global_batch_noise(t, rng.rand_like, rng.rand)


def _global_batch_noise(t: torch.Tensor, like, draw) -> torch.Tensor:
    """`like(t)` alone; under `batch_noise`, `draw` for the whole global batch and this rank's rows of it."""
    if _NOISE_SHARD is None:
        return like(t)
    rank, world = _NOISE_SHARD
    n = t.shape[0]
    return draw((n * world, *t.shape[1:]), dtype=t.dtype, device=t.device)[rank * n:(rank + 1) * n]


@contextlib.contextmanager
def _noise_shard(rank: int, world: int) -> Iterator[None]:
    global _NOISE_SHARD
    previous, _NOISE_SHARD = _NOISE_SHARD, (rank, world)
    try:
        yield
    finally:
        _NOISE_SHARD = previous


def _average_gradients(parameters: list[nn.Parameter], world: int) -> None:
    import torch.distributed as dist

    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat.div_(world)
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()
