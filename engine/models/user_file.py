"""A model from the user's own Python file, wrapped into the one model contract (see docs/your-model.md).

The file runs only when the user names it (`load_model_file`: the CLI's --model-file, the app's Open dialog or its
"run this file?" answer); a checkpoint records the file's path, class name and SHA-256, never its code. The wrapped
class subclasses the chosen engine objective (AE, VAE, β-VAE, capacity, β-TCVAE, FactorVAE), so the built-in loss
code runs on the user's encoder and decoder; a class with its own `loss` keeps it.
"""

from __future__ import annotations

import hashlib
import inspect
import re
import sys
import traceback
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import objectives as obj
from ..errors import ConfigError
from ..rng import routed_to_current_stream
from .ae import AE
from .base import COMMON_HPARAMS, HyperParam, LatentCode, LossOutput, ModelBase, register
from .beta_tcvae import BetaTCVAE
from .beta_vae import BetaVAE
from .capacity_vae import CapacityVAE
from .common import EncoderDecoderModel
from .factor_vae import FactorVAE
from .vae import VAE

CONTRACT = (
    "A model file defines a torch.nn.Module subclass with an int attribute `latent_dim`, `encode(x, y=None)` "
    "returning (mean, logvar) — each B×latent_dim, logvar None for a deterministic code — and `decode(z, y=None)` "
    "returning logits (Bernoulli likelihood) or an image (Gaussian) of shape B×C×H×W, for images x (B×C×H×W floats "
    "in [0, 1]). Optional: HYPERPARAMS = {name: default} (passed to __init__ as keywords, with shape=(C, H, W) and "
    "num_classes when __init__ takes them); `num_classes` for a conditional model (y = int64 class labels); and either "
    "`loss(x, y, step)` returning a dict with a \"total\" entry (other entries are logged as terms) or "
    "objective = one of ae, vae, beta-vae, capacity-vae, beta-tcvae, factor-vae (default vae). See docs/your-model.md."
)

OBJECTIVES: dict[str, type[ModelBase]] = {"ae": AE, "vae": VAE, "beta-vae": BetaVAE, "capacity-vae": CapacityVAE,
                                          "beta-tcvae": BetaTCVAE, "factor-vae": FactorVAE}
OBJECTIVE_ALIASES = {"capacity": "capacity-vae", "β-vae": "beta-vae", "β-tcvae": "beta-tcvae",
                     "factorvae": "factor-vae"}
OWN_LOSS = "own loss"
_LIKELIHOOD = {h.name: h for h in COMMON_HPARAMS}


class UserModelError(ConfigError):
    """A problem in the user's model file: `where` is its file:line, the message explains the contract."""

    def __init__(self, message: str, where: str = "") -> None:
        self.where = where
        super().__init__(f"{where + ': ' if where else ''}{message}\n\n{CONTRACT}")


@dataclass(frozen=True)
class ModelFileSource:
    """Which file and class a user family came from, and the SHA-256 of the file's bytes when it was run."""

    path: str
    class_name: str
    sha256: str

    def to_meta(self) -> dict[str, str]:
        return {"path": self.path, "class": self.class_name, "sha256": self.sha256}


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def parse_model_ref(text: str) -> tuple[Path, str | None]:
    """'my_vae.py' or 'my_vae.py:ClassName' → (path, class name or None)."""
    head, sep, tail = str(text).rpartition(":")
    if sep and head and re.fullmatch(r"[A-Za-z_]\w*", tail):
        return Path(head).expanduser(), tail
    return Path(text).expanduser(), None


def _where(path: Path, exc: BaseException) -> str:
    """'path:line' of the deepest frame of `exc`'s traceback inside the user's file (its own line for SyntaxError)."""
    if isinstance(exc, SyntaxError) and exc.lineno:
        return f"{path}:{exc.lineno}"
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if Path(frame.filename) == path:
            line = frame.lineno
    return f"{path}:{line}" if line else str(path)


def _definition_line(path: Path, function: Any) -> str:
    try:
        return f"{path}:{inspect.getsourcelines(function)[1]}"
    except (OSError, TypeError):
        return str(path)


