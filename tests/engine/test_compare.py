"""engine.compare without Qt: opening models (examples, run folders, sweep folders), labels, colours, curves, tables,
matched factor rows, side-by-side traversals, reconstructions, samples, KL/MI on one scale, rate–distortion and
scores on demand — including a VQ-VAE, a conditional model and a dataset without factors."""

from __future__ import annotations

import dataclasses
import itertools
import json

import numpy as np
import pytest
import torch

from engine import explore
from engine.compare import (
    MAX_MODELS,
    PALETTE,
    CompareError,
    Comparison,
    DatasetCache,
    Unavailable,
    expand_specs,
    load_entry,
)
from engine.config import TrainConfig
from engine.control import Control
from engine.errors import CheckpointError
from engine.evaluate import EvaluationCancelled, evaluate
from engine.examples import find_example
from engine.metrics import MetricSizes, compute_metrics
from engine.scoring import model_representation
from engine.sweep import SweepRunner, parse_grid, plan_sweep
from engine.training import TrainingSession

TINY = {"latent_dim": 3, "backbone": "mlp", "hidden": 16, "depth": 1}
EXAMPLES = ["example:dsprites-disentangle", "example:dsprites-vae"]


def train_run(folder, family: str, dataset: str = "digits", steps: int = 6, **hparams) -> str:
    """A tiny run folder (metrics.jsonl + checkpoints/last.safetensors)."""
    config = TrainConfig(dataset=dataset, family=family, hparams={**TINY, **hparams}, max_steps=steps, batch_size=32,
                         preview_every_s=60.0, out_dir=str(folder))
    for _ in TrainingSession(config).run(Control()):
        pass
    return str(folder)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare_runs")
    return {"vae": train_run(root / "vae", "vae"), "cvae": train_run(root / "cvae", "cvae"),
            "vq": train_run(root / "vq", "vq-vae", positions=2, codebook_size=8)}


@pytest.fixture(scope="module")
def examples():
    return Comparison.open(EXAMPLES)


@pytest.fixture(scope="module")
def mixed(runs):
    """A factor model, a non-factor VAE, a conditional VAE and a VQ-VAE in one comparison."""
    return Comparison.open([EXAMPLES[0], runs["vae"], runs["cvae"], runs["vq"]])


@pytest.fixture(scope="module")
def sweep_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("compare_sweep")
    base = TrainConfig(dataset="digits", family="beta-vae", hparams=dict(TINY), max_steps=5, batch_size=32,
                       preview_every_s=60.0)
    runner = SweepRunner(plan_sweep(base, parse_grid("beta=4,1"), out_dir=folder), out_dir=folder, metrics=(),
                         traversals=False)
    for _ in runner.run(Control()):
        pass
    return folder


# --- opening ---------------------------------------------------------------------------------------------------
def test_examples_share_one_dataset_and_keep_their_manifest_scores(examples):
    a, b = examples.entries
    assert a.dataset is b.dataset
    assert torch.equal(a.test_indices, b.test_indices)
    assert a.scores["mig"] == pytest.approx(find_example("dsprites-disentangle").scores["mig"])
    assert a.family == "beta-tcvae" and b.family == "vae" and not a.model.training
    assert a.hyperparams["beta"] == 6.0 and a.step == 6000


def test_labels_name_family_and_the_differing_hyperparameters(examples):
    assert list(examples.default_labels().values()) == ["β-TCVAE β=6", "VAE β=1"]
    examples.set_label(examples.keys[1], "  plain   VAE ")
    assert examples.label(examples.keys[1]) == "plain VAE"
    examples.set_label(examples.keys[1], "")
    assert examples.label(examples.keys[1]) == "VAE β=1"


def test_colours_are_stable_when_models_leave_and_join(runs):
    comparison = Comparison([load_entry(runs["vae"], key="a"), load_entry(runs["cvae"], key="b"),
                             load_entry(runs["vq"], key="c")])
    assert [comparison.colour(k) for k in "abc"] == list(PALETTE[:3])
    comparison.remove("b")
    assert comparison.colour("c") == PALETTE[2]
    comparison.add(load_entry(runs["vae"], key="d"))
    assert comparison.colour("d") == PALETTE[1]


