"""dSprites, generated procedurally and held packed (Matthey et al. 2017, github.com/deepmind/dsprites-dataset).

Grid (as the original, minus its constant colour factor): shape 3 (square, ellipse, heart) × scale 6
(linspace 0.5…1) × orientation 40 (linspace 0…2π, both ends included as in the original) × posX 32 ×
posY 32 (linspace 0…1) = 737,280 binary 64×64 images; item index = mixed radix, shape slowest, posY fastest.

Packed form: an image is one of 3·6·40 = 720 sprites placed at one of 32×32 positions. Position p puts the
sprite centre at ``MARGIN + p·STEP`` pixels (STEP = 1.5 px, so centres span 8.75…55.25 and every sprite,
at every orientation, stays inside the frame). A step of 1.5 px gives two sub-pixel phases per axis, so the
bank holds 720 × 2 × 2 crops of 20×20 (1.2 MB), each rendered by 8×8 supersampling and thresholded at half
coverage. A batch is assembled by one vectorised scatter of bank crops into a zero canvas.
"""

from __future__ import annotations

import functools
import math
import os
from pathlib import Path

import numpy as np
import torch

from .base import Dataset, DatasetError, FactorSpec
from .npyio import npz_headers, read_npz_member, stream_npz_member

IMAGE_SIZE = 64
SHAPE_NAMES = ("square", "ellipse", "heart")
FACTOR_NAMES = ("shape", "scale", "orientation", "posX", "posY")
FACTOR_SIZES = (3, 6, 40, 32, 32)
NUM_IMAGES = math.prod(FACTOR_SIZES)
NUM_SPRITES = 3 * 6 * 40

FACTOR_SPEC = FactorSpec(
    names=FACTOR_NAMES,
    sizes=FACTOR_SIZES,
    values=(
        (1.0, 2.0, 3.0),
        tuple(float(v) for v in np.linspace(0.5, 1.0, 6)),
        tuple(float(v) for v in np.linspace(0.0, 2 * np.pi, 40)),
        tuple(float(v) for v in np.linspace(0.0, 1.0, 32)),
        tuple(float(v) for v in np.linspace(0.0, 1.0, 32)),
    ),
    kinds=("categorical", "ordinal", "cyclic", "ordinal", "ordinal"),
)

STEP = 1.5
MARGIN = (IMAGE_SIZE - STEP * (FACTOR_SIZES[3] - 1)) / 2.0
MAX_RADIUS = 8.5
CROP = 20
SUPERSAMPLE = 8
OFFICIAL_NAME = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"

_RADIX = torch.tensor([math.prod(FACTOR_SIZES[k + 1:]) for k in range(5)], dtype=torch.int64)


