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
        self.__dict__.pop("_observed_cache", None)
        return self

    @property
    def device(self) -> torch.device:
        assert self.images is not None
        return self.images.device

    def split(self, test_fraction: float = 0.1, seed: int = 0,
              test_count: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Deterministic (train, test) index tensors: a seeded permutation cut at `held_out_size(...)` test images."""
        n = len(self)
        n_test = held_out_size(n, test_fraction, test_count, self.name)
        gen = torch.Generator().manual_seed(seed)
        perm = torch.randperm(n, generator=gen)
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

    @property
    def factor_grid_complete(self) -> bool:
        """Whether every combination of factor values has exactly one image (so any factor row can be "rendered")."""
        try:
            self._grid_lookup()
        except DatasetError:
            return False
        return True

    def factor_grid_note(self) -> str | None:
        """Why images for chosen factor values cannot be produced (None when they can): what the BetaVAE and
        FactorVAE scores need. A world with its own `render_factors` (dSprites, even a subset of it) renders any."""
        if self.factor_spec is None:
            return "this dataset has no ground-truth factors"
        if type(self).render_factors is not Dataset.render_factors:
            return None
        try:
            self._grid_lookup()
        except DatasetError as exc:
            return f"needs a full factor grid: {str(exc).removeprefix(self.name + ': ')}"
        return None

    def _observed_lookup(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(the distinct observed factor rows, the first item with each) — cached. Rows are compared whole (no
        mixed-radix key, which overflows int64 for large factor spaces)."""
        cached = self.__dict__.get("_observed_cache")
        if cached is not None:
            return cached
        assert self.factor_spec is not None and self.factors is not None
        rows, inverse = torch.unique(self.factors.to(torch.int64), dim=0, return_inverse=True)
        first = torch.full((len(rows),), len(self), dtype=torch.int64, device=rows.device)
        first.scatter_reduce_(0, inverse, torch.arange(len(self), device=rows.device), reduce="amin")
        self._observed_cache = (rows, first)
        return self._observed_cache

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """n factor rows (n×K int64 class indices): uniform over the factor grid when the images form a complete
        grid, else the factor rows of n items drawn uniformly (observed (image, factor) pairs only)."""
        if self.factor_spec is None or self.factors is None:
            raise DatasetError(f"{self.name}: this dataset has no ground-truth factors")
        if self.factor_grid_complete:
            return np.stack([rng.integers(0, s, size=int(n)) for s in self.factor_spec.sizes],
                            axis=1).astype(np.int64)
        rows = torch.from_numpy(rng.integers(0, len(self), size=int(n)))
        return self.factors_at(rows).cpu().numpy().astype(np.int64)

    def render_factors(self, factors: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 n×C×H×W images for factor rows (n×K class indices): looked up in the complete grid, else the first
        image whose factors are that row (a row no image has is an error)."""
        if self.factor_spec is not None and self.factors is not None and not self.factor_grid_complete:
            rows, first = self._observed_lookup()
            f = self._check_factor_rows(factors).to(rows.device)
            together, ids = torch.unique(torch.cat([rows, f]), dim=0, return_inverse=True)
            item_of = torch.full((len(together),), -1, dtype=torch.int64, device=rows.device)
            item_of[ids[:len(rows)]] = first
            items = item_of[ids[len(rows):]]
            if bool((items < 0).any()):
                raise DatasetError(f"{self.name}: no image has one of the asked factor rows (its factors do not form "
                                   "a complete grid, so only observed rows can be looked up)")
            return self.images_at(items)
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
            out["factor_grid_complete"] = self.factor_grid_note() is None
        if self.extra.get("skipped"):
            out["skipped"] = [list(entry) for entry in self.extra["skipped"]]
        return out


TEST_FLOOR_IMAGES = 32  # a requested test split is raised to min(this, n // 5) images: fewer are too noisy to score


def held_out_size(n: int, fraction: float = 0.1, count: int = 0, name: str = "dataset") -> int:
    """Test images for a set of n: `count` when given, else round(n·fraction); a non-empty split is raised to the
    floor min(TEST_FLOOR_IMAGES, n // 5) and always leaves at least one training image."""
    if not 0.0 <= fraction < 1.0:
        raise DatasetError(f"{name}: test_fraction must be in [0, 1), got {fraction}")
    if count < 0:
        raise DatasetError(f"{name}: test_count must be ≥ 0, got {count}")
    wanted = int(count) if count else int(round(n * fraction))
    if n <= 1 or (not count and fraction == 0):
        return 0
    floor = min(TEST_FLOOR_IMAGES, n // 5)
    return max(1, min(n - 1, max(wanted, floor)))


SPLITS = ("test", "train", "both")


def split_indices(n: int, test_indices: torch.Tensor | None, which: str = "test") -> torch.Tensor:
    """The items of one split of an n-item set, in a fixed order: "test" as given; "train" the other items and
    "both" every item, each in one seeded shuffle (a prefix is then a fair sample even of a set sorted by label).
    Without test indices every item counts as test."""
    if which not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {which!r}")
    test = torch.arange(n) if test_indices is None else torch.as_tensor(test_indices, dtype=torch.long).reshape(-1)
    test = test.cpu()
    if which == "test":
        return test
    order = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    if which == "both":
        return order
    is_test = torch.zeros(n, dtype=torch.bool)
    is_test[test] = True
    return order[~is_test[order]]


def parse_test_split(text: str | float | int) -> tuple[float, int]:
    """(test_fraction, test_count) from what a user types: "0.1" or "10%" → a fraction, "40" → a count, "0" → none."""
    raw = str(text).strip()
    try:
        if raw.endswith("%"):
            fraction = float(raw[:-1]) / 100.0
        elif raw.isdigit():
            count = int(raw)
            return (0.0, 0) if count == 0 else (0.0, count)
        else:
            fraction = float(raw)
    except ValueError:
        raise DatasetError(f"test split must be a fraction (0.1 or 10%) or a number of images (40), got {raw!r}") \
            from None
    if not 0.0 <= fraction < 1.0:
        raise DatasetError(f"a test fraction must lie in [0, 1) (or give a number of images), got {raw!r}")
    return fraction, 0


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
