"""nnctl sweep and nnctl cv on this machine (issue 16); the Ray cluster's tests are in
test_sweep_ray.py."""
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from .cli_helpers import assert_clean_error, cli, subprocess_cli
from .conftest import CONFIGS, DATASETS, hide_package

pytest.importorskip("optuna")


def write_sweep(tmp_path, body: str, name: str = "sweep.yaml") -> Path:
    path = tmp_path / name
    path.write_text(f"config: {CONFIGS / 'iris.yaml'}\n{body}")
    return path


def run(sweep, tmp_path, *args, ok=True):
    result = cli("sweep", sweep, "--runs-dir", tmp_path / "runs", "--workers", "1", *args)
    if ok:
        assert result.exit_code == 0, result.stderr
    return result


def trials(folder) -> list[dict]:
    with open(Path(folder) / "trials.csv", newline="") as fh:
        return list(csv.DictReader(fh))


SMALL = """method: random
trials: 4
seed: 3
parameters:
  training.learning_rate: {distribution: log_uniform, min: 1.0e-3, max: 0.1}
  model.layers: {values: [[8], [16, 8]]}
  training.iterations: {distribution: int_uniform, min: 10, max: 30}
"""


@pytest.fixture(scope="module")
def small_sweep(tmp_path_factory) -> Path:
    """The SMALL sweep, run once for the tests that only read its folder (none writes into it)."""
    tmp_path = tmp_path_factory.mktemp("small-sweep")
    result = run(write_sweep(tmp_path, SMALL), tmp_path)
    folder = Path(result.stdout.strip().splitlines()[-1])
    assert folder.parent == tmp_path / "runs"
    return folder


def test_a_sweep_writes_the_contractsmake_folder(small_sweep):
    folder = small_sweep
    assert folder.name.startswith("sweep-")
    assert {p.name for p in folder.iterdir()} >= {"sweep.yaml", "trials.csv", "summary.json", "best.yaml", "trials"}
    rows = trials(folder)
    assert list(rows[0])[:10] == ["trial", "state", "training.learning_rate", "model.layers", "training.iterations",
                                  "value", "epochs", "seconds", "node", "run"]
    assert [r["trial"] for r in rows] == ["0", "1", "2", "3"] and {r["state"] for r in rows} == {"complete"}
    assert {r["model.layers"] for r in rows} <= {"[8]", "[16, 8]"}
    for r in rows:
        assert Path(r["run"]) == folder / "trials" / f"{int(r['trial']):03d}"
        assert json.loads((Path(r["run"]) / "metrics.json").read_text())["validation"]["loss"] == \
            pytest.approx(float(r["value"]), rel=1e-6)
        assert int(r["epochs"]) == int(r["training.iterations"])
    summary = json.loads((folder / "summary.json").read_text())
    best = min(rows, key=lambda r: float(r["value"]))
    assert summary["metric"] == "val_loss" and summary["goal"] == "minimize"
    assert summary["counts"] == {"complete": 4, "pruned": 0, "failed": 0}
    assert summary["best"]["trial"] == int(best["trial"]) and summary["best"]["run"] == best["run"]
    # trial folders are run folders every command takes
    assert cli("evaluate", best["run"], DATASETS / "iris.csv").exit_code == 0
    assert len(json.loads(cli("runs", folder / "trials", "--json").stdout)) == 4


@pytest.mark.slow
def test_optunas_log_goes_to_each_sweeps_own_file_only_while_it_runs(tmp_path):
    import logging

    from nnctl.sweep.driver import run_sweep

    before = list(logging.getLogger("optuna").handlers)
    for i in range(2):
        result = run_sweep(write_sweep(tmp_path, SMALL), runs_dir=tmp_path / f"runs{i}", workers=1)
        assert (result["folder"] / "sweep.log").exists()
    assert logging.getLogger("optuna").handlers == before


def test_best_yaml_reproduces_the_best_trial_bit_for_bit(small_sweep, tmp_path):
    folder = small_sweep
    best = json.loads((folder / "summary.json").read_text())["best"]
    again = cli("train", folder / "best.yaml", "--runs-dir", tmp_path / "again", "--quiet").stdout.strip()
    with np.load(Path(best["run"]) / "model.npz") as a, np.load(Path(again) / "model.npz") as b:
        for key in a.files:
            if key != "meta":
                assert a[key].tobytes() == b[key].tobytes(), key


@pytest.mark.slow
def test_the_same_file_proposes_the_same_trials(tmp_path):
    sweep = write_sweep(tmp_path, SMALL.replace("method: random", "method: tpe"))
    first = trials(run(sweep, tmp_path / "a").stdout.strip())
    second = trials(run(sweep, tmp_path / "b").stdout.strip())
    keys = ("training.learning_rate", "model.layers", "training.iterations")
    assert [[r[k] for k in keys] for r in first] == [[r[k] for k in keys] for r in second]


