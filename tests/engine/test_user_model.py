"""A model from the user's own Python file, through the CLI: the starter (`new-model`, engine objective β-VAE, on a
small dSprites subset with the MIG probe) and a file with its own `loss` (MLP on the 8×8 digits) each train, resume,
sweep, evaluate, traverse, interpolate and sample; errors in the file are reported as its file:line and leave no run
folder; checkpoints record path, class and SHA-256 and run nothing without --model-file."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from engine import cli
from engine.checkpoint import ModelFileRequired, load_checkpoint, read_checkpoint, write_checkpoint
from engine.models import families
from engine.models.user_file import CONTRACT, UserModelError, file_sha256, load_model_file
from engine.training import TrainingSession

ROOT = Path(__file__).resolve().parents[2]
DSPRITES = "dsprites?subset=160"

OWN_LOSS = '''
import torch
from torch import nn
import torch.nn.functional as F


class TinyVAE(nn.Module):
    """An MLP VAE with its own objective (β fixed by a hyperparameter)."""

    HYPERPARAMS = {"latent_dim": 3, "hidden": 32, "beta": 2.0}

    def __init__(self, shape, latent_dim=3, hidden=32, beta=2.0):
        super().__init__()
        c, h, w = shape
        self.latent_dim, self.beta, self.shape = latent_dim, beta, (c, h, w)
        self.enc = nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, hidden), nn.ReLU(),
                                 nn.Linear(hidden, 2 * latent_dim))
        self.dec = nn.Sequential(nn.Linear(latent_dim, hidden), nn.ReLU(), nn.Linear(hidden, c * h * w))

    def encode(self, x, y=None):
        mean, logvar = self.enc(x).chunk(2, dim=1)
        return mean, logvar

    def decode(self, z, y=None):
        return self.dec(z).view(len(z), *self.shape)

    def loss(self, x, y, step):
        mean, logvar = self.encode(x)
        z = mean + torch.randn_like(mean) * (0.5 * logvar).exp()
        recon = F.binary_cross_entropy_with_logits(self.decode(z), x, reduction="sum") / len(x)
        kl = 0.5 * (mean.pow(2) + logvar.exp() - 1 - logvar).sum(1).mean()
        return {"total": recon + self.beta * kl, "recon": recon, "kl": kl, "step_seen": float(step)}
'''


def run(*args: str, capsys) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def starter(tmp_path_factory) -> dict[str, Path]:
    """`new-model`, then a short β-VAE run of the starter on dSprites with the MIG probe on."""
    folder = tmp_path_factory.mktemp("starter")
    model_file = folder / "my_vae.py"
    assert cli.main(["new-model", str(model_file)]) == 0
    out = folder / "run"
    code = cli.main(["train", "--model-file", str(model_file), "--dataset", DSPRITES, "--set", "channels=8",
                     "--set", "beta=2", "--max-steps", "6", "--batch-size", "16", "--probe-every", "0.01",
                     "--out", str(out), "--quiet"])
    assert code == 0
    return {"file": model_file, "run": out, "ckpt": out / "checkpoints" / "last.safetensors"}


@pytest.fixture(scope="module")
def own_loss(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("own")
    model_file = folder / "tiny.py"
    model_file.write_text(OWN_LOSS)
    out = folder / "run"
    assert cli.main(["train", "--model-file", f"{model_file}:TinyVAE", "--dataset", "digits", "--max-steps", "12",
                     "--batch-size", "64", "--out", str(out), "--quiet"]) == 0
    return {"file": model_file, "run": out, "ckpt": out / "checkpoints" / "last.safetensors"}


def test_starter_trains_with_the_engine_objective_and_its_form(starter):
    meta, _ = read_checkpoint(starter["ckpt"])
    assert meta["family"] == "my_vae.MyVAE" and meta["step"] == 6
    assert meta["hparams"]["channels"] == 8 and meta["hparams"]["beta"] == 2.0
    assert meta["model_file"] == {"path": str(starter["file"].resolve()), "class": "MyVAE",
                                  "sha256": file_sha256(starter["file"])}
    assert starter["file"].read_text() not in json.dumps(meta)  # never the code
    names = [h.name for h in families()["my_vae.MyVAE"].all_hparams()]
    assert names[:2] == ["latent_dim", "channels"] and "beta" in names and "backbone" not in names
    records = [json.loads(line) for line in (starter["run"] / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if r["kind"] == "step"]
    assert {"total", "recon", "kl"} <= set(steps[-1]["terms"]) and steps[-1]["live"]["beta"] == 2.0
    assert any(r["kind"] == "probe" for r in records)  # the live MIG probe ran on the user's model


def test_starter_checkpoint_explores_through_the_cli(starter, tmp_path, capsys):
    ckpt, model_file = starter["ckpt"], starter["file"]
    code, out, err = run("eval", ckpt, "--model-file", model_file, "--iwae-k", "4", "--iwae-subset", "8", "--json",
                         capsys=capsys)
    assert code == 0, err
    result = json.loads(out)
    assert result["family"] == "my_vae.MyVAE" and result["iwae_nll"] > 0 and result["neg_elbo"] > 0
    for command, extra in (("traverse", ["--out", tmp_path / "t.png", "--dims", "0,1", "--steps", "3"]),
                           ("interpolate", ["--out", tmp_path / "i.png", "--steps", "3"]),
                           ("sample", ["--out", tmp_path / "s.png", "--n", "4"])):
        code, _, err = run(command, ckpt, "--model-file", model_file, *extra, capsys=capsys)
        assert code == 0, err
        assert extra[1].stat().st_size > 0


def test_starter_resumes_and_sweeps(starter, tmp_path, capsys):
    code, out, err = run("train", "--resume", starter["ckpt"], "--model-file", starter["file"], "--max-steps", "8",
                         "--out", tmp_path / "resumed", "--quiet", capsys=capsys)
    assert code == 0, err
    assert load_checkpoint(tmp_path / "resumed" / "checkpoints" / "last.safetensors").step == 8
    code, out, err = run("sweep", "--config", starter["run"] / "config.toml", "--model-file", starter["file"],
                         "--grid", "beta=1,3", "--max-steps", "2", "--metrics", "mig", "--metric-sizes", "quick",
                         "--out", tmp_path / "sweep", "--quiet", capsys=capsys)
    assert code == 0, err
    rows = json.loads((tmp_path / "sweep" / "summary.json").read_text())["runs"]
    assert [r["status"] for r in rows] == ["completed", "completed"] and [r["beta"] for r in rows] == [1, 3]
    assert all(isinstance(r.get("mig"), float) for r in rows)


def test_own_loss_terms_are_logged_and_every_command_works(own_loss, tmp_path, capsys):
    meta, _ = read_checkpoint(own_loss["ckpt"])
    assert meta["family"] == "tiny.TinyVAE" and set(meta["hparams"]) == {"latent_dim", "hidden", "beta", "likelihood",
                                                                         "sigma"}
    last = [json.loads(line) for line in (own_loss["run"] / "metrics.jsonl").read_text().splitlines()
            if '"kind": "step"' in line][-1]
    assert last["terms"]["step_seen"] == 11.0 and {"total", "recon", "kl"} <= set(last["terms"])
    ckpt, model_file = own_loss["ckpt"], own_loss["file"]
    code, out, err = run("eval", ckpt, "--model-file", model_file, "--iwae-k", "0", capsys=capsys)
    assert code == 0 and "active units" in out, err
    for command, extra in (("traverse", ["--out", tmp_path / "t.gif", "--steps", "3"]),
                           ("interpolate", ["--out", tmp_path / "i.png"]),
                           ("sample", ["--out", tmp_path / "s.png", "--n", "4"])):
        code, _, err = run(command, ckpt, "--model-file", model_file, *extra, capsys=capsys)
        assert code == 0, err
    code, _, err = run("train", "--resume", ckpt, "--model-file", model_file, "--max-steps", "14",
                       "--out", tmp_path / "resumed", "--quiet", capsys=capsys)
    assert code == 0, err


def test_models_lists_a_file_s_hyperparameters(own_loss, capsys):
    code, out, err = run("models", "--model-file", own_loss["file"], capsys=capsys)
    assert code == 0, err
    assert out.startswith("tiny.TinyVAE — TinyVAE from tiny.py") and "hidden" in out and "backbone" not in out


def test_a_changed_file_is_warned_about(own_loss, tmp_path, capsys):
    changed = tmp_path / "tiny.py"
    changed.write_text(OWN_LOSS + "\n# an edit\n")
    code, _, err = run("sample", own_loss["ckpt"], "--model-file", changed, "--out", tmp_path / "s.png",
                       capsys=capsys)
    assert code == 0 and "has changed since" in err


BROKEN = {
    "import": ("import torch\nfrom torch import nn\nimport no_such_module_here\n", 3, "ModuleNotFoundError"),
    "shape": ("import torch\nfrom torch import nn\n\n\nclass M(nn.Module):\n    latent_dim = 2\n\n"
              "    def __init__(self):\n        super().__init__()\n        self.w = nn.Linear(64, 2)\n\n"
              "    def encode(self, x, y=None):\n        return self.w(x.flatten(1)), None\n\n"
              "    def decode(self, z, y=None):\n        return z\n", 15, "decode() returned (2, 2)"),
    "nan": ("import torch\nfrom torch import nn\n\n\nclass M(nn.Module):\n    latent_dim = 2\n\n"
            "    def __init__(self):\n        super().__init__()\n        self.w = nn.Linear(64, 4)\n\n"
            "    def encode(self, x, y=None):\n        return self.w(x.flatten(1)).chunk(2, 1)\n\n"
            "    def decode(self, z, y=None):\n        return z.sum(1).log().view(-1, 1, 1, 1).expand(-1, 1, 8, 8) * 0 "
            "+ float('nan')\n", 15, "decode() is not finite"),
    "no total": ("import torch\nfrom torch import nn\n\n\nclass M(nn.Module):\n    latent_dim = 2\n\n"
                 "    def __init__(self):\n        super().__init__()\n        self.w = nn.Linear(64, 2)\n"
                 "        self.v = nn.Linear(2, 64)\n\n"
                 "    def encode(self, x, y=None):\n        return self.w(x.flatten(1)), None\n\n"
                 "    def decode(self, z, y=None):\n        return self.v(z).view(-1, 1, 8, 8)\n\n"
                 "    def loss(self, x, y, step):\n"
                 "        return {'recon': self.v(self.w(x.flatten(1))).pow(2).mean()}\n",
                 19, 'loss() must return a dict with a "total" entry'),
    "raises": ("import torch\nfrom torch import nn\n\n\nclass M(nn.Module):\n    latent_dim = 2\n\n"
               "    def __init__(self):\n        super().__init__()\n        self.w = nn.Linear(64, 2)\n\n"
               "    def encode(self, x, y=None):\n        return self.w(x), None\n\n"
               "    def decode(self, z, y=None):\n        return z\n", 13, "RuntimeError"),
}


@pytest.mark.parametrize("kind", list(BROKEN))
def test_errors_in_the_file_name_its_line_and_leave_no_run_folder(kind, tmp_path, capsys):
    source, line, text = BROKEN[kind]
    model_file = tmp_path / "broken.py"
    model_file.write_text(source)
    out = tmp_path / "run"
    code, _, err = run("train", "--model-file", model_file, "--dataset", "digits", "--max-steps", "2", "--out", out,
                       capsys=capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err
    assert f"{model_file}:{line}:" in lines[0] and text in lines[0], lines[0]
    assert "latent_dim" in lines[0] and "docs/your-model.md" in lines[0]  # the contract, explained
    assert not out.exists()


def test_nan_during_training_names_the_file(tmp_path):
    model_file = tmp_path / "blowup.py"
    model_file.write_text(OWN_LOSS.replace('return {"total": recon + self.beta * kl',
                                           'return {"total": (recon + self.beta * kl) * (1 if step < 2 else '
                                           'float("nan"))'))
    cls = load_model_file(model_file)
    from engine.config import TrainConfig
    from engine.events import Failed

    session = TrainingSession(TrainConfig(dataset="digits", family=cls.family, max_steps=5, batch_size=64))
    failed = [e for e in session.run() if isinstance(e, Failed)]
    assert failed and "nan" in failed[0].cause.lower() and str(model_file) in failed[0].cause
    assert session.step == 2


def test_contract_text_is_one_paragraph():
    assert "\n" not in CONTRACT and "encode(x, y=None)" in CONTRACT and '"total"' in CONTRACT
    with pytest.raises(UserModelError, match="no such model file"):
        load_model_file("/nonexistent/model.py")


# --- safety: a crafted checkpoint naming an existing Python file runs nothing on its own ------------------------------
EVIL = textwrap.dedent('''
    from pathlib import Path
    Path({marker!r}).write_text("ran")
    from torch import nn


    class Evil(nn.Module):
        latent_dim = 3

        def encode(self, x, y=None):
            return x, None

        def decode(self, z, y=None):
            return z
''')


def test_a_planted_checkpoint_runs_no_code_without_the_explicit_step(own_loss, tmp_path, capsys):
    marker = tmp_path / "MARKER"
    evil = tmp_path / "evil.py"
    evil.write_text(EVIL.format(marker=str(marker)))
    meta, tensors = read_checkpoint(own_loss["ckpt"])
    header = {k: v for k, v in meta.items() if k not in ("format", "version")}
    header["family"] = "evil.Evil"
    header["config"] = header["config"].replace('family = "tiny.TinyVAE"', 'family = "evil.Evil"')
    header["model_file"] = {"path": str(evil), "class": "Evil", "sha256": file_sha256(evil)}
    planted = write_checkpoint(tmp_path / "planted.safetensors", tensors, header)

    fresh = subprocess.run([sys.executable, str(ROOT / "main.py"), "eval", str(planted), "--iwae-k", "0"],
                           capture_output=True, text=True, cwd=ROOT, timeout=120,
                           env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
    assert fresh.returncode == 1 and "--model-file" in fresh.stderr and str(evil) in fresh.stderr, fresh.stderr
    for command, extra in (("traverse", ["--out", tmp_path / "t.png"]), ("interpolate", ["--out", tmp_path / "i.png"]),
                           ("sample", ["--out", tmp_path / "s.png"]), ("eval", [])):
        code, _, err = run(command, planted, *extra, capsys=capsys)
        assert code == 1 and "runs no code by itself" in err
    code, _, err = run("train", "--resume", planted, "--max-steps", "20", "--out", tmp_path / "r", capsys=capsys)
    assert code == 1 and not (tmp_path / "r").exists()
    code, _, err = run("compare", planted, own_loss["ckpt"], "--out", tmp_path / "c.png", capsys=capsys)
    assert code == 1 and "runs no code by itself" in err and not (tmp_path / "c.png").exists()
    with pytest.raises(ModelFileRequired) as caught:
        load_checkpoint(planted)
    assert caught.value.model_path == str(evil) and caught.value.class_name == "Evil"
    with pytest.raises(ModelFileRequired):
        TrainingSession.from_checkpoint(planted)
    assert not marker.exists()
    assert "evil.Evil" not in families()


def test_compare_runs_a_model_file_only_when_given_it(own_loss, tmp_path, capsys):
    fresh = subprocess.run([sys.executable, str(ROOT / "main.py"), "compare", str(own_loss["ckpt"]),
                            "--out", str(tmp_path / "no.png"), "--views", "table"],
                           capture_output=True, text=True, cwd=ROOT, timeout=120,
                           env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
    assert fresh.returncode == 1 and "--model-file" in fresh.stderr and not (tmp_path / "no.png").exists()
    code, _, err = run("compare", own_loss["ckpt"], "--model-file", f"{own_loss['file']}:TinyVAE",
                       "--out", tmp_path / "c.png", "--csv", tmp_path / "c.csv", "--views", "table,kl,curves",
                       capsys=capsys)
    assert code == 0, err
    assert (tmp_path / "c.png").stat().st_size > 0 and "tiny.TinyVAE" in (tmp_path / "c.csv").read_text()


def test_a_checkpoint_cannot_put_a_file_in_place_of_a_built_in_family(own_loss, tmp_path):
    meta, tensors = read_checkpoint(own_loss["ckpt"])
    header = {k: v for k, v in meta.items() if k not in ("format", "version")}
    header["family"] = "vae"
    crafted = write_checkpoint(tmp_path / "crafted.safetensors", tensors, header)
    with pytest.raises(ModelFileRequired):
        load_checkpoint(crafted)
    with pytest.raises(UserModelError, match="cannot take the name 'vae'"):
        load_checkpoint(crafted, model_file=own_loss["file"])
    assert families()["vae"].__module__ == "engine.models.vae"


def test_builtin_checkpoints_carry_no_model_file(tmp_path):
    from engine.config import TrainConfig

    session = TrainingSession(TrainConfig(dataset="digits", family="ae", max_steps=1, hparams={"hidden": 16}))
    list(session.run())
    path = session.save_checkpoint(tmp_path / "ae.safetensors")
    meta, _ = read_checkpoint(path)
    assert "model_file" not in meta
    loaded = load_checkpoint(path, model_file=tmp_path / "ignored.py")
    assert loaded.model.family == "ae" and "ignored" in loaded.warnings[0]
    assert torch.equal(loaded.model.state_dict()["to_code.weight"], session.model.state_dict()["to_code.weight"])


def test_the_example_in_docs_trains(tmp_path):
    text = (ROOT / "docs" / "your-model.md").read_text()
    block = text.split("```python\n", 1)[1].split("```", 1)[0]
    model_file = tmp_path / "tiny_vae.py"
    model_file.write_text(block)
    from engine.config import TrainConfig

    cls = load_model_file(model_file)
    session = TrainingSession(TrainConfig(dataset="digits", family=cls.family, max_steps=3, batch_size=32,
                                          hparams={"latent_dim": 2}))
    list(session.run())
    assert session.step == 3 and session.model.latent_dim == 2 and session.model.can_sample


CONDITIONAL = '''
import torch
from torch import nn
import torch.nn.functional as F


class CondAE(nn.Module):
    """A conditional autoencoder trained with the engine's AE objective: y is one-hot concatenated to both ends."""

    objective = "ae"

    def __init__(self, shape, num_classes):
        super().__init__()
        self.latent_dim, self.shape, self.k = 2, shape, num_classes
        size = shape[0] * shape[1] * shape[2]
        self.enc = nn.Linear(size + num_classes, 2)
        self.dec = nn.Linear(2 + num_classes, size)

    def encode(self, x, y=None):
        return self.enc(torch.cat([x.flatten(1), F.one_hot(y, self.k).float()], 1)), None

    def decode(self, z, y=None):
        return self.dec(torch.cat([z, F.one_hot(y, self.k).float()], 1)).view(len(z), *self.shape)
