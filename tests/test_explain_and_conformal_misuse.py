"""Explain and conformal under misuse (review of issue #24): each bad input is one `error:`
line that names the option or file and the fix, exit 2, nothing computed in vain or written."""
import csv
import json
from pathlib import Path

import pytest

from .cli_helpers import assert_clean_error, cli
from .conftest import DATASETS

IRIS = DATASETS / "iris.csv"
FORMAT1 = Path(__file__).parent / "data" / "format1"


def _rows(tmp_path, keep) -> Path:
    lines = IRIS.read_text().splitlines()
    path = tmp_path / "rows.csv"
    path.write_text("\n".join([lines[0], *keep(lines[1:])]) + "\n")
    return path


@pytest.mark.parametrize("as_json", [False, True])
def test_a_metric_undefined_on_the_file_is_an_error_not_a_crash_or_nulls(iris_run, tmp_path, as_json):
    # roc_auc needs both a positive and a negative row; one species has no negatives to rank
    one_class = _rows(tmp_path, lambda rows: [r for r in rows if r.endswith("setosa")])
    result = cli("explain", iris_run, one_class, "--metric", "roc_auc", *(["--json"] if as_json else []))
    assert_clean_error(result, "roc_auc", "--metric", "has no rows", "every class")
    assert result.stdout == ""


def test_permutation_on_one_row_is_an_error_since_no_shuffle_moves_it(iris_run, tmp_path):
    one_row = _rows(tmp_path, lambda rows: rows[:1])
    assert_clean_error(cli("explain", iris_run, one_row), "at least 2 rows", "--method gradient")
    gradient = cli("explain", iris_run, one_row, "--method", "gradient", "--json")
    assert gradient.exit_code == 0, gradient.stderr
    assert json.loads(gradient.stdout)["rows"] == 1


def test_repeats_far_beyond_use_is_refused_before_any_work(iris_run):
    assert_clean_error(cli("explain", iris_run, IRIS, "--repeats", "100000"), "--repeats", "at most 1000")
    ok = cli("explain", iris_run, IRIS, "--repeats", "1", "--json")
    assert ok.exit_code == 0 and json.loads(ok.stdout)["repeats"] == 1


@pytest.mark.parametrize("where", ["missing/importance.csv", "."])
def test_a_bad_output_fails_before_the_importance_is_computed(iris_run, tmp_path, monkeypatch, where):
    import nnctl.commands.explain as explain

    def never(*args, **kwargs):
        raise AssertionError("explain ran although --output cannot be written")

    monkeypatch.setattr(explain, "explain_file", never)
    result = cli("explain", iris_run, IRIS, "--output", tmp_path / where)
    assert_clean_error(result, "--output" if where == "." else "missing")
    assert "importance.csv" in result.stderr  # the hint's example is this command's file
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_format1_model_is_not_said_to_lack_a_validation_part_it_may_have_had():
    result = cli("predict", FORMAT1 / "regression", FORMAT1 / "levels.csv", "--interval", "0.9")
    assert_clean_error(result, "--interval", "older nnctl", "data.validation_split")


def test_drops_that_cancel_are_exactly_zero_not_rounding_noise(iris_run, tmp_path):
    # 7 rows, one mislabelled: shuffles that gain one row and lose one row cancel; their mean
    # in floating point came out as -5.55e-17, shown in the table as "-5.551e-17"
    lines = IRIS.read_text().splitlines()
    species = sorted({line.rsplit(",", 1)[1] for line in lines[1:]})
    rows = []
    for i, line in enumerate(lines[1:][45:52], start=45):
        values, label = line.rsplit(",", 1)
        rows.append(f"{values},{species[(species.index(label) + 1) % 3]}" if i % 7 == 0 else line)
    path = tmp_path / "seven.csv"
    path.write_text("\n".join([lines[0], *rows]) + "\n")
    out = json.loads(cli("explain", iris_run, path, "--repeats", "2", "--json").stdout)
    assert out["baseline"] == pytest.approx(6 / 7)
    tiny = [c for c in out["columns"] if 0 < abs(c["importance"]) < 1e-12]
    assert tiny == []
    assert all(abs(c["importance"] * 7 * 2 - round(c["importance"] * 7 * 2)) < 1e-9 for c in out["columns"])


def test_the_reports_whisker_is_two_std_the_rule_the_docs_give(iris_config, tmp_path):
    import re

    from .cli_helpers import train_run

    run = train_run(iris_config(), tmp_path / "runs", "report.importance=true", "training.iterations=30")
    columns = list(csv.DictReader((run / "importance.csv").open()))
    assert cli("report", run).exit_code == 0
    page = (run / "report.html").read_text()
    section = page.split("What the model relies on", 1)[1].split("<h2>", 1)[0]
    assert "two std" in section and 'class="grid2 top"' in section
    bars = [float(w) for w in re.findall(r'class="mark bar" x="[-\d.]+" y="[\d.]+" width="([\d.]+)"', section)]
    whiskers = [float(b) - float(a) for a, b in re.findall(r'<line class="s7" x1="([-\d.]+)" x2="([-\d.]+)"', section)]
    top = columns[0]
    importance, std = float(top["importance"]), float(top["std"])
    assert importance > 0 and std > 0, columns
    assert whiskers[0] / bars[0] == pytest.approx(4 * std / importance, rel=0.02)


@pytest.mark.parametrize("command", ["explain", "predict"])
def test_output_onto_the_run_folders_model_is_refused(iris_run, tmp_path, command):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(iris_run, run)
    before = (run / "model.npz").read_bytes()
    result = cli(command, run, IRIS, "--output", run / "model.npz")
    assert_clean_error(result, "--output is the input file", "model.npz")
    assert (run / "model.npz").read_bytes() == before


@pytest.mark.parametrize("option", [[], ["--sets", "0.9"]])
def test_evaluate_on_a_header_only_file_is_an_error_not_nulls(iris_run, tmp_path, option):
    header = _rows(tmp_path, lambda rows: [])
    result = cli("evaluate", iris_run, header, "--json", *option)
    assert_clean_error(result, "no rows to evaluate", "rows.csv")
    assert result.stdout == ""


def test_evaluate_interval_on_a_header_only_file_is_an_error_not_a_crash(tmp_path, write_config):
    from .cli_helpers import train_run

    diabetes = DATASETS / "diabetes.csv"
    run = train_run(write_config(f"data:\n  path: {diabetes}\n  target: progression\nmodel:\n  task: regression\n"),
                    tmp_path / "runs", "training.iterations=5")
    header = tmp_path / "header.csv"
    header.write_text(diabetes.read_text().splitlines()[0] + "\n")
    assert_clean_error(cli("evaluate", run, header, "--interval", "0.9"), "no rows to evaluate", "header.csv")
