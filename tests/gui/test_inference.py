"""The off-GUI-thread inference runner: lazily started, newest request wins, clean shutdown."""

from __future__ import annotations

import threading

from gui.inference import InferenceRunner


def test_runner_owns_no_thread_until_the_first_request(qtbot):
    before = {t.name for t in threading.enumerate()}
    runner = InferenceRunner("lazy")
    assert "lazy-worker" not in {t.name for t in threading.enumerate()} - before
    runner.shutdown()
    assert runner.is_shut_down


def test_result_arrives_on_the_gui_thread_and_shutdown_joins(qtbot):
    runner = InferenceRunner("eager")
    seen = []
    runner.submit("c", lambda: threading.current_thread().name, lambda r: seen.append((r, threading.current_thread())))
    qtbot.waitUntil(lambda: bool(seen), timeout=5000)
    worker_name, delivered_on = seen[0]
    assert worker_name == "eager-worker"
    assert delivered_on is threading.main_thread()
    runner.shutdown()
    assert runner.is_shut_down
