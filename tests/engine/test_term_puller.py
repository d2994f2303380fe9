"""The metrics puller (engine/term_puller.py): values, order and the finiteness flag, read at once (CPU) or one pull
later (deferred: what CUDA does, forced here on the CPU), and on CUDA a pull that never syncs (marker `cuda`)."""

from __future__ import annotations

import math

import pytest
import torch

from engine.term_puller import INITIAL_CAPACITY, PulledRows, TermPuller


def rows_of(*values: list[float], device: str = "cpu") -> list[torch.Tensor]:
    return [torch.tensor(v, dtype=torch.float32, device=device) for v in values]


def test_cpu_pull_returns_the_values_at_once_in_order():
    puller = TermPuller("cpu")
    assert not puller.deferred
    ready = puller.pull(rows_of([1.5, 0.25, 2.0], [3.0, 1.0], [4.0, 0.5, 0.125]), tag="window-1")
    assert ready == [PulledRows("window-1", [[1.5, 0.25, 2.0], [3.0, 1.0], [4.0, 0.5, 0.125]])]
    assert ready[0].first_non_finite is None
    assert not puller.pending and puller.flush() == []
    assert puller.pull([], tag="empty") == []


def test_single_row_and_float32_values_come_back_exactly():
    values = [0.1, 1e-30, 3.4e38, -2.5]
    (pulled,) = TermPuller("cpu").pull(rows_of(values), tag=7)
    assert pulled.rows == [torch.tensor(values, dtype=torch.float32).tolist()] and pulled.tag == 7


@pytest.mark.parametrize("bad, index", [(math.nan, 1), (math.inf, 1), (-math.inf, 1)])
def test_first_non_finite_names_the_first_bad_total(bad, index):
    (pulled,) = TermPuller("cpu").pull(rows_of([1.0, 2.0], [bad, 1.0], [math.nan, 0.0]), tag=None)
    assert pulled.first_non_finite == index


def test_a_non_finite_term_that_is_not_the_total_is_not_a_bad_step():
    (pulled,) = TermPuller("cpu").pull(rows_of([1.0, math.nan], [2.0, math.inf]), tag=None)
    assert pulled.first_non_finite is None


def test_deferred_pull_hands_back_the_previous_pull_then_flush_the_last():
    puller = TermPuller("cpu", deferred=True)
    assert puller.pull(rows_of([1.0, 9.0]), tag="a") == []
    assert puller.pending
    second = puller.pull(rows_of([2.0, 8.0], [3.0, 7.0]), tag="b")
    assert second == [PulledRows("a", [[1.0, 9.0]])]
    assert puller.pull([], tag="nothing") == [PulledRows("b", [[2.0, 8.0], [3.0, 7.0]])]
    assert not puller.pending
    puller.pull(rows_of([math.nan]), tag="c")
    (last,) = puller.flush()
    assert last.tag == "c" and last.first_non_finite == 0 and puller.flush() == []


def test_deferred_values_are_taken_when_queued_not_when_read():
    puller = TermPuller("cpu", deferred=True)
    row = torch.tensor([1.0, 2.0])
    puller.pull([row, torch.tensor([3.0])], tag="x")
    row.fill_(-1.0)  # the session never reuses a queued row; the concatenation is the puller's own copy anyway
    assert puller.flush()[0].rows == [[1.0, 2.0], [3.0]]


def test_discard_forgets_a_queued_pull():
    puller = TermPuller("cpu", deferred=True)
    puller.pull(rows_of([1.0]), tag="dropped")
    puller.discard()
    assert not puller.pending and puller.pull(rows_of([2.0]), tag="next") == []
    assert puller.flush() == [PulledRows("next", [[2.0]])]


# --- on a GPU --------------------------------------------------------------------------------------------------
@pytest.mark.cuda
def test_cuda_pull_never_syncs_and_reads_through_the_pinned_buffer():
    puller = TermPuller("cuda")
    assert puller.deferred
    rows = [torch.randn(5, device="cuda") for _ in range(40)]
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        assert puller.pull(rows, tag=1) == []  # no wait: the copy runs while the host goes on
    finally:
        torch.cuda.set_sync_debug_mode("default")
    buffer = puller._buffer
    assert buffer is not None and buffer.is_pinned() and buffer.numel() >= INITIAL_CAPACITY
    big = [torch.full((7,), float(i), device="cuda") for i in range(300)]  # longer than the buffer: it grows once
    ready = puller.pull(big, tag=2)
    assert [r.tag for r in ready] == [1]
    assert ready[0].rows == [r.cpu().tolist() for r in rows]
    (last,) = puller.flush()
    assert last.tag == 2 and last.rows == [[float(i)] * 7 for i in range(300)]
    assert puller._buffer.numel() >= 2100 and puller._buffer.is_pinned()
    bad = [torch.tensor([1.0, 0.0], device="cuda"), torch.tensor([math.nan, 0.0], device="cuda")]
    puller.pull(bad, tag=3)
    assert puller.flush()[0].first_non_finite == 1
