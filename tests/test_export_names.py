"""ONNX export of columns named like the graph's outputs or its intermediate values: ONNX names
every value once, so a column called `label` or `probabilities` must not collide with them."""
import json

import numpy as np
import pandas as pd
import pytest

from .cli_helpers import cli

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

# `encoded_N`, `filled_N`, `W0_N`: the names the graph gives its own values
COLUMNS = ["label", "probabilities", "prediction", "label_input", "encoded_4", "filled_2", "W0_6", "scaled_7"]


@pytest.fixture
def clashing_run(tmp_path):
    rng = np.random.default_rng(0)
    rows = 80
    frame = pd.DataFrame({name: rng.normal(size=rows).round(3) for name in COLUMNS})
    frame["color"] = rng.choice(["red", "green", "blue"], size=rows)
    frame["kind"] = np.where(frame["label"] + (frame["color"] == "red") > 0.5, "yes", "no")
    frame.loc[3, "filled_2"] = np.nan
    data = tmp_path / "data.csv"
    frame.to_csv(data, index=False)
    config = tmp_path / "c.yaml"
    config.write_text(f"data:\n  path: {data}\n  target: kind\n  categorical: [color]\n  missing: mean\n"
                      "model:\n  layers: [4]\ntraining:\n  iterations: 3\n")
    result = cli("train", config, "--runs-dir", tmp_path / "runs", "--quiet")
    assert result.exit_code == 0, result.stderr
    return result.stdout.strip(), data


def test_columns_named_like_outputs_or_intermediates_export_and_match_predict(clashing_run, tmp_path):
    run, data = clashing_run
    result = cli("export", run, "--output", tmp_path / "m.onnx")
    assert result.exit_code == 0, result.stderr
    session = ort.InferenceSession(str(tmp_path / "m.onnx"))
    meta = session.get_modelmeta().custom_metadata_map
    renamed = json.loads(meta["renamed_inputs"])
    # `label_input` is a column of its own, so `label` moves on to `label_input_input`
    assert renamed == {"label_input_input": "label", "probabilities_input": "probabilities",
                       "prediction_input": "prediction"}
    column_of = {spec.name: renamed.get(spec.name, spec.name) for spec in session.get_inputs()}
    assert sorted(column_of.values()) == sorted(COLUMNS + ["color"])
    assert [o.name for o in session.get_outputs()] == ["label", "probabilities"]
    assert "column 'label' is input" in session.get_modelmeta().description
    frame = pd.read_csv(data)
    feeds = {}
    for spec in session.get_inputs():
        column = frame[column_of[spec.name]]
        if spec.type == "tensor(string)":
            feeds[spec.name] = column.astype(str).to_numpy(object).reshape(-1, 1)
        else:
            feeds[spec.name] = column.to_numpy(np.float32).reshape(-1, 1)
    labels, proba = session.run(None, feeds)
    predicted = cli("predict", run, data, "--proba")
    assert predicted.exit_code == 0, predicted.stderr
    expected = pd.read_csv(pd.io.common.StringIO(predicted.stdout))
    assert [v.decode() if isinstance(v, bytes) else v for v in labels] == expected["prediction"].tolist()
    np.testing.assert_allclose(proba, expected[["p_no", "p_yes"]].to_numpy(), rtol=1e-5, atol=1e-6)


def test_the_graph_never_names_a_value_like_an_input_or_output():
    from nnctl.commands.export import _Graph

    g = _Graph(None, None, np.float32, taken=["scaled_1", "scaled_2"])
    assert g.name("scaled") == "scaled_3"
    assert g.name("label") == "label_4" and "label" in g.taken
