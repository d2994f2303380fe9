"""Checkpoints: ONE format — a safetensors file whose metadata holds a JSON header; atomic writes, safe loads.

Layout: tensors `model.<name>` (the state_dict), `optim.<optimizer>.<param index>.<state key>` (optimiser state),
`rng.<device>` (generator states for exact resume). The header (`__metadata__["latent_explorer"]`, JSON) holds
the format name and version, family + hyperparameters, backbone, dataset spec/shape/classes, the run's config
TOML, step/epoch, the metrics history and the optimisers' non-tensor structure. Nothing is ever unpickled.
"""

from __future__ import annotations

import json
import math
import os
import struct
import threading
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .config import TrainConfig
from .errors import CheckpointError, ConfigError

FORMAT_NAME = "latent-explorer-checkpoint"
FORMAT_VERSION = 1
META_KEY = "latent_explorer"
MAX_HEADER_BYTES = 256 * 1024 * 1024

_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
                "BOOL": 1, "U16": 2, "U32": 4, "U64": 8, "F8_E4M3": 1, "F8_E5M2": 1}


@dataclass
class LoadedCheckpoint:
    """A checkpoint opened for exploration or evaluation: the model is built, loaded and in eval mode."""

    model: Any  # engine.models.ModelBase
    config: TrainConfig
    meta: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    step: int = 0
    epoch: int = 0
    path: str = ""
    warnings: list[str] = field(default_factory=list)

    @property
    def dataset_spec(self) -> str:
        return str(self.meta.get("dataset", {}).get("spec", self.config.dataset))


class ModelFileRequired(CheckpointError):
    """The checkpoint's model comes from a user's Python file that has not been run here: running it is the user's
    explicit choice (the CLI's --model-file, the app's question), never the checkpoint's."""

    def __init__(self, checkpoint: str | Path, family: str, source: dict[str, str]) -> None:
        self.family = family
        self.model_path = source["path"]
        self.class_name = source["class"]
        self.sha256 = source["sha256"]
        super().__init__(f"{checkpoint}: this checkpoint was trained with the model {self.class_name} in "
                         f"{self.model_path}; opening it runs no code by itself — give --model-file "
                         f"{self.model_path} to run that file (only if you trust it)")


def model_source_meta(model: Any) -> dict[str, Any]:
    """The header fields naming a user model's file, class and SHA-256 (never its code); none for built-ins."""
    source = getattr(type(model), "source", None)
    return {"model_file": source.to_meta()} if source is not None else {}


def registered_model_fits(meta: dict[str, Any]) -> bool:
    """Whether the checkpoint's user family was already run in this process (by the user's choice) from the file it
    names or from one with its SHA-256: then opening it runs no new code. True for built-in checkpoints."""
    from .models import families
    from .models.user_file import is_user_family

    source = meta.get("model_file")
    if source is None:
        return True
    cls = families().get(meta["family"])
    return is_user_family(cls) and (cls.source.sha256 == source["sha256"] or cls.source.path == source["path"])


def resolve_model_file(path: str | Path, meta: dict[str, Any], model_file: str | Path | None = None) -> list[str]:
    """Make the checkpoint's family buildable, running a user's file only when `model_file` is given.

    Without `model_file`, a user family this process already ran from the recorded file (or from one with the recorded
    SHA-256) is used; anything else raises ModelFileRequired. Returns warnings (a changed file, an unneeded
    --model-file)."""
    from .models import families
    from .models.user_file import load_model_file, parse_model_ref

    source = meta.get("model_file")
    if source is None:
        return [] if model_file is None else [f"--model-file {model_file} ignored: {path} holds a built-in model "
                                              f"({meta['family']})"]
    if model_file is None:
        if not registered_model_fits(meta):
            raise ModelFileRequired(path, meta["family"], source)
        current = families()[meta["family"]].source
    else:
        _, named = parse_model_ref(str(model_file))
        current = load_model_file(model_file, named or source["class"], family=meta["family"]).source
    if current.sha256 != source["sha256"]:
        return [f"{current.path} has changed since {path} was trained (SHA-256 {source['sha256'][:12]}… then, "
                f"{current.sha256[:12]}… now): the weights may not fit it"]
    return []


