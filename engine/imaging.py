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


LABEL_BACKGROUND = 255
LABEL_TEXT = (20, 20, 20)
LABEL_TEXT_DIM = (150, 150, 150)
DIM_FACTOR = 0.35


def labelled_grid(cells: np.ndarray, row_labels: list[str], col_labels: list[str], axis_title: str = "",
                  cell_size: int = 64, dimmed: list[bool] | None = None, pad: int = 2) -> np.ndarray:
    """A figure of a rows×cols grid of images with a label left of each row and a value axis below (RGB uint8).

    `cells`: uint8 rows×cols×H×W (grayscale) or rows×cols×H×W×3; each cell is scaled (nearest neighbour) to
    `cell_size` pixels high. `dimmed[r]` greys row r's images and label (an inactive latent).
    """
    from PIL import Image, ImageDraw, ImageFont

    cells = np.asarray(cells)
    if cells.dtype != np.uint8 or cells.ndim not in (4, 5):
        raise ValueError(f"cells must be uint8 rows×cols×H×W[×3], got {cells.dtype} {cells.shape}")
    rows, cols, h, w = cells.shape[:4]
    if len(row_labels) != rows or len(col_labels) != cols:
        raise ValueError(f"{len(row_labels)} row labels and {len(col_labels)} column labels for a {rows}×{cols} grid")
    if not 8 <= int(cell_size) <= 1024:
        raise ValueError(f"cell size must be in 8…1024 pixels, got {cell_size}")
    dimmed = list(dimmed) if dimmed is not None else [False] * rows
    cell_h = int(cell_size)
    cell_w = max(1, round(w * cell_h / h))
    font = ImageFont.load_default(size=max(10, min(18, cell_h // 4)))
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))

    def text_size(text: str) -> tuple[int, int]:
        left, top, right, bottom = probe.textbbox((0, 0), text, font=font)
        return right - left, bottom - top

    line_h = text_size("Ag")[1] + 4
    row_h = max(cell_h, line_h)
    label_w = max([text_size(t)[0] for t in row_labels] + [0]) + 12
    margin = 8
    col_label_h = line_h + 4
    title_h = line_h + 4 if axis_title else 0
    content_w = cols * (cell_w + pad) - pad
    title_w = text_size(axis_title)[0] if axis_title else 0
    width = margin + label_w + max(content_w, title_w) + margin
    height = margin + rows * (row_h + pad) + col_label_h + title_h + margin
    figure = Image.new("RGB", (width, height), (LABEL_BACKGROUND,) * 3)
    draw = ImageDraw.Draw(figure)
    x0 = margin + label_w
    for r in range(rows):
        y = margin + r * (row_h + pad)
        for c in range(cols):
            cell = cells[r, c]
            if dimmed[r]:
                cell = (cell.astype(np.float32) * DIM_FACTOR + 255 * (1 - DIM_FACTOR) * 0.5).astype(np.uint8)
            image = Image.fromarray(cell).convert("RGB").resize((cell_w, cell_h), Image.Resampling.NEAREST)
            figure.paste(image, (x0 + c * (cell_w + pad), y + (row_h - cell_h) // 2))
        tw, th = text_size(row_labels[r])
        draw.text((x0 - 8 - tw, y + (row_h - th) // 2), row_labels[r], font=font,
                  fill=LABEL_TEXT_DIM if dimmed[r] else LABEL_TEXT)
    axis_y = margin + rows * (row_h + pad)
    draw.line([(x0, axis_y + 1), (x0 + cols * (cell_w + pad) - pad, axis_y + 1)], fill=LABEL_TEXT, width=1)
    for c, text in enumerate(col_labels):
        centre = x0 + c * (cell_w + pad) + cell_w // 2
        draw.line([(centre, axis_y + 1), (centre, axis_y + 4)], fill=LABEL_TEXT, width=1)
        tw, _ = text_size(text)
        draw.text((centre - tw // 2, axis_y + 5), text, font=font, fill=LABEL_TEXT)
    if axis_title:
        tw, _ = text_size(axis_title)
        centre = x0 + content_w // 2
        draw.text((max(x0, centre - tw // 2), axis_y + col_label_h + 2), axis_title, font=font, fill=LABEL_TEXT)
    return np.ascontiguousarray(np.asarray(figure, dtype=np.uint8))


def _figure_fonts(size: int) -> tuple[object, bool]:
    """DejaVu Sans at `size` when the system has it (every glyph the labels use), else Pillow's own font (plain)."""
    from PIL import ImageFont

    try:
        return ImageFont.truetype("DejaVuSans.ttf", size), False
    except OSError:
        return ImageFont.load_default(size=size), True


def _ascii(text: str) -> str:
    for glyph, plain in (("β", "beta"), ("×", "x"), ("—", "-"), ("–", "-"), ("‖", "||"), ("→", "->")):
        text = text.replace(glyph, plain)
    return text


def labelled_panels(panels: list[tuple[str, np.ndarray]], columns: int = 2, title: str = "",
                    gap: int = 14) -> np.ndarray:
    """Several images in one figure (RGB uint8): a title line, then the panels left to right in `columns`, each under
    its label "(a) …". Grayscale panels are shown as gray; each panel keeps its own size (cells are as large as the
    largest panel of their row and column)."""
    from PIL import Image, ImageDraw

    if not panels:
        raise ValueError("a figure needs at least one panel")
    if not 1 <= int(columns) <= 16:
        raise ValueError(f"columns must be in 1…16, got {columns}")
    images = []
    for label, image in panels:
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
            raise ValueError(f"panel {label!r}: expected uint8 H×W or H×W×3, got {image.dtype} {image.shape}")
        images.append(np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image)
    font, plain = _figure_fonts(14)
    title_font, _ = _figure_fonts(17)
    if plain:  # Pillow's own font has no β, ×, —: write them in ASCII
        panels = [(_ascii(label), image) for label, image in panels]
        title = _ascii(title)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    line_h = probe.textbbox((0, 0), "Ag", font=font)[3] + 6
    title_h = probe.textbbox((0, 0), "Ag", font=title_font)[3] + 12 if title else 0
    columns = min(int(columns), len(images))
    rows = -(-len(images) // columns)
    col_w = [max(im.shape[1] for im in images[c::columns]) for c in range(columns)]
    row_h = [max(im.shape[0] for im in images[r * columns:(r + 1) * columns]) + line_h for r in range(rows)]
    width = gap + sum(w + gap for w in col_w)
    height = gap + title_h + sum(h + gap for h in row_h)
    figure = Image.new("RGB", (width, height), (LABEL_BACKGROUND,) * 3)
    draw = ImageDraw.Draw(figure)
    if title:
        draw.text((gap, gap), title, fill=LABEL_TEXT, font=title_font)
    for k, ((label, _), image) in enumerate(zip(panels, images, strict=True)):
        r, c = divmod(k, columns)
        x = gap + sum(w + gap for w in col_w[:c])
        y = gap + title_h + sum(h + gap for h in row_h[:r])
        draw.text((x, y), f"({chr(ord('a') + k % 26)}) {label}", fill=LABEL_TEXT, font=font)
        figure.paste(Image.fromarray(np.ascontiguousarray(image)), (x, y + line_h))
    return np.ascontiguousarray(np.asarray(figure, dtype=np.uint8))
