"""What the exploration panels and the CLI's `sample`/`traverse`/`interpolate` compute: pure functions → images.

Every function runs under `torch.inference_mode()`, decodes in one batch (no per-image loops) and returns either
float images in [0, 1] (n×C×H×W tensors) or C-contiguous uint8 grids from `engine.imaging.tile`.
Traversal values *replace* the traversed coordinate (absolute latent values, not offsets from the base code).
Device rules: tensors reach numpy only through `.cpu()`, no float64 on the model's device, and random draws
(prior samples, corruption) come from `engine.rng.private_rng(seed)`, never from the global generators.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from . import objectives as obj
from .errors import ConfigError
from .imaging import labelled_grid, tile, to_uint8
from .models.base import ModelBase
from .rng import private_rng

DEFAULT_RADIUS = 3.0
INACTIVE_KL_NATS = 0.01


def _device(model: ModelBase) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def _as_float_images(model: ModelBase, images: torch.Tensor | np.ndarray) -> torch.Tensor:
    """uint8 (0–255) or float ([0, 1]) images, n×C×H×W or a single C×H×W → float n×C×H×W on the model's device."""
    x = torch.as_tensor(images)
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if x.dim() != 4 or tuple(x.shape[1:]) != tuple(model.data_shape):
        raise ConfigError(f"images of shape {tuple(x.shape)} do not fit the model's data shape "
                          f"{tuple(model.data_shape)}")
    x = x.to(_device(model))
    return x.float() / 255.0 if x.dtype == torch.uint8 else x.float()


def _labels(model: ModelBase, y, n: int) -> torch.Tensor | None:
    """Labels for n items (an int broadcasts), or None for unconditional models; a conditional model needs them."""
    if not model.is_conditional:
        return None
    if y is None:
        raise ConfigError(f"{model.family} is conditional: give a class label")
    t = torch.as_tensor(y, dtype=torch.long, device=_device(model)).reshape(-1)
    if t.numel() == 1:
        t = t.expand(n)
    if t.numel() != n:
        raise ConfigError(f"{t.numel()} labels for {n} items")
    if int(t.min()) < 0 or int(t.max()) >= model.num_classes:
        raise ConfigError(f"class labels must be in 0…{model.num_classes - 1}")
    return t.contiguous()


def _as_code(model: ModelBase, z, n: int | None = None) -> torch.Tensor:
    t = torch.as_tensor(z, dtype=torch.float32, device=_device(model))
    if t.dim() == 1:
        t = t.unsqueeze(0)
    if t.shape[1] != model.latent_dim:
        raise ConfigError(f"a latent code of size {t.shape[1]} does not fit latent_dim={model.latent_dim}")
    return t


def _require_continuous(model: ModelBase, what: str) -> None:
    if model.latent_kind != "continuous":
        raise ConfigError(f"{model.family} has a discrete latent code: {what} needs a continuous latent space "
                          "(use the codebook traversal instead)")


# --- sampling --------------------------------------------------------------------------------------
def sample_images(model: ModelBase, n: int, y=None, seed: int = 0) -> torch.Tensor:
    """n prior samples in [0, 1] (n×C×H×W), repeatable for a given seed."""
    if not model.can_sample:
        raise ConfigError(f"{model.family} is not generative: it has no prior to sample from")
    if n < 1:
        raise ConfigError(f"n must be ≥ 1, got {n}")
    with torch.inference_mode(), private_rng(seed):
        return model.sample(n, _labels(model, y, n)).float()


