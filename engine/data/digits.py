"""scikit-learn's 1,797 8×8 handwritten digits (always available, no download)."""

from __future__ import annotations

import numpy as np
import torch

from .base import Dataset, DatasetError


def load_digits_dataset(size: int = 8) -> Dataset:
    """The 8×8 digits (values 0–16 scaled to 0–255), optionally upscaled to size×size (nearest)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    imgs = np.clip(np.rint(bunch.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    if size != 8:
        if size % 8 or not 8 <= size <= 64:
            raise DatasetError(f"digits: size must be 8, 16, 24, … 64, got {size}")
        f = size // 8
        imgs = imgs.repeat(f, axis=1).repeat(f, axis=2)
    return Dataset(
        name="digits",
        description="scikit-learn's 1,797 handwritten digits, 8×8 grayscale, 10 classes",
        images=torch.from_numpy(np.ascontiguousarray(imgs[:, None])),
        labels=torch.from_numpy(bunch.target.astype(np.int64)),
        class_names=tuple(str(i) for i in range(10)),
        spec="digits" if size == 8 else f"digits?size={size}",
    )
