"""`nnctl cv --folds K --repeats R` (issue 24): the K folds drawn R times, as scikit-learn's
RepeatedStratifiedKFold; each repeat's validation parts cover every row once, and the repeats
differ. R = 1 keeps cv's folder exactly as before."""
import csv
import json
from pathlib import Path

import numpy as np
import pytest

from nnctl.sweep.cv import run_cv

from .cli_helpers import assert_clean_error, cli
from .conftest import CONFIGS


def _folds(folder: Path) -> list[dict]:
    with open(folder / "folds.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _targets(run) -> list[float]:
    """The validation part's targets, which in this table are the row ids."""
    with open(Path(run) / "validation.csv", newline="") as fh:
        return [float(r["target"]) for r in csv.DictReader(fh)]


def test_repeats_partition_the_rows_in_each_repeat_and_differ_between_repeats(tmp_path, write_csv, write_config):
    rng = np.random.default_rng(0)
    rows = "\n".join(f"{x:.4f},{i}" for i, x in enumerate(rng.normal(size=24)))
    data = write_csv("x,id\n" + rows + "\n")
    # the target is the row id, so each fold's validation.csv names its rows
    config = write_config(f"data:\n  path: {data}\n  target: id\n  scale_target: false\n"
                          "training:\n  iterations: 2\n")
    seen = []
    result = run_cv(config, 3, runs_dir=tmp_path / "runs", workers=2, repeats=2,
                    callback=lambda key, r: seen.append(key))  # (repeat, fold)
    folder = result["folder"]
    assert folder.name.startswith("config-cv3x2-")
    assert sorted(seen) == [(r, i) for r in range(2) for i in range(3)]
    rows = _folds(folder)
    assert list(rows[0]) == ["repeat", "fold", "rows", "val_loss", "val_r2", "epochs", "seconds", "run"]
    assert [(r["repeat"], r["fold"]) for r in rows] == [(str(r), str(i)) for r in range(2) for i in range(3)]
    assert [r["run"] for r in rows] == [str(folder / f"repeat_{r}" / f"fold_{i}") for r in range(2) for i in range(3)]
    parts = {}
    for r in rows:
        parts.setdefault(r["repeat"], []).append(sorted(_targets(r["run"])))
    for repeat, folds in parts.items():
        assert sorted(v for fold in folds for v in fold) == list(range(24)), repeat  # every row once
        assert [len(f) for f in folds] == [8, 8, 8]
    assert {tuple(f) for f in parts["0"]} != {tuple(f) for f in parts["1"]}
    summary = json.loads((folder / "summary.json").read_text())
    losses = np.array([float(r["val_loss"]) for r in rows])
    assert summary["folds"] == 3 and summary["repeats"] == 2
    assert summary["val_loss"]["mean"] == pytest.approx(losses.mean()) and summary["val_loss"]["std"] == \
        pytest.approx(losses.std())
    # repeat r is drawn from seed + r
    assert [json.loads((folder / f"repeat_{r}" / "fold_0" / "metrics.json").read_text())["fold"] for r in range(2)] \
        == [{"index": 0, "folds": 3}] * 2
    assert [(folder / f"repeat_{r}" / "fold_0" / "config.yaml").read_text().splitlines()[0] for r in range(2)] \
        == ["seed: 42", "seed: 43"]


def test_repeated_folds_stay_stratified_on_the_command_line(tmp_path):
    result = cli("cv", CONFIGS / "iris.yaml", "--folds", "3", "--repeats", "2", "--runs-dir", tmp_path,
                 "--workers", "2", "--json", "--set", "training.iterations=3")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    summary, folder = json.loads(lines[-2]), Path(lines[-1])
    assert summary["repeats"] == 2 and "over 6 folds (2 repeats of 3)" in result.stderr
    assert "repeat 1 fold 2: complete" in result.stderr
    accuracies = [float(r["val_accuracy"]) for r in _folds(folder)]
    assert summary["val_accuracy"]["mean"] == pytest.approx(np.mean(accuracies))
    for r in _folds(folder):
        lines = (Path(r["run"]) / "validation.csv").read_text().splitlines()[1:]
        counts = {s: sum(line.startswith(s + ",") for line in lines) for s in ("setosa", "versicolor", "virginica")}
        assert set(counts.values()) <= {16, 17} and sum(counts.values()) == 50  # 50 of each class over 3 folds
    listed = json.loads(cli("runs", tmp_path, "--json").stdout)
    assert [(e["kind"], e["epochs"]) for e in listed] == [("cv", "6/6 folds")]


def test_one_repeat_keeps_the_folder_as_it_was(tmp_path):
    result = run_cv(CONFIGS / "iris.yaml", 2, ["training.iterations=2"], tmp_path, workers=1, repeats=1)
    folder = result["folder"]
    assert folder.name.startswith("iris-cv2-")
    assert sorted(p.name for p in folder.iterdir() if p.name != ".lock") == \
        ["fold_0", "fold_1", "folds.csv", "summary.json"]
    assert list(_folds(folder)[0]) == ["fold", "rows", "val_loss", "val_accuracy", "epochs", "seconds", "run"]
    assert "repeats" not in json.loads((folder / "summary.json").read_text())


def test_repeats_below_one_are_refused(tmp_path):
    assert_clean_error(cli("cv", CONFIGS / "iris.yaml", "--folds", "2", "--repeats", "0", "--runs-dir", tmp_path),
                       "--repeats must be 1 or more")
    assert list(tmp_path.iterdir()) == []
