"""Hypothesis fuzzing of run configs and presets: any TOML document (unknown keys, wrong types, out-of-range or
non-finite values, deep nesting, random text) either loads into a valid TrainConfig whose own TOML loads back
identically, or raises ConfigError naming the file. Derandomised: the same cases every run."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.config import TrainConfig
from engine.errors import ConfigError
from engine.models import families, model_class
from engine.presets import list_presets, load_preset

FUZZ = settings(derandomize=True, max_examples=1000, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
WORKDIR = Path(tempfile.mkdtemp(prefix="fuzz-config-"))

KNOWN = {
    "data": ["dataset", "test_fraction", "fallback"],
    "model": ["family", "latent_dim", "hidden", "depth", "beta", "backbone", "likelihood", "sigma", "k", "rho"],
    "training": list(TrainConfig._TRAINING_KEYS),
}
scalars = st.one_of(
    st.integers(min_value=-2**63, max_value=2**63 - 1), st.integers(min_value=-3, max_value=70_000),
    st.floats(allow_nan=True, allow_infinity=True), st.floats(min_value=-1.0, max_value=2.0),
    st.booleans(), st.text(max_size=12), st.sampled_from(["auto", "cpu", "cuda:0", "digits", "vae", "mlp", "mps"]),
    st.sampled_from(sorted(families())),
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
    st.text("abc_", min_size=1, max_size=4), inner, max_size=2), max_leaves=6)


def toml_key(key: str) -> str:
    return '"' + key.encode("unicode_escape").decode("ascii").replace('"', '\\"') + '"'


def toml_value(value) -> str:
    """A TOML writer for any generated value, inline tables and nan/inf included (the fuzz needs all of TOML)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return toml_key(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


@st.composite
def documents(draw) -> str:
    lines = []
    if draw(st.booleans()):
        lines.append(f"description = {toml_value(draw(values))}")
    sections = draw(st.lists(st.sampled_from(["data", "model", "training", "run", "extra", "model"]), max_size=4,
                             unique=True))
    for section in sections:
        lines.append(f"[{section}]")
        names = draw(st.lists(st.sampled_from(KNOWN.get(section, ["x"])) | st.text("abcdefghij_", min_size=1,
                                                                                    max_size=6),
                              max_size=5, unique=True))
        for name in names:
            lines.append(f"{toml_key(name)} = {toml_value(draw(values))}")
    return "\n".join(lines) + "\n"


def load_or_config_error(text: str) -> TrainConfig | None:
    path = WORKDIR / "run.toml"
    path.write_text(text, encoding="utf-8")
    try:
        return TrainConfig.load(path)
    except ConfigError as exc:
        assert str(path) in str(exc), f"the error does not name the file: {exc}"
        return None


def assert_valid(config: TrainConfig) -> None:
    for name in ("lr", "weight_decay", "test_fraction", "preview_every_s"):
        assert math.isfinite(getattr(config, name)), f"{name} = {getattr(config, name)} was accepted"
    assert config.out_dir is None or isinstance(config.out_dir, str)
    reloaded = load_or_config_error(config.to_toml())
    assert reloaded is not None and reloaded.to_toml() == config.to_toml(), "a config does not survive its own TOML"


@FUZZ
@given(documents())
def test_generated_toml_documents(text):
    config = load_or_config_error(text)
    if config is None:
        return
    assert_valid(config)
    try:
        model_class(config.family).validate_hparams(config.hparams)
    except ConfigError as exc:
        assert str(exc)


@FUZZ
@given(st.text(max_size=200))
def test_arbitrary_text(text):
    config = load_or_config_error(text)
    if config is not None:
        assert_valid(config)


@FUZZ
@given(st.text(max_size=40) | st.sampled_from([n for n, _ in list_presets()] + ["../pyproject", "/etc/passwd",
                                                                               "a\x00b", ".", ""]))
def test_preset_names(name):
    try:
        config = load_preset(name)
    except ConfigError as exc:
        assert "preset" in str(exc) or ".toml" in str(exc)
        return
    assert_valid(config)


def test_non_finite_and_out_of_range_values_name_the_key():
    for line, key in (("lr = nan", "lr"), ("lr = inf", "lr"), ("weight_decay = nan", "weight_decay"),
                      ("preview_every_s = nan", "preview_every_s"), ("out_dir = 5", "out_dir"),
                      ("batch_size = 0", "batch_size"), ("epochs = 1.5", "epochs")):
        path = WORKDIR / "bad.toml"
        path.write_text(f"[training]\n{line}\n", encoding="utf-8")
        try:
            TrainConfig.load(path)
        except ConfigError as exc:
            assert key in str(exc) and str(path) in str(exc)
        else:
            raise AssertionError(f"{line!r} was accepted")


def test_deep_nesting_is_a_config_error():
    path = WORKDIR / "deep.toml"
    path.write_text("description = " + "[" * 50_000 + "]" * 50_000 + "\n", encoding="utf-8")
    try:
        TrainConfig.load(path)
    except ConfigError as exc:
        assert str(path) in str(exc)
    else:
        raise AssertionError("a 50,000-deep array was accepted")