def prior_codes(model: ModelBase, n: int, seed: int = 0) -> torch.Tensor:
    """n codes z ~ N(0, I) (the prior of the continuous variational families), repeatable for a seed."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, model.latent_dim, generator=gen).to(_device(model))


# --- encoding --------------------------------------------------------------------------------------
def encode_means(model: ModelBase, images_uint8, labels=None, batch: int = 512) -> np.ndarray:
    """The representation explored (posterior means / deterministic codes), float32 n×D, in chunks of `batch`."""
    imgs = torch.as_tensor(images_uint8)
    if imgs.dim() == 3:
        imgs = imgs.unsqueeze(0)
    n = imgs.shape[0]
    y = _labels(model, labels, n) if model.is_conditional else None
    out = []
    with torch.inference_mode():
        for start in range(0, n, batch):
            x = _as_float_images(model, imgs[start:start + batch])
            yy = None if y is None else y[start:start + batch]
            out.append(model.encode(x, yy).mean.flatten(1).float().cpu())
    if not out:
        return np.zeros((0, model.latent_dim), dtype=np.float32)
    return torch.cat(out).numpy()


@dataclass(frozen=True)
class LatentStats:
    """Per-dimension statistics of the code on data: what the traversal grid orders and bounds itself by."""

    kl_per_dim: np.ndarray | None  # mean KL(q(z_j|x) ‖ N(0,1)) in nats, variational models only
    order: np.ndarray  # dims sorted by KL (or code variance) descending
    low: np.ndarray  # per-dim traversal lower bound
    high: np.ndarray  # per-dim traversal upper bound
    means: np.ndarray  # encoded means n×D of the items used
    indices: np.ndarray  # dataset indices of those items
    variance: np.ndarray  # per-dim variance of the means over the data

    def active(self, threshold: float = INACTIVE_KL_NATS) -> np.ndarray:
        """Boolean mask of active dims: KL above `threshold` nats (variance above it for deterministic codes)."""
        score = self.kl_per_dim if self.kl_per_dim is not None else self.variance
        return score > threshold


def latent_stats(model: ModelBase, dataset, indices, n: int = 1000, radius: float = DEFAULT_RADIUS,
                 batch: int = 512) -> LatentStats:
    """KL per dim (½(μ²+σ²−log σ²−1) averaged over data), dim order and traversal bounds.

    Bounds: ±radius prior standard deviations for variational models; the 1st–99th percentile of each code unit
    on the data for deterministic autoencoders.
    """
    _require_continuous(model, "latent statistics")
    idx = torch.as_tensor(indices if indices is not None else np.arange(len(dataset)), dtype=torch.long)
    idx = idx.reshape(-1)[: max(1, int(n))]
    if idx.numel() == 0:
        raise ConfigError("latent_stats needs at least one data item")
    imgs = dataset.images_at(idx)
    labels = dataset.labels_at(idx) if model.is_conditional else None
    means, kls = [], []
    with torch.inference_mode():
        for start in range(0, idx.numel(), batch):
            x = _as_float_images(model, imgs[start:start + batch])
            y = None if labels is None else _labels(model, labels[start:start + batch], x.shape[0])
            code = model.encode(x, y)
            mu = code.mean.flatten(1).float()
            means.append(mu.cpu())
            if model.is_variational:
                if code.logvar is not None:
                    kls.append(obj.kl_diag_gaussian(mu, code.logvar.flatten(1).float()).sum(0).cpu())
                elif code.scale_tril is not None:
                    var = code.scale_tril.float().pow(2).sum(-1)  # diag(LLᵀ): the marginal variances
                    kls.append(obj.kl_diag_gaussian(mu, var.clamp_min(1e-12).log()).sum(0).cpu())
    means_t = torch.cat(means)
    means_np = means_t.numpy()
    variance = means_t.var(0, unbiased=False).numpy() if means_t.shape[0] > 1 else np.zeros(means_t.shape[1])
    d = means_np.shape[1]
    kl = (torch.stack(kls).sum(0) / idx.numel()).numpy() if kls else None
    score = kl if kl is not None else variance
    order = np.argsort(-score, kind="stable")
    if model.is_variational:
        low = np.full(d, -float(radius), dtype=np.float32)
        high = np.full(d, float(radius), dtype=np.float32)
    else:
        low = np.percentile(means_np, 1.0, axis=0).astype(np.float32)
        high = np.percentile(means_np, 99.0, axis=0).astype(np.float32)
        flat = high - low < 1e-6
        low[flat] -= 0.5
        high[flat] += 0.5
    return LatentStats(kl, order, low, high, means_np, idx.cpu().numpy(), variance.astype(np.float32))


def traversal_values(stats: LatentStats, dims, steps: int) -> np.ndarray:
    """len(dims)×steps values evenly spaced between each dim's low and high bound."""
    dims = np.asarray(dims, dtype=np.int64)
    t = np.linspace(0.0, 1.0, int(steps), dtype=np.float32)
    return stats.low[dims, None] + (stats.high[dims] - stats.low[dims])[:, None] * t[None, :]