def test_newer_weights_replace_an_entry_in_place(runs):
    """What the app does while it follows a running session: same colour, same user label, fresh statistics."""
    comparison = Comparison([load_entry(runs["vae"], key="a"), load_entry(runs["cvae"], key="live")])
    comparison.entry("live").tag = "live"
    assert comparison.label("live").endswith("(live)") and not comparison.label("a").endswith(")")
    before = comparison._latent_stats(comparison.entry("live"))
    newer = load_entry(runs["cvae"], key="live")
    with torch.no_grad():
        for parameter in newer.model.parameters():
            parameter.add_(0.5)
    newer.tag = "run-7"
    comparison.set_label("a", "mine")
    assert comparison.replace(newer) is newer and comparison.entry("live") is newer
    assert comparison.keys == ["a", "live"] and comparison.colour("live") == PALETTE[1]
    assert comparison.label("live").endswith("(run-7)") and comparison.label("a") == "mine"
    after = comparison._latent_stats(newer)
    assert after is not before and not np.allclose(after.kl_per_dim, before.kl_per_dim)
    with pytest.raises(CompareError, match="not in the comparison"):
        comparison.replace(load_entry(runs["vae"], key="nope"))


def _lab(rgb) -> np.ndarray:
    """sRGB (0–255) → CIELAB (D65)."""
    c = np.asarray(rgb, dtype=np.float64) / 255
    c = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = c @ np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]).T
    f = xyz / np.array([0.95047, 1.0, 1.08883])
    f = np.where(f > 0.008856, np.cbrt(f), 7.787 * f + 16 / 116)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def _contrast(a, b) -> float:
    """WCAG contrast ratio of two sRGB colours."""
    def luminance(rgb):
        c = np.asarray(rgb, dtype=np.float64) / 255
        c = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
        return float(c @ [0.2126, 0.7152, 0.0722])

    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_palette_has_six_clearly_distinct_hues_readable_on_both_backgrounds():
    assert len(PALETTE) == MAX_MODELS == len(set(PALETTE))
    labs = [_lab(c) for c in PALETTE]
    for i, j in itertools.combinations(range(len(PALETTE)), 2):
        hue_i, hue_j = (np.degrees(np.arctan2(lab[2], lab[1])) % 360 for lab in (labs[i], labs[j]))
        gap = min(abs(hue_i - hue_j), 360 - abs(hue_i - hue_j))
        assert gap >= 20, f"{PALETTE[i]} and {PALETTE[j]} are one hue ({gap:.0f}° apart): told apart by lightness only"
        assert np.linalg.norm(labs[i] - labs[j]) >= 25, (PALETTE[i], PALETTE[j])
    for colour in PALETTE:  # the figures' white page and the tab's #1e1e1e plots
        assert _contrast(colour, (255, 255, 255)) >= 2.0 and _contrast(colour, (30, 30, 30)) >= 3.0, colour


def test_more_than_six_models_is_a_clear_error(runs):
    with pytest.raises(CompareError, match="at most 6"):
        Comparison.open([runs["vae"]] * (MAX_MODELS + 1))
    six = Comparison.open([runs["vae"]] * MAX_MODELS)
    assert len(set(six.keys)) == 6 and len(set(six.labels().values())) == 6
    with pytest.raises(CompareError):
        six.add(load_entry(runs["vae"], key="seventh"))


def test_bad_specs_are_clear_errors(tmp_path):
    with pytest.raises(CompareError, match="neither a run folder"):
        expand_specs([str(tmp_path)])
    with pytest.raises(CheckpointError):
        load_entry(str(tmp_path / "missing.safetensors"))
    with pytest.raises(CheckpointError, match="no such example"):
        load_entry("example:no-such-model")


def test_sweep_folder_expands_to_its_runs_with_swept_values(sweep_folder):
    specs = expand_specs([str(sweep_folder)])
    assert [p.rsplit("/", 1)[-1] for p in specs] == ["beta=4_seed0", "beta=1_seed0"]
    comparison = Comparison.open([str(sweep_folder)])
    assert [e.swept for e in comparison.entries] == [{"beta": 4}, {"beta": 1}]
    assert list(comparison.default_labels().values()) == ["β-VAE β=4", "β-VAE β=1"]
    assert all(e.history and e.score_source == "sweep result.json" for e in comparison.entries)
    rd = comparison.rate_distortion()
    assert rd.lines == [[comparison.keys[1], comparison.keys[0]]]  # joined by β: 1 then 4
    record = json.loads((sweep_folder / "beta=4_seed0" / "result.json").read_text())
    point = next(p for p in rd.points if p.key == comparison.keys[0])
    assert (point.kl, point.recon) == (pytest.approx(record["kl"]), pytest.approx(record["recon"]))