def _run_file(path: Path, sha256: str) -> types.ModuleType:
    """Execute the file as a fresh module (its own name per content hash), turning any error into file:line."""
    try:
        source = path.read_bytes()
    except OSError as exc:
        raise UserModelError(f"cannot read the model file ({exc.strerror or exc})", str(path)) from None
    stem = re.sub(r"\W", "_", path.stem)
    name = f"latent_explorer_user_{stem}_{sha256[:12]}"
    module = types.ModuleType(name)
    module.__file__ = str(path)
    sys.modules[name] = module  # dataclasses and typing look their module up while the file runs
    try:
        exec(compile(source, str(path), "exec"), module.__dict__)  # noqa: S102  (the user named this file to run it)
    except Exception as exc:
        sys.modules.pop(name, None)
        raise UserModelError(f"the file failed to import ({type(exc).__name__}: {exc})", _where(path, exc)) from None
    return module


def _choose_class(path: Path, module: types.ModuleType, class_name: str | None) -> type[nn.Module]:
    candidates = {n: c for n, c in vars(module).items() if isinstance(c, type) and issubclass(c, nn.Module)
                  and c.__module__ == module.__name__ and callable(getattr(c, "encode", None))
                  and callable(getattr(c, "decode", None))}
    if class_name is not None:
        found = vars(module).get(class_name)
        if not (isinstance(found, type) and issubclass(found, nn.Module)):
            listed = ", ".join(candidates) or "none"
            raise UserModelError(f"no torch.nn.Module class {class_name!r} in the file (model classes: {listed})",
                                 str(path))
        for method in ("encode", "decode"):
            if not callable(getattr(found, method, None)):
                raise UserModelError(f"class {class_name} has no {method}() method", _definition_line(path, found))
        return found
    if not candidates:
        raise UserModelError("the file defines no torch.nn.Module subclass with encode() and decode()", str(path))
    if len(candidates) > 1:
        raise UserModelError(f"the file defines several model classes ({', '.join(candidates)}): name one as "
                             f"{path.name}:ClassName", str(path))
    return next(iter(candidates.values()))


def _user_hparams(path: Path, cls: type) -> tuple[HyperParam, ...]:
    declared = getattr(cls, "HYPERPARAMS", {}) or {}
    where = _definition_line(path, cls)
    if not isinstance(declared, dict):
        raise UserModelError(f"{cls.__name__}.HYPERPARAMS must be a dict name → default, got "
                             f"{type(declared).__name__}", where)
    params = []
    for name, default in declared.items():
        if not (isinstance(name, str) and name.isidentifier()):
            raise UserModelError(f"HYPERPARAMS names must be identifiers, got {name!r}", where)
        help_text = f"{name} of {cls.__name__} (HYPERPARAMS in {path.name})."
        if isinstance(default, tuple | list) and default and all(isinstance(v, str) for v in default):
            params.append(HyperParam(name, str, default[0], choices=tuple(default), help=help_text))
            continue
        if not isinstance(default, bool | int | float):
            raise UserModelError(f"HYPERPARAMS[{name!r}] must default to a number, true/false, or a tuple of "
                                 f"choices (text, the first is the default), got {default!r}", where)
        if name == "latent_dim":
            params.append(HyperParam("latent_dim", int, int(default), 1, 512, "Dimension D of the latent code "
                                     f"(from {cls.__name__}.HYPERPARAMS)."))
        else:
            params.append(HyperParam(name, type(default), default, help=help_text))
    return tuple(params)


def _objective(path: Path, cls: type) -> str:
    own_loss = callable(getattr(cls, "loss", None))
    chosen = getattr(cls, "objective", None)
    if chosen is None:
        return OWN_LOSS if own_loss else "vae"
    key = OBJECTIVE_ALIASES.get(str(chosen).lower(), str(chosen).lower())
    if key not in OBJECTIVES:
        raise UserModelError(f"objective {chosen!r} is not one of {', '.join(OBJECTIVES)}",
                             _definition_line(path, cls))
    if own_loss:
        raise UserModelError(f"{cls.__name__} has both its own loss() and objective = {chosen!r}: keep one",
                             _definition_line(path, cls))
    return key