# --- traversals ------------------------------------------------------------------------------------
def _traversal_codes(model: ModelBase, base_z, dims, values) -> tuple[torch.Tensor, int, int]:
    """Codes for every (dim, value) pair, row-major: base_z with coordinate dims[r] set to values[r, c]."""
    base = _as_code(model, base_z)[:1]
    dims_t = torch.as_tensor(np.asarray(dims, dtype=np.int64).reshape(-1), device=base.device)
    if dims_t.numel() == 0:
        raise ConfigError("choose at least one latent dimension to traverse")
    if int(dims_t.min()) < 0 or int(dims_t.max()) >= model.latent_dim:
        raise ConfigError(f"latent dims must be in 0…{model.latent_dim - 1}")
    vals = torch.as_tensor(np.asarray(values, dtype=np.float32), device=base.device)
    rows = dims_t.numel()
    if vals.dim() == 1:
        vals = vals.unsqueeze(0).expand(rows, -1)
    if vals.shape[0] != rows:
        raise ConfigError(f"{vals.shape[0]} rows of values for {rows} dims")
    cols = vals.shape[1]
    z = base.expand(rows * cols, -1).clone().view(rows, cols, -1)
    z.scatter_(2, dims_t.view(rows, 1, 1).expand(rows, cols, 1), vals.unsqueeze(-1))
    return z.view(rows * cols, -1), rows, cols


def traversal_images(model: ModelBase, base_z, dims, values, y=None) -> torch.Tensor:
    """Decoded traversal, (len(dims)·steps)×C×H×W row-major (rows = dims), in one batched decode."""
    _require_continuous(model, "a latent traversal")
    z, rows, cols = _traversal_codes(model, base_z, dims, values)
    with torch.inference_mode():
        return model.decode_images(z, _labels(model, y, z.shape[0])).float()


def traversal_grid(model: ModelBase, base_z, dims, values, y=None, pad: int = 1) -> np.ndarray:
    """uint8 grid: one row per dim in `dims`, one column per value (values 1-D shared, or len(dims)×steps)."""
    z_cols = np.asarray(values).shape[-1]
    return tile(traversal_images(model, base_z, dims, values, y), z_cols, pad=pad)


def traversal_frames(model: ModelBase, base_z, dims, values, y=None, bounce: bool = True,
                     pad: int = 1) -> list[np.ndarray]:
    """GIF frames: frame c shows every dim of `dims` side by side at its c-th value; played forth and back."""
    imgs = traversal_images(model, base_z, dims, values, y)
    rows = len(np.asarray(dims).reshape(-1))
    cols = np.asarray(values).shape[-1]
    by_col = imgs.view(rows, cols, *imgs.shape[1:]).transpose(0, 1)
    u8 = to_uint8(by_col.reshape(rows * cols, *imgs.shape[1:])).reshape(cols, rows, *imgs.shape[1:])
    frames = [tile(u8[c], rows, pad=pad) for c in range(cols)]
    if bounce and cols > 2:
        frames = frames + frames[-2:0:-1]
    return frames


