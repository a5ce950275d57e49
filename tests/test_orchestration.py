"""How a run is started: RunOptions (one object for how a run is carried out), the Checkpoint a
resume reads, the one place that decides what a train or resume runs (plan_training), the one
fan-out of watchers (Many), the one unique-folder loop, and the one ranking behind the
precision-recall metrics."""
import io
import json
from dataclasses import FrozenInstanceError
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from nnctl.commands.train import RunOptions, plan_training, resume_run, train_config
from nnctl.config import load_config
from nnctl.errors import NnctlError
from nnctl.nn.metrics import average_precision, pr_curve
from nnctl.runs.folder import unique_folder
from nnctl.training import Callback
from nnctl.training.callbacks import Many
from nnctl.training.checkpoint import Checkpoint, load_checkpoint
from nnctl.ui.sweeping import SweepJson

from .conftest import DATASETS


def tiny(write_config, iterations=4, name="tiny.yaml"):
    return write_config(f"""seed: 1
data:
  path: {DATASETS / 'iris.csv'}
  target: species
model:
  layers: [4]
training:
  iterations: {iterations}
  checkpoint_every: 1
  log_every: 1
""", name)


def weights(run) -> dict:
    with np.load(Path(run) / "model.npz", allow_pickle=False) as npz:
        return {k: npz[k].tobytes() for k in npz.files if k != "meta"}


class Epochs(Callback):
    def __init__(self):
        self.seen = []

    def on_epoch_end(self, log):
        self.seen.append(log["epoch"])


def test_run_options_and_keywords_train_the_same_run(write_config, tmp_path):
    cfg = load_config(tiny(write_config))
    watched = Epochs()
    by_object = train_config(cfg, options=RunOptions(tmp_path / "a", "iris", plot=False, callback=watched)).run
    by_keyword = train_config(cfg, tmp_path / "b", "iris", plot=False).run
    assert by_object.parent == tmp_path / "a" and by_object.name.startswith("iris-")
    assert by_keyword.parent == tmp_path / "b" and by_keyword.name.startswith("iris-")
    assert watched.seen == [1, 2, 3, 4]
    assert weights(by_object) == weights(by_keyword)
    # a keyword given beside `options` replaces that one field
    exact = train_config(cfg, options=RunOptions(tmp_path / "a", plot=False), folder="exact").run
    assert exact == tmp_path / "a" / "exact"
    with pytest.raises(FrozenInstanceError):
        RunOptions().plot = False


def test_a_checkpoint_is_a_named_type(write_config, tmp_path):
    run = train_config(load_config(tiny(write_config)), tmp_path, "iris", plot=False).run
    checkpoint = load_checkpoint(run)
    assert isinstance(checkpoint, Checkpoint)
    assert checkpoint.path == run and checkpoint.name == "iris" and checkpoint.completed == 4
    assert checkpoint.status == "completed" and checkpoint.waited == 0
    assert checkpoint.config == load_config(run / "config.yaml").to_dict()
    assert len(checkpoint.data_digest) == 32 and "layers.0.W" in checkpoint.arrays


def test_plan_training_decides_config_name_and_checkpoint(write_config, tmp_path):
    config = tiny(write_config)
    new = plan_training(config, overrides=["training.iterations=3"])
    assert (new.name, new.resume, new.cfg.training.iterations) == ("tiny", None, 3)
    run = train_config(new.cfg, tmp_path, new.name, plot=False).run
    resumed = plan_training(resume=run, overrides=["training.iterations=7"])
    assert resumed.name == "tiny" and resumed.resume.path == run and resumed.resume.completed == 3
    assert resumed.cfg.training.iterations == 7
    with pytest.raises(NnctlError, match="model.layers cannot change when resuming"):
        plan_training(resume=run, overrides=["model.layers=[8]"])


