"""A DCI worker process: `python -m engine.metrics._worker` fits one factor's boosted trees per task.

Started by engine.metrics.dci as a plain subprocess (not multiprocessing), so it never imports the caller's main
module: a script without an `if __name__ == "__main__"` guard stays safe. Protocol, pickles over the pipes: stdin
carries tasks (k, codes, labels, random_state, reference); stdout carries ("round", k, rounds done) after every
boosting round, then ("done", k, fitted model) or ("error", k, traceback text). End of stdin ends the worker; the
parent kills it to cancel.
"""

from __future__ import annotations

import os
import pickle
import sys
import traceback


def main() -> None:
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # anything a library prints goes to stderr, not the protocol
    tasks = sys.stdin.buffer

    import torch

    torch.set_num_threads(1)  # this process's own setting: the other factors' fits run beside it
    from .dci import _fit_factor

    def send(message: tuple) -> None:
        pickle.dump(message, replies, protocol=pickle.HIGHEST_PROTOCOL)
        replies.flush()

    while True:
        try:
            k, codes, labels, random_state, reference = pickle.load(tasks)
        except EOFError:
            return
        try:
            model = _fit_factor(codes, labels, random_state, reference,
                                lambda i, k=k: send(("round", k, i + 1)) or False)
            send(("done", k, model))
        except Exception:  # reported to the parent, which raises it there
            send(("error", k, traceback.format_exc()))


if __name__ == "__main__":
    main()
