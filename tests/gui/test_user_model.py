"""A user's model file in the real window (offscreen): File → Open model file… puts it in the family combo with its
own hyperparameters, it trains, every exploration panel draws it; a checkpoint naming a model file asks before running
it and remembers the answer per file and hash (declining runs nothing); a file changed on disk offers a rebuild."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from engine.checkpoint import read_checkpoint, write_checkpoint
from engine.config import TrainConfig
from engine.models.user_file import file_sha256, load_model_file, write_starter
from engine.training import TrainingSession
from gui.model_source import answer_key
from tests.engine.test_user_model import EVIL, OWN_LOSS
from tests.gui.test_main_window import start, use_tiny_setup


def use_user_model(window, model_file: Path) -> str:
    use_tiny_setup(window, None, max_steps=25)
    family = window.model_files.open_model_file(model_file)
    assert family is not None, window.messages
    return family


@pytest.mark.parametrize("which", ["own loss", "starter"])
def test_open_model_file_trains_and_every_panel_draws_it(main_window, qtbot, tmp_path, which):
    """The file with its own loss on the digits (and the evaluation panel), the starter on a small dSprites subset."""
    window = main_window
    model_file = tmp_path / ("tiny.py" if which == "own loss" else "my_vae.py")
    if which == "own loss":
        model_file.write_text(OWN_LOSS)
    else:
        write_starter(model_file)
    family = use_user_model(window, model_file)
    dock = window.model_settings
    assert dock.family_combo.currentData() == family == ("tiny.TinyVAE" if which == "own loss" else "my_vae.MyVAE")
    if which == "own loss":
        assert set(dock.hparam_form.editors) == {"latent_dim", "hidden", "beta", "likelihood", "sigma"}
        dock.hparam_form.set_values({"latent_dim": 2, "hidden": 16})
    else:
        assert {"latent_dim", "channels", "beta", "warmup_steps"} <= set(dock.hparam_form.editors)
        assert "backbone" not in dock.hparam_form.editors and "beta" in window.training_panel.live_sliders
        dock.hparam_form.set_values({"latent_dim": 2, "channels": 4})
        assert window.open_dataset("dsprites?subset=200")
        window.training_settings.max_steps_spin.setValue(6)
        window.training_settings.batch_spin.setValue(16)
    assert str(model_file) in window.model_files.watched
    start(window, qtbot)
    qtbot.waitUntil(lambda: not window.is_training, timeout=30_000)
    assert window.finished_event is not None, window.messages
    assert window.finished_event.step == window.training_settings.max_steps_spin.value()
    assert window.session.model.family == family and window.session.model.latent_dim == 2
    assert "kl" in window.training_panel.curves.train_terms()
    checks = {"traversalPanel": lambda p: p.grid is not None, "interpolationPanel": lambda p: p.path_images is not None,
              "latentMapPanel": lambda p: p.embedding is not None, "galleryPanel": lambda p: p.grid is not None}
    for name, drawn in checks.items():
        panel = window.panels[name]
        window.tabs.setCurrentWidget(panel)
        qtbot.waitUntil(lambda panel=panel, drawn=drawn: drawn(panel), timeout=20_000)
    if which == "own loss":
        evaluation = window.panels["evaluationPanel"]
        window.tabs.setCurrentWidget(evaluation)
        evaluation.iwae_spin.setValue(0)
        evaluation.compute()
        qtbot.waitUntil(lambda: evaluation.result is not None, timeout=30_000)
        assert evaluation.result["kl"] is not None


def plant(source_ckpt: Path, target: Path, model_file: Path, family: str, class_name: str) -> Path:
    """A copy of a checkpoint whose header names `model_file` (as a crafted file could)."""
    meta, tensors = read_checkpoint(source_ckpt)
    header = {k: v for k, v in meta.items() if k not in ("format", "version")}
    header["config"] = header["config"].replace(f'family = "{meta["family"]}"', f'family = "{family}"')
    header["family"] = family
    header["model_file"] = {"path": str(model_file), "class": class_name, "sha256": file_sha256(model_file)}
    return write_checkpoint(target, tensors, header)


@pytest.fixture
def user_checkpoint(tmp_path) -> Path:
    model_file = tmp_path / "trained" / "kind.py"
    model_file.parent.mkdir()
    model_file.write_text(OWN_LOSS.replace("class TinyVAE", "class KindVAE"))
    cls = load_model_file(model_file)
    session = TrainingSession(TrainConfig(dataset="digits", family=cls.family, max_steps=3, batch_size=64))
    list(session.run())
    return session.save_checkpoint(tmp_path / "kind.safetensors")


def test_a_planted_checkpoint_runs_nothing_when_the_user_declines(main_window, tmp_path, user_checkpoint):
    window = main_window
    marker = tmp_path / "MARKER"
    evil = tmp_path / "evil.py"
    evil.write_text(EVIL.format(marker=str(marker)))
    planted = plant(user_checkpoint, tmp_path / "planted.safetensors", evil, "evil.Evil", "Evil")
    questions = []
    window.model_files.ask_to_run = lambda path, name, changed: questions.append((path, name)) or False
    assert not window.open_checkpoint(planted)
    assert questions == [(str(evil), "Evil")] and not marker.exists()
    assert window.settings.value(answer_key(str(evil), file_sha256(evil))) == "no"
    assert not window.open_checkpoint(planted)  # remembered: not asked again
    assert len(questions) == 1 and not marker.exists()
    assert window.model_settings.family_combo.findData("evil.Evil") < 0 and not window.source.has_model


def test_a_checkpoint_of_a_model_file_opens_after_yes_and_continues(main_window, qtbot, tmp_path, user_checkpoint):
    window = main_window
    moved = tmp_path / "elsewhere" / "kind.py"  # not the file that trained it, nor its bytes: the window must ask
    moved.parent.mkdir()
    shutil.copy(tmp_path / "trained" / "kind.py", moved)
    moved.write_text(moved.read_text() + "\n# moved here\n")
    checkpoint = plant(user_checkpoint, tmp_path / "moved.safetensors", moved, "kind.KindVAE", "KindVAE")
    questions = []
    window.model_files.ask_to_run = lambda path, name, changed: questions.append((path, changed)) or True
    assert window.open_checkpoint(checkpoint), window.messages
    assert questions == [(str(moved), False)]
    assert window.source.has_model and window.source.snapshot().family == "kind.KindVAE"
    assert window.model_settings.family_combo.currentData() == "kind.KindVAE"
    assert window.open_checkpoint(checkpoint) and len(questions) == 1  # this file already runs here
    window.training_settings.max_steps_spin.setValue(2)  # Continue: two more steps of the checkpoint's model
    start(window, qtbot)
    qtbot.waitUntil(lambda: not window.is_training, timeout=20_000)
    assert window.finished_event is not None and window.finished_event.step == 5, window.messages


def test_a_changed_file_offers_a_rebuild(main_window, qtbot, tmp_path):
    window = main_window
    model_file = tmp_path / "tiny.py"
    model_file.write_text(OWN_LOSS)
    use_user_model(window, model_file)
    offered = []
    window.model_files.ask_to_rebuild = lambda path: offered.append(path) or True
    model_file.write_text(OWN_LOSS.replace('"beta": 2.0}', '"beta": 2.0, "dropout": 0.0}')
                          .replace("beta=2.0):", "beta=2.0, dropout=0.0):"))
    form = window.model_settings.hparam_form
    qtbot.waitUntil(lambda: "dropout" in form.editors, timeout=10_000)
    assert offered and offered[0] == str(model_file)
    model_file.write_text("this is not python (")
    qtbot.waitUntil(lambda: len(offered) >= 2, timeout=10_000)
    assert any(f"{model_file}:1" in text for level, text in window.messages if level == "error"), window.messages
    assert "dropout" in form.editors  # the last good build stays
