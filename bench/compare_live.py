"""Does following the running session in the Compare tab stall the window or slow training?

The real MainWindow (offscreen, 1366×740) trains its default run (the dsprites-disentangle preset) while the Compare
tab shows the two dSprites examples' traversals. In turns within one process, the same run is watched for S seconds
with the examples only (baseline) and for S seconds with the running session added live beside them (its entry
re-rendered with the newest weights every LIVE_REFRESH_MS at most). A 10 ms QTimer records the event-loop gaps.
Target: no gap of 200 ms or more; training keeps most of its speed.
Usage: python bench/compare_live.py [--quick] [--seconds S] [--rounds N]
Last line: RESULT live_max_ms=<x> static_max_ms=<x> live_p99_ms=<x> static_p99_ms=<x> live_updates=<n>
           steps_live_vs_static=<ratio> loadavg=<x>
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from gui_responsiveness import GapClock, percentile, spin  # noqa: E402  (also prepares torch's environment)
from PySide6.QtWidgets import QApplication  # noqa: E402

from gui.app import configure_torch  # noqa: E402


class Gaps(GapClock):
    """Every gap (ms) between the ticks of a 10 ms timer since `reset()` (GapClock keeps only the longest)."""

    def __init__(self) -> None:
        self.values: list[float] = []
        super().__init__()

    def tick(self) -> None:
        self.values.append((self.clock.nsecsElapsed() - self.last) / 1e6)
        super().tick()

    def reset(self) -> None:
        super().reset()
        self.values = []


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one round of 8 s per phase")
    parser.add_argument("--seconds", type=float, default=None, help="seconds per phase (default 15, quick 8)")
    parser.add_argument("--rounds", type=int, default=None, help="baseline/live turns (default 3, quick 1)")
    args = parser.parse_args()
    seconds = args.seconds or (8.0 if args.quick else 15.0)
    rounds = args.rounds or (1 if args.quick else 3)
    configure_torch()
    app = QApplication.instance() or QApplication(sys.argv)
    from PySide6.QtWidgets import QMessageBox

    from gui.main_window import MainWindow
    from gui.panels.compare import BETA_LESSON, VIEWS, open_comparison

    window = MainWindow()
    window.ask_save_on_close = lambda: QMessageBox.StandardButton.Discard
    window.resize(1366, 740)
    window.show()
    spin(app, 30.0, lambda: window.dataset is not None and not window.tabs.pending)  # the tabs built after show
    window.training_settings.save_runs_check.setChecked(False)
    window.training_settings.epochs_spin.setValue(100_000)
    open_comparison(window, list(BETA_LESSON))
    panel = window.panels["comparePanel"]
    panel.views.setCurrentIndex([name for name, _ in VIEWS].index("traversals"))
    spin(app, 60.0, lambda: len(panel.keys) == 2 and "traversals" in panel.results and panel.is_idle)
    if not window.start_training():
        raise RuntimeError(f"could not start: {window.messages}")
    spin(app, 60.0, lambda: window.training_panel.last_metrics is not None)
    window.tabs.setCurrentWidget(panel)
    updates = {"n": 0}
    followed = panel._live_updated

    def counted(entry) -> None:
        updates["n"] += 1
        followed(entry)

    panel._live_updated = counted
    gaps = Gaps()
    measured: dict[str, dict[str, list[float]]] = {"static": {"gaps": [], "steps": []},
                                                   "live": {"gaps": [], "steps": []}}
    for turn in range(rounds):
        for phase in ("static", "live"):
            if phase == "live":
                panel.add_current()
            spin(app, 2.0)  # the live entry is loaded and drawn once before the measurement
            gaps.reset()
            step0, t0 = window.session.step, time.perf_counter()
            spin(app, seconds)
            measured[phase]["gaps"] += gaps.values
            measured[phase]["steps"].append((window.session.step - step0) / (time.perf_counter() - t0))
            worst = max(gaps.values)
            print(f"round {turn + 1} {phase:<6} longest gap {worst:6.1f} ms, p99 {percentile(gaps.values, 99):5.1f} "
                  f"ms, {measured[phase]['steps'][-1]:.1f} steps/s", flush=True)
            if phase == "live" and panel.live_key is not None:
                panel.remove(panel.live_key)
    window.shutdown_training()
    window.close()
    load = os.getloadavg()[0]
    static_steps = sum(measured["static"]["steps"]) / rounds
    live_steps = sum(measured["live"]["steps"]) / rounds
    print(f"live entry updated {updates['n']} times in {rounds * seconds:.0f} s; load average {load:.1f}")
    print(f"RESULT live_max_ms={max(measured['live']['gaps']):.1f} static_max_ms={max(measured['static']['gaps']):.1f} "
          f"live_p99_ms={percentile(measured['live']['gaps'], 99):.1f} "
          f"static_p99_ms={percentile(measured['static']['gaps'], 99):.1f} live_updates={updates['n']} "
          f"steps_live_vs_static={live_steps / static_steps:.2f} loadavg={load:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