# --- curves and tables ---------------------------------------------------------------------------------------
def test_curves_against_step_images_and_wall_time(runs):
    comparison = Comparison.open([runs["vae"]])
    entry = comparison.entries[0]
    steps = [r for r in entry.history if r.get("kind") == "step"]
    assert "recon" in comparison.terms() and "test/recon" in comparison.terms()
    by_step = comparison.curve(entry.key, "recon", "step")
    assert list(by_step.x) == [r["step"] for r in steps]
    assert list(by_step.y) == pytest.approx([r["terms"]["recon"] for r in steps])
    assert list(comparison.curve(entry.key, "recon", "images").x) == [r["step"] * 32 for r in steps]
    wall = comparison.curve(entry.key, "recon", "wall").x
    expected, previous, clock = [], 0, 0.0
    for r in steps:
        clock += (r["step"] - previous) * 32 / r["samples_per_s"]
        previous = r["step"]
        expected.append(clock)
    assert list(wall) == pytest.approx(expected)
    assert isinstance(comparison.curve(entry.key, "probe/mig"), Unavailable)


def test_hyperparameter_table_differences_only(examples):
    full = examples.hyperparam_table()
    diff = examples.hyperparam_table(differences_only=True)
    assert "latent_dim" in full.columns and "latent_dim" not in diff.columns
    beta = diff.columns.index("beta")
    assert [row[beta] for row in diff.rows] == [6.0, 1.0]
    assert diff.rows[1][diff.columns.index("estimator")] == "—"


def test_scores_of_one_configuration_are_grouped_as_mean_and_std(runs):
    base = load_entry(runs["vae"])
    entries = [dataclasses.replace(base, key=f"s{s}", seed=s, scores={"mig": m, "recon": 10.0 + s})
               for s, m in ((0, 0.2), (1, 0.4), (2, 0.9))]
    other = dataclasses.replace(base, key="other", hyperparams={**base.hyperparams, "lr": 0.01}, scores={"mig": 0.5})
    table = Comparison([*entries, other]).score_table()
    assert table.keys == [["s0", "s1", "s2"], ["other"]]
    row = table.rows[0]
    assert row[1] == 3
    migs = [0.2, 0.4, 0.9]
    assert row[table.columns.index("mig")] == f"{np.mean(migs):.4g} ± {np.std(migs, ddof=1):.2g} (3)"
    assert table.rows[1][table.columns.index("mig")] == 0.5 and table.rows[1][table.columns.index("recon")] == ""


def test_table_shows_final_and_best_of_the_logged_terms_grouped_over_seeds(runs):
    base = load_entry(runs["vae"])

    def history(recon, mig):
        return ([{"kind": "epoch", "step": 10 * (i + 1), "test": {"recon": r, "total": r + 1.0}}
                 for i, r in enumerate(recon)] + [{"kind": "probe", "step": 10 * (i + 1), "mig": m}
                                                  for i, m in enumerate(mig)])

    entries = [dataclasses.replace(base, key="s0", seed=0, history=history([30.0, 20.0, 25.0], [0.1, 0.5, 0.3])),
               dataclasses.replace(base, key="s1", seed=1, history=history([28.0, 26.0, 22.0], [0.2, 0.4, 0.6])),
               dataclasses.replace(base, key="bare", hyperparams={**base.hyperparams, "lr": 0.01}, history=[])]
    comparison = Comparison(entries)
    assert comparison.history_scores("s0") == {"test/total final": 26.0, "test/total best": 21.0,
                                               "test/recon final": 25.0, "test/recon best": 20.0,
                                               "probe/mig final": 0.3, "probe/mig best": 0.5}
    assert comparison.history_scores("bare") == {}
    table = comparison.score_table(group_seeds=False)
    column = table.columns.index
    assert [row[column("test/recon best")] for row in table.rows] == [20.0, 22.0, ""]  # min of a loss
    assert [row[column("probe/mig best")] for row in table.rows] == [0.5, 0.6, ""]  # max of the probe
    assert [row[column("probe/mig final")] for row in table.rows] == [0.3, 0.6, ""]
    csv_table = comparison.csv_table()
    assert [row[csv_table.columns.index("probe/mig best")] for row in csv_table.rows] == [0.5, 0.6, ""]
    grouped = comparison.score_table()
    assert grouped.keys == [["s0", "s1"], ["bare"]]
    assert grouped.rows[0][grouped.columns.index("test/recon best")] == \
        f"{np.mean([20.0, 22.0]):.4g} ± {np.std([20.0, 22.0], ddof=1):.2g} (2)"


