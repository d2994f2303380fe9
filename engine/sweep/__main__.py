"""`python -m engine.sweep …`: the same as `python main.py sweep …`."""

from .cli import main

if __name__ == "__main__":  # spawned worker processes import this module as __mp_main__: they must not run it
    raise SystemExit(main())
