"""Odd inputs on the streamed first pass against the in-memory path: values near float64's
limit, a missing target, an empty table, one class, a bad value after the first chunk, a column
that cannot be encoded, and a zero shuffle window. Each either trains with finite statistics
that agree with memory's, or is one `error:` line (exit 2) with nothing left on disk."""
import json
from pathlib import Path

import numpy as np
import pytest

from nnctl.data import scaling
from nnctl.data.scanstats import Moments

from .cli_helpers import assert_clean_error, cli

HUGE = [178001.66, 1e308]  # found by test_fuzz: the plain sums of squares overflow to inf


def write(tmp_path, columns: dict, name="table.csv") -> Path:
    """A CSV of `columns` ({name: values}), numbers written exactly (repr)."""
    names = list(columns)
    rows = zip(*(columns[n] for n in names))
    text = ",".join(names) + "\n" + "".join(",".join(v if isinstance(v, str) else repr(float(v)) for v in row) + "\n"
                                             for row in rows)
    path = tmp_path / name
    path.write_text(text)
    return path


def config(tmp_path, table, extra="") -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(f"""seed: 1
data:
  path: {table}
  target: y
{extra}model:
  layers: [4]
training:
  iterations: 2
  batch_size: 8
""")
    return path


def train(cfg, tmp_path, *sets):
    args = ["train", cfg, "--runs-dir", tmp_path / "runs", "--quiet"]
    for s in sets:
        args += ["--set", s]
    return cli(*args)


def saved_meta(result) -> dict:
    assert result.exit_code == 0, result.stderr
    assert "Warning" not in result.stderr, result.stderr
    run = Path(result.stdout.strip().splitlines()[-1])
    with np.load(run / "model.npz", allow_pickle=False) as npz:
        return json.loads(str(npz["meta"]))


def nothing_left(tmp_path) -> None:
    runs = tmp_path / "runs"
    assert not runs.exists() or not any(runs.iterdir()), list(runs.iterdir())


def huge_table(tmp_path, where: str):
    rng = np.random.default_rng(0)
    a, b, y = rng.normal(size=40), rng.normal(size=40), rng.normal(size=40) * 1000
    (y if where == "target" else a)[:2] = HUGE
    return write(tmp_path, {"a": a, "b": b, "y": y})


# --- 1. values near float64's limit -------------------------------------------------------


def test_moments_merged_from_chunks_keep_huge_values_finite_as_memory_does():
    values = np.concatenate([np.random.default_rng(0).normal(size=38) * 1000, HUGE, [-1.7e308]])
    merged = Moments()
    for chunk in np.array_split(values, 7):
        merged.add(chunk)
    memory = scaling.fit_target(values, "standard")
    assert merged.mean == pytest.approx(memory["offset"][0], rel=1e-12)
    assert merged.std == pytest.approx(memory["scale"][0], rel=1e-12)
    filled, expected = merged.with_constant(5.0, 3), scaling.fit_target(np.r_[values, [5.0] * 3], "standard")
    assert filled.n == 44 and filled.std == pytest.approx(expected["scale"][0], rel=1e-12)
    # ordinary values: bit for bit what the plain update gave
    small = np.random.default_rng(1).normal(size=1000)
    plain = Moments()
    for chunk in np.array_split(small, 3):
        plain.add(chunk)
    assert plain.unit == 1.0 and plain.mean == pytest.approx(small.mean(), abs=1e-15)


@pytest.mark.parametrize("streaming", ["false", "true"])
def test_a_target_near_float64s_limit_trains_to_a_finite_target_scaler_on_both_paths(tmp_path, streaming):
    cfg = config(tmp_path, huge_table(tmp_path, "target"), "  validation_split: 0.0\n")
    meta = saved_meta(train(cfg, tmp_path, f"data.streaming={streaming}", "model.task=regression"))
    scaler = meta["target_scaler"]
    # every row trains: the same statistics as memory's rule on the whole column
    y = np.loadtxt(tmp_path / "table.csv", delimiter=",", skiprows=1)[:, 2]
    expected = scaling.fit_target(y, "standard")
    assert scaler["offset"][0] == pytest.approx(expected["offset"][0], rel=1e-9)
    assert scaler["scale"][0] == pytest.approx(expected["scale"][0], rel=1e-9)
    assert np.isfinite(scaler["scale"][0]) and scaler["scale"][0] > 1e306