# --- writing ---------------------------------------------------------------------------------------------
def write_checkpoint(path: str | Path, tensors: dict[str, torch.Tensor], header: dict[str, Any],
                     float_dtype: torch.dtype | None = None) -> Path:
    """Atomically write tensors + header: temp file in the same folder, flush, fsync, rename, fsync the folder.

    `float_dtype` (e.g. torch.float16) stores every floating tensor in that type (half the bytes); the header
    records it as `stored_dtype` and the loaders cast back to the model's own type (see `shareable_copy`)."""
    from safetensors.torch import save

    path = Path(path)
    header = {"format": FORMAT_NAME, "version": FORMAT_VERSION, **header}
    cpu = {name: t.detach().to("cpu").contiguous().clone() for name, t in tensors.items()}
    if float_dtype is not None:
        cpu = {name: t.to(float_dtype) if t.is_floating_point() else t for name, t in cpu.items()}
        header["stored_dtype"] = str(float_dtype).removeprefix("torch.")
    for name, t in cpu.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise CheckpointError(f"{path}: refusing to write non-finite values in {name}")
    try:
        payload = save(cpu, metadata={META_KEY: json.dumps(header, allow_nan=False)})
    except ValueError as exc:
        raise CheckpointError(f"{path}: cannot encode the checkpoint ({exc})") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def shareable_copy(source: str | Path, target: str | Path, float_dtype: torch.dtype = torch.float16) -> Path:
    """A small copy of a checkpoint to share (resources/examples): the model's weights stored as `float_dtype`,
    header and history kept, no optimiser or RNG state (continuing it starts a fresh optimiser)."""
    meta, tensors = read_checkpoint(source)
    header = {k: v for k, v in meta.items() if k not in ("format", "version", "optimizers", "stored_dtype")}
    weights = {name: t for name, t in tensors.items() if name.startswith("model.")}
    return write_checkpoint(target, weights, header, float_dtype=float_dtype)


def link_or_copy(source: Path, target: Path) -> Path:
    """Make `target` (e.g. last.safetensors) an atomic duplicate of `source` (hard link when the disk allows)."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        try:
            os.link(source, tmp)
        except OSError:
            with open(source, "rb") as src, open(tmp, "wb") as dst:
                dst.write(src.read())
                dst.flush()
                os.fsync(dst.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)
    return target


def remove_stale_temp_files(folder: Path) -> list[Path]:
    """Delete `.NAME.<pid>.<thread>.tmp` files left by writers that died (SIGKILL, power loss); a live writer's
    temp file (its process still exists) is left alone."""
    removed = []
    for tmp in folder.glob(".*.safetensors.*.*.tmp"):
        try:
            pid = int(tmp.name.rsplit(".", 3)[1])
        except ValueError:
            continue
        if pid == os.getpid() or _process_exists(pid):
            continue
        try:
            tmp.unlink()
            removed.append(tmp)
        except OSError:
            pass
    return removed


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    return True


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# --- reading ---------------------------------------------------------------------------------------------
def read_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> tuple[dict[str, Any],
                                                                                  dict[str, torch.Tensor]]:
    """(header, tensors) of a checkpoint, validated against the file size before anything is allocated."""
    from safetensors.torch import load

    from .examples import resolve_checkpoint_path

    path = resolve_checkpoint_path(path)
    meta, payload = _read_validated(path, with_payload=True)
    try:
        tensors = load(payload)
    except Exception as exc:  # safetensors raises its own error types for malformed payloads
        raise CheckpointError(f"{path}: corrupt tensor data ({exc})") from None
    if str(device) != "cpu":
        tensors = {k: v.to(device) for k, v in tensors.items()}
    return meta, tensors


def read_meta(path: str | Path) -> dict[str, Any]:
    """The validated header alone (no tensor is read): what the app checks before opening a user model's checkpoint."""
    from .examples import resolve_checkpoint_path

    return _read_validated(resolve_checkpoint_path(path), with_payload=False)[0]


