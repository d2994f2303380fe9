"""The one model contract every autoencoder family implements, and its hyperparameter schema.

Conventions (all families):
- inputs `x` are float images in [0, 1], shape n×C×H×W; labels `y` are int64 class indices (or None);
- `encode(x, y)` → `LatentCode`; `code.mean` is the representation explored and measured (posterior mean,
  or the deterministic code), `code.z` the (reparameterised) sample the decoder sees in training;
- `decode(z, y)` → logits (Bernoulli likelihood) or means (Gaussian likelihood), shape n×C×H×W;
- `loss(x, y, step)` → `LossOutput`: the differentiable total and detached scalar terms (nats per image,
  summed over pixels and averaged over the batch).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from ..errors import ConfigError


@dataclass(frozen=True)
class HyperParam:
    """One hyperparameter of a family: the GUI form and the CLI's --set options are generated from these."""

    name: str
    kind: type  # int, float, bool or str
    default: Any
    low: float | None = None
    high: float | None = None
    help: str = ""
    choices: tuple[str, ...] | None = None
    live: bool = False  # may change mid-training through the session's control
    low_inclusive: bool = True
    high_inclusive: bool = True
    applies_when: tuple[str, str] | None = None  # (other hparam, value): ignored by the family unless it has that value

    def range_text(self) -> str:
        if self.choices:
            return "one of " + ", ".join(self.choices)
        if self.kind is bool:
            return "true or false"
        lo = "-∞" if self.low is None else f"{self.low:g}"
        hi = "∞" if self.high is None else f"{self.high:g}"
        return f"{'[' if self.low_inclusive else '('}{lo}, {hi}{']' if self.high_inclusive else ')'}"

    def coerce(self, value: Any) -> Any:
        """Convert (strings from the CLI/TOML included) and range-check, or raise ConfigError."""
        try:
            if self.kind is bool:
                if isinstance(value, str):
                    low = value.strip().lower()
                    if low not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                        raise ValueError(value)
                    value = low in ("1", "true", "yes", "on")
                elif not isinstance(value, bool | int):
                    raise ValueError(value)
                return bool(value)
            if self.kind is int:
                if isinstance(value, bool):
                    raise ValueError(value)
                if isinstance(value, float) and not value.is_integer():
                    raise ValueError(value)
                value = int(value)
            elif self.kind is float:
                if isinstance(value, bool):
                    raise ValueError(value)
                value = float(value)
                if not math.isfinite(value):
                    raise ValueError(value)
            else:
                value = str(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{self.name} must be {self.kind.__name__} in {self.range_text()}, "
                              f"got {value!r}") from None
        if self.choices and value not in self.choices:
            raise ConfigError(f"{self.name} must be {self.range_text()}, got {value!r}")
        if self.kind in (int, float):
            bad_low = self.low is not None and (value < self.low if self.low_inclusive else value <= self.low)
            bad_high = self.high is not None and (
                value > self.high if self.high_inclusive else value >= self.high)
            if bad_low or bad_high:
                raise ConfigError(f"{self.name} must be in {self.range_text()}, got {value!r}")
        return value


# Hyperparameters every family shares (architecture and likelihood).
COMMON_HPARAMS: tuple[HyperParam, ...] = (
    HyperParam("latent_dim", int, 10, 1, 512,
               "Dimension D of the latent code z ∈ ℝᴰ (prior N(0, I_D) for variational families)."),
    HyperParam("backbone", str, "auto", choices=("auto", "mlp", "conv"),
               help="Encoder/decoder network; auto = conv for images ≥ 28×28, else MLP."),
    HyperParam("hidden", int, 256, 8, 4096, "Width of the hidden layers (MLP units / conv base channels×8)."),
    HyperParam("depth", int, 2, 1, 6, "Number of fully connected hidden layers (MLP; after the conv stack for conv)."),
    HyperParam("conv_blocks", int, 0, 0, 6, "Conv backbone: stride-2 blocks (4×4 kernels), 0 = auto (down to ≤ 4×4)."),
    HyperParam("encoder_pool", int, 1, 1, 8, "Average-pool the encoder's input k×k first (1 = off): i.i.d. pixel "
               "noise falls by k while shapes larger than k pixels keep their contrast; it must divide the image "
               "size."),
    HyperParam("decoder", str, "same", choices=("same", "mlp", "conv", "broadcast"),
               help="Decoder network: same as the backbone, MLP, conv, or the spatial broadcast decoder "
                    "(z tiled over the image with x/y coordinates, a per-pixel MLP; Watters et al. 2019)."),
    HyperParam("broadcast_width", int, 32, 4, 512, "Broadcast decoder: units of its per-pixel hidden layers "
               "(`depth` of them).", applies_when=("decoder", "broadcast")),
    HyperParam("broadcast_resolution", int, 32, 0, 256, "Broadcast decoder: side r of the grid it decodes "
               "(resized bilinearly to the image); 0 = the image size. Its cost grows with r².",
               applies_when=("decoder", "broadcast")),
    HyperParam("likelihood", str, "bernoulli", choices=("bernoulli", "gaussian"),
               help="p(x|z): Bernoulli on logits (BCE) or Gaussian with fixed σ (‖x−x̂‖²/2σ² + const)."),
    HyperParam("sigma", float, 1.0, 0.0, 10.0, "σ of the Gaussian likelihood (fixed variance).",
               low_inclusive=False, applies_when=("likelihood", "gaussian")),
)


