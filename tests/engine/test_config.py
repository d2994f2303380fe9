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


def test_a_run_is_recognised_by_its_presets_recipe_not_by_its_length_seed_or_folder():
    from dataclasses import replace

    from engine.presets import matching_preset

    preset = load_preset("dsprites-vae")
    run = replace(preset, max_steps=6000, seed=3, threads=1, out_dir="/tmp/x", epochs=1,
                  hparams={**preset.hparams, "dataset_size": 722534, "sigma": 1.0})  # a derived value, a default
    assert matching_preset(run) == "dsprites-vae"
    assert matching_preset(replace(run, hparams={**run.hparams, "beta": 2.0})) is None
    assert matching_preset(replace(run, lr=3e-4)) is None
    assert matching_preset(replace(run, dataset="mnist")) is None
    assert matching_preset(replace(run, family="no-such-family")) is None


def test_presets_sharing_a_recipe_are_told_apart_by_the_runs_description():
    from dataclasses import replace

    from engine.presets import matching_preset

    lesson = load_preset("dsprites-beta-lesson")  # the recipe's network at other β and lengths: the same recipe
    default = load_preset(DEFAULT_PRESET)
    assert matching_preset(default) == DEFAULT_PRESET
    assert matching_preset(replace(default, description="")) == DEFAULT_PRESET  # no description: the default wins
    assert matching_preset(replace(default, description=lesson.description)) == "dsprites-beta-lesson"
