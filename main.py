"""Latent Explorer: no arguments → the desktop app; a sub-command → the headless CLI (`python main.py --help`)."""

from __future__ import annotations

import signal
import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        try:
            from gui.app import run_app
        except ImportError as exc:  # the window needs PySide6; the CLI does not
            print(f"latent-explorer: cannot start the window ({exc}); see `python main.py --help`",
                  file=sys.stderr)
            return 2
        return run_app()
    from engine.cli import main as cli_main

    try:
        return cli_main(args)
    finally:
        if argv is None:  # a real process: a second Ctrl+C while the interpreter shuts down must not print a traceback
            signal.signal(signal.SIGINT, signal.SIG_IGN)


if __name__ == "__main__":
    sys.exit(main())