class LatentCode:
    """What `encode` returns: the representation and, for variational models, the posterior."""

    __slots__ = ("mean", "z", "logvar", "scale_tril", "extras")

    def __init__(self, mean: torch.Tensor, z: torch.Tensor | None = None, logvar: torch.Tensor | None = None,
                 scale_tril: torch.Tensor | None = None, extras: dict | None = None) -> None:
        self.mean = mean
        self.z = mean if z is None else z
        self.logvar = logvar
        self.scale_tril = scale_tril
        self.extras = extras or {}


@dataclass
class LossOutput:
    """The differentiable total plus detached scalar terms for logging (0-d tensors, nats per image)."""

    total: torch.Tensor
    terms: dict[str, torch.Tensor] = field(default_factory=dict)
    kl_per_dim: torch.Tensor | None = None  # detached, shape D: mean over the batch of KL per latent


class ModelBase(nn.Module):
    """Base class of every family. Subclasses set `family`, `hparams_spec` and implement the abstract parts."""

    family: ClassVar[str] = ""
    title: ClassVar[str] = ""
    formula: ClassVar[str] = ""  # one line: the objective, shown by `models` and as a tooltip
    hparams_spec: ClassVar[tuple[HyperParam, ...]] = ()
    is_variational: ClassVar[bool] = False
    is_conditional: ClassVar[bool] = False
    can_sample: ClassVar[bool] = False
    latent_kind: ClassVar[str] = "continuous"  # or "discrete" (VQ-VAE)
    has_importance_weights: ClassVar[bool] = False  # log_importance_weights is defined (IWAE-k NLL)
    labels_checked: bool = False  # set by a training session whose dataset's labels it validated once

    def __init__(self, shape: tuple[int, int, int], num_classes: int = 0, **hparams: Any) -> None:
        super().__init__()
        self.data_shape = tuple(int(s) for s in shape)
        self.num_classes = int(num_classes)
        self.hparams = self.validate_hparams(hparams)
        if self.is_conditional and self.num_classes < 2:
            raise ConfigError(f"{self.family} needs labelled data (at least 2 classes); "
                              "choose a dataset with labels such as digits or mnist")

    # --- schema --------------------------------------------------------------------------------
    @classmethod
    def all_hparams(cls) -> tuple[HyperParam, ...]:
        own = {h.name for h in cls.hparams_spec}
        return tuple(h for h in COMMON_HPARAMS if h.name not in own) + tuple(cls.hparams_spec)

    @classmethod
    def validate_hparams(cls, given: dict[str, Any]) -> dict[str, Any]:
        """Defaults filled in, every value coerced and range-checked; unknown names are an error."""
        spec = {h.name: h for h in cls.all_hparams()}
        unknown = sorted(set(given) - set(spec))
        if unknown:
            raise ConfigError(f"unknown hyperparameter(s) for {cls.family}: {', '.join(unknown)}; "
                              f"known: {', '.join(spec)}")
        values = {name: h.default for name, h in spec.items()}
        for name, value in given.items():
            values[name] = spec[name].coerce(value)
        cls.check_hparams(values)
        return values

    @classmethod
    def check_hparams(cls, values: dict[str, Any]) -> None:
        """Cross-parameter checks (e.g. k ≤ latent_dim); raise ConfigError."""

    def set_hparam(self, name: str, value: Any) -> None:
        """Change a live hyperparameter between steps (β, C_max, …)."""
        spec = {h.name: h for h in self.all_hparams()}
        if name not in spec:
            raise ConfigError(f"{self.family} has no hyperparameter {name!r}")
        if not spec[name].live:
            raise ConfigError(f"{name} cannot be changed during training for {self.family}")
        self.hparams[name] = spec[name].coerce(value)
        tensor = self.__dict__.get("_live_tensors", {}).get(name)
        if tensor is not None:
            tensor.fill_(float(self.hparams[name]))  # in place: a compiled loss reads the new value, no recompile

    def live_value(self, name: str) -> float | torch.Tensor:
        """A live hyperparameter as a loss reads it: the float, or — while torch.compile traces the loss, after
        `use_live_tensors` — a 0-d tensor holding it, so that a new value is new data and not a recompilation."""
        if torch.compiler.is_compiling():
            tensors = getattr(self, "_live_tensors", None)
            if tensors is not None and name in tensors:
                return tensors[name]
        return self.hparams[name]

    def use_live_tensors(self, device: torch.device) -> None:
        """Hold every live float hyperparameter as a 0-d float32 tensor on `device` too (for a compiled loss)."""
        self._live_tensors = {
            h.name: torch.tensor(float(self.hparams[h.name]), dtype=torch.float32, device=device)
            for h in self.all_hparams() if h.live and h.kind is float}

    @property
    def latent_dim(self) -> int:
        return int(self.hparams["latent_dim"])

    # --- the contract ------------------------------------------------------------------------------
    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> LatentCode:
        raise NotImplementedError

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def loss(self, x: torch.Tensor, y: torch.Tensor | None = None, step: int = 0) -> LossOutput:
        raise NotImplementedError

    def sample(self, n: int, y: torch.Tensor | None = None) -> torch.Tensor:
        """n images in [0, 1] drawn from the model's prior (generative families only)."""
        raise ConfigError(f"{self.family} is not generative: it has no prior to sample from")

    # --- shared helpers ---------------------------------------------------------------------------
    def to_image(self, decoded: torch.Tensor) -> torch.Tensor:
        """Decoder output → image in [0, 1] (sigmoid of logits, or clamped Gaussian mean)."""
        if self.hparams["likelihood"] == "bernoulli":
            return torch.sigmoid(decoded)
        return decoded.clamp(0.0, 1.0)

    def decode_images(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.to_image(self.decode(z, y))

    def reconstruct(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Deterministic reconstruction in [0, 1]: decode the representation (posterior mean)."""
        return self.decode_images(self.encode(x, y).mean, y)

    def main_parameters(self) -> list[nn.Parameter]:
        """Parameters trained by the session's optimiser (families with a second optimiser exclude theirs)."""
        return list(self.parameters())

    def auxiliary_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Optimisers a family owns itself (FactorVAE's discriminator); saved with the checkpoint."""
        return {}

    def after_step(self, x: torch.Tensor, y: torch.Tensor | None, step: int) -> dict[str, float]:
        """Called after each main optimiser step (discriminator updates, code-usage statistics…)."""
        return {}

    def init_objective_parts(self) -> None:
        """Build what the objective owns beside the encoder and decoder (FactorVAE's discriminator); a model from
        the user's file (models/user_file.py) builds its own networks and then calls this."""

    def explain_non_finite(self) -> str:
        """A sentence added when the loss turns NaN/inf (a user's model names its file)."""
        return ""

    def live_values(self, step: int) -> dict[str, float]:
        """The schedule-dependent values in force at `step` (β, C, …), echoed in the metrics (the session adds
        them to the step's terms on the host: putting them in `loss` terms would copy to the device each step)."""
        return {}

    def log_importance_weights(self, x: torch.Tensor, y: torch.Tensor | None = None, k: int = 1) -> torch.Tensor:
        """n×k log p(x, z_i) − log q(z_i|x), z_i ~ q(z|x): logmeanexp over k is the IWAE-k bound on log p(x)."""
        raise ConfigError(f"{self.family} has no tractable importance weights (not a variational family)")

    @property
    def device(self) -> torch.device:
        """Device of the model's parameters (cpu or cuda)."""
        return next(self.parameters()).device

    def describe(self) -> dict[str, Any]:
        return {"family": self.family, "hparams": dict(self.hparams), "shape": list(self.data_shape),
                "num_classes": self.num_classes}


_REGISTRY: dict[str, type[ModelBase]] = {}


def register(cls: type[ModelBase]) -> type[ModelBase]:
    """Class decorator: add a family to the registry under `cls.family`."""
    if not cls.family:
        raise ValueError(f"{cls.__name__} has no family name")
    _REGISTRY[cls.family] = cls
    return cls


def families() -> dict[str, type[ModelBase]]:
    """Registered families, in registration order."""
    return dict(_REGISTRY)


def model_class(family: str) -> type[ModelBase]:
    try:
        return _REGISTRY[family]
    except KeyError:
        if "." in family:  # '<file stem>.<ClassName>': a family from a user's model file that was not run here
            raise ConfigError(f"model {family!r} comes from a Python model file that has not been opened: give it "
                              f"with --model-file PATH (or File → Open model file… in the app)") from None
        raise ConfigError(f"unknown model family {family!r}; known: {', '.join(_REGISTRY)}") from None


def create_model(family: str, shape: tuple[int, int, int], num_classes: int = 0, **hparams: Any) -> ModelBase:
    """Build a family for data of `shape` (C, H, W); hyperparameters are validated with clear errors."""
    return model_class(family)(shape, num_classes, **hparams)