# --- labelled traversal figures (the one export path of the Traversal tab and `traverse`) ----------------------
def latent_label(stats: LatentStats, dim: int, factor: str = "") -> str:
    """A traversal row's label: 'z3 · posX 0.62 · 1.23 nats' (latent, matched factor if known, KL or variance)."""
    score = (f"{stats.kl_per_dim[dim]:.2f} nats" if stats.kl_per_dim is not None
             else f"var {stats.variance[dim]:.2g}")
    return " · ".join(part for part in (f"z{dim}", factor, score) if part)


def traversal_axis(stats: LatentStats, values) -> tuple[list[str], str]:
    """Column labels and axis title: shared values as they are, else prior std (VAEs) or data percentiles (AEs)."""
    values = np.asarray(values, dtype=np.float32)
    cols = values.shape[-1]
    if values.ndim == 1:
        return [f"{v:+.2g}" for v in values], "value of z_j"
    if stats.kl_per_dim is not None:
        return [f"{v:+.1f}" for v in values[0]], "z_j in prior standard deviations"
    return [f"{p:.0f}%" for p in np.linspace(1, 99, cols)], "z_j as a percentile of its values on the data"


def _traversal_cells(model: ModelBase, base_z, dims, values, y=None) -> np.ndarray:
    """Decoded traversal as uint8 rows×cols×H×W (grayscale) or rows×cols×H×W×3."""
    images = to_uint8(traversal_images(model, base_z, dims, values, y))
    rows = len(np.asarray(dims).reshape(-1))
    cells = images.reshape(rows, -1, *images.shape[1:])
    return cells[:, :, 0] if cells.shape[2] == 1 else np.ascontiguousarray(cells.transpose(0, 1, 3, 4, 2))


def traversal_figure(model: ModelBase, base_z, dims, values, y=None, *, row_labels: list[str],
                     col_labels: list[str], axis_title: str = "", cell_size: int = 64,
                     dimmed: list[bool] | None = None) -> np.ndarray:
    """The traversal grid as a labelled RGB figure: row labels (latent, KL, factor) and the value axis."""
    cells = _traversal_cells(model, base_z, dims, values, y)
    return labelled_grid(cells, row_labels, col_labels, axis_title, cell_size, dimmed)


def traversal_figure_frames(model: ModelBase, base_z, dims, values, y=None, *, row_labels: list[str],
                            col_labels: list[str], axis_title: str = "", cell_size: int = 64,
                            dimmed: list[bool] | None = None, bounce: bool = True) -> list[np.ndarray]:
    """GIF frames: frame c shows every row at its c-th value, labelled, with that value under the column."""
    cells = _traversal_cells(model, base_z, dims, values, y)
    frames = [labelled_grid(cells[:, c:c + 1], row_labels, [col_labels[c]], axis_title, cell_size, dimmed)
              for c in range(cells.shape[1])]
    if bounce and len(frames) > 2:
        frames = frames + frames[-2:0:-1]
    return frames


def decode_codes(model: ModelBase, z, y=None) -> torch.Tensor:
    """Decode n codes (or one) to images in [0, 1]."""
    zz = _as_code(model, z)
    with torch.inference_mode():
        return model.decode_images(zz, _labels(model, y, zz.shape[0])).float()


