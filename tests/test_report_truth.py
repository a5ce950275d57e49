"""The report tells the whole truth: the test part beside the validation part, which epoch's
weights were saved, a long rise of the validation loss, legends in their lines' colours, labelled
log axes over less than a power of ten, and the config's paths as the user wrote them."""
import json
import re
from pathlib import Path

import pytest

from nnctl.report.health import validation_rise
from nnctl.report.page import comparison_page, run_page
from nnctl.report.rundata import read_run
from nnctl.report.svg import line_chart

from .cli_helpers import cli
from .conftest import CONFIGS, DATASETS


def _train(tmp_path, config, *sets):
    args = ["train", CONFIGS / f"{config}.yaml", "--runs-dir", tmp_path / "runs", "--quiet"]
    for s in sets:
        args += ["--set", s]
    result = cli(*args)
    assert result.exit_code == 0, result.stderr
    run = Path(result.stdout.strip())
    assert cli("report", run).exit_code == 0
    return run, (run / "report.html").read_text()


@pytest.fixture(scope="module")
def cancer(tmp_path_factory):
    """breast_cancer with its own file as the test part, briefly trained."""
    return _train(tmp_path_factory.mktemp("truth"), "breast_cancer", "training.iterations=3",
                  "training.early_stopping=null", f"data.test_path={DATASETS / 'breast_cancer.csv'}")


def test_the_test_part_gets_its_confusion_matrix_and_curves_beside_validations(cancer):
    run, html = cancer
    rows = (DATASETS / "breast_cancer.csv").read_text().strip().splitlines()[1:]
    assert len((run / "test.csv").read_text().strip().splitlines()) == len(rows) + 1
    for part in ("validation", "test"):
        assert f"Classification ({part} part)" in html
        assert f"ROC curve ({part})" in html and f"precision-recall curve ({part})" in html
    section = html[html.index("Classification (test part)"):]
    matrix = section[section.index("<tbody>"):section.index("</tbody>")]
    counts = [int(re.sub("<[^>]+>", "", c)) for c in re.findall(r"<td>(\d+|<span[^>]*>\d+</span>)</td>", matrix)]
    assert sum(counts) == len(rows)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test"]["rows"] == len(rows)
    accuracy = sum(counts[i] for i in (0, 3)) / len(rows)  # the diagonal of the 2 x 2 matrix
    assert accuracy == pytest.approx(metrics["test"]["accuracy"])


def test_the_summary_says_the_last_epochs_weights_were_saved(cancer):
    run, html = cancer
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["saved_epoch"] == 3 and metrics["saved_because"] == "last"
    assert "<td>weights saved</td><td>epoch 3 (the last trained)</td>" in html


def test_the_summary_says_early_stopping_saved_its_best_epoch(tmp_path):
    run, html = _train(tmp_path, "diabetes", "training.iterations=80", "training.early_stopping.patience=5",
                       "training.learning_rate=0.03")
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "early_stopped" and metrics["saved_epoch"] == metrics["best_epoch"] < metrics["epochs"]
    assert f"<td>epoch {metrics['best_epoch']} (the best val loss)</td>" in html


def _history(val_losses):
    return [{"epoch": float(i + 1), "train_loss": 1.0 / (i + 1), "val_loss": v, "learning_rate": 0.01}
            for i, v in enumerate(val_losses)]


def test_a_long_rise_of_the_validation_loss_is_warned():
    history = _history([1.0, 0.6, 0.4, 0.35, 0.36, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7])
    said = validation_rise(history, saved_epoch=12)
    assert said.startswith("Validation loss rose for 8 epochs: from its lowest, 0.35 at epoch 4, to 0.7 at epoch 12 (+100%)")
    assert "The saved weights are epoch 12's" in said and "early_stopping" in said
    assert "epoch 4's, the best" in validation_rise(history, saved_epoch=4)


