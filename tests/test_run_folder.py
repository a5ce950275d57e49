"""The run folder as one type: `RunFolder` names every file a run folder holds and reads and
writes them, so the rest of nnctl never spells a file name."""
import json
from pathlib import Path

import pytest

from nnctl.errors import NnctlError
from nnctl.runs.folder import RunFolder


def test_a_trained_run_holds_the_files_runfolder_names(iris_run):
    run = RunFolder(iris_run)
    for name in (run.CONFIG, run.MODEL, run.METRICS, run.HISTORY, run.DIAGNOSTICS, run.VALIDATION):
        assert run.has(name), name
    metrics = run.read_metrics()
    assert metrics == json.loads((iris_run / "metrics.json").read_text())
    assert metrics["task"] == "classification"
    history = run.read_history()
    assert [row["epoch"] for row in history] == [float(line.split(",")[0]) for line in
                                                 (iris_run / "history.csv").read_text().splitlines()[1:]]
    assert run.read_config().startswith(Path(iris_run / "config.yaml").read_text()[:20])


def test_history_round_trips_and_empty_cells_are_nan(tmp_path):
    run = RunFolder(tmp_path)
    run.write_history([{"epoch": 1, "train_loss": 0.5, "val_loss": float("nan")},
                       {"epoch": 2, "train_loss": 0.25, "val_loss": 0.125}])
    rows = run.read_history()
    assert rows[1] == {"epoch": 2.0, "train_loss": 0.25, "val_loss": 0.125}
    assert rows[0]["val_loss"] != rows[0]["val_loss"]  # nan


@pytest.mark.parametrize("text, said", [("[1, 2]", "metrics.json holds a JSON list, not an object"),
                                        ("{", "metrics.json is not valid JSON")])
def test_a_damaged_metrics_json_is_an_error_naming_it(tmp_path, text, said):
    (tmp_path / "metrics.json").write_text(text)
    with pytest.raises(NnctlError) as caught:
        RunFolder(tmp_path).read_metrics()
    assert said in str(caught.value) and str(tmp_path / "metrics.json") in str(caught.value)


def test_a_folder_without_metrics_is_not_a_run(tmp_path):
    with pytest.raises(NnctlError, match="not a run folder: it has no metrics.json"):
        RunFolder(tmp_path).read_metrics()
    assert RunFolder(tmp_path).read_rows(RunFolder.VALIDATION) is None
    assert RunFolder(tmp_path).read_config() == ""