# --- interpolation ---------------------------------------------------------------------------------
def lerp_path(za: torch.Tensor, zb: torch.Tensor, steps: int, mode: str = "lerp") -> torch.Tensor:
    """Codes along the path za→zb for t ∈ linspace(0, 1, steps): n×steps×D.

    slerp: sin((1−t)Ω)/sin Ω · a + sin(tΩ)/sin Ω · b with cos Ω = â·b̂ (lerp where Ω ≈ 0).
    """
    if steps < 2:
        raise ConfigError(f"steps must be ≥ 2, got {steps}")
    if mode not in ("lerp", "slerp"):
        raise ConfigError(f"mode must be 'lerp' or 'slerp', got {mode!r}")
    t = torch.linspace(0.0, 1.0, steps, device=za.device).view(1, steps, 1)
    a, b = za.unsqueeze(1), zb.unsqueeze(1)
    linear = (1.0 - t) * a + t * b
    if mode == "lerp":
        return linear
    cos = torch.nn.functional.cosine_similarity(za, zb, dim=1, eps=1e-8).clamp(-1.0, 1.0)
    omega = torch.arccos(cos).view(-1, 1, 1)
    sin = torch.sin(omega)
    safe = sin.abs() > 1e-4
    sin_safe = torch.where(safe, sin, torch.ones_like(sin))
    spherical = (torch.sin((1.0 - t) * omega) / sin_safe) * a + (torch.sin(t * omega) / sin_safe) * b
    return torch.where(safe, spherical, linear)


def interpolate(model: ModelBase, xa, xb, steps: int, mode: str = "lerp", ya=None, yb=None,
                blend_labels: bool = False) -> torch.Tensor:
    """Decoded latent path between the codes of xa and xb: (pairs·steps)×C×H×W, row-major (one row per pair).

    xa, xb: images (uint8 or float), one C×H×W each or n×C×H×W pairs. A conditional model encodes A with ya and
    B with yb (ya when None) and decodes the path with ya held, or with blend_labels the one-hot labels blended
    linearly from ya to yb (only for decoders that accept soft labels).
    """
    _require_continuous(model, "latent interpolation")
    a, b = _as_float_images(model, xa), _as_float_images(model, xb)
    if a.shape[0] != b.shape[0]:
        raise ConfigError(f"{a.shape[0]} start images but {b.shape[0]} end images")
    n = a.shape[0]
    with torch.inference_mode():
        if model.is_conditional:
            la = _labels(model, ya, n)
            lb = la if yb is None else _labels(model, yb, n)
            za, zb = model.encode(a, la).mean, model.encode(b, lb).mean
        else:
            la = lb = None
            za, zb = model.encode(a).mean, model.encode(b).mean
        path = lerp_path(za.flatten(1).float(), zb.flatten(1).float(), steps, mode)
        z = path.reshape(n * steps, -1)
        if la is None:
            y = None
        elif blend_labels and not torch.equal(la, lb):
            y = _blend_labels(model, la, lb, steps)
        else:
            y = la.repeat_interleave(steps)
        return model.decode_images(z, y).float()


def _blend_labels(model: ModelBase, la: torch.Tensor, lb: torch.Tensor, steps: int) -> torch.Tensor:
    """Soft one-hot labels (1−t)·onehot(a) + t·onehot(b), n·steps×K — only for decoders that accept them."""
    if not getattr(model, "accepts_soft_labels", False):
        raise ConfigError(f"{model.family} conditions on hard class labels: interpolate with the label held fixed")
    k = model.num_classes
    t = torch.linspace(0.0, 1.0, steps, device=la.device).view(1, steps, 1)
    oa = torch.nn.functional.one_hot(la, k).float().unsqueeze(1)
    ob = torch.nn.functional.one_hot(lb, k).float().unsqueeze(1)
    return ((1.0 - t) * oa + t * ob).reshape(-1, k)


def crossfade(xa, xb, steps: int) -> torch.Tensor:
    """Pixel-space cross-fade (1−t)·a + t·b, the baseline an interpolation is compared with: (pairs·steps)×C×H×W."""
    a, b = torch.as_tensor(xa), torch.as_tensor(xb)  # on the images' device (a session's dataset lives on its GPU)
    a = a.float() / 255.0 if a.dtype == torch.uint8 else a.float()
    b = b.float() / 255.0 if b.dtype == torch.uint8 else b.float()
    if a.dim() == 3:
        a, b = a.unsqueeze(0), b.unsqueeze(0)
    b = b.to(a.device)
    t = torch.linspace(0.0, 1.0, steps, device=a.device).view(1, steps, 1, 1, 1)
    return ((1.0 - t) * a.unsqueeze(1) + t * b.unsqueeze(1)).reshape(-1, *a.shape[1:])


