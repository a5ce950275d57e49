"""Property tests: whatever the CSV or config, nnctl answers with a run or one clean error."""
import csv
import io
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from nnctl.runs.model import load_model

from .cli_helpers import cli
from .conftest import DATASETS

pytestmark = pytest.mark.plots  # odd histories (inf, NaN losses) reach the drawing of loss.png too
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

numbers = st.one_of(st.integers(-10, 10).map(str), st.floats(-1e6, 1e6, allow_nan=False).map(repr))
cells = st.one_of(
    numbers, numbers, numbers,
    st.integers(-10, 10).map(str),
    st.floats(allow_nan=True, allow_infinity=True, width=64).map(repr),
    st.sampled_from(["", "NA", "nan", "1e308", "-1e-320", "3.4e39", "abc", "é", '"q,uoted"', "True", " 7 "]),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=6),
)


def assert_run_or_clean_error(result, runs: Path):
    assert result.exit_code in (0, 2), (result.exit_code, result.stderr)
    event(f"exit {result.exit_code}: {result.stderr.split('(')[0][:60].strip()}")
    assert "Traceback" not in result.stderr and "unexpected" not in result.stderr, result.stderr
    folders = [p for p in runs.iterdir()] if runs.exists() else []
    if result.exit_code == 0:
        assert len(folders) == 1
        load_model(folders[0])
    else:
        lines = result.stderr.strip().splitlines()
        assert sum(line.startswith("error: ") for line in lines) == 1, result.stderr
        assert folders == [], folders


@FUZZ
@given(
    header=st.one_of(st.just(["a", "b", "y"]), st.just(["y", "c"]),
                     st.lists(st.sampled_from(["a", "b", "c", "y", "", " y", "a"]), min_size=1, max_size=5)),
    rows=st.one_of(st.lists(st.lists(cells, min_size=3, max_size=3), min_size=0, max_size=14),
                   st.lists(st.lists(cells, min_size=0, max_size=6), min_size=0, max_size=12)),
    options=st.fixed_dictionaries({
        "missing": st.sampled_from(["error", "drop", "mean"]),
        "categorical": st.sampled_from(["[]", "auto"]),
        "task": st.sampled_from(["auto", "classification", "regression"]),
        "scale": st.sampled_from(["standard", "minmax", "none"]),
        "split": st.sampled_from([0, 0.2, 0.5]),
    }),
)
def test_random_csv_contents(header, rows, options):
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(header)
        writer.writerows(rows)
        (tmp / "d.csv").write_text(buf.getvalue())
        (tmp / "c.yaml").write_text(
            f"data:\n  path: d.csv\n  target: y\n  missing: {options['missing']}\n"
            f"  categorical: {options['categorical']}\n  scale: {options['scale']}\n"
            f"  validation_split: {options['split']}\nmodel:\n  task: {options['task']}\n  layers: [3]\n"
            "training:\n  iterations: 2\n  batch_size: 4\n")
        result = cli("train", tmp / "c.yaml", "--runs-dir", tmp / "runs", "--quiet")
        assert_run_or_clean_error(result, tmp / "runs")


yaml_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-5, 100), st.floats(-10, 10, allow_nan=False),
              st.sampled_from(["relu", "adam", "step", "auto", "x", "float64", "tanh", "1e-3", ""])),
    lambda children: st.one_of(st.lists(children, max_size=3), st.dictionaries(
        st.sampled_from(["name", "patience", "gamma", "metric", "step_size", "zz"]), children, max_size=3)),
    max_leaves=6,
)
SECTIONS = {
    "data": ["validation_split", "scale", "scale_target", "missing", "categorical", "delimiter", "features"],
    "model": ["task", "layers", "activation", "init"],
    "training": ["learning_rate", "iterations", "batch_size", "optimizer", "momentum", "beta1", "beta2", "eps",
                 "alpha", "schedule", "loss", "l2", "shuffle", "early_stopping", "dtype", "display_rowz"],
}


@FUZZ
@given(st.data())
def test_random_configs(data):
    import yaml

    seed = data.draw(st.integers(0, 2**40)) if data.draw(st.integers(0, 9)) else data.draw(yaml_values)
    raw = {"seed": seed,
           "data": {"path": str(DATASETS / "iris.csv"), "target": "species"}}
    for section, keys in SECTIONS.items():
        chosen = data.draw(st.lists(st.sampled_from(keys), max_size=2, unique=True))
        raw.setdefault(section, {}).update({k: data.draw(yaml_values) for k in chosen})
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "c.yaml").write_text(yaml.safe_dump(raw))
        result = cli("train", tmp / "c.yaml", "--runs-dir", tmp / "runs", "--quiet",
                     "--set", "training.iterations=1", "--set", "model.layers=[3]")
        assert_run_or_clean_error(result, tmp / "runs")