@pytest.mark.parametrize("streaming", ["false", "true"])
def test_a_feature_near_float64s_limit_gets_a_finite_standard_scaler_on_both_paths(tmp_path, streaming):
    cfg = config(tmp_path, huge_table(tmp_path, "feature"), "  validation_split: 0.0\n")
    meta = saved_meta(train(cfg, tmp_path, f"data.streaming={streaming}", "model.task=regression",
                            "training.dtype=float64", "data.scale=standard"))
    a = np.loadtxt(tmp_path / "table.csv", delimiter=",", skiprows=1)[:, 0]
    assert meta["scaler"]["offset"][0] == pytest.approx(np.mean(a / 1e308) * 1e308, rel=1e-9)
    assert meta["scaler"]["scale"][0] == pytest.approx(np.std(a / 1e308) * 1e308, rel=1e-9)


@pytest.mark.parametrize("streaming", ["false", "true"])
def test_a_feature_spanning_float64_under_minmax_is_one_error_line(tmp_path, streaming):
    rng = np.random.default_rng(0)
    a = rng.normal(size=30)
    a[:2] = [-1.7e308, 1.7e308]  # max - min is beyond float64
    cfg = config(tmp_path, write(tmp_path, {"a": a, "y": rng.normal(size=30)}))
    result = train(cfg, tmp_path, f"data.streaming={streaming}", "training.dtype=float64", "data.scale=minmax")
    assert_clean_error(result, "column 'a'", "once scaled", "data.scale: standard or robust")
    nothing_left(tmp_path)


def test_the_smooth_clip_of_a_value_near_the_dtypes_limit_is_the_clip_not_zero():
    assert scaling.smooth_clip(np.array([1e308, -1e308, 2.0])).tolist() == \
        [3.0, -3.0, pytest.approx(2 / np.sqrt(1 + 4 / 9))]
    assert scaling.smooth_clip(np.array([1e20, -3e38], np.float32)).tolist() == [3.0, -3.0]


# --- 2. a missing target value -------------------------------------------------------------


@pytest.mark.parametrize("target, hint", [("y", "set data.missing: drop"),
                                          ("[y, a]", "set data.targets: {y: {missing: drop}}")])
def test_a_missing_target_is_the_same_error_line_in_memory_and_streamed(tmp_path, target, hint):
    rng = np.random.default_rng(0)
    y = rng.normal(size=30).round(3).astype(object)
    y[[6, 20]] = ""  # data rows 7 and 21
    cfg = config(tmp_path, write(tmp_path, {"a": rng.normal(size=30), "b": rng.normal(size=30), "y": y}))
    fragments = ["target column 'y' has missing values (first in data row 7", "table.csv", hint]
    memory = train(cfg, tmp_path, "data.streaming=false", f"data.target={target}")
    assert_clean_error(memory, *fragments, "first in data row 7, 2 rows in all)")
    streamed = train(cfg, tmp_path, "data.streaming=true", f"data.target={target}")
    assert_clean_error(streamed, *fragments)
    # the same line but for the count, which the streamed pass stops before knowing
    assert streamed.stderr.replace(")", ", 2 rows in all)", 1) == memory.stderr
    nothing_left(tmp_path)


# --- 3. other bad inputs, streamed and in memory alike -------------------------------------


def parquet(tmp_path, b, name) -> Path:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    path = tmp_path / name
    pq.write_table(pa.table({"a": rng.normal(size=len(b)), "b": b, "y": rng.integers(0, 2, len(b))}), path)
    return path


