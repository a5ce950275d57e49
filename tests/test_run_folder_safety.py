"""A full disk keeps a run's last whole checkpoint (resumable, as after kill -9) and names the
file it could not write; a run is complete before its optional extras (loss.png) are drawn."""
import errno
import json
from pathlib import Path

import pytest

import nnctl.commands.train as train_module
import nnctl.runs.folder as folder_module
from nnctl.config import load_config
from nnctl.runs.folder import RunFolder, list_runs

from .cli_helpers import assert_clean_error, cli
from .conftest import DATASETS


def tiny_config(write_config, extra: str = ""):
    return write_config(f"""data:
  path: {DATASETS / 'iris.csv'}
  target: species
model:
  layers: [4]
training:
  iterations: 6
  checkpoint_every: 2
{extra}""")


def full_disk(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_after_a_checkpoint_keeps_the_run_resumable(write_config, tmp_path, monkeypatch):
    config = tiny_config(write_config)
    runs = tmp_path / "runs"
    real_write_history = RunFolder.write_history

    def history_on_a_full_disk(self, history):
        path = self.file(self.HISTORY)
        with open(path, "w") as fh:  # the write that fails is history.csv's, after the last checkpoint
            fh.write("epoch")
        with folder_module.naming_errors(path):
            full_disk()

    monkeypatch.setattr(RunFolder, "write_history", history_on_a_full_disk)
    result = cli("train", config, "--runs-dir", runs, "--quiet")
    assert_clean_error(result, "No space left on device", "history.csv", "train --resume")
    (kept,) = runs.iterdir()
    assert kept.name.startswith(".tmp-") and (kept / "checkpoint.npz").is_file()
    (listed,) = list_runs(runs, incomplete_only=True)
    assert listed["status"] == "incomplete" and listed["epochs"] == 6

    monkeypatch.setattr(RunFolder, "write_history", real_write_history)
    resumed = cli("train", "--resume", kept, "--set", "training.iterations=8", "--runs-dir", runs, "--quiet")
    assert resumed.exit_code == 0, resumed.stderr
    run = Path(resumed.stdout.strip().splitlines()[-1])
    assert json.loads((run / "metrics.json").read_text())["epochs"] == 8


def test_a_full_disk_before_any_checkpoint_leaves_nothing(write_config, tmp_path, monkeypatch):
    config = tiny_config(write_config)
    runs = tmp_path / "runs"
    monkeypatch.setattr(RunFolder, "write_metrics", full_disk)
    result = cli("train", config, "--runs-dir", runs, "--quiet", "--set", "training.checkpoint_every=null")
    assert result.exit_code == 2 and "No space left on device" in result.stderr
    assert not list(runs.iterdir())


def test_every_run_file_is_named_when_the_disk_is_full(tmp_path, monkeypatch):
    real_open = open

    def open_on_a_full_disk(path, mode="r", *args, **kwargs):
        fh = real_open(path, mode, *args, **kwargs)
        if "w" in mode:
            fh.write = full_disk
        return fh

    monkeypatch.setattr("builtins.open", open_on_a_full_disk)
    files = RunFolder(tmp_path)
    for write, args, name in ((files.write_metrics, ({"a": 1},), files.METRICS),
                              (files.write_history, ([{"epoch": 1}],), files.HISTORY),
                              (files.write_config, ("x",), files.CONFIG),
                              (files.write_diagnostics, ([],), files.DIAGNOSTICS)):
        with pytest.raises(OSError) as caught:
            write(*args)
        assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(tmp_path / name)


def test_the_run_is_complete_before_loss_png_is_drawn(write_config, tmp_path, monkeypatch):
    """Killed while drawing loss.png, a run must not be stranded: at that moment its folder is
    already in place, with model, metrics and history."""
    config = tiny_config(write_config)
    runs = tmp_path / "runs"
    seen = {}

    def drawing(folder, history, label):
        folder = Path(folder)
        seen["folder"] = folder
        seen["files"] = sorted(p.name for p in folder.iterdir())
        seen["listed"] = [(r["path"], r.get("status")) for r in list_runs(runs)]
        raise KeyboardInterrupt  # killed right here

    monkeypatch.setattr(train_module, "try_plot_run", drawing)
    with pytest.raises(KeyboardInterrupt):
        train_module.train_config(load_config(config), runs, "tiny")
    folder = seen["folder"]
    assert not folder.name.startswith(".tmp-") and folder.parent == runs
    assert {"model.npz", "metrics.json", "history.csv", "config.yaml", "checkpoint.npz"} <= set(seen["files"])
    assert seen["listed"] == [(str(folder), "completed")]
    assert folder.is_dir()  # still there after the kill
