"""Time from process start to the main window shown (median of 5 runs, offscreen unless QT_QPA_PLATFORM is set).

Each run is a fresh `python` process calling `gui.app.run_app()` — exactly what `python main.py` does (torch
thread cap and warm-up included) — which reports when the first event-loop turn after `show()` has run.
Interleaved with those runs, a floor: a process that only imports torch, PySide6 and pyqtgraph and shows an empty
QMainWindow (what no app built on them can beat). On a shared, loaded machine the ratio is the steadier number.
Usage: python bench/startup.py [--quick] [--runs N]
Last line: RESULT startup_s=<median> floor_s=<median> app_over_floor=<ratio>
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = """
import sys
sys.path.insert(0, {root!r})
from gui.app import run_app
def shown(window):
    print("SHOWN", flush=True)
    window.close()
sys.exit(run_app(on_shown=shown))
"""

FLOOR = """
import sys
import torch
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QMainWindow
import pyqtgraph
app = QApplication(sys.argv)
window = QMainWindow()
window.show()
def shown():
    print("SHOWN", flush=True)
    window.close()
    app.quit()
QTimer.singleShot(0, shown)
sys.exit(app.exec())
"""


def one_run(env: dict[str, str], code: str | None = None) -> float:
    began = time.perf_counter()
    code = CHILD.format(root=str(ROOT)) if code is None else code
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env=env, cwd=ROOT)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.strip() == "SHOWN":
            elapsed = time.perf_counter() - began
            break
    else:
        proc.wait()
        raise RuntimeError(f"the window never showed (exit code {proc.returncode})")
    proc.wait(timeout=30)
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 runs instead of 5")
    parser.add_argument("--runs", type=int, default=None)
    args = parser.parse_args()
    runs = args.runs or (3 if args.quick else 5)
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ)
        env.setdefault("QT_QPA_PLATFORM", "offscreen")
        env["LATENT_EXPLORER_SETTINGS"] = str(Path(tmp) / "settings.ini")
        env["LATENT_EXPLORER_RUNS"] = str(Path(tmp) / "runs")
        one_run(env)  # fills the OS file cache, as a user's second start would
        one_run(env, FLOOR)
        times, floors = [], []
        for i in range(runs):
            t = one_run(env)
            floor = one_run(env, FLOOR)
            times.append(t)
            floors.append(floor)
            print(f"run {i + 1}: app {t:.2f} s   floor {floor:.2f} s")
    median, floor = statistics.median(times), statistics.median(floors)
    print(f"median {median:.2f} s over {runs} runs (target ≤ 3 s); floor (torch + PySide6 + pyqtgraph, empty "
          f"window) {floor:.2f} s; platform {env['QT_QPA_PLATFORM']}")
    print(f"RESULT startup_s={median:.2f} floor_s={floor:.2f} app_over_floor={median / floor:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