# --- factor rows and traversals --------------------------------------------------------------------------------
def test_matched_rows_follow_factor_order_then_unmatched_by_kl(examples):
    key = examples.keys[0]
    entry = examples.entry(key)
    saved = entry.mi
    names = ("shape", "scale", "orientation", "posX", "posY")
    mi = np.zeros((10, 5))
    mi[4, 3], mi[9, 4], mi[8, 1], mi[7, 4], mi[6, 0] = 0.8, 0.7, 0.6, 0.3, 0.05  # z6 below the match threshold
    entry.mi = (mi, names)
    try:
        rows = examples.matched_factor_rows(key)
    finally:
        entry.mi = saved
    assert [(r.dim, r.factor) for r in rows[:4]] == [(8, "scale"), (4, "posX"), (9, "posY"), (7, "posY")]
    kl = examples._latent_stats(entry).kl_per_dim
    assert [r.dim for r in rows[4:]] == sorted({0, 1, 2, 3, 5, 6}, key=lambda d: -kl[d])
    assert not any(r.matched for r in rows[4:])


def test_traversals_share_base_image_range_and_factor_rows(examples):
    cells = examples.traversal_cells([3], span=2.0, steps=5)
    a, b = (cells[k] for k in examples.keys)
    assert np.array_equal(a.base_images, b.base_images)
    assert list(a.values) == pytest.approx(list(np.linspace(-2, 2, 5)))
    assert a.cells.shape[1] == b.cells.shape[1] == 5
    names = ("shape", "scale", "orientation", "posX", "posY")
    matched = {r.factor for k in examples.keys for r in examples.matched_factor_rows(k) if r.matched}
    order = [f for f in names if f in matched]
    assert len(order) >= 3
    for traversal in (a, b):  # one slot per factor, in the same order for both models: posX beside posX
        assert [label.split(" · ")[0].split(":")[0] for label in traversal.row_labels[:len(order)]] == order
    entry = examples.entry(examples.keys[0])
    row = next(i for i, label in enumerate(a.row_labels) if label.startswith("posX · z"))
    dim = int(a.row_labels[row].split(" · ")[1][1:])
    base = explore.encode_means(entry.model, entry.dataset.images_at(entry.test_indices[3:4]))
    direct = explore.traversal_images(entry.model, base, [dim], np.linspace(-2, 2, 5, dtype=np.float32))
    expected = (direct.clamp(0, 1) * 255).round().to(torch.uint8)[:, 0].numpy()
    assert np.array_equal(a.cells[row], expected)


