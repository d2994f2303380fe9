"""Build time, extra memory and batch-256 assembly time of the procedural dSprites dataset.

Run: `.venv/bin/python bench/dsprites_build.py [--quick]`. Measured in a fresh process (torch imported
first, so its own memory is not counted); the last line is
`RESULT build_s=<x> extra_rss_mb=<x> batch256_ms=<x>`. Budget from the issue: ≤ 60 s, ≤ 100 MB, ≤ 5 ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def rss_mb() -> float:
    """Resident set size of this process (Linux /proc), in MB."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer timed batches")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args()

    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    torch.zeros(1).add_(1)
    from engine.data import load_dataset

    before = rss_mb()
    start = time.perf_counter()
    ds = load_dataset("dsprites")
    build_s = time.perf_counter() - start

    gen = torch.Generator().manual_seed(0)
    batches = 50 if args.quick else 500
    indices = [torch.randint(0, len(ds), (256,), generator=gen) for _ in range(batches + 5)]
    for idx in indices[:5]:
        ds.images_at(idx)
    times = []
    for idx in indices[5:]:
        t = time.perf_counter()
        ds.images_at(idx)
        times.append(time.perf_counter() - t)
    train, _ = ds.split(0.1, seed=0)
    epoch_s = None
    if not args.quick:
        t = time.perf_counter()
        for s in range(0, len(train), 256):
            ds.images_at(train[s:s + 256])
        epoch_s = time.perf_counter() - t
    extra = rss_mb() - before
    batch_ms = statistics.median(times) * 1e3

    subset_start = time.perf_counter()
    load_dataset("dsprites?subset=20000&shape=heart")
    subset_ms = (time.perf_counter() - subset_start) * 1e3
    print(f"dsprites: {len(ds):,} images {ds.shape}, {ds.summary()['storage']}")
    print(f"build (incl. sprite bank): {build_s:.2f} s   extra RSS: {extra:.1f} MB "
          "(incl. split indices and batch buffers)")
    print(f"batch of 256: median {batch_ms:.2f} ms, p90 {np.percentile(times, 90) * 1e3:.2f} ms "
          f"over {batches} batches, {args.threads} thread(s)")
    print(f"subset+filter load: {subset_ms:.1f} ms")
    if epoch_s is not None:
        print(f"one pass over {len(train):,} training images: {epoch_s:.1f} s")
    print(f"RESULT build_s={build_s:.2f} extra_rss_mb={extra:.1f} batch256_ms={batch_ms:.2f}")


if __name__ == "__main__":
    main()