# --- conditional generation ------------------------------------------------------------------------
def conditional_images(model: ModelBase, n_samples: int, classes=None, seed: int = 0) -> torch.Tensor:
    """A class × sample grid, (classes·n)×C×H×W row-major: column j decodes the same z_j under every class."""
    if not model.is_conditional:
        raise ConfigError(f"{model.family} is not conditional: it takes no class label")
    _require_continuous(model, "conditional generation")
    cls = torch.arange(model.num_classes) if classes is None else torch.as_tensor(classes, dtype=torch.long)
    k = cls.numel()
    z = prior_codes(model, n_samples, seed)
    zz = z.unsqueeze(0).expand(k, -1, -1).reshape(k * n_samples, -1)
    y = cls.to(z.device).repeat_interleave(n_samples)
    with torch.inference_mode():
        return model.decode_images(zz, _labels(model, y, zz.shape[0])).float()


def conditional_grid(model: ModelBase, n_samples: int, classes=None, seed: int = 0, pad: int = 1) -> np.ndarray:
    """uint8 grid of `conditional_images`: rows = classes, columns = shared z (style held, content changed)."""
    return tile(conditional_images(model, n_samples, classes, seed), n_samples, pad=pad)


def analogies(model: ModelBase, images, labels, classes=None) -> torch.Tensor:
    """Encode each image with its own label and decode it as every class: (n·classes)×C×H×W, one row per image."""
    if not model.is_conditional:
        raise ConfigError(f"{model.family} is not conditional: it takes no class label")
    x = _as_float_images(model, images)
    n = x.shape[0]
    cls = torch.arange(model.num_classes) if classes is None else torch.as_tensor(classes, dtype=torch.long)
    k = cls.numel()
    with torch.inference_mode():
        z = model.encode(x, _labels(model, labels, n)).mean
        zz = z.unsqueeze(1).expand(-1, k, -1).reshape(n * k, -1)
        y = cls.to(z.device).repeat(n)
        return model.decode_images(zz, _labels(model, y, n * k)).float()


# --- planes, manifolds and embeddings ----------------------------------------------------------------
@dataclass(frozen=True)
class Embedding:
    """2-D coordinates of codes. For linear embeddings, z ≈ origin + coords @ axes maps a plane point back."""

    coords: np.ndarray  # n×2 float32
    method: str  # "dims", "pca" or "tsne"
    origin: np.ndarray | None  # D
    axes: np.ndarray | None  # 2×D (None: t-SNE is not invertible)
    label: tuple[str, str]  # axis titles

    @property
    def invertible(self) -> bool:
        return self.axes is not None

    def to_code(self, points) -> np.ndarray:
        """Plane points (m×2) → latent codes (m×D)."""
        if self.axes is None or self.origin is None:
            raise ConfigError(f"a {self.method} embedding cannot be mapped back to latent codes")
        p = np.asarray(points, dtype=np.float32).reshape(-1, 2)
        return (self.origin[None, :] + p @ self.axes).astype(np.float32)