def test_grid_runs_every_combination(tmp_path):
    sweep = write_sweep(tmp_path, """method: grid
trials: 1
parameters:
  training.learning_rate: {values: [0.01, 0.05]}
  model.activation: {values: [relu, tanh, elu]}
  training.iterations: {values: [5]}
""")
    rows = trials(run(sweep, tmp_path).stdout.strip())
    assert sorted((r["training.learning_rate"], r["model.activation"]) for r in rows) == sorted(
        (lr, a) for lr in ("0.01", "0.05") for a in ("relu", "tanh", "elu"))


def test_early_termination_prunes_unpromising_trials(tmp_path):
    sweep = write_sweep(tmp_path, """method: grid
metric: {name: val_loss, goal: minimize}
early_terminate: {type: median, min_epochs: 3}
parameters:
  training.learning_rate: {values: [0.05, 0.04, 0.03, 1.0e-6, 2.0e-6]}
  training.iterations: {values: [40]}
""")
    folder = run(sweep, tmp_path).stdout.strip()
    rows = trials(folder)  # one worker: trial numbers are the order they ran in
    pruned = [r for r in rows if r["state"] == "pruned"]
    assert pruned and all(int(r["epochs"]) < 40 for r in pruned)
    for i, r in enumerate(rows):
        complete_before = sum(x["state"] == "complete" for x in rows[:i])
        if float(r["training.learning_rate"]) < 1e-5 and complete_before >= 2:
            assert r["state"] == "pruned", rows  # far worse than the median of the trials before it
    assert json.loads((Path(folder) / "summary.json").read_text())["counts"]["pruned"] == len(pruned)


def test_a_failing_trial_is_recorded_and_the_sweep_goes_on(tmp_path):
    sweep = write_sweep(tmp_path, """method: grid
parameters:
  training.learning_rate: {values: [0.01, 1.0e+9]}
  training.optimizer: {values: [sgd]}
  data.scale: {values: [none]}
  training.iterations: {values: [10]}
""")
    result = run(sweep, tmp_path)
    rows = trials(result.stdout.strip())
    states = {r["training.learning_rate"]: (r["state"], r["error"]) for r in rows}
    assert states["0.01"][0] == "complete"
    assert states["1000000000.0"][0] == "failed" and "training diverged" in states["1000000000.0"][1]


def test_every_trial_failing_exits_1_naming_the_first_error(tmp_path):
    sweep = write_sweep(tmp_path, """method: grid
parameters:
  training.learning_rate: {values: [1.0e+9, 1.0e+10]}
  training.optimizer: {values: [sgd]}
  data.scale: {values: [none]}
""")
    result = run(sweep, tmp_path, ok=False)
    assert result.exit_code == 1
    assert "error: every trial failed; the first: training diverged" in result.stderr


@pytest.mark.parametrize("body, fragments", [
    ("method: tpee\nparameters:\n  training.l2: {values: [0]}\n", ["method must be one of", "did you mean 'tpe'", "line 2"]),
    ("trails: 3\nparameters:\n  training.l2: {values: [0]}\n", ["trails is not a known key", "did you mean 'trials'"]),
    ("parameters:\n  training.learnig_rate: {values: [0.1]}\n", ["is not a config key", "training.learning_rate"]),
    ("parameters:\n  training.l2: {distribution: gaussian, min: 0, max: 1}\n", ["must be one of uniform"]),
    ("parameters:\n  training.l2: {distribution: log_uniform, min: 0, max: 1}\n", ["min > 0 for log_uniform"]),
    ("method: grid\nparameters:\n  training.l2: {distribution: uniform, min: 0, max: 1}\n", ["needs `values`"]),
    ("parameters:\n  model.layers: {values: [[0]]}\n", ["sizes must be integers >= 1"]),
])
def test_bad_sweep_files_are_one_clear_error(tmp_path, body, fragments):
    result = run(write_sweep(tmp_path, body), tmp_path, ok=False)
    if "sizes must be" in fragments[0]:  # a sampled config that is not valid fails its trial
        assert result.exit_code == 1 and "model.layers sizes must be integers >= 1" in result.stderr
        return
    assert_clean_error(result, *fragments)


def test_a_sweep_that_cannot_start_leaves_nomake_folder(tmp_path, monkeypatch):
    """No Ray here: a runner that cannot start (as when a cluster is unreachable) is faked."""
    import nnctl.sweep.driver as driver
    from nnctl.errors import NnctlError

    def unreachable(*args):
        raise NnctlError("cannot connect to the Ray cluster: faked", "--ray")

    monkeypatch.setattr(driver, "make_runner", unreachable)
    with pytest.raises(NnctlError, match="cannot connect"):
        driver.run_sweep(write_sweep(tmp_path, SMALL), runs_dir=tmp_path / "runs", workers=1)
    assert list((tmp_path / "runs").iterdir()) == []


def test_json_lines_then_a_summary(tmp_path):
    result = run(write_sweep(tmp_path, SMALL), tmp_path, "--json", "--quiet")
    lines = result.stdout.strip().splitlines()
    objects = [json.loads(line) for line in lines[:-1]]
    assert [set(o) for o in objects[:4]] == [{"trial", "state", "params", "value"}] * 4
    assert objects[4]["counts"]["complete"] == 4 and objects[4]["best"]["trial"] in range(4)
    assert lines[-1].startswith(str(tmp_path / "runs"))


