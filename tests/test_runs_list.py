"""`nnctl runs` lists runs, sweeps and cv folders in one table with a kind column; a killed run
that was resumed points to the run that continued it and is not resumed twice; pruned trials
say so; a cv folder's name says it is one; a run folder's time stamp is its start."""
import fcntl
import json
import shutil
import time
from pathlib import Path

import pytest

from nnctl.commands.train import train_config
from nnctl.config import load_config
from nnctl.training import Callback

from .cli_helpers import assert_clean_error, cli, subprocess_cli
from .conftest import CONFIGS


def _listed(folder, *args):
    result = cli("runs", folder, "--json", *args)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_runs_sweeps_and_cv_folders_are_listed_together_with_their_kind(tmp_path):
    pytest.importorskip("optuna")  # the sweep extra
    runs = tmp_path / "runs"
    (tmp_path / "s.yaml").write_text(f"config: {CONFIGS / 'iris.yaml'}\nmethod: grid\nparameters:\n"
                                     "  training.learning_rate: {values: [0.01, 0.05]}\n"
                                     "  training.iterations: {values: [3]}\n")
    sweep = cli("sweep", tmp_path / "s.yaml", "--runs-dir", runs, "--workers", "1", "--quiet")
    assert sweep.exit_code == 0, sweep.stderr
    cv = cli("cv", CONFIGS / "iris.yaml", "--folds", "2", "--runs-dir", runs, "--workers", "1", "--quiet",
             "--set", "training.iterations=3")
    assert cv.exit_code == 0, cv.stderr
    run = cli("train", CONFIGS / "iris.yaml", "--runs-dir", runs, "--quiet", "--set", "training.iterations=3")
    cv_folder = Path(cv.stdout.strip().splitlines()[-1])
    assert cv_folder.name.startswith("iris-cv2-")  # never taken for a run named iris
    listed = {r["path"]: r for r in _listed(runs)}
    assert [r["kind"] for r in _listed(runs)] == ["run", "cv", "sweep"]  # newest first
    sweep_entry = listed[sweep.stdout.strip().splitlines()[-1]]
    assert sweep_entry["status"] == "completed" and sweep_entry["epochs"] == "2/2 trials"
    assert sweep_entry["summary"]["label"] == "best val_loss"
    cv_entry = listed[str(cv_folder)]
    assert cv_entry["status"] == "completed" and cv_entry["epochs"] == "2/2 folds"
    summary = json.loads((cv_folder / "summary.json").read_text())
    assert cv_entry["summary"]["value"] == summary["val_accuracy"]["mean"]
    assert listed[run.stdout.strip()]["kind"] == "run"
    table = subprocess_cli("runs", runs).stdout.splitlines()
    assert table[0].split("\t")[-1] == "kind"
    assert [line.split("\t")[-1] for line in table[1:]] == ["run", "cv", "sweep"]
    assert "2/2 folds\tcompleted\taccuracy " in table[2] and " ± " in table[2]
    # --incomplete is for train --resume: sweeps and cv folders resume with their own command
    assert _listed(runs, "--incomplete") == []


def test_pruned_trials_are_listed_as_pruned(tmp_path):
    pytest.importorskip("optuna")  # the sweep extra
    (tmp_path / "s.yaml").write_text(f"config: {CONFIGS / 'iris.yaml'}\nmethod: grid\n"
                                     "metric: {name: val_loss, goal: minimize}\n"
                                     "early_terminate: {type: median, min_epochs: 3}\nparameters:\n"
                                     "  training.learning_rate: {values: [0.05, 0.04, 0.03, 1.0e-6, 2.0e-6]}\n"
                                     "  training.iterations: {values: [25]}\n")
    result = cli("sweep", tmp_path / "s.yaml", "--runs-dir", tmp_path / "runs", "--workers", "1", "--quiet")
    folder = Path(result.stdout.strip().splitlines()[-1])
    import csv

    with open(folder / "trials.csv", newline="") as fh:
        states = {f"{int(r['trial']):03d}": r["state"] for r in csv.DictReader(fh)}
    assert "pruned" in states.values()
    listed = {r["name"]: r["status"] for r in _listed(folder / "trials")}
    for trial, state in states.items():
        assert listed[trial] == ("pruned" if state == "pruned" else "completed"), (trial, listed)
    entry = next(r for r in _listed(tmp_path / "runs") if r["kind"] == "sweep")
    assert entry["epochs"] == f"5/5 trials, {list(states.values()).count('pruned')} pruned"