@pytest.mark.parametrize("losses", [
    [1.0, 0.6, 0.4, 0.35, 0.34, 0.33, 0.32, 0.31, 0.3, 0.29],  # still falling
    [1.0, 0.6, 0.4, 0.35, 0.34, 0.33, 0.32, 0.31, 0.3, 0.29, 0.33, 0.34, 0.35],  # a short rise at the end
    [1.0, 0.6, 0.4, 0.35, 0.36, 0.36, 0.36, 0.36, 0.36, 0.36, 0.36, 0.36],  # flat, a few % above the lowest
])
def test_no_warning_without_a_long_real_rise(losses):
    assert validation_rise(_history(losses)) is None


def test_the_rise_is_on_the_page(tmp_path):
    from nnctl.report.rundata import RunData

    run = RunData(tmp_path, {"status": "completed", "epochs": 12, "saved_epoch": 12, "saved_because": "last"},
                  "seed: 1\n", _history([1.0, 0.6, 0.4, 0.35, 0.36, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7]))
    html = run_page(run)
    section = html[html.index("<h2>Learning curves</h2>"):html.index("<h2>Final metrics</h2>")]
    assert '<div class="flag warning">Validation loss rose for 8 epochs' in section


def _legend_and_lines(chart: str):
    keys = re.findall(r'<span class="key"><svg[^>]*><line class="(s\d)( dashed)?"', chart)
    lines = re.findall(r'<polyline class="mark (s\d)( dashed)?"', chart)
    return keys, lines


def test_legend_swatches_have_their_lines_colours(cancer, tmp_path):
    _, html = cancer
    pr = html[html.index('<div class="ctitle">precision-recall curve (validation)'):]
    pr = pr[:pr.index("</figure>")]
    keys, lines = _legend_and_lines(pr)
    assert keys == [("s1", "")] and lines[0] == ("s1", "")  # the PR curve is drawn in colour 1
    runs = [read_run(cancer[0]), read_run(cancer[0])]
    page = comparison_page(runs)
    loss = page[page.index('<div class="ctitle">loss per epoch'):]
    keys, lines = _legend_and_lines(loss[:loss.index("</figure>")])
    # each run in its colour, validation dashed: the second run's keys are colour 1, not 2 and 3
    assert keys == [("s0", ""), ("s0", " dashed"), ("s1", ""), ("s1", " dashed")]
    assert sorted(set(lines)) == sorted(set(keys))


def test_a_log_axis_within_one_power_of_ten_keeps_labelled_ticks():
    chart = line_chart([{"label": "loss", "x": [1, 2, 3, 4], "y": [0.9, 0.6, 0.45, 0.32]}], "t", "epoch", "loss",
                       log_y=True)
    labels = re.findall(r'<text class="tick"[^>]*text-anchor="end">([^<]+)</text>', chart)
    assert len(labels) >= 2 and all(0.3 <= float(t) <= 1.0 for t in labels), labels
    wide = line_chart([{"label": "loss", "x": [1, 2, 3], "y": [100.0, 1.0, 0.01]}], "t", "epoch", "loss", log_y=True)
    assert re.findall(r'text-anchor="end">([^<]+)</text>', wide) == ["0.01", "0.1", "1", "10", "100"]


def test_the_config_shows_paths_as_written_never_absolute(cancer):
    run, html = cancer
    config = html[html.index("resolved config"):]
    config = config[:config.index("</pre>")]
    assert "path: ../datasets/breast_cancer.csv" in config  # as configs/breast_cancer.yaml has it
    assert f"test_path: {DATASETS / 'breast_cancer.csv'}" in config  # as --set gave it: an absolute path
    assert str(DATASETS) not in config.replace(f"test_path: {DATASETS / 'breast_cancer.csv'}", "")
    # config.yaml keeps the absolute paths that reproduce the run from anywhere
    assert f"path: {DATASETS / 'breast_cancer.csv'}" in (run / "config.yaml").read_text()


def test_a_run_without_written_paths_shows_them_relative_to_itself(cancer, tmp_path):
    run = read_run(cancer[0])
    run.metrics.pop("paths_as_written")
    config = run_page(run)
    config = config[config.index("resolved config"):config.index("</pre>")]
    assert not re.search(r"path: /", config)  # no absolute path, wherever the datasets lie
    assert "path: ../../" in config and "datasets/breast_cancer.csv" in config