def embed(means: np.ndarray, method: str = "pca", dims=None, seed: int = 0, perplexity: float = 30.0) -> Embedding:
    """Codes n×D → 2-D: two chosen dims ("dims"), PCA, or t-SNE (scikit-learn)."""
    m = np.asarray(means, dtype=np.float32)
    if m.ndim != 2 or m.shape[0] < 2:
        raise ConfigError("an embedding needs at least two codes (n×D)")
    d = m.shape[1]
    if method == "dims" or d == 1:
        if d == 1:
            dims = (0, 0)
        if dims is None:
            dims = tuple(np.argsort(-m.var(0))[:2]) if d > 1 else (0, 0)
        i, j = int(dims[0]), int(dims[1])
        axes = np.zeros((2, d), dtype=np.float32)
        axes[0, i] = 1.0
        axes[1, j] = 1.0
        origin = m.mean(0)
        origin[[i, j]] = 0.0
        return Embedding(np.ascontiguousarray(m[:, [i, j]]), "dims", origin, axes, (f"z{i}", f"z{j}"))
    if method == "pca":
        if d == 2:
            axes = np.eye(2, dtype=np.float32)
            return Embedding(m.copy(), "pca", np.zeros(2, np.float32), axes, ("z0", "z1"))
        from sklearn.decomposition import PCA

        pca = PCA(n_components=2, random_state=seed).fit(m)
        coords = pca.transform(m).astype(np.float32)
        ratio = pca.explained_variance_ratio_
        return Embedding(coords, "pca", pca.mean_.astype(np.float32), pca.components_.astype(np.float32),
                         (f"PC1 ({ratio[0]:.0%})", f"PC2 ({ratio[1]:.0%})"))
    if method == "tsne":
        from sklearn.manifold import TSNE

        perp = float(min(perplexity, max(2.0, (m.shape[0] - 1) / 3.0)))
        coords = TSNE(n_components=2, perplexity=perp, init="pca", random_state=seed).fit_transform(m)
        return Embedding(coords.astype(np.float32), "tsne", None, None, ("t-SNE 1", "t-SNE 2"))
    raise ConfigError(f"embedding method must be 'dims', 'pca' or 'tsne', got {method!r}")


def plane_values(low: float, high: float, n: int) -> np.ndarray:
    """n evenly spaced coordinates on one plane axis."""
    return np.linspace(float(low), float(high), int(n), dtype=np.float32)


def manifold_images(model: ModelBase, embedding: Embedding, xs, ys, y=None) -> torch.Tensor:
    """Decode the plane grid: (len(ys)·len(xs))×C×H×W, rows from the largest y (top) to the smallest."""
    _require_continuous(model, "a manifold grid")
    xs, ys = np.asarray(xs, dtype=np.float32), np.asarray(ys, dtype=np.float32)[::-1]
    gx, gy = np.meshgrid(xs, ys)
    z = embedding.to_code(np.stack([gx.ravel(), gy.ravel()], 1))
    return decode_codes(model, z, y)


def manifold_grid(model: ModelBase, embedding: Embedding, xs, ys, y=None, pad: int = 0) -> np.ndarray:
    """uint8 grid of the decoded plane (the 2-D latent MNIST figure): columns follow xs, rows ys top-down."""
    return tile(manifold_images(model, embedding, xs, ys, y), len(xs), pad=pad)


# --- galleries -------------------------------------------------------------------------------------
def _batches(model: ModelBase, images_uint8, labels, batch: int):
    """(float images, labels or None) in chunks of `batch`, labels checked once for conditional models."""
    imgs = torch.as_tensor(images_uint8)
    y = _labels(model, labels, imgs.shape[0]) if model.is_conditional else None
    for start in range(0, imgs.shape[0], batch):
        yield _as_float_images(model, imgs[start:start + batch]), None if y is None else y[start:start + batch]


def reconstructions(model: ModelBase, images_uint8, labels=None, batch: int = 512) -> torch.Tensor:
    """Deterministic reconstructions in [0, 1] (decode of the posterior mean), in chunks of `batch`."""
    with torch.inference_mode():
        return torch.cat([model.reconstruct(x, y).float() for x, y in _batches(model, images_uint8, labels, batch)])


