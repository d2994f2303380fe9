"""A run's configuration: one dataclass, read from / written to TOML (presets and run folders share the format).

```toml
description = "…"            # optional, presets only
[data]
dataset = "dsprites?subset=20000"
fallback = ["mnist-sample", "digits"]   # optional: used (and said) when `dataset` is not on this machine
test_fraction = 0.1          # or test_count = 40 (images; wins when > 0); a non-empty split has a floor
[model]
family = "beta-vae"
latent_dim = 10              # … any hyperparameter of the family
[training]
epochs = 10                  # or max_steps = 5000 (max_steps wins when both are set)
batch_size = 128
lr = 1e-3
device = "auto"              # auto | cpu | cuda | cuda:N | mps (auto and cuda honour LOCAL_RANK under torchrun)
precision = "fp32"           # or "bf16": autocast around the loss, scoring and previews (weights stay fp32)
compile = false              # torch.compile the loss; compile_mode = "default" | "reduce-overhead" | "max-autotune"
deterministic = false        # deterministic kernels (what exact resume on CUDA needs)
memory_format = "auto"       # conv backbones: auto (channels_last on CUDA) | channels_last | contiguous
```
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import ConfigError

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")
PRECISIONS = ("fp32", "bf16")
MEMORY_FORMATS = ("auto", "channels_last", "contiguous")


@dataclass
class TrainConfig:
    dataset: str = "digits"
    family: str = "vae"
    hparams: dict[str, Any] = field(default_factory=dict)
    epochs: int = 10
    max_steps: int | None = None
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    threads: int = 0  # torch intra-op threads; 0 = leave torch's default
    test_fraction: float = 0.1
    test_count: int = 0  # test images; when > 0 it replaces test_fraction (engine.data.base.held_out_size: the floor)
    preview_every_s: float = 0.5  # previews are produced at most this often (and at epoch ends)
    preview_png_every_s: float = 60.0  # run folder: the last 3 preview PNG sets + one per N s; 0 = the last 3 only
    metrics_every: int = 0  # pull loss terms and yield StepMetrics every N steps; 0 = auto (CPU 1, GPU 25)
    checkpoint_every_steps: int = 0  # 0 = only at the end (and on request)
    probe_every_s: float = 0.0  # live MIG probe every N s of training on datasets with factors; 0 = off
    compile: bool = False  # torch.compile the loss (CPU: ~30 s first compile)
    compile_mode: str = "default"  # default | reduce-overhead (CUDA graphs) | max-autotune
    precision: str = "fp32"  # fp32 (TF32 matmuls on CUDA) | bf16 (autocast)
    deterministic: bool = False  # deterministic algorithms (exact repeat/resume on CUDA)
    memory_format: str = "auto"  # conv backbones: auto (channels_last on CUDA only) | channels_last | contiguous
    out_dir: str | None = None  # run folder; None = no files written
    fallback: list[str] = field(default_factory=list)
    description: str = ""

    _TRAINING_KEYS = ("epochs", "max_steps", "batch_size", "lr", "weight_decay", "seed", "device", "threads",
                      "preview_every_s", "preview_png_every_s", "metrics_every", "checkpoint_every_steps",
                      "probe_every_s", "compile", "compile_mode", "precision", "deterministic", "memory_format",
                      "out_dir")

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Types and ranges of the training settings; hyperparameters are checked by the model family."""
        checks: list[tuple[str, type, float, float]] = [
            ("epochs", int, 1, 100_000), ("batch_size", int, 1, 65_536), ("lr", float, 1e-8, 10.0),
            ("weight_decay", float, 0.0, 1.0), ("seed", int, 0, 2**31 - 1), ("threads", int, 0, 256),
            ("test_fraction", float, 0.0, 0.9), ("test_count", int, 0, 10**9), ("preview_every_s", float, 0.05, 3600.0),
            ("preview_png_every_s", float, 0.0, 86400.0), ("metrics_every", int, 0, 1_000_000),
            ("checkpoint_every_steps", int, 0, 10**9),
            ("probe_every_s", float, 0.0, 3600.0),
        ]
        for name, kind, lo, hi in checks:
            value = getattr(self, name)
            if kind is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
                setattr(self, name, value)
            if not isinstance(value, kind) or isinstance(value, bool):
                raise ConfigError(f"{name} must be {kind.__name__}, got {value!r}")
            if not lo <= value <= hi:  # written so that NaN fails too
                raise ConfigError(f"{name} must be in [{lo:g}, {hi:g}], got {value!r}")
        if self.max_steps is not None and (not isinstance(self.max_steps, int) or isinstance(self.max_steps, bool)
                                           or not 1 <= self.max_steps <= 10**9):
            raise ConfigError(f"max_steps must be an integer in [1, 1e9], got {self.max_steps!r}")
        if not isinstance(self.device, str) or not (self.device in ("auto", "cpu", "mps", "cuda")
                                                    or self.device.startswith("cuda:")):
            raise ConfigError(f"device must be auto, cpu, cuda, cuda:N or mps, got {self.device!r}")
        for name in ("dataset", "family", "description"):
            if not isinstance(getattr(self, name), str):
                raise ConfigError(f"{name} must be a string, got {getattr(self, name)!r}")
        if not isinstance(self.hparams, dict):
            raise ConfigError(f"model hyperparameters must be a table, got {self.hparams!r}")
        for key, value in self.hparams.items():
            if not isinstance(key, str) or not _is_plain_value(value):
                raise ConfigError(f"model hyperparameter {key!r} must be a number, text, true/false or a list of "
                                  f"those, got {value!r}")
        if self.out_dir is not None and not isinstance(self.out_dir, str):
            raise ConfigError(f"out_dir must be a folder path (text), got {self.out_dir!r}")
        for name in ("compile", "deterministic"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false, got {getattr(self, name)!r}")
        for name, allowed in (("compile_mode", COMPILE_MODES), ("precision", PRECISIONS),
                              ("memory_format", MEMORY_FORMATS)):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        if not isinstance(self.fallback, list) or not all(isinstance(f, str) for f in self.fallback):
            raise ConfigError(f"fallback must be a list of dataset specs, got {self.fallback!r}")

    # --- TOML ---------------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, doc: dict[str, Any], source: str = "config") -> TrainConfig:
        if not isinstance(doc, dict):
            raise ConfigError(f"{source}: expected a table")
        unknown = sorted(set(doc) - {"description", "data", "model", "training", "run"})
        if unknown:
            raise ConfigError(f"{source}: unknown section(s) {', '.join(unknown)}; "
                              "allowed: description, [data], [model], [training]")
        kwargs: dict[str, Any] = {}
        data = _table(doc, "data", source)
        model = dict(_table(doc, "model", source))
        training = _table(doc, "training", source)
        for key in data:
            if key not in ("dataset", "test_fraction", "test_count", "fallback"):
                raise ConfigError(f"{source}: unknown key [data].{key}; allowed: dataset, test_fraction, test_count, "
                                  "fallback")
        kwargs.update(data)
        if "family" in model:
            kwargs["family"] = model.pop("family")
        kwargs["hparams"] = model
        for key in training:
            if key not in cls._TRAINING_KEYS:
                raise ConfigError(f"{source}: unknown key [training].{key}; allowed: "
                                  f"{', '.join(cls._TRAINING_KEYS)}")
        kwargs.update(training)
        if "description" in doc:
            kwargs["description"] = doc["description"]
        try:
            return cls(**kwargs)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read ({exc})") from None
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML ({exc})") from None
        except RecursionError:
            raise ConfigError(f"{path}: not valid TOML (nested too deeply)") from None
        return cls.from_dict(doc, str(path))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        out: dict[str, Any] = {}
        if self.description:
            out["description"] = self.description
        out["data"] = {"dataset": self.dataset, "test_fraction": self.test_fraction}
        if self.test_count:
            out["data"]["test_count"] = self.test_count
        if self.fallback:
            out["data"]["fallback"] = list(self.fallback)
        out["model"] = {"family": self.family, **self.hparams}
        out["training"] = {k: d[k] for k in self._TRAINING_KEYS if d[k] is not None}
        return out

    def to_toml(self) -> str:
        return dumps_toml(self.to_dict())

    def replace(self, **changes: Any) -> TrainConfig:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values["hparams"] = dict(self.hparams)
        values.update(changes)
        return TrainConfig(**values)


def _table(doc: dict[str, Any], name: str, source: str) -> dict[str, Any]:
    value = doc.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{source}: [{name}] must be a table")
    return value


def _is_plain_value(value: Any) -> bool:
    """What a hyperparameter may hold: a scalar TOML value or a flat list of them (always writable back)."""
    scalar = (bool, int, float, str)
    return isinstance(value, scalar) or (isinstance(value, list | tuple) and all(isinstance(v, scalar) for v in value))


def _toml_string(text: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters (DEL included) escaped."""
    out = []
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _toml_key(key: str) -> str:
    return key if key and all(c.isascii() and (c.isalnum() or c in "_-") for c in key) else _toml_string(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise ConfigError(f"cannot write {value!r} to TOML")


def dumps_toml(doc: dict[str, Any]) -> str:
    """Write a two-level document (top-level scalars, then tables) as TOML."""
    lines = [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in doc.items() if not isinstance(v, dict)]
    for name, table in doc.items():
        if isinstance(table, dict):
            lines.append(f"\n[{_toml_key(name)}]")
            lines.extend(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in table.items())
    return "\n".join(lines).lstrip("\n") + "\n"
