"""The registry (spec grammar, routing, the `datasets` listing) and the Dataset base class protocol."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.data import Dataset, DatasetError, FactorSpec, available_datasets, load_dataset, parse_spec


def test_parse_spec():
    assert parse_spec("dsprites?subset=10&shape=heart") == ("dsprites", {"subset": "10", "shape": "heart"})
    assert parse_spec(" digits ") == ("digits", {})
    for bad in ("", "   ", "digits?size"):
        with pytest.raises(DatasetError):
            parse_spec(bad)


def test_unknown_names_and_options():
    with pytest.raises(DatasetError, match="unknown dataset 'cifar'.*dsprites"):
        load_dataset("cifar")
    with pytest.raises(DatasetError, match="digits: bad option"):
        load_dataset("digits?colour=red")
    with pytest.raises(DatasetError, match="size must be"):
        load_dataset("digits?size=big")


def test_digits_upscaled():
    ds = load_dataset("digits?size=16")
    assert len(ds) == 1797 and ds.shape == (1, 16, 16) and ds.num_classes == 10 and ds.spec == "digits?size=16"


def test_available_datasets_rows(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("LATENT_EXPLORER_DATA", str(tmp_path / "none"))
    monkeypatch.chdir(tmp_path)
    rows = {row["name"]: row for row in available_datasets()}
    assert {"dsprites", "digits", "mnist-sample", "mnist", "fashion-mnist", "kmnist", "dsprites-official"} <= set(rows)
    for row in rows.values():
        assert set(row) >= {"name", "status", "size", "shape", "hint", "description"}
        assert row["status"] == "embedded" or row["status"] == "missing" or row["status"].startswith("found at")
        assert (row["status"] == "missing") == bool(row["hint"])
    assert rows["dsprites"]["size"] == 737_280 and rows["dsprites"]["shape"] == [1, 64, 64]
    assert rows["mnist-sample"]["status"] == "embedded"
    assert rows["mnist"]["status"] == "missing" and "mnist?path=" in rows["mnist"]["hint"]


# --- the factor-source protocol on the base class ------------------------------------------------

def grid_dataset(order: torch.Tensor | None = None) -> Dataset:
    """2×3 grid, every image distinct (the image of item (a, b) is filled with 40·a + 10·b)."""
    factors = torch.tensor([[a, b] for a in range(2) for b in range(3)])
    if order is not None:
        factors = factors[order]
    images = (40 * factors[:, 0] + 10 * factors[:, 1]).to(torch.uint8).view(-1, 1, 1, 1).expand(-1, 1, 4, 4)
    spec = FactorSpec(("a", "b"), (2, 3), ((0.0, 1.0), (0.0, 0.5, 1.0)))
    return Dataset(name="grid", description="", images=images.contiguous(), factors=factors, factor_spec=spec)


@pytest.mark.parametrize("order", [None, torch.tensor([5, 3, 1, 0, 2, 4])])
def test_render_factors_looks_up_a_complete_grid(order):
    ds = grid_dataset(order)
    rows = ds.sample_factors(50, np.random.default_rng(0))
    assert rows.shape == (50, 2) and rows.dtype == np.int64 and set(rows[:, 1]) == {0, 1, 2}
    images = ds.render_factors(rows)
    assert torch.equal(images[:, 0, 0, 0], torch.from_numpy(40 * rows[:, 0] + 10 * rows[:, 1]).to(torch.uint8))
    with pytest.raises(DatasetError, match="n×2 integer"):
        ds.render_factors(np.zeros((3, 2)))
    with pytest.raises(DatasetError, match="0…size−1"):
        ds.render_factors(np.array([[2, 0]]))


def test_an_incomplete_grid_gives_observed_rows_only():
    """Not a complete grid (a user's factors.csv over some combinations): factor rows are drawn from the items,
    looked up as the first image that has them, and a row no image has is refused."""
    ds = grid_dataset()
    partial = Dataset(name="part", description="", images=ds.images[:5], factors=ds.factors[:5],
                      factor_spec=ds.factor_spec)
    assert not partial.factor_grid_complete and "complete grid" in partial.factor_grid_note()
    rows = partial.sample_factors(60, np.random.default_rng(0))
    assert {tuple(r) for r in rows.tolist()} == {tuple(r) for r in ds.factors[:5].tolist()}
    assert torch.equal(partial.render_factors(rows)[:, 0, 0, 0],
                       torch.from_numpy(40 * rows[:, 0] + 10 * rows[:, 1]).to(torch.uint8))
    with pytest.raises(DatasetError, match="no image has"):
        partial.render_factors(ds.factors[5:].numpy())
    repeated = Dataset(name="rep", description="", images=ds.images, factor_spec=ds.factor_spec,
                       factors=torch.cat([ds.factors[:5], ds.factors[:1]]))
    assert not repeated.factor_grid_complete
    assert torch.equal(repeated.render_factors(np.array([[0, 0]])), ds.images[:1])
    plain = load_dataset("digits")
    with pytest.raises(DatasetError, match="no ground-truth factors"):
        plain.sample_factors(3, np.random.default_rng(0))