def reconstruction_errors(model: ModelBase, images_uint8, labels=None, batch: int = 512) -> np.ndarray:
    """Per-image reconstruction error −log p(x | z = mean) in nats (the family's likelihood), float64 n."""
    out = []
    with torch.inference_mode():
        for x, y in _batches(model, images_uint8, labels, batch):
            decoded = model.decode(model.encode(x, y).mean, y)
            out.append(obj.reconstruction_nll(decoded, x, model.hparams["likelihood"],
                                              model.hparams["sigma"]).float().cpu())
    return torch.cat(out).numpy().astype(np.float64) if out else np.zeros(0)


def worst_indices(errors: np.ndarray, k: int) -> np.ndarray:
    """Positions of the k largest errors, largest first."""
    e = np.asarray(errors)
    k = int(min(k, e.size))
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    part = np.argpartition(-e, k - 1)[:k]
    return part[np.argsort(-e[part], kind="stable")]


def is_denoising(model: ModelBase) -> bool:
    return "corruption" in model.hparams and "noise_level" in model.hparams


def denoise_triplets(model: ModelBase, images_uint8, labels=None, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """(noisy, denoised, clean) for a denoising family: x̃ ~ M(x̃|x) with its own corruption, then f(g(x̃))."""
    if not is_denoising(model):
        raise ConfigError(f"{model.family} is not a denoising autoencoder")
    x = _as_float_images(model, images_uint8)
    y = _labels(model, labels, x.shape[0]) if model.is_conditional else None
    with torch.inference_mode(), private_rng(seed):
        noisy = obj.corrupt(x, model.hparams["corruption"], float(model.hparams["noise_level"])).float()
        return noisy, model.reconstruct(noisy, y).float(), x


# --- discrete codes (VQ-VAE) -----------------------------------------------------------------------
def codebook_neighbours(codebook: torch.Tensor, entry: int, k: int) -> torch.Tensor:
    """The k codebook entries nearest (L2) to `entry`, the entry itself first."""
    d = (codebook - codebook[entry]).pow(2).sum(1)
    return torch.argsort(d, stable=True)[: int(min(k, codebook.shape[0]))]


def codebook_traversal(model: ModelBase, image, position: int, k: int = 10, y=None) -> torch.Tensor:
    """VQ-VAE: decode `image` with its code index at `position` swapped for each of the k codebook entries
    nearest to the current one (the current one first): k×C×H×W."""
    if model.latent_kind != "discrete":
        raise ConfigError(f"{model.family} has no codebook")
    x = _as_float_images(model, image)[:1]
    with torch.inference_mode():
        yy = _labels(model, y, 1) if model.is_conditional else None
        idx = model.encode(x, yy).extras.get("indices")
        if idx is None:
            raise ConfigError(f"{model.family} did not return codebook indices")
        idx = idx.reshape(1, -1)
        p = int(position)
        if not 0 <= p < idx.shape[1]:
            raise ConfigError(f"position {p} is outside the code's 0…{idx.shape[1] - 1} positions")
        neighbours = codebook_neighbours(_codebook(model), int(idx[0, p]), k)
        grid = idx.expand(neighbours.numel(), -1).clone()
        grid[:, p] = neighbours.to(grid.device)
        yk = None if yy is None else yy.expand(neighbours.numel())
        return model.to_image(model.decode_indices(grid, yk)).float()


def _codebook(model: ModelBase) -> torch.Tensor:
    book = getattr(model, "codebook", None)
    if isinstance(book, torch.nn.Embedding):
        book = book.weight
    if not isinstance(book, torch.Tensor):
        raise ConfigError(f"{model.family} exposes no codebook tensor")
    return book.detach().float()


def code_positions(model: ModelBase) -> int:
    """Number of code positions of a VQ-VAE (each holds one codebook index)."""
    with torch.inference_mode():
        x = torch.zeros(1, *model.data_shape, device=_device(model))
        yy = _labels(model, 0, 1) if model.is_conditional else None
        idx = model.encode(x, yy).extras.get("indices")
    if idx is None:
        raise ConfigError(f"{model.family} did not return codebook indices")
    return int(idx[0].numel())
