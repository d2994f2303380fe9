"""TrainConfig TOML: round trip, clear errors for bad files; every preset loads and fits its family."""

from __future__ import annotations

import pytest

from engine.config import TrainConfig
from engine.errors import ConfigError
from engine.models import model_class
from engine.presets import DEFAULT_PRESET, list_presets, load_preset


def test_round_trip(tmp_path):
    config = TrainConfig(dataset="dsprites?subset=100", family="beta-vae", hparams={"beta": 4.0, "latent_dim": 10},
                         max_steps=50, fallback=["digits"], description='a "quoted" run')
    path = tmp_path / "c.toml"
    path.write_text(config.to_toml())
    assert TrainConfig.load(path) == config


@pytest.mark.parametrize("text, message", [
    ("[training\nepochs = 1", "not valid TOML"),
    ("[optimizer]\nlr = 1", "unknown section(s) optimizer"),
    ("[training]\nlearning_rate = 1e-3", "unknown key [training].learning_rate"),
    ("[data]\nset = 'x'", "unknown key [data].set"),
    ("[training]\nepochs = 0", "epochs must be in [1, 100000]"),
    ("[training]\nbatch_size = 'big'", "batch_size must be int"),
    ("[training]\nlr = true", "lr must be float"),
    ("[training]\ndevice = 'tpu'", "device must be auto"),
    ("[training]\nmax_steps = -3", "max_steps must be an integer"),
    ("data = 3", "[data] must be a table"),
    ("[data]\nfallback = 'digits'", "fallback must be a list"),
])
def test_errors_name_the_file_and_the_key(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        TrainConfig.load(path)
    assert message in str(info.value) and "bad.toml" in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        TrainConfig.load(tmp_path / "nope.toml")


def test_every_preset_loads_and_fits_its_family():
    names = [name for name, _ in list_presets()]
    assert {"mnist-vae", "dsprites-beta-vae", "dsprites-capacity-vae", "mnist-cvae", "digits-ae", "digits-dae",
            "mnist-vq-vae", "dsprites-disentangle", "dsprites-position"} <= set(names) and DEFAULT_PRESET in names
    for name, description in list_presets():
        config = load_preset(name)
        assert description and config.description == description
        model_class(config.family).validate_hparams(config.hparams)
        if config.dataset.startswith("mnist"):
            assert config.fallback[:2] == ["mnist-sample", "digits"]
    mnist = load_preset("mnist-vae")
    assert (mnist.hparams["latent_dim"], mnist.hparams["hidden"], mnist.batch_size, mnist.lr, mnist.epochs) == (
        20, 400, 128, 1e-3, 10)
    beta = load_preset("dsprites-beta-vae")
    assert beta.hparams["beta"] == 4.0 and beta.hparams["latent_dim"] == 10


def test_unknown_preset():
    with pytest.raises(ConfigError, match="unknown preset 'x'; known: color-dsprites-disentangle, digits-ae"):
        load_preset("x")
    with pytest.raises(ConfigError):
        load_preset("../pyproject")
