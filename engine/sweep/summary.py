"""A sweep's comparison on disk: summary.csv, summary.json and the rate–distortion plane (KL vs reconstruction) as
a PNG drawn with Pillow; reading a summary back; JSON files written atomically."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..imaging import save_png
from ..run_folder import write_text_atomically
from ..scoring import ELBO_KEYS, SCORE_KEYS
from .planning import format_value

NOT_GRID_KEYS = frozenset({"run", "plan", "seed", "status", "steps", "seconds", "folder", "traversal", "train_seconds",
                       "error", "mi_matrix", "factor_names", "kl_per_dim", "metric_sizes", "metric_seed",
                       "metric_seconds", *ELBO_KEYS, *SCORE_KEYS})  # record keys that are not grid parameters


def jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json_atomically(path: Path, doc: Any) -> None:
    """`doc` as JSON (NaN → null), via temp file + os.replace: a sweep killed while writing leaves no half file."""
    write_text_atomically(path, json.dumps(jsonable(doc), indent=2))


def summary_columns(records: list[dict[str, Any]]) -> list[str]:
    """CSV columns: run, the grid parameters, seed, status, steps, the ELBO numbers, the scores, seconds."""
    fixed = ["run", "seed", "status", "steps", *ELBO_KEYS, *SCORE_KEYS, "seconds", "folder"]
    grid_keys = [k for r in records for k in r if k not in NOT_GRID_KEYS]
    grid_keys = list(dict.fromkeys(grid_keys))
    present = [k for k in fixed if any(k in r for r in records)]
    return [present[0], *grid_keys, *present[1:]]


def write_summary(records: list[dict[str, Any]], out_dir: str | Path) -> dict[str, str]:
    """summary.csv, summary.json and rate_distortion.png in `out_dir`; returns their paths by kind."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    columns = summary_columns(records)
    csv_path = out_dir / "summary.csv"
    with csv_path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        for r in records:
            writer.writerow([_csv_cell(r.get(c, "")) for c in columns])
    json_path = out_dir / "summary.json"
    json_path.write_text(json.dumps(jsonable({"columns": columns, "runs": records}), indent=2), encoding="utf-8")
    files = {"csv": str(csv_path), "json": str(json_path)}
    points = rate_distortion_points(records)
    if points:
        files["png"] = str(save_png(rate_distortion_figure(points), out_dir / "rate_distortion.png"))
    return files


def _csv_cell(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.6g}" if math.isfinite(value) else ""
    return value


def load_summary(path: str | Path) -> list[dict[str, Any]]:
    """The run records of a sweep folder's summary.json (or of the file itself)."""
    path = Path(path)
    if path.is_dir():
        path = path / "summary.json"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: not a sweep summary ({exc})") from None
    runs = doc.get("runs") if isinstance(doc, dict) else None
    if not isinstance(runs, list) or not all(isinstance(r, dict) for r in runs):
        raise ConfigError(f"{path}: not a sweep summary (no list of runs)")
    return runs


def point_label(record: dict[str, Any]) -> str:
    """`β=4` for a β sweep, else the grid values; the seed is added when it is not the only one."""
    parts = [("β" if k == "beta" else k) + f"={format_value(v)}" for k, v in record.items() if k not in NOT_GRID_KEYS]
    return ", ".join(parts) or str(record.get("run", "?"))


def rate_distortion_points(records: list[dict[str, Any]]) -> list[tuple[float, float, str]]:
    """(KL = rate, recon = distortion, label) of every run that has both numbers."""
    points = []
    for r in records:
        kl, recon = r.get("kl"), r.get("recon")
        if isinstance(kl, int | float) and isinstance(recon, int | float) and math.isfinite(kl) and \
                math.isfinite(recon):
            seeds = {x.get("seed") for x in records}
            label = point_label(r) + (f" s{r.get('seed')}" if len(seeds) > 1 else "")
            points.append((float(kl), float(recon), label))
    return points


def rate_distortion_figure(points: list[tuple[float, float, str]], width: int = 720, height: int = 520) -> np.ndarray:
    """The rate–distortion plane as an RGB uint8 image (Pillow only: the engine draws without Qt)."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    try:
        font = ImageFont.truetype("DejaVuSans.ttf", 13)
        plain = False
    except OSError:  # no DejaVu on this system: Pillow's own font, and ASCII for β and ‖
        font = ImageFont.load_default()
        plain = True

    def text(s: str) -> str:
        return s.replace("β", "beta").replace("‖", "||") if plain else s
    left, right, top, bottom = 80, width - 30, 40, height - 60
    xs = np.array([p[0] for p in points])
    ys = np.array([p[1] for p in points])

    def padded(values: np.ndarray) -> tuple[float, float]:
        lo, hi = float(values.min()), float(values.max())
        span = hi - lo if hi > lo else max(abs(hi), 1.0)
        return lo - 0.12 * span, hi + 0.12 * span

    x0, x1 = padded(xs)
    y0, y1 = padded(ys)

    def to_px(x: float, y: float) -> tuple[float, float]:
        return (left + (x - x0) / (x1 - x0) * (right - left), bottom - (y - y0) / (y1 - y0) * (bottom - top))

    draw.rectangle([left, top, right, bottom], outline="black")
    for tick in np.linspace(x0, x1, 6):
        px, _ = to_px(tick, y0)
        draw.line([px, bottom, px, bottom + 5], fill="black")
        draw.text((px - 15, bottom + 8), f"{tick:.3g}", fill="black", font=font)
    for tick in np.linspace(y0, y1, 6):
        _, py = to_px(x0, tick)
        draw.line([left - 5, py, left, py], fill="black")
        draw.text((8, py - 7), f"{tick:.4g}", fill="black", font=font)
    draw.text(((left + right) // 2 - 110, height - 28), text("rate: KL(q(z|x) ‖ p(z))  [nats]"), fill="black",
              font=font)
    draw.text((left, 12), "distortion: reconstruction NLL [nats]  vs  rate, one point per run", fill="black",
              font=font)
    order = np.argsort(xs)
    line = [to_px(xs[i], ys[i]) for i in order]
    if len(line) > 1:
        draw.line(line, fill=(170, 170, 220), width=1)
    for x, y, label in points:
        px, py = to_px(x, y)
        draw.ellipse([px - 5, py - 5, px + 5, py + 5], fill=(40, 90, 200), outline="black")
        draw.text((px + 8, py - 16), text(label), fill=(20, 20, 20), font=font)
    return np.ascontiguousarray(np.asarray(image, dtype=np.uint8))
