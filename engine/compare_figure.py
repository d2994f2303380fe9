"""A comparison as ONE labelled figure (Pillow only, no Qt): what `main.py compare --out` and the sweep's end write.

Sections, top to bottom, each optional (VIEWS): a legend (model names in their colours), *curves* (logged terms
against step, y linear or log), *table* (hyperparameters that differ, the final scores and the final and best of the
logged terms: the app's table), *traversals* side by side (rows matched to factors), *recon* (the same inputs and
each model's reconstruction, prior samples from one noise seed), *kl* (KL per latent, one shared axis), *mi* (latent ×
factor MI heatmaps, one shared colour bar), *rd* (rate–distortion).
A model that cannot take part in a view gets a grey box with the reason in its place.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .compare import HISTORY_SCORES, X_AXES, Comparison, Table, TraversalCells, Unavailable, score_title
from .imaging import labelled_grid, tile

VIEWS = ("curves", "table", "traversals", "recon", "kl", "mi", "rd")
DEFAULT_TERMS = ("recon", "kl")  # the curves drawn when no term is chosen
BACKGROUND = (255, 255, 255)
INK = (25, 25, 25)
GREY = (120, 120, 120)
LIGHT = (228, 228, 228)
MARGIN = 16
GAP = 18
MAX_ROW_WIDTH = 1800
AUTO_LOG_RATIO = 20  # curves drawn on a log scale by default when their values span more than this factor
TABLE_SCORES = ("neg_elbo", "recon", "kl", "active_units", "mig", "dci_disentanglement", "factor_vae", "sap",
                *(f"{term} {which}" for term in HISTORY_SCORES for which in ("final", "best")))
# viridis at 0, ¼, ½, ¾, 1 (interpolated linearly between): the MI heatmaps' colour scale
_VIRIDIS = np.array([(68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37)], dtype=np.float64)


class _Fonts:
    """DejaVu Sans when the system has it; else Pillow's own font, with Greek and maths written out in ASCII."""

    def __init__(self) -> None:
        from PIL import ImageFont

        try:
            self.small = ImageFont.truetype("DejaVuSans.ttf", 12)
            self.normal = ImageFont.truetype("DejaVuSans.ttf", 14)
            self.title = ImageFont.truetype("DejaVuSans-Bold.ttf", 16)
            self.plain = False
        except OSError:
            self.small = ImageFont.load_default(size=12)
            self.normal = ImageFont.load_default(size=14)
            self.title = ImageFont.load_default(size=16)
            self.plain = True

    def text(self, s: str) -> str:
        if not self.plain:
            return s
        for a, b in (("β", "beta"), ("γ", "gamma"), ("α", "alpha"), ("λ", "lambda"), ("ρ", "rho"), ("−", "-"),
                     ("‖", "||"), ("·", "."), ("…", "..."), ("→", "->"), ("σ", "sigma"), ("₁", "1"), ("₂", "2")):
            s = s.replace(a, b)
        return s.encode("ascii", "replace").decode("ascii")


def _size(draw, text: str, font) -> tuple[int, int]:
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    return right - left, bottom - top


def _canvas(width: int, height: int):
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (max(1, int(width)), max(1, int(height))), BACKGROUND)
    return image, ImageDraw.Draw(image)


def _titled(image, title: str, colour: tuple[int, int, int], fonts: _Fonts, note: str = ""):
    """`image` with a coloured swatch + title above it (and a grey note under the title)."""
    probe = _canvas(1, 1)[1]
    title, note = fonts.text(title), fonts.text(note)
    tw, th = _size(probe, title, fonts.normal)
    nw, nh = _size(probe, note, fonts.small) if note else (0, 0)
    head = th + 8 + (nh + 4 if note else 0)
    width = max(image.width, tw + 22, nw)
    out, draw = _canvas(width, image.height + head)
    draw.rectangle([0, 3, 14, 3 + th], fill=colour)
    draw.text((20, 0), title, font=fonts.normal, fill=colour)
    if note:
        draw.text((0, th + 6), note, font=fonts.small, fill=GREY)
    out.paste(image, (0, head))
    return out


