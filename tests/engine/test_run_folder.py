"""RunFolder (engine/run_folder.py), the one writer of a run folder: what each call writes and where. Killing a
writer mid-file is tested end to end in tests/engine/test_faults_kill.py and test_faults_cli.py."""

from __future__ import annotations

import csv
import json

import numpy as np

from engine.events import Preview
from engine.run_folder import PREVIEW_PNGS_KEEP_LAST, RunFolder, checkpoint_name


def opened(tmp_path, every_s: float = 0.0, clock=lambda: 0.0) -> RunFolder:
    return RunFolder(tmp_path / "run").open('[training]\nseed = 3\n', preview_png_every_s=every_s, clock=clock)


def test_open_writes_config_and_records_go_to_metrics_jsonl_one_per_line(tmp_path):
    folder = opened(tmp_path)
    assert (folder.path / "config.toml").read_text() == '[training]\nseed = 3\n'
    assert folder.checkpoints.is_dir() and not folder.has_checkpoint()
    folder.record_step({"kind": "step", "step": 1, "epoch": 1, "terms": {"total": 2.5}, "live": {}})
    folder.record_epoch({"kind": "epoch", "epoch": 1, "step": 1, "train": {}, "test": {"total": 3.0}})
    folder.record_probe({"kind": "probe", "step": 1, "mig": 0.25})
    folder.close()
    lines = (folder.path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["kind"] for line in lines] == ["step", "epoch", "probe"]
    assert json.loads(lines[0])["terms"] == {"total": 2.5}
    assert not [p for p in folder.path.iterdir() if p.name.endswith(".tmp")]


def test_reopening_cuts_a_half_written_record_and_appends(tmp_path):
    folder = opened(tmp_path)
    folder.record_step({"kind": "step", "step": 1, "epoch": 1, "terms": {}, "live": {}})
    folder.close()
    with open(folder.path / "metrics.jsonl", "a", encoding="utf-8") as handle:
        handle.write('{"kind": "step", "ste')  # a killed run's last write
    again = opened(tmp_path)
    again.record_step({"kind": "step", "step": 2, "epoch": 1, "terms": {}, "live": {}})
    again.close()
    steps = [json.loads(line)["step"] for line in (folder.path / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2]


def test_checkpoints_are_named_by_step_and_last_is_the_newest(tmp_path):
    folder = opened(tmp_path)
    saved = []

    def save(path):
        path.write_bytes(f"weights of {path.name}".encode())
        saved.append(path)
        return path

    assert folder.write_checkpoint(save, 5) == folder.checkpoint_path(5) == folder.checkpoints / "step_5.safetensors"
    folder.write_checkpoint(save, 12)
    assert checkpoint_name(12) == "step_12.safetensors" and saved == [folder.checkpoint_path(5),
                                                                     folder.checkpoint_path(12)]
    assert folder.has_checkpoint()
    assert folder.last_checkpoint.read_bytes() == b"weights of step_12.safetensors"
    assert folder.checkpoint_path(5).read_bytes() == b"weights of step_5.safetensors"


def test_preview_pngs_keep_the_last_sets_only_without_an_archive(tmp_path):
    folder = opened(tmp_path, every_s=0.0)
    grid = np.zeros((4, 4), dtype=np.uint8)
    for step in range(1, 8):
        folder.save_previews(Preview(step=step, reconstructions=grid, samples=grid))
    names = sorted(p.name for p in (folder.path / "previews").iterdir())
    kept = range(8 - PREVIEW_PNGS_KEEP_LAST, 8)
    assert names == sorted(f"step_{s:08d}_{kind}.png" for s in kept for kind in ("reconstructions", "samples"))


def test_metrics_csv_json_and_png_files(tmp_path):
    folder = RunFolder(tmp_path / "run")  # written whole: no open() needed
    history = [{"kind": "step", "step": 1, "epoch": 1, "terms": {"total": 2.0, "kl": 0.5}, "live": {"lr": 1e-3}},
               {"kind": "epoch", "epoch": 1, "step": 1, "train": {}, "test": {}},
               {"kind": "step", "step": 2, "epoch": 1, "terms": {"total": 1.5}, "live": {"lr": 1e-3}}]
    with open(folder.write_metrics_csv(history), newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows == [["step", "epoch", "kl", "total", "lr"], ["1", "1", "0.5", "2.0", "0.001"],
                    ["2", "1", "", "1.5", "0.001"]]
    assert json.loads(folder.write_json("result.json", {"status": "completed"}).read_text()) == {"status": "completed"}
    assert folder.write_png("traversal.png", np.zeros((3, 5), dtype=np.uint8)).stat().st_size > 0


def test_metrics_are_read_back_in_order_skipping_a_torn_last_line_and_non_objects(tmp_path):
    folder = RunFolder(tmp_path / "run")
    assert folder.read_metrics() == []  # no file yet
    folder.path.mkdir()
    folder.metrics_file.write_text('{"kind": "step", "step": 1}\n[1, 2]\n{"kind": "epoch", "step": 2}\n{"kind": "st',
                                   encoding="utf-8")
    assert folder.read_metrics() == [{"kind": "step", "step": 1}, {"kind": "epoch", "step": 2}]
    folder.metrics_file.write_bytes(b"\xff\xfe not text")
    assert folder.read_metrics() == []
