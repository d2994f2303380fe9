"""Image grids as C-contiguous uint8 arrays (what pyqtgraph draws fastest and Pillow saves), PNG and GIF export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


def to_uint8(images: torch.Tensor | np.ndarray) -> np.ndarray:
    """n×C×H×W floats in [0, 1] (or uint8) → uint8 numpy n×C×H×W."""
    if isinstance(images, torch.Tensor):
        images = images.detach()
        if images.dtype != torch.uint8:
            images = (images.float().clamp(0, 1) * 255.0).round().to(torch.uint8)
        return images.cpu().numpy()
    if images.dtype != np.uint8:
        images = np.clip(np.rint(np.asarray(images, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)
    return images


def tile(images: torch.Tensor | np.ndarray, ncols: int, pad: int = 1, pad_value: int = 64) -> np.ndarray:
    """Arrange n images row-major into a grid: uint8 H×W (1 channel) or H×W×3 (3 channels), C-contiguous."""
    arr = to_uint8(images)
    n, c, h, w = arr.shape
    ncols = max(1, min(ncols, n)) if n else max(1, ncols)
    nrows = max(1, -(-n // ncols))
    grid = np.full((c, nrows * (h + pad) + pad, ncols * (w + pad) + pad), pad_value, dtype=np.uint8)
    if n:
        full = np.full((nrows * ncols, c, h, w), pad_value, dtype=np.uint8)
        full[:n] = arr
        blocks = full.reshape(nrows, ncols, c, h, w).transpose(2, 0, 3, 1, 4)  # c, rows, h, cols, w
        view = grid[:, pad:, pad:].reshape(c, nrows, h + pad, ncols, w + pad)
        view[:, :, :h, :, :w] = blocks
    out = grid[0] if c == 1 else grid.transpose(1, 2, 0)
    return np.ascontiguousarray(out)


def save_png(grid: np.ndarray, path: str | Path) -> Path:
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).save(path, format="PNG")
    return path


def save_gif(frames: list[np.ndarray], path: str | Path, frame_ms: int = 120, loop: bool = True) -> Path:
    """Animated GIF of uint8 frames (a traversal played forth and back is the usual figure)."""
    from PIL import Image

    if not frames:
        raise ValueError("no frames to write")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pil = [Image.fromarray(f) for f in frames]
    pil[0].save(path, format="GIF", save_all=True, append_images=pil[1:], duration=frame_ms,
                loop=0 if loop else 1, disposal=2)
    return path
