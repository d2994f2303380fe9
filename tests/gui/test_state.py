"""gui/state.AppState without a window: datasets, presets, checkpoints and recent runs, on its job thread."""

from __future__ import annotations

import sys
import threading
import time

import pytest

from gui.state import AppState, Emitter, Job


@pytest.fixture
def state():
    app_state = AppState()  # no `post`: deliveries run on the job thread; tests wait on the Job
    yield app_state
    app_state.shutdown()


def test_the_state_module_needs_no_qt():
    import subprocess

    code = "import sys; import gui.state; print(sorted(m for m in sys.modules if m.startswith('PySide6')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_dataset_loads_on_the_job_thread_and_is_announced(state):
    seen = []
    state.dataset_changed.connect(lambda view: seen.append((view, threading.current_thread().name)))
    job = state.load_dataset("digits")
    assert job.wait(30) and job.ok
    (view, thread), = seen
    assert thread.startswith("latent-explorer-jobs")
    assert state.dataset is view.dataset and state.dataset_spec == "digits" and len(state.dataset) == 1797
    assert view.thumbnails is not None and view.thumbnails.dtype.name == "uint8"
    assert "1,797 images" in view.summary_html and not state.busy


def test_a_bad_dataset_is_reported_and_the_old_one_stays(state, tmp_path):
    assert state.load_dataset("digits").wait(30)
    bad = tmp_path / "x.npy"
    bad.write_text("not an array")
    job = state.load_dataset(str(bad))
    assert job.wait(30) and not job.ok and job.error is not None
    level, text = state.messages[-1]
    assert level == "error" and "x.npy" in text
    assert state.dataset_spec == "digits"


def test_a_newer_request_supersedes_an_older_one(state):
    gate = threading.Event()
    results = []
    first = state.submit("dataset", "slow", lambda: gate.wait(10) and "old", results.append)
    second = state.submit("dataset", "fast", lambda: "new", results.append)
    gate.set()
    assert first.wait(10) and second.wait(10)
    assert first.superseded and not second.superseded and results == ["new"]


def test_nothing_runs_after_shutdown(state):
    """A closed window's pending timer may still ask for a dataset: no job thread may start again."""
    assert state.load_dataset("digits").wait(30)
    state.shutdown()
    job = state.load_dataset("digits")
    assert job.done.is_set() and job.superseded and not job.ok
    assert not [t for t in threading.enumerate() if t.name.startswith("latent-explorer-jobs")]


def test_a_preset_resolves_to_a_dataset_this_machine_has(state):
    from engine.data import available_datasets

    status = {row["name"]: row.get("status") for row in available_datasets()}
    config = state.choose_preset("mnist-cvae")
    assert state.preset_config is config
    deadline = time.monotonic() + 60
    while state.is_busy("dataset") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert state.dataset is not None, state.messages
    if status.get("mnist") == "missing":
        assert state.dataset_spec in config.fallback and "will be trained instead" in state.dataset_note
    else:
        assert state.dataset_spec == "mnist"
    assert state.resolved_fallback(state.dataset_spec) == ([] if state.dataset_spec != config.dataset
                                                            else list(config.fallback))


def test_recent_runs_are_newest_first_unique_and_bounded(state, tmp_path):
    heard = []
    state.recent_changed.connect(heard.append)
    paths = [tmp_path / f"run{i}.safetensors" for i in range(10)]
    for path in paths:
        state.add_recent(path)
    state.add_recent(paths[3])
    recent = state.recent_runs()
    assert recent[0] == str(paths[3].resolve()) and len(recent) == 8 and len(set(recent)) == 8
    assert heard[-1] == recent


def test_a_listener_error_is_reported_and_the_job_still_completes(state):
    def broken(_result):
        raise RuntimeError("listener bug")

    job: Job = state.submit("misc", "x", lambda: 1, broken)
    assert job.wait(10)
    assert state.messages[-1] == ("error", "RuntimeError: listener bug")


def test_emitter_connect_disconnect():
    emitter, calls = Emitter(), []
    emitter.connect(calls.append)
    emitter.emit(1)
    emitter.disconnect(calls.append)
    emitter.emit(2)
    assert calls == [1]