def test_mixed_models_each_view_answers_with_data_or_a_reason(mixed):
    keys = dict(zip(("factor", "vae", "cvae", "vq"), mixed.keys, strict=True))
    cells = mixed.traversal_cells([0], steps=4)
    assert isinstance(cells[keys["vq"]], Unavailable) and "discrete" in cells[keys["vq"]].reason
    assert "its own data: digits" in cells[keys["vae"]].note
    assert "no ground-truth factors" in cells[keys["vae"]].note
    assert cells[keys["cvae"]].cells.shape[:2] == (3, 4)
    assert isinstance(mixed.matched_factor_rows(keys["vae"]), Unavailable)
    assert "discrete" in mixed.matched_factor_rows(keys["vq"]).reason
    kl = mixed.kl_per_dim()
    assert isinstance(kl.values[keys["vq"]], Unavailable)
    assert kl.vmax == pytest.approx(max(float(v.max()) for v in kl.values.values() if isinstance(v, np.ndarray)))
    mi = mixed.mi_matrices()
    assert isinstance(mi.values[keys["cvae"]], Unavailable) and isinstance(mi.values[keys["vae"]], Unavailable)
    assert mi.values[keys["factor"]].shape == (10, 5) and mi.vmax == pytest.approx(mi.values[keys["factor"]].max())
    recon = mixed.reconstructions(range(3))
    assert all(recon[k].inputs.shape == recon[k].outputs.shape for k in mixed.keys)
    assert recon[keys["factor"]].inputs.shape == (3, 1, 64, 64) and recon[keys["vae"]].inputs.shape == (3, 1, 8, 8)
    samples = mixed.prior_samples(4, seed=7)
    assert all(samples[k].shape[0] == 4 for k in mixed.keys)
    assert np.array_equal(samples[keys["vae"]], mixed.prior_samples(4, seed=7)[keys["vae"]])
    rd = mixed.rate_distortion()
    assert keys["vq"] in rd.unavailable and {p.key for p in rd.points} == {keys["factor"], keys["vae"], keys["cvae"]}
    assert "conditional" in mixed.score_unavailable(keys["cvae"]).reason


def test_traversal_gif_frames_move_every_model_together(examples):
    from engine.compare_figure import traversal_frames

    frames = traversal_frames(examples, base=0, span=2.0, steps=4)
    assert len(frames) == 4 + 2  # forth and back
    assert len({f.shape for f in frames}) == 1 and frames[0].dtype == np.uint8
    assert not np.array_equal(frames[0], frames[3]) and np.array_equal(frames[1], frames[5])


def _contains(page: np.ndarray, part: np.ndarray, x: int) -> bool:
    """`part` pasted into `page` with its left edge at column x (at any row)."""
    h, w = part.shape[:2]
    return any(np.array_equal(page[y:y + h, x:x + w], part) for y in range(page.shape[0] - h + 1))


def test_the_figure_draws_the_chosen_terms_against_the_chosen_x(examples):
    from engine.compare_figure import MARGIN, _Fonts, comparison_figure, curves_view

    fonts = _Fonts()
    chosen = np.asarray(curves_view(examples, fonts, ["test/total"], "images"))
    default = np.asarray(curves_view(examples, fonts))
    figure = comparison_figure(examples, ("curves",), terms=["test/total"], x="images")
    assert _contains(figure, chosen, MARGIN) and not _contains(figure, default, MARGIN)
    assert _contains(comparison_figure(examples, ("curves",)), default, MARGIN)
    assert chosen.shape[1] < default.shape[1]  # one plot, not recon and KL side by side
    with pytest.raises(ValueError, match="nope not logged by any model; choose from total, recon"):
        comparison_figure(examples, ("curves",), terms=["nope"])
    with pytest.raises(ValueError, match="unknown x axis 'epoch'"):
        comparison_figure(examples, ("curves",), x="epoch")


# --- scores on demand --------------------------------------------------------------------------------------------
def test_scores_on_demand_match_evaluate_and_metrics(runs):
    comparison = Comparison.open([runs["vae"]])
    entry = comparison.entries[0]
    progress = []
    new = comparison.compute_scores(progress=lambda f, m: progress.append(f))
    direct = evaluate(entry.model, entry.dataset, entry.test_indices[:2000], iwae_k=0)
    assert new[entry.key]["recon"] == pytest.approx(direct["recon"])
    assert entry.scores["kl"] == pytest.approx(direct["kl"])
    assert "mig" not in entry.scores  # digits have no factors
    assert progress[-1] == 1.0 and progress == sorted(progress)


def test_disentanglement_scores_on_demand_and_cancel(examples):
    comparison = Comparison([dataclasses.replace(examples.entries[1], key="copy", scores={})],
                            datasets=DatasetCache())
    entry = comparison.entries[0]
    with pytest.raises(EvaluationCancelled):
        comparison.compute_scores(metrics=["mig"], cancel=lambda: True)
    assert entry.scores == {}
    sizes = MetricSizes.quick()
    comparison.compute_scores(metrics=["mig"], sizes=sizes, elbo_images=64)
    direct = compute_metrics(model_representation(entry.model, entry.dataset), entry.dataset, ["mig"], 0, sizes)
    assert entry.scores["mig"] == pytest.approx(direct["mig"])
    assert entry.mi[0].shape == (10, 5)