def bad_tables(tmp_path):
    """(table, extra --set, fragments of the one error line both paths give)."""
    rng = np.random.default_rng(0)
    yield write(tmp_path, {"a": [], "y": []}, "empty.csv"), (), ["header but no data rows", "empty.csv"]
    yield (write(tmp_path, {"a": rng.normal(size=20), "y": ["yes"] * 20}, "one.csv"), (),
           ["target column 'y' has a single class ('yes')", "one.csv", "model.task: regression"])
    pa = pytest.importorskip("pyarrow")
    nested = pa.array([[i, i + 1] for i in range(20)])
    for settings in ((), ("data.categorical=[b]",)):
        yield (parquet(tmp_path, nested, "list.parquet"), settings,
               ["column 'b' holds nested values (list<element: int64>)", "list.parquet", "data.exclude: [b]"])
    yield (parquet(tmp_path, pa.array([{"k": i} for i in range(20)]), "struct.parquet"), ("data.target=b",),
           ["column 'b' holds nested values (struct<k: int64>)", "struct.parquet"])
    # Parquet's null type: numbers all missing, as a CSV's empty column (memory said 'not numeric (e.g. '')')
    yield (parquet(tmp_path, pa.nulls(20), "null.parquet"), (),
           ["missing values in column 'b' (first in data row 1", "null.parquet", "data.missing: drop"])


def test_bad_tables_are_one_error_line_on_both_paths_with_nothing_left(tmp_path):
    for table, settings, fragments in bad_tables(tmp_path):
        cfg = config(tmp_path, table)
        for streaming in ("false", "true"):
            result = train(cfg, tmp_path, f"data.streaming={streaming}", *settings)
            assert_clean_error(result, *fragments)
            nothing_left(tmp_path)


def test_a_word_in_a_numeric_column_after_the_first_chunk_names_its_row(tmp_path, monkeypatch):
    from nnctl.data import onepass

    monkeypatch.setattr(onepass, "default_chunk_rows", lambda columns: 50)
    rng = np.random.default_rng(0)
    a = rng.normal(size=200).round(3).astype(object)
    a[130] = "oops"  # in the third chunk
    cfg = config(tmp_path, write(tmp_path, {"a": a, "y": rng.integers(0, 2, 200)}))
    assert_clean_error(train(cfg, tmp_path, "data.streaming=true"),
                       "column 'a' holds numbers, but data row 131 has 'oops'", "table.csv", "data.categorical")
    assert_clean_error(train(cfg, tmp_path, "data.streaming=false"),
                       "column 'a' is not numeric (e.g. 'oops')", "table.csv", "data.categorical")
    nothing_left(tmp_path)


@pytest.mark.parametrize("window", ["0", "many"])
def test_a_bad_shuffle_window_is_one_error_line_naming_the_key(tmp_path, window):
    cfg = config(tmp_path, write(tmp_path, {"a": [1.0, 2.0, 3.0, 4.0], "y": [0, 1, 0, 1]}))
    assert_clean_error(train(cfg, tmp_path, "data.streaming=true", f"data.shuffle_window={window}"),
                       "data.shuffle_window", "whole number >= 1")
    nothing_left(tmp_path)


def test_a_scaler_that_is_not_finite_is_never_saved(tmp_path):
    from nnctl.errors import NnctlError
    from nnctl.nn.network import Network
    from nnctl.runs.model import save_model

    network = Network.__new__(Network)
    network.arrays = lambda: {}
    for meta in ({"scaler": {"offset": [0.0], "scale": [float("inf")]}},
                 {"scaler": {"offset": [0.0], "scale": [1.0]}, "target_scaler": {"offset": [float("nan")], "scale": [1.0]}},
                 {"scaler": {"kind": "quantile", "offset": [0.0], "scale": [1.0],
                             "quantiles": {"0": [[0.0, float("inf")], [0.0, 1.0]]}}}):
        with pytest.raises(NnctlError, match="cannot save the model: the .* is not a finite number"):
            save_model(tmp_path / "model.npz", network, meta)
        assert not (tmp_path / "model.npz").exists()
