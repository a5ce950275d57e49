"""Thousands of classes and tens of thousands of rows: training warns about a target with very
many classes, and the report stays tens of KB (a summarized confusion matrix, thinned curves,
a subsampled scatter) instead of megabytes."""
import json
import random
import re

from nnctl.report.write import report_runs

from .cli_helpers import cli


def test_a_target_with_very_many_classes_is_warned_at_train_time(tmp_path):
    rows = "\n".join(f"{i % 150 / 150:.3f},{i % 7},c{i % 150}" for i in range(300))
    (tmp_path / "d.csv").write_text("a,b,label\n" + rows + "\n")
    (tmp_path / "c.yaml").write_text("data: {path: d.csv, target: label, validation_split: 0.5}\n"
                                     "model: {layers: [4]}\ntraining: {iterations: 1}\n")
    result = cli("train", tmp_path / "c.yaml", "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 0, result.stderr
    assert "warning: target 'label' has 150 classes, about 2 rows each" in result.stderr
    assert "model.task: regression" in result.stderr


def test_a_few_classes_give_no_such_warning(iris_run):
    assert cli("validate", iris_run / "config.yaml").stderr.count("classes, about") == 0


def _run_folder(path, classes: list[str], rows: int):
    """A run folder as `nnctl train` leaves it, with `rows` validation predictions."""
    rng = random.Random(0)
    path.mkdir()
    (path / "metrics.json").write_text(json.dumps({"status": "completed", "epochs": 2, "task": "classification",
                                                   "metric": "accuracy", "validation": {"loss": 0.5,
                                                                                        "accuracy": 0.5}}))
    (path / "history.csv").write_text("epoch,train_loss,val_loss,val_accuracy,learning_rate,seconds\n"
                                      "1,0.9,0.8,0.4,0.01,0.1\n2,0.7,0.6,0.5,0.01,0.2\n")
    (path / "config.yaml").write_text("seed: 42\n")
    lines = ["target,prediction," + ",".join(f"p_{c}" for c in classes)]
    for _ in range(rows):
        truth = rng.choice(classes)
        predicted = truth if rng.random() < 0.6 else rng.choice(classes)
        if len(classes) == 2:
            p = rng.random() * 0.5 + (0.5 if predicted == classes[1] else 0.0)
            probabilities = f"{1 - p:.6f},{p:.6f}"
        else:  # the predicted class's probability; the others' are left at zero
            probabilities = ",".join("1" if c == predicted else "0" for c in classes)
        lines.append(f"{truth},{predicted},{probabilities}")
    (path / "validation.csv").write_text("\n".join(lines) + "\n")
    return path


def test_36k_validation_rows_of_two_classes_make_a_report_of_tens_of_kb(tmp_path):
    run = _run_folder(tmp_path / "run", ["no", "yes"], 36_000)
    html = report_runs([run]).read_text()
    assert len(html.encode()) < 60_000, len(html.encode())  # 850 KB before the curves were thinned
    for polyline in re.findall(r'<polyline class="mark[^"]*" points="([^"]*)"', html):
        assert len(polyline.split()) <= 400
    assert "ROC curve (validation)" in html and "precision-recall curve (validation)" in html


def test_hundreds_of_classes_make_a_summarized_confusion_matrix(tmp_path):
    classes = [f"k{i}" for i in range(500)]
    run = _run_folder(tmp_path / "run", classes, 10_000)
    html = report_runs([run]).read_text()
    assert len(html.encode()) < 60_000, len(html.encode())
    matrix = html[html.index("Confusion matrix"):html.index("The most common confusions")]
    header = re.findall(r"<th>(.*?)</th>", matrix[:matrix.index("</thead>")])
    assert len(header) == 1 + 15 + 1 and header[-1] == "(other)"
    cells = [int(re.sub("<[^>]+>", "", c)) for c in re.findall(r"<td>(\d+|<span[^>]*>\d+</span>)</td>", matrix)]
    assert sum(cells) == 10_000  # every row is counted once, the folded ones under (other)
    assert "500 classes: the 15 with the most rows" in html
    assert "all 500 classes, macro average" in html
