"""A procedural 3-D shapes scene on the factor grid of DeepMind's 3D Shapes (Burgess & Kim 2018), and the official file.

The grid: floor hue 10 × wall hue 10 × object hue 10 × scale 8 × shape 4 (cube, cylinder, sphere, capsule) ×
orientation 15 (−30°…30°) = 480,000 RGB 64×64 images, item index = mixed radix in that order (orientation
fastest, as the official file). The pixels are ours — a small ray caster, not DeepMind's renderer — so scores
are not comparable digit for digit with papers' Shapes3D numbers.

The scene: a floor and the corner of two walls behind an object standing at the origin, one directional light
with hard shadows, Lambert shading. Orientation turns the camera about the vertical axis through the object
(as in 3D Shapes), so the walls' corner, the light on every face and the object's silhouette all move.

Because a pixel's colour is linear in the three surface colours, the scene is rendered once per shape × scale ×
orientation (480 views) into three coverage maps — how much lit floor, lit wall and lit object each pixel holds
(supersampled 3×3, shading included, 0…255, summing to ≤ 255). From them, one uint8 layer per surface × view × hue:
⌊A_surface · rgb_hue / 255⌋ (3 × 480 × 10 × 3×64×64 bytes = 177 MB), and a batch is three gathers and two byte
additions: pixel = floor layer + wall layer + object layer (never above 255, as the floors sum to at most the floor
of the sum). Integer arithmetic only, so the same index gives the same bytes in any batch and on any device.
"""

from __future__ import annotations

import colorsys
import functools
import math
import os
from pathlib import Path

import numpy as np
import torch

from .base import DatasetError, FactorSpec
from .cache import cached_arrays
from .worlds import IMAGE_SIZE, FactorWorld, parse_subset, subset_spec

SHAPE_NAMES = ("cube", "cylinder", "sphere", "capsule")
FACTOR_NAMES = ("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation")
FACTOR_SIZES = (10, 10, 10, 8, 4, 15)
NUM_IMAGES = math.prod(FACTOR_SIZES)
HUES = tuple(float(h) for h in np.linspace(0.0, 0.9, 10))
SCALES = tuple(float(s) for s in np.linspace(0.75, 1.25, 8))
ORIENTATIONS = tuple(float(a) for a in np.linspace(-30.0, 30.0, 15))
FACTOR_SPEC = FactorSpec(
    names=FACTOR_NAMES,
    sizes=FACTOR_SIZES,
    values=(HUES, HUES, HUES, SCALES, tuple(float(i) for i in range(4)), ORIENTATIONS),
    kinds=("cyclic", "cyclic", "cyclic", "ordinal", "categorical", "ordinal"),
)
OFFICIAL_NAME = "3dshapes.h5"
SUPERSAMPLE = 3
RENDER_VERSION = "shapes3d-v1"

_LIGHT = np.array([-0.45, 1.0, -0.6]) / np.linalg.norm([-0.45, 1.0, -0.6])
_AMBIENT, _DIFFUSE = 0.3, 0.7
_CORNER = 2.6  # the walls are the planes z + |x| = _CORNER
_CAMERA = np.array([0.0, 1.7, -3.4])  # at orientation 0; turned about the y axis by the orientation
_TARGET = np.array([0.0, 0.55, 0.0])
_FOCAL = 1.4  # image-plane half-width 1 at focal length 1.4 (~71° field of view)
_EPS = 1e-4


def hue_rgb(hue: float, saturation: float = 0.85) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(hue, saturation, 1.0)
    return (round(r * 255), round(g * 255), round(b * 255))


# --- the ray caster (numpy, float64, run once) --------------------------------------------------------