def _reason_box(reason: str, fonts: _Fonts, width: int = 260, height: int = 90):
    """A grey box that says why a model is absent from a view."""
    image, draw = _canvas(width, height)
    draw.rectangle([0, 0, width - 1, height - 1], fill=(245, 245, 245), outline=LIGHT)
    words, lines, line = fonts.text(reason).split(), [], ""
    for word in words:
        trial = f"{line} {word}".strip()
        if _size(draw, trial, fonts.small)[0] > width - 16 and line:
            lines.append(line)
            line = word
        else:
            line = trial
    lines.append(line)
    for i, text in enumerate(lines[:5]):
        draw.text((8, 8 + 16 * i), text, font=fonts.small, fill=GREY)
    return image


def _arrange(panels: list, max_width: int = MAX_ROW_WIDTH):
    """Panels left to right, wrapping into rows at `max_width`."""
    rows: list[list] = [[]]
    width = 0
    for panel in panels:
        if rows[-1] and width + GAP + panel.width > max_width:
            rows.append([])
            width = 0
        width += (GAP if rows[-1] else 0) + panel.width
        rows[-1].append(panel)
    total_w = max(sum(p.width for p in row) + GAP * (len(row) - 1) for row in rows)
    total_h = sum(max(p.height for p in row) for row in rows) + GAP * (len(rows) - 1)
    out, _ = _canvas(total_w, total_h)
    y = 0
    for row in rows:
        x = 0
        for panel in row:
            out.paste(panel, (x, y))
            x += panel.width + GAP
        y += max(p.height for p in row) + GAP
    return out


def _stack(sections: list, fonts: _Fonts, title: str = ""):
    """Sections one under another, each with its heading, on a white page with margins."""
    probe = _canvas(1, 1)[1]
    heads = [(fonts.text(name), image) for name, image in sections]
    width = max([image.width for _, image in heads] + [_size(probe, fonts.text(title), fonts.title)[0]]) + 2 * MARGIN
    line = _size(probe, "Ag", fonts.title)[1] + 10
    height = MARGIN + (line if title else 0) + sum(line + image.height + GAP for _, image in heads) + MARGIN
    out, draw = _canvas(width, height)
    y = MARGIN
    if title:
        draw.text((MARGIN, y), fonts.text(title), font=fonts.title, fill=INK)
        y += line
    for name, image in heads:
        if name:
            draw.text((MARGIN, y), name, font=fonts.title, fill=INK)
            draw.line([(MARGIN, y + line - 5), (width - MARGIN, y + line - 5)], fill=LIGHT)
        y += line
        out.paste(image, (MARGIN, y))
        y += image.height + GAP
    return out


# --- views ---------------------------------------------------------------------------------------------------
def legend(comparison: Comparison, fonts: _Fonts):
    labels = comparison.labels()
    panels = []
    for key in comparison.keys:
        entry = comparison.entry(key)
        text = fonts.text(f"{labels[key]}  ({entry.dataset_name.split('?')[0]}, step {entry.step:,})")
        w, h = _size(_canvas(1, 1)[1], text, fonts.normal)
        image, draw = _canvas(w + 28, h + 8)
        draw.rectangle([0, 2, 18, h + 4], fill=comparison.colour(key))
        draw.text((24, 0), text, font=fonts.normal, fill=comparison.colour(key))
        panels.append(image)
    return _arrange(panels)


def _nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    if not high > low:
        return [low]
    step = 10 ** math.floor(math.log10((high - low) / count))
    for factor in (1, 2, 2.5, 5, 10):
        if (high - low) / (step * factor) <= count:
            step *= factor
            break
    start = math.ceil(low / step) * step
    return [start + i * step for i in range(int((high - start) / step + 1e-9) + 1)]


def _log_ticks(low: float, high: float) -> list[float]:
    """1, 2, 5 × 10^k between 10^low and 10^high (only the decades when that is too many)."""
    ticks = [m * 10.0 ** k for k in range(math.floor(low), math.ceil(high) + 1) for m in (1, 2, 5)
             if low <= math.log10(m * 10.0 ** k) <= high]
    return ticks if len(ticks) <= 8 else [t for t in ticks if math.log10(t).is_integer()] or ticks[:1]


def _tick_text(value: float) -> str:
    if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-2):
        return f"{value:.0e}"
    return f"{value:,.4g}"


