import csv
import json

import numpy as np
import pytest

from nnctl.runs.model import load_model

from .cli_helpers import assert_clean_error, cli, subprocess_cli
from .conftest import CONFIGS, DATASETS


def runs_in(folder):
    return sorted(p for p in folder.iterdir() if not p.name.startswith(".")) if folder.exists() else []


def test_train_writes_a_complete_run_and_prints_its_path_last(tmp_path):
    result = cli("train", CONFIGS / "iris.yaml", "--runs-dir", tmp_path, "--set", "training.iterations=20")
    assert result.exit_code == 0, result.stderr
    run = tmp_path / result.stdout.strip().splitlines()[-1].split("/")[-1]
    assert run.is_dir() and run.name.startswith("iris-")
    assert {"model.npz", "config.yaml", "history.csv", "metrics.json"} <= {p.name for p in run.iterdir()}
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["epochs"] == 20
    with open(run / "history.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["epoch", "train_loss", "val_loss", "val_accuracy", "learning_rate", "seconds"]
    assert len(rows) == 20 and rows[-1]["epoch"] == "20"
    assert "\x1b[" not in result.stderr  # plain lines, no escape codes, without a terminal
    assert "train_loss" in result.stderr and "run saved to" in result.stderr


def test_quiet_prints_only_the_path(tmp_path):
    result = cli("train", CONFIGS / "xor.yaml", "--runs-dir", tmp_path, "--quiet")
    assert result.exit_code == 0
    assert result.stderr == ""
    assert result.stdout.strip() == str(runs_in(tmp_path)[0])


def test_json_lines_then_a_summary(tmp_path):
    result = cli("train", CONFIGS / "iris.yaml", "--runs-dir", tmp_path, "--json", "--quiet",
                 "--set", "training.iterations=5")
    lines = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert [line["epoch"] for line in lines[:-1]] == [1, 2, 3, 4, 5]
    assert {"train_loss", "val_loss", "val_accuracy", "learning_rate", "seconds"} <= set(lines[0])
    assert lines[-1]["run"] == str(runs_in(tmp_path)[0]) and lines[-1]["status"] == "completed"


def test_set_overrides_and_name(tmp_path):
    result = cli("train", CONFIGS / "iris.yaml", "--runs-dir", tmp_path, "--name", "lr05", "--quiet",
                 "--set", "training.iterations=3", "--set", "training.learning_rate=0.05")
    assert result.exit_code == 0
    run = runs_in(tmp_path)[0]
    assert run.name.startswith("lr05-")
    saved = (run / "config.yaml").read_text()
    assert "learning_rate: 0.05" in saved and "iterations: 3" in saved


def test_names_stay_unique_within_one_second(tmp_path):
    for _ in range(2):
        cli("train", CONFIGS / "xor.yaml", "--runs-dir", tmp_path, "--quiet", "--set", "training.iterations=1")
    names = [p.name for p in runs_in(tmp_path)]
    assert len(set(names)) == 2


def test_bundled_examples_learn(tmp_path, iris_run):
    cli("train", CONFIGS / "xor.yaml", "--runs-dir", tmp_path / "x", "--quiet")
    model = load_model(runs_in(tmp_path / "x")[0])
    import pandas as pd

    df = pd.read_csv(DATASETS / "xor.csv")
    assert list(model.predict(df)) == df["y"].tolist()  # 4 of 4
    metrics = json.loads((iris_run / "metrics.json").read_text())  # the session's configs/iris.yaml run
    assert metrics["validation"]["accuracy"] >= 0.93


def test_early_stopping_stops_and_restores_the_best(tmp_path):
    result = cli("train", CONFIGS / "iris.yaml", "--runs-dir", tmp_path, "--quiet",
                 "--set", "training.early_stopping={patience: 3, min_delta: 0.5}")
    assert result.exit_code == 0
    metrics = json.loads((runs_in(tmp_path)[0] / "metrics.json").read_text())
    assert metrics["status"] == "early_stopped"
    assert metrics["epochs"] == metrics["best_epoch"] + 3


def test_divergence_is_an_error_and_leaves_no_run(tmp_path):
    result = cli("train", CONFIGS / "diabetes.yaml", "--runs-dir", tmp_path, "--set", "training.learning_rate=1e12",
                 "--set", "training.optimizer=sgd", "--set", "data.scale_target=false", "--set", "data.scale=none")
    assert_clean_error(result, "training diverged", "lower training.learning_rate")
    assert runs_in(tmp_path) == []


@pytest.mark.parametrize("split", ["0.2", "0"])
def test_a_last_update_that_breaks_the_weights_is_divergence_too(tmp_path, split):
    # one full batch: its loss is measured before the update, which makes the weights overflow;
    # validation (after the epoch) or the final metrics see it
    result = cli("train", CONFIGS / "iris.yaml", "--runs-dir", tmp_path, "--set", "training.learning_rate=1e30",
                 "--set", "training.iterations=1", "--set", "training.batch_size=null",
                 "--set", f"data.validation_split={split}")
    assert_clean_error(result, "training diverged: the loss became nan by epoch 1", "lower training.learning_rate")
    assert "RuntimeWarning" not in result.stderr
    assert runs_in(tmp_path) == []


def test_without_validation_there_are_no_validation_columns(tmp_path):
    cli("train", CONFIGS / "xor.yaml", "--runs-dir", tmp_path, "--quiet", "--set", "training.iterations=2")
    header = (runs_in(tmp_path)[0] / "history.csv").read_text().splitlines()[0]
    assert header == "epoch,train_loss,learning_rate,seconds"


def test_bad_config_is_one_error_line_and_no_run(tmp_path, write_config):
    path = write_config(f"data:\n  path: {DATASETS / 'iris.csv'}\n  target: species\ntraining:\n  learning_rate: -1\n")
    result = cli("train", path, "--runs-dir", tmp_path / "runs")
    assert_clean_error(result, "training.learning_rate must be > 0, got -1", "line 5")
    assert runs_in(tmp_path / "runs") == []


def test_debug_shows_the_traceback(tmp_path, write_config):
    from nnctl.errors import NnctlError

    path = write_config("data:\n  target: y\n")
    with pytest.raises(NnctlError):
        cli("train", path, "--debug")


def test_python_dash_m_and_stdout_last_line(tmp_path):
    proc = subprocess_cli("train", CONFIGS / "xor.yaml", "--runs-dir", tmp_path, "--set", "training.iterations=5")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == str(runs_in(tmp_path)[0])
    assert "\x1b[" not in proc.stderr and "epoch" in proc.stderr


def test_regression_run_predicts_in_target_units(tmp_path):
    cli("train", CONFIGS / "diabetes.yaml", "--runs-dir", tmp_path, "--quiet", "--set", "training.iterations=30")
    import pandas as pd

    model = load_model(runs_in(tmp_path)[0])
    predictions = model.predict(pd.read_csv(DATASETS / "diabetes.csv"))
    assert 50 < np.mean(predictions) < 250  # the target's own units, not standardized


def _history_epochs(run):
    with open(f"{run}/history.csv") as fh:
        return [int(row["epoch"]) for row in csv.DictReader(fh)]


def test_log_every_auto_keeps_about_200_rows_with_the_first_and_last(tmp_path):
    run = cli("train", CONFIGS / "xor.yaml", "--runs-dir", tmp_path, "--quiet",
              "--set", "training.iterations=1003").stdout.strip()
    epochs = _history_epochs(run)
    assert epochs[:3] == [1, 5, 10] and epochs[-2:] == [1000, 1003] and len(epochs) == 202
    run = cli("train", CONFIGS / "xor.yaml", "--runs-dir", tmp_path, "--quiet",
              "--set", "training.iterations=12", "--set", "training.log_every=5").stdout.strip()
    assert _history_epochs(run) == [1, 5, 10, 12]
    assert json.loads(open(f"{run}/metrics.json").read())["epochs"] == 12


def test_early_stopping_measures_every_epoch_and_logs_where_it_stopped(tmp_path):
    run = cli("train", CONFIGS / "iris.yaml", "--runs-dir", tmp_path, "--quiet", "--set", "training.log_every=50",
              "--set", "training.early_stopping={patience: 3, min_delta: 0.5}").stdout.strip()
    metrics = json.loads(open(f"{run}/metrics.json").read())
    assert metrics["status"] == "early_stopped"
    assert _history_epochs(run)[-1] == metrics["epochs"] == metrics["best_epoch"] + 3