def _camera_rays(orientation_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Camera origin (3,) and unit ray directions ((64·S)², 3), row-major from the top-left sub-pixel."""
    a = math.radians(orientation_deg)
    turn = np.array([[math.cos(a), 0.0, math.sin(a)], [0.0, 1.0, 0.0], [-math.sin(a), 0.0, math.cos(a)]])
    eye = turn @ _CAMERA
    forward = _TARGET - eye
    forward /= np.linalg.norm(forward)
    right = np.cross(np.array([0.0, 1.0, 0.0]), forward)
    right /= np.linalg.norm(right)
    up = np.cross(forward, right)
    n = IMAGE_SIZE * SUPERSAMPLE
    u = (np.arange(n) + 0.5) / n * 2.0 - 1.0
    uu, vv = np.meshgrid(u, -u)
    dirs = forward * _FOCAL + uu[..., None] * right + vv[..., None] * up
    dirs = dirs.reshape(-1, 3)
    return eye, dirs / np.linalg.norm(dirs, axis=1, keepdims=True)


def _nearest(t: np.ndarray, normal: np.ndarray, t_new: np.ndarray, normal_new: np.ndarray) -> None:
    """Keep, per ray, the nearer of two hits (in place)."""
    closer = t_new < t
    t[closer] = t_new[closer]
    normal[closer] = normal_new[closer]


def _sphere(o: np.ndarray, d: np.ndarray, centre: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    oc = o - centre
    b = np.einsum("ij,ij->i", oc, d)
    c = np.einsum("ij,ij->i", oc, oc) - radius * radius
    disc = b * b - c
    root = np.sqrt(np.maximum(disc, 0.0))
    t = np.where(-b - root > _EPS, -b - root, -b + root)
    t = np.where((disc >= 0) & (t > _EPS), t, np.inf)
    return t, (o + t[:, None] * d - centre) / radius


def _box(o: np.ndarray, d: np.ndarray, half: float) -> tuple[np.ndarray, np.ndarray]:
    """An axis-aligned cube of half-side `half` standing on the floor at the origin (slab method)."""
    lo = np.array([-half, 0.0, -half])
    hi = np.array([half, 2 * half, half])
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / d
        t1, t2 = (lo - o) * inv, (hi - o) * inv
    t_near = np.nanmax(np.minimum(t1, t2), axis=1)
    t_far = np.nanmin(np.maximum(t1, t2), axis=1)
    axis = np.nanargmax(np.minimum(t1, t2), axis=1)
    t = np.where((t_near <= t_far) & (t_near > _EPS), t_near, np.where((t_near <= t_far) & (t_far > _EPS),
                                                                       t_far, np.inf))
    normal = np.zeros_like(d)
    normal[np.arange(d.shape[0]), axis] = -np.sign(d[np.arange(d.shape[0]), axis])
    return t, normal


def _cylinder(o: np.ndarray, d: np.ndarray, radius: float, height: float) -> tuple[np.ndarray, np.ndarray]:
    """An upright cylinder on the floor at the origin: its side and its top cap."""
    a = d[:, 0] ** 2 + d[:, 2] ** 2
    b = o[:, 0] * d[:, 0] + o[:, 2] * d[:, 2]
    c = o[:, 0] ** 2 + o[:, 2] ** 2 - radius * radius
    with np.errstate(divide="ignore", invalid="ignore"):
        disc = b * b - a * c
        root = np.sqrt(np.maximum(disc, 0.0))
        t_side = np.where(-b - root > _EPS * a, (-b - root) / a, (-b + root) / a)
    y = o[:, 1] + t_side * d[:, 1]
    t_side = np.where((disc >= 0) & (a > 1e-12) & (t_side > _EPS) & (y >= 0) & (y <= height), t_side, np.inf)
    p = o + np.nan_to_num(t_side, posinf=0.0)[:, None] * d
    n_side = np.stack([p[:, 0] / radius, np.zeros_like(a), p[:, 2] / radius], axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_cap = (height - o[:, 1]) / d[:, 1]
    q = o + np.nan_to_num(t_cap, posinf=0.0, neginf=0.0)[:, None] * d
    t_cap = np.where(np.isfinite(t_cap) & (t_cap > _EPS) & (q[:, 0] ** 2 + q[:, 2] ** 2 <= radius * radius),
                     t_cap, np.inf)
    n_cap = np.tile([0.0, 1.0, 0.0], (d.shape[0], 1))
    _nearest(t_side, n_side, t_cap, n_cap)
    return t_side, n_side


def _capsule(o: np.ndarray, d: np.ndarray, radius: float, length: float) -> tuple[np.ndarray, np.ndarray]:
    """A capsule lying on the floor along x: a cylinder of `length` between two hemispheres."""
    half = length / 2
    oy, oz = o[:, 1] - radius, o[:, 2]
    a = d[:, 1] ** 2 + d[:, 2] ** 2
    b = oy * d[:, 1] + oz * d[:, 2]
    c = oy ** 2 + oz ** 2 - radius * radius
    with np.errstate(divide="ignore", invalid="ignore"):
        disc = b * b - a * c
        root = np.sqrt(np.maximum(disc, 0.0))
        t = np.where(-b - root > _EPS * a, (-b - root) / a, (-b + root) / a)
    x = o[:, 0] + t * d[:, 0]
    t = np.where((disc >= 0) & (a > 1e-12) & (t > _EPS) & (np.abs(x) <= half), t, np.inf)
    p = o + np.nan_to_num(t, posinf=0.0)[:, None] * d
    normal = np.stack([np.zeros_like(a), (p[:, 1] - radius) / radius, p[:, 2] / radius], axis=1)
    for end in (-half, half):
        _nearest(t, normal, *_sphere(o, d, np.array([end, radius, 0.0]), radius))
    return t, normal


def _object(shape: int, scale: float, o: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if shape == 0:
        return _box(o, d, 0.5 * scale)
    if shape == 1:
        return _cylinder(o, d, 0.5 * scale, 1.1 * scale)
    if shape == 2:
        return _sphere(o, d, np.array([0.0, 0.6 * scale, 0.0]), 0.6 * scale)
    return _capsule(o, d, 0.38 * scale, 1.1 * scale)


def _room(o: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nearest floor/wall hit: t, normal, and whether it is the floor."""
    n = d.shape[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        t_floor = np.where(d[:, 1] < 0, -o[:, 1] / d[:, 1], np.inf)
        t_right = (_CORNER - o[:, 2] - o[:, 0]) / (d[:, 2] + d[:, 0])  # z + x = c (x ≥ 0)
        t_left = (_CORNER - o[:, 2] + o[:, 0]) / (d[:, 2] - d[:, 0])  # z − x = c (x ≤ 0)
    t_right = np.where(np.isfinite(t_right) & (t_right > _EPS), t_right, np.inf)
    t_left = np.where(np.isfinite(t_left) & (t_left > _EPS), t_left, np.inf)
    t_wall = np.minimum(t_right, t_left)
    wall_normal = np.where((t_right <= t_left)[:, None], np.array([-1.0, 0.0, -1.0]) / math.sqrt(2),
                           np.array([1.0, 0.0, -1.0]) / math.sqrt(2))
    is_floor = t_floor <= t_wall
    t = np.where(is_floor, t_floor, t_wall)
    normal = np.where(is_floor[:, None], np.tile([0.0, 1.0, 0.0], (n, 1)), wall_normal)
    return t, normal, is_floor


def _light(normal: np.ndarray, shadowed: np.ndarray) -> np.ndarray:
    """Ambient + Lambert: 0.3 + 0.7·max(0, n·l), the diffuse term dropped in shadow."""
    lambert = np.clip(np.nan_to_num(normal, nan=0.0, posinf=0.0, neginf=0.0) @ _LIGHT, 0.0, 1.0)
    return _AMBIENT + _DIFFUSE * np.where(shadowed, 0.0, lambert)


def render_views(orientation_deg: float, objects: list[tuple[int, float]]) -> np.ndarray:
    """float (len(objects), 3, 64, 64) maps in [0, 1] for one camera turn: lit floor, lit wall and lit object
    coverage of each pixel, for each (shape, scale); the room is traced once and shared."""
    eye, d = _camera_rays(orientation_deg)
    o = np.broadcast_to(eye, d.shape)
    t_room, n_room, is_floor = _room(o, d)
    hit = o + t_room[:, None] * d + n_room * 1e-3
    to_light = np.broadcast_to(_LIGHT, d.shape)
    lit_room = _light(n_room, np.zeros_like(is_floor))
    out = []
    for shape, scale in objects:
        t_obj, n_obj = _object(shape, scale, o, d)
        on_object = t_obj < t_room
        in_shadow = np.isfinite(_object(shape, scale, hit, to_light)[0])
        room_light = np.where(in_shadow, _AMBIENT, lit_room)
        maps = np.stack([np.where(~on_object & is_floor, room_light, 0.0),
                         np.where(~on_object & ~is_floor, room_light, 0.0),
                         np.where(on_object, _light(n_obj, np.zeros_like(on_object)), 0.0)])
        s = SUPERSAMPLE
        out.append(maps.reshape(3, IMAGE_SIZE, s, IMAGE_SIZE, s).mean(axis=(2, 4)))
    return np.stack(out)


def quantise(maps: np.ndarray) -> np.ndarray:
    """uint8 maps whose three values sum to ≤ 255 per pixel (so a composed pixel never exceeds 255)."""
    q = np.rint(maps * 255).astype(np.int64)
    excess = np.maximum(q.sum(axis=-3, keepdims=True) - 255, 0)
    largest = np.argmax(q, axis=-3)[..., None, :, :] == np.arange(3)[:, None, None]
    return (q - excess * largest).astype(np.uint8)


def build_view_maps() -> np.ndarray:
    """uint8 (4·8·15, 3, 64·64): every shape × scale × orientation view's coverage maps, in grid order."""
    objects = [(shape, scale) for shape in range(FACTOR_SIZES[4]) for scale in SCALES]
    per_turn = np.stack([quantise(render_views(angle, objects)) for angle in ORIENTATIONS], axis=1)
    return per_turn.reshape(-1, 3, IMAGE_SIZE * IMAGE_SIZE)  # (shape, scale) outer, orientation inner


def view_maps() -> torch.Tensor:
    """uint8 (480, 3, 4096) coverage maps, from the user cache or rendered (a few seconds) and cached."""
    arrays = cached_arrays("shapes3d-views", RENDER_VERSION, lambda: {"maps": build_view_maps()},
                           lambda a: a.get("maps") is not None and a["maps"].shape == (480, 3, 4096)
                           and a["maps"].dtype == np.uint8)
    return torch.from_numpy(arrays["maps"])


@functools.lru_cache(maxsize=1)
def surface_layers() -> torch.Tensor:
    """uint8 (3 surfaces, 480 views · 10 hues, 3·4096): ⌊A_surface · rgb_hue / 255⌋, built once per process
    (one surface × hue at a time, so the build needs little beyond the 177 MB it keeps)."""
    maps = view_maps()
    palette = torch.tensor([hue_rgb(h) for h in HUES], dtype=torch.int32)
    views, pixels = maps.shape[0], maps.shape[2]
    layers = torch.empty((3, views, len(HUES), 3, pixels), dtype=torch.uint8)
    for surface in range(3):
        coverage = maps[:, surface].to(torch.int32)
        for h in range(len(HUES)):
            product = coverage[:, None, :] * palette[h][None, :, None]  # < 2¹⁶
            layers[surface, :, h] = product.div_(255, rounding_mode="floor")
    return layers.view(3, views * len(HUES), 3 * pixels)


# --- the procedural world -------------------------------------------------------------------------------

class Shapes3D(FactorWorld):
    """The procedural 3-D scene: three gathers of precomputed colour layers and two byte additions per batch."""

    def __init__(self, subset: torch.Tensor | None = None, spec: str = "") -> None:
        super().__init__("shapes3d", "3-D shapes (procedural, our own renderer on 3D Shapes' factor grid — not "
                         "DeepMind's pixels): floor, wall and object hue, scale, shape, orientation; RGB 64×64",
                         FACTOR_SPEC, (3, IMAGE_SIZE, IMAGE_SIZE), subset=subset, label_factor=4,
                         class_names=SHAPE_NAMES, spec=spec)
        self.layers = surface_layers()

    def _parts_to(self, device: torch.device | str) -> None:
        self.layers = self.layers.to(device)

    @property
    def parts_nbytes(self) -> int:
        return self.layers.numel()

    def compose(self, factors: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        view = (factors[:, 4] * FACTOR_SIZES[3] + factors[:, 3]) * FACTOR_SIZES[5] + factors[:, 5]
        rows = view * len(HUES)
        pixels = self.layers[0].index_select(0, rows + factors[:, 0])
        pixels += self.layers[1].index_select(0, rows + factors[:, 1])
        pixels += self.layers[2].index_select(0, rows + factors[:, 2])
        return pixels.view(-1, 3, IMAGE_SIZE, IMAGE_SIZE)


# --- the official file (h5py, optional) ------------------------------------------------------------------

class Shapes3DFile(FactorWorld):
    """DeepMind's `3dshapes.h5` read batch by batch (h5py): the file's order is the factor grid's."""

    def __init__(self, path: Path, subset: torch.Tensor | None = None, spec: str = "",
                 sizes: tuple[int, ...] = FACTOR_SIZES) -> None:
        self.path = path
        self._file, self._images = _open_h5(path, sizes)
        spec_obj = FACTOR_SPEC if sizes == FACTOR_SIZES else FactorSpec(
            FACTOR_NAMES, sizes, tuple(tuple(float(i) for i in range(s)) for s in sizes), FACTOR_SPEC.kinds)
        super().__init__("shapes3d", f"3D Shapes, the official DeepMind file ({path.name}, read per batch)",
                         spec_obj, (3, IMAGE_SIZE, IMAGE_SIZE), subset=subset, label_factor=4,
                         class_names=SHAPE_NAMES, spec=spec)
        self._target = torch.device("cpu")

    def _parts_to(self, device: torch.device | str) -> None:
        self._target = torch.device(device)

    def compose(self, factors: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        rows, inverse = np.unique(grid.cpu().numpy(), return_inverse=True)
        block = self._images[rows]  # h5py reads increasing, unique rows
        images = torch.from_numpy(np.ascontiguousarray(block[inverse.reshape(-1)])).permute(0, 3, 1, 2)
        return images.contiguous().to(self._target)


def _open_h5(path: Path, sizes: tuple[int, ...]):
    """The open file and its `images` dataset, after checking shapes and that `labels` follow the grid order."""
    try:
        import h5py
    except ImportError:
        raise DatasetError(f"{path}: reading 3dshapes.h5 needs h5py (pip install h5py, or pip install -e "
                           ".[shapes3d])") from None
    n = math.prod(sizes)
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise DatasetError(f"{path}: not a readable HDF5 file ({exc})") from None
    try:
        if "images" not in handle or "labels" not in handle:
            raise DatasetError(f"{path}: not the official 3dshapes.h5: datasets 'images' and 'labels' expected, "
                               f"found {', '.join(sorted(handle)) or 'none'}")
        images, labels = handle["images"], handle["labels"]
        if images.shape != (n, IMAGE_SIZE, IMAGE_SIZE, 3) or images.dtype != np.uint8:
            raise DatasetError(f"{path} [images]: expected uint8 of shape {(n, IMAGE_SIZE, IMAGE_SIZE, 3)}, "
                               f"got {images.dtype} {images.shape}")
        if labels.shape != (n, len(sizes)):
            raise DatasetError(f"{path} [labels]: expected shape {(n, len(sizes))}, got {labels.shape}")
        values = np.asarray(labels[:])
        classes = np.stack([np.unique(values[:, k], return_inverse=True)[1].reshape(-1) for k in range(len(sizes))],
                           axis=1)
        radix = np.array([math.prod(sizes[k + 1:]) for k in range(len(sizes))])
        if (classes.max(axis=0) + 1 != np.array(sizes)).any() or not np.array_equal(classes @ radix, np.arange(n)):
            raise DatasetError(f"{path} [labels]: the rows are not the factor grid in order "
                               f"({', '.join(FACTOR_NAMES)}; orientation fastest)")
    except DatasetError:
        handle.close()
        raise
    return handle, images


def find_official_file() -> Path | None:
    """`3dshapes.h5` in a `$LATENT_EXPLORER_DATA` folder (or that variable naming the file), if any."""
    for entry in filter(None, os.environ.get("LATENT_EXPLORER_DATA", "").split(os.pathsep)):
        candidate = Path(entry).expanduser()
        if candidate.is_file() and candidate.name == OFFICIAL_NAME:
            return candidate
        for sub in (candidate / OFFICIAL_NAME, candidate / "3dshapes" / OFFICIAL_NAME):
            if sub.is_file():
                return sub
    return None


def load_shapes3d(subset: str | int | None = None, seed: str | int = 0, path: str | None = None,
                  source: str = "procedural") -> FactorWorld:
    """`shapes3d[?subset=N&seed=S&path=3dshapes.h5&source=official]`."""
    if source not in ("procedural", "official"):
        raise DatasetError(f"shapes3d: source must be procedural or official, got {source!r}")
    if path is None and source == "official":
        found = find_official_file()
        if found is None:
            raise DatasetError(f"shapes3d: the official file was not found; put {OFFICIAL_NAME} in a folder named "
                               "by $LATENT_EXPLORER_DATA or pass shapes3d?path=/path/to/it")
        path = str(found)
    chosen = parse_subset("shapes3d", subset, seed, NUM_IMAGES)
    if path is not None:
        file = Path(path).expanduser()
        if not file.is_file():
            raise DatasetError(f"{file}: file not found (expected DeepMind's {OFFICIAL_NAME})")
        spec = f"shapes3d?path={file}" + ("" if chosen is None else f"&subset={chosen.numel()}&seed={int(seed)}")
        return Shapes3DFile(file, chosen, spec=spec)
    return Shapes3D(chosen, spec=subset_spec("shapes3d", chosen, seed))