@pytest.mark.slow
def test_interrupt_keeps_finished_trials_and_resume_continues(tmp_path):
    sweep = write_sweep(tmp_path, """method: random
trials: 6
seed: 1
parameters:
  training.learning_rate: {distribution: log_uniform, min: 1.0e-3, max: 0.1}
  training.iterations: {values: [150]}
""")
    runs = tmp_path / "runs"
    env = {**os.environ, "NO_COLOR": "1"}
    # --separate: one trial per job, so that trials finish one by one (members: test_sweep_members.py)
    proc = subprocess.Popen([sys.executable, "-m", "nnctl", "sweep", str(sweep), "--runs-dir", str(runs),
                             "--workers", "1", "--separate"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            found = list(runs.glob("sweep-*/trials.csv"))
            if found and len(trials(found[0].parent)) >= 2:
                break
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    folder = Path(out.strip().splitlines()[-1])
    kept = trials(folder)
    assert 2 <= len(kept) < 6 and all(r["state"] == "complete" for r in kept)
    resumed = subprocess_cli("sweep", "--resume", folder, "--workers", "1", "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    rows = trials(folder)
    assert len(rows) == 6 and [r for r in rows[:len(kept)]] == kept
    assert {p.name for p in (folder / "trials").iterdir()} == {r["run"].rsplit("/", 1)[-1] for r in rows}


def test_plot_of_a_sweepmake_folder(small_sweep, tmp_path):
    pytest.importorskip("matplotlib")
    folder = small_sweep
    result = cli("plot", folder, "--output", tmp_path / "sweep.png")
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "sweep.png").read_bytes().startswith(b"\x89PNG")


def test_without_optuna_the_error_says_which_extra(tmp_path, monkeypatch):
    hide_package(monkeypatch, "optuna")
    assert_clean_error(run(write_sweep(tmp_path, SMALL), tmp_path, ok=False), "needs Optuna",
                       "pip install 'nnctl[sweep]'")
    assert not (tmp_path / "runs").exists() or list((tmp_path / "runs").iterdir()) == []


def test_the_bundled_sweep_file_and_the_committed_schema():
    from nnctl.sweep.spec import load_sweep, sweep_schema

    sweep = load_sweep(CONFIGS / "iris-sweep.yaml")
    assert sweep["config"] == str(CONFIGS / "iris.yaml")
    root = Path(__file__).resolve().parent.parent
    assert json.loads((root / "nnctl-sweep.schema.json").read_text()) == json.loads(json.dumps(sweep_schema()))


# --- folds --------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_cv_writes_folds_and_a_summary(tmp_path):
    result = cli("cv", CONFIGS / "iris.yaml", "--folds", "5", "--runs-dir", tmp_path, "--workers", "2", "--json",
                 "--set", "training.iterations=20")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    summary, folder = json.loads(lines[-2]), Path(lines[-1])
    with open(folder / "folds.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["fold", "rows", "val_loss", "val_accuracy", "epochs", "seconds", "run"]
    assert [r["rows"] for r in rows] == ["30"] * 5
    losses = [float(r["val_loss"]) for r in rows]
    assert summary["folds"] == 5 and summary["val_loss"]["mean"] == pytest.approx(np.mean(losses))
    assert summary["val_loss"]["std"] == pytest.approx(np.std(losses))
    assert json.loads((folder / "summary.json").read_text()) == summary
    # stratified: every validation fold holds 10 of each species
    for r in rows:
        lines = (Path(r["run"]) / "validation.csv").read_text().splitlines()[1:]
        counts = {s: sum(line.startswith(s + ",") for line in lines) for s in ("setosa", "versicolor", "virginica")}
        assert counts == {"setosa": 10, "versicolor": 10, "virginica": 10}


def test_the_folds_cover_every_row_once():
    from nnctl.data.dataset import kfold_split

    y = np.repeat([0, 1, 2], [7, 11, 5])
    seen = []
    for i in range(4):
        train, val = kfold_split(y, (i, 4), np.random.default_rng(0), stratified=True)
        assert sorted(np.r_[train, val]) == list(range(len(y)))
        seen += val.tolist()
    assert sorted(seen) == list(range(len(y)))


def test_a_sweep_scored_by_cross_validation(tmp_path):
    sweep = write_sweep(tmp_path, """method: grid
folds: 3
parameters:
  training.learning_rate: {values: [0.01, 0.05]}
  training.iterations: {values: [10]}
""")
    folder = Path(run(sweep, tmp_path).stdout.strip())
    rows = trials(folder)
    for r in rows:
        fold_losses = [json.loads((Path(r["run"]) / f"fold_{i}" / "metrics.json").read_text())["validation"]["loss"]
                       for i in range(3)]
        assert float(r["value"]) == pytest.approx(np.mean(fold_losses), rel=1e-6)