def plot(series: list[tuple[tuple[int, int, int], np.ndarray, np.ndarray]], fonts: _Fonts, title: str, x_title: str,
         y_title: str, log_y: bool = False, width: int = 560, height: int = 300,
         points: list[tuple[tuple[int, int, int], float, float, str]] | None = None,
         lines_only_between_points: list[list[tuple[float, float]]] | None = None):
    """Axes with ticks and titles; `series` are lines (colour, x, y); `points` are labelled markers."""
    image, draw = _canvas(width, height)
    left, right, top, bottom = 70, width - 16, 26, height - 46
    xs = [s[1] for s in series] + ([np.array([p[1] for p in points])] if points else [])
    ys = [s[2] for s in series] + ([np.array([p[2] for p in points])] if points else [])
    all_x = np.concatenate([x for x in xs if len(x)]) if any(len(x) for x in xs) else np.array([0.0, 1.0])
    all_y = np.concatenate([y for y in ys if len(y)]) if any(len(y) for y in ys) else np.array([0.0, 1.0])
    if log_y:
        all_y = all_y[all_y > 0]
        if not len(all_y):
            log_y, all_y = False, np.array([0.0, 1.0])
    fy = (lambda v: np.log10(np.maximum(v, 1e-12))) if log_y else (lambda v: v)
    x0, x1 = float(all_x.min()), float(all_x.max())
    y0, y1 = float(fy(all_y).min()), float(fy(all_y).max())
    pad_x = (x1 - x0) * (0.12 if points else 0.0) or max(abs(x1), 1.0) * 0.1
    pad_y = (y1 - y0) * 0.08 or max(abs(y1), 1.0) * 0.1
    x0, x1, y0, y1 = x0 - pad_x, x1 + pad_x, y0 - pad_y, y1 + pad_y

    def px(x, y):
        return (left + (np.asarray(x) - x0) / (x1 - x0) * (right - left),
                bottom - (fy(np.asarray(y)) - y0) / (y1 - y0) * (bottom - top))

    draw.text((left, 4), fonts.text(title), font=fonts.normal, fill=INK)
    draw.rectangle([left, top, right, bottom], outline=INK)
    for tick in _nice_ticks(x0, x1):
        x, _ = px(tick, 1.0 if log_y else y0)
        draw.line([(x, bottom), (x, bottom + 4)], fill=INK)
        text = _tick_text(tick)
        draw.text((x - _size(draw, text, fonts.small)[0] / 2, bottom + 6), text, font=fonts.small, fill=INK)
    y_ticks = _log_ticks(y0, y1) if log_y else _nice_ticks(y0, y1)
    for tick in y_ticks:
        _, y = px(x0, tick)
        draw.line([(left - 4, y), (left, y)], fill=INK)
        draw.line([(left + 1, y), (right - 1, y)], fill=(242, 242, 242))
        text = _tick_text(tick)
        draw.text((left - 8 - _size(draw, text, fonts.small)[0], y - 7), text, font=fonts.small, fill=INK)
    x_text = fonts.text(x_title)
    draw.text(((left + right) / 2 - _size(draw, x_text, fonts.small)[0] / 2, bottom + 24), x_text, font=fonts.small,
              fill=INK)
    y_text = fonts.text(y_title + (" (log scale)" if log_y else ""))
    label_img, label_draw = _canvas(_size(draw, y_text, fonts.small)[0] + 4, 16)
    label_draw.text((2, 0), y_text, font=fonts.small, fill=INK)
    rotated = label_img.rotate(90, expand=True)
    image.paste(rotated, (2, int((top + bottom) / 2 - rotated.height / 2)))
    for colour, x, y in series:
        if len(x) == 0:
            continue
        keep = y > 0 if log_y else np.ones(len(y), bool)
        cx, cy = px(x[keep], y[keep])
        if len(cx) > 1:
            draw.line(list(zip(cx.tolist(), cy.tolist(), strict=True)), fill=colour, width=2)
        elif len(cx) == 1:
            draw.ellipse([cx[0] - 3, cy[0] - 3, cx[0] + 3, cy[0] + 3], fill=colour)
    for path in lines_only_between_points or []:
        coords = [tuple(float(v) for v in px(a, b)) for a, b in path]
        draw.line(coords, fill=GREY, width=1)
    for colour, x, y, text in points or []:
        cx, cy = (float(v) for v in px(x, y))
        draw.ellipse([cx - 6, cy - 6, cx + 6, cy + 6], fill=colour, outline=INK)
        text = fonts.text(text)
        tw = _size(draw, text, fonts.small)[0]
        tx = cx + 9 if cx + 9 + tw <= width - 2 else max(2, cx - 9 - tw)
        draw.text((tx, cy - 16), text, font=fonts.small, fill=colour)
    return image