class _Slow(Callback):
    def on_epoch_end(self, log):
        time.sleep(1.1)


def test_a_run_folders_time_stamp_is_its_start_as_created_is(tmp_path):
    cfg = load_config(CONFIGS / "xor.yaml", ["training.iterations=1"])
    run = train_config(cfg, tmp_path, "slow", callback=_Slow()).run
    created = json.loads((run / "metrics.json").read_text())["created"]
    assert run.name == "slow-" + created.replace("-", "").replace("T", "-").replace(":", "")


@pytest.fixture
def killed(tmp_path):
    """A run folder as kill -9 leaves one (config, checkpoint, an unheld lock, no model), made from
    a finished run's files."""
    runs = tmp_path / "runs"
    result = cli("train", CONFIGS / "xor.yaml", "--runs-dir", runs, "--quiet", "--set", "training.iterations=3",
                 "--set", "training.checkpoint_every=1")
    assert result.exit_code == 0, result.stderr
    done = Path(result.stdout.strip())

    def make(name):
        folder = runs / f".tmp-xor-{name}"
        folder.mkdir()
        for file in ("config.yaml", "checkpoint.npz"):
            shutil.copy(done / file, folder / file)
        (folder / ".lock").write_text("")
        return folder

    return runs, make


def test_a_killed_run_once_resumed_points_to_the_run_that_continued_it(killed):
    runs, make = killed
    folder = make("a")
    assert [r["status"] for r in _listed(runs, "--incomplete")] == ["incomplete"]
    result = cli("train", "--resume", folder, "--runs-dir", runs, "--quiet", "--set", "training.iterations=5")
    assert result.exit_code == 0, result.stderr
    continued = result.stdout.strip()
    entry = next(r for r in _listed(runs) if r["path"] == str(folder))
    assert entry["status"] == "resumed" and entry["resumed_as"] == continued
    assert [r["path"] for r in _listed(runs, "--incomplete")] == [str(folder)]  # still there, to delete
    line = next(line for line in subprocess_cli("runs", runs).stdout.splitlines() if line.startswith(folder.name))
    assert f"resumed as {Path(continued).name}" in line


def test_a_killed_run_is_resumed_once(killed):
    runs, make = killed
    folder = make("b")
    first = cli("train", "--resume", folder, "--runs-dir", runs, "--quiet", "--set", "training.iterations=5")
    assert first.exit_code == 0, first.stderr
    again = cli("train", "--resume", folder, "--runs-dir", runs, "--quiet", "--set", "training.iterations=6")
    assert_clean_error(again, "that run was already resumed, as " + first.stdout.strip(), str(folder))
    # a finished run may be continued again: each continuation is its own run, like training on
    for iterations in (5, 6):
        result = cli("train", "--resume", first.stdout.strip(), "--runs-dir", runs, "--quiet",
                     "--set", f"training.iterations={iterations + 2}")
        assert result.exit_code == 0, result.stderr


def test_a_killed_run_being_resumed_is_not_resumed_by_another_process(killed):
    runs, make = killed
    folder = make("c")
    before = sorted(p.name for p in runs.iterdir())
    with open(folder / ".lock") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # as the first resume holds it while it trains
        result = cli("train", "--resume", folder, "--runs-dir", runs, "--quiet", "--set", "training.iterations=5")
    assert_clean_error(result, "that run is being resumed by another process", str(folder))
    assert sorted(p.name for p in runs.iterdir()) == before  # nothing new was written