def _read_validated(path: Path, with_payload: bool) -> tuple[dict[str, Any], bytes]:
    """(header, the whole file's bytes or b"") after checking the header against the file size."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot open ({exc.strerror or exc})") from None
    if not path.is_file():
        raise CheckpointError(f"{path}: not a file")
    if size < 8:
        raise CheckpointError(f"{path}: not a checkpoint (only {size} bytes)")
    try:
        with open(path, "rb") as handle:
            (header_len,) = struct.unpack("<Q", handle.read(8))
            if header_len < 2 or header_len > min(MAX_HEADER_BYTES, size - 8):
                raise CheckpointError(f"{path}: not a Latent Explorer checkpoint (header length {header_len} does "
                                      f"not fit a file of {size} bytes; truncated or foreign file)")
            raw_header = handle.read(header_len)
            header_entries = _parse_safetensors_header(path, raw_header)
            data_len = size - 8 - header_len
            _check_offsets(path, header_entries, data_len)
            meta = _parse_meta(path, header_entries.get("__metadata__"))
            payload = b""
            if with_payload:
                handle.seek(0)
                payload = handle.read()
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return meta, payload


def _parse_safetensors_header(path: Path, raw: bytes) -> dict[str, Any]:
    try:
        entries = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise CheckpointError(f"{path}: not a Latent Explorer checkpoint (unreadable safetensors header)") from None
    if not isinstance(entries, dict):
        raise CheckpointError(f"{path}: not a Latent Explorer checkpoint (header is not a table)")
    return entries


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_offsets(path: Path, entries: dict[str, Any], data_len: int) -> None:
    """Every tensor's byte range lies inside the data section, matches its dtype × shape, and the ranges tile
    the data section exactly (no overlap, no gap), so a lying header is refused before anything is allocated."""
    ranges: list[tuple[int, int, str]] = []
    for name, info in entries.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
            begin, end = offsets
        except (KeyError, TypeError, ValueError):
            raise CheckpointError(f"{path}: malformed entry for tensor {name!r}") from None
        if not (isinstance(dtype, str) and dtype in _DTYPE_BYTES and isinstance(shape, list)
                and all(_is_count(s) for s in shape) and isinstance(offsets, list)):
            raise CheckpointError(f"{path}: malformed entry for tensor {name!r} (dtype {dtype!r}, shape {shape!r})")
        if not (_is_count(begin) and _is_count(end) and begin <= end <= data_len):
            raise CheckpointError(f"{path}: truncated or corrupt (tensor {name!r} lies outside the file)")
        nbytes = _DTYPE_BYTES[dtype] * math.prod(shape)
        if end - begin != nbytes:
            raise CheckpointError(f"{path}: corrupt (tensor {name!r} has {end - begin} bytes, expected {nbytes})")
        ranges.append((begin, end, name))
    position = 0
    for begin, end, name in sorted(ranges):
        if begin != position:
            problem = "overlaps another tensor" if begin < position else "leaves a gap before it"
            raise CheckpointError(f"{path}: corrupt (tensor {name!r} {problem} in the data section)")
        position = end
    if position != data_len:
        raise CheckpointError(f"{path}: corrupt ({data_len - position} bytes after the last tensor)")


def _parse_meta(path: Path, metadata: Any) -> dict[str, Any]:
    if not isinstance(metadata, dict) or META_KEY not in metadata:
        raise CheckpointError(f"{path}: a safetensors file, but not a Latent Explorer checkpoint (no header)")
    try:
        meta = json.loads(metadata[META_KEY])
    except (TypeError, json.JSONDecodeError, RecursionError):
        raise CheckpointError(f"{path}: the checkpoint header is not valid JSON") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise CheckpointError(f"{path}: not a Latent Explorer checkpoint (wrong format name)")
    version = meta.get("version")
    if not isinstance(version, int) or version > FORMAT_VERSION or version < 1:
        raise CheckpointError(f"{path}: checkpoint format version {version!r} is not supported "
                              f"(this program reads 1…{FORMAT_VERSION})")
    for key in ("family", "hparams", "dataset", "config", "step"):
        if key not in meta:
            raise CheckpointError(f"{path}: the checkpoint header lacks {key!r}")
    _check_meta_types(path, meta)
    return meta


_META_TYPES: dict[str, tuple[type, str]] = {
    "family": (str, "a string"), "hparams": (dict, "a table"), "dataset": (dict, "a table"),
    "config": (str, "TOML text"), "history": (list, "a list"), "optimizers": (dict, "a table"),
    "session": (dict, "a table"),
}


def _check_meta_types(path: Path, meta: dict[str, Any]) -> None:
    """The header fields the loaders use have the types they expect (a foreign or edited header → CheckpointError)."""
    for key, (kind, text) in _META_TYPES.items():
        if key in meta and not isinstance(meta[key], kind):
            raise CheckpointError(f"{path}: the checkpoint header's {key!r} must be {text}, got {meta[key]!r:.60}")
    for key in ("step", "epoch"):
        if key in meta and not _is_count(meta[key]):
            raise CheckpointError(f"{path}: the checkpoint header's {key!r} must be a whole number ≥ 0, "
                                  f"got {meta[key]!r:.60}")
    dataset = meta["dataset"]
    shape = dataset.get("shape")
    if not (isinstance(dataset.get("spec"), str) and isinstance(shape, list) and len(shape) == 3
            and all(_is_count(s) and s > 0 for s in shape) and _is_count(dataset.get("num_classes", 0))):
        raise CheckpointError(f"{path}: the checkpoint header's dataset entry is malformed "
                              "(expected spec, a C×H×W shape and a class count)")
    for name, structure in meta.get("optimizers", {}).items():
        if not (isinstance(structure, dict) and isinstance(structure.get("param_groups"), list)
                and isinstance(structure.get("scalars", {}), dict)):
            raise CheckpointError(f"{path}: the checkpoint header's optimiser {name!r} is malformed")
    source = meta.get("model_file")
    if source is not None and not (isinstance(source, dict) and all(isinstance(source.get(k), str) and source[k]
                                                                     for k in ("path", "class", "sha256"))):
        raise CheckpointError(f"{path}: the checkpoint header's model_file entry is malformed (expected path, class "
                              "and sha256)")
    if not all(isinstance(record, dict) for record in meta.get("history", [])):
        raise CheckpointError(f"{path}: the checkpoint header's history holds entries that are not tables")


def config_from_meta(path: str | Path, meta: dict[str, Any]) -> TrainConfig:
    try:
        return TrainConfig.from_dict(tomllib.loads(meta["config"]), f"{path} (stored config)")
    except (tomllib.TOMLDecodeError, TypeError, RecursionError) as exc:
        raise CheckpointError(f"{path}: the stored config is unreadable ({type(exc).__name__}: {exc})") from None
    except ConfigError as exc:
        raise CheckpointError(str(exc)) from None


def build_model(path: str | Path, meta: dict[str, Any], tensors: dict[str, torch.Tensor], device: str | torch.device):
    """The family's model with the stored hyperparameters and weights (strict: every tensor must match)."""
    from .models import create_model

    ds = meta["dataset"]
    try:
        model = create_model(meta["family"], tuple(ds["shape"]), int(ds.get("num_classes", 0)), **meta["hparams"])
    except (ConfigError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{path}: cannot rebuild the model ({exc})") from None
    state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    try:
        model.load_state_dict(state, strict=True)  # copies into the model's own dtype: float16 files upcast here
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise CheckpointError(f"{path}: the weights do not fit the {meta['family']} model ({first})") from None
    return model.to(device)


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu",
                    model_file: str | Path | None = None) -> LoadedCheckpoint:
    """Open a checkpoint for the GUI/CLI: model (eval mode), config, header, history, step, epoch.

    A checkpoint of a user's model needs `model_file` (the user's explicit choice to run it) unless that file, with
    the recorded SHA-256, was already run in this process (ModelFileRequired otherwise)."""
    meta, tensors = read_checkpoint(path, device)
    config = config_from_meta(path, meta)
    warnings = resolve_model_file(path, meta, model_file)
    model = build_model(path, meta, tensors, device)
    model.eval()
    return LoadedCheckpoint(model=model, config=config, meta=meta, history=list(meta.get("history", [])),
                            step=int(meta["step"]), epoch=int(meta.get("epoch", 0)), path=str(path),
                            warnings=warnings)


# --- optimiser state as named tensors + JSON structure ------------------------------------------------------
def flatten_optimizer(prefix: str, optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """An optimiser's state_dict as tensors `<prefix>.<param>.<key>` and a JSON structure for the rest."""
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, entry in state["state"].items():
        for key, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{prefix}.{pid}.{key}"] = value
            else:
                scalars.setdefault(str(pid), {})[key] = value
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in state["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": scalars}


def restore_optimizer(path: str | Path, prefix: str, optimizer: torch.optim.Optimizer, structure: dict,
                      tensors: dict[str, torch.Tensor]) -> None:
    state: dict[int, dict[str, Any]] = {}
    marker = prefix + "."
    for name, value in tensors.items():
        if name.startswith(marker):
            pid, _, key = name[len(marker):].partition(".")
            state.setdefault(int(pid), {})[key] = value
    for pid, entry in structure.get("scalars", {}).items():
        state.setdefault(int(pid), {}).update(entry)
    groups = []
    for g in structure["param_groups"]:
        g = dict(g)
        if isinstance(g.get("betas"), list):
            g["betas"] = tuple(g["betas"])
        groups.append(g)
    try:
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    except (ValueError, KeyError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: the optimiser state does not fit ({exc})") from None