def test_resume_run_takes_run_options_and_keeps_the_runs_name(write_config, tmp_path):
    cfg = load_config(tiny(write_config, iterations=2))
    run = train_config(cfg, tmp_path, "first", plot=False).run
    more = resume_run(run, ["training.iterations=5"], options=RunOptions(tmp_path / "more", plot=False))
    assert more.run.parent == tmp_path / "more" and more.run.name.startswith("first-") and more.epochs == 5
    assert json.loads((more.run / "metrics.json").read_text())["resumed_from"] == str(run)
    named = resume_run(run, ["training.iterations=3"], tmp_path / "more", "renamed", plot=False)
    assert named.run.name.startswith("renamed-")


def test_resuming_on_changed_data_is_refused(write_config, tmp_path):
    data = tmp_path / "iris.csv"
    data.write_text((DATASETS / "iris.csv").read_text())
    config = write_config(f"data:\n  path: {data}\n  target: species\nmodel:\n  layers: [4]\n"
                          "training:\n  iterations: 2\n  checkpoint_every: 1\n")
    run = train_config(load_config(config), tmp_path / "runs", "iris", plot=False).run
    lines = data.read_text().splitlines()
    data.write_text("\n".join(lines[:1] + lines[2:]) + "\n")  # one row fewer
    with pytest.raises(NnctlError, match="the data changed since that run trained on it"):
        resume_run(run, ["training.iterations=4"], tmp_path / "runs", plot=False)


class Trials:
    def __init__(self):
        self.calls = []

    def on_start(self, info):
        self.calls.append(("start", info["total"]))

    def on_trial(self, row, best):
        self.calls.append(("trial", row["trial"], best))


def test_many_fans_out_training_callbacks_and_sweep_displays():
    a, b = Epochs(), Epochs()
    Many(a, None, b).on_epoch_end({"epoch": 3})
    assert a.seen == b.seen == [3]
    shown, stream = Trials(), io.StringIO()
    display = Many(shown, SweepJson(stream))
    display.on_start({"total": 2})
    display.on_trial({"trial": 0, "state": "complete", "params": {"x": 1}, "value": 0.5}, None)
    display.close()  # neither has close(): nothing to do, and no error
    assert shown.calls == [("start", 2), ("trial", 0, None)]
    assert json.loads(stream.getvalue()) == {"trial": 0, "state": "complete", "params": {"x": 1}, "value": 0.5}
    with pytest.raises(AttributeError):
        Many()._private


def test_unique_folder_takes_the_first_free_name(tmp_path):
    assert unique_folder(tmp_path, "run") == tmp_path / "run"
    assert unique_folder(tmp_path, "run") == tmp_path / "run-2"
    assert unique_folder(tmp_path, "run") == tmp_path / "run-3"
    (tmp_path / "run-4").mkdir()
    for taken in ("run", "run-2", "run-3", "run-4"):  # renaming onto an empty folder would succeed
        (tmp_path / taken / "file").write_text("x")
    done = tmp_path / ".tmp-done"
    done.mkdir()
    # a rename onto an existing non-empty folder fails, so the finished run goes to run-5
    assert unique_folder(tmp_path, "run", partial(Path.rename, done)) == tmp_path / "run-5"
    with pytest.raises(NnctlError, match="the run folder exists"):
        unique_folder(tmp_path, "run-4", partial(Path.rename, tmp_path / "run"), tries=1, what="run folder")
    with pytest.raises(NnctlError, match="could not find a free folder name"):
        unique_folder(tmp_path, "run", tries=3)


def test_average_precision_is_the_step_sum_over_pr_curve_with_ties():
    positive = np.array([1, 0, 1, 1, 0, 0, 1, 0], dtype=bool)
    score = np.array([0.9, 0.9, 0.7, 0.5, 0.5, 0.3, 0.3, 0.1])
    recall, precision = pr_curve(positive, score)
    assert recall.tolist() == [0.25, 0.5, 0.75, 1.0, 1.0]
    assert precision.tolist() == [0.5, 2 / 3, 0.6, 4 / 7, 0.5]
    # sklearn.metrics.average_precision_score on the same rows: 0.125 + 1/6 + 0.15 + 1/7
    assert average_precision(positive, score) == pytest.approx(0.125 + 1 / 6 + 0.15 + 1 / 7, abs=1e-15)
    assert np.isnan(average_precision([0, 0], [0.1, 0.2]))
