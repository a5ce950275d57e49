"""A regression's report speaks one unit: the target's. Training's loss is on the standardized
target (data.scale_target), the test part is scored by `evaluate` in the target's units; the
report shows every part, and the loss curves, in the target's units, and says which."""
import json
import math
import re
from pathlib import Path

import pytest

from .cli_helpers import cli
from .conftest import CONFIGS, DATASETS


@pytest.fixture(scope="module")
def diabetes(tmp_path_factory):
    runs = tmp_path_factory.mktemp("units")
    result = cli("train", CONFIGS / "diabetes.yaml", "--runs-dir", runs, "--quiet", "--set", "training.iterations=5",
                 "--set", f"data.test_path={DATASETS / 'diabetes.csv'}")
    assert result.exit_code == 0, result.stderr
    run = Path(result.stdout.strip())
    assert cli("report", run).exit_code == 0
    return run


def _cells(html: str, section: str) -> list[list[str]]:
    part = html[html.index(f"<h2>{section}</h2>"):]
    table = part[part.index("<tbody>"):part.index("</tbody>")]
    return [re.findall(r"<td>(.*?)</td>", row) for row in table.split("<tr>")[1:]]


def test_train_and_validation_errors_are_saved_in_the_targets_units(diabetes):
    metrics = json.loads((diabetes / "metrics.json").read_text())
    units = metrics["target_units"]
    assert units["target"] == "progression" and units["loss"] == "mse" and units["scale"] > 10
    for part in ("train", "validation"):
        # the loss is the standardized target's mse; rmse is the same error in the target's units
        assert metrics[part]["rmse"] == pytest.approx(math.sqrt(metrics[part]["loss"]) * units["scale"], rel=1e-4)
    rows = [line.split(",") for line in (diabetes / "validation.csv").read_text().splitlines()[1:]]
    mae = sum(abs(float(p) - float(t)) for t, p, *_ in rows) / len(rows)  # then `row`
    assert metrics["validation"]["mae"] == pytest.approx(mae, rel=1e-6)


def test_the_final_metrics_table_is_in_the_targets_units_for_every_part(diabetes):
    metrics = json.loads((diabetes / "metrics.json").read_text())
    html = (diabetes / "report.html").read_text()
    assert "rmse and mae in units of progression" in html
    cells = {row[0]: row for row in _cells(html, "Final metrics")}
    assert list(cells) == ["train", "validation", "test"]
    for part in cells:
        assert float(cells[part][1]) == pytest.approx(metrics[part]["rmse"], rel=1e-3)
        assert float(cells[part][2]) == pytest.approx(metrics[part]["mae"], rel=1e-3)
    # the three parts' errors are of one size: no standardized loss (about 0.5) beside ~50
    values = [float(cells[p][1]) for p in cells]
    assert max(values) / min(values) < 1.5


def test_the_loss_curve_is_labelled_and_drawn_in_the_targets_units(diabetes):
    html = (diabetes / "report.html").read_text()
    chart = html[html.index('aria-label="loss per epoch"'):]
    chart = chart[:chart.index("</svg>")]
    assert "rmse, in units of progression" in chart
    ticks = [float(t) for t in re.findall(r'class="tick"[^>]*text-anchor="end">([^<]+)<', chart)]
    assert ticks and min(ticks) > 1  # rmse of ~50-150, not a standardized loss below 1


def test_the_comparison_page_gives_a_regressions_losses_in_its_units(diabetes, tmp_path):
    out = tmp_path / "compare.html"
    assert cli("report", diabetes, diabetes, "--output", out).exit_code == 0
    metrics = json.loads((diabetes / "metrics.json").read_text())
    row = _cells(out.read_text(), "Final metrics")[0]
    assert row[4] == f"rmse {row[4].split()[1]}"
    assert float(row[5].split()[1]) == pytest.approx(metrics["validation"]["rmse"], rel=1e-3)
