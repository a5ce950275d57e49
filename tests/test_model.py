import json

import numpy as np
import pytest

from nnctl.commands.train import train_config
from nnctl.training.build import build_network
from nnctl.config import load_config
from nnctl.data import load_dataset
from nnctl.errors import NnctlError
from nnctl.runs.model import load_model

from .conftest import CONFIGS, DATASETS


IRIS_CONFIG = CONFIGS / "iris.yaml"


def test_model_npz_follows_the_contract(iris_run):
    run = iris_run
    with np.load(run / "model.npz", allow_pickle=False) as npz:
        assert sorted(npz.files) == ["conformal.scores", "layers.0.W", "layers.0.b", "layers.2.W", "layers.2.b",
                                     "layers.4.W", "layers.4.b", "meta"]
        assert npz["layers.0.W"].shape == (4, 16) and npz["layers.4.b"].shape == (3,)
        meta = json.loads(str(npz["meta"]))
    assert meta["format"] == "nnctl-mlp" and meta["format_version"] == 2
    assert meta["layers"] == [{"type": "dense", "units": 16}, {"type": "activation", "name": "relu"},
                              {"type": "dense", "units": 16}, {"type": "activation", "name": "relu"},
                              {"type": "dense", "units": 3}]
    assert meta["output"] == "softmax" and meta["loss"] == "cross_entropy"
    assert meta["classes"] == ["setosa", "versicolor", "virginica"]
    assert meta["features"] == ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    assert meta["target"] == "species" and meta["task"] == "classification"
    assert meta["scaler"]["kind"] == "standard" and len(meta["scaler"]["offset"]) == 4
    assert "nnctl_version" in meta


def test_third_party_forward_pass_in_ten_lines(iris_run):
    import pandas as pd

    run = iris_run
    npz = np.load(run / "model.npz", allow_pickle=False)
    meta = json.loads(str(npz["meta"]))
    df = pd.read_csv(DATASETS / "iris.csv")
    a = (df[meta["features"]].to_numpy() - meta["scaler"]["offset"]) / meta["scaler"]["scale"]
    for i, layer in enumerate(meta["layers"]):
        if layer["type"] == "dense":
            a = a @ npz[f"layers.{i}.W"] + npz[f"layers.{i}.b"]
        elif layer["type"] == "activation" and layer["name"] == "relu":
            a = np.maximum(a, 0)
    a = np.exp(a) / np.exp(a).sum(axis=1, keepdims=True)  # meta["output"] == "softmax"
    mine = load_model(run).predict_proba(df)
    np.testing.assert_allclose(a, mine, atol=1e-5)


def test_save_load_round_trip_keeps_every_array(iris_run):
    run = iris_run
    model = load_model(run / "model.npz")
    with np.load(run / "model.npz") as npz:
        arrays = model.network.arrays()
        assert list(arrays) == [name for name in npz.files if name not in ("meta", "conformal.scores")]
        for name, value in arrays.items():
            np.testing.assert_array_equal(value, npz[name])


def test_training_again_from_the_saved_config_gives_the_same_weights(iris_run, tmp_path):
    run = iris_run
    again = train_config(load_config(run / "config.yaml"), runs_dir=tmp_path, name="again", plot=False).run
    a, b = load_model(run), load_model(again)
    assert a.network.flat_params.tobytes() == b.network.flat_params.tobytes()


def test_init_from_starts_from_the_saved_weights(iris_run):
    run, cfg_path = iris_run, IRIS_CONFIG
    cfg = load_config(cfg_path, [f"model.init_from={run}"])
    net = build_network(cfg, load_dataset(cfg))
    np.testing.assert_array_equal(net.layers[2].W, load_model(run).network.layers[2].W)


def test_init_from_with_other_shapes_names_the_layer(iris_run):
    run, cfg_path = iris_run, IRIS_CONFIG
    cfg = load_config(cfg_path, [f"model.init_from={run}", "model.layers=[16, 8]"])
    with pytest.raises(NnctlError, match=r"is 4 → 16 → 16 → 3 .*, the config builds 4 → 16 → 8 → 3 \(dense 16, "
                                         r"relu, dense 8, relu, dense 3\)"):
        build_network(cfg, load_dataset(cfg))
