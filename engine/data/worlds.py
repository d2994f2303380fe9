"""Factor worlds composed per batch: colour and noisy dSprites, XYObject (and, in shapes3d.py, a 3-D scene).

Every world here is a complete factor grid (item index = mixed radix, first factor slowest) held as small
precomputed parts; `images_at` decodes the indices to factor rows and composes just that batch with a few
vectorised tensor operations on the dataset's device. A per-image nuisance (the colour of colour-dSprites,
the background noise of noisy-dSprites) is a function of the item's grid position alone, so the same index
gives the same image in every process, and `render_factors(factors_at(i))` is image i.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from . import dsprites
from .base import Dataset, DatasetError, FactorSpec

IMAGE_SIZE = 64
_MASK32 = 0xFFFFFFFF


def hash32(x: torch.Tensor) -> torch.Tensor:
    """A fixed integer hash of non-negative int64 values to [0, 2³²) (xor-shift-multiply, constant 0x45d9f3b)."""
    x = x & _MASK32
    x = ((x >> 16) ^ x) * 0x45D9F3B & _MASK32
    x = ((x >> 16) ^ x) * 0x45D9F3B & _MASK32
    return (x >> 16) ^ x


def decode_grid(grid: torch.Tensor, sizes: tuple[int, ...]) -> torch.Tensor:
    """Factor class indices (n×K int64) of grid positions: mixed radix, first factor slowest."""
    out = torch.empty((grid.numel(), len(sizes)), dtype=torch.int64, device=grid.device)
    rest = grid.clone()
    for k in range(len(sizes) - 1, -1, -1):
        out[:, k] = rest % sizes[k]
        rest = torch.div(rest, sizes[k], rounding_mode="floor")
    return out


def parse_subset(name: str, subset: str | int | None, seed: str | int, available: int) -> torch.Tensor | None:
    """A sorted seeded choice of `subset` grid positions (None: the whole grid)."""
    try:
        seed_value = int(seed)
    except ValueError:
        raise DatasetError(f"{name}: seed must be a whole number, got {seed!r}") from None
    if subset is None or str(subset).strip().lower() in ("", "none", "all"):
        return None
    try:
        n = int(subset)
    except ValueError:
        raise DatasetError(f"{name}: subset must be a whole number, got {subset!r}") from None
    if not 1 <= n <= available:
        raise DatasetError(f"{name}: subset must lie in 1…{available}, got {n}")
    if n == available:
        return None
    gen = torch.Generator().manual_seed(seed_value)
    return torch.randperm(available, generator=gen)[:n].sort().values


class FactorWorld(Dataset):
    """A complete factor grid whose images `compose` builds per batch from parts; optionally a seeded subset.

    Subclasses set `factor_spec` and `image_shape`, implement `compose(factors, grid)` (validated n×K class
    indices and their grid positions, both on the dataset's device → uint8 n×C×H×W) and `_parts_to(device)`.
    """

    def __init__(self, name: str, description: str, factor_spec: FactorSpec, image_shape: tuple[int, int, int],
                 subset: torch.Tensor | None = None, label_factor: int | None = None,
                 class_names: tuple[str, ...] | None = None, spec: str = "") -> None:
        if subset is not None:
            description += f" — a seeded random subset of {subset.numel():,}"
        super().__init__(name=name, description=description, images=None, factor_spec=factor_spec,
                         class_names=class_names, spec=spec or name, is_sample=subset is not None)
        self.image_shape = image_shape
        self.grid_sizes = tuple(int(s) for s in factor_spec.sizes)
        self.grid_size = math.prod(self.grid_sizes)
        self._radix = torch.tensor([math.prod(self.grid_sizes[k + 1:]) for k in range(len(self.grid_sizes))],
                                   dtype=torch.int64)
        self._subset = subset
        self.label_factor = label_factor
        if label_factor is not None:
            every = subset if subset is not None else torch.arange(self.grid_size)
            self.labels = decode_grid(every, self.grid_sizes)[:, label_factor].contiguous()

    # --- what subclasses provide ------------------------------------------------------------------
    def compose(self, factors: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _parts_to(self, device: torch.device | str) -> None:
        raise NotImplementedError

    @property
    def parts_nbytes(self) -> int:
        """Bytes the precomputed parts hold (what the world costs in memory)."""
        return 0

    # --- shape and access ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self._subset.numel()) if self._subset is not None else self.grid_size

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.image_shape

    @property
    def device(self) -> torch.device:
        return self._radix.device

    def _grid_positions(self, indices: torch.Tensor) -> torch.Tensor:
        idx = torch.as_tensor(indices, dtype=torch.int64).reshape(-1)
        # Checked on the CPU only: indices on an accelerator come from the engine's own split, and checking them
        # would make every training batch wait for the device.
        if idx.device.type == "cpu" and idx.numel() and (int(idx.min()) < -len(self) or int(idx.max()) >= len(self)):
            raise IndexError(f"{self.name}: index out of range for {len(self)} items")
        idx = idx.to(self.device)
        idx = torch.where(idx < 0, idx + len(self), idx)
        return self._subset[idx] if self._subset is not None else idx

    def images_at(self, indices: torch.Tensor) -> torch.Tensor:
        """uint8 n×C×64×64 composed for just these items (the batch hook every consumer calls)."""
        grid = self._grid_positions(indices)
        return self.compose(decode_grid(grid, self.grid_sizes), grid)

    def factors_at(self, indices: torch.Tensor) -> torch.Tensor:
        return decode_grid(self._grid_positions(indices), self.grid_sizes)

    def factors_of(self, index: np.ndarray | torch.Tensor | int) -> torch.Tensor:
        return self.factors_at(torch.as_tensor(index, dtype=torch.int64).reshape(-1))

    # --- the factor-source protocol -------------------------------------------------------------------
    def _factor_rows(self, factors: np.ndarray | torch.Tensor) -> torch.Tensor:
        assert self.factor_spec is not None
        return dsprites._as_factor_tensor(factors, self.grid_sizes, self.factor_spec.names, self.name).to(self.device)

    def index_of(self, factors: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Item indices of factor rows; DatasetError if one is not in this subset."""
        grid = (self._factor_rows(factors) * self._radix).sum(dim=1)
        if self._subset is None:
            return grid
        pos = torch.searchsorted(self._subset, grid).clamp_(max=len(self) - 1)
        if not bool((self._subset[pos] == grid).all()):
            raise DatasetError(f"{self.name}: some factor combinations are not part of this random subset")
        return pos

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return np.stack([rng.integers(0, s, size=int(n)) for s in self.grid_sizes], axis=1).astype(np.int64)

    def render_factors(self, factors: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Exact images for any factor rows of the grid (in a subset or not), nuisances included."""
        f = self._factor_rows(factors)
        return self.compose(f, (f * self._radix).sum(dim=1))

    render = render_factors

    # --- housekeeping ---------------------------------------------------------------------------------
    def to(self, device: torch.device | str) -> FactorWorld:
        self._radix = self._radix.to(device)
        if self._subset is not None:
            self._subset = self._subset.to(device)
        if self.labels is not None:
            self.labels = self.labels.to(device)
        self._parts_to(device)
        return self

    def summary(self) -> dict:
        out = super().summary()
        assert self.factor_spec is not None
        out["factor_kinds"] = {n: self.factor_spec.kind(k) for k, n in enumerate(self.factor_spec.names)}
        out["storage"] = f"composed per batch from {self.parts_nbytes / 1e6:.1f} MB of parts"
        return out


def subset_spec(base: str, subset: torch.Tensor | None, seed: str | int) -> str:
    return base if subset is None else f"{base}?subset={subset.numel()}&seed={int(seed)}"


# --- colour and noisy dSprites (disentanglement_lib's definitions) ------------------------------------

NOISE_TILES = 1024
NOISE_SEED = 20260101


@functools.lru_cache(maxsize=1)
def noise_bank() -> torch.Tensor:
    """uint8 NOISE_TILES×3×64×64 uniform noise from a fixed seed; an image's noise is the XOR of two tiles."""
    gen = torch.Generator().manual_seed(NOISE_SEED)
    return torch.randint(0, 256, (NOISE_TILES, 3, IMAGE_SIZE, IMAGE_SIZE), generator=gen, dtype=torch.uint8)


class _SpriteWorld(FactorWorld):
    """The dSprites grid in RGB; subclasses paint the binary sprite with a per-image nuisance."""

    world_name = ""
    world_description = ""

    def __init__(self, subset: torch.Tensor | None = None, spec: str = "") -> None:
        super().__init__(self.world_name, self.world_description, dsprites.FACTOR_SPEC, (3, IMAGE_SIZE, IMAGE_SIZE),
                         subset=subset, label_factor=0, class_names=dsprites.SHAPE_NAMES, spec=spec)
        self.bank = dsprites.default_bank()

    def _parts_to(self, device: torch.device | str) -> None:
        self.bank = self.bank.to(device)

    @property
    def parts_nbytes(self) -> int:
        return self.bank.nbytes

    def sprites(self, factors: torch.Tensor) -> torch.Tensor:
        """uint8 n×1×64×64 in {0, 255}: the binary dSprites sprite of each row (a bit mask for `&` and `|`)."""
        return self.bank.assemble(factors)


class ColorDSprites(_SpriteWorld):
    """disentanglement_lib's colour dSprites: the sprite times a per-image colour, each channel U(0.5, 1)."""

    world_name = "color-dsprites"
    world_description = ("colour dSprites: the dSprites sprite in a random colour per image (each RGB channel "
                         "U(0.5, 1), a nuisance, not a factor); RGB 64×64")

    def colours(self, grid: torch.Tensor) -> torch.Tensor:
        """uint8 n×3 in 128…255 (U(0.5, 1) in steps of 1/255), a fixed function of the grid position."""
        keys = grid.unsqueeze(1) * 3 + torch.arange(3, device=grid.device)
        return (128 + hash32(keys + 0x9E37) % 128).to(torch.uint8)

    def compose(self, factors: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        return self.sprites(factors) & self.colours(grid).view(-1, 3, 1, 1)  # 255 & c = c, 0 & c = 0


class NoisyDSprites(_SpriteWorld):
    """disentanglement_lib's noisy dSprites: white sprite on U(0, 1) noise per pixel and channel."""

    world_name = "noisy-dsprites"
    world_description = ("noisy dSprites: the white dSprites sprite on a background of uniform noise per pixel "
                         "and channel, fixed per image; RGB 64×64")

    def __init__(self, subset: torch.Tensor | None = None, spec: str = "") -> None:
        super().__init__(subset, spec)
        self.noise = noise_bank()

    def _parts_to(self, device: torch.device | str) -> None:
        super()._parts_to(device)
        self.noise = self.noise.to(device)

    @property
    def parts_nbytes(self) -> int:
        return super().parts_nbytes + self.noise.numel()

    def backgrounds(self, grid: torch.Tensor) -> torch.Tensor:
        """uint8 n×3×64×64 noise: tile a XOR tile b, with a ≠ b chosen by hashing the grid position."""
        a = hash32(grid * 2) % NOISE_TILES
        b = (a + 1 + hash32(grid * 2 + 1) % (NOISE_TILES - 1)) % NOISE_TILES
        flat = self.noise.view(NOISE_TILES, -1)
        return flat.index_select(0, a).bitwise_xor_(flat.index_select(0, b)).view(-1, 3, IMAGE_SIZE, IMAGE_SIZE)

    def compose(self, factors: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        return self.backgrounds(grid).bitwise_or_(self.sprites(factors))  # sprite pixels 255, the rest noise


# --- XYObject (disent) --------------------------------------------------------------------------------

XY_PLACEMENTS = 25  # (64 − 15) // 2 + 1 positions per axis, spacing 2 px
XY_SPACING = 2
XY_SQUARE_SIZES = (7, 9, 11, 13, 15)
_RAINBOW = ((255, 0, 0), (255, 255, 0), (0, 255, 0), (0, 255, 255), (0, 0, 255), (255, 0, 255))
# disent's palette "rainbow_4": 4 brightness levels (outer) × 6 hues (inner), each hue · level // 4
XY_COLOURS = tuple(tuple(c * level // 4 for c in hue) for level in range(1, 5) for hue in _RAINBOW)
XY_SPEC = FactorSpec(
    names=("x", "y", "scale", "color"),
    sizes=(XY_PLACEMENTS, XY_PLACEMENTS, len(XY_SQUARE_SIZES), len(XY_COLOURS)),
    values=(tuple(float(XY_SPACING * i) for i in range(XY_PLACEMENTS)),
            tuple(float(XY_SPACING * i) for i in range(XY_PLACEMENTS)),
            tuple(float(s) for s in XY_SQUARE_SIZES),
            tuple(float(i) for i in range(len(XY_COLOURS)))),
    kinds=("ordinal", "ordinal", "ordinal", "categorical"),
)


class XYObject(FactorWorld):
    """disent's XYObject: a square of 5 sizes on a 25×25 grid in 24 colours (6 hues × 4 shades), 75,000 images."""

    def __init__(self, subset: torch.Tensor | None = None, spec: str = "") -> None:
        super().__init__("xyobject", "XYObject (disent): a coloured square — x, y (25 each), size 7…15 px, 24 "
                         "colours (6 hues × 4 shades); RGB 64×64", XY_SPEC, (3, IMAGE_SIZE, IMAGE_SIZE),
                         subset=subset, spec=spec)
        self.sizes = torch.tensor(XY_SQUARE_SIZES, dtype=torch.int64)
        self.colours = torch.tensor(XY_COLOURS, dtype=torch.uint8)
        self.pixels = torch.arange(IMAGE_SIZE)

    def _parts_to(self, device: torch.device | str) -> None:
        self.sizes, self.colours, self.pixels = (t.to(device) for t in (self.sizes, self.colours, self.pixels))

    def compose(self, factors: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        """The square covers [2x + r, 2x + r + s) × [2y + r, 2y + r + s), r = (15 − s) // 2 (disent's placement)."""
        side = self.sizes[factors[:, 2]]
        offset = (XY_SQUARE_SIZES[-1] - side) // 2
        x0 = XY_SPACING * factors[:, 0] + offset
        y0 = XY_SPACING * factors[:, 1] + offset
        p = self.pixels
        rows = (p >= y0[:, None]) & (p < (y0 + side)[:, None])
        cols = (p >= x0[:, None]) & (p < (x0 + side)[:, None])
        mask = (rows[:, :, None] & cols[:, None, :]).to(torch.uint8)
        return mask[:, None] * self.colours[factors[:, 3]][:, :, None, None]


# --- loaders --------------------------------------------------------------------------------------------

def _loader(cls: type[FactorWorld], name: str, grid_size: int):
    def load(subset: str | int | None = None, seed: str | int = 0) -> FactorWorld:
        chosen = parse_subset(name, subset, seed, grid_size)
        return cls(chosen, spec=subset_spec(name, chosen, seed))
    load.__doc__ = f"`{name}[?subset=N&seed=S]`"
    return load


load_color_dsprites = _loader(ColorDSprites, "color-dsprites", dsprites.NUM_IMAGES)
load_noisy_dsprites = _loader(NoisyDSprites, "noisy-dsprites", dsprites.NUM_IMAGES)
load_xyobject = _loader(XYObject, "xyobject", math.prod(XY_SPEC.sizes))


# --- what a factor means, in pictures ------------------------------------------------------------------

def factor_strips(dataset: Dataset, per_strip: int = 8) -> tuple[torch.Tensor, tuple[str, ...]] | None:
    """One strip per factor with ≥ 2 values: that factor stepped through up to `per_strip` evenly spaced values
    (a factor with fewer values shows each once, then blank cells), the others held at one fixed item.
    uint8 (K·per_strip)×C×H×W row-major and the K factor names; None without a complete factor grid."""
    spec = dataset.factor_spec
    if spec is None:
        return None
    sizes = tuple(int(size) for size in spec.sizes)
    varying = [k for k, size in enumerate(sizes) if size >= 2]
    if not varying:
        return None
    base = decode_grid(torch.tensor([int(math.prod(sizes) * 0.618)]), sizes)[0]  # an arbitrary fixed item
    rows, slots = [], []
    for r, k in enumerate(varying):
        values = torch.linspace(0, sizes[k] - 1, min(per_strip, sizes[k])).round().long()
        strip = base.repeat(values.numel(), 1)
        strip[:, k] = values
        rows.append(strip)
        slots.append(r * per_strip + torch.arange(values.numel()))
    try:
        images = dataset.render_factors(torch.cat(rows)).cpu()
    except (DatasetError, NotImplementedError):
        return None
    out = torch.zeros((len(varying) * per_strip, *images.shape[1:]), dtype=torch.uint8)
    out[torch.cat(slots)] = images
    return out, tuple(str(spec.names[k]) for k in varying)
