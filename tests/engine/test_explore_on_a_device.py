"""Every exploration, evaluation and probe function with the model and its inputs on a device other than the CPU.

No GPU is needed: the model and the dataset live on torch's `meta` device, which has shapes but no data, and which
refuses — like CUDA — any op that mixes one of its tensors with a CPU tensor of one or more dimensions ("Tensor on
device cpu is not on the expected device meta"). A tensor factory that forgot `device=` (a CPU `linspace` times
images on the device) fails here exactly as it fails on a GPU. Reads that reach the host (`.cpu()`, `.item()`) are
answered with zeros by `HostReads`, so every function runs to its end; the values are not checked, only that no
CPU tensor meets a device tensor on the way (and that numpy is reached only through `.cpu()`).
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from engine import explore
from engine.data import load_dataset
from engine.evaluate import evaluate
from engine.models import create_model
from engine.probe import FactorProbe

DEVICE = torch.device("meta")
TINY = {"backbone": "mlp", "latent_dim": 3, "hidden": 16, "depth": 1}


class HostReads(TorchDispatchMode):
    """Answers what would copy a meta tensor to the host (`.cpu()`, `.item()`, `.tolist()`) with zeros."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        source = args[0] if args and isinstance(args[0], torch.Tensor) else None
        if source is not None and source.device.type == "meta":
            name = func._schema.name
            if name in ("aten::item", "aten::_local_scalar_dense"):
                return 0.0 if source.dtype.is_floating_point else 0
            target = kwargs.get("device")
            if name in ("aten::to", "aten::_to_copy") and target is not None and torch.device(target).type == "cpu":
                return torch.zeros(source.shape, dtype=kwargs.get("dtype") or source.dtype)
        return func(*args, **kwargs)


def test_host_reads_still_refuses_a_cpu_tensor_beside_a_device_tensor():
    """The harness itself: a device mismatch is an error under it, as on a GPU."""
    with HostReads(), torch.inference_mode():
        images = torch.ones(2, 3, device=DEVICE)
        assert images.sum().item() == 0.0
        with pytest.raises(RuntimeError, match="device"):
            _ = images * torch.linspace(0.0, 1.0, 3)


@pytest.fixture(scope="module")
def world():
    """A complete dSprites factor grid (3 shapes × 6 scales × 4 × 4 positions) moved to the device, as training does."""
    return load_dataset("dsprites?orientation=0&posX=0-3&posY=0-3").to(DEVICE)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits").to(DEVICE)


def _model(family: str, dataset, **extra):
    return create_model(family, dataset.shape, dataset.num_classes, **{**TINY, **extra}).to(DEVICE).eval()


def test_every_explore_function_on_a_device(digits):
    vae = _model("vae", digits)
    images = digits.images_at(torch.arange(6, device=DEVICE))
    with HostReads():
        stats = explore.latent_stats(vae, digits, torch.arange(20), n=20)
        values = explore.traversal_values(stats, [0, 1], 5)
        base = torch.zeros(3, device=DEVICE)
        explore.sample_images(vae, 4, seed=1)
        explore.prior_codes(vae, 4, seed=1)
        explore.encode_means(vae, images)
        explore.traversal_images(vae, base, [0, 1], values)
        explore.traversal_grid(vae, base, [0, 1], values)
        explore.traversal_frames(vae, base, [0, 1], values)
        rows = [explore.latent_label(stats, d) for d in (0, 1)]
        cols, title = explore.traversal_axis(stats, values)
        explore.traversal_figure(vae, base, [0, 1], values, row_labels=rows, col_labels=cols, axis_title=title)
        explore.traversal_figure_frames(vae, base, [0, 1], values, row_labels=rows, col_labels=cols)
        explore.decode_codes(vae, torch.zeros(2, 3, device=DEVICE))
        for mode in ("lerp", "slerp"):
            explore.interpolate(vae, images[:2], images[2:4], 5, mode)
        faded = explore.crossfade(images[:2], images[2:4], 5)
        assert faded.device == DEVICE  # built beside its inputs (its t was built on the CPU: every CUDA run failed)
        embedding = explore.embed(np.random.default_rng(0).normal(size=(20, 3)).astype(np.float32), "pca")
        xs = explore.plane_values(-1, 1, 3)
        explore.manifold_grid(vae, embedding, xs, xs)
        explore.reconstructions(vae, images)
        errors = explore.reconstruction_errors(vae, images)
        explore.worst_indices(errors, 2)


def test_conditional_denoising_and_codebook_functions_on_a_device(digits, monkeypatch):
    autocast = torch.autocast  # `meta` has no autocast (VQ-VAE turns autocast off around its nearest-code search)
    monkeypatch.setattr(torch, "autocast", lambda kind, *args, **kwargs: contextlib.nullcontext() if kind == "meta"
                        else autocast(kind, *args, **kwargs))
    cvae = _model("cvae", digits)
    dae = _model("dae", digits)
    vq = _model("vq-vae", digits, positions=2, codebook_size=8)
    images = digits.images_at(torch.arange(4, device=DEVICE))
    labels = digits.labels_at(torch.arange(4, device=DEVICE))
    with HostReads():
        outputs = {
            "conditional_grid": explore.conditional_grid(cvae, 2, seed=0),
            "conditional_images": explore.conditional_images(cvae, 2, classes=[1, 2], seed=0),
            "analogies": explore.analogies(cvae, images, labels, classes=[0, 3]),
            "interpolate": explore.interpolate(cvae, images[:2], images[2:], 4, ya=labels[:2], yb=labels[2:]),
            "denoise_triplets": explore.denoise_triplets(dae, images, seed=2),
        }
        positions = explore.code_positions(vq)
        outputs["codebook_traversal"] = explore.codebook_traversal(vq, images[0], positions - 1, k=3)
    grid = outputs.pop("conditional_grid")  # the one host image: the tiled grid the panel paints
    assert grid.dtype == np.uint8 and grid.ndim == 2
    expected = {"conditional_images": (4, 1, 8, 8), "analogies": (8, 1, 8, 8), "interpolate": (8, 1, 8, 8),
                "codebook_traversal": (3, 1, 8, 8)}
    for name, shape in expected.items():
        assert outputs[name].device == DEVICE and tuple(outputs[name].shape) == shape, name
    assert len(outputs["denoise_triplets"]) == 3
    assert all(t.device == DEVICE and tuple(t.shape) == (4, 1, 8, 8) for t in outputs["denoise_triplets"])


def test_evaluation_and_the_probe_on_a_device(world):
    vae = _model("vae", world)
    with HostReads():
        scores = evaluate(vae, world, torch.arange(8, device=DEVICE), iwae_k=4, iwae_subset=4, batch=4)
        assert scores  # the whole evaluation ran on the device without a CPU tensor beside a device one
        with torch.inference_mode():
            FactorProbe(world, seed=0, points=16).codes(vae)