'''


def test_a_conditional_model_gets_labels(tmp_path, capsys):
    model_file = tmp_path / "cond.py"
    model_file.write_text(CONDITIONAL)
    out = tmp_path / "run"
    code, _, err = run("train", "--model-file", model_file, "--dataset", "digits", "--max-steps", "3", "--out", out,
                       "--quiet", capsys=capsys)
    assert code == 0, err
    model = load_checkpoint(out / "checkpoints" / "last.safetensors", model_file=model_file).model
    assert model.is_conditional and model.num_classes == 10 and not model.is_variational
    code, _, err = run("interpolate", out / "checkpoints" / "last.safetensors", "--model-file", model_file, "--out",
                       tmp_path / "i.png", capsys=capsys)
    assert code == 0, err


MLP_WITH_OBJECTIVE = """
from torch import nn


class Net(nn.Module):
    objective = {objective!r}

    def __init__(self, shape):
        super().__init__()
        self.latent_dim, self.shape = 3, shape
        self.enc = nn.Sequential(nn.Flatten(), nn.Linear(64, 6))
        self.dec = nn.Linear(3, 64)

    def encode(self, x, y=None):
        mean, logvar = self.enc(x).chunk(2, 1)
        return mean, logvar

    def decode(self, z, y=None):
        return self.dec(z).view(len(z), *self.shape)
"""


@pytest.mark.parametrize("objective, family, terms", [
    ("ae", "ae", {"recon"}), ("vae", "vae", {"recon", "kl"}), ("beta-vae", "beta-vae", {"kl", "beta"}),
    ("capacity", "capacity-vae", {"kl", "C", "gamma"}), ("beta-tcvae", "beta-tcvae", {"mi", "tc", "dim_kl"}),
    ("factor-vae", "factor-vae", {"tc", "disc_loss", "disc_accuracy"})])
def test_each_engine_objective_is_the_built_in_family_s_code(objective, family, terms, tmp_path):
    from engine.config import TrainConfig

    model_file = tmp_path / f"net_{family.replace('-', '_')}.py"
    model_file.write_text(MLP_WITH_OBJECTIVE.format(objective=objective))
    cls = load_model_file(model_file)
    builtin = families()[family]
    assert issubclass(cls, builtin) and cls.loss is builtin.loss and cls.formula == builtin.formula
    session = TrainingSession(TrainConfig(dataset="digits", family=cls.family, max_steps=2, batch_size=32))
    list(session.run())
    last = [r for r in session.history if r["kind"] == "step"][-1]
    assert session.step == 2 and terms <= set(last["terms"]) | set(last["live"]), last