def _smooth(y: np.ndarray, points: int = 400) -> np.ndarray:
    """A running mean over ~len/points records (thousands of noisy step losses read as a band otherwise)."""
    window = max(1, len(y) // points)
    if window == 1:
        return y
    kernel = np.ones(window) / window
    return np.convolve(np.pad(y, (window // 2, window - 1 - window // 2), mode="edge"), kernel, mode="valid")


def curves_view(comparison: Comparison, fonts: _Fonts, terms: Sequence[str] | None = None, x: str = "step",
                log_y: bool | None = None):
    """One plot per term (default: recon and KL), every model's running mean against `x` (see X_AXES); y on a log
    scale when `log_y`, linear when False, and when None log only where the values span more than AUTO_LOG_RATIO×."""
    available = comparison.terms()
    if not available:
        return _reason_box("no model has a logged history (examples and run folders have one)", fonts, 420, 40)
    terms = list(terms or [t for t in DEFAULT_TERMS if t in available] or available[:1])
    panels = []
    for term in terms:
        series, x_title = [], x
        for key in comparison.keys:
            curve = comparison.curve(key, term, x)
            if isinstance(curve, Unavailable):
                continue
            series.append((comparison.colour(key), curve.x, _smooth(curve.y)))
            x_title = curve.x_title
        ys = np.concatenate([s[2] for s in series]) if series else np.array([1.0])
        log = bool(ys.min() > 0 and ys.max() / ys.min() > AUTO_LOG_RATIO) if log_y is None else bool(log_y)
        panels.append(plot(series, fonts, f"{term} (running mean)", x_title, f"{term} [nats]", log_y=log))
    return _arrange(panels)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else ""
    return str(value)


def table_image(table: Table, colours: list[tuple[int, int, int]], fonts: _Fonts):
    """A text table: header row, one row per model (its name in its colour)."""
    probe = _canvas(1, 1)[1]
    cells = [[fonts.text(c) for c in table.columns]] + [[fonts.text(_cell(v)) for v in row] for row in table.rows]
    widths = [max(_size(probe, row[c], fonts.small)[0] for row in cells) + 14 for c in range(len(table.columns))]
    row_h = 20
    image, draw = _canvas(sum(widths), row_h * len(cells) + 2)
    for r, row in enumerate(cells):
        x = 0
        y = r * row_h
        if r == 0:
            draw.rectangle([0, 0, image.width, row_h - 2], fill=(240, 240, 240))
        for c, text in enumerate(row):
            colour = colours[r - 1] if r > 0 and c == 0 else INK
            draw.text((x + 4, y + 3), text, font=fonts.small, fill=colour)
            x += widths[c]
        draw.line([(0, y + row_h - 1), (image.width, y + row_h - 1)], fill=LIGHT)
    return image


def figure_table(comparison: Comparison) -> Table:
    """The figure's table: the hyperparameters that differ, then the scores of TABLE_SCORES any model has — its
    final scores and the final and best of its logged history terms, the values the app's table shows (one row per
    model, seeds not grouped), under the app's column titles (`score_title`)."""
    hyper = comparison.hyperparam_table(differences_only=True)
    scores = comparison.score_table(group_seeds=False)
    keep = [c for c in scores.columns if c in TABLE_SCORES]
    columns = hyper.columns + [score_title(c) for c in keep]
    rows = [h + [s[scores.columns.index(c)] for c in keep] for h, s in zip(hyper.rows, scores.rows, strict=True)]
    return Table(columns, rows, hyper.keys)


def table_view(comparison: Comparison, fonts: _Fonts):
    colours = [comparison.colour(k) for k in comparison.keys]
    return table_image(figure_table(comparison), colours, fonts)


def traversals_view(comparison: Comparison, fonts: _Fonts, base: int = 0, span: float = 3.0, steps: int = 7,
                    cell: int = 40):
    cells = comparison.traversal_cells([base], span, steps)
    labels = comparison.labels()
    panels = []
    for key, result in cells.items():
        colour = comparison.colour(key)
        if isinstance(result, Unavailable):
            panels.append(_titled(_reason_box(result.reason, fonts), labels[key], colour, fonts))
            continue
        panels.append(_titled(_traversal_panel(result, fonts, cell), labels[key], colour, fonts, result.note))
    return _arrange(panels)


def _traversal_panel(result: TraversalCells, fonts: _Fonts, cell: int, column: int | None = None):
    """One model's labelled traversal grid (all columns, or only `column`: a GIF frame)."""
    from PIL import Image

    axis = "z_j in prior std" if result.col_labels[0].startswith(("+", "-")) else "percentile of z_j on the data"
    cells, col_labels = result.cells, result.col_labels
    if column is not None:
        cells, col_labels = cells[:, column:column + 1], col_labels[column:column + 1]
    grid = labelled_grid(cells, [fonts.text(t) for t in result.row_labels], col_labels, fonts.text(axis),
                         cell_size=cell, dimmed=result.dimmed)
    return Image.fromarray(grid)


def traversal_frames(comparison: Comparison, base: int = 0, span: float = 3.0, steps: int = 9, cell: int = 48,
                     bounce: bool = True) -> list[np.ndarray]:
    """GIF frames of every model's traversal moving together: frame c shows each model's rows at the c-th value,
    side by side under its coloured name (played forth and back when `bounce`)."""
    fonts = _Fonts()
    cells = comparison.traversal_cells([base], span, steps)
    labels = comparison.labels()
    frames = []
    for c in range(int(steps)):
        panels = []
        for key, result in cells.items():
            body = (_reason_box(result.reason, fonts, 200, 90) if isinstance(result, Unavailable)
                    else _traversal_panel(result, fonts, cell, c))
            panels.append(_titled(body, labels[key], comparison.colour(key), fonts))
        page = _stack([("", _arrange(panels))], fonts, "")
        frames.append(np.ascontiguousarray(np.asarray(page, dtype=np.uint8)))
    if frames:
        size = (max(f.shape[0] for f in frames), max(f.shape[1] for f in frames))
        frames = [_pad_to(f, size) for f in frames]
    if bounce and len(frames) > 2:
        frames = frames + frames[-2:0:-1]
    return frames


def _pad_to(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A frame on a white page of `size` (column labels differ in width, so frames may differ by a few pixels)."""
    out = np.full((size[0], size[1], 3), 255, dtype=np.uint8)
    out[:frame.shape[0], :frame.shape[1]] = frame
    return out


def _scaled(grid: np.ndarray, scale: int):
    from PIL import Image

    image = Image.fromarray(grid).convert("RGB")
    return image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)


def recon_view(comparison: Comparison, fonts: _Fonts, n: int = 6, seed: int = 0):
    pairs = comparison.reconstructions(range(n))
    samples = comparison.prior_samples(n, seed)
    labels = comparison.labels()
    panels = []
    for key in comparison.keys:
        pair, drawn = pairs[key], samples[key]
        colour = comparison.colour(key)
        if isinstance(pair, Unavailable):
            panels.append(_titled(_reason_box(pair.reason, fonts), labels[key], colour, fonts))
            continue
        h = pair.inputs.shape[-1]
        scale = max(1, round(40 / h))
        rows = [pair.inputs, pair.outputs]
        captions = ["inputs", "reconstructions"]
        if isinstance(drawn, np.ndarray):
            rows.append(drawn)
            captions.append(f"prior samples (seed {seed})")
        grid = _scaled(tile(np.concatenate(rows), n, pad=1, pad_value=255), scale)
        row_h = grid.height // len(rows)
        caption_w = max(_size(_canvas(1, 1)[1], c, fonts.small)[0] for c in captions) + 10
        image, draw = _canvas(grid.width + caption_w, grid.height)
        image.paste(grid, (caption_w, 0))
        for r, caption in enumerate(captions):
            draw.text((2, r * row_h + row_h // 2 - 7), caption, font=fonts.small, fill=INK)
        note = pair.note + ("" if isinstance(drawn, np.ndarray) else f"; {drawn.reason}")
        panels.append(_titled(image, labels[key], colour, fonts, note.strip("; ")))
    return _arrange(panels)


def _model_panels(comparison: Comparison, values_by_key: dict, fonts: _Fonts, draw_one) -> list:
    """One titled panel per model: `draw_one(key, values, colour)` → image, or the reason it has none."""
    labels = comparison.labels()
    panels = []
    for key, values in values_by_key.items():
        colour = comparison.colour(key)
        image = (_reason_box(values.reason, fonts, 300, 60) if isinstance(values, Unavailable)
                 else draw_one(key, values, colour))
        panels.append(_titled(image, labels[key], colour, fonts))
    return panels


def kl_view(comparison: Comparison, fonts: _Fonts):
    shared = comparison.kl_per_dim()

    def draw_one(key, values, colour):
        width, height, left, bottom, top = 300, 180, 44, 140, 8
        image, draw = _canvas(width, height)
        bar = (width - left - 8) / len(values)
        draw.line([(left, top), (left, bottom), (width - 8, bottom)], fill=INK)
        for tick in _nice_ticks(0.0, shared.vmax, 4):
            y = bottom - tick / shared.vmax * (bottom - top)
            draw.line([(left - 4, y), (left, y)], fill=INK)
            text = _tick_text(tick)
            draw.text((left - 6 - _size(draw, text, fonts.small)[0], y - 7), text, font=fonts.small, fill=INK)
        for j, v in enumerate(values):
            x = left + j * bar
            y = bottom - float(v) / shared.vmax * (bottom - top)
            draw.rectangle([x + 2, y, x + bar - 2, bottom], fill=colour if v > 0.01 else LIGHT)
            if len(values) <= 16:
                draw.text((x + bar / 2 - 6, bottom + 3), f"z{j}", font=fonts.small, fill=INK)
        draw.text((left, bottom + 22), fonts.text("KL per latent [nats], one shared axis"), font=fonts.small,
                  fill=GREY)
        return image

    return _arrange(_model_panels(comparison, shared.values, fonts, draw_one))


def _viridis(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0) * (len(_VIRIDIS) - 1)
    low = np.floor(t).astype(int).clip(0, len(_VIRIDIS) - 2)
    frac = (t - low)[..., None]
    return (_VIRIDIS[low] * (1 - frac) + _VIRIDIS[low + 1] * frac).round().astype(np.uint8)


def colour_bar(vmax: float, fonts: _Fonts, title: str, height: int = 200):
    image, draw = _canvas(90, height + 30)
    ramp = _viridis(np.linspace(1.0, 0.0, height))[:, None, :].repeat(16, axis=1)
    from PIL import Image

    image.paste(Image.fromarray(np.ascontiguousarray(ramp)), (4, 20))
    draw.text((0, 0), fonts.text(title), font=fonts.small, fill=INK)
    for value in _nice_ticks(0.0, vmax, 4):
        y = 20 + (1 - value / vmax) * (height - 1)
        draw.line([(20, y), (24, y)], fill=INK)
        draw.text((27, y - 7), f"{value:.2g}", font=fonts.small, fill=INK)
    return image


def mi_view(comparison: Comparison, fonts: _Fonts, cell: int = 22):
    from PIL import Image

    shared = comparison.mi_matrices()

    def draw_one(key, values, colour):

        names = shared.factor_names[key]
        d, k = values.shape
        col_w = max(cell, max(_size(_canvas(1, 1)[1], n, fonts.small)[0] for n in names) + 6)
        left = 34
        image, draw = _canvas(left + k * col_w + 4, d * cell + 24)
        rgb = _viridis(values / shared.vmax)
        heat = Image.fromarray(np.ascontiguousarray(rgb)).resize((k * col_w, d * cell), Image.Resampling.NEAREST)
        image.paste(heat, (left, 0))
        for j in range(d):
            draw.text((2, j * cell + cell // 2 - 7), f"z{j}", font=fonts.small, fill=INK)
        for c, name in enumerate(names):
            w = _size(draw, name, fonts.small)[0]
            draw.text((left + c * col_w + col_w / 2 - w / 2, d * cell + 4), name, font=fonts.small, fill=INK)
        return image

    panels = _model_panels(comparison, shared.values, fonts, draw_one)
    if any(isinstance(v, np.ndarray) for v in shared.values.values()):
        panels.append(colour_bar(shared.vmax, fonts, "I(z;v)/H(v)"))
    return _arrange(panels)


def rd_view(comparison: Comparison, fonts: _Fonts):
    rd = comparison.rate_distortion()
    labels = comparison.labels()
    if not rd.points:
        reasons = "; ".join(u.reason for u in rd.unavailable.values()) or "no model has KL and recon"
        return _reason_box(reasons, fonts, 560, 60)
    by_key = {p.key: p for p in rd.points}
    points = [(comparison.colour(p.key), p.kl, p.recon, labels[p.key]) for p in rd.points]
    paths = [[(by_key[k].kl, by_key[k].recon) for k in line] for line in rd.lines]
    image = plot([], fonts, "distortion vs rate (sweep runs joined by their swept value)",
                 "rate: KL(q(z|x) ‖ p(z)) [nats]", "distortion: recon [nats]", width=620, height=360,
                 points=points, lines_only_between_points=paths)
    absent = [f"{labels[k]}: {u.reason}" for k, u in rd.unavailable.items()]
    if absent:
        image = _titled(image, "", INK, fonts, "; ".join(absent))
    return image


_TITLES = {"curves": "Training curves", "table": "Hyperparameters that differ, and scores",
           "traversals": "Traversals of the same test image (rows matched to factors)",
           "recon": "Reconstructions of the same inputs, prior samples from the same seed",
           "kl": "KL per latent dimension", "mi": "Mutual information: latents × factors (one colour scale)",
           "rd": "Rate–distortion"}


def check_curve_choice(comparison: Comparison, terms: Sequence[str] | None, x: str) -> None:
    """ValueError naming the choices when a term was never logged by any model or `x` is not an axis."""
    if x not in X_AXES:
        raise ValueError(f"unknown x axis {x!r}; choose from {', '.join(X_AXES)}")
    available = comparison.terms()
    unknown = [t for t in terms or () if t not in available]
    if unknown:
        raise ValueError(f"term(s) {', '.join(unknown)} not logged by any model; choose from "
                         f"{', '.join(available) or '(none: no model has a history)'}")


def comparison_figure(comparison: Comparison, views: tuple[str, ...] = VIEWS, base: int = 0, span: float = 3.0,
                      steps: int = 7, title: str = "", terms: Sequence[str] | None = None,
                      x: str = "step", log_y: bool | None = None) -> np.ndarray:
    """The whole comparison as one RGB uint8 image (views in the order of VIEWS); the curves show `terms` (default
    DEFAULT_TERMS) against `x` (step, images or wall), y on a log scale when `log_y` (None: where they span
    more than AUTO_LOG_RATIO×)."""
    unknown = [v for v in views if v not in VIEWS]
    if unknown:
        raise ValueError(f"unknown view(s) {', '.join(unknown)}; choose from {', '.join(VIEWS)}")
    if "curves" in views:
        check_curve_choice(comparison, terms, x)
    fonts = _Fonts()
    builders = {"curves": lambda: curves_view(comparison, fonts, terms, x, log_y),
                "table": lambda: table_view(comparison, fonts),
                "traversals": lambda: traversals_view(comparison, fonts, base, span, steps),
                "recon": lambda: recon_view(comparison, fonts), "kl": lambda: kl_view(comparison, fonts),
                "mi": lambda: mi_view(comparison, fonts), "rd": lambda: rd_view(comparison, fonts)}
    sections = [("", legend(comparison, fonts))]
    sections += [(_TITLES[v], builders[v]()) for v in VIEWS if v in views]
    page = _stack(sections, fonts, title or f"Latent Explorer — comparison of {len(comparison.entries)} models")
    return np.ascontiguousarray(np.asarray(page, dtype=np.uint8))