def index_of(factors: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Item index of factor class indices (n×5): Σ_k f_k · Π_{j>k} size_j (shape slowest, posY fastest)."""
    f = _as_factor_tensor(factors, FACTOR_SIZES)
    return (f * _RADIX.to(f.device)).sum(dim=1)


def factors_of(index: np.ndarray | torch.Tensor | int) -> torch.Tensor:
    """Factor class indices (n×5 int64) of item indices: the inverse of `index_of`."""
    idx = torch.as_tensor(index, dtype=torch.int64).reshape(-1)
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= NUM_IMAGES):
        raise DatasetError(f"dsprites: item index out of range [0, {NUM_IMAGES})")
    return _decode(idx, FACTOR_SIZES)


def sample_factors(n: int, rng: np.random.Generator) -> np.ndarray:
    """n uniformly drawn factor rows (n×5 int64 class indices)."""
    return np.stack([rng.integers(0, s, size=n) for s in FACTOR_SIZES], axis=1).astype(np.int64)


def render(factors: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Exact images (uint8 n×1×64×64, values 0/255) for factor class indices n×5."""
    return default_bank().assemble(_as_factor_tensor(factors, FACTOR_SIZES))


def _decode(idx: torch.Tensor, sizes: tuple[int, ...]) -> torch.Tensor:
    out = torch.empty((idx.numel(), len(sizes)), dtype=torch.int64, device=idx.device)
    rest = idx.clone()
    for k in range(len(sizes) - 1, -1, -1):
        out[:, k] = rest % sizes[k]
        rest = rest // sizes[k]
    return out


def _as_factor_tensor(factors: np.ndarray | torch.Tensor, sizes: tuple[int, ...],
                      names: tuple[str, ...] = FACTOR_NAMES, source: str = "dsprites") -> torch.Tensor:
    """Validate n×K integer class indices against `sizes`; returns an int64 tensor."""
    f = torch.as_tensor(np.asarray(factors) if isinstance(factors, list | tuple) else factors)
    if f.dim() == 1:
        f = f.reshape(1, -1)
    if f.dim() != 2 or f.shape[1] != len(sizes):
        raise DatasetError(f"{source}: factors must be an n×{len(sizes)} array, got shape {tuple(f.shape)}")
    if f.dtype.is_floating_point or f.dtype.is_complex or f.dtype == torch.bool:
        raise DatasetError(f"{source}: factors must be integer class indices, got {f.dtype}")
    f = f.to(torch.int64)
    if f.numel():
        bad = (f < 0) | (f >= torch.tensor(sizes, device=f.device))
        if bool(bad.any()):
            k = int(bad.any(dim=0).nonzero()[0])
            raise DatasetError(f"{source}: factor {names[k]!r} must lie in 0…{sizes[k] - 1}, "
                               f"got {f[:, k].min().item()}…{f[:, k].max().item()}")
    return f


# --- rendering the sprite bank ----------------------------------------------------------------------

def _heart_inside(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The classic heart curve (x² + y² − 1)³ − x²y³ ≤ 0 (y up), lobes up and tip down."""
    r = x * x + y * y - 1.0
    return r * r * r - x * x * y * y * y <= 0.0


def _heart_frame() -> tuple[float, float, float]:
    """Area centroid (cx, cy) and the largest distance from it to the heart, on a fine grid."""
    g = np.linspace(-1.6, 1.6, 1601)
    xx, yy = np.meshgrid(g, g)
    inside = _heart_inside(xx, yy)
    cx, cy = float(xx[inside].mean()), float(yy[inside].mean())
    radius = float(np.sqrt((xx[inside] - cx) ** 2 + (yy[inside] - cy) ** 2).max())
    return cx, cy, radius


_HEART = _heart_frame()


def _shape_inside(shape: int, x: np.ndarray, y: np.ndarray, radius: float) -> np.ndarray:
    """Membership of points (sprite frame, y up, unrotated) in a shape whose farthest point is `radius`."""
    if shape == 0:
        half = radius / math.sqrt(2.0)
        return (np.abs(x) <= half) & (np.abs(y) <= half)
    if shape == 1:
        return (x / radius) ** 2 + (y / (0.5 * radius)) ** 2 <= 1.0
    cx, cy, r_max = _HEART
    unit = r_max / radius
    return _heart_inside(x * unit + cx, y * unit + cy)


def _position_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each position p: integer crop origin, sub-pixel phase id, and the phases' fractional centres."""
    centres = MARGIN + STEP * np.arange(FACTOR_SIZES[3])
    fractions = np.round(centres - np.floor(centres), 6)
    phases = np.unique(fractions)
    phase_id = np.searchsorted(phases, fractions)
    origin = np.floor(centres).astype(np.int64) - CROP // 2
    return origin, phase_id, phases


def build_sprite_bank() -> np.ndarray:
    """uint8 (720, P, P, CROP, CROP) crops in {0, 1}: sprite × y-phase × x-phase, supersampled then thresholded."""
    _, _, phases = _position_tables()
    sub = (np.arange(CROP * SUPERSAMPLE) + 0.5) / SUPERSAMPLE
    scales = FACTOR_SPEC.values[1]
    angles = FACTOR_SPEC.values[2]
    num_phases = len(phases)
    bank = np.zeros((3, 6, 40, num_phases, num_phases, CROP, CROP), dtype=np.uint8)
    for py, phase_y in enumerate(phases):
        dy = sub - (CROP // 2 + phase_y)
        for px, phase_x in enumerate(phases):
            dx = sub - (CROP // 2 + phase_x)
            xs, ys = np.meshgrid(dx, -dy)
            for o, theta in enumerate(angles):
                c, s = math.cos(theta), math.sin(theta)
                xr = (c * xs + s * ys).astype(np.float32)
                yr = (-s * xs + c * ys).astype(np.float32)
                for shape in range(3):
                    for k, scale in enumerate(scales):
                        inside = _shape_inside(shape, xr, yr, MAX_RADIUS * scale)
                        cover = inside.reshape(CROP, SUPERSAMPLE, CROP, SUPERSAMPLE).mean(axis=(1, 3))
                        bank[shape, k, o, py, px] = cover >= 0.5
    return bank.reshape(NUM_SPRITES, num_phases, num_phases, CROP, CROP)


class SpriteBank:
    """The 720 sprites × sub-pixel phases as crops, and the vectorised placement of them into 64×64 frames."""

    def __init__(self, crops: torch.Tensor, device: torch.device | str = "cpu") -> None:
        origin, phase_id, phases = _position_tables()
        self.num_phases = len(phases)
        self.crops = crops.reshape(-1, CROP, CROP).to(device)
        self.pad = int(max(0, -origin.min(), origin.max() + CROP - IMAGE_SIZE))
        self.origin = torch.from_numpy(origin + self.pad).to(device)
        self.phase_id = torch.from_numpy(phase_id).to(device)
        self.offsets = torch.arange(CROP, device=device)

    @property
    def device(self) -> torch.device:
        return self.crops.device

    @property
    def nbytes(self) -> int:
        return self.crops.numel() * self.crops.element_size()

    def to(self, device: torch.device | str) -> SpriteBank:
        return SpriteBank(self.crops, device)

    def assemble(self, factors: torch.Tensor) -> torch.Tensor:
        """uint8 n×1×64×64 frames for validated original-grid factor class indices (n×5)."""
        f = factors.to(self.device)
        n = f.shape[0]
        sprite = (f[:, 0] * FACTOR_SIZES[1] + f[:, 1]) * FACTOR_SIZES[2] + f[:, 2]
        crop = (sprite * self.num_phases + self.phase_id[f[:, 4]]) * self.num_phases + self.phase_id[f[:, 3]]
        side = IMAGE_SIZE + 2 * self.pad
        rows = self.origin[f[:, 4]].unsqueeze(1) + self.offsets
        cols = self.origin[f[:, 3]].unsqueeze(1) + self.offsets
        flat = (torch.arange(n, device=self.device).mul_(side * side).view(n, 1, 1)
                + rows.mul_(side).unsqueeze(2) + cols.unsqueeze(1))
        canvas = torch.zeros(n * side * side, dtype=torch.uint8, device=self.device)
        canvas[flat.reshape(-1)] = self.crops.index_select(0, crop).reshape(-1)
        canvas = canvas.view(n, 1, side, side)
        return canvas[:, :, self.pad:self.pad + IMAGE_SIZE, self.pad:self.pad + IMAGE_SIZE].contiguous()


@functools.lru_cache(maxsize=1)
def default_bank() -> SpriteBank:
    """The CPU sprite bank, built once per process (~0.3 s; too cheap to be worth a disk cache)."""
    return SpriteBank(torch.from_numpy(build_sprite_bank()).mul_(255))


# --- factor filters ---------------------------------------------------------------------------------

_FACTOR_ALIASES = {
    "shape": 0, "scale": 1, "orientation": 2, "rotation": 2, "orient": 2,
    "posx": 3, "pos_x": 3, "x": 3, "posy": 4, "pos_y": 4, "y": 4,
}


def parse_factor_filter(key: str, value: str) -> tuple[int, list[int]]:
    """`shape=heart`, `scale=0`, `posX=0-15`, `orientation=0,10,20` → (factor, allowed class indices)."""
    k = _FACTOR_ALIASES.get(key.lower())
    if k is None:
        raise DatasetError(f"dsprites: unknown option {key!r}; options are subset, seed, path and the factor "
                           f"filters {', '.join(FACTOR_NAMES)}")
    size = FACTOR_SIZES[k]
    allowed: set[int] = set()
    for part in filter(None, (p.strip() for p in str(value).split(","))):
        if k == 0 and part.lower() in SHAPE_NAMES:
            allowed.add(SHAPE_NAMES.index(part.lower()))
            continue
        lo_text, dash, hi_text = part.partition("-")
        try:
            lo = int(lo_text)
            hi = int(hi_text) if dash else lo
        except ValueError:
            hint = f" or one of {', '.join(SHAPE_NAMES)}" if k == 0 else ""
            raise DatasetError(f"dsprites: {FACTOR_NAMES[k]}={value!r}: expected class indices like 3, "
                               f"0-15 or 1,4{hint}") from None
        if not 0 <= lo <= hi < size:
            raise DatasetError(f"dsprites: {FACTOR_NAMES[k]}={value!r}: class indices must lie in 0…{size - 1}")
        allowed.update(range(lo, hi + 1))
    if not allowed:
        raise DatasetError(f"dsprites: {FACTOR_NAMES[k]}= needs at least one value")
    return k, sorted(allowed)


def _allowed_classes(filters: dict[str, str]) -> list[list[int]]:
    allowed = [list(range(s)) for s in FACTOR_SIZES]
    for key, value in filters.items():
        k, classes = parse_factor_filter(key, value)
        allowed[k] = classes
    return allowed


def _restricted_spec(allowed: list[list[int]]) -> FactorSpec:
    return FactorSpec(
        names=FACTOR_NAMES,
        sizes=tuple(len(a) for a in allowed),
        values=tuple(tuple(FACTOR_SPEC.values[k][c] for c in a) for k, a in enumerate(allowed)),
        kinds=FACTOR_SPEC.kinds,
    )


def _parse_subset(subset: str | int | None, available: int) -> int | None:
    if subset is None or str(subset).strip().lower() in ("", "none", "all"):
        return None
    try:
        n = int(subset)
    except ValueError:
        raise DatasetError(f"dsprites: subset must be a whole number, got {subset!r}") from None
    if not 1 <= n <= available:
        raise DatasetError(f"dsprites: subset must lie in 1…{available}, got {n}")
    return None if n == available else n


def _seeded_subset(n: int, available: int, seed: int) -> torch.Tensor:
    """A sorted, seeded random choice of n of `available` grid positions."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randperm(available, generator=gen)[:n].sort().values


# --- the procedural dataset -------------------------------------------------------------------------

class DSpritesDataset(Dataset):
    """dSprites held as a sprite bank; images are assembled on demand (on the dataset's device).

    With factor filters the dataset is the sub-grid of allowed values: `factor_spec` lists only those
    values and every factor index this class takes or returns is relative to it. Labels are the shape
    (class names square/ellipse/heart). `images` and `factors` stay None: use `images_at`/`factors_at`.
    """

    def __init__(self, allowed: list[list[int]], subset: torch.Tensor | None, bank: SpriteBank,
                 spec: str = "dsprites") -> None:
        sizes = tuple(len(a) for a in allowed)
        grid_size = math.prod(sizes)
        described = "" if grid_size == NUM_IMAGES else f" (a {grid_size:,}-image factor sub-grid)"
        if subset is not None:
            described += f", a seeded random subset of {subset.numel():,}"
        super().__init__(
            name="dsprites",
            description=("dSprites, procedural: 3 shapes × 6 scales × 40 orientations × 32×32 positions, "
                         f"binary 64×64{described}"),
            images=None,
            class_names=SHAPE_NAMES,
            factor_spec=_restricted_spec(allowed),
            spec=spec,
            is_sample=subset is not None,
        )
        self.bank = bank
        self.grid_sizes = sizes
        self._allowed = [torch.tensor(a, dtype=torch.int64, device=bank.device) for a in allowed]
        self._radix = torch.tensor([math.prod(sizes[k + 1:]) for k in range(5)], dtype=torch.int64,
                                   device=bank.device)
        self._subset = None if subset is None else subset.to(bank.device)
        every = self._subset if self._subset is not None else torch.arange(grid_size, device=bank.device)
        self.labels = self._allowed[0][torch.div(every, self._radix[0], rounding_mode="floor")]

    # --- shape and access ----------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self._subset.numel()) if self._subset is not None else math.prod(self.grid_sizes)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (1, IMAGE_SIZE, IMAGE_SIZE)

    @property
    def device(self) -> torch.device:
        return self.bank.device

    def _grid_positions(self, indices: torch.Tensor) -> torch.Tensor:
        idx = torch.as_tensor(indices, dtype=torch.int64).reshape(-1)
        # Range-checked on the CPU only: indices already on an accelerator come from the engine's own split, and
        # checking them would make every training batch wait for the device.
        if idx.device.type == "cpu" and idx.numel() and (int(idx.min()) < -len(self) or int(idx.max()) >= len(self)):
            raise IndexError(f"dsprites: index out of range for {len(self)} items")
        idx = idx.to(self.device)
        idx = torch.where(idx < 0, idx + len(self), idx)
        return self._subset[idx] if self._subset is not None else idx

    def _to_original(self, local: torch.Tensor) -> torch.Tensor:
        return torch.stack([self._allowed[k][local[:, k]] for k in range(5)], dim=1)

    def images_at(self, indices: torch.Tensor) -> torch.Tensor:
        """uint8 n×1×64×64 (0/255) assembled from the sprite bank by one vectorised scatter."""
        local = _decode(self._grid_positions(indices), self.grid_sizes)
        return self.bank.assemble(self._to_original(local))

    def factors_at(self, indices: torch.Tensor) -> torch.Tensor:
        """Factor class indices (n×5 int64, relative to `factor_spec`)."""
        return _decode(self._grid_positions(indices), self.grid_sizes)

    def original_factors_at(self, indices: torch.Tensor) -> torch.Tensor:
        """Factor class indices on the full original grid (n×5 int64)."""
        return self._to_original(self.factors_at(indices))

    # --- the factor-source protocol ------------------------------------------------------------
    def index_of(self, factors: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Item indices of factor rows (relative to `factor_spec`); DatasetError if one is not in a subset."""
        f = _as_factor_tensor(factors, self.grid_sizes).to(self.device)
        grid = (f * self._radix).sum(dim=1)
        if self._subset is None:
            return grid
        pos = torch.searchsorted(self._subset, grid).clamp_(max=len(self) - 1)
        if not bool((self._subset[pos] == grid).all()):
            raise DatasetError("dsprites: some factor combinations are not part of this random subset")
        return pos

    def factors_of(self, index: np.ndarray | torch.Tensor | int) -> torch.Tensor:
        return self.factors_at(torch.as_tensor(index, dtype=torch.int64).reshape(-1))

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """n rows drawn uniformly from the (filtered) grid: n×5 int64 class indices of `factor_spec`."""
        return np.stack([rng.integers(0, s, size=int(n)) for s in self.grid_sizes], axis=1).astype(np.int64)

    def render_factors(self, factors: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Exact images for any factor rows of the (filtered) grid, whether or not they are in a subset."""
        f = _as_factor_tensor(factors, self.grid_sizes).to(self.device)
        return self.bank.assemble(self._to_original(f))

    render = render_factors

    # --- housekeeping --------------------------------------------------------------------------
    def to(self, device: torch.device | str) -> DSpritesDataset:
        self.bank = self.bank.to(device)
        self._allowed = [a.to(device) for a in self._allowed]
        self._radix = self._radix.to(device)
        if self._subset is not None:
            self._subset = self._subset.to(device)
        self.labels = self.labels.to(device)
        return self

    def summary(self) -> dict:
        out = super().summary()
        out["storage"] = f"sprite bank of {self.bank.crops.shape[0]} crops ({self.bank.nbytes / 1e6:.1f} MB)"
        return out


# --- the official file ------------------------------------------------------------------------------

_UNPACK_SHIFTS = torch.arange(7, -1, -1, dtype=torch.uint8)


class PackedBitsDataset(Dataset):
    """Binary images held one bit per pixel (N × H·W/8 bytes); `images_at` unpacks just the batch."""

    def __init__(self, bits: torch.Tensor, image_shape: tuple[int, int, int], **fields) -> None:
        super().__init__(images=None, **fields)
        self.bits = bits
        self.image_shape = image_shape
        self._shifts = _UNPACK_SHIFTS.to(bits.device)
        n = bits.shape[0]
        for what, tensor in (("labels", self.labels), ("factor rows", self.factors)):
            if tensor is not None and tensor.shape[0] != n:
                raise DatasetError(f"{self.name}: {n} images but {tensor.shape[0]} {what}")

    def __len__(self) -> int:
        return int(self.bits.shape[0])

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.image_shape

    @property
    def device(self) -> torch.device:
        return self.bits.device

    def images_at(self, indices: torch.Tensor) -> torch.Tensor:
        packed = self.bits.index_select(0, torch.as_tensor(indices, dtype=torch.int64).to(self.device))
        pixels = packed.unsqueeze(-1).bitwise_right_shift(self._shifts).bitwise_and_(1).mul_(255)
        c, h, w = self.image_shape
        return pixels.reshape(-1, c, h, w)

    def to(self, device: torch.device | str) -> PackedBitsDataset:
        self.__dict__.pop("_grid_cache", None)
        self.bits = self.bits.to(device)
        self._shifts = self._shifts.to(device)
        for attr in ("labels", "factors"):
            value = getattr(self, attr)
            if value is not None:
                setattr(self, attr, value.to(device))
        return self

    def summary(self) -> dict:
        out = super().summary()
        out["storage"] = f"bit-packed ({self.bits.numel() / 1e6:.0f} MB)"
        return out


def load_official_npz(path: str | Path, subset: str | int | None = None, seed: int = 0,
                      filters: dict[str, str] | None = None, sizes: tuple[int, ...] = FACTOR_SIZES,
                      image_size: int = IMAGE_SIZE, chunk_rows: int = 8192) -> PackedBitsDataset:
    """The official DeepMind `.npz` (keys imgs, latents_classes), validated before anything large is read.

    `sizes`/`image_size` exist so tests can check the reader on a small grid; users never pass them.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise DatasetError(f"{path}: file not found (expected the official {OFFICIAL_NAME})")
    n = math.prod(sizes)
    headers = npz_headers(path)
    for key in ("imgs", "latents_classes"):
        if key not in headers:
            raise DatasetError(f"{path}: not the official dSprites file: array {key!r} is missing "
                               f"(found {', '.join(sorted(headers))})")
    imgs, classes = headers["imgs"], headers["latents_classes"]
    if imgs.shape != (n, image_size, image_size) or imgs.dtype.kind not in "ub":
        raise DatasetError(f"{path} [imgs]: expected uint8 of shape {(n, image_size, image_size)}, "
                           f"got {imgs.dtype} {imgs.shape}")
    if classes.shape != (n, 1 + len(sizes)) or classes.dtype.kind not in "iu":
        raise DatasetError(f"{path} [latents_classes]: expected integers of shape {(n, 1 + len(sizes))}, "
                           f"got {classes.dtype} {classes.shape}")
    all_factors = read_npz_member(path, "latents_classes", headers).astype(np.int64)[:, 1:]
    bad = (all_factors < 0) | (all_factors >= np.array(sizes))
    if bad.any():
        k = int(bad.any(axis=0).nonzero()[0][0])
        raise DatasetError(f"{path} [latents_classes]: factor {FACTOR_NAMES[k]} outside 0…{sizes[k] - 1}")
    allowed = [list(range(s)) for s in sizes]
    for key, value in (filters or {}).items():
        try:
            k, classes_ok = parse_factor_filter(key, value)
        except DatasetError as exc:
            raise DatasetError(f"{path}: {exc}") from None
        if classes_ok[-1] >= sizes[k]:
            raise DatasetError(f"{path}: dsprites {key}={value!r} outside this file's 0…{sizes[k] - 1}")
        allowed[k] = classes_ok
    keep = np.ones(n, dtype=bool)
    local = np.empty_like(all_factors)
    for k, classes_ok in enumerate(allowed):
        lookup = np.full(sizes[k], -1, dtype=np.int64)
        lookup[classes_ok] = np.arange(len(classes_ok))
        local[:, k] = lookup[all_factors[:, k]]
        keep &= local[:, k] >= 0
    rows = np.flatnonzero(keep)
    try:
        count = _parse_subset(subset, rows.size)
    except DatasetError as exc:
        raise DatasetError(f"{path}: {exc}") from None
    if count is not None:
        rows = rows[_seeded_subset(count, rows.size, int(seed)).numpy()]
    row_bytes = image_size * image_size // 8
    bits = np.empty((rows.size, row_bytes), dtype=np.uint8)
    start = filled = 0
    for chunk in stream_npz_member(path, "imgs", chunk_rows):
        stop = start + chunk.shape[0]
        if chunk.max(initial=0) > 1:
            raise DatasetError(f"{path} [imgs]: expected binary pixels 0/1, found {int(chunk.max())}")
        lo, hi = np.searchsorted(rows, [start, stop])
        if hi > lo:
            picked = chunk[rows[lo:hi] - start].reshape(hi - lo, -1)
            bits[filled:filled + hi - lo] = np.packbits(picked, axis=1)
            filled += hi - lo
        start = stop
    factors = torch.from_numpy(local[rows])
    spec = FactorSpec(FACTOR_NAMES, tuple(len(a) for a in allowed),
                      tuple(tuple(FACTOR_SPEC.values[k][c] for c in a) for k, a in enumerate(allowed)),
                      FACTOR_SPEC.kinds)
    return PackedBitsDataset(
        torch.from_numpy(bits), (1, image_size, image_size),
        name="dsprites",
        description=f"dSprites, the official DeepMind file ({rows.size:,} of {n:,} images, held bit-packed)",
        labels=torch.from_numpy(all_factors[rows, 0].copy()),
        class_names=SHAPE_NAMES,
        factors=factors,
        factor_spec=spec,
        spec=f"dsprites?path={path}",
        is_sample=rows.size < n,
        extra={"path": str(path)},
    )


# --- entry point ------------------------------------------------------------------------------------

def find_official_file() -> Path | None:
    """The official `.npz` in a `$LATENT_EXPLORER_DATA` folder (or that variable naming the file), if any."""
    for entry in filter(None, os.environ.get("LATENT_EXPLORER_DATA", "").split(os.pathsep)):
        candidate = Path(entry).expanduser()
        if candidate.is_file() and candidate.name == OFFICIAL_NAME:
            return candidate
        for sub in (candidate / OFFICIAL_NAME, candidate / "dsprites" / OFFICIAL_NAME):
            if sub.is_file():
                return sub
    return None


def load_dsprites(subset: str | int | None = None, seed: str | int = 0, path: str | None = None,
                  source: str = "procedural", **filters: str) -> Dataset:
    """`dsprites[?subset=N&seed=S&shape=heart&scale=0-2&path=official.npz&source=official]`."""
    try:
        seed_value = int(seed)
    except ValueError:
        raise DatasetError(f"dsprites: seed must be a whole number, got {seed!r}") from None
    if source not in ("procedural", "official"):
        raise DatasetError(f"dsprites: source must be procedural or official, got {source!r}")
    if path is None and source == "official":
        found = find_official_file()
        if found is None:
            raise DatasetError(f"dsprites: the official file was not found; put {OFFICIAL_NAME} in a folder "
                               "named by $LATENT_EXPLORER_DATA or pass dsprites?path=/path/to/it")
        path = str(found)
    if path is not None:
        return load_official_npz(path, subset=subset, seed=seed_value, filters=filters)
    allowed = _allowed_classes(filters)
    grid_size = math.prod(len(a) for a in allowed)
    count = _parse_subset(subset, grid_size)
    chosen = None if count is None else _seeded_subset(count, grid_size, seed_value)
    parts = [f"{k}={v}" for k, v in filters.items()]
    if count is not None:
        parts = [f"subset={count}", f"seed={seed_value}", *parts]
    spec = "dsprites" + ("?" + "&".join(parts) if parts else "")
    return DSpritesDataset(allowed, chosen, default_bank(), spec=spec)
