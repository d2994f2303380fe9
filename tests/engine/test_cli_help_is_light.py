"""`main.py --help` must answer at once: it may not import torch (or scikit-learn) just to print the commands."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CODE = """
import sys
sys.path.insert(0, {root!r})
import main
try:
    main.main({args!r})
except SystemExit:
    pass
print("HEAVY", sorted(m for m in ("torch", "sklearn", "numpy.linalg") if m in sys.modules))
"""


def _heavy_modules(args: list[str]) -> tuple[str, str]:
    out = subprocess.run([sys.executable, "-c", CODE.format(root=str(ROOT), args=args)], capture_output=True,
                         text=True, check=True, cwd=ROOT)
    line = next(line for line in out.stdout.splitlines() if line.startswith("HEAVY"))
    return line, out.stdout


def test_top_level_help_imports_no_torch():
    line, stdout = _heavy_modules(["--help"])
    assert line == "HEAVY []", line
    assert "sweep" in stdout and "train" in stdout  # every command is still listed


def test_sweep_help_still_shows_its_options():
    _, stdout = _heavy_modules(["sweep", "--help"])
    assert "--metric-sizes" in stdout
