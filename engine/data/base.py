"""The one dataset container every source produces (see DESIGN.md, "Data")."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch


class DatasetError(ValueError):
    """A dataset could not be loaded; the message names the file and what is wrong."""


FACTOR_KINDS = ("categorical", "ordinal", "cyclic")


@dataclass(frozen=True)
class FactorSpec:
    """Ground-truth generative factors: names, number of values and the values themselves."""

    names: tuple[str, ...]
    sizes: tuple[int, ...]
    values: tuple[tuple[float, ...], ...]
    kinds: tuple[str, ...] = ()  # per factor: categorical / ordinal / cyclic (empty: all ordinal)

    def __post_init__(self) -> None:
        if self.kinds and (len(self.kinds) != len(self.names) or not set(self.kinds) <= set(FACTOR_KINDS)):
            raise DatasetError(f"factor kinds must be one of {', '.join(FACTOR_KINDS)} per factor, got {self.kinds}")

    @property
    def num_factors(self) -> int:
        return len(self.names)

    def kind(self, k: int) -> str:
        """How factor k's values relate: categorical (unordered), ordinal, or cyclic (the last wraps to the first)."""
        return self.kinds[k] if self.kinds else "ordinal"


@dataclass
class Dataset:
    """Images as uint8 N×C×H×W (tensor-resident), optional labels and ground-truth factors.

    `images_at(indices)` is the one batch hook: training, the probe, metrics, panels and exports call only it
    (and `render_factors` for factor rows), so a world too large to hold overrides it (and `__len__`, `shape`,
    `to`) to compose each batch from small precomputed parts on the dataset's device (dSprites, engine/data/
    worlds.py's `FactorWorld`).
    """

    name: str
    description: str
    images: torch.Tensor | None
    labels: torch.Tensor | None = None
    class_names: tuple[str, ...] | None = None
    factors: torch.Tensor | None = None
    factor_spec: FactorSpec | None = None
    spec: str = ""
    is_sample: bool = False
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.images is not None:
            if self.images.dtype != torch.uint8 or self.images.dim() != 4:
                raise DatasetError(f"{self.name}: images must be uint8 N×C×H×W, got "
                                   f"{self.images.dtype} {tuple(self.images.shape)}")
            n = self.images.shape[0]
            if self.labels is not None and self.labels.shape[0] != n:
                raise DatasetError(f"{self.name}: {n} images but {self.labels.shape[0]} labels")
            if self.factors is not None and self.factors.shape[0] != n:
                raise DatasetError(f"{self.name}: {n} images but {self.factors.shape[0]} factor rows")

    # --- shape -------------------------------------------------------------------------------
    def __len__(self) -> int:
        assert self.images is not None
        return int(self.images.shape[0])

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        assert self.images is not None
        return tuple(int(s) for s in self.images.shape[1:])  # type: ignore[return-value]

    @property
    def num_classes(self) -> int:
        if self.labels is None:
            return 0
        if self.class_names:
            return len(self.class_names)
        return int(self.labels.max().item()) + 1

    @property
    def has_labels(self) -> bool:
        return self.labels is not None

    @property
    def has_factors(self) -> bool:
        return self.factor_spec is not None

    # --- access ------------------------------------------------------------------------------
    def images_at(self, indices: torch.Tensor) -> torch.Tensor:
        """uint8 n×C×H×W images for a 1-D index tensor (on the dataset's device)."""
        assert self.images is not None
        return self.images.index_select(0, indices.to(self.images.device))

    def labels_at(self, indices: torch.Tensor) -> torch.Tensor | None:
        if self.labels is None:
            return None
        return self.labels.index_select(0, indices.to(self.labels.device))

    def factors_at(self, indices: torch.Tensor) -> torch.Tensor | None:
        """Factor class indices (n×K int64) for the given items, or None."""
        if self.factors is None:
            return None
        return self.factors.index_select(0, indices.to(self.factors.device))

    def to(self, device: torch.device | str) -> Dataset:
        """Move resident tensors to a device (in place) and return self."""
        if self.images is not None:
            self.images = self.images.to(device)
        if self.labels is not None:
            self.labels = self.labels.to(device)
        if self.factors is not None:
            self.factors = self.factors.to(device)
        self.__dict__.pop("_grid_cache", None)
        return self

    @property
    def device(self) -> torch.device:
        assert self.images is not None
        return self.images.device

    def split(self, test_fraction: float = 0.1, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Deterministic (train, test) index tensors: a seeded permutation cut at test_fraction."""
        n = len(self)
        if not 0.0 <= test_fraction < 1.0:
            raise DatasetError(f"{self.name}: test_fraction must be in [0, 1), got {test_fraction}")
        gen = torch.Generator().manual_seed(seed)
        perm = torch.randperm(n, generator=gen)
        n_test = int(round(n * test_fraction))
        if n > 1 and test_fraction > 0:
            n_test = max(1, min(n - 1, n_test))
        return perm[n_test:], perm[:n_test]

    # --- the factor-source protocol (what the disentanglement metrics call) ----------------------
    def _grid_lookup(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Item index of every factor combination, when the factors form a complete grid (cached)."""
        cached = self.__dict__.get("_grid_cache")
        if cached is not None:
            return cached
        if self.factor_spec is None:
            raise DatasetError(f"{self.name}: this dataset has no ground-truth factors")
        sizes = self.factor_spec.sizes
        grid_size = int(np.prod(sizes, dtype=np.int64))
        if self.factors is None or len(self) != grid_size:
            raise DatasetError(f"{self.name}: its factors do not form a complete grid ({len(self)} items for "
                               f"{grid_size} factor combinations), so images for arbitrary factor values "
                               "cannot be produced")
        radix = torch.tensor([int(np.prod(sizes[k + 1:], dtype=np.int64)) for k in range(len(sizes))],
                             dtype=torch.int64, device=self.factors.device)
        grid = (self.factors.to(torch.int64) * radix).sum(dim=1)
        counts = torch.bincount(grid, minlength=grid_size)
        if counts.numel() != grid_size or not bool((counts == 1).all()):
            raise DatasetError(f"{self.name}: its factor rows are not a complete grid (some combinations "
                               "repeat or are missing), so images for arbitrary factor values cannot be produced")
        lookup = torch.empty(grid_size, dtype=torch.int64, device=grid.device)
        lookup[grid] = torch.arange(grid_size, device=grid.device)
        self._grid_cache = (lookup, radix)
        return self._grid_cache

    def _check_factor_rows(self, factors: np.ndarray | torch.Tensor) -> torch.Tensor:
        assert self.factor_spec is not None
        f = torch.as_tensor(np.asarray(factors) if isinstance(factors, list | tuple) else factors)
        k = self.factor_spec.num_factors
        if f.dim() != 2 or f.shape[1] != k or f.dtype.is_floating_point or f.dtype == torch.bool:
            raise DatasetError(f"{self.name}: factors must be an n×{k} integer array, "
                               f"got {f.dtype} {tuple(f.shape)}")
        f = f.to(torch.int64)
        sizes = torch.tensor(self.factor_spec.sizes)
        if f.numel() and bool(((f < 0) | (f >= sizes.to(f.device))).any()):
            raise DatasetError(f"{self.name}: factor values must lie in 0…size−1 for sizes {self.factor_spec.sizes}")
        return f

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """n factor rows (n×K int64 class indices) drawn uniformly from the factor grid."""
        self._grid_lookup()
        assert self.factor_spec is not None
        return np.stack([rng.integers(0, s, size=int(n)) for s in self.factor_spec.sizes],
                        axis=1).astype(np.int64)

    def render_factors(self, factors: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 n×C×H×W images for factor rows (n×K class indices), looked up in the complete grid."""
        lookup, radix = self._grid_lookup()
        f = self._check_factor_rows(factors).to(radix.device)
        return self.images_at(lookup[(f * radix).sum(dim=1)])

    def summary(self) -> dict:
        """A JSON-able description (what the GUI's data dock and `datasets` show)."""
        out = {
            "name": self.name,
            "spec": self.spec or self.name,
            "description": self.description,
            "size": len(self),
            "shape": list(self.shape),
            "is_sample": self.is_sample,
        }
        if self.labels is not None:
            out["num_classes"] = self.num_classes
            if self.class_names:
                out["class_names"] = list(self.class_names)
        if self.factor_spec is not None:
            out["factors"] = dict(zip(self.factor_spec.names, self.factor_spec.sizes, strict=True))
        return out


def images_from_array(arr: np.ndarray, source: str) -> torch.Tensor:
    """Validate an image array (N×H×W, N×H×W×C or N×C×H×W; uint8, bool or float in [0,1]/[0,255])
    and return uint8 N×C×H×W."""
    if not isinstance(arr, np.ndarray):
        raise DatasetError(f"{source}: expected an array, got {type(arr).__name__}")
    if arr.ndim not in (3, 4):
        raise DatasetError(f"{source}: images must have 3 or 4 dimensions (N×H×W or N×H×W×C), "
                           f"got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise DatasetError(f"{source}: the array holds no images")
    if arr.size == 0:
        raise DatasetError(f"{source}: the images have no pixels (shape {arr.shape})")
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * 255
    elif arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise DatasetError(f"{source}: the array contains NaN or Inf")
        lo, hi = float(arr.min()), float(arr.max())
        if lo < 0 or hi > 255:
            raise DatasetError(f"{source}: float pixel values must lie in [0, 1] or [0, 255], "
                               f"found [{lo:g}, {hi:g}]")
        scale = 255.0 if hi <= 1.0 else 1.0
        arr = np.clip(np.rint(arr * scale), 0, 255).astype(np.uint8)
    elif arr.dtype.kind in "iu":
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi > 255:
            raise DatasetError(f"{source}: integer pixel values must lie in [0, 255], found [{lo}, {hi}]")
        if arr.dtype != np.uint8:
            if hi <= 1:
                arr = arr.astype(np.uint8) * 255
            else:
                arr = arr.astype(np.uint8)
    else:
        raise DatasetError(f"{source}: unsupported pixel dtype {arr.dtype}")
    if arr.ndim == 3:
        arr = arr[:, None, :, :]
    elif arr.shape[-1] in (1, 3) and arr.shape[1] not in (1, 3):
        arr = np.transpose(arr, (0, 3, 1, 2))
    c, h, w = arr.shape[1:]
    if c not in (1, 3):
        raise DatasetError(f"{source}: images must have 1 or 3 channels, got {c}")
    if not (4 <= h <= 256 and 4 <= w <= 256):
        raise DatasetError(f"{source}: image size {h}×{w} is outside 4…256 pixels")
    return torch.from_numpy(np.ascontiguousarray(arr))
