"""Faults in the real window (offscreen, digits, tiny β-VAE): a non-finite loss mid-run, an unwritable run folder,
a disk that fills up mid-run, an out-of-memory error, and closing the window at arbitrary moments. The window
keeps running, says what happened, keeps the training state, and leaves no thread and no half-written file."""

from __future__ import annotations

import errno
import os

import pytest
import torch
from PySide6.QtWidgets import QMessageBox

from engine import checkpoint as ckpt
from engine.checkpoint import load_checkpoint
from tests.gui.test_main_window import start, use_tiny_setup


def messages_text(window) -> str:
    return "\n".join(str(m) for m in window.messages)


def assert_consistent(folder) -> None:
    assert not list(folder.rglob("*.tmp")), "a half-written file was left"
    for path in folder.rglob("*.safetensors"):
        loaded = load_checkpoint(path)
        assert all(bool(torch.isfinite(t).all()) for t in loaded.model.state_dict().values())


def test_nan_mid_training_pauses_and_resume_continues(main_window, qtbot, loss_fault, isolated_settings):
    window = main_window

    def poison(session, out, step):
        if step == 5 and session.step == 5 and not getattr(session, "_poisoned", False):
            session._poisoned = True
            with torch.no_grad():
                next(session.model.parameters()).view(-1)[0] = float("nan")
            out.total = out.total * float("nan")

    loss_fault["fault"] = poison
    use_tiny_setup(window, qtbot, max_steps=40, save_runs=True)
    start(window, qtbot)
    qtbot.waitUntil(lambda: window.failed_event is not None, timeout=20_000)
    qtbot.waitUntil(lambda: window.training_panel.state == "paused", timeout=5_000)
    assert window.failed_event.recoverable and "non-finite" in messages_text(window)
    assert window.session.step == 5 and all(bool(torch.isfinite(p).all()) for p in window.session.model.parameters())
    window.toggle_pause()
    qtbot.waitUntil(lambda: not window.is_training, timeout=20_000)
    assert window.finished_event is not None and window.session.step == 40
    assert_consistent(isolated_settings / "runs")


def test_unwritable_run_folder_is_reported_and_the_weights_can_go_elsewhere(main_window, qtbot, monkeypatch,
                                                                           tmp_path):
    window = main_window
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    monkeypatch.setenv("LATENT_EXPLORER_RUNS", str(blocker))
    use_tiny_setup(window, qtbot, max_steps=5, save_runs=True)
    start(window, qtbot)
    qtbot.waitUntil(lambda: not window.is_training, timeout=20_000)
    assert window.failed_event is not None and str(blocker) in messages_text(window)
    elsewhere = tmp_path / "elsewhere" / "weights.safetensors"
    elsewhere.parent.mkdir()
    assert window.save_checkpoint_to(elsewhere)
    assert load_checkpoint(elsewhere).step == window.session.step
    window.training_settings.save_runs_check.setChecked(False)
    start(window, qtbot)  # the window keeps working
    qtbot.waitUntil(lambda: not window.is_training, timeout=20_000)
    assert window.finished_event is not None


def test_disk_full_mid_training_keeps_the_state_and_saves_elsewhere(main_window, qtbot, monkeypatch, tmp_path,
                                                                   isolated_settings):
    window = main_window
    use_tiny_setup(window, qtbot, save_runs=True)
    start(window, qtbot)
    qtbot.waitUntil(lambda: window.training_panel.curves.point_count() > 3, timeout=20_000)

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(ckpt.os, "fsync", full)
    window.request_checkpoint()
    qtbot.waitUntil(lambda: not window.is_training, timeout=20_000)
    monkeypatch.undo()
    assert "No space left on device" in messages_text(window)
    step = window.session.step
    assert step > 0
    target = tmp_path / "other-disk" / "rescued.safetensors"
    target.parent.mkdir()
    assert window.save_checkpoint_to(target) and load_checkpoint(target).step == step
    assert_consistent(isolated_settings / "runs")


def test_out_of_memory_says_smaller_batch_and_the_window_keeps_running(main_window, qtbot, loss_fault):
    window = main_window

    def oom(session, out, step):
        if step == 3:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    loss_fault["fault"] = oom
    use_tiny_setup(window, qtbot, max_steps=10)
    start(window, qtbot)
    qtbot.waitUntil(lambda: not window.is_training, timeout=20_000)
    text = messages_text(window)
    assert "out of memory" in text.lower() and "smaller batch" in text
    loss_fault.clear()
    start(window, qtbot)
    qtbot.waitUntil(lambda: not window.is_training, timeout=20_000)
    assert window.finished_event is not None and window.finished_event.step == 10


@pytest.mark.parametrize("moment", ["at once", "mid-run", "paused"])
def test_closing_at_any_moment_leaves_no_thread_and_no_half_written_file(main_window, qtbot, isolated_settings,
                                                                        moment):
    window = main_window
    use_tiny_setup(window, qtbot, save_runs=True)
    window.ask_save_on_close = lambda: QMessageBox.StandardButton.Save
    start(window, qtbot)
    if moment == "mid-run":
        qtbot.waitUntil(lambda: window.training_panel.curves.point_count() > 3, timeout=20_000)
    elif moment == "paused":
        window.toggle_pause()
        qtbot.waitUntil(lambda: window.paused_event is not None, timeout=20_000)
    thread = window.worker._thread
    window.close()
    assert not thread.is_alive() and not window.is_training
    assert_consistent(isolated_settings / "runs")
    assert list((isolated_settings / "runs").rglob("step*.safetensors")), "the weights were saved on close"