def _takes(cls: type, name: str) -> bool:
    """Whether the class's __init__ names this parameter (a bare **kwargs does not count)."""
    try:
        return name in inspect.signature(cls.__init__).parameters
    except (TypeError, ValueError):
        return False


def load_model_file(ref: str | Path, class_name: str | None = None, family: str | None = None) -> type[ModelBase]:
    """Run the user's file (the caller's explicit choice), wrap its model class and register it as a family.

    `ref` is 'path.py' or 'path.py:ClassName'; `family` names the registry entry (a checkpoint's family, so a moved
    file still opens the checkpoint); by default '<file stem>.<ClassName>'."""
    path, named = parse_model_ref(str(ref))
    class_name = class_name or named
    path = path.resolve()
    if not path.is_file():
        raise UserModelError("no such model file", str(path))
    sha = file_sha256(path)
    module = _run_file(path, sha)
    user_cls = _choose_class(path, module, class_name)
    objective = _objective(path, user_cls)
    own = _user_hparams(path, user_cls)
    names = {h.name for h in own}
    base: type[ModelBase] = OwnLossModel if objective == OWN_LOSS else OBJECTIVES[objective]
    extra = tuple(h for h in (base.hparams_spec if objective != OWN_LOSS else ()) if h.name not in names)
    clash = names & ({h.name for h in (base.hparams_spec if objective != OWN_LOSS else ())} | {"likelihood", "sigma"})
    clash -= {"latent_dim"}
    if clash:
        raise UserModelError(f"HYPERPARAMS {', '.join(sorted(clash))} clash with the {objective} objective's own "
                             "hyperparameters: rename them", _definition_line(path, user_cls))
    likelihood = getattr(user_cls, "likelihood", "bernoulli")
    spec = own + extra + (
        HyperParam("likelihood", str, likelihood if likelihood in ("bernoulli", "gaussian") else "bernoulli",
                   choices=("bernoulli", "gaussian"), help=_LIKELIHOOD["likelihood"].help),
        _LIKELIHOOD["sigma"])
    source = ModelFileSource(str(path), user_cls.__name__, sha)
    family = family or f"{path.stem}.{user_cls.__name__}"
    from .base import families

    if "." not in family or not is_user_family(families().get(family, OwnLossModel)):
        raise UserModelError(f"a model file cannot take the name {family!r} (a built-in family's, or one without "
                             "a dot); a crafted checkpoint may say so", str(path))
    conditional = hasattr(user_cls, "num_classes") or _takes(user_cls, "num_classes")
    variational = objective not in ("ae", OWN_LOSS)
    attrs = {
        "family": family, "title": f"{user_cls.__name__} from {path.name}",
        "formula": base.formula if objective != OWN_LOSS else f"L = {user_cls.__name__}.loss(x, y, step)['total']",
        "hparams_spec": spec, "user_class": user_cls, "source": source, "objective": objective,
        "is_conditional": conditional, "is_variational": variational, "can_sample": variational,
        "has_importance_weights": variational, "__module__": __name__,
    }
    bases = (OwnLossModel,) if objective == OWN_LOSS else (UserModuleMixin, base)
    wrapped = type(f"UserModel_{user_cls.__name__}", bases, attrs)
    return register(wrapped)


STARTER = Path(__file__).resolve().parents[2] / "resources" / "templates" / "starter_model.py"


def write_starter(path: str | Path, overwrite: bool = False) -> Path:
    """Write the commented starter model (a small conv VAE for 64×64 images that trains as it is) to `path`."""
    path = Path(path)
    if path.suffix != ".py":
        raise ConfigError(f"{path}: a model file must end in .py")
    if path.exists() and not overwrite:
        raise ConfigError(f"{path} exists already (give --force to overwrite it)")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(STARTER.read_text(encoding="utf-8").replace("THIS_FILE.py", path.name), encoding="utf-8")
    return path


def user_sources() -> tuple[tuple[str, str, str, str], ...]:
    """(path, class, family, SHA-256) of every user file run in this process, for worker processes of a sweep."""
    from .base import families

    return tuple((c.source.path, c.source.class_name, c.family, c.source.sha256) for c in families().values()
                 if is_user_family(c))


