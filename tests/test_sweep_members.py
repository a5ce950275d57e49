"""A sweep's trials that differ only in what a member holds on its own (seed, learning rate, l2)
train up to 8 at a time as the members of one pass, each still its own trial: its own run folder
and row in trials.csv, equal to the trial trained alone (`--separate`); others train one per job."""
import json
from pathlib import Path

import numpy as np
import pytest

from .conftest import CONFIGS
from .test_population import _close, _numbers
from .test_sweep import trials, write_sweep
from .test_sweep_safety import StopAfter

pytest.importorskip("optuna")

# float64 so that equal means equal to rounding; early stopping stops trials at different epochs,
# and each trial's plateau halves its own rate on its own validation loss
GRID = """method: grid
metric: {name: val_loss, goal: minimize}
parameters:
  training.learning_rate: {values: [0.03, 0.01, 0.003]}
  training.l2: {values: [0.0, 0.01]}
  training.dtype: {values: [float64]}
  training.iterations: {values: [40]}
  training.early_stopping: {values: [{patience: 4}]}
  training.schedule: {values: [{name: plateau, patience: 2}]}
"""


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    from nnctl.sweep.driver import run_sweep

    tmp = tmp_path_factory.mktemp("sweep-members")
    sweep = write_sweep(tmp, GRID)
    return (run_sweep(sweep, runs_dir=tmp / "members", workers=2),
            run_sweep(sweep, runs_dir=tmp / "separate", workers=2, separate=True))


def test_member_trials_equal_trials_trained_alone(both):
    members, separate = both
    assert members["members"] == 8 and members["note"] is None and separate["members"] == 1
    a, b = trials(members["folder"]), trials(separate["folder"])
    assert len(a) == len(b) == 6 and all(r["state"] == "complete" for r in a)
    key = ("training.learning_rate", "training.l2")
    ours = {tuple(r[k] for k in key): r for r in a}
    epochs, lowered = set(), False
    for theirs in b:
        mine = ours[tuple(theirs[k] for k in key)]
        assert float(mine["value"]) == pytest.approx(float(theirs["value"]), rel=1e-5)
        assert mine["epochs"] == theirs["epochs"]
        epochs.add(mine["epochs"])
        x, y = Path(mine["run"]), Path(theirs["run"])
        _close(json.loads((x / "metrics.json").read_text()), json.loads((y / "metrics.json").read_text()), x.name)
        _close(_numbers(x / "history.csv"), _numbers(y / "history.csv"), f"{x.name}/history.csv")
        with np.load(x / "model.npz") as m, np.load(y / "model.npz") as s:
            np.testing.assert_allclose(m["layers.0.W"], s["layers.0.W"], rtol=1e-5, atol=1e-8)
        rates = _numbers(x / "history.csv")
        lowered |= min(r[rates[0].index("learning_rate")] for r in rates[1:]) < float(mine["training.learning_rate"])
    assert len(epochs) > 1  # members stopped while others trained on
    assert lowered  # a plateau lowered a member's rate


def test_an_interrupted_member_sweep_keeps_its_finished_trials_and_resumes(tmp_path):
    from nnctl.sweep.driver import run_sweep

    sweep = write_sweep(tmp_path, GRID.replace("[40]", "[3]"))
    part = run_sweep(sweep, runs_dir=tmp_path, workers=2, callback=StopAfter(1))
    assert part["status"] == "interrupted"
    kept = trials(part["folder"])
    assert kept and all(r["state"] == "complete" and Path(r["run"]).exists() for r in kept)
    resumed = run_sweep(resume=part["folder"], workers=2)
    rows = trials(part["folder"])
    assert resumed["status"] == "completed" and len(rows) == 6 and all(r["state"] == "complete" for r in rows)
    assert len({(r["training.learning_rate"], r["training.l2"]) for r in rows}) == 6


@pytest.mark.parametrize("body, members, note", [
    ("parameters:\n  model.layers: {values: [[8], [16]]}\n", 1, None),
    ("parameters:\n  training.learning_rate: {values: [0.01, 0.03]}\n  model.dropout: {values: [0.2]}\n", 8, None),
    ("parameters:\n  training.learning_rate: {values: [0.01, 0.03]}\n  training.schedule: {values: [{name: plateau}]}\n",
     8, None),
    ("parameters:\n  training.learning_rate: {values: [0.01, 0.03]}\n  model.ensemble: {values: [2]}\n",
     1, "the trials train one per job: each run is an ensemble already"),
    ("early_terminate: {type: median, min_epochs: 2}\nparameters:\n  training.learning_rate: {values: [0.01, 0.03]}\n",
     1, "the trials train one per job: early_terminate prunes each trial on its own"),
])
def test_which_sweeps_train_trials_as_members(tmp_path, body, members, note):
    from nnctl.sweep.driver import members_per_job
    from nnctl.sweep.spec import load_sweep

    sweep = load_sweep(write_sweep(tmp_path, "method: grid\n" + body), [])
    got, why = members_per_job(sweep, None)
    assert got == members and (why == note if note is None else why.startswith(note))
