"""Inputs far outside what training saw: predict, evaluate and serve count them per column and
warn, --strict-range refuses them; validation.csv and test.csv name each row's place in its file."""
import csv
import io
import json
import shutil

import numpy as np
import pytest

from nnctl.data.ranges import RANGE_MARGIN, RangeCheck
from nnctl.data.encoding import FeatureEncoder

from .cli_helpers import assert_clean_error, cli, train_run


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A diamonds-like table: price from width x (3.7 to 10.5) and a noise column z."""
    folder = tmp_path_factory.mktemp("ranges")
    rng = np.random.default_rng(0)
    x, z = rng.uniform(3.7, 10.5, 400), rng.normal(size=400)
    price = 10 * x ** 3 + 50 * z
    lines = ["x,z,price"] + [f"{a:.3f},{b:.3f},{c:.2f}" for a, b, c in zip(x, z, price)]
    (folder / "train.csv").write_text("\n".join(lines) + "\n")
    # data rows 2 (x = 31.8, a width in the wrong unit) and 4 (z far below) are far outside
    (folder / "new.csv").write_text("x,z,price\n5,0.1,1250\n31.8,0.2,2075\n6,0.0,2160\n4,-50,600\n")
    (folder / "train.yaml").write_text("data:\n  path: train.csv\n  target: price\ntraining:\n  iterations: 5\n")
    return folder


@pytest.fixture(scope="module")
def run(folder, tmp_path_factory):
    return train_run(folder / "train.yaml", tmp_path_factory.mktemp("runs"))


def _meta(run):
    with np.load(run / "model.npz", allow_pickle=False) as npz:
        return json.loads(str(npz["meta"].item()))


def test_the_model_stores_each_numeric_column_s_training_range(run, folder):
    ranges = _meta(run)["ranges"]
    train = np.loadtxt(folder / "train.csv", delimiter=",", skiprows=1)
    validation = [int(r["row"]) - 1 for r in csv.DictReader(open(run / "validation.csv"))]
    part = np.delete(train, validation, axis=0)  # the training part only
    assert ranges == {"x": [part[:, 0].min(), part[:, 0].max()], "z": [part[:, 1].min(), part[:, 1].max()]}


def test_predict_warns_per_column_and_strict_refuses(run, folder):
    result = cli("predict", run, folder / "new.csv")
    assert result.exit_code == 0, result.stderr
    assert len(list(csv.DictReader(io.StringIO(result.stdout)))) == 4
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2
    assert warnings[0].startswith("warning: column 'x': 1 row far outside what training saw (training range 3.7")
    assert "e.g. 31.8 in data row 2" in warnings[0] and "e.g. -50 in data row 4" in warnings[1]
    assert_clean_error(cli("predict", run, folder / "new.csv", "--strict-range"), "column 'x'", "data row 2",
                       "new.csv")


def test_evaluate_warns_and_its_json_counts_them(run, folder):
    result = cli("evaluate", run, folder / "new.csv", "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert [(c["column"], c["rows"], c["first_row"], c["example"]) for c in report["out_of_range"]] == [
        ("x", 1, 2, 31.8), ("z", 1, 4, -50.0)]
    assert result.stderr.count("warning: column") == 2
    assert_clean_error(cli("evaluate", run, folder / "new.csv", "--strict-range"), "column 'x'")


def test_rows_within_the_margin_are_quiet(run, folder, tmp_path):
    (lo, hi) = _meta(run)["ranges"]["x"]
    edge = hi + 0.9 * RANGE_MARGIN * (hi - lo)  # beyond the range, but within the margin
    (tmp_path / "near.csv").write_text(f"x,z,price\n{edge:.4f},0.0,100\n{lo:.4f},0.0,100\n")
    result = cli("predict", run, tmp_path / "near.csv", "--strict-range")
    assert result.exit_code == 0 and "warning" not in result.stderr, result.stderr
    result = cli("evaluate", run, tmp_path / "near.csv", "--json")
    assert "out_of_range" not in json.loads(result.stdout)


def test_a_model_without_ranges_is_not_checked(run, folder, tmp_path):
    from .test_tampered_files import model_meta, rewrite_npz

    old = tmp_path / run.name
    shutil.copytree(run, old)
    rewrite_npz(old / "model.npz", model_meta(lambda meta: meta.pop("ranges")))
    result = cli("predict", old, folder / "new.csv", "--strict-range")
    assert result.exit_code == 0 and "warning" not in result.stderr, result.stderr


def test_serve_answers_with_warnings_and_logs_them(run, capsys):
    pytest.importorskip("fastapi")
    from nnctl.runs.model import load_model

    from .test_serve_fast_paths import client

    app = client(load_model(run))
    rows = [{"x": 5.0, "z": 0.1}, {"x": 1e9, "z": 0.0}]
    answer = app.post("/predict", json={"rows": rows})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert len(body["predictions"]) == 2
    assert body["warnings"] == [line for line in body["warnings"] if line.startswith("column 'x': 1 row far outside")]
    assert "warning: POST /predict: column 'x'" in capsys.readouterr().err
    assert "warnings" not in app.post("/predict", json={"rows": rows[:1]}).json()


def test_the_check_counts_across_chunks_and_a_constant_column():
    encoder = FeatureEncoder(["a", "b"], scaler={"kind": "none", "offset": [0.0, 0.0], "scale": [1.0, 1.0]},
                             ranges={"a": [0.0, 10.0], "b": [0.1, 0.1]})
    check = RangeCheck(encoder)
    check.add(np.array([[15.0, 0.1], [15.1, 0.1], [-6.0, 0.1]], dtype=np.float32), np.arange(3))
    check.add(np.array([[1.0, 0.2]], dtype=np.float32), np.array([3]))
    # a: beyond [-5, 15]; b: constant 0.1 in training (float32 0.1 is not float64 0.1, and is not counted)
    assert check.summary() == [{"column": "a", "rows": 2, "min": 0.0, "max": 10.0, "first_row": 2, "example": 15.1},
                               {"column": "b", "rows": 1, "min": 0.1, "max": 0.1, "first_row": 4, "example": 0.2}]


def test_validation_and_test_files_carry_the_row_number(folder, tmp_path):
    text = (folder / "train.csv").read_text().splitlines()
    text[5] = text[5].split(",")[0] + ",," + text[5].split(",")[2]  # data row 5: a missing z, dropped
    (tmp_path / "gappy.csv").write_text("\n".join(text) + "\n")
    (tmp_path / "c.yaml").write_text(f"data:\n  path: gappy.csv\n  target: price\n  missing: drop\n"
                                     f"  test_path: {folder / 'new.csv'}\ntraining:\n  iterations: 2\n")
    run = train_run(tmp_path / "c.yaml", tmp_path / "runs")
    rows = list(csv.DictReader(open(run / "validation.csv")))
    assert list(rows[0]) == ["target", "prediction", "row"]
    lines = (tmp_path / "gappy.csv").read_text().splitlines()
    for r in rows:  # each row's target is the price in that data row of the file
        assert float(r["target"]) == pytest.approx(float(lines[int(r["row"])].split(",")[2]))
    assert "5" not in [r["row"] for r in rows]
    test = list(csv.DictReader(open(run / "test.csv")))
    assert [r["row"] for r in test] == ["1", "2", "3", "4"]


def test_a_streamed_run_has_the_same_ranges_and_numbered_rows(folder, tmp_path):
    run = train_run(folder / "train.yaml", tmp_path / "runs", "data.streaming=true")
    lines = (folder / "train.csv").read_text().splitlines()
    rows = list(csv.DictReader(open(run / "validation.csv")))
    assert rows and all(float(r["target"]) == pytest.approx(float(lines[int(r["row"])].split(",")[2])) for r in rows)
    validation = {int(r["row"]) for r in rows}
    part = np.array([[float(v) for v in lines[i].split(",")[:2]] for i in range(1, len(lines)) if i not in validation])
    assert _meta(run)["ranges"] == {"x": [part[:, 0].min(), part[:, 0].max()], "z": [part[:, 1].min(), part[:, 1].max()]}
    result = cli("predict", run, folder / "new.csv")
    assert result.stderr.count("warning: column") == 2


def test_the_dataset_cache_keeps_the_row_numbers(folder, monkeypatch):
    from nnctl.config import load_config
    from nnctl.data import cache, load_dataset

    monkeypatch.setattr(cache, "MIN_BYTES", 0)
    fresh = load_dataset(load_config(folder / "train.yaml"))
    assert sorted(cache.cache_dir().iterdir())  # written
    cached = load_dataset(load_config(folder / "train.yaml"))
    assert cached is not fresh and cached.val_rows.tolist() == fresh.val_rows.tolist()
    assert len(fresh.val_rows) == len(fresh.X_val) and len(set(fresh.val_rows.tolist())) == len(fresh.val_rows)
    entry = next(p for p in cache.cache_dir().iterdir() if not p.name.startswith("."))
    np.save(entry / "val_rows.npy", np.zeros(3, dtype=np.int64))  # damaged: the entry is rebuilt, never used
    again = load_dataset(load_config(folder / "train.yaml"))
    assert again.val_rows.tolist() == fresh.val_rows.tolist()