def rerun_sources(sources: tuple[tuple[str, str, str, str], ...]) -> None:
    """In a worker process: run the files its parent ran (the user chose them), refusing any that changed since."""
    for path, class_name, family, sha256 in sources:
        if file_sha256(path) != sha256:
            raise UserModelError("the model file changed while the sweep was starting; start it again", path)
        load_model_file(path, class_name, family)


def is_user_family(cls: type) -> bool:
    return isinstance(cls, type) and issubclass(cls, UserModuleMixin)


class UserModuleMixin(EncoderDecoderModel):
    """Replaces the backbone networks by the user's module: `encode` → `posterior`/`code`, `decode` → `decode`.

    Placed first in the MRO of a class that also subclasses an engine objective, so that objective's `loss`,
    `encode`, `sample` and importance weights run unchanged on the user's networks."""

    user_class: type[nn.Module]
    source: ModelFileSource
    objective: str = OWN_LOSS

    @classmethod
    def all_hparams(cls) -> tuple[HyperParam, ...]:
        return tuple(cls.hparams_spec)  # no backbone settings: the user's module is the network

    def __init__(self, shape: tuple[int, int, int], num_classes: int = 0, **hparams: Any) -> None:
        ModelBase.__init__(self, shape, num_classes, **hparams)  # not the backbone builders of the objective
        kwargs = {h.name: self.hparams[h.name] for h in self.hparams_spec
                  if h.name in getattr(self.user_class, "HYPERPARAMS", {})}
        if _takes(self.user_class, "shape"):
            kwargs["shape"] = self.data_shape
        if self.is_conditional and _takes(self.user_class, "num_classes"):
            kwargs["num_classes"] = self.num_classes
        path = Path(self.source.path)
        try:
            self.net = self.user_class(**kwargs)
        except Exception as exc:
            raise UserModelError(f"{self.user_class.__name__}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())}) "
                                 f"failed ({type(exc).__name__}: {exc})", _where(path, exc)) from None
        dim = getattr(self.net, "latent_dim", None)
        if not isinstance(dim, int) or isinstance(dim, bool) or dim < 1:
            raise UserModelError(f"{self.user_class.__name__}.latent_dim must be a positive int, got {dim!r}",
                                 _definition_line(path, self.user_class))
        self._latent_dim = dim
        if self.is_conditional and hasattr(self.user_class, "num_classes") and not _takes(self.user_class,
                                                                                           "num_classes"):
            declared = int(self.user_class.num_classes)
            if declared != self.num_classes:
                raise UserModelError(f"{self.user_class.__name__}.num_classes is {declared} but the dataset has "
                                     f"{self.num_classes} classes", _definition_line(path, self.user_class))
        self.init_objective_parts()
        self._check_contract()

    @property
    def latent_dim(self) -> int:
        return self._latent_dim

    def encoder_dtype(self) -> torch.dtype:
        return next(self.net.parameters(), torch.zeros(())).dtype

    # --- calls into the user's code: errors become file:line --------------------------------------------------
    def _call(self, method: str, *args: Any) -> Any:
        try:
            with routed_to_current_stream():  # the file's torch.randn… draw from the training session's stream
                return getattr(self.net, method)(*args)
        except (UserModelError, torch.OutOfMemoryError):
            raise
        except Exception as exc:
            raise UserModelError(f"{self.user_class.__name__}.{method}() raised {type(exc).__name__}: {exc}",
                                 _where(Path(self.source.path), exc)) from None

    def _labels(self, y: torch.Tensor | None) -> torch.Tensor | None:
        return y if self.is_conditional else None

    def _encode(self, x: torch.Tensor, y: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        out = self._call("encode", x, self._labels(y))
        if not (isinstance(out, tuple | list) and len(out) == 2 and isinstance(out[0], torch.Tensor)
                and (out[1] is None or isinstance(out[1], torch.Tensor))):
            raise UserModelError(f"encode() must return (mean, logvar or None), got {type(out).__name__}",
                                 _definition_line(Path(self.source.path), self.net.encode))
        mean, logvar = out
        expected = (x.shape[0], self.latent_dim)
        for name, value in (("mean", mean), ("logvar", logvar)):
            if value is not None and tuple(value.shape) != expected:
                raise UserModelError(f"encode() returned {name} of shape {tuple(value.shape)}, expected B×latent_dim "
                                     f"= {expected}", _definition_line(Path(self.source.path), self.net.encode))
        return mean, logvar

    def posterior(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        mean, logvar = self._encode(x, y)
        if logvar is None:
            raise UserModelError(f"the {self.objective} objective needs encode() to return a logvar, got None",
                                 _definition_line(Path(self.source.path), self.net.encode))
        return mean, logvar

    def code(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self._encode(x, y)[0]

    def features(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        raise ConfigError(f"{self.family} has no backbone features (its network is the user's module)")

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        out = self._call("decode", z, self._labels(y))
        expected = (z.shape[0], *self.data_shape)
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != expected:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise UserModelError(f"decode() returned {got}, expected B×C×H×W = {expected}",
                                 _definition_line(Path(self.source.path), self.net.decode))
        return out

    def explain_non_finite(self) -> str:
        return (f" The model is {self.user_class.__name__} from {self.source.path}: check that encode() and decode() "
                "stay finite (e.g. clamp logvar) and that decode() returns logits for the Bernoulli likelihood.")

    # --- the contract, checked once on a tiny batch before any run folder is written -------------------------
    def _check_contract(self) -> None:
        path = Path(self.source.path)
        was_training = self.training
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            self.eval()
            try:
                x = torch.rand(2, *self.data_shape)
                y = torch.arange(2) % max(1, self.num_classes) if self.is_conditional else None
                mean, logvar = self._encode(x, y)
                decoded = self.decode(mean, y)
                for name, value, where in (("encode() mean", mean, self.net.encode),
                                           ("encode() logvar", logvar, self.net.encode),
                                           ("decode()", decoded, self.net.decode)):
                    if value is not None and not bool(torch.isfinite(value).all()):
                        raise UserModelError(f"{name} is not finite (NaN or inf) on random images",
                                             _definition_line(path, where))
                if self.objective not in ("ae", OWN_LOSS):
                    self.posterior(x, y)
                if self.objective == OWN_LOSS:
                    self.train()
                    self.loss(x, y, 0)
            finally:
                self.train(was_training)
        if self.objective == OWN_LOSS:
            self.is_variational = self.can_sample = logvar is not None  # what encode() returns decides


class OwnLossModel(UserModuleMixin):
    """A user model with its own `loss(x, y, step) -> dict` ("total" is minimised, the rest are logged)."""

    is_variational = False

    def encode(self, x, y=None):
        mean, logvar = self._encode(x, y)
        if logvar is None:
            return LatentCode(mean)
        return LatentCode(mean, obj.reparameterize(mean, logvar) if self.training else mean, logvar=logvar)

    def loss(self, x, y=None, step=0):
        out = self._call("loss", x, self._labels(y), step)
        where = _definition_line(Path(self.source.path), self.net.loss)
        if not isinstance(out, dict) or "total" not in out:
            got = f"a dict with keys {sorted(map(str, out))}" if isinstance(out, dict) else type(out).__name__
            raise UserModelError(f"loss() must return a dict with a \"total\" entry, got {got}", where)
        total = out["total"]
        if not (isinstance(total, torch.Tensor) and total.numel() == 1 and total.is_floating_point()):
            raise UserModelError(f"loss()[\"total\"] must be a scalar float tensor, got {total!r:.80}", where)
        terms: dict[str, torch.Tensor] = {}
        for name, value in out.items():
            if isinstance(value, torch.Tensor) and value.numel() == 1:
                terms[str(name)] = value.detach().reshape(())
            elif isinstance(value, int | float) and not isinstance(value, bool):
                terms[str(name)] = torch.tensor(float(value), device=total.device)
        return LossOutput(total.reshape(()), terms)

    def sample(self, n, y=None):
        if not self.can_sample:
            return super().sample(n, y)
        y = self.default_labels(n) if y is None else y
        return self.decode_images(torch.randn(n, self.latent_dim, device=self.device), y)
