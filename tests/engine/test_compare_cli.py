"""`main.py compare` on the shipped examples and on a sweep folder, bad input, and the comparison a sweep ends with."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from PIL import Image

from engine.cli import main
from engine.compare_figure import VIEWS
from engine.examples import find_example

TINY_TOML = """
[data]
dataset = "digits"

[model]
family = "beta-vae"
backbone = "mlp"
latent_dim = 3
hidden = 16
depth = 1

[training]
max_steps = 5
batch_size = 32
preview_every_s = 60.0
"""


@pytest.fixture(scope="module")
def sweep_folder(tmp_path_factory):
    """A 2-run sweep made by the CLI; its end writes compare.png and compare.csv."""
    root = tmp_path_factory.mktemp("compare_cli")
    config = root / "tiny.toml"
    config.write_text(TINY_TOML)
    folder = root / "sweep"
    assert main(["sweep", "--config", str(config), "--grid", "beta=1,4", "--metrics", "none", "--quiet",
                 "--out", str(folder)]) == 0
    return folder


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_compare_the_two_examples_writes_one_figure_and_a_csv(tmp_path, capsys):
    png, table = tmp_path / "c.png", tmp_path / "c.csv"
    assert main(["compare", "example:dsprites-disentangle", "example:dsprites-vae", "--out", str(png),
                 "--csv", str(table)]) == 0
    out = capsys.readouterr().out
    assert "β-TCVAE β=6" in out and "VAE β=1" in out
    image = np.asarray(Image.open(png).convert("RGB"))
    assert image.shape[0] > 1500 and image.shape[1] > 900
    for colour in ((0, 114, 178), (230, 159, 0)):  # both models' colours are drawn
        assert (image == colour).all(axis=2).sum() > 500
    rows = read_csv(table)
    assert [r["model"] for r in rows] == ["β-TCVAE β=6", "VAE β=1"]
    assert [r["family"] for r in rows] == ["beta-tcvae", "vae"]
    assert [float(r["beta"]) for r in rows] == [6.0, 1.0]
    assert float(rows[0]["mig"]) == pytest.approx(find_example("dsprites-disentangle").scores["mig"], rel=1e-5)
    assert rows[1]["score_source"] == "examples manifest"


def test_a_sweep_ends_with_its_comparison(sweep_folder, capsys):
    assert (sweep_folder / "compare.png").is_file()
    rows = read_csv(sweep_folder / "compare.csv")
    assert [r["model"] for r in rows] == ["β-VAE β=1", "β-VAE β=4"]
    assert [r["swept_beta"] for r in rows] == ["1", "4"]


def test_compare_a_sweep_folder_with_labels_and_chosen_views(sweep_folder, tmp_path, capsys):
    png, table = tmp_path / "s.png", tmp_path / "s.csv"
    assert main(["compare", str(sweep_folder), "--views", "table,kl,rd", "--labels", "low", "high",
                 "--out", str(png), "--csv", str(table)]) == 0
    rows = read_csv(table)
    assert [r["model"] for r in rows] == ["low", "high"]
    assert all(float(r["kl"]) >= 0 and float(r["recon"]) > 0 for r in rows)
    full = tmp_path / "full.png"
    assert main(["compare", str(sweep_folder), "--out", str(full)]) == 0
    assert Image.open(png).height < Image.open(full).height  # fewer views, a shorter figure


@pytest.mark.parametrize("args, message", [
    (["example:dsprites-vae", "--out", "x.gif"], "--out must be a .png"),
    (["example:dsprites-vae", "--out", "x.png", "--views", "curves,nope"], "unknown view(s) nope"),
    (["example:dsprites-vae", "--out", "x.png", "--labels", "a", "b"], "2 label(s) for 1 model(s)"),
    (["example:dsprites-vae", "--out", "x.png", "--metrics", "mog"], "unknown metric(s) mog"),
    (["example:dsprites-vae", "--out", "x.png", "--terms", "recon,nope"], "--terms/--x: term(s) nope not logged"),
    (["example:nope", "--out", "x.png"], "no such example"),
    (["example:dsprites-vae"] * 7 + ["--out", "x.png"], "at most 6"),
])
def test_bad_input_is_one_error_line(args, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["compare", *args]) != 0
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error:") and message in err
    assert not (tmp_path / "x.png").exists()


def test_the_lesson_preset_is_the_recipe_network_for_a_fixed_budget():
    from engine.presets import load_preset

    lesson, recipe = load_preset("dsprites-beta-lesson"), load_preset("dsprites-disentangle")
    assert (lesson.family, lesson.hparams, lesson.dataset) == (recipe.family, recipe.hparams, recipe.dataset)
    assert (lesson.batch_size, lesson.lr, lesson.max_steps) == (recipe.batch_size, recipe.lr, 3000)
    assert "--grid beta=1,2,4,6,10" in lesson.description


def test_views_are_the_documented_ones():
    assert VIEWS == ("curves", "table", "traversals", "recon", "kl", "mi", "rd")


def test_the_figure_table_has_the_best_scores_of_the_csv_and_the_app(sweep_folder, tmp_path):
    from engine.compare import Comparison
    from engine.compare_figure import figure_table

    table = tmp_path / "t.csv"
    assert main(["compare", str(sweep_folder), "--views", "table", "--out", str(tmp_path / "t.png"),
                 "--csv", str(table)]) == 0
    rows = read_csv(table)
    shown = figure_table(Comparison.open([str(sweep_folder)]))
    for name, title in (("test/total best", "test loss best (min)"), ("test/recon final", "test recon final"),
                        ("test/recon best", "test recon best (min)")):
        column = shown.columns.index(title)
        assert [float(r[name]) for r in rows] == pytest.approx([row[column] for row in shown.rows], rel=1e-5)
    assert shown.columns.index("test loss best (min)") > shown.columns.index("recon")


def test_log_y_draws_the_curves_on_a_log_scale(sweep_folder, tmp_path):
    from engine.compare import Comparison
    from engine.compare_figure import comparison_figure

    log, auto = tmp_path / "log.png", tmp_path / "auto.png"
    for flags, png in ((["--log-y"], log), ([], auto)):
        assert main(["compare", str(sweep_folder), "--views", "curves", "--terms", "total", *flags,
                     "--out", str(png)]) == 0
    comparison = Comparison.open([str(sweep_folder)])
    drawn = np.asarray(Image.open(log).convert("RGB"))
    assert np.array_equal(drawn, comparison_figure(comparison, ("curves",), terms=["total"], log_y=True))
    linear = comparison_figure(comparison, ("curves",), terms=["total"], log_y=False)
    assert not np.array_equal(drawn, linear)
    assert np.array_equal(np.asarray(Image.open(auto).convert("RGB")), linear), "the total spans < 20×: linear"
