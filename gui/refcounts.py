"""A guard that must run before any Qt call on Python 3.11 (gui/__init__.py runs it on the first gui import)."""

from __future__ import annotations

import sys


def guard_singleton_refcounts() -> None:
    """Work around PySide6 6.12 (abi3 build) on Python 3.11: every call of a void Qt method drops one reference
    to None (bool setters to True/False) that it never took. Python ≥ 3.12 makes these objects immortal, which
    hides the bug; on 3.11 None's count reaches zero after a few thousand calls and the process aborts with
    "none_dealloc". Giving the singletons an enormous count makes them as immortal as 3.12 would."""
    if sys.version_info >= (3, 12) or getattr(guard_singleton_refcounts, "done", False):
        return
    import ctypes

    for singleton in (None, True, False, Ellipsis, NotImplemented):
        ctypes.c_ssize_t.from_address(id(singleton)).value += 1 << 40  # ob_refcnt is the object's first field
    guard_singleton_refcounts.done = True  # type: ignore[attr-defined]
