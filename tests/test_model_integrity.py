"""A model.npz tampered with so that it would still load and predict nonsense (empty
probabilities, a wrong class for every row, a category sent to another's row) is one clean
error naming the file and the array or key, for predict and evaluate alike."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from .cli_helpers import assert_clean_error, cli, train_run
from .test_tampered_files import model_meta, rewrite_npz


@pytest.fixture(scope="session")
def table(tmp_path_factory) -> Path:
    """Two classes (no, yes), a numeric column and an embedded categorical one."""
    folder = tmp_path_factory.mktemp("integrity")
    rng = np.random.default_rng(0)
    teams = np.array(["ants", "bees", "cats", "dogs"])[rng.integers(0, 4, 200)]
    x = rng.normal(size=200)
    win = np.where(x + (teams == "cats") > 0.3, "yes", "no")
    lines = ["x,team,win"] + [f"{a:.4f},{t},{w}" for a, t, w in zip(x, teams, win)]
    (folder / "games.csv").write_text("\n".join(lines) + "\n")
    (folder / "games.yaml").write_text("data:\n  path: games.csv\n  target: win\n  categorical: [team]\n"
                                       "  embedding: {team: 2}\nmodel:\n  layers: [6]\n  normalization: batch\n"
                                       "training:\n  iterations: 3\n")
    return folder


@pytest.fixture(scope="session")
def source(table, tmp_path_factory) -> Path:
    return train_run(table / "games.yaml", tmp_path_factory.mktemp("integrity-runs"))


@pytest.fixture
def run(source, tmp_path) -> Path:
    copy = tmp_path / source.name
    shutil.copytree(source, copy)
    return copy


def _layer_index(run: Path, kind: str) -> int:
    with np.load(run / "model.npz", allow_pickle=False) as npz:
        layers = json.loads(str(npz["meta"].item()))["layers"]
    return next(i for i, spec in enumerate(layers) if spec["type"] == kind)


def test_the_untampered_model_predicts(run, table):
    result = cli("predict", run, table / "games.csv")
    assert result.exit_code == 0, result.stderr


def _set_array(name_of, make):
    def change(arrays, run):
        name = name_of(run)
        arrays[name] = make(arrays[name])
    return change


def _bn(array):
    return lambda run: f"layers.{_layer_index(run, 'batch_norm')}.{array}"


def _negative(a):
    a = a.copy()
    a[0] = -abs(a[0]) - 1.0
    return a


def _meta(change):
    edit = model_meta(change)
    return lambda arrays, run: edit(arrays)


def _bn_eps(value):
    def change(meta):
        next(s for s in meta["layers"] if s["type"] == "batch_norm")["eps"] = value
    return change


def _categories(change):
    return lambda meta: change(meta["categories"]["team"])


CASES = [
    ("negative-running-var", _set_array(_bn("running_var"), _negative), ["running_var", "negative"]),
    ("negative-eps", _meta(_bn_eps(-1.0)), ["(batch_norm)", "`eps`", "-1.0"]),
    ("eps-text", _meta(_bn_eps("small")), ["(batch_norm)", "`eps`"]),
    ("extra-category", _meta(_categories(lambda cats: cats.append("eels"))),
     ["`categories`", "5 categories", "'team'", "layers.0.table_0", "4"]),
    ("fewer-categories", _meta(_categories(lambda cats: cats.pop())),
     ["`categories`", "3 categories", "'team'", "layers.0.table_0", "4"]),
    ("extra-array", lambda arrays, run: arrays.__setitem__("layers.1.evil", np.zeros(3, np.float32)),
     ["layers.1.evil"]),
    ("positive-not-a-class", _meta(lambda m: m.__setitem__("positive_class", "maybe")),
     ["positive_class", "maybe", "not one of `classes`"]),
    ("positive-the-other-class", _meta(lambda m: m.__setitem__("positive_class", "no")),
     ["positive_class", "classes[1]"]),
    ("threshold-above-one", _meta(lambda m: m.__setitem__("threshold", 1.5)), ["`threshold`", "1.5"]),
    ("ranges-inverted", _meta(lambda m: m.__setitem__("ranges", {"x": [3.0, -3.0]})), ["`ranges`"]),
    ("ranges-of-a-category", _meta(lambda m: m.__setitem__("ranges", {"team": [0.0, 1.0]})), ["`ranges`"]),
]


@pytest.mark.parametrize("tamper, fragments", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_tampered_model_is_one_clean_error(run, table, tamper, fragments):
    rewrite_npz(run / "model.npz", lambda arrays: tamper(arrays, run))
    for command in ("predict", "evaluate"):
        result = cli(command, run, table / "games.csv")
        assert_clean_error(result, "model.npz", *fragments)
        assert "bug" not in result.stderr

