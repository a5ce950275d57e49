"""The report and one outlier: a few validation rows carrying most of the validation loss are
named (by data row) instead of the rise being called overfitting, and the residual chart keeps
the largest residuals when it samples, saying how many points it shows."""
import csv
import re

import numpy as np
import pytest

from nnctl.report.health import validation_rise
from nnctl.report.outliers import concentrated
from nnctl.report.page import run_page
from nnctl.report.rundata import RunData
from nnctl.report.svg import MAX_POINTS, sample_points, scatter

from .cli_helpers import cli, train_run


def _rows(n=2000, outlier_at=1234, seed=0):
    """A diamonds-like validation part: predictions within a few % of the truth, and one row
    (data row `outlier_at` + 7) predicted at ten times its price."""
    rng = np.random.default_rng(seed)
    price = rng.uniform(500, 15000, n)
    predicted = price * rng.normal(1.0, 0.03, n)
    predicted[outlier_at] = 10 * price[outlier_at]
    return [{"target": f"{t:.2f}", "prediction": f"{p:.2f}", "row": str(i + 7)}
            for i, (t, p) in enumerate(zip(price, predicted))]


def _history(val_losses):
    return [{"epoch": float(i + 1), "train_loss": 1.0 / (i + 1), "val_loss": v, "learning_rate": 0.01}
            for i, v in enumerate(val_losses)]


RISING = [1.0, 0.6, 0.4, 0.35, 0.36, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7]


def test_one_outlier_is_found_and_named_by_its_data_row():
    rows = _rows()
    found = concentrated("regression", rows, [])
    assert [name for name, *_ in found.rows] == ["data row 1,241"]  # validation.csv's row column
    assert found.share > 0.9 and found.total == 2000
    truth = np.array([float(r["target"]) for r in rows])
    predicted = np.array([float(r["prediction"]) for r in rows])
    keep = np.arange(len(rows)) != 1234

    def r2(t, p):
        return 1 - np.sum((p - t) ** 2) / np.sum((t - t.mean()) ** 2)

    assert found.with_them == pytest.approx(r2(truth, predicted))
    assert found.without_them == pytest.approx(r2(truth[keep], predicted[keep]))
    assert found.without_them > 0.99 > found.with_them


@pytest.mark.parametrize("rows", [
    _rows(outlier_at=0)[:60],  # too few rows to single any out
    [dict(r, prediction=r["target"]) if i == 1234 else r for i, r in enumerate(_rows())],  # no outlier
])
def test_no_finding_without_a_few_heavy_rows(rows):
    assert concentrated("regression", rows, []) is None


def test_two_classes_use_the_true_class_log_loss():
    rows = [{"target": "yes", "prediction": "yes", "p_no": "0.01", "p_yes": "0.99", "row": str(i + 1)} for i in range(500)]
    rows[42] = {"target": "no", "prediction": "yes", "p_no": "1e-12", "p_yes": "1", "row": "43"}
    found = concentrated("classification", rows, ["no", "yes"])
    assert [name for name, *_ in found.rows] == ["data row 43"] and found.metric == "log loss"
    assert concentrated("classification", rows, ["a", "b", "c"]) is None  # several classes: not in the file


def test_the_rise_is_not_called_overfitting_when_a_few_rows_carry_the_loss():
    said = validation_rise(_history(RISING), saved_epoch=12, few_rows=True)
    assert said.startswith("Validation loss rose for 8 epochs")
    assert "overfits after" not in said and "early_stopping" not in said and "a few validation rows" in said.lower()


def test_the_page_names_the_row_instead_of_suggesting_early_stopping(tmp_path):
    run = RunData(tmp_path, {"status": "completed", "epochs": 12, "saved_epoch": 12, "saved_because": "last",
                             "task": "regression", "target_units": {"target": "price", "loss": "mse", "scale": 1.0}},
                  "seed: 1\n", _history(RISING))
    run.validation = _rows()
    html = run_page(run)
    section = html[html.index("<h2>Learning curves</h2>"):html.index("<h2>Final metrics</h2>")]
    assert "One row of 2,000 carries" in section and "data row 1,241 (price" in section
    assert "early_stopping" not in section and "overfits after" not in section
    assert "1,000 of 2,000 shown" in html


def test_sampling_keeps_the_largest_residuals_and_says_so():
    rows = _rows(n=8630, outlier_at=4321)
    pairs = [(float(r["target"]), float(r["prediction"])) for r in rows]
    kept = sample_points(pairs)
    assert len(kept) == MAX_POINTS and pairs[4321] in kept
    worst = sorted(pairs, key=lambda p: -abs(p[1] - p[0]))[:100]
    assert all(p in kept for p in worst)
    assert kept == [p for p in pairs if p in set(kept)]  # in their order
    svg = scatter([p[0] for p in pairs], [p[1] for p in pairs], "predicted against actual", "actual", "predicted")
    assert "1,000 of 8,630 shown" in svg and svg.count('class="mark s0 dot"') == MAX_POINTS
    # the axis reaches the outlier's prediction: it is on the chart, not cut off
    ticks = [float(t) for t in re.findall(r'class="tick"[^>]*>([-\d.e]+)<', svg)]
    assert max(ticks) >= 0.8 * pairs[4321][1]


def test_a_trained_run_s_report_names_the_planted_outlier(tmp_path):
    rng = np.random.default_rng(3)

    def table(n):
        x = rng.uniform(3.7, 10.5, n)
        return x, 10 * x ** 3

    x, price = table(600)
    (tmp_path / "train.csv").write_text("x,price\n" + "".join(f"{a:.4f},{b:.2f}\n" for a, b in zip(x, price)))
    x, price = table(300)
    price[57] *= 10  # data row 58 of the validation file: a price typed with a zero too many
    (tmp_path / "val.csv").write_text("x,price\n" + "".join(f"{a:.4f},{b:.2f}\n" for a, b in zip(x, price)))
    (tmp_path / "c.yaml").write_text("data:\n  path: train.csv\n  validation_path: val.csv\n  target: price\n"
                                     "training:\n  iterations: 60\n  optimizer: adam\n")
    run = train_run(tmp_path / "c.yaml", tmp_path / "runs")
    rows = list(csv.DictReader(open(run / "validation.csv")))
    assert rows[57]["row"] == "58"
    result = cli("report", run, "--output", tmp_path / "r.html")
    assert result.exit_code == 0, result.stderr
    html = (tmp_path / "r.html").read_text()
    assert "One row of 300 carries" in html and "data row 58 (price" in html
